// Package migration brings a store's schema up to date from embedded files named
// NNNN_name.sql. Both stores (SQLite and PostgreSQL) keep one file per version in their own
// dialect; this package finds, names and orders the files, and applies the ones a database
// lacks in one transaction, recording each in a schema_migrations table.
package migration

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
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

// Tx is the transaction a backend applies migrations in, holding whatever lock keeps a
// second process from migrating at the same moment.
type Tx interface {
	Commit(ctx context.Context) error
	Rollback() // after Commit, a no-op
	// Exec runs a statement; a migration file may hold several (without arguments).
	Exec(ctx context.Context, query string, args ...any) error
	// Versions returns the versions that schema_migrations records.
	Versions(ctx context.Context) ([]int, error)
}

// Dialect is the SQL that differs between backends.
type Dialect struct {
	// CreateTable creates schema_migrations (version, name, applied_at unix seconds) if it
	// does not exist.
	CreateTable string
	// Record inserts one row of it: version, name and applied_at, as parameters 1 to 3.
	Record string
}

// Files is where every backend keeps its migrations in the file system it embeds.
const Files = "migrations/*.sql"

// Run applies, in order and in one transaction that begin starts, the migrations in fsys
// (Files) that the database lacks, and records each. A second process migrating at the
// same moment waits for begin's lock, then finds nothing left to do. A database migrated
// by a newer binary (versions this one does not know) is accepted.
func Run(ctx context.Context, begin func(context.Context) (Tx, error), d Dialect, fsys fs.FS) error {
	ms, err := Load(fsys, Files)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	tx, err := begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if err := apply(ctx, tx, d, ms); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

func apply(ctx context.Context, tx Tx, d Dialect, ms []Migration) error {
	if err := tx.Exec(ctx, d.CreateTable); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	vs, err := tx.Versions(ctx)
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	applied := make(map[int]bool, len(vs))
	for _, v := range vs {
		applied[v] = true
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		if err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("apply %s: %w", m.Name, err)
		}
		if err := tx.Exec(ctx, d.Record, m.Version, m.Name, time.Now().Unix()); err != nil {
			return fmt.Errorf("record %s: %w", m.Name, err)
		}
	}
	return nil
}
