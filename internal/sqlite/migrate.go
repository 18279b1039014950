package sqlite

import (
	"context"
	"database/sql"
	"embed"

	"github.com/salesrank/salesrank/internal/migration"
)

// migrations holds the schema, one file per version: NNNN_name.sql, applied in order. A new
// table (the manifest of objects taken, hourly partial sums) is a new file, never an edit.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrate applies the migrations the file lacks, all in one IMMEDIATE transaction: a second
// process opening the same file at the same moment waits for the first to commit, then finds
// nothing left to do. A file migrated by a newer binary is accepted. Most
// migrations only add tables and columns, which older serve replicas can live with during a
// rollout; 0003 reshapes sales_rank, and an older replica then fails to read new snapshots
// and keeps serving the one it holds, marked stale, until it is upgraded (see README).
func (db *DB) migrate(ctx context.Context) error {
	return migration.Run(ctx, func(ctx context.Context) (migration.Tx, error) {
		tx, err := db.write.BeginTx(ctx, nil)
		return migrateTx{tx}, err
	}, dialect, migrations)
}

var dialect = migration.Dialect{
	CreateTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL -- unix seconds
	)`,
	Record: `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
}

// migrateTx is migration.Tx on a database/sql transaction.
type migrateTx struct{ tx *sql.Tx }

func (m migrateTx) Commit(context.Context) error { return m.tx.Commit() }
func (m migrateTx) Rollback()                    { m.tx.Rollback() }

func (m migrateTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := m.tx.ExecContext(ctx, query, args...)
	return err
}

func (m migrateTx) Versions(ctx context.Context) ([]int, error) {
	rows, err := m.tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, rows.Err()
}
