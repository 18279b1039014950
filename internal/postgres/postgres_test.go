package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/migration"
	"github.com/salesrank/salesrank/internal/testing/storetest"
)

// envDSN names the database the tests run against. Each test works in a schema of its own,
// created and dropped around it, so tests run in parallel and leave nothing behind.
const envDSN = "SALESRANK_TEST_POSTGRES"

// testDSN returns the DSN of a fresh, empty schema (dropped when tb ends) and its name.
func testDSN(tb testing.TB) (dsn, schema string) {
	tb.Helper()
	base := os.Getenv(envDSN)
	if base == "" {
		tb.Skipf("%s is not set: skipping the PostgreSQL tests (set it to a database URL, e.g. "+
			"postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", envDSN)
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("%s: %v", envDSN, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema = "salesrank_test_" + hex.EncodeToString(b)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", envDSN, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema) // lets a test find its own sessions in pg_stat_activity
	u.RawQuery = q.Encode()
	return u.String(), schema
}

// openTemp opens a DB on a fresh schema, closed when tb ends.
func openTemp(tb testing.TB) *DB {
	tb.Helper()
	dsn, _ := testDSN(tb)
	return openDSN(tb, dsn)
}

func openDSN(tb testing.TB, dsn string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() }) // before the schema is dropped: cleanups run last first
	return db
}

func TestPostgresContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Store {
		db := openTemp(t)
		t.Cleanup(func() { checkSharedRows(t, db) })
		return db
	})
}

func TestPostgresIntakeContract(t *testing.T) {
	t.Parallel()
	storetest.RunIntake(t, func(t *testing.T) storetest.Intake { return openTemp(t) })
}

// TestPostgresConcurrentOpen opens one fresh schema from 8 handles at once, as serve
// replicas and a ranker started together do: the migrations run once, and every handle works.
func TestPostgresConcurrentOpen(t *testing.T) {
	t.Parallel()
	dsn, _ := testDSN(t)
	const n = 8
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dbs[i], errs[i] = Open(context.Background(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(func() { dbs[i].Close() })
	}
	ms, _ := migration.Load(migrations, migration.Files)
	var count int
	if err := dbs[0].pool.QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", count, len(ms))
	}
	for i, db := range dbs {
		snap := &salesrank.Snapshot{Window: salesrank.WindowEnding(time.Unix(int64(i+1)*3600, 0)), Interval: time.Hour, Top: 1}
		if _, err := db.Publish(context.Background(), snap, []int32{int32(i)}, nil); err != nil {
			t.Fatalf("Publish on handle %d: %v", i, err)
		}
	}
	got, err := dbs[0].Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Rankings) != 1 || got.Rankings[0].CategoryID != n-1 {
		t.Errorf("Current on handle 0 = %+v, want the last handle's snapshot", got)
	}
	// Opening again, with everything applied, is a no-op.
	openDSN(t, dsn)
}

