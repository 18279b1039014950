package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/salesrank/salesrank/internal/migration"
	"github.com/salesrank/salesrank/internal/testing/storetest"
)

// TestPostgresMigrateSharedRows opens a schema written before migration 0003, when every
// snapshot had its own sales_rank rows with a rank, and checks that the migrated schema reads
// back the same snapshots and keeps ids unique.
func TestPostgresMigrateSharedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, _ := testDSN(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migration.Load(migrations, migration.Files)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:2] {
		if _, err := conn.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL);
		INSERT INTO schema_migrations VALUES (1, '0001_init', 0), (2, '0002_intake', 0);
		INSERT INTO categories VALUES (7, 0), (8, 0);
		INSERT INTO products VALUES (1, 0), (2, 0), (3, 0);
		INSERT INTO snapshots OVERRIDING SYSTEM VALUE VALUES (2, 7200, -597600, 3600, 10, 5, 2, 2), (3, 10800, -594000, 3600, 10, 6, 2, 3);
		INSERT INTO snapshot_categories VALUES (2, 7), (2, 8), (3, 7), (3, 8);
		INSERT INTO sales_rank VALUES (3, 2, 7, 1, 1, 50), (4, 2, 7, 2, 2, 40),
			(5, 3, 7, 1, 2, 60), (6, 3, 7, 2, 1, 50), (7, 3, 8, 1, 3, 5);
		SELECT setval(pg_get_serial_sequence('snapshots', 'id'), 3);
		SELECT setval(pg_get_serial_sequence('sales_rank', 'id'), 9);`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	db := openDSN(t, dsn)
	storetest.CheckMigratedSharedRows(t, db)
	checkSharedRows(t, db)
}
