package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/salesrank/salesrank/beam/internal/beamtest"
	"github.com/salesrank/salesrank/internal/testing/ranktest"
	"github.com/salesrank/salesrank/internal/testing/testbin"
)

// phaseOf names the step a run was in from the last of its log lines that start one.
func phaseOf(msgs []string) string {
	for _, m := range slices.Backward(msgs) {
		switch m {
		case "running beam pipeline":
			return "pipeline"
		case "beam pipeline done":
			return "reading staging"
		case "committing batch":
			return "commit"
		case "counting batch":
			return "before a pipeline"
		case "batch committed":
			return "after a commit"
		case "publishing snapshot":
			return "publish"
		}
	}
	return "start"
}

// TestKillDuringPipelineAndCommit kills salesrank-beam rank with SIGKILL again and again:
// at random moments, just as a batch's commit begins, and while a pipeline runs. New
// objects land between the kills. A last run to its end must then leave every object
// counted exactly once: the snapshot equals the oracle's over every product, and the
// manifest and the quarantine hold each object's lines once.
func TestKillDuringPipelineAndCommit(t *testing.T) {
	needBinaries(t)
	const kills = 24
	dir := t.TempDir()
	dbPath := filepath.Join(t.TempDir(), "s.db")
	staging := t.TempDir()
	cutoff := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(11, 11))
	all := map[string][]byte{}
	land := func(prefix string) {
		objs := ranktest.RandomLogs(rng, cutoff)
		beamtest.WriteObjects(t, dir, prefix, objs)
		for k, v := range objs {
			all[prefix+"/"+k] = v
		}
	}
	for i := range 3 {
		land(fmt.Sprintf("start%d", i))
	}
	args := []string{"rank", "--once", "--logs", dir, "--db", dbPath, "--top", "10", "--now", cutoff.Format(time.RFC3339),
		"--staging", staging, "--batch-bytes", "6000", "--partitions", "2", "--log-level", "debug"}

	phases := map[string]int{}
	for k := range kills {
		land(fmt.Sprintf("k%02d", k))
		cmd := exec.Command(bin.beam, args...)
		cmd.Env = testbin.CleanEnv()
		stderr := &killer{}
		cmd.Stderr = stderr
		if k%3 == 1 {
			stderr.msg, stderr.n = "committing batch", 1+rng.IntN(2)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stderr.proc.Store(cmd.Process)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// How to pick the moment: at random; as the nth commit begins (stderr kills it);
		// or a little into the nth pipeline.
		var at func() bool
		switch k % 3 {
		case 0:
			deadline := time.Now().Add(time.Duration(rng.Int64N(int64(1500 * time.Millisecond))))
			at = func() bool { return time.Now().After(deadline) }
		case 1:
			at = stderr.killed.Load
		case 2:
			n, delay := 1+rng.IntN(2), time.Duration(rng.Int64N(int64(150*time.Millisecond)))
			var seen time.Time
			at = func() bool {
				if seen.IsZero() && count(lastMessages(stderr.Bytes()), "running beam pipeline") >= n {
					seen = time.Now()
				}
				return !seen.IsZero() && time.Since(seen) >= delay
			}
		}
		killed := false
		deadline := time.Now().Add(2 * time.Minute)
	wait:
		for {
			select {
			case err := <-exited:
				if stderr.killed.Load() {
					// The log writer killed it as the commit began: exited can win the
					// race with the check of at below.
					killed = true
					break wait
				}
				if err != nil {
					t.Fatalf("kill %d: rank failed on its own: %v\n%s", k, err, stderr.Bytes())
				}
				break wait // it finished before the moment came
			case <-time.After(2 * time.Millisecond):
			}
			if at() {
				cmd.Process.Signal(syscall.SIGKILL)
				<-exited
				killed = true
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("kill %d: rank still running after 2 minutes\n%s", k, stderr.Bytes())
			}
		}
		if killed {
			phases[phaseOf(lastMessages(stderr.Bytes()))]++
		} else {
			phases["finished first"]++
		}
	}
	t.Logf("where the %d kills struck: %v", kills, phases)
	if phases["pipeline"] < 3 || phases["commit"] < 3 {
		t.Errorf("kills struck %v; want at least 3 during a pipeline and 3 during a commit", phases)
	}

	s := rankOnce(t, args[2:]...)
	want, read, rejected := ranktest.Oracle(all, cutoff, 10)
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := currentRanking(t, db, s.SnapshotID)
	if got != want {
		t.Fatalf("after %d kills, snapshot %d =\n%s\nthe oracle's\n%s", kills, s.SnapshotID, got, want)
	}
	var manifestRead, manifestRejected, quarantined int64
	if err := db.QueryRow(`SELECT coalesce(sum(lines_read), 0), coalesce(sum(lines_rejected), 0) FROM objects`).Scan(&manifestRead, &manifestRejected); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM rejected_lines`).Scan(&quarantined); err != nil {
		t.Fatal(err)
	}
	if manifestRead != read || manifestRejected != rejected || quarantined != rejected {
		t.Errorf("manifest says %d lines read and %d rejected, the quarantine holds %d; the oracle reads %d and rejects %d",
			manifestRead, manifestRejected, quarantined, read, rejected)
	}
}

// killer is rank's stderr. Given a message, it kills the process from inside Write as the
// nth line with that message arrives, so that the kill lands while the step the line
// starts is still running: a batch's commit takes milliseconds, which polling the output
// would mostly miss.
type killer struct {
	testbin.Buffer
	msg    string
	n      int
	proc   atomic.Pointer[os.Process]
	seen   int
	killed atomic.Bool
}

func (k *killer) Write(p []byte) (int, error) {
	if k.msg != "" && !k.killed.Load() {
		k.seen += bytes.Count(p, []byte(`"msg":"`+k.msg+`"`))
		if proc := k.proc.Load(); proc != nil && k.seen >= k.n {
			k.killed.Store(true) // before the signal: whoever sees the exit sees this too
			proc.Signal(syscall.SIGKILL)
		}
	}
	return k.Buffer.Write(p)
}

func count(msgs []string, m string) (n int) {
	for _, x := range msgs {
		if x == m {
			n++
		}
	}
	return n
}

// currentRanking renders a stored snapshot as ranktest.Format does.
func currentRanking(t *testing.T, db *sql.DB, id int64) string {
	t.Helper()
	rows, err := db.Query(`SELECT c.category_id, r.rank, r.product_id, r.total_sold
		FROM snapshot_categories c LEFT JOIN snapshot_sales_rank r ON r.snapshot_id = c.snapshot_id AND r.category_id = c.category_id
		WHERE c.snapshot_id = ? ORDER BY c.category_id, r.rank`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b bytes.Buffer
	for rows.Next() {
		var cat int64
		var rank, product, units sql.NullInt64
		if err := rows.Scan(&cat, &rank, &product, &units); err != nil {
			t.Fatal(err)
		}
		if !rank.Valid {
			fmt.Fprintf(&b, "category %d: no sales\n", cat)
			continue
		}
		fmt.Fprintf(&b, "category %d rank %d product %d total_sold %d\n", cat, rank.Int64, product.Int64, units.Int64)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