// counts renders the row counts of every table, so that "nothing changed" is one comparison.
func counts(t *testing.T, db *DB) string {
	t.Helper()
	var s string
	err := db.pool.QueryRow(context.Background(), `SELECT concat_ws('/',
		(SELECT count(*) FROM snapshots), (SELECT count(*) FROM snapshot_categories),
		(SELECT count(*) FROM sales_rank), (SELECT count(*) FROM categories),
		(SELECT count(*) FROM products), (SELECT count(*) FROM rejected_lines),
		(SELECT count(*) FROM batches), (SELECT count(*) FROM objects), (SELECT count(*) FROM partials))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPostgresFailures aborts a publication and a batch at each of their steps: nothing of
// either may be left.
func TestPostgresFailures(t *testing.T) {
	t.Parallel()
	storetest.RunFailures(t, func(t *testing.T) storetest.Failing { return openTemp(t) },
		func(t *testing.T, s storetest.Failing) string { return counts(t, s.(*DB)) },
		func(t *testing.T, s storetest.Failing) {
			_, err := s.(*DB).pool.Exec(context.Background(), `TRUNCATE rejected_lines, snapshot_categories, sales_rank,
				snapshots, products, categories, objects, partials, batches CASCADE`)
			if err != nil {
				t.Fatal(err)
			}
		})
}

// TestPostgresIDsNotReused checks that a pruned snapshot's ids are not handed out again
// (storetest.CheckIDsNotReused).
func TestPostgresIDsNotReused(t *testing.T) {
	t.Parallel()
	db := openTemp(t)
	db.Keep = 1
	storetest.CheckIDsNotReused(t, db)
}

// mixSnapshot is snapshot number i: every value in it is derived from i, so that a reader
// can tell from any one row which snapshot it came from.
func mixSnapshot(i int) (*salesrank.Snapshot, []int32) {
	s := &salesrank.Snapshot{
		Window:   salesrank.WindowEnding(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)),
		Interval: time.Hour,
		Top:      10,
	}
	var known []int32
	for c := range 20 + i%7 { // the number of categories varies too
		known = append(known, int32(c))
		var entries []salesrank.Entry
		for r := range (c + i) % 11 {
			entries = append(entries, salesrank.Entry{ProductID: int64(i*1000 + r), TotalSold: int64(100 - r)})
		}
		s.Rankings = append(s.Rankings, salesrank.Ranking{CategoryID: int32(c), Entries: entries})
	}
	return s, known
}

// TestPostgresReadersNeverSeeAMix publishes 200 snapshots while readers load the current one
// over and over: every snapshot read must be whole, one publication's rows and nothing else.
func TestPostgresReadersNeverSeeAMix(t *testing.T) {
	t.Parallel()
	const publishes, readers = 200, 4
	db := openTemp(t)
	db.Keep = 1 // prune hardest: a reader whose rows came from a pruned snapshot would see none
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		reads = map[int64]int{}
	)
	errs := make(chan error, readers)
	for range readers {
		wg.Go(func() {
			for ctx.Err() == nil {
				got, err := db.Current(ctx)
				if errors.Is(err, salesrank.ErrNoSnapshot) || ctx.Err() != nil {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				i := int(got.Window.End.Sub(base) / time.Hour)
				want, _ := mixSnapshot(i)
				if len(got.Rankings) != len(want.Rankings) {
					errs <- fmt.Errorf("snapshot %d (number %d): %d categories, want %d", got.ID, i, len(got.Rankings), len(want.Rankings))
					return
				}
				for c, r := range got.Rankings {
					w := want.Rankings[c].Entries
					if len(r.Entries) != len(w) {
						errs <- fmt.Errorf("snapshot %d (number %d) category %d: %d entries, want %d", got.ID, i, c, len(r.Entries), len(w))
						return
					}
					for j, e := range r.Entries {
						if e.ProductID != w[j].ProductID || e.TotalSold != w[j].TotalSold {
							errs <- fmt.Errorf("snapshot %d (number %d) category %d rank %d: product %d, want %d: rows of another snapshot",
								got.ID, i, c, j+1, e.ProductID, w[j].ProductID)
							return
						}
					}
				}
				mu.Lock()
				reads[got.ID]++
				mu.Unlock()
			}
		})
	}
	for i := range publishes {
		snap, known := mixSnapshot(i)
		if _, err := db.Publish(context.Background(), snap, known, nil); err != nil {
			cancel()
			wg.Wait()
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for _, n := range reads {
		total += n
	}
	if len(reads) < 10 {
		t.Errorf("readers saw %d distinct snapshots of %d, want the reads to interleave with the publishes", len(reads), publishes)
	}
	t.Logf("%d whole reads of %d distinct snapshots across %d publishes", total, len(reads), publishes)
}

// watch runs db.Watch until the test ends and returns the ids it hears of.
func watch(t *testing.T, db *DB) <-chan int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ids := make(chan int64, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.Watch(ctx, func(id int64) {
			select {
			case ids <- id:
			default:
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ids
}

// hangBound is how long await waits before calling a missing notification lost. It only
// catches a hang: Watch hears of a publish within a round trip of its commit.
const hangBound = time.Minute

// await waits for id on ids (skipping others: other tests' schemas notify the same
// channel), and fails the test if it does not come within hangBound.
func await(t *testing.T, ids <-chan int64, id int64) time.Duration {
	t.Helper()
	start := time.Now()
	timeout := time.After(hangBound)
	for {
		select {
		case got := <-ids:
			if got == id {
				return time.Since(start)
			}
		case <-timeout:
			t.Fatalf("no notification of id %d within %v", id, hangBound)
		}
	}
}

// TestPostgresNotify checks that a publish is heard of through a notification (Watch
// reports nothing else: no polling stands in for it), and that Watch comes back, saying so
// with a 0, after its connection is killed. How long a notification took is logged.
func TestPostgresNotify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, schema := testDSN(t)
	db := openDSN(t, dsn)
	ids := watch(t, db)
	await(t, ids, 0) // listening

	publish := func(i int) int64 {
		snap, known := mixSnapshot(i)
		id, err := db.Publish(ctx, snap, known, nil)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	id := publish(0)
	took := await(t, ids, id)
	t.Logf("notified of snapshot %d %v after Publish returned", id, took)

	// A backfill notifies the id that stays current.
	snap, known := mixSnapshot(3)
	snap.Window = salesrank.WindowEnding(snap.Window.End.Add(-10 * time.Hour))
	if _, err := db.Publish(ctx, snap, known, nil); err != nil {
		t.Fatal(err)
	}
	await(t, ids, id)

	// Kill the listening session, as a server restart or a failover would.
	var killed int
	err := db.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND query LIKE 'LISTEN%'`, schema).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminate the listening session: killed %d, %v; want 1", killed, err)
	}
	await(t, ids, 0) // listening again
	id = publish(1)
	await(t, ids, id)
}

