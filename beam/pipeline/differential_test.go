package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"

	"github.com/salesrank/salesrank/beam/internal/beamtest"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/objstore"
	"github.com/salesrank/salesrank/internal/ranker"
	"github.com/salesrank/salesrank/internal/sqlite"
	"github.com/salesrank/salesrank/internal/testing/ranktest"
)

func TestMain(m *testing.M) {
	beam.Init()
	os.Exit(m.Run())
}

// seeds is how many random histories each differential test runs: every run of a Beam
// pipeline on Prism takes a few hundred milliseconds, ten times that under the race
// detector.
func seeds() uint64 {
	if raceEnabled || testing.Short() {
		return 2
	}
	return 6
}

// side is one engine's ranker and its database.
type side struct {
	name   string
	engine ranker.Engine
	path   string
	db     *sqlite.DB
	r      *ranker.Ranker
}

func openSide(t *testing.T, name string, eng ranker.Engine) *side {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &side{name: name, engine: eng, path: path, db: db}
}

// TestSameAnswerAsEmbedded runs the embedded engine and the Beam engine (on Prism, in this
// process) side by side through incremental histories: random and adversarial objects
// (every kind of bad line, gzip and truncated gzip, CRLF, headers, window edges, ties,
// 64-bit ids and quantities), late objects, objects too late for the grace, objects in the
// future, new processes and a week of downtime, at hourly and 1-minute intervals. After
// every run the two databases must hold the same snapshots, partial sums, manifest and
// quarantine, row for row, the summaries must agree, and the snapshot must equal the
// brute-force oracle's.
func TestSameAnswerAsEmbedded(t *testing.T) {
	ctx := context.Background()
	c0 := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	week := 7 * 24 * time.Hour
	for seed := range seeds() {
		interval := []time.Duration{time.Hour, time.Minute}[seed%2]
		t.Run(fmt.Sprintf("seed=%d/interval=%v", seed, interval), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 8))
			dir := t.TempDir()
			logs, err := objstore.Open(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer logs.Close()
			sides := []*side{
				openSide(t, "embedded", &counting.Local{BlockSize: 128 << 10}),
				openSide(t, "beam", &Engine{Logs: dir, Staging: t.TempDir(), Runner: "prism", Partitions: 3}),
			}
			fresh := func() {
				for _, s := range sides {
					s.r = &ranker.Ranker{Logs: logs, Engine: s.engine, Store: s.db, Top: 3, MaxBatchBytes: 20 << 10, Interval: interval}
				}
			}
			lines := func(base time.Time, spread time.Duration, n int) map[string][]byte {
				return map[string][]byte{"part.tsv": ranktest.Lines(rng, base, spread, n)}
			}
			type step struct {
				add   map[string][]byte
				now   time.Time
				fresh bool
			}
			steps := []step{
				{add: ranktest.RandomLogs(rng, c0), now: c0, fresh: true},
				{now: c0.Add(10 * time.Minute)},
				{add: lines(c0.Add(-week), 20*time.Minute, 40), now: c0.Add(17 * time.Minute)}, // around the window's start
				{add: ranktest.RandomLogs(rng, c0.Add(time.Hour)), now: c0.Add(time.Hour)},
				{add: lines(c0.Add(-week), 2*time.Hour, 50), now: c0.Add(time.Hour), fresh: true},                 // late
				{add: lines(c0.Add(-week-3*24*time.Hour), time.Hour, 20), now: c0.Add(2 * time.Hour)},             // too late
				{add: lines(c0.Add(3*time.Hour), 5*time.Hour, 40), now: c0.Add(5 * time.Hour)},                    // partly in the future
				{add: ranktest.RandomLogs(rng, c0.Add(30*time.Hour)), now: c0.Add(30 * time.Hour)},                // the window moves a day
				{add: lines(c0.Add(9*24*time.Hour), time.Hour, 30), now: c0.Add(9 * 24 * time.Hour), fresh: true}, // downtime
			}
			all := map[string][]byte{}
			for i, st := range steps {
				prefix := fmt.Sprintf("step%d", i)
				beamtest.WriteObjects(t, dir, prefix, st.add)
				for k, v := range st.add {
					all[prefix+"/"+k] = v
				}
				if st.fresh {
					fresh()
				}
				var sums []ranker.Summary
				for _, s := range sides {
					sum, err := s.r.Run(ctx, st.now)
					if err != nil {
						t.Fatalf("step %d, %s engine: %v", i, s.name, err)
					}
					sums = append(sums, comparable(*sum))
				}
				if !reflect.DeepEqual(sums[0], sums[1]) {
					t.Fatalf("step %d: summaries differ:\nembedded %+v\nbeam     %+v", i, sums[0], sums[1])
				}
				beamtest.CompareDatabases(t, fmt.Sprintf("step %d", i), sides[0].path, sides[1].path)
				snap, err := sides[1].db.Current(ctx)
				if err != nil {
					t.Fatal(err)
				}
				want, _, _ := ranktest.Oracle(all, st.now.Truncate(interval), 3)
				if got := ranktest.Format(snap.Rankings); got != want {
					t.Fatalf("step %d: Beam's snapshot =\n%s\nthe oracle's\n%s", i, got, want)
				}
			}
		})
	}
}

// TestFullSameAnswerAsEmbedded runs rank --full's stateless job on both engines: the Beam
// one ranks each category in the pipeline and brings back only the top K.
func TestFullSameAnswerAsEmbedded(t *testing.T) {
	ctx := context.Background()
	cutoff := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	for seed := range 2 * seeds() {
		rng := rand.New(rand.NewPCG(seed, 9))
		objects := ranktest.RandomLogs(rng, cutoff)
		top := 1 + rng.IntN(4)
		dir := t.TempDir()
		beamtest.WriteObjects(t, dir, "", objects)
		logs, err := objstore.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		sides := []*side{
			openSide(t, "embedded", &counting.Local{BlockSize: 128 << 10}),
			openSide(t, "beam", &Engine{Logs: dir, Staging: t.TempDir(), Runner: "prism", Partitions: 1 + rng.IntN(4)}),
		}
		var sums []ranker.Summary
		for _, s := range sides {
			job := &ranker.Job{Logs: logs, Engine: s.engine, Store: s.db, Top: top}
			sum, err := job.Run(ctx, cutoff)
			if err != nil {
				t.Fatalf("seed %d, %s engine: %v", seed, s.name, err)
			}
			sums = append(sums, comparable(*sum))
		}
		logs.Close()
		if !reflect.DeepEqual(sums[0], sums[1]) {
			t.Fatalf("seed %d: summaries differ:\nembedded %+v\nbeam     %+v", seed, sums[0], sums[1])
		}
		beamtest.CompareDatabases(t, fmt.Sprintf("seed %d", seed), sides[0].path, sides[1].path)
		snap, err := sides[1].db.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := ranktest.Oracle(objects, cutoff, top)
		if got := ranktest.Format(snap.Rankings); got != want {
			t.Fatalf("seed %d: Beam's snapshot =\n%s\nthe oracle's\n%s", seed, got, want)
		}
	}
}

// comparable is a summary without what depends on the clock.
func comparable(s ranker.Summary) ranker.Summary {
	s.CountSeconds, s.RankSeconds, s.PublishSeconds, s.Seconds, s.LinesPerSecond = 0, 0, 0, 0, 0
	return s
}
