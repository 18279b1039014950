package faults_test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	activeMsg  = `"msg":"active: this ranker holds the lock and publishes"`
	standbyMsg = `"msg":"standby: another ranker holds the lock"`
	runMsg     = `"msg":"run"`
)

// schedulerHang is how long these tests wait for a scheduler to do what it must (become
// active, publish, take over, die) before calling it a hang. A 1-minute scheduler polls
// the lock every few seconds, so this is far beyond any slow machine.
const schedulerHang = 3 * time.Minute

// TestTwoSchedulersOneActive runs two `rank --every 1m` on one database: exactly one becomes
// active and publishes each cutoff once while the other waits; when the active one is
// killed (SIGKILL), the standby takes over and publishes the next cutoff, counting the
// object that landed meanwhile exactly once. It takes one to two real minutes, in parallel
// with the other tests; how long the takeover took is logged, and waits end only at
// schedulerHang, which catches a ranker that never does what it must.
func TestTwoSchedulersOneActive(t *testing.T) {
	needBinary(t)
	t.Parallel()
	began := time.Now()
	dir := t.TempDir()
	logs, db := filepath.Join(dir, "logs"), filepath.Join(dir, "salesrank.db")
	// Two days of sales up to the current hour: the scheduler runs on the real clock.
	gen(t, logs, "--days", "2", "--lines", "40000", "--parts", "2", "--categories", "30", "--products", "5000", "--bad-rate", "0.001", "--seed", "31")

	args := []string{"rank", "--every", "1m", "--logs", logs, "--db", db, "--log-level", "debug"}
	rankers := []*proc{startProc(t, "ranker A", args...), startProc(t, "ranker B", args...)}

	// One of them becomes active and publishes; the other is a standby.
	var active, standby *proc
	ok := eventually(schedulerHang, 100*time.Millisecond, func() bool {
		a, b := strings.Contains(rankers[0].stderr.String(), activeMsg), strings.Contains(rankers[1].stderr.String(), activeMsg)
		switch {
		case a && b:
			t.Fatalf("both rankers became active:\nA:\n%s\nB:\n%s", rankers[0].stderr, rankers[1].stderr)
		case a:
			active, standby = rankers[0], rankers[1]
		case b:
			active, standby = rankers[1], rankers[0]
		}
		return active != nil && len(snapshotCutoffs(t, db)) > 0 && strings.Contains(standby.stderr.String(), standbyMsg)
	})
	if !ok {
		t.Fatalf("after %v: no single active ranker with a snapshot and a standby\nA:\n%s\nB:\n%s", schedulerHang, rankers[0].stderr, rankers[1].stderr)
	}
	first := maxCutoff(snapshotCutoffs(t, db))
	t.Logf("%s is active (first cutoff %s) after %.1fs; %s is the standby", active.name, unix(first), time.Since(began).Seconds(), standby.name)

	// The active one publishes the next cutoff; the standby publishes nothing.
	if !eventually(schedulerHang, 250*time.Millisecond, func() bool { return maxCutoff(snapshotCutoffs(t, db)) > first }) {
		t.Fatalf("no snapshot after cutoff %s within %v\n%s:\n%s", unix(first), schedulerHang, active.name, active.stderr)
	}
	// A run publishes its top lists, and when full ranks are due (a process's first run, a
	// whole hour) the same again with them: one of each kind per cutoff, at most.
	cuts, full := snapshotCutoffs(t, db), fullRanksIDs(t, db)
	perCutoff := map[int64][2]int{} // top lists, full ranks
	for id, c := range cuts {
		n := perCutoff[c]
		if full[id] {
			n[1]++
		} else {
			n[0]++
		}
		perCutoff[c] = n
	}
	for c, n := range perCutoff {
		if n[0] != 1 || n[1] > 1 {
			t.Errorf("cutoff %s was published %d times, and %d times with full ranks, with one active ranker; want once, and at most once", unix(c), n[0], n[1])
		}
	}
	if s := standby.stderr.String(); strings.Contains(s, activeMsg) || strings.Contains(s, runMsg) {
		t.Errorf("the standby ran while the active ranker was alive:\n%s", s)
	}
	var logged map[int64]bool
	eventually(schedulerHang, 100*time.Millisecond, func() bool { // a run is logged once its full ranks are published
		logged = runSnapshots(active.stderr.String())
		for id := range cuts {
			if !logged[id] {
				return false
			}
		}
		return true
	})
	for id := range cuts {
		if !logged[id] {
			t.Errorf("snapshot %d is in the database, but the active ranker logged no run that published it (it logged %v)", id, logged)
		}
	}
	last := maxCutoff(cuts)

	// Kill the active one, then land an object whose sales fall before the next cutoff.
	active.kill()
	killed := time.Now()
	if !active.wait(schedulerHang) {
		t.Fatalf("%s did not die", active.name)
	}
	var b strings.Builder
	for i := range 20 {
		fmt.Fprintf(&b, "%d\t%d\t%d\t%d\t4.50\t3\t%d\n", killed.Add(-30*time.Second).Unix(), 7777777+i%3, 1+i%2, 1+i, i)
	}
	key := killed.UTC().Format("late/2006/01/02/15") + "/part-after-kill.tsv"
	writeFile(t, filepath.Join(logs, key), b.String())

	if !eventually(schedulerHang, 100*time.Millisecond, func() bool { return strings.Contains(standby.stderr.String(), activeMsg) }) {
		t.Fatalf("%s did not take over within %v of the kill:\n%s", standby.name, schedulerHang, standby.stderr)
	}
	tookOver := time.Since(killed)
	next := last + 60
	deadline := time.Unix(next, 0).Add(schedulerHang)
	var id int64
	if !eventually(time.Until(deadline), 250*time.Millisecond, func() bool {
		for i, c := range snapshotCutoffs(t, db) {
			if c >= next {
				id = i
				return true
			}
		}
		return false
	}) {
		t.Fatalf("%s did not publish cutoff %s by %s (killed at %s):\n%s", standby.name, unix(next), deadline.Format(time.TimeOnly), killed.Format(time.TimeOnly), standby.stderr)
	}
	published := time.Since(killed)
	cutoff := time.Unix(snapshotCutoffs(t, db)[id], 0).UTC()

	// The snapshot is the oracle's over every object, the late one counted once.
	objs, err := parseTree(logs)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffRankings(rankingOf(t, db, id), oracleRank(values(objs), cutoff, 100)); d != "" {
		t.Errorf("snapshot %d (cutoff %s) differs from the oracle:\n%s", id, cutoff.Format(time.RFC3339), d)
	}
	man := manifest(t, db)
	if len(man) != len(objs) {
		t.Errorf("manifest holds %d objects, %d landed", len(man), len(objs))
	}
	if m, ok := man[key]; !ok || m.Read != 20 {
		t.Errorf("the object landed after the kill: manifest %+v, want 20 lines", m)
	}
	// The run is logged once its full ranks follow its top lists.
	if !eventually(schedulerHang, 100*time.Millisecond, func() bool { return runSnapshots(standby.stderr.String())[id] }) {
		t.Errorf("the new active ranker logged no run that published snapshot %d:\n%s", id, standby.stderr)
	}
	t.Logf("%s took over %.1fs after the kill and published cutoff %s %.1fs after it; %.1fs in all",
		standby.name, tookOver.Seconds(), cutoff.Format(time.TimeOnly), published.Seconds(), time.Since(began).Seconds())
}