// TestPostgresRankerLock checks that the advisory lock excludes a second holder, is released
// when its holder unlocks or its connection drops, and that the holder notices the loss.
func TestPostgresRankerLock(t *testing.T) {
	t.Parallel()
	dsn, _ := testDSN(t)
	db1, db2 := openDSN(t, dsn), openDSN(t, dsn) // two processes
	a, b := db1.RankerLock(), db2.RankerLock()
	t.Cleanup(func() { a.Unlock(); b.Unlock() })
	try := func(name string, l *AdvisoryLock, want bool) {
		t.Helper()
		got, err := l.TryLock()
		if err != nil || got != want {
			t.Fatalf("%s.TryLock() = %v, %v; want %v", name, got, err, want)
		}
	}
	try("a", a, true)
	try("b", b, false)
	try("a", a, true) // held: verified, still true
	try("b", b, false)

	if err := a.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	try("b", b, true)
	try("a", a, false)

	// b's connection closes under it, as a network failure would: the server releases the
	// lock, a takes it, and b notices it lost it.
	pidB := b.conn.PgConn().PID()
	b.conn.Close(context.Background())
	waitGone(t, db1, pidB) // the server ends a closed session asynchronously
	try("a", a, true)
	try("b", b, false)

	// The holder's session is killed from the server: the lock is released with it.
	pid := a.conn.PgConn().PID()
	if _, err := db1.pool.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	waitGone(t, db1, pid)
	try("b", b, true)
	try("a", a, false)
	if err := b.Unlock(); err != nil {
		t.Fatal(err)
	}
	try("a", a, true) // lost, then taken again once free

	// Another schema is another deployment: its ranker lock is another lock.
	other := openTemp(t)
	c := other.RankerLock()
	t.Cleanup(func() { c.Unlock() })
	try("c in another schema", c, true)
}

// waitGone waits for a terminated backend to end: pg_terminate_backend only signals it.
func waitGone(t *testing.T, db *DB, pid uint32) {
	t.Helper()
	for range 100 {
		var n int
		if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("backend %d did not end", pid)
}

// TestPostgresDescribeHidesPassword checks Describe and Open's errors for the password.
func TestPostgresDescribeHidesPassword(t *testing.T) {
	t.Parallel()
	dsn, schema := testDSN(t)
	u, _ := url.Parse(dsn)
	u.User = url.UserPassword(u.User.Username(), "s3cr3t") // trust authentication ignores it
	db := openDSN(t, u.String())
	if d := db.Describe(); strings.Contains(d, "s3cr3t") || !strings.Contains(d, u.Hostname()) || !strings.Contains(d, schema) {
		t.Errorf("Describe() = %q, want host and schema, no password", d)
	}
	for _, bad := range []string{
		"postgres://u:s3cr3t@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", // nothing listens
		"postgres://u:p%zzs3cr3t@h/db",                                         // unparsable
		"postgres://u:s3cr3t@127.0.0.1:1/db?sslmode=bogus",
	} {
		_, err := Open(context.Background(), bad)
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Open(%q) = %v, want an error without the password", bad, err)
		}
	}
}

// BenchmarkPostgresPublish publishes 100k sales_rank rows a time (storetest.BenchmarkPublish).
func BenchmarkPostgresPublish(b *testing.B) {
	storetest.BenchmarkPublish(b, func(b *testing.B) storetest.Store { return openTemp(b) })
}

// BenchmarkPostgresCurrent loads a 100k-row snapshot (storetest.BenchmarkCurrent).
func BenchmarkPostgresCurrent(b *testing.B) {
	storetest.BenchmarkCurrent(b, func(b *testing.B) storetest.Store { return openTemp(b) })
}

// BenchmarkPostgresCurrentID is what a poller pays per check (storetest.BenchmarkCurrentID).
func BenchmarkPostgresCurrentID(b *testing.B) {
	storetest.BenchmarkCurrentID(b, func(b *testing.B) storetest.Store { return openTemp(b) })
}

// checkSharedRows fails t if a sales_rank row outlived every snapshot that uses it, or if the
// open rows are not the latest publication's.
func checkSharedRows(t *testing.T, db *DB) {
	t.Helper()
	var dead, open, latest int64
	err := db.pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM sales_rank r WHERE NOT EXISTS
			(SELECT 1 FROM snapshots s WHERE s.id BETWEEN r.first_snapshot_id AND r.last_snapshot_id)),
		(SELECT count(*) FROM sales_rank WHERE last_snapshot_id = 9223372036854775807),
		coalesce((SELECT entries FROM snapshots ORDER BY id DESC LIMIT 1), 0)`).Scan(&dead, &open, &latest)
	if err != nil {
		t.Fatalf("shared rows: %v", err)
	}
	if dead != 0 || open != latest {
		t.Errorf("sales_rank: %d rows that no stored snapshot uses, %d open rows for a latest publication of %d; want 0 and equal", dead, open, latest)
	}
}
