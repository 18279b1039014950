//go:build unix

package dbfaults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The toxics tests' figures. The bounds only catch a hang: each is several times what the
// step it waits for needs on a busy machine, and how long a step took is logged, never
// asserted.
const (
	rankLatency  = 200 * time.Millisecond // on every answer of PostgreSQL to rank: a run is ~55 round trips
	serveLatency = 500 * time.Millisecond // on every answer of PostgreSQL to serve
	// rankHang bounds a rank --once through a faulty proxy: the ranker bounds each database
	// step at 20 s (ranker.DefaultDBTimeout), so a run that gives up does so well before.
	rankHang = 2 * time.Minute
	// serveHang bounds how long serve may take to mark its answers stale, or to serve the
	// latest snapshot again, after a fault starts or ends: it polls every second, and a
	// poll that gets no answer gives up after 30 s.
	serveHang = 2 * time.Minute
)

// rankRun is one rank --once through the proxy.
type rankRun struct {
	p      *process
	stdout string
	start  time.Time
}

// startRank starts rank --once at now with every product ranked (checkComplete compares
// them all) and debug logs, which name each step as it begins (phases reads them).
func startRank(t *testing.T, d *dataset, dsn, name, now string) *rankRun {
	t.Helper()
	dir := t.TempDir()
	r := &rankRun{stdout: filepath.Join(dir, "stdout"), start: time.Now()}
	r.p = startProcess(t, name, filepath.Join(dir, "stderr"), r.stdout, "rank", "--once", "--logs", d.logs, "--db", dsn, "--now", now,
		"--top", strconv.Itoa(allTop), "--log-level", "debug")
	return r
}

// The steps of a run, as its debug log announces them (internal/ranker).
const (
	phaseCommit  = "committing batch"
	phaseDone    = "batch committed"
	phasePublish = "publishing snapshot"
)

// phases returns the steps the run's debug log announced, in order.
func (r *rankRun) phases(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, s := range strings.Split(r.p.output(), "\n") {
		var l struct {
			Level, Msg string
		}
		if !strings.HasPrefix(s, "{") {
			continue
		}
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("%s: log line %q: %v", r.p.name, s, err)
		}
		if l.Level == "DEBUG" {
			out = append(out, l.Msg)
		}
	}
	return out
}

