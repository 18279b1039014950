// Package postgres stores published snapshots and the ranker's intake in PostgreSQL, the
// production database: one primary that the ranker writes, and that serve replicas (or its
// read replicas) read. It speaks the same contract as package sqlite (see storetest) with
// the pgx driver and its pool.
//
// Every write (package store's Publish, CommitBatch, ReplacePartials and
// DeletePartialsBefore) takes a transaction-level advisory lock, so they run one at a time
// as SQLite's do: the ranker is one process anyway, and a single
// writer keeps "already taken?" checks, id reservations and pruning simple and exact.
// Readers never take it and never wait for a writer: Current reads in one REPEATABLE READ
// transaction, so it sees one committed snapshot whole even while another commits.
//
// Advisory locks are per database, not per schema, so their keys mix in the name of the
// current schema: two deployments in two schemas of one database do not contend. A
// connection pooler in transaction mode (PgBouncer) breaks the session-level ranker lock and
// LISTEN; point the ranker and Watch at PostgreSQL itself or a session-mode pool.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/salesrank/salesrank/internal/store"
)

// DefaultKeep is how many snapshots a DB keeps (store.DefaultKeep).
const DefaultKeep = store.DefaultKeep

// The first halves of the advisory lock keys this package takes; the second half is a hash
// of the current schema. "SR" and a number, so that an operator reading pg_locks (classid,
// objid, objsubid = 2) can tell them from other applications' locks.
const (
	lockMigrate int32 = 0x5352_0001 // transaction lock around migrations
	lockWrite   int32 = 0x5352_0002 // transaction lock around every write
	lockRanker  int32 = 0x5352_0003 // session lock held by the active ranker
)

// schemaKey is the second half of an advisory lock key. coalesce: with no existing schema
// on the search_path current_schema() is NULL, and pg_advisory_lock(k, NULL) would return
// NULL without locking anything.
const schemaKey = `hashtext(coalesce(current_schema(), ''))`

// defaultConnectTimeout bounds a connection attempt when the DSN sets none (pgx waits for
// ever by default), so that a wrong host fails a command instead of hanging it.
const defaultConnectTimeout = 10 * time.Second

// DB is a salesrank store in a PostgreSQL database. It is safe for concurrent use. Its
// Publish and CommitBatch are package store's, run in PostgreSQL's dialect through
// BeginWrite.
type DB struct {
	*store.Core // Keep, Publish, CommitBatch

	// Logger, if set, receives Watch's reconnections.
	Logger *slog.Logger

	pool *pgxpool.Pool
	desc string
}

// Open connects to the database that dsn names (a postgres:// URL or a key=value string;
// search_path and other settings may be given as URL parameters) and brings its schema up
// to date. Several processes may open one database at once: migrations run one at a time.
// Errors never contain the password.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", parseError(err))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "salesrank"
	}
	db := &DB{desc: describe(cfg.ConnConfig)}
	db.Core = store.New(backend{db})
	db.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", db.desc, err)
	}
	if err := db.migrate(ctx); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("open %s: %w", db.desc, err)
	}
	return db, nil
}

// parseError drops what a parse error may quote of the DSN. pgx masks passwords in the
// strings it can parse, but the url package's error quotes the whole URL verbatim.
func parseError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return errors.New("the connection URL does not parse (check its percent-escapes)")
	}
	return err
}

// describe names a database for logs and errors: user, host, port, database and the
// search_path if set, never the password.
func describe(c *pgx.ConnConfig) string {
	s := fmt.Sprintf("PostgreSQL %s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
	if sp := c.RuntimeParams["search_path"]; sp != "" {
		s += " (search_path " + sp + ")"
	}
	return s
}

// Describe names the database: user, host, port, database and search_path, without the
// password.
func (db *DB) Describe() string { return db.desc }

// Close closes the connection pool, waiting for connections in use to be returned.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", db.desc, err)
	}
	return nil
}

// beginWrite starts a write transaction holding the write lock (see the package comment).
func (db *DB) beginWrite(ctx context.Context) (pgx.Tx, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, `+schemaKey+`)`, lockWrite); err != nil {
		rollback(tx)
		return nil, fmt.Errorf("write lock: %w", err)
	}
	return tx, nil
}

// rollbackTimeout bounds a rollback, which runs after the caller's context may be done.
const rollbackTimeout = 5 * time.Second

// rollback ends tx if it is still open, on a context of its own: the caller's may be the
// cancelled one that made the transaction fail. If the rollback fails too, the pool closes
// the connection rather than reuse one inside a transaction, and the server aborts it.
func rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	tx.Rollback(ctx) // an error after Commit (ErrTxClosed) is expected and meaningless
}

// logger returns db.Logger or one that discards.
func (db *DB) logger() *slog.Logger { return cmp.Or(db.Logger, slog.New(slog.DiscardHandler)) }
