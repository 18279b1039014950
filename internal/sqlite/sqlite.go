// Package sqlite stores published snapshots in a SQLite file, the embedded default database.
// It uses the pure-Go modernc.org/sqlite driver, so the binary needs no C toolchain.
//
// The file is in WAL mode: readers never block on the writer and each reader sees one
// committed snapshot. Writes go through a pool of one connection whose transactions begin
// IMMEDIATE, so two writers (two processes, or a publish racing a migration) queue on the
// busy timeout instead of failing halfway with SQLITE_BUSY on a lock upgrade. Reads go
// through a separate, larger pool opened query-only.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"time"

	sqlite3 "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/salesrank/salesrank/internal/store"
	sqlite3lib "modernc.org/sqlite/lib"
)

// DefaultKeep is how many snapshots a DB keeps (store.DefaultKeep).
const DefaultKeep = store.DefaultKeep

// busyTimeout bounds how long a connection waits for another one's lock. A publish of 100k
// rows takes well under a second, so ten seconds covers a slow disk without hanging forever.
const busyTimeout = 10 * time.Second

// DB is a salesrank store in one SQLite file. It is safe for concurrent use. Its Publish
// and CommitBatch are package store's, run in SQLite's dialect through BeginWrite.
type DB struct {
	*store.Core // Keep, Publish, CommitBatch

	path  string
	write *sql.DB // one connection: SQLite has one writer at a time anyway
	read  *sql.DB

	// cacheShrunk is set while the write connection's page cache is shrunk for a large
	// batch (see writeTx.InsertPartials); the next write transaction restores it if the
	// batch's could not. Only the holder of the one write connection touches it.
	cacheShrunk bool

	ckpt *checkpointer
}

// The write connection's page cache, in SQLite's units (negative: KiB): cacheKiB normally,
// batchCacheKiB while a batch stores more than batchCacheAbove bytes of partial sums.
const (
	cacheKiB        = 64 << 10
	batchCacheKiB   = 4 << 10
	batchCacheAbove = 16 << 20
)

// Open opens the SQLite file at path, creating it if needed (its folder must exist), and
// brings its schema up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || path == ":memory:" {
		// A private in-memory database would differ between the read and write pools.
		return nil, fmt.Errorf("open sqlite: path must name a file, got %q", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db := &DB{path: abs}
	db.Core = store.New(backend{db})
	db.Core.EndInPlace = true // Load reads every snapshot by its rows' ranges

	// journal_mode=WAL is persistent in the file, but setting it on every write connection
	// costs nothing and makes a fresh file WAL before the first table is written.
	// A 64 MiB page cache holds the indexes a 100k-row publish touches; at the default
	// 2 MiB, a third of its time went to re-reading pages.
	// synchronous stays at its default FULL: one fsync an hour is cheap and a committed
	// snapshot (and, later, the manifest of objects taken) must survive a power cut.
	db.write, err = sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
			"journal_mode(WAL)",
			"foreign_keys(1)",
			fmt.Sprintf("cache_size(%d)", -cacheKiB),
			fmt.Sprintf("wal_autocheckpoint(%d)", walAutocheckpoint),
		},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	db.write.SetMaxOpenConns(1)
	db.write.SetMaxIdleConns(1)
	db.write.SetConnMaxLifetime(0)
	db.write.SetConnMaxIdleTime(0)

	// A file that another connection is switching to WAL at this moment answers
	// SQLITE_BUSY at once, without waiting for the busy timeout: retry within it.
	for deadline := time.Now().Add(busyTimeout); ; {
		err = db.migrate(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}

	// Readers are opened after the migration so that they find a WAL file with a schema.
	// query_only turns a stray write on the read path into an error rather than a lock.
	db.read, err = sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
			"query_only(1)",
		},
	}))
	if err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	db.read.SetMaxOpenConns(n)
	db.read.SetMaxIdleConns(n)
	db.read.SetConnMaxLifetime(0)
	db.read.SetConnMaxIdleTime(0)
	if err := db.read.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	if db.ckpt, err = startCheckpointer(abs); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	return db, nil
}

// dsn builds the driver's data source name for an absolute path. It is a file: URI so that a
// path holding '?', '#' or '%' is escaped rather than cut at the first '?'.
func dsn(abs string, q url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), OmitHost: true}
	return u.String() + "?" + q.Encode()
}

// isBusy reports whether err is SQLITE_BUSY (or one of its extended codes).
func isBusy(err error) bool {
	var se *sqlite3.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3lib.SQLITE_BUSY
}

// Path returns the absolute path of the database file.
func (db *DB) Path() string { return db.path }

// Close closes both connection pools.
func (db *DB) Close() error {
	var errs []error
	if db.ckpt != nil {
		errs = append(errs, db.ckpt.close())
	}
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	if db.write != nil {
		errs = append(errs, db.write.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite %s: %w", db.path, err)
	}
	return nil
}
