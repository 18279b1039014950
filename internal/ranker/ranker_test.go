package ranker

import (
	"context"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/sqlite"
	"github.com/salesrank/salesrank/internal/testing/ranktest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// publishAndLoad runs the job over objects at now and returns the published snapshot as
// the store gives it back.
func publishAndLoad(t *testing.T, objects map[string][]byte, now time.Time, top int) (*salesrank.Snapshot, *Summary) {
	t.Helper()
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	for k, v := range objects {
		if err := bucket.WriteAll(ctx, k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "salesrank.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	job := &Job{Logs: bucket, Engine: &counting.Local{BlockSize: 128 << 10}, Store: db, Top: top}
	sum, err := job.Run(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.ID != sum.SnapshotID {
		t.Fatalf("current snapshot %d, want the one just published, %d", snap.ID, sum.SnapshotID)
	}
	return snap, sum
}

// TestSeedExample ranks the source design's six sample lines (product1 → 1, category1 → 1, …)
// and checks the five result rows against testdata/seed.golden.
func TestSeedExample(t *testing.T) {
	logs, err := os.ReadFile("testdata/seed.tsv")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 20, 13, 30, 0, 0, time.UTC)
	snap, sum := publishAndLoad(t, map[string][]byte{"2026/11/19/part-0.tsv": logs}, now, 100)
	if sum.LinesRead != 6 || sum.LinesRejected != 0 {
		t.Errorf("lines read %d, rejected %d; want 6, 0", sum.LinesRead, sum.LinesRejected)
	}
	got := ranktest.Format(snap.Rankings)
	golden := "testdata/seed.golden"
	if *update {
		os.WriteFile(golden, []byte(got), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("ranking =\n%s\nwant (%s)\n%s", got, golden, want)
	}
}

// TestRankMatchesOracle publishes random and adversarial logs through the engine and the
// SQLite store and holds the result to the oracle.
func TestRankMatchesOracle(t *testing.T) {
	cutoff := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 99))
		objects := ranktest.RandomLogs(rng, cutoff)
		top := 1 + rng.IntN(5)
		now := cutoff.Add(time.Duration(rng.Int64N(int64(time.Hour))))
		snap, sum := publishAndLoad(t, objects, now, top)
		want, read, rejected := ranktest.Oracle(objects, cutoff, top)
		if got := ranktest.Format(snap.Rankings); got != want {
			t.Fatalf("seed %d: ranking =\n%s\nwant\n%s", seed, got, want)
		}
		if sum.LinesRead != read || sum.LinesRejected != rejected {
			t.Fatalf("seed %d: lines read %d, rejected %d; oracle %d, %d", seed, sum.LinesRead, sum.LinesRejected, read, rejected)
		}
	}
}
