package ranker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/sqlite"
	"github.com/salesrank/salesrank/internal/testing/ranktest"
)

type step struct {
	add   map[string][]byte // objects that land before the run
	now   time.Time
	fresh bool // a new Ranker, as a new "rank --once" process would be
}

// TestIncrementalMatchesOracle lands objects between runs — on time, late into hours already
// published, far too late, in the future — and checks after every run that the snapshot
// equals the oracle over every object landed so far and that each run read only the new
// objects' lines.
//
// Runs on the same Ranker must rank incrementally, from the keys that changed, and some
// must rescan categories; every such ranking is checked against the oracle too.
func TestIncrementalMatchesOracle(t *testing.T) {
	ctx := context.Background()
	var incremental, rescans int
	c0 := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	for seed := range uint64(12) {
		// Hourly cutoffs (hourly buckets), a 1-minute refresh (minute buckets) and 90
		// minutes (30-minute buckets): every window must still be exact.
		interval := []time.Duration{time.Hour, time.Minute, 90 * time.Minute}[seed%3]
		rng := rand.New(rand.NewPCG(seed, 7))
		bucket := memblob.OpenBucket(nil)
		db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
		if err != nil {
			t.Fatal(err)
		}
		newRanker := func() *Ranker {
			// Small batches, or (odd seeds) batches of several objects, whose sums of one
			// bucket are several runs.
			maxBatch := int64(3000)
			if seed%2 == 1 {
				maxBatch = 1 << 20
			}
			return &Ranker{Logs: bucket, Engine: &counting.Local{BlockSize: 128 << 10}, Store: db, Top: 3, MaxBatchBytes: maxBatch, Interval: interval}
		}
		obj := func(name string, base time.Time, spread time.Duration, n int) map[string][]byte {
			return map[string][]byte{name: ranktest.Lines(rng, base, spread, n)}
		}
		objs := func(ms ...map[string][]byte) map[string][]byte {
			all := map[string][]byte{}
			for _, m := range ms {
				maps.Copy(all, m)
			}
			return all
		}
		week := 7 * 24 * time.Hour
		steps := []step{
			{add: obj("a/1.tsv", c0.Add(-week), week, 300), now: c0},
			{now: c0.Add(10 * time.Minute)},                                                              // nothing new (a new cutoff at 1m)
			{add: obj("a/minute.tsv", c0.Add(-week), 20*time.Minute, 30), now: c0.Add(17 * time.Minute)}, // around the window's start
			{add: objs(obj("a/2.tsv", c0.Add(-2*time.Hour), 3*time.Hour, 200), map[string][]byte{"a/2b.tsv": ranktest.Lines(rand.New(rand.NewPCG(seed, 8)), c0.Add(-2*time.Hour), 3*time.Hour, 200)}), now: c0.Add(time.Hour)},
			{add: obj("a/late.tsv", c0.Add(-week), 2*time.Hour, 50), now: c0.Add(time.Hour), fresh: true},    // late, at the window's start
			{add: obj("a/old.tsv", c0.Add(-week-3*24*time.Hour), time.Hour, 20), now: c0.Add(2 * time.Hour)}, // beyond the grace: too late
			{add: obj("a/future.tsv", c0.Add(3*time.Hour), 5*time.Hour, 40), now: c0.Add(5 * time.Hour)},     // partly after the cutoff
			{add: obj("b/3.tsv", c0.Add(20*time.Hour), time.Hour, 80), now: c0.Add(30 * time.Hour)},          // the window moves a day
			{now: c0.Add(9 * 24 * time.Hour), fresh: true},                                                   // downtime: more than a week
			{add: obj("b/4.tsv", c0.Add(9*24*time.Hour-time.Hour), time.Hour, 60), now: c0.Add(9*24*time.Hour + time.Minute)},
		}
		all := map[string][]byte{}
		r := newRanker()
		for i, s := range steps {
			var newLines int64
			for k, v := range s.add {
				if err := bucket.WriteAll(ctx, k, v, nil); err != nil {
					t.Fatal(err)
				}
				all[k] = v
				newLines += int64(strings.Count(string(v), "\n"))
			}
			if s.fresh {
				r = newRanker()
			}
			sum, err := r.Run(ctx, s.now)
			if err != nil {
				t.Fatalf("seed %d step %d: %v", seed, i, err)
			}
			if wantScratch := i == 0 || s.fresh || sum.WindowRebuilt; sum.RankedFromScratch != wantScratch {
				t.Errorf("seed %d step %d: ranked_from_scratch %v, want %v", seed, i, sum.RankedFromScratch, wantScratch)
			}
			if !sum.RankedFromScratch {
				incremental++
				rescans += sum.RescannedCategories
			}
			if sum.LinesRead != newLines {
				t.Errorf("seed %d step %d: lines_read %d, want %d (the new objects' only)", seed, i, sum.LinesRead, newLines)
			}
			snap, err := db.Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cutoff := s.now.Truncate(interval)
			want, _, _ := ranktest.Oracle(all, cutoff, 3)
			if got := ranktest.Format(snap.Rankings); got != want {
				t.Fatalf("seed %d interval %v step %d (cutoff %s): ranking =\n%s\nwant\n%s", seed, interval, i, cutoff.Format(time.RFC3339), got, want)
			}
		}
		db.Close()
		bucket.Close()
	}
	t.Logf("%d runs ranked incrementally, %d categories rescanned", incremental, rescans)
	if incremental == 0 || rescans == 0 {
		t.Errorf("%d runs ranked incrementally, %d categories rescanned; want both exercised", incremental, rescans)
	}
}