// checkPhase fails t unless the run failed (the fault hit it) with an error from op, its
// last announced step being phase, and after every step in also: proof that the fault
// struck the step the test names, not one before or after it.
func (r *rankRun) checkPhase(t *testing.T, id int64, errLine, phase, op string, also ...string) {
	t.Helper()
	ph := r.phases(t)
	switch {
	case id != 0:
		t.Errorf("%s published snapshot %d: the fault missed the %q step it was meant for (steps %q)", r.p.name, id, phase, ph)
	case errLine == "":
		t.Errorf("%s did not fail cleanly, so the fault's step is unknown (steps %q)", r.p.name, ph)
	case len(ph) == 0 || ph[len(ph)-1] != phase:
		t.Errorf("%s failed after the steps %q, want the last to be %q: the fault struck another step", r.p.name, ph, phase)
	case !strings.Contains(errLine, op):
		t.Errorf("%s failed with %q, want an error from %q", r.p.name, errLine, op)
	default:
		for _, a := range also {
			if !slices.Contains(ph, a) {
				t.Errorf("%s failed after the steps %q, want %q among them", r.p.name, ph, a)
			}
		}
		if !t.Failed() {
			t.Logf("%s: the fault struck step %q (steps %q): %s", r.p.name, phase, ph, errLine)
		}
	}
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
		b, err := os.ReadFile(r.stdout)
		if err != nil {
			t.Fatalf("%s: read its stdout: %v", r.p.name, err)
		}
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

// whenLogged waits until the run's debug log announces a step, and reports whether it did
// within bound.
func whenLogged(r *rankRun, msg string, bound time.Duration) bool {
	for deadline := time.Now().Add(bound); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(r.p.output(), `"msg":"`+msg+`"`) {
			return true
		}
	}
	return false
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
// resets connections or stops forwarding at chosen steps of a run: each run publishes a
// whole snapshot or exits 1 with a clear error, never leaving half a snapshot, and its
// debug log and error show that the fault struck the step the subtest names. Once the
// proxy is healthy the next run needs no repair and publishes, product by product, what
// the brute-force oracle makes of every log object (nothing lost, nothing counted twice).
func TestRankThroughToxics(t *testing.T) {
	needSetup(t)
	runSerially(t)
	dsn, schema := schemaDSN(t)
	d := newDataset(t, dsn)
	// One cutoff for every run, so that the final snapshot can be compared with the
	// oracle's ranking of the same logs.
	now := time.Now().UTC().Format(time.RFC3339)
	d.rank("--now", now, "--top", strconv.Itoa(allTop))

	rx := newToxi(t, upstreamAddr(t, dsn))
	rankDSN := viaAddr(t, dsn, rx.addr)
	rx.addToxic("rank-latency", "latency", "downstream", map[string]any{"latency": rankLatency.Milliseconds()})

	// after waits for one rank --once and checks its outcome and the database.
	after := func(name string, r *rankRun) (int64, string) {
		t.Helper()
		id, errLine, took := r.outcome(t, rankHang)
		switch {
		case id != 0:
			t.Logf("%s: published snapshot %d in %v", name, id, took.Round(time.Millisecond))
		case errLine != "":
			t.Logf("%s: failed cleanly in %v: %s", name, took.Round(time.Millisecond), errLine)
		default:
			t.Errorf("%s: rank --once still running %v after it started: a hang\n%s", name, rankHang, r.p.tail())
		}
		n := checkConsistent(t, dsn)
		t.Logf("%s: %d stored snapshots, all whole", name, n)
		return id, errLine
	}
	maxBatch := func() int64 {
		t.Helper()
		var id int64
		if err := withConn(t, dsn, func(ctx context.Context, conn *pgx.Conn) error {
			return conn.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM batches`).Scan(&id)
		}); err != nil {
			t.Fatalf("read the last batch id: %v", err)
		}
		return id
	}

	t.Run("latency", func(t *testing.T) {
		d.addLogs()
		r := startRank(t, d, rankDSN, "rank-latency", now)
		if id, _ := after("latency", r); id == 0 {
			t.Errorf("rank --once through %v of latency did not publish:\n%s", rankLatency, r.p.tail())
		}
	})

	// Each fault is injected once the run reaches a chosen step, seen in PostgreSQL. The
	// latency toxic holds every answer for rankLatency, so the answer to the statement seen
	// is still on its way when the fault is added, and meets it.
	active := `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND query LIKE $2
		AND state IN ('active', 'idle in transaction'))`
	for _, c := range []struct {
		name, kind string
		attrs      map[string]any
		when, like string // inject once this query runs (pg_stat_activity, LIKE)
		// The proof that it struck that step: the run's last announced step, the
		// operation its error names, and steps that must have come before.
		phase, op string
		before    []string
	}{
		// After the batch committed, before the snapshot is published: the objects
		// are taken, so the next run must not count them again, nor lose them.
		{"reset-after-batch", "reset_peer", map[string]any{"timeout": 0}, "batch", "", phasePublish, "publish snapshot", []string{phaseDone}},
		{"reset-in-publish", "reset_peer", map[string]any{"timeout": 0}, "publish", "%INSERT INTO snapshots%", phasePublish, "publish snapshot", []string{phaseDone}},
		{"timeout-in-publish", "timeout", map[string]any{"timeout": 1000}, "publish", "%INSERT INTO snapshots%", phasePublish, "publish snapshot", []string{phaseDone}},
		{"reset-in-batch", "reset_peer", map[string]any{"timeout": 0}, "batch-commit", "%INSERT INTO batches%", phaseCommit, "commit batch", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			d.addLogs()
			batches := maxBatch()
			r := startRank(t, d, rankDSN, "rank-"+c.name, now)
			var hit bool
			if c.when == "batch" {
				// The batch is visible once PostgreSQL committed it, but the answer to the
				// COMMIT may still be on its way to rank (a busy machine, a slow proxy):
				// wait for rank to say it has it, so that the fault meets the publication.
				hit = whenDB(t, dsn, `SELECT EXISTS (SELECT 1 FROM batches WHERE id > $1)`, rankHang, batches) &&
					whenLogged(r, "batch committed", rankHang)
			} else {
				hit = whenDB(t, dsn, active, rankHang, schema, c.like)
			}
			if !hit {
				t.Fatalf("the run never reached the point %q:\n%s", c.when, r.p.tail())
			}
			rx.addToxic(c.name, c.kind, "downstream", c.attrs)
			id, errLine := after(c.name, r)
			rx.removeToxic(c.name)
			r.checkPhase(t, id, errLine, c.phase, c.op, c.before...)
			if c.phase == phaseCommit {
				// The batch's commit failed before its answer came: either it rolled
				// back, or (an answer lost after COMMIT) it is there whole. The next run
				// is checked against the oracle either way.
				t.Logf("%s: batches after the failed commit: %d (before: %d)", c.name, maxBatch(), batches)
			} else if got := maxBatch(); got <= batches {
				t.Errorf("%s: the last batch is %d, want one committed after %d before the fault", c.name, got, batches)
			}
		})
	}

	t.Run("reset-at-connect", func(t *testing.T) {
		rx.addToxic("reset-at-connect", "reset_peer", "downstream", map[string]any{"timeout": 0})
		defer rx.removeToxic("reset-at-connect")
		r := startRank(t, d, rankDSN, "rank-reset-at-connect", now)
		id, errLine := after("reset-at-connect", r)
		if id != 0 || errLine == "" {
			t.Errorf("rank --once through a proxy that resets every connection: got snapshot %d, error %q; want a clean failure", id, errLine)
		}
		// Nothing of the run touched the database: it never announced a step that does.
		if ph := r.phases(t); slices.Contains(ph, phaseCommit) || slices.Contains(ph, phasePublish) {
			t.Errorf("rank --once through a proxy that resets every connection reached the steps %q; want it stopped at its first query", ph)
		}
	})

	// A black hole: the proxy stops forwarding anything and keeps the connections open,
	// as a network partition or a hung server does. The run must give up with an error
	// (it holds a write transaction and the write lock) rather than wait for ever.
	t.Run("black-hole", func(t *testing.T) {
		d.addLogs()
		r := startRank(t, d, rankDSN, "rank-black-hole", now)
		if !whenDB(t, dsn, active, rankHang, schema, "%INSERT INTO batches%") {
			t.Fatalf("the run never reached its batch commit:\n%s", r.p.tail())
		}
		hole := time.Now()
		rx.addToxic("black-hole", "timeout", "downstream", map[string]any{"timeout": 0})
		defer rx.removeToxic("black-hole")
		id, errLine, took := r.outcome(t, rankHang)
		if id == 0 && errLine == "" {
			t.Errorf("rank --once still running %v after the database stopped answering mid-run: want it to give up with an error",
				time.Since(hole).Round(time.Millisecond))
			// Meanwhile another run straight to PostgreSQL finds the hung one's ranker
			// lock, and must say so rather than wait.
			other := startRank(t, d, dsn, "rank-beside-hung", now)
			if id, errLine, took := other.outcome(t, rankHang); id != 0 || errLine == "" {
				t.Errorf("rank --once beside the hung one: got snapshot %d, error %q after %v; want a clean refusal\n%s", id, errLine, took, other.p.tail())
			} else {
				t.Logf("black-hole: a second rank --once, straight to PostgreSQL, failed in %v: %s", took.Round(time.Millisecond), errLine)
			}
			other.p.kill()
			term := time.Now()
			if err := r.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Errorf("black-hole: SIGTERM to rank: %v", err)
			}
			code := r.p.wait(rankHang)
			t.Logf("black-hole: after SIGTERM, rank exited with code %d in %v: %s", code, time.Since(term).Round(time.Millisecond), lastLine(r.p.output()))
		} else {
			t.Logf("black-hole: rank gave up %v after the database stopped answering (run took %v): %s",
				time.Since(hole).Round(time.Millisecond), took.Round(time.Millisecond), errLine)
			r.checkPhase(t, id, errLine, phaseCommit, "commit batch")
		}
		r.p.kill()
		checkConsistent(t, dsn)
	})

	t.Run("recovery", func(t *testing.T) {
		rx.clear()
		r := startRank(t, d, rankDSN, "rank-recovery", now)
		if id, _ := after("recovery", r); id == 0 {
			t.Fatalf("rank --once after the toxics were removed did not publish:\n%s", r.p.tail())
		}
		d.checkComplete(now)
	})
}

// TestServeThroughToxics runs a serve replica through a proxy that slows PostgreSQL down,
// resets every connection, then stops forwarding: the replica answers every request 200
// from memory, marks its answers stale while it cannot reach the database (and not while
// it is only slow), logs the failures, never crashes, and serves the latest snapshot once
// the database is healthy again, without a restart. How long each change took, and the
// answers' latency, are logged; the waits end at serveHang, which only catches a hang. It
// mostly waits, so it runs beside the other tests.
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
	// the new snapshot, unmarked.
	publish := func(what string) {
		t.Helper()
		d.addLogs()
		id := d.rank().SnapshotID
		from := time.Now()
		took := pr.waitFor(from, serveHang, func(a answer) bool { return a.snapshot == id && !a.stale })
		if took < 0 {
			t.Errorf("%s: the replica did not serve snapshot %d (unmarked) within %v of its publication\n%s", what, id, serveHang, srv.p.tail())
			return
		}
		t.Logf("%s: the replica serves snapshot %d %v after rank --once exited", what, id, took.Round(time.Millisecond))
	}
	// staleAfter waits until the replica's answers are marked stale (want true) or
	// unmarked (want false), at most serveHang, and returns how long it took (-1: never).
	staleAfter := func(from time.Time, want bool) time.Duration {
		return pr.waitFor(from, serveHang, func(a answer) bool { return a.stale == want })
	}

	t.Run("latency", func(t *testing.T) {
		from := time.Now()
		sx.addToxic("latency", "latency", "downstream", map[string]any{"latency": serveLatency.Milliseconds()})
		defer sx.removeToxic("latency")
		publish("latency")
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
		if took := staleAfter(from, true); took < 0 {
			t.Errorf("answers not marked stale within %v of the database resetting every connection", serveHang)
		} else {
			t.Logf("reset: answers marked stale %v after every connection was reset", took.Round(time.Millisecond))
		}
		time.Sleep(2 * time.Second)
		sx.removeToxic("reset")
		from = time.Now()
		if took := staleAfter(from, false); took < 0 {
			t.Errorf("answers still marked stale %v after the resets stopped", serveHang)
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
		if took := staleAfter(from, true); took < 0 {
			t.Errorf("answers not marked stale within %v of the database ceasing to answer", serveHang)
		} else {
			t.Logf("black-hole: answers marked stale %v after the database ceased to answer (a poll gives up after 30 s)", took.Round(time.Millisecond))
		}
	})

	t.Run("recovery", func(t *testing.T) {
		sx.clear()
		publish("recovery")
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
