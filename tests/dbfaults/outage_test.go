//go:build unix

package dbfaults_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// The outage test's figures: the load it sends (the rate reached is logged, not asserted:
// it measures the machine), how long the database is away, and how long the test waits for
// both replicas to serve a new snapshot before calling it a hang.
const (
	outageRate    = 800 // requests a second, to both replicas in turn
	outageWorkers = 16
	outageLength  = 30 * time.Second
	catchUpHang   = time.Minute
)

// TestOutageUnderLoad takes PostgreSQL away for 30 s under a steady load of API requests to
// two replicas that reach it through a proxy: every request still gets a 200 from memory;
// during the outage each replica comes to mark its answers X-Snapshot-Stale: true and,
// once it does, marks every later one until the database is back; /readyz stays 200. Once
// the database is back, both replicas serve a snapshot published by rank --once, without a
// restart, and once a replica has served it, it never answers from an older one again.
// How long each change took is logged.
func TestOutageUnderLoad(t *testing.T) {
	needSetup(t)
	runSerially(t)
	dsn, _ := schemaDSN(t)
	d := newDataset(t, dsn)
	first := d.rank()
	d.addLogs() // the second snapshot's new objects, written before the load starts
	_, _, cats := currentRows(t, dsn)
	if len(cats) < numCategories/2 {
		t.Fatalf("snapshot %d covers %d categories, want about %d", first.SnapshotID, len(cats), numCategories)
	}

	x := newToxi(t, upstreamAddr(t, dsn))
	via := viaAddr(t, dsn, x.addr)
	dir := t.TempDir()
	replicas := []*replica{startReplica(t, dir, "serve-a", via), startReplica(t, dir, "serve-b", via)}

	// /readyz is probed four times a second on each replica through the test.
	var (
		readyMu  sync.Mutex
		notReady []string
		readyN   int
	)
	stopReady := make(chan struct{})
	var readyWG sync.WaitGroup
	for _, r := range replicas {
		readyWG.Go(func() {
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stopReady:
					return
				case <-tick.C:
				}
				code, body := r.readyz()
				readyMu.Lock()
				readyN++
				if code != http.StatusOK && len(notReady) < 5 {
					notReady = append(notReady, fmt.Sprintf("%s %s: /readyz %d %q", time.Now().Format("15:04:05.000"), r.addr, code, body))
				}
				readyMu.Unlock()
			}
		})
	}
	stopProbing := sync.OnceFunc(func() { close(stopReady); readyWG.Wait() })
	t.Cleanup(stopProbing)

	l := startLoad(t, replicas, cats, outageWorkers, outageRate)
	time.Sleep(3 * time.Second)

	down := time.Now()
	x.disable()
	t.Logf("database unreachable at %s for %v", down.Format("15:04:05.000"), outageLength)
	time.Sleep(outageLength)
	x.enable()
	up := time.Now()
	t.Logf("database reachable again at %s", up.Format("15:04:05.000"))

	// The new snapshot goes to PostgreSQL directly, as the ranker's own connection would.
	rankStart := time.Now()
	second := d.rank()
	rankExit := time.Now()
	t.Logf("rank --once published snapshot %d in %v (exit at %s)", second.SnapshotID, rankExit.Sub(rankStart).Round(time.Millisecond), rankExit.Format("15:04:05.000"))

	// Wait until the last answer of each replica names the new snapshot.
	deadline := rankExit.Add(catchUpHang)
	for {
		got := 0
		answers := l.snapshotNow()
		for i := range replicas {
			for j := len(answers) - 1; j >= 0; j-- {
				if answers[j].replica == i && answers[j].status == http.StatusOK {
					if answers[j].snapshot == second.SnapshotID {
						got++
					}
					break
				}
			}
		}
		if got == len(replicas) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a little load on the new snapshot
	answers, rate := l.stop()
	stopProbing()

	// Every request answered 200 from memory.
	var failed []string
	nFailed := 0
	for _, a := range answers {
		if a.err != "" {
			nFailed++
			if len(failed) < 10 {
				failed = append(failed, fmt.Sprintf("%s replica %d: %s", a.sent.Format("15:04:05.000"), a.replica, a.err))
			}
		}
	}
	t.Logf("load: %d requests at %.0f requests/s to %d replicas, %d failed", len(answers), rate, len(replicas), nFailed)
	if nFailed > 0 {
		t.Errorf("got %d failed requests of %d, want none; the first:\n  %s", nFailed, len(answers), strings.Join(failed, "\n  "))
	}
	readyMu.Lock()
	t.Logf("/readyz: %d probes, %d not 200", readyN, len(notReady))
	for _, s := range notReady {
		t.Errorf("replica not ready during the test: %s", s)
	}
	readyMu.Unlock()

	// Staleness: none before the outage; during it, each replica's answers turn stale and,
	// once one is, every answer sent after it came back is too until the outage ends; none
	// once a replica serves the new snapshot. The answers are in the order they were
	// recorded, which is not the order they were sent in: the checks compare times.
	var (
		firstStale           = make([]time.Time, len(replicas)) // when the first stale answer of the outage came back
		lastFresh            = make([]time.Time, len(replicas)) // last unmarked answer sent during the outage
		freshAgain           = make([]time.Time, len(replicas)) // first unmarked answer after it
		caughtUp             = make([]time.Time, len(replicas)) // first answer with the new snapshot came back
		oldAfter             = make([]time.Time, len(replicas)) // last answer with an older one
		staleBefore, outN    int
		unmarked, staleAfter []string
		wentBack             []string // answers from an older snapshot after the new one was served
		outStale             int
	)
	for _, a := range answers {
		if a.status == http.StatusOK && a.sent.After(down) && a.sent.Add(a.took).Before(up) && a.stale {
			if done := a.sent.Add(a.took); firstStale[a.replica].IsZero() || done.Before(firstStale[a.replica]) {
				firstStale[a.replica] = done
			}
		}
		if a.status == http.StatusOK && a.snapshot == second.SnapshotID {
			if done := a.sent.Add(a.took); caughtUp[a.replica].IsZero() || done.Before(caughtUp[a.replica]) {
				caughtUp[a.replica] = done
			}
		}
	}
	for _, a := range answers {
		if a.status != http.StatusOK {
			continue
		}
		i := a.replica
		done := a.sent.Add(a.took)
		switch {
		case done.Before(down):
			if a.stale {
				staleBefore++
			}
		case a.sent.After(down) && done.Before(up):
			outN++
			if a.stale {
				outStale++
			} else {
				if a.sent.After(lastFresh[i]) {
					lastFresh[i] = a.sent
				}
				if !firstStale[i].IsZero() && a.sent.After(firstStale[i]) && len(unmarked) < 5 {
					unmarked = append(unmarked, fmt.Sprintf("replica %d at %s (%v into the outage, %v after its first stale answer)", i,
						a.sent.Format("15:04:05.000"), a.sent.Sub(down).Round(time.Millisecond), a.sent.Sub(firstStale[i]).Round(time.Millisecond)))
				}
			}
		case a.sent.After(up):
			if !a.stale && freshAgain[i].IsZero() {
				freshAgain[i] = done
			}
		}
		if a.snapshot == second.SnapshotID {
			if a.stale && len(staleAfter) < 5 {
				staleAfter = append(staleAfter, fmt.Sprintf("replica %d at %s", i, a.sent.Format("15:04:05.000")))
			}
		} else {
			if a.sent.After(rankStart) && done.After(oldAfter[i]) {
				oldAfter[i] = done
			}
			if !caughtUp[i].IsZero() && a.sent.After(caughtUp[i]) && len(wentBack) < 5 {
				wentBack = append(wentBack, fmt.Sprintf("replica %d: snapshot %d to a request sent at %s, %v after it had answered from snapshot %d",
					i, a.snapshot, a.sent.Format("15:04:05.000"), a.sent.Sub(caughtUp[i]).Round(time.Millisecond), second.SnapshotID))
			}
		}
	}
	if staleBefore > 0 {
		t.Errorf("%d answers before the outage were marked X-Snapshot-Stale, want none", staleBefore)
	}
	t.Logf("outage: %d answers, %d marked stale", outN, outStale)
	for i := range replicas {
		t.Logf("replica %d: first stale answer %v after the database went; last unmarked one sent %v after; unmarked again %v after it came back",
			i, since(down, firstStale[i]), since(down, lastFresh[i]), since(up, freshAgain[i]))
		if firstStale[i].IsZero() {
			t.Errorf("replica %d: no answer during the outage was marked X-Snapshot-Stale", i)
		}
	}
	for _, s := range unmarked {
		t.Errorf("answer during the outage, sent after the replica's first stale answer, not marked X-Snapshot-Stale: %s", s)
	}
	for _, s := range staleAfter {
		t.Errorf("answer with the new snapshot still marked X-Snapshot-Stale: %s", s)
	}
	for _, s := range wentBack {
		t.Errorf("a replica went back to an older snapshot after serving the new one: %s", s)
	}

	// The catch-up: every replica served the new snapshot (and, checked above, never an
	// older one after it). Logged: from the ranker's exit to the last answer that named an
	// older snapshot.
	var worst time.Duration
	for i := range replicas {
		if caughtUp[i].IsZero() {
			t.Errorf("replica %d never served snapshot %d within %v of the ranker's exit\n%s", i, second.SnapshotID, catchUpHang, replicas[i].p.tail())
			continue
		}
		lag := oldAfter[i].Sub(rankExit)
		t.Logf("replica %d: first answer with snapshot %d %+v after rank's exit; last with an older one %+v after it",
			i, second.SnapshotID, caughtUp[i].Sub(rankExit).Round(time.Millisecond), lag.Round(time.Millisecond))
		worst = max(worst, lag)
	}
	t.Logf("both replicas served snapshot %d within %v of rank's exit (negative: before it exited, on the commit's NOTIFY)", second.SnapshotID, worst.Round(time.Millisecond))

	for _, r := range replicas {
		if r.p.exited() {
			t.Errorf("%s exited during the test: %v\n%s", r.p.name, r.p.err, r.p.tail())
		}
		checkNoPanic(t, r.p)
		out := r.p.output()
		for _, want := range []string{"snapshot source failed", "snapshot source recovered"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: log lacks %q:\n%s", r.p.name, want, r.p.tail())
			}
		}
	}
	if t.Failed() {
		for _, r := range replicas {
			t.Logf("%s log:\n%s", r.p.name, r.p.tail())
		}
	}
	checkConsistent(t, dsn)
}

// since returns how long after from t is, or "never".
func since(from, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(from).Round(time.Millisecond).String()
}
