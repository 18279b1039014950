// Package beamtest holds what the Beam module's tests share: landing log objects in a
// folder, and comparing two SQLite databases table by table.
package beamtest

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the "sqlite" driver
)

// WriteObjects lands objects in the logs folder, under prefix.
func WriteObjects(t testing.TB, dir, prefix string, objects map[string][]byte) {
	t.Helper()
	for k, v := range objects {
		path := filepath.Join(dir, prefix, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, v, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// dumpQueries read everything a run leaves in the database but the clock's readings.
var dumpQueries = map[string]string{
	"snapshots":           `SELECT id, cutoff, window_start, interval_seconds, top_k, categories, entries FROM snapshots ORDER BY id`,
	"snapshot_sales_rank": `SELECT snapshot_id, category_id, rank, product_id, total_sold, id FROM snapshot_sales_rank ORDER BY 1, 2, 3`,
	"snapshot_categories": `SELECT snapshot_id, category_id FROM snapshot_categories ORDER BY 1, 2`,
	"rejected_lines":      `SELECT snapshot_id, batch_id, object, line, reason, hex(text) FROM rejected_lines ORDER BY object, line`,
	"objects":             `SELECT key, size, batch_id, lines_read, lines_rejected, lines_too_late FROM objects ORDER BY key`,
	"partials":            `SELECT hour, batch_id, hex(data) FROM partials ORDER BY hour, batch_id`,
	"categories":          `SELECT id FROM categories ORDER BY id`,
	"products":            `SELECT id FROM products ORDER BY id`,
}

// CompareDatabases fails t at the first row where two SQLite files differ.
func CompareDatabases(t testing.TB, what, a, b string) {
	t.Helper()
	da, db := dump(t, a), dump(t, b)
	for table := range dumpQueries {
		ra, rb := da[table], db[table]
		for i := range max(len(ra), len(rb)) {
			var x, y string
			if i < len(ra) {
				x = ra[i]
			}
			if i < len(rb) {
				y = rb[i]
			}
			if x != y {
				t.Fatalf("%s: table %s differs at row %d of %d/%d:\n%s %q\n%s %q", what, table, i, len(ra), len(rb), a, x, b, y)
			}
		}
	}
}

func dump(t testing.TB, path string) map[string][]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]string{}
	for table, q := range dumpQueries {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, v := range vals {
				if i > 0 {
					b.WriteByte('\t')
				}
				fmt.Fprint(&b, v)
			}
			out[table] = append(out[table], b.String())
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}
