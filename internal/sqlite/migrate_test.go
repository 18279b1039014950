package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
)

// TestMigrateSharedRows opens a file written before migration 0003, when every snapshot had
// its own sales_rank rows with a rank, and checks that the migrated file reads back the same
// snapshots, that the current one's rows are open, and that ids stay unique.
func TestMigrateSharedRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", dsn(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:2] {
		if _, err := old.Exec(m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
	}
	if _, err := old.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);
		INSERT INTO schema_migrations VALUES (1, '0001_init', 0), (2, '0002_intake', 0);
		INSERT INTO categories VALUES (7, 0), (8, 0);
		INSERT INTO products VALUES (1, 0), (2, 0), (3, 0);
		-- Snapshot 1 (cutoff 3600) was pruned already: its rows took ids 1 and 2.
		INSERT INTO snapshots VALUES (2, 7200, 0, 3600, 10, 5, 2, 2), (3, 10800, 0, 3600, 10, 6, 2, 3);
		INSERT INTO snapshot_categories VALUES (2, 7), (2, 8), (3, 7), (3, 8);
		INSERT INTO sales_rank VALUES (3, 2, 7, 1, 1, 50), (4, 2, 7, 2, 2, 40),
			(5, 3, 7, 1, 2, 60), (6, 3, 7, 2, 1, 50), (7, 3, 8, 1, 3, 5);
		UPDATE sqlite_sequence SET seq = 9 WHERE name = 'sales_rank';`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open migrates: %v", err)
	}
	defer db.Close()
	want := map[int64][]salesrank.Ranking{
		2: {{CategoryID: 7, Entries: []salesrank.Entry{{ID: 3, ProductID: 1, TotalSold: 50}, {ID: 4, ProductID: 2, TotalSold: 40}}}, {CategoryID: 8, Entries: []salesrank.Entry{}}},
		3: {{CategoryID: 7, Entries: []salesrank.Entry{{ID: 5, ProductID: 2, TotalSold: 60}, {ID: 6, ProductID: 1, TotalSold: 50}}}, {CategoryID: 8, Entries: []salesrank.Entry{{ID: 7, ProductID: 3, TotalSold: 5}}}},
	}
	for id, rks := range want {
		got, err := db.Snapshot(ctx, id)
		if err != nil {
			t.Fatalf("Snapshot(%d): %v", id, err)
		}
		if len(got.Rankings) != len(rks) {
			t.Fatalf("snapshot %d: %d rankings, want %d", id, len(got.Rankings), len(rks))
		}
		for i, rk := range rks {
			g := got.Rankings[i]
			if g.CategoryID != rk.CategoryID || len(g.Entries) != len(rk.Entries) {
				t.Fatalf("snapshot %d: ranking %d = %+v, want %+v", id, i, g, rk)
			}
			for j := range rk.Entries {
				if g.Entries[j] != rk.Entries[j] {
					t.Errorf("snapshot %d category %d rank %d = %+v, want %+v", id, rk.CategoryID, j+1, g.Entries[j], rk.Entries[j])
				}
			}
		}
	}
	if cur, err := db.Current(ctx); err != nil || cur.ID != 3 {
		t.Fatalf("Current = %v, %v; want snapshot 3", cur, err)
	}
	// The next publication keeps the rows that did not change and numbers new ones after
	// the old high-water mark.
	next := &salesrank.Snapshot{
		Window: salesrank.WindowEnding(time.Unix(14400, 0)), Interval: time.Hour, Top: 10,
		Rankings: []salesrank.Ranking{
			{CategoryID: 7, Entries: []salesrank.Entry{{ProductID: 2, TotalSold: 60}, {ProductID: 1, TotalSold: 51}}},
			{CategoryID: 8, Entries: []salesrank.Entry{{ProductID: 3, TotalSold: 5}}},
		},
	}
	if _, err := db.Publish(ctx, next, []int32{7, 8}, nil); err != nil {
		t.Fatal(err)
	}
	if got := []int64{next.Rankings[0].Entries[0].ID, next.Rankings[0].Entries[1].ID, next.Rankings[1].Entries[0].ID}; got[0] != 5 || got[1] != 10 || got[2] != 7 {
		t.Errorf("row ids after the migration = %v, want [5 10 7]: kept, new above the old high-water mark 9, kept", got)
	}
	checkIntegrity(t, db)
}
