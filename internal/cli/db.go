package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/salesrank/salesrank/internal/flock"
	"github.com/salesrank/salesrank/internal/postgres"
	"github.com/salesrank/salesrank/internal/ranker"
	"github.com/salesrank/salesrank/internal/replica"
	"github.com/salesrank/salesrank/internal/sqlite"
)

// dbHelp says what --db accepts; it ends the errors of openDB so that a mistyped DSN is fixed
// without reading the docs.
const dbHelp = `--db (or SALESRANK_DB) takes a SQLite file as sqlite:PATH (sqlite:data/salesrank.db,
sqlite:/var/lib/salesrank.db), sqlite:///ABSOLUTE/PATH, or a bare PATH; or a PostgreSQL URL,
postgres://USER@HOST:PORT/DB?sslmode=require (the password is best given in PGPASSWORD or ~/.pgpass)`

// openDB opens the store that dsn names, creating a SQLite file and its folder if missing.
//
// Accepted forms:
//
//	sqlite:PATH            (or sqlite3:PATH) PATH taken verbatim, relative to the working directory or absolute
//	sqlite:///ABS/PATH     the URL form; its path is absolute (sqlite://HOST/… is an error)
//	PATH                   a value without a scheme is a SQLite file (C:\x.db and ./a:b.db too)
//	postgres://…           (or postgresql://…) a PostgreSQL database; search_path and other
//	                       settings may be URL parameters
//
// The URL form has no relative spelling because tools disagree on what sqlite://rel.db and
// sqlite:////abs.db mean; sqlite:PATH is unambiguous.
func openDB(ctx context.Context, dsn string) (store, error) {
	if isPostgres(dsn) {
		db, err := postgres.Open(ctx, strings.TrimSpace(dsn))
		if err != nil {
			// postgres.Open's errors name the host and database, never the password; the
			// DSN is echoed only redacted, so that a typo in it can be seen.
			return nil, fmt.Errorf("open database: PostgreSQL %s: %w", redactPostgres(dsn), err)
		}
		return postgresStore{db}, nil
	}
	path, err := sqlitePath(dsn)
	if err != nil {
		return nil, err
	}
	// The folder is created here rather than by sqlite.Open because only the command knows
	// the path came from an operator who expects "salesrank demo" to just work.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open database: create folder for %s: %w", path, err)
	}
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return sqliteStore{db}, nil
}

// store is what the subcommands need of a database, whichever backend --db names.
type store interface {
	ranker.Store
	replica.Source
	replica.Archive
	// RankerLock elects the one active ranker on this database.
	RankerLock() ranker.Lock
	// SetRetain sets how long hourly snapshots are kept (see store.Core.Retain).
	SetRetain(d time.Duration)
	// Describe names the database and its ranker lock for logs and errors.
	Describe() string
	Close() error
}

// sqliteStore is a SQLite file, whose ranker lock is a lock file beside it.
type sqliteStore struct{ *sqlite.DB }

func (s sqliteStore) RankerLock() ranker.Lock { return flock.NewFile(s.Path() + ".rank.lock") }

func (s sqliteStore) Describe() string {
	return fmt.Sprintf("SQLite file %s (ranker lock %s.rank.lock)", s.Path(), s.Path())
}

// postgresStore is a PostgreSQL database, whose ranker lock is a session advisory lock.
type postgresStore struct{ *postgres.DB }

func (s postgresStore) RankerLock() ranker.Lock { return s.DB.RankerLock() }

func (s postgresStore) Describe() string {
	return s.DB.Describe() + " (ranker lock: a session advisory lock in its schema)"
}

// isPostgres reports whether dsn is a postgres:// or postgresql:// URL.
func isPostgres(dsn string) bool {
	scheme, _, ok := strings.Cut(strings.TrimSpace(dsn), "://")
	return ok && (strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql"))
}

// redactPostgres is redact for PostgreSQL URLs: it also masks the password and sslpassword
// query parameters, which libpq-style URLs accept.
func redactPostgres(dsn string) string {
	u, err := url.Parse(strings.TrimSpace(dsn))
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	masked := false
	for k := range q {
		if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
			q[k] = []string{"xxxxx"}
			masked = true
		}
	}
	if masked {
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// sqlitePath returns the SQLite file path that dsn names, or an error that says how to fix it.
func sqlitePath(dsn string) (string, error) {
	dsn = strings.TrimSpace(dsn)
	if dsn == "" {
		return "", errors.New("no database given: " + dbHelp)
	}
	scheme, rest, hasScheme := strings.Cut(dsn, ":")
	// A one-letter "scheme" followed by a separator is a Windows drive (C:\data\x.db,
	// C:/x.db), which is a bare path; "u:secret@host/db" is not.
	drive := len(scheme) == 1 && (rest == "" || rest[0] == '\\' || rest[0] == '/')
	if !hasScheme || drive || strings.ContainsAny(scheme, `/\.`) {
		// A PostgreSQL keyword/value string ("host=h password=…") would otherwise become a
		// SQLite file named after the password.
		if strings.Contains(dsn, "=") && strings.ContainsAny(dsn, " \t") {
			return "", errors.New("database: this looks like a PostgreSQL keyword/value string, which --db does not take; write it as a postgres:// URL. " + dbHelp)
		}
		return dsn, nil
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		if strings.HasPrefix(rest, "//") {
			u, err := url.Parse(dsn)
			if err != nil {
				return "", fmt.Errorf("database %q: %w; %s", dsn, err, dbHelp)
			}
			if u.Host != "" || u.Path == "" {
				return "", fmt.Errorf("database %q: the URL form takes an absolute path, sqlite:///ABS/PATH; for a relative path write sqlite:PATH", dsn)
			}
			if u.RawQuery != "" {
				return "", fmt.Errorf("database %q: query parameters are not supported; the store sets its own", dsn)
			}
			return u.Path, nil
		}
		if rest == "" {
			return "", fmt.Errorf("database %q: no path; %s", dsn, dbHelp)
		}
		return rest, nil
	case "postgres", "postgresql":
		// postgres://… URLs never get here (openDB takes them first): this is "postgres:…"
		// without the slashes.
		return "", fmt.Errorf("database %q: write a PostgreSQL database as a URL, postgres://USER@HOST:5432/DB", redact(dsn))
	default:
		// Guessing that "mysql:…" or "user:pass@host/db" is a file name would quietly
		// create a stray file; a file whose name holds a colon can be written sqlite:NAME.
		// The rest is not echoed: it may hold a password that no URL parser would find.
		return "", fmt.Errorf("database: unknown scheme %q; %s", scheme, dbHelp)
	}
}

// redact hides a password in a URL so that an error message can be logged safely.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
