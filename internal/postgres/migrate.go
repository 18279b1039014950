package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/salesrank/salesrank/internal/migration"
)

// migrations holds the schema, one file per version: NNNN_name.sql, applied in order. A new
// table is a new file, never an edit. The versions follow package sqlite's.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrate applies the migrations the schema lacks, all in one transaction that first takes
// an advisory lock: a second process opening the database at the same moment waits for the
// first to commit, then finds nothing left to do. (Without the lock, two concurrent CREATE
// TABLE IF NOT EXISTS can both pass the check and one fail on a duplicate catalog row.)
// PostgreSQL's DDL is transactional, so a failed migration leaves nothing behind. A schema
// migrated by a newer binary is accepted. Most
// migrations only add tables and columns, which older serve replicas can live with during a
// rollout; 0003 reshapes sales_rank, and an older replica then fails to read new snapshots
// and keeps serving the one it holds, marked stale, until it is upgraded (see README).
func (db *DB) migrate(ctx context.Context) error {
	return migration.Run(ctx, db.beginMigrate, dialect, migrations)
}

// beginMigrate starts the migration's transaction and takes the migration lock.
func (db *DB) beginMigrate(ctx context.Context) (migration.Tx, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, `+schemaKey+`)`, lockMigrate); err != nil {
		rollback(tx)
		return nil, fmt.Errorf("lock: %w", err)
	}
	return migrateTx{tx}, nil
}

var dialect = migration.Dialect{
	CreateTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at BIGINT NOT NULL -- unix seconds
	)`,
	Record: `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
}

// migrateTx is migration.Tx on a pgx transaction. A file of several statements runs as
// one call: without arguments, pgx sends it with the simple protocol.
type migrateTx struct{ tx pgx.Tx }

func (m migrateTx) Commit(ctx context.Context) error { return m.tx.Commit(ctx) }
func (m migrateTx) Rollback()                        { rollback(m.tx) }

func (m migrateTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := m.tx.Exec(ctx, query, args...)
	return err
}

func (m migrateTx) Versions(ctx context.Context) ([]int, error) {
	rows, err := m.tx.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}
