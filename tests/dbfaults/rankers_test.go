//go:build unix

package dbfaults_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The schedulers' period, and how long the test waits for a scheduler to do what it must
// (publish, take over, exit) before calling it a hang. The standby polls the lock every
// 5 s; how long the takeover took is logged, not asserted.
const (
	rankEvery  = time.Minute
	rankerHang = 3 * time.Minute
)

// logLine is the part of a ranker's JSON log line the test reads.
type logLine struct {
	Time       time.Time `json:"time"`
	Level      string    `json:"level"`
	Msg        string    `json:"msg"`
	SnapshotID int64     `json:"snapshot_id"`
	Cutoff     time.Time `json:"cutoff"`
	Err        string    `json:"err"`
}

// rankerLog returns the lines of a ranker's log that say it published, and whether it ever
// said it was active, and when it first did.
func rankerLog(t *testing.T, p *process) (runs []logLine, active bool, since time.Time) {
	t.Helper()
	for _, s := range strings.Split(p.output(), "\n") {
		var l logLine
		if s == "" || json.Unmarshal([]byte(s), &l) != nil {
			continue
		}
		switch {
		case l.Msg == "run" && l.SnapshotID != 0:
			runs = append(runs, l)
		case strings.HasPrefix(l.Msg, "active"):
			if !active {
				since = l.Time
			}
			active = true
		}
	}
	return runs, active, since
}

