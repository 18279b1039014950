package faults_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestOnceRunsAreIncremental runs rank --once again and again on one database as objects
// land: each run reads only the new objects' lines and publishes the oracle's ranking; a
// run with nothing new reads nothing and republishes the same rows under a new id; a
// backfill within the grace publishes its own cutoff's ranking without becoming current;
// and a late object for an hour already published changes the next snapshot exactly as
// the oracle says.
func TestOnceRunsAreIncremental(t *testing.T) {
	needBinary(t)
	t.Parallel()
	began := time.Now()
	dir := t.TempDir()
	stage, logs, db := filepath.Join(dir, "stage"), filepath.Join(dir, "logs"), filepath.Join(dir, "salesrank.db")
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	gen(t, filepath.Join(stage, "a"), "--start", start.Format(time.RFC3339), "--days", "8", "--lines", "150000", "--parts", "2",
		"--categories", "40", "--products", "20000", "--bad-rate", "0.002", "--seed", "21")
	gen(t, filepath.Join(stage, "b"), "--start", start.Format(time.RFC3339), "--days", "8", "--lines", "50000", "--parts", "1",
		"--categories", "40", "--products", "20000", "--gzip", "--header", "--time-format", "mixed", "--seed", "22")
	objs, err := parseTree(stage)
	if err != nil {
		t.Fatal(err)
	}
	landed := map[string]*object{}
	land := func(from, to time.Time) (lines, bad int64, n int) {
		for k, o := range objs {
			if h := keyHour(t, k); !h.Before(from) && h.Before(to) {
				moveFile(t, filepath.Join(stage, k), filepath.Join(logs, k))
				landed[k] = o
				lines, bad, n = lines+o.read, bad+o.rejected, n+1
			}
		}
		return lines, bad, n
	}
	check := func(name string, sum summary, lines, bad int64, n int, cutoff time.Time) ranking {
		t.Helper()
		if sum.LinesRead != lines || sum.LinesRejected != bad || sum.ObjectsTaken != n {
			t.Errorf("%s: read %d lines (%d rejected) from %d new objects; want %d (%d) from %d", name, sum.LinesRead, sum.LinesRejected, sum.ObjectsTaken, lines, bad, n)
		}
		if !sum.Cutoff.Equal(cutoff) {
			t.Errorf("%s: cutoff %s, want %s", name, sum.Cutoff, cutoff)
		}
		got := rankingOf(t, db, sum.SnapshotID)
		if d := diffRankings(got, oracleRank(values(landed), cutoff, 100)); d != "" {
			t.Errorf("%s: snapshot %d differs from the oracle at %s:\n%s", name, sum.SnapshotID, cutoff.Format(time.RFC3339), d)
		}
		return got
	}

	// 1. The first week.
	t1 := start.Add(7 * 24 * time.Hour)
	lines, bad, n := land(start, t1)
	sum1 := runOnce(t, logs, db, t1.Add(25*time.Minute))
	check("first run", sum1, lines, bad, n, t1)

	// 2. Six more hours: only their lines are read.
	t2 := t1.Add(6 * time.Hour)
	lines, bad, n = land(t1, t2)
	sum2 := runOnce(t, logs, db, t2.Add(5*time.Minute))
	got2 := check("second run", sum2, lines, bad, n, t2)
	if cur := stateOf(t, db).Current; cur != sum2.SnapshotID {
		t.Errorf("current snapshot %d, want the second run's %d", cur, sum2.SnapshotID)
	}

	// 3. Nothing new: nothing read, the same rows under a new id.
	sum3 := runOnce(t, logs, db, t2.Add(40*time.Minute))
	got3 := check("run with nothing new", sum3, 0, 0, 0, t2)
	if sum3.SnapshotID == sum2.SnapshotID {
		t.Errorf("run with nothing new published snapshot %d again, want a new id", sum3.SnapshotID)
	}
	if d := diffRankings(got3, got2); d != "" {
		t.Errorf("run with nothing new changed the ranking:\n%s", d)
	}

	// 4. A backfill three hours back (well within the 24 h grace) publishes that cutoff's
	// ranking; the current snapshot stays the latest cutoff's. It goes before the late
	// object's run: with three snapshots of a later cutoff kept, Publish would prune it in
	// the same transaction (see sqlite.DB.Publish).
	tb := t2.Add(-3 * time.Hour)
	sumB := runOnce(t, logs, db, tb.Add(59*time.Minute))
	check("backfill", sumB, 0, 0, 0, tb)
	if cur := stateOf(t, db).Current; cur != sum3.SnapshotID {
		t.Errorf("after the backfill the current snapshot is %d, want %d (cutoff %s)", cur, sum3.SnapshotID, t2.Format(time.RFC3339))
	}
	if _, ok := snapshotCutoffs(t, db)[sumB.SnapshotID]; !ok {
		t.Errorf("the backfill's snapshot %d is not stored", sumB.SnapshotID)
	}

	// 5. A late object for an hour already published (t1 + 2h), with a sale big enough to top
	// category 1, more units for category 2's best seller, a sale too old for the window and
	// its grace, and a bad line.
	top1 := got3.rows[slices.IndexFunc(got3.rows, func(r rankRow) bool { return r.cat == 1 })]
	top2 := got3.rows[slices.IndexFunc(got3.rows, func(r rankRow) bool { return r.cat == 2 })]
	late := t1.Add(2*time.Hour + 17*time.Minute).Unix()
	tooOld := t2.Add(-9 * 24 * time.Hour).Unix()
	text := fmt.Sprintf("%d\t999999999\t1\t%d\t1.00\t7\t7\n%d\t%d\t2\t3\t3.00\t7\t8\n%d\t123\t3\t5\t1.00\t7\t9\n%d\tnot-a-product\t1\t1\t1.00\t7\t7\n",
		late, top1.total+1000, late, top2.prod, tooOld, late)
	key := t1.Add(2*time.Hour).Format("late/2006/01/02/15") + "/part-late.tsv"
	writeFile(t, filepath.Join(logs, key), text)
	landed[key] = parseObject(key, []byte(text))
	sum4 := runOnce(t, logs, db, t2.Add(50*time.Minute))
	got4 := check("run after a late object", sum4, 4, 1, 1, t2)
	if sum4.LinesTooLate != 1 {
		t.Errorf("run after a late object: %d lines too late, want 1", sum4.LinesTooLate)
	}
	if i := slices.IndexFunc(got4.rows, func(r rankRow) bool { return r.cat == 1 }); i < 0 || got4.rows[i].prod != 999999999 {
		t.Errorf("the late sale does not top category 1")
	}
	if i := slices.IndexFunc(got4.rows, func(r rankRow) bool { return r.cat == 2 && r.prod == top2.prod }); i < 0 || got4.rows[i].total != top2.total+3 {
		t.Errorf("category 2's best seller did not gain the late object's 3 units")
	}
	changed := 0
	for i := range min(len(got3.rows), len(got4.rows)) {
		if got3.rows[i] != got4.rows[i] {
			changed++
		}
	}
	t.Logf("runs read %d, %d, %d, %d (backfill) and %d lines; the late object changed %d rows; %.1fs",
		sum1.LinesRead, sum2.LinesRead, sum3.LinesRead, sumB.LinesRead, sum4.LinesRead, changed, time.Since(began).Seconds())

	// Every landed object is in the manifest once, with its lines.
	man := manifest(t, db)
	if len(man) != len(landed) {
		t.Errorf("manifest holds %d objects, %d landed", len(man), len(landed))
	}
	for k, o := range landed {
		if m, ok := man[k]; !ok || m.Read != o.read || m.Rejected != o.rejected {
			t.Errorf("manifest entry of %q: %+v, want %d lines, %d rejected", k, m, o.read, o.rejected)
		}
	}
}

func moveFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// writeFile lands an object atomically: written under a name the ranker skips (a leading
// dot), then renamed.
func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
