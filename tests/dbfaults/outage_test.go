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

// The outage test's figures: the load it must sustain, how long the database is away, how
// soon after it goes the replicas must say their answers are stale, and how soon after the
// ranker exits both replicas must serve its snapshot.
const (
	outageRate     = 800 // requests a second, to both replicas in turn
	outageMinRate  = 500
	outageWorkers  = 16
	outageLength   = 30 * time.Second
	staleGrace     = 2 * time.Second // the first failed poll comes within --poll (1s)
	catchUpWithin  = 2 * time.Second
	catchUpTimeout = 15 * time.Second
)

// TestOutageUnderLoad takes PostgreSQL away for 30 s under a steady load of API requests to
// two replicas that reach it through a proxy: every request still gets a 200 from memory,
// those during the outage say X-Snapshot-Stale: true, /readyz stays 200; once the database
// is back, a snapshot published by rank --once is served by both replicas within 2 s of
// the ranker's exit, without a restart.
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
	deadline := rankExit.Add(catchUpTimeout)
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
	if rate < outageMinRate {
		t.Errorf("got %.0f requests/s, want at least %d", rate, outageMinRate)
	}
	readyMu.Lock()
	t.Logf("/readyz: %d probes, %d not 200", readyN, len(notReady))
	for _, s := range notReady {
		t.Errorf("replica not ready during the test: %s", s)
	}
	readyMu.Unlock()

	// Staleness: none before the outage; every answer sent from staleGrace after it began
	// until it ended is marked; none once a replica serves the new snapshot.
	var (
		firstStale           = make([]time.Time, len(replicas))
		lastFresh            = make([]time.Time, len(replicas)) // last unmarked answer sent during the outage
		freshAgain           = make([]time.Time, len(replicas)) // first unmarked answer after it
		caughtUp             = make([]time.Time, len(replicas)) // first answer with the new snapshot
		oldAfter             = make([]time.Time, len(replicas)) // last answer with an older one
		staleBefore, outN    int
		unmarked, staleAfter []string
		outStale             int
	)
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
				if firstStale[i].IsZero() {
					firstStale[i] = done
				}
			} else {
				lastFresh[i] = a.sent
				if a.sent.After(down.Add(staleGrace)) && len(unmarked) < 5 {
					unmarked = append(unmarked, fmt.Sprintf("replica %d at %s (%v into the outage)", i, a.sent.Format("15:04:05.000"), a.sent.Sub(down).Round(time.Millisecond)))
				}
			}
		case a.sent.After(up):
			if !a.stale && freshAgain[i].IsZero() {
				freshAgain[i] = done
			}
		}
		if a.snapshot == second.SnapshotID {
			if caughtUp[i].IsZero() || done.Before(caughtUp[i]) {
				caughtUp[i] = done
			}
			if a.stale && len(staleAfter) < 5 {
				staleAfter = append(staleAfter, fmt.Sprintf("replica %d at %s", i, a.sent.Format("15:04:05.000")))
			}
		} else if a.sent.After(rankStart) && done.After(oldAfter[i]) {
			oldAfter[i] = done
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
		t.Errorf("answer during the outage, after the first %v, not marked X-Snapshot-Stale: %s", staleGrace, s)
	}
	for _, s := range staleAfter {
		t.Errorf("answer with the new snapshot still marked X-Snapshot-Stale: %s", s)
	}

	// The catch-up: from the ranker's exit to the last answer that named an older
	// snapshot (each replica serves the new one from then on).
	var worst time.Duration
	for i := range replicas {
		if caughtUp[i].IsZero() {
			t.Errorf("replica %d never served snapshot %d within %v of the ranker's exit\n%s", i, second.SnapshotID, catchUpTimeout, replicas[i].p.tail())
			continue
		}
		lag := oldAfter[i].Sub(rankExit)
		t.Logf("replica %d: first answer with snapshot %d %+v after rank's exit; last with an older one %+v after it",
			i, second.SnapshotID, caughtUp[i].Sub(rankExit).Round(time.Millisecond), lag.Round(time.Millisecond))
		worst = max(worst, lag)
	}
	t.Logf("both replicas served snapshot %d within %v of rank's exit (negative: before it exited, on the commit's NOTIFY)", second.SnapshotID, worst.Round(time.Millisecond))
	if worst > catchUpWithin {
		t.Errorf("replicas served snapshot %d only %v after rank --once exited, want within %v", second.SnapshotID, worst.Round(time.Millisecond), catchUpWithin)
	}

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
