package sqlite

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/migration"
	"github.com/salesrank/salesrank/internal/testing/storetest"
)

func openTemp(tb testing.TB) *DB {
	tb.Helper()
	db, err := Open(context.Background(), filepath.Join(tb.TempDir(), "salesrank.db"))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		db := openTemp(t)
		t.Cleanup(func() { checkIntegrity(t, db) })
		return db
	})
}

func checkIntegrity(t *testing.T, db *DB) {
	t.Helper()
	rows, err := db.write.Query(`PRAGMA integrity_check`)
	if err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			t.Fatalf("integrity_check: %v", err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) != 1 || msgs[0] != "ok" {
		t.Errorf("integrity_check = %q, want ok", msgs)
	}
	var fk int
	if err := db.write.QueryRow(`SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fk); err != nil {
		t.Fatalf("foreign_key_check: %v", err)
	}
	if fk != 0 {
		t.Errorf("foreign_key_check found %d violations", fk)
	}
	// sales_rank declares no foreign keys (migration 0005): every row's category and
	// product must still be there.
	var orphans int
	if err := db.write.QueryRow(`SELECT count(*) FROM sales_rank r
		WHERE NOT EXISTS (SELECT 1 FROM categories c WHERE c.id = r.category_id)
		   OR NOT EXISTS (SELECT 1 FROM products p WHERE p.id = r.product_id)`).Scan(&orphans); err != nil {
		t.Fatalf("sales_rank parents: %v", err)
	}
	if orphans != 0 {
		t.Errorf("sales_rank: %d rows name a category or product the tables lack", orphans)
	}
	// Shared rows: none outlives every snapshot that uses it, and the open ones (ending at
	// the latest publication or later) are the latest publication's.
	var dead, open, latest int
	err = db.write.QueryRow(`SELECT
		(SELECT count(*) FROM sales_rank r WHERE NOT EXISTS
			(SELECT 1 FROM snapshots s WHERE s.id BETWEEN r.first_snapshot_id AND r.last_snapshot_id)),
		(SELECT count(*) FROM sales_rank WHERE last_snapshot_id >= (SELECT max(id) FROM snapshots)),
		coalesce((SELECT entries FROM snapshots ORDER BY id DESC LIMIT 1), 0)`).Scan(&dead, &open, &latest)
	if err != nil {
		t.Fatalf("shared rows: %v", err)
	}
	if dead != 0 || open != latest {
		t.Errorf("sales_rank: %d rows that no stored snapshot uses, %d open rows for a latest publication of %d; want 0 and equal", dead, open, latest)
	}
}

// TestQueryPlans checks that SQLite searches sales_rank per category in each statement that
// reads or writes rows by last_snapshot_id: no index starts with it, and reading the whole
// table would cost a publication or a replica's load time in proportion to the history kept.
func TestQueryPlans(t *testing.T) {
	db := openTemp(t)
	for name, q := range map[string]string{
		"snapshotRowsSQL": snapshotRowsSQL, "openRowsSQL": openRowsSQL,
		"setLastSQL": setLastSQL, "deleteClosedSQL": deleteClosedSQL, "deleteUnusedSQL": deleteUnusedSQL,
	} {
		rows, err := db.write.Query("EXPLAIN QUERY PLAN "+q, 1, 1, 1, "[1]")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		searched := false
		for _, d := range plan {
			if strings.HasPrefix(d, "SCAN sales_rank") || strings.HasPrefix(d, "SCAN r") {
				t.Errorf("%s reads the whole of sales_rank: %q", name, plan)
			}
			searched = searched || strings.Contains(d, "USING PRIMARY KEY (category_id=?")
		}
		if !searched {
			t.Errorf("%s does not search sales_rank by category: %q", name, plan)
		}
	}
}

func TestSettings(t *testing.T) {
	db := openTemp(t)
	for _, tc := range []struct {
		pool, pragma, want string
	}{
		{"write", "journal_mode", "wal"},
		{"write", "foreign_keys", "1"},
		{"write", "busy_timeout", "10000"},
		{"read", "journal_mode", "wal"},
		{"read", "query_only", "1"},
		{"read", "busy_timeout", "10000"},
	} {
		pool := db.write
		if tc.pool == "read" {
			pool = db.read
		}
		var got string
		if err := pool.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
			t.Fatalf("%s pool: PRAGMA %s: %v", tc.pool, tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("%s pool: PRAGMA %s = %q, want %q", tc.pool, tc.pragma, got, tc.want)
		}
	}
}

// TestConcurrentOpen opens one new file from many handles at once, as two processes starting
// together would: the migrations must be applied exactly once and every handle must work.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "race.db")
	const n = 8
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dbs[i], errs[i] = Open(context.Background(), path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	ms, _ := migration.Load(migrations, migration.Files)
	var count int
	if err := dbs[0].read.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", count, len(ms))
	}
	// Every handle can write, and sees the others' writes.
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
	checkIntegrity(t, dbs[0])
}

// TestFailures aborts a publication and a batch at each of their steps: nothing of either
// may be left, and the file stays whole.
func TestFailures(t *testing.T) {
	storetest.RunFailures(t, func(t *testing.T) storetest.Failing {
		db := openTemp(t)
		t.Cleanup(func() { checkIntegrity(t, db) })
		return db
	}, func(t *testing.T, s storetest.Failing) string {
		var n string
		err := s.(*DB).read.QueryRow(`SELECT concat_ws('/',
			(SELECT count(*) FROM snapshots), (SELECT count(*) FROM snapshot_categories),
			(SELECT count(*) FROM sales_rank), (SELECT count(*) FROM categories),
			(SELECT count(*) FROM products), (SELECT count(*) FROM rejected_lines),
			(SELECT count(*) FROM batches), (SELECT count(*) FROM objects), (SELECT count(*) FROM partials))`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}, func(t *testing.T, s storetest.Failing) {
		for _, table := range []string{"rejected_lines", "snapshot_categories", "sales_rank", "snapshots",
			"products", "categories", "objects", "partials", "batches"} {
			if _, err := s.(*DB).write.Exec(`DELETE FROM ` + table); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestIDsNotReused checks that a pruned snapshot's ids are not handed out again
// (storetest.CheckIDsNotReused).
func TestIDsNotReused(t *testing.T) {
	db := openTemp(t)
	db.Keep = 1
	storetest.CheckIDsNotReused(t, db)
}

// BenchmarkPublish publishes 100k sales_rank rows a time (storetest.BenchmarkPublish).
func BenchmarkPublish(b *testing.B) {
	storetest.BenchmarkPublish(b, func(b *testing.B) storetest.Store { return openTemp(b) })
}

// BenchmarkCurrent loads a 100k-row snapshot (storetest.BenchmarkCurrent).
func BenchmarkCurrent(b *testing.B) {
	storetest.BenchmarkCurrent(b, func(b *testing.B) storetest.Store { return openTemp(b) })
}

// BenchmarkCurrentID is what a poller pays per check (storetest.BenchmarkCurrentID).
func BenchmarkCurrentID(b *testing.B) {
	storetest.BenchmarkCurrentID(b, func(b *testing.B) storetest.Store { return openTemp(b) })
}

// TestRowsEndInPlace checks what an hourly refresh writes into sales_rank: a publication
// that replaces most rows leaves them ending at itself; the same lists published again
// (the full ranks after the top lists) extend them; the next hour ends the rows that
// changed where they stand and extends the rest; and a refresh that changes few rows
// leaves its rows open. Two handles on the file publish in turn, as two processes would,
// each reading the other's rows back from the file.
func TestRowsEndInPlace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "salesrank.db")
	var handles []*DB
	for range 2 {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		db.Keep = 10
		handles = append(handles, db)
	}
	known := []int32{1, 2, 3}
	var lists func(hour int) *salesrank.Snapshot
	lists = func(hour int) *salesrank.Snapshot {
		rng := rand.New(rand.NewPCG(uint64(hour), 3))
		totals := salesrank.Totals{}
		for _, c := range known {
			for p := range int64(10) {
				totals.Add(salesrank.Key{CategoryID: c, ProductID: p}, 1+rng.Int64N(1_000_000))
			}
		}
		if hour == 2 { // three of category 1's totals stay as they were in hour 1
			for _, e := range lists(1).Rankings[0].Entries[:3] {
				totals[salesrank.Key{CategoryID: 1, ProductID: e.ProductID}] = e.TotalSold
			}
		}
		return &salesrank.Snapshot{Window: salesrank.WindowEnding(time.Date(2026, 11, 20, hour, 0, 0, 0, time.UTC)),
			Interval: time.Hour, Top: 10, Rankings: salesrank.Rank(totals.All(), known, 10)}
	}
	published := map[int64]*salesrank.Snapshot{}
	publish := func(s *salesrank.Snapshot) int64 {
		t.Helper()
		id, err := handles[len(published)%2].Publish(ctx, s, known, nil)
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		published[id] = s
		return id
	}
	count := func(query string, args ...any) (n int64) {
		t.Helper()
		if err := handles[0].write.QueryRow(query, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}

	publish(lists(0)) // the first publication leaves its rows open
	if n := count(`SELECT count(*) FROM sales_rank WHERE last_snapshot_id = ?`, openEnd); n != 30 {
		t.Fatalf("first publication: %d open rows, want 30", n)
	}
	hour1 := lists(1)
	id1 := publish(hour1)
	if n := count(`SELECT count(*) FROM sales_rank WHERE first_snapshot_id = ? AND last_snapshot_id = ?`, id1, id1); n != 30 {
		t.Fatalf("hour 1: %d of its 30 rows end at it", n)
	}
	again := *hour1
	id2 := publish(&again)
	if n := count(`SELECT count(*) FROM sales_rank WHERE first_snapshot_id = ? AND last_snapshot_id = ?`, id1, id2); n != 30 {
		t.Fatalf("hour 1 again: %d of the 30 rows extended to it", n)
	}
	id3 := publish(lists(2))
	// Hour 2 kept three of category 1's rows, extended to end at it with the rest of the
	// hour's rows; hour 1's others end where they stood.
	if n := count(`SELECT count(*) FROM sales_rank WHERE first_snapshot_id = ? AND last_snapshot_id = ?`, id1, id3); n != 3 {
		t.Fatalf("hour 2: %d of hour 1's rows extended to it, want the 3 it kept", n)
	}
	if n := count(`SELECT count(*) FROM sales_rank WHERE first_snapshot_id = ? AND last_snapshot_id = ?`, id1, id2); n != 27 {
		t.Fatalf("hour 2: %d of hour 1's rows end at %d, want 27", n, id2)
	}
	// A refresh that keeps most rows (one total changed, as in a minute) leaves them open.
	minute := *published[id3]
	minute.Rankings = slices.Clone(minute.Rankings)
	minute.Rankings[2].Entries = slices.Clone(minute.Rankings[2].Entries)
	minute.Rankings[2].Entries[0].TotalSold++
	id4 := publish(&minute)
	if n := count(`SELECT count(*) FROM sales_rank WHERE last_snapshot_id = ?`, openEnd); n != 30 {
		t.Fatalf("a refresh that changed one row: %d open rows, want 30", n)
	}
	for _, id := range []int64{id1, id2, id3, id4} {
		s, err := handles[0].Snapshot(ctx, id)
		if err != nil {
			t.Fatalf("Snapshot(%d): %v", id, err)
		}
		if !reflect.DeepEqual(s.Rankings, published[id].Rankings) {
			t.Fatalf("snapshot %d reads back as %v, published as %v", id, s.Rankings, published[id].Rankings)
		}
	}
	checkIntegrity(t, handles[0])
}
