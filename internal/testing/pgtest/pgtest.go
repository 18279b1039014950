// Package pgtest gives a test its own PostgreSQL schema in the database that
// SALESRANK_TEST_POSTGRES names, so tests can run in parallel and again without cleaning up
// by hand. A test that needs PostgreSQL skips, with a message, when the variable is unset
// (a laptop); .ci/run sets it, so CI always runs them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env is the variable that names the test database.
const Env = "SALESRANK_TEST_POSTGRES"

// Schema creates a fresh schema named prefix + random hex in the $SALESRANK_TEST_POSTGRES
// database and returns a DSN that selects it (search_path; application_name too, so a test
// can find its own sessions in pg_stat_activity) and its name. The schema is dropped when
// t ends: after the processes using it, since cleanups registered later run first. Without
// the variable, t is skipped.
func Schema(t testing.TB, prefix string) (dsn, schema string) {
	t.Helper()
	base := os.Getenv(Env)
	if base == "" {
		t.Skipf("%s is not set: skipping the PostgreSQL case (set it to a database URL, e.g. "+
			"postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", Env)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema = prefix + hex.EncodeToString(b)
	exec(t, base, `CREATE SCHEMA `+schema, true)
	t.Cleanup(func() { exec(t, base, `DROP SCHEMA `+schema+` CASCADE`, false) })
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return u.String(), schema
}

// exec runs one statement on a connection of its own; fatal decides how a failure ends t.
func exec(t testing.TB, dsn, sql string, fatal bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fail := t.Errorf
	if fatal {
		fail = t.Fatalf
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		fail("%s: connect: %v", sql, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		fail("%s: %v", sql, err)
	}
}
