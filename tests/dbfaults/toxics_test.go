//go:build unix

package dbfaults_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The toxics test's figures.
const (
	rankLatency  = 200 * time.Millisecond // on every answer of PostgreSQL to rank: a run is ~55 round trips
	serveLatency = 500 * time.Millisecond // on every answer of PostgreSQL to serve
	rankBound    = 60 * time.Second       // a faulty run must end within this
	// hangBound is how long rank --once may take to give up on a database that stopped
	// answering mid-run: serve bounds a poll at 30 s; the ranker should not do worse.
	hangBound = 30 * time.Second
	// serveRecovery bounds how long serve takes to serve the latest snapshot once the
	// database answers again (poll 1s, plus a round trip through the latency toxic).
	serveRecovery = 5 * time.Second
	// serveBlackHole bounds how long serve takes to mark its answers stale when the
	// database stops answering without closing connections: a poll may wait 30 s.
	serveBlackHole = 35 * time.Second
	// serveBlackHoleMeasure is how long the test waits to report the figure when it is
	// over serveBlackHole.
	serveBlackHoleMeasure = 50 * time.Second
)

// rankRun is one rank --once through the proxy.
type rankRun struct {
	p      *process
	stdout string
	start  time.Time
}

func startRank(t *testing.T, d *dataset, dsn, name, now string) *rankRun {
	t.Helper()
	dir := t.TempDir()
	r := &rankRun{stdout: filepath.Join(dir, "stdout"), start: time.Now()}
	r.p = startProcess(t, name, filepath.Join(dir, "stderr"), r.stdout, "rank", "--once", "--logs", d.logs, "--db", dsn, "--now", now)
	return r
}

// outcome waits for the run to end (at most bound) and checks that it either published a
// snapshot (exit 0 and a summary) or failed cleanly: exit 1 with one "salesrank: rank: …"
// error line, no panic. It returns the snapshot id (0 if none) and the error line.
func (r *rankRun) outcome(t *testing.T, bound time.Duration) (int64, string, time.Duration) {
	t.Helper()
	code := r.p.wait(bound)
	took := time.Since(r.start)
	checkNoPanic(t, r.p)
	stderr := strings.TrimSpace(r.p.output())
	switch code {
	case 0:
		b, _ := os.ReadFile(r.stdout)
		s, err := decodeSummary(string(b))
		if err != nil {
			t.Errorf("%s: exit 0 but %v", r.p.name, err)
		}
		return s.SnapshotID, "", took
	case 1:
		lines := strings.Split(stderr, "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "salesrank: rank: ") {
			t.Errorf("%s: exit 1, want a last line \"salesrank: rank: …\", got:\n%s", r.p.name, r.p.tail())
		}
		return 0, last, took
	case stillRunning:
		return 0, "", took
	default:
		t.Errorf("%s: exit code %d, want 0 (published) or 1 (a clean error):\n%s", r.p.name, code, r.p.tail())
		return 0, "", took
	}
}

// whenDB polls PostgreSQL (directly) every 10 ms until sql returns true, at most bound, and
// reports whether it did.
func whenDB(t *testing.T, dsn, sql string, bound time.Duration, args ...any) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	for {
		var ok bool
		if err := conn.QueryRow(ctx, sql, args...).Scan(&ok); err == nil && ok {
			return true
		} else if ctx.Err() != nil {
			return false
		} else if err != nil && !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("%s: %v", sql, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// prober asks one replica for a page 20 times a second and keeps every answer.
type prober struct {
	stop    func()
	mu      sync.Mutex
	answers []answer
}

func startProber(t *testing.T, r *replica, categories []int64) *prober {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr := &prober{}
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			a := get(client, r, 0, categories[n%len(categories)])
			pr.mu.Lock()
			pr.answers = append(pr.answers, a)
			pr.mu.Unlock()
		}
	})
	pr.stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(pr.stop)
	return pr
}

// since returns the answers sent at or after from.
func (pr *prober) since(from time.Time) []answer {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	i, _ := slices.BinarySearchFunc(pr.answers, from, func(a answer, t time.Time) int { return a.sent.Compare(t) })
	return append([]answer(nil), pr.answers[i:]...)
}

