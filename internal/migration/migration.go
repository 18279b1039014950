// Package migration reads a store's schema migrations from embedded files named
// NNNN_name.sql. Both stores (SQLite and PostgreSQL) keep one file per version, apply them in
// order in their own dialect, and record each in a schema_migrations table; what they share
// is how the files are found, named and ordered.
package migration

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Migration is one version of a schema.
type Migration struct {
	Version int
	Name    string // the file name without .sql
	SQL     string
}

// Load returns the migrations matching pattern in fsys (e.g. "migrations/*.sql"), sorted by
// version. Names must be NNNN_name.sql with strictly increasing versions from 1.
func Load(fsys fs.FS, pattern string) ([]Migration, error) {
	names, err := fs.Glob(fsys, pattern)
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, n := range names { // fs.Glob returns names sorted, and versions are zero-padded
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", base)
		}
		if len(ms) > 0 && ms[len(ms)-1].Version >= v {
			return nil, fmt.Errorf("migration %s: version %d is not after %d", base, v, ms[len(ms)-1].Version)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(base, ".sql"), SQL: string(b)})
	}
	return ms, nil
}