// TestTwoRankers runs two rank --every 1m schedulers on one PostgreSQL database: exactly
// one publishes, once per minute; when it is killed (SIGKILL: no chance to release
// anything) the other takes over through the advisory lock, only after the kill, and
// publishes the next cutoff.
func TestTwoRankers(t *testing.T) {
	needSetup(t)
	t.Parallel()
	dsn, _ := schemaDSN(t)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	// A day of sales before now, in minute buckets: the scheduler's first run counts it.
	salesrank(t, "gen", "--out", logs, "--days", "1", "--lines", "20000", "--products", "2000", "--categories", "10")

	// Every snapshot row is seen by polling: the store keeps only the last 3.
	var (
		mu     sync.Mutex
		seen   = map[int64]snapRow{}
		pollEr error
	)
	stopPoll := make(chan struct{})
	var pollWG sync.WaitGroup
	pollWG.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopPoll:
				return
			case <-tick.C:
			}
			rows, err := snapshots(t, dsn)
			mu.Lock()
			if err != nil && !strings.Contains(err.Error(), "does not exist") {
				pollEr = err
			}
			for _, r := range rows {
				seen[r.id] = r
			}
			mu.Unlock()
		}
	})
	stopPolling := sync.OnceFunc(func() { close(stopPoll); pollWG.Wait() })
	t.Cleanup(stopPolling)
	// published returns the snapshots seen so far, by id.
	published := func() []snapRow {
		mu.Lock()
		defer mu.Unlock()
		var out []snapRow
		for _, r := range seen {
			out = append(out, r)
		}
		slices.SortFunc(out, func(a, b snapRow) int { return int(a.id - b.id) })
		return out
	}
	// waitSnapshots waits until ok holds for the snapshots seen, at most until deadline.
	waitSnapshots := func(deadline time.Time, ok func([]snapRow) bool) bool {
		for time.Now().Before(deadline) {
			if ok(published()) {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		return ok(published())
	}

	start := time.Now()
	rankers := []*process{
		startProcess(t, "ranker-a", filepath.Join(dir, "ranker-a.log"), "", "rank", "--logs", logs, "--db", dsn, "--every", rankEvery.String()),
		startProcess(t, "ranker-b", filepath.Join(dir, "ranker-b.log"), "", "rank", "--logs", logs, "--db", dsn, "--every", rankEvery.String()),
	}
	dump := func() {
		for _, p := range rankers {
			t.Logf("%s log:\n%s", p.name, p.tail())
		}
		for _, r := range published() {
			t.Logf("snapshot %d: cutoff %s, published %s", r.id, time.Unix(r.cutoff, 0).UTC().Format("15:04:05"),
				time.Unix(0, r.publishedAt).UTC().Format("15:04:05.000"))
		}
	}

	// The first run publishes the current minute at once; then one publishes at every
	// minute. Wait for two cutoffs, so that one minute's turn is seen.
	if !waitSnapshots(start.Add(rankerHang), func(s []snapRow) bool { return len(s) >= 1 }) {
		dump()
		t.Fatalf("no snapshot within %v of starting two rankers", rankerHang)
	}
	firstCutoff := published()[0].cutoff
	if !waitSnapshots(time.Unix(firstCutoff, 0).Add(rankEvery+rankerHang), func(s []snapRow) bool { return s[len(s)-1].cutoff > firstCutoff }) {
		dump()
		t.Fatalf("no snapshot of the cutoff after %s", time.Unix(firstCutoff, 0).UTC().Format("15:04:05"))
	}
	time.Sleep(time.Second) // a late second publisher would show by now

	var activeIdx = -1
	for i, p := range rankers {
		runs, active, _ := rankerLog(t, p)
		if len(runs) > 0 || active {
			if activeIdx >= 0 {
				dump()
				t.Fatalf("both rankers say they are active or published")
			}
			activeIdx = i
		}
	}
	if activeIdx < 0 {
		dump()
		t.Fatal("neither ranker's log says it published")
	}
	act, standby := rankers[activeIdx], rankers[1-activeIdx]
	before := published()
	// A run publishes its top lists, and when full ranks are due (a process's first run, a
	// whole hour) the same again with them: one of each kind per cutoff, at most.
	type kinds struct{ topLists, fullRanks int }
	perCutoff := map[int64]kinds{}
	for _, r := range before {
		k := perCutoff[r.cutoff]
		if r.fullRanks {
			k.fullRanks++
		} else {
			k.topLists++
		}
		perCutoff[r.cutoff] = k
	}
	for c, k := range perCutoff {
		if k.topLists != 1 || k.fullRanks > 1 {
			t.Errorf("cutoff %s: %d snapshots of top lists and %d with full ranks before the kill, want 1 and at most 1",
				time.Unix(c, 0).UTC().Format("15:04:05"), k.topLists, k.fullRanks)
		}
	}
	runs, _, _ := rankerLog(t, act)
	t.Logf("%s is active: %d runs logged, snapshots %v; %s stands by", act.name, len(runs), ids(before), standby.name)
	lastCutoff := before[len(before)-1].cutoff
	lastID := before[len(before)-1].id

	// kill -9 the active ranker: its session ends, and with it the advisory lock.
	killed := time.Now()
	if err := syscall.Kill(-act.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", act.name, err)
	}
	<-act.done
	nextDue := time.Unix(lastCutoff, 0).Add(rankEvery)
	for !nextDue.After(killed) {
		nextDue = nextDue.Add(rankEvery)
	}
	if !waitSnapshots(nextDue.Add(rankerHang), func(s []snapRow) bool { return s[len(s)-1].cutoff > lastCutoff }) {
		dump()
		t.Fatalf("the standby did not publish a cutoff after %s within %v of its minute (killed at %s)",
			time.Unix(lastCutoff, 0).UTC().Format("15:04:05"), rankerHang, killed.UTC().Format("15:04:05.000"))
	}
	after := published()
	var takeover, next snapRow
	for _, r := range after {
		if r.id > lastID && takeover.id == 0 {
			takeover = r
		}
		if r.cutoff > lastCutoff && next.id == 0 {
			next = r
		}
	}
	nextAt := time.Unix(0, next.publishedAt)
	t.Logf("killed %s at %s; %s published snapshot %d (cutoff %s) %v after the kill; the next cutoff %s as snapshot %d %v after the kill, %v after that minute began",
		act.name, killed.UTC().Format("15:04:05.000"), standby.name,
		takeover.id, time.Unix(takeover.cutoff, 0).UTC().Format("15:04:05"), time.Unix(0, takeover.publishedAt).Sub(killed).Round(time.Millisecond),
		time.Unix(next.cutoff, 0).UTC().Format("15:04:05"), next.id, nextAt.Sub(killed).Round(time.Millisecond),
		nextAt.Sub(time.Unix(next.cutoff, 0)).Round(time.Millisecond))
	if takeover.cutoff == lastCutoff {
		t.Logf("note: on taking over, %s published cutoff %s again (snapshot %d after %d): a scheduler's first run publishes the current cutoff",
			standby.name, time.Unix(lastCutoff, 0).UTC().Format("15:04:05"), takeover.id, lastID)
	}
	sbRuns, sbActive, sbSince := rankerLog(t, standby)
	if !sbActive || len(sbRuns) == 0 {
		t.Errorf("%s published but its log does not say it became active and ran", standby.name)
	} else if !sbSince.After(killed) {
		t.Errorf("%s says it became active at %s, before %s was killed at %s", standby.name,
			sbSince.UTC().Format("15:04:05.000"), act.name, killed.UTC().Format("15:04:05.000"))
	}
	for _, r := range sbRuns {
		if r.Time.Before(killed) {
			t.Errorf("%s published snapshot %d at %s, before %s was killed", standby.name, r.SnapshotID, r.Time.UTC().Format("15:04:05.000"), act.name)
		}
	}

	// A graceful stop of the survivor.
	if err := standby.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM to %s: %v", standby.name, err)
	}
	if code := standby.wait(rankerHang); code != 0 {
		t.Errorf("%s: exit code %d after SIGTERM, want 0\n%s", standby.name, code, standby.tail())
	}
	stopPolling()
	mu.Lock()
	if pollEr != nil {
		t.Errorf("polling the snapshots: %v", pollEr)
	}
	mu.Unlock()
	for _, p := range rankers {
		checkNoPanic(t, p)
	}
	checkConsistent(t, dsn)
	if t.Failed() {
		dump()
	}
}

func ids(rows []snapRow) string {
	var s []string
	for _, r := range rows {
		s = append(s, fmt.Sprintf("%d@%s", r.id, time.Unix(r.cutoff, 0).UTC().Format("15:04")))
	}
	return strings.Join(s, " ")
}