// TestOnceRefusedWhileSchedulerActive starts `rank --every` and then `rank --once` on the
// same database: the second fails at once and names the lock; once the scheduler is
// killed, the kernel has dropped its lock and --once runs.
func TestOnceRefusedWhileSchedulerActive(t *testing.T) {
	needBinary(t)
	t.Parallel()
	dir := t.TempDir()
	logs, db := filepath.Join(dir, "logs"), filepath.Join(dir, "salesrank.db")
	gen(t, logs, "--days", "1", "--lines", "2000", "--categories", "5", "--products", "100", "--seed", "41")
	sched := startProc(t, "scheduler", "rank", "--every", "1m", "--logs", logs, "--db", db)
	if !eventually(schedulerHang, 100*time.Millisecond, func() bool { return strings.Contains(sched.stderr.String(), activeMsg) }) {
		t.Fatalf("the scheduler did not become active within %v:\n%s", schedulerHang, sched.stderr)
	}
	startOnce := time.Now()
	_, stderr, err := tryOnce(t, logs, db, time.Now())
	took := time.Since(startOnce)
	if err == nil {
		t.Fatalf("rank --once succeeded while a scheduler held the lock")
	}
	// Not waiting for the lock shows in the order of events, not in a delay: the refusal
	// came while the scheduler, which holds the lock until it dies, was still running. A
	// --once that waited would have been killed by tryOnce's deadline, without the
	// lock's message.
	if sched.exited() {
		t.Fatalf("the scheduler exited while rank --once ran; the test needs it holding the lock:\n%s", sched.stderr)
	}
	for _, want := range []string{"another ranker is active", ".rank.lock"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("rank --once's error does not say %q:\n%s", want, stderr)
		}
	}
	t.Logf("rank --once failed after %v: %s", took.Round(time.Millisecond), strings.TrimSpace(stderr))

	sched.kill()
	if !sched.wait(schedulerHang) {
		t.Fatal("the scheduler did not die")
	}
	if _, stderr, err := tryOnce(t, logs, db, time.Now()); err != nil {
		t.Errorf("rank --once after the scheduler was killed: %v\n%s", err, stderr)
	}
}

// runSnapshots returns the snapshot ids of the "run" lines a scheduler logged: the run's
// snapshot, and the one of its top lists when its full ranks followed them.
func runSnapshots(stderr string) map[int64]bool {
	out := map[int64]bool{}
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, `"msg":"run"`) {
			continue
		}
		for _, m := range runID.FindAllStringSubmatch(line, -1) {
			id, _ := strconv.ParseInt(m[1], 10, 64)
			out[id] = true
		}
	}
	return out
}

var runID = regexp.MustCompile(`"(?:top_lists_)?snapshot_id":(\d+)`)

func maxCutoff(m map[int64]int64) int64 {
	var c int64
	for _, v := range m {
		c = max(c, v)
	}
	return c
}

func unix(s int64) string { return time.Unix(s, 0).UTC().Format(time.TimeOnly) }
