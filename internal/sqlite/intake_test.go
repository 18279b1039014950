package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/testing/storetest"
)

func TestIntakeContract(t *testing.T) {
	storetest.RunIntake(t, func(t *testing.T) storetest.Intake {
		db := openTemp(t)
		t.Cleanup(func() { checkIntegrity(t, db) })
		return db
	})
}

var hour0 = time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)

func smallBatch(keys ...string) *salesrank.Batch {
	b := &salesrank.Batch{
		Partials:   []salesrank.Partial{{Start: hour0, Data: []byte("p")}},
		Categories: []int32{42},
	}
	for _, k := range keys {
		b.Objects = append(b.Objects, salesrank.TakenObject{Key: k})
		b.Rejects = append(b.Rejects, salesrank.Reject{Object: k, Line: 1, Text: []byte("x")})
	}
	return b
}

// intakeCounts counts the rows of every table a batch writes.
func intakeCounts(t *testing.T, db *DB) string {
	t.Helper()
	var s string
	err := db.read.QueryRow(`SELECT (SELECT count(*) FROM batches) || '/' || (SELECT count(*) FROM objects)
		|| '/' || (SELECT count(*) FROM partials) || '/' || (SELECT count(*) FROM rejected_lines)
		|| '/' || (SELECT count(*) FROM categories)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCommitBatchTwoHandles races rankers on separate handles of one file, as two processes
// would: the manifest check must hold across connections, not just within one pool.
func TestCommitBatchTwoHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "race.db")
	const n = 4
	dbs := make([]*DB, n)
	for i := range dbs {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs[i] = db
	}
	for round := range 10 {
		shared := fmt.Sprintf("r%d/shared", round)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, db := range dbs {
			wg.Go(func() { errs[i] = db.CommitBatch(ctx, smallBatch(shared, fmt.Sprintf("r%d/own-%d", round, i))) })
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			if err == nil {
				won++
			} else if !errors.Is(err, salesrank.ErrAlreadyTaken) {
				t.Fatalf("round %d handle %d: %v", round, i, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d handles committed %q, want exactly 1", round, won, shared)
		}
	}
	if got, want := intakeCounts(t, dbs[0]), "10/20/10/20/1"; got != want {
		t.Errorf("row counts %s, want %s (batches/objects/partials/rejects/categories)", got, want)
	}
	checkIntegrity(t, dbs[0])
}

func TestPartialStats(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	if s, err := db.PartialStats(ctx); err != nil || s != (PartialStats{}) {
		t.Errorf("PartialStats of an empty store = %+v, %v; want zero", s, err)
	}
	b1 := smallBatch("a")
	b1.Partials = []salesrank.Partial{{Start: hour0, Data: make([]byte, 1000)}, {Start: hour0.Add(-5 * time.Hour), Data: nil}}
	b2 := smallBatch("b")
	b2.Partials = []salesrank.Partial{{Start: hour0, Data: make([]byte, 24)}, {Start: hour0.Add(3 * time.Hour), Data: []byte("xyz")}}
	for _, b := range []*salesrank.Batch{b1, b2} {
		if err := db.CommitBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	want := PartialStats{Rows: 4, Bytes: 1027, MinHour: hour0.Add(-5 * time.Hour), MaxHour: hour0.Add(3 * time.Hour)}
	if s, err := db.PartialStats(ctx); err != nil || s != want {
		t.Errorf("PartialStats = %+v, %v; want %+v", s, err, want)
	}
	// Compaction keeps the highest batch id of the rows it replaces.
	if err := db.ReplacePartials(ctx, hour0, []byte("m")); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := db.read.QueryRow(`SELECT batch_id FROM partials WHERE hour = ?`, hour0.Unix()).Scan(&id); err != nil || id != b2.ID {
		t.Errorf("compacted row has batch id %d (%v), want %d", id, err, b2.ID)
	}
}

// TestTimesOutOfRange checks that times the manifest cannot hold exactly are refused up front.
func TestTimesOutOfRange(t *testing.T) {
	db := openTemp(t)
	b := smallBatch("a")
	b.Objects[0].ModTime = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := db.CommitBatch(context.Background(), b); err == nil {
		t.Error("CommitBatch with a mod time in 1600 succeeded, want an error")
	}
}

func benchBlob(n int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	return data
}

// BenchmarkCommitBatch commits what an hourly run of a busy shop might: ten objects and one
// 5 MB partial.
func BenchmarkCommitBatch(b *testing.B) {
	ctx := context.Background()
	db := openTemp(b)
	data := benchBlob(5 << 20)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		batch := &salesrank.Batch{
			Partials:   []salesrank.Partial{{Start: hour0.Add(time.Duration(i) * time.Hour), Data: data}},
			Categories: []int32{1, 2, 3},
		}
		for j := range 10 {
			batch.Objects = append(batch.Objects, salesrank.TakenObject{Key: fmt.Sprintf("%06d/%02d.log.gz", i, j), Size: 1 << 20})
		}
		if err := db.CommitBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPartials reads a week of 1 MB hourly partials, as a ranker rebuilding its window
// after a restart does.
func BenchmarkPartials(b *testing.B) {
	ctx := context.Background()
	db := openTemp(b)
	data := benchBlob(1 << 20)
	for h := range 168 {
		batch := &salesrank.Batch{
			Objects:  []salesrank.TakenObject{{Key: fmt.Sprint(h)}},
			Partials: []salesrank.Partial{{Start: hour0.Add(time.Duration(h) * time.Hour), Data: data}},
		}
		if err := db.CommitBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(168 << 20)
	for b.Loop() {
		var n, sum int
		err := db.Partials(ctx, hour0, hour0.Add(168*time.Hour), func(_ time.Time, d []byte) error {
			n++
			sum += int(d[len(d)-1]) // touch the data, as a decoder would
			return nil
		})
		if err != nil || n != 168 {
			b.Fatalf("Partials: %d rows, %v", n, err)
		}
	}
}

// BenchmarkPartial20MB writes and reads one 20 MB partial, the largest the design expects.
func BenchmarkPartial20MB(b *testing.B) {
	ctx := context.Background()
	data := benchBlob(20 << 20)
	b.Run("commit", func(b *testing.B) {
		db := openTemp(b)
		b.SetBytes(int64(len(data)))
		for i := 0; b.Loop(); i++ {
			batch := &salesrank.Batch{
				Objects:  []salesrank.TakenObject{{Key: fmt.Sprint(i)}},
				Partials: []salesrank.Partial{{Start: hour0, Data: data}},
			}
			if err := db.CommitBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		db := openTemp(b)
		batch := &salesrank.Batch{
			Objects:  []salesrank.TakenObject{{Key: "big"}},
			Partials: []salesrank.Partial{{Start: hour0, Data: data}},
		}
		if err := db.CommitBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			err := db.Partials(ctx, hour0, hour0.Add(time.Hour), func(_ time.Time, d []byte) error {
				if len(d) != len(data) {
					return fmt.Errorf("%d bytes", len(d))
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("replace", func(b *testing.B) {
		db := openTemp(b)
		batch := &salesrank.Batch{
			Objects:  []salesrank.TakenObject{{Key: "big"}},
			Partials: []salesrank.Partial{{Start: hour0, Data: data}},
		}
		if err := db.CommitBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := db.ReplacePartials(ctx, hour0, data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLargeBatchCache checks that a batch too large for the page cache, written through a
// small one (see writeTx.InsertPartials), leaves the write connection's cache as it was:
// at its commit, or at the next write transaction if the batch failed with it shrunk.
func TestLargeBatchCache(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	cacheSize := func() int {
		t.Helper()
		var n int
		if err := db.write.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	large := func(key string) *salesrank.Batch {
		b := smallBatch(key)
		b.Partials = nil
		for h := range 9 { // 18 MiB
			b.Partials = append(b.Partials, salesrank.Partial{Start: hour0.Add(time.Duration(h) * time.Hour), Data: benchBlob(2 << 20)})
		}
		return b
	}
	if got := cacheSize(); got != -cacheKiB {
		t.Fatalf("cache_size of a new handle = %d, want %d", got, -cacheKiB)
	}
	if err := db.CommitBatch(ctx, large("a")); err != nil {
		t.Fatal(err)
	}
	if got := cacheSize(); got != -cacheKiB {
		t.Errorf("cache_size after a large batch = %d, want %d", got, -cacheKiB)
	}
	if s, err := db.PartialStats(ctx); err != nil || s.Rows != 9 || s.Bytes != 9*2<<20 {
		t.Errorf("PartialStats = %+v, %v; want 9 rows of 2 MiB", s, err)
	}

	// A batch that failed between shrinking the cache and restoring it (an insert failed,
	// the context ended) leaves it shrunk and says so.
	if _, err := db.write.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = %d", -batchCacheKiB)); err != nil {
		t.Fatal(err)
	}
	db.cacheShrunk = true
	if _, err := db.DeletePartialsBefore(ctx, hour0); err != nil {
		t.Fatal(err)
	}
	if got := cacheSize(); got != -cacheKiB {
		t.Errorf("cache_size after the next write = %d, want %d", got, -cacheKiB)
	}
	if got, want := intakeCounts(t, db), "1/1/9/1/1"; got != want {
		t.Errorf("row counts %s, want %s (batches/objects/partials/rejects/categories)", got, want)
	}
}

// waitForFileSize waits up to 20 s for the database file to hold size bytes.
func waitForFileSize(t *testing.T, db *DB, size int64, why string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		fi, err := os.Stat(db.Path())
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the database file holds %d bytes 20 s after %s: the WAL was not checkpointed", fi.Size(), why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCheckpointRetried holds a reader on the snapshot before a large commit, so that the
// checkpoint after the commit cannot copy it, then lets the reader go: with no commit
// after it, the checkpointer must try again by itself.
func TestCheckpointRetried(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	reader, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := reader.QueryRow(`SELECT count(*) FROM partials`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	b := smallBatch("big")
	b.Partials[0].Data = make([]byte, 8<<20)
	if err := db.CommitBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the checkpoint after the commit runs, held back
	if fi, err := os.Stat(db.Path()); err != nil || fi.Size() >= 8<<20 {
		t.Fatalf("with a reader on the old snapshot the file holds the commit already (%v, %v): the test cannot tell a retry", fi, err)
	}
	reader.Rollback()
	waitForFileSize(t, db, 8<<20, "its last reader left")
}

// TestCheckpointAfterCommit commits a batch larger than SQLite's own automatic checkpoint
// (1000 pages) but under the writer's backstop, and waits for its pages to reach the
// database file: the checkpointer must copy them after the commit, since the writer no
// longer does.
func TestCheckpointAfterCommit(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	b := smallBatch("big")
	b.Partials[0].Data = make([]byte, 8<<20) // 2048 pages of 4 KiB
	if err := db.CommitBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	waitForFileSize(t, db, 8<<20, "a commit of 8 MiB")
	var pages int
	if err := db.write.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages != walAutocheckpoint {
		t.Errorf("the writer checkpoints past %d pages, want %d", pages, walAutocheckpoint)
	}
}