// waitFor waits until the replica's latest answer satisfies ok, at most bound, and returns
// how long that took (or -1).
func (pr *prober) waitFor(from time.Time, bound time.Duration, ok func(a answer) bool) time.Duration {
	deadline := from.Add(bound)
	for time.Now().Before(deadline) {
		if as := pr.since(from); len(as) > 0 && ok(as[len(as)-1]) {
			for _, a := range as {
				if ok(a) {
					return a.sent.Add(a.took).Sub(from)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return -1
}

// TestRankThroughToxics runs rank --once through a proxy that slows PostgreSQL down, then
// resets connections or stops forwarding at chosen points of a run: each run publishes a
// whole snapshot or exits 1 with a clear error, never leaving half a snapshot; once the
// proxy is healthy the next run needs no repair and publishes exactly what a from-scratch
// run of the same logs does (nothing lost, nothing counted twice).
func TestRankThroughToxics(t *testing.T) {
	needSetup(t)
	runSerially(t)
	dsn, schema := schemaDSN(t)
	d := newDataset(t, dsn)
	// One cutoff for every run, so that the final snapshot can be compared with a
	// from-scratch run of the same logs.
	now := time.Now().UTC().Format(time.RFC3339)
	d.rank("--now", now)

	rx := newToxi(t, upstreamAddr(t, dsn))
	rankDSN := viaAddr(t, dsn, rx.addr)
	rx.addToxic("rank-latency", "latency", "downstream", map[string]any{"latency": rankLatency.Milliseconds()})

	// after waits for one rank --once and checks its outcome and the database.
	after := func(name string, r *rankRun, bound time.Duration) (int64, string) {
		t.Helper()
		id, errLine, took := r.outcome(t, bound)
		switch {
		case id != 0:
			t.Logf("%s: published snapshot %d in %v", name, id, took.Round(time.Millisecond))
		case errLine != "":
			t.Logf("%s: failed cleanly in %v: %s", name, took.Round(time.Millisecond), errLine)
		}
		n := checkConsistent(t, dsn)
		t.Logf("%s: %d stored snapshots, all whole", name, n)
		return id, errLine
	}

	t.Run("latency", func(t *testing.T) {
		d.addLogs()
		r := startRank(t, d, rankDSN, "rank-latency", now)
		if id, _ := after("latency", r, rankBound); id == 0 {
			t.Errorf("rank --once through %v of latency did not publish:\n%s", rankLatency, r.p.tail())
		}
	})

	// Each fault is injected once the run reaches a chosen point, seen in PostgreSQL.
	active := `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND query LIKE $2
		AND state IN ('active', 'idle in transaction'))`
	for _, c := range []struct {
		name, kind string
		attrs      map[string]any
		when, like string // inject once this query runs (pg_stat_activity, LIKE)
	}{
		// After the batch committed, before the snapshot is published: the objects
		// are taken, so the next run must not count them again, nor lose them.
		{"reset-after-batch", "reset_peer", map[string]any{"timeout": 0}, "batch", ""},
		{"reset-in-publish", "reset_peer", map[string]any{"timeout": 0}, "publish", "%INSERT INTO snapshots%"},
		{"timeout-in-publish", "timeout", map[string]any{"timeout": 1000}, "publish", "%INSERT INTO snapshots%"},
		{"reset-in-batch", "reset_peer", map[string]any{"timeout": 0}, "batch-commit", "%INSERT INTO batches%"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d.addLogs()
			var batches int64
			withConn(t, dsn, func(ctx context.Context, conn *pgx.Conn) error {
				return conn.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM batches`).Scan(&batches)
			})
			r := startRank(t, d, rankDSN, "rank-"+c.name, now)
			var hit bool
			if c.when == "batch" {
				hit = whenDB(t, dsn, `SELECT EXISTS (SELECT 1 FROM batches WHERE id > $1)`, rankBound, batches)
			} else {
				hit = whenDB(t, dsn, active, rankBound, schema, c.like)
			}
			if !hit {
				t.Fatalf("the run never reached the point %q:\n%s", c.when, r.p.tail())
			}
			rx.addToxic(c.name, c.kind, "downstream", c.attrs)
			id, errLine := after(c.name, r, rankBound)
			rx.removeToxic(c.name)
			if id == 0 && errLine == "" {
				t.Errorf("rank --once did not end within %v of a %s toxic:\n%s", rankBound, c.kind, r.p.tail())
			}
		})
	}

	t.Run("reset-at-connect", func(t *testing.T) {
		rx.addToxic("reset-at-connect", "reset_peer", "downstream", map[string]any{"timeout": 0})
		defer rx.removeToxic("reset-at-connect")
		r := startRank(t, d, rankDSN, "rank-reset-at-connect", now)
		if id, errLine := after("reset-at-connect", r, rankBound); id != 0 || errLine == "" {
			t.Errorf("rank --once through a proxy that resets every connection: got snapshot %d, error %q; want a clean failure", id, errLine)
		}
	})

	// A black hole: the proxy stops forwarding anything and keeps the connections open,
	// as a network partition or a hung server does.
	t.Run("black-hole", func(t *testing.T) {
		d.addLogs()
		r := startRank(t, d, rankDSN, "rank-black-hole", now)
		if !whenDB(t, dsn, active, rankBound, schema, "%INSERT INTO batches%") {
			t.Fatalf("the run never reached its batch commit:\n%s", r.p.tail())
		}
		hole := time.Now()
		rx.addToxic("black-hole", "timeout", "downstream", map[string]any{"timeout": 0})
		defer rx.removeToxic("black-hole")
		_, errLine, took := r.outcome(t, hangBound)
		if errLine == "" {
			t.Errorf("rank --once still running %v after the database stopped answering mid-run (it holds a write transaction and the write lock): want it to give up with an error",
				time.Since(hole).Round(time.Millisecond))
			// Meanwhile another run straight to PostgreSQL finds the hung one's ranker
			// lock, and must say so rather than wait.
			other := startRank(t, d, dsn, "rank-beside-hung", now)
			if id, errLine, took := other.outcome(t, 20*time.Second); id != 0 || errLine == "" {
				t.Errorf("rank --once beside the hung one: got snapshot %d, error %q after %v; want a quick clean refusal\n%s", id, errLine, took, other.p.tail())
			} else {
				t.Logf("black-hole: a second rank --once, straight to PostgreSQL, failed in %v: %s", took.Round(time.Millisecond), errLine)
			}
			other.p.kill()
			term := time.Now()
			r.p.cmd.Process.Signal(syscall.SIGTERM)
			code := r.p.wait(10 * time.Second)
			t.Logf("black-hole: after SIGTERM, rank exited with code %d in %v: %s", code, time.Since(term).Round(time.Millisecond), lastLine(r.p.output()))
		} else {
			t.Logf("black-hole: rank gave up %v after the database stopped answering (run took %v): %s",
				time.Since(hole).Round(time.Millisecond), took.Round(time.Millisecond), errLine)
		}
		r.p.kill()
		checkConsistent(t, dsn)
	})

	t.Run("recovery", func(t *testing.T) {
		rx.clear()
		r := startRank(t, d, rankDSN, "rank-recovery", now)
		if id, _ := after("recovery", r, rankBound); id == 0 {
			t.Fatalf("rank --once after the toxics were removed did not publish:\n%s", r.p.tail())
		}
		d.checkComplete(now)
	})
}

// TestServeThroughToxics runs a serve replica through a proxy that slows PostgreSQL down,
// resets every connection, then stops forwarding: the replica answers every request 200
// from memory and quickly, marks its answers stale while it cannot reach the database, logs
// the failures, never crashes, and serves the latest snapshot once the database is healthy
// again, without a restart. It mostly waits, so it runs beside the other tests.
func TestServeThroughToxics(t *testing.T) {
	needSetup(t)
	t.Parallel()
	dsn, _ := schemaDSN(t)
	d := newDataset(t, dsn)
	d.rank()
	_, _, cats := currentRows(t, dsn)
	sx := newToxi(t, upstreamAddr(t, dsn))
	srv := startReplica(t, t.TempDir(), "serve", viaAddr(t, dsn, sx.addr))
	pr := startProber(t, srv, cats)

	// publish ranks new logs straight into PostgreSQL and waits until the replica serves
	// the new snapshot, unmarked, within bound.
	publish := func(what string, bound time.Duration) {
		t.Helper()
		d.addLogs()
		id := d.rank().SnapshotID
		from := time.Now()
		took := pr.waitFor(from, bound, func(a answer) bool { return a.snapshot == id && !a.stale })
		if took < 0 {
			t.Errorf("%s: the replica did not serve snapshot %d (unmarked) within %v of its publication\n%s", what, id, bound, srv.p.tail())
			return
		}
		t.Logf("%s: the replica serves snapshot %d %v after rank --once exited", what, id, took.Round(time.Millisecond))
	}
	// staleWithin waits until the replica's answers are marked stale (want true) or
	// unmarked (want false), at most bound, and returns how long it took (-1: never).
	staleWithin := func(from time.Time, want bool, bound time.Duration) time.Duration {
		return pr.waitFor(from, bound, func(a answer) bool { return a.stale == want })
	}

	t.Run("latency", func(t *testing.T) {
		from := time.Now()
		sx.addToxic("latency", "latency", "downstream", map[string]any{"latency": serveLatency.Milliseconds()})
		defer sx.removeToxic("latency")
		publish("latency", serveRecovery)
		for _, a := range pr.since(from) {
			if a.stale {
				t.Errorf("answer at %s marked stale while the database was only slow", a.sent.Format("15:04:05.000"))
				break
			}
		}
	})

	t.Run("reset", func(t *testing.T) {
		from := time.Now()
		sx.addToxic("reset", "reset_peer", "downstream", map[string]any{"timeout": 0})
		if took := staleWithin(from, true, 3*time.Second); took < 0 {
			t.Errorf("answers not marked stale within 3s of the database resetting every connection")
		} else {
			t.Logf("reset: answers marked stale %v after every connection was reset", took.Round(time.Millisecond))
		}
		time.Sleep(2 * time.Second)
		sx.removeToxic("reset")
		from = time.Now()
		if took := staleWithin(from, false, serveRecovery); took < 0 {
			t.Errorf("answers still marked stale %v after the resets stopped", serveRecovery)
		} else {
			t.Logf("reset: answers unmarked %v after the resets stopped", took.Round(time.Millisecond))
		}
	})

	// A black hole: the proxy keeps every connection open and forwards nothing, as a
	// network partition or a hung server does. The replica learns of it only when a poll
	// times out.
	t.Run("black-hole", func(t *testing.T) {
		from := time.Now()
		sx.addToxic("black-hole", "timeout", "downstream", map[string]any{"timeout": 0})
		defer sx.removeToxic("black-hole")
		took := staleWithin(from, true, serveBlackHoleMeasure)
		switch {
		case took < 0:
			t.Errorf("answers not marked stale within %v of the database ceasing to answer", serveBlackHoleMeasure)
		case took > serveBlackHole:
			t.Errorf("answers marked stale only %v after the database ceased to answer, want within %v (a poll is bounded at 30 s)",
				took.Round(time.Millisecond), serveBlackHole)
		default:
			t.Logf("black-hole: answers marked stale %v after the database ceased to answer", took.Round(time.Millisecond))
		}
	})

	t.Run("recovery", func(t *testing.T) {
		sx.clear()
		publish("recovery", serveRecovery)
	})

	pr.stop()
	all := pr.since(time.Time{})
	var (
		failed  []string
		nFailed int
		took    []time.Duration
	)
	for _, a := range all {
		if a.err != "" {
			nFailed++
			if len(failed) < 5 {
				failed = append(failed, fmt.Sprintf("%s: %s", a.sent.Format("15:04:05.000"), a.err))
			}
		}
		took = append(took, a.took)
	}
	slices.Sort(took)
	t.Logf("replica: %d answers through every fault, %d failed; latency p50 %v, p99 %v, max %v", len(all), nFailed,
		pct(took, 0.50), pct(took, 0.99), pct(took, 1))
	if nFailed > 0 {
		t.Errorf("the replica failed %d requests, want none; the first:\n  %s", nFailed, strings.Join(failed, "\n  "))
	}
	if srv.p.exited() {
		t.Errorf("serve exited: %v\n%s", srv.p.err, srv.p.tail())
	}
	checkNoPanic(t, srv.p)
	out := srv.p.output()
	for _, want := range []string{"snapshot source failed", "snapshot source recovered"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve's log lacks %q:\n%s", want, srv.p.tail())
		}
	}
	if t.Failed() {
		t.Logf("serve's log:\n%s", srv.p.tail())
	}
}

func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))].Round(time.Microsecond)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