// TestChangedObjectRefused rewrites an object after it was taken: its new content must not
// count, and the run must say so.
func TestChangedObjectRefused(t *testing.T) {
	ctx := context.Background()
	cutoff := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	bucket, db := openLogsAndDB(t)
	put := func(b *blob.Bucket, key, s string) {
		if err := b.WriteAll(ctx, key, []byte(s), nil); err != nil {
			t.Fatal(err)
		}
	}
	ts := cutoff.Add(-time.Hour).Unix()
	put(bucket, "x.tsv", fmt.Sprintf("%d\t1\t1\t5\t1\t1\t1\n", ts))
	r := &Ranker{Logs: bucket, Engine: &counting.Local{}, Store: db}
	if _, err := r.Run(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	put(bucket, "x.tsv", fmt.Sprintf("%d\t1\t1\t500\t1\t1\t1\n", ts))
	sum, err := r.Run(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if sum.ObjectsRefused != 1 || sum.LinesRead != 0 {
		t.Errorf("objects_refused %d, lines_read %d; want 1, 0", sum.ObjectsRefused, sum.LinesRead)
	}
	snap, err := db.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ranktest.Format(snap.Rankings); got != "category 1 rank 1 product 1 total_sold 5\n" {
		t.Errorf("ranking after the rewrite = %q, want the first version's 5 units", got)
	}
}

// TestCoarseBucketsRefused ranks hourly, then asks for a 1-minute refresh on the same
// database: the hourly sums cannot give a window that starts mid-hour, so the run must fail
// and say why rather than publish an inexact ranking.
func TestCoarseBucketsRefused(t *testing.T) {
	ctx := context.Background()
	c0 := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	bucket, db := openLogsAndDB(t)
	if err := bucket.WriteAll(ctx, "a.tsv", ranktest.Lines(rand.New(rand.NewPCG(1, 1)), c0.Add(-7*24*time.Hour), 7*24*time.Hour, 100), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Ranker{Logs: bucket, Engine: &counting.Local{}, Store: db}).Run(ctx, c0); err != nil {
		t.Fatal(err)
	}
	_, err := (&Ranker{Logs: bucket, Engine: &counting.Local{}, Store: db, Interval: time.Minute}).Run(ctx, c0.Add(7*time.Minute))
	if err == nil || !strings.Contains(err.Error(), "too coarse") {
		t.Fatalf("1-minute run over hourly sums: err = %v, want one saying the buckets are too coarse", err)
	}
}

// TestIncrementalRescan makes a run's lists fall short: the top product's sales leave the
// window and the product that takes its place ties, at the lists' floor, with a candidate
// while never having been one. Only a rescan of the window finds it.
func TestIncrementalRescan(t *testing.T) {
	ctx := context.Background()
	c0 := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	bucket, db := openLogsAndDB(t)
	sale := func(at time.Time, product, units int) string {
		return fmt.Sprintf("%d\t%d\t1\t%d\t1.00\t1\t1\n", at.Unix(), product, units)
	}
	start := c0.Add(-7 * 24 * time.Hour)
	// Top 1 keeps 2 candidates: products 1 (10) and 5 (5), with a floor of 5.
	week := sale(start, 1, 10) + sale(start.Add(time.Hour), 5, 5) + sale(start.Add(time.Hour), 3, 4) + sale(start.Add(time.Hour), 6, 1)
	if err := bucket.WriteAll(ctx, "week.tsv", []byte(week), nil); err != nil {
		t.Fatal(err)
	}
	r := &Ranker{Logs: bucket, Engine: &counting.Local{}, Store: db, Top: 1, Interval: time.Minute}
	if _, err := r.Run(ctx, c0); err != nil {
		t.Fatal(err)
	}
	// A minute later product 1's sale has left, and product 3 has climbed to 5.
	if err := bucket.WriteAll(ctx, "minute.tsv", []byte(sale(c0, 3, 1)), nil); err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(ctx, c0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if sum.RankedFromScratch || sum.RescannedCategories != 1 {
		t.Errorf("ranked_from_scratch %v, rescanned_categories %d; want false, 1", sum.RankedFromScratch, sum.RescannedCategories)
	}
	snap, err := db.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ranktest.Format(snap.Rankings), "category 1 rank 1 product 3 total_sold 5\n"; got != want {
		t.Errorf("ranking = %q, want %q", got, want)
	}
}

// openLogsAndDB returns an empty memblob bucket for logs and a SQLite store in a temporary
// folder, both closed when t ends.
func openLogsAndDB(t *testing.T) (*blob.Bucket, *sqlite.DB) {
	t.Helper()
	bucket := memblob.OpenBucket(nil)
	t.Cleanup(func() { bucket.Close() })
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return bucket, db
}

// weekBefore returns a bucket holding one object of random sales (lines of them, drawn
// from seed) over the week before hour, an empty database, and hour, a whole hour.
func weekBefore(t *testing.T, seed uint64, lines int) (*blob.Bucket, *sqlite.DB, time.Time) {
	t.Helper()
	bucket, db := openLogsAndDB(t)
	hour := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(seed, seed))
	if err := bucket.WriteAll(context.Background(), "week.tsv", ranktest.Lines(rng, hour.Add(-7*24*time.Hour), 7*24*time.Hour, lines), nil); err != nil {
		t.Fatal(err)
	}
	return bucket, db, hour
}

// TestFullRanksFollowTopLists checks that a ranker, hourly or refreshing every minute,
// publishes a run's top lists first and the full ranks right after, as a second
// publication of the same cutoff that carries the same top lists; and that the minute
// runs after it answer from those full ranks until the next hour's.
func TestFullRanksFollowTopLists(t *testing.T) {
	for _, interval := range []time.Duration{time.Hour, time.Minute} {
		t.Run(interval.String(), func(t *testing.T) {
			ctx := context.Background()
			bucket, db, hour := weekBefore(t, 4, 500)
			r := &Ranker{Logs: bucket, Engine: &counting.Local{}, Store: db, Top: 2, Interval: interval, FullRanks: true}
			sum, err := r.Run(ctx, hour)
			if err != nil {
				t.Fatal(err)
			}
			if sum.FullRanks != 0 {
				t.Errorf("the run reports %d full ranks published with it, want 0 (they follow it)", sum.FullRanks)
			}
			late := r.Wait()
			if late == nil || late.Err != nil || late.SnapshotID <= sum.SnapshotID || late.Ranks == 0 {
				t.Fatalf("the full ranks after snapshot %d: %+v; want a later snapshot that carries them", sum.SnapshotID, late)
			}
			topLists, err := db.Snapshot(ctx, sum.SnapshotID)
			if err != nil {
				t.Fatal(err)
			}
			cur, err := db.Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cur.ID != late.SnapshotID || !cur.Window.End.Equal(hour) {
				t.Fatalf("current snapshot %d at %v, want %d at %v", cur.ID, cur.Window.End, late.SnapshotID, hour)
			}
			if !reflect.DeepEqual(cur.Rankings, topLists.Rankings) {
				t.Errorf("the full ranks' publication holds other top lists than the run's:\n%+v\n%+v", cur.Rankings, topLists.Rankings)
			}
			st := cur.Standings
			if st == nil || st.SnapshotID != late.SnapshotID || st.Len() != late.Ranks {
				t.Fatalf("the current snapshot's full ranks: %+v, want snapshot %d's %d", st, late.SnapshotID, late.Ranks)
			}
			for _, rk := range cur.Rankings {
				full := st.Ranked(rk.CategoryID)
				for i, e := range rk.Entries {
					if full[i].ProductID != e.ProductID || full[i].TotalSold != e.TotalSold {
						t.Fatalf("category %d rank %d: full ranks %+v, top list %+v", rk.CategoryID, i+1, full[i], e)
					}
				}
			}
			if interval == time.Hour {
				return
			}
			next, err := r.Run(ctx, hour.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if l := r.Wait(); l != nil {
				t.Errorf("the next minute published full ranks too: %+v", l)
			}
			cur, err = db.Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cur.ID != next.SnapshotID || cur.Standings == nil || cur.Standings.SnapshotID != late.SnapshotID {
				t.Fatalf("the next minute: snapshot %d with full ranks %+v, want snapshot %d with snapshot %d's", cur.ID, cur.Standings, next.SnapshotID, late.SnapshotID)
			}
		})
	}
}

// TestFullRanksRetriedAfterFailure fails the publication of a run's full ranks: the run's
// top lists stay published and current, Wait reports the failure, and the next run,
// though not at a whole hour, publishes the full ranks that are still due.
func TestFullRanksRetriedAfterFailure(t *testing.T) {
	ctx := context.Background()
	bucket, db, hour := weekBefore(t, 5, 300)
	// Each publication passes the step "standings"; the run's second one carries the
	// full ranks.
	standings := 0
	db.SetFailAt(func(step string) error {
		if step == "standings" {
			if standings++; standings == 2 {
				return errors.New("disk full")
			}
		}
		return nil
	})
	r := &Ranker{Logs: bucket, Engine: &counting.Local{}, Store: db, Top: 2, Interval: time.Minute, FullRanks: true}
	sum, err := r.Run(ctx, hour)
	if err != nil {
		t.Fatal(err)
	}
	late := r.Wait()
	if late == nil || late.Err == nil || !strings.Contains(late.Err.Error(), "disk full") {
		t.Fatalf("the full ranks' publication: %+v, want the injected failure", late)
	}
	cur, err := db.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cur.ID != sum.SnapshotID || cur.Standings != nil {
		t.Fatalf("after the failure: current snapshot %d with full ranks %+v; want the run's top lists, %d, without", cur.ID, cur.Standings, sum.SnapshotID)
	}
	next, err := r.Run(ctx, hour.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	late = r.Wait()
	if late == nil || late.Err != nil || late.SnapshotID <= next.SnapshotID {
		t.Fatalf("the next minute's full ranks: %+v; want them published after its snapshot %d", late, next.SnapshotID)
	}
	if cur, err = db.Current(ctx); err != nil {
		t.Fatal(err)
	}
	if cur.Standings == nil || cur.Standings.SnapshotID != late.SnapshotID || !cur.Standings.Window.End.Equal(hour.Add(time.Minute)) {
		t.Fatalf("the current snapshot's full ranks: %+v, want snapshot %d's at %v", cur.Standings, late.SnapshotID, hour.Add(time.Minute))
	}
}

// TestLastCommitFails fails the commit of a run's last batch, which runs while the run
// ranks the lists: the run must fail and publish nothing, and the next run must take what
// the failed batch held and publish the oracle's ranking.
func TestLastCommitFails(t *testing.T) {
	ctx := context.Background()
	bucket, db := openLogsAndDB(t)
	hour := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(9, 9))
	all := map[string][]byte{}
	for i := range 3 {
		key := fmt.Sprintf("day-%d.tsv", i)
		all[key] = ranktest.Lines(rng, hour.Add(-time.Duration(i+1)*24*time.Hour), 24*time.Hour, 200)
		if err := bucket.WriteAll(ctx, key, all[key], nil); err != nil {
			t.Fatal(err)
		}
	}
	// One object a batch: the third batch's partials fail.
	commits := 0
	db.SetFailAt(func(step string) error {
		if step == "batch:partials" {
			if commits++; commits == 3 {
				return errors.New("disk full")
			}
		}
		return nil
	})
	r := &Ranker{Logs: bucket, Engine: &counting.Local{}, Store: db, Top: 3, MaxBatchBytes: 1}
	if _, err := r.Run(ctx, hour); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("run with its last commit failing: err = %v, want the injected failure", err)
	}
	if snap, err := db.Current(ctx); !errors.Is(err, salesrank.ErrNoSnapshot) {
		t.Fatalf("after the failed run: current snapshot %v (err %v), want none", snap, err)
	}
	db.SetFailAt(nil)
	sum, err := r.Run(ctx, hour)
	if err != nil {
		t.Fatal(err)
	}
	if sum.ObjectsTaken != 1 || sum.ObjectsSkipped != 2 {
		t.Errorf("the next run took %d objects and skipped %d, want 1 (the failed batch's) and 2", sum.ObjectsTaken, sum.ObjectsSkipped)
	}
	snap, err := db.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := ranktest.Oracle(all, hour, 3)
	if got := ranktest.Format(snap.Rankings); got != want {
		t.Fatalf("after the retry: ranking =\n%s\nwant\n%s", got, want)
	}
}

// TestLastBatchCategoriesListed lands a category whose only sale falls after the cutoff:
// its batch is still committing when the lists are ranked, and the snapshot must still
// list the category, with no products, as a known one.
func TestLastBatchCategoriesListed(t *testing.T) {
	ctx := context.Background()
	cutoff := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	bucket, db := openLogsAndDB(t)
	line := fmt.Sprintf("%d\t1\t77\t5\t1\t1\t1\n", cutoff.Add(time.Hour).Unix())
	if err := bucket.WriteAll(ctx, "future.tsv", []byte(line), nil); err != nil {
		t.Fatal(err)
	}
	r := &Ranker{Logs: bucket, Engine: &counting.Local{}, Store: db}
	if _, err := r.Run(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	snap, err := db.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Rankings) != 1 || snap.Rankings[0].CategoryID != 77 || len(snap.Rankings[0].Entries) != 0 {
		t.Fatalf("rankings %+v, want category 77 with no products", snap.Rankings)
	}
}

// TestOnceMatchesOracle runs Rankers that run once (rank --once) over new databases, on
// logs meant to break a ranking (window edges, late and future sales, ties, huge ids, bad
// lines): a first run in one batch ranks its sums without building the window, and its top
// lists and full ranks must equal the oracle's. A second run on the same Ranker, after more
// logs land, must rebuild the window from what the first committed and match the oracle
// too; so must a first run whose objects take two batches, which builds the window.
func TestOnceMatchesOracle(t *testing.T) {
	ctx := context.Background()
	c0 := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	week := 7 * 24 * time.Hour
	for seed := range uint64(12) {
		interval := []time.Duration{time.Hour, time.Minute, 90 * time.Minute}[seed%3]
		batches := 1 + int(seed/3%2) // seeds 3–5 and 9–11: two batches
		rng := rand.New(rand.NewPCG(seed, 11))
		bucket, db := openLogsAndDB(t)
		now := c0.Add(time.Duration(rng.IntN(120)) * time.Minute)
		cutoff := now.Truncate(interval)
		all := ranktest.RandomLogs(rng, cutoff)
		all["week.tsv"] = ranktest.Lines(rng, cutoff.Add(-week-time.Hour), week+2*time.Hour, 2000)
		var size int64
		for k, v := range all {
			if err := bucket.WriteAll(ctx, k, v, nil); err != nil {
				t.Fatal(err)
			}
			size += int64(len(v))
		}
		r := &Ranker{Logs: bucket, Engine: &counting.Local{BlockSize: 16 << 10}, Store: db, Top: 3, Interval: interval,
			FullRanks: true, Once: true}
		if batches == 2 {
			r.MaxBatchBytes = size - 1
		}
		sum, err := r.Run(ctx, now)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if err := r.Finish(sum); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if built := r.window.Len() > 0; built != (batches == 2) {
			t.Fatalf("seed %d: %d batch(es), the window holds %d keys after the run", seed, batches, r.window.Len())
		}
		cur, err := db.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := ranktest.Oracle(all, cutoff, 3)
		if got := ranktest.Format(cur.Rankings); got != want {
			t.Fatalf("seed %d interval %v (cutoff %s): ranking =\n%s\nwant\n%s", seed, interval, cutoff.Format(time.RFC3339), got, want)
		}
		st := cur.Standings
		if st == nil || st.Len() != sum.WindowKeys || sum.WindowKeys == 0 {
			t.Fatalf("seed %d: full ranks %v for a run that summed %d keys", seed, st, sum.WindowKeys)
		}
		full := make([]salesrank.Ranking, len(cur.Rankings))
		for i, rk := range cur.Rankings {
			full[i].CategoryID = rk.CategoryID
			for _, e := range st.Ranked(rk.CategoryID) {
				full[i].Entries = append(full[i].Entries, salesrank.Entry{ProductID: e.ProductID, TotalSold: e.TotalSold})
			}
		}
		if got, want := ranktest.Format(full), ranktestFull(all, cutoff); got != want {
			t.Fatalf("seed %d interval %v: full ranks =\n%s\nwant\n%s", seed, interval, got, want)
		}

		// The same Ranker again, once more logs land an interval later.
		more := ranktest.Lines(rng, cutoff.Add(-week), week+interval, 300)
		if err := bucket.WriteAll(ctx, "more.tsv", more, nil); err != nil {
			t.Fatal(err)
		}
		all["more.tsv"] = more
		next, err := r.Run(ctx, now.Add(interval))
		if err != nil {
			t.Fatalf("seed %d, second run: %v", seed, err)
		}
		if err := r.Finish(next); err != nil {
			t.Fatal(err)
		}
		if next.WindowRebuilt != (batches == 1) {
			t.Errorf("seed %d, second run: window rebuilt %v, want %v", seed, next.WindowRebuilt, batches == 1)
		}
		if cur, err = db.Current(ctx); err != nil {
			t.Fatal(err)
		}
		want, _, _ = ranktest.Oracle(all, cutoff.Add(interval), 3)
		if got := ranktest.Format(cur.Rankings); got != want {
			t.Fatalf("seed %d interval %v, second run: ranking =\n%s\nwant\n%s", seed, interval, got, want)
		}
	}
}

// ranktestFull is the oracle's full ranks: every product of every category.
func ranktestFull(objects map[string][]byte, cutoff time.Time) string {
	s, _, _ := ranktest.Oracle(objects, cutoff, math.MaxInt32)
	return s
}
