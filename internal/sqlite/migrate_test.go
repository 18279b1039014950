package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/salesrank/salesrank/internal/migration"
	"github.com/salesrank/salesrank/internal/testing/storetest"
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
	ms, err := migration.Load(migrations, migration.Files)
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
		INSERT INTO snapshots VALUES (2, 7200, -597600, 3600, 10, 5, 2, 2), (3, 10800, -594000, 3600, 10, 6, 2, 3);
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
	storetest.CheckMigratedSharedRows(t, db)
	checkIntegrity(t, db)
}
