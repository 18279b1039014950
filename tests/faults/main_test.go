// Package faults_test proves the ranker's exactly-once promise with the real binary: it
// builds cmd/salesrank once, then kills `rank --once` with SIGKILL at every step of a run
// (listing, counting, committing a batch, publishing), runs two schedulers on one database
// and kills the active one, and checks after every fault that the SQLite file is sound and
// that what was published is what a brute-force oracle computes from the landed objects.
//
// The tests are Linux-only in spirit: the step a process was in when it was killed is read
// from /proc/PID/fd and from the SQLite write lock (fcntl F_GETLK on the -shm file) while the
// process is stopped with SIGSTOP, so that the evidence and the kill see the same moment.
package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/salesrank/salesrank/internal/testing/testbin"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// bin is the salesrank binary built by TestMain; skipReason is set when the tests are not
// run at all (-short, or a platform without /proc).
var bin, skipReason string

func TestMain(m *testing.M) {
	flag.Parse()
	switch {
	case testing.Short():
		skipReason = "tests/faults: skipped with -short: they build the binary and kill it for a few minutes"
	case !hasProc():
		skipReason = "tests/faults: skipped: they read /proc/PID/fd, which this system does not have"
	}
	if skipReason != "" {
		fmt.Println(skipReason)
		os.Exit(m.Run())
	}
	start := time.Now()
	dir, bins, err := testbin.Build("salesrank-faults-", "github.com/salesrank/salesrank/cmd/salesrank", "./testdata/dbcheck")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests/faults:", err)
		os.Exit(1)
	}
	bin, dbcheck = bins[0], bins[1]
	fmt.Printf("tests/faults: built salesrank and dbcheck in %.1fs\n", time.Since(start).Seconds())
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func hasProc() bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d/fd", os.Getpid()))
	return err == nil
}

func needBinary(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// proc is one salesrank process started by a test.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *testbin.Buffer
	started        time.Time
	done           chan struct{} // closed once the process has exited and been reaped
	err            error         // its exit error, once done
}

// startProc starts the binary with args. Cleanup kills it (SIGKILL, by its own pid) if it is
// still running and waits for it, so no test leaves a process behind.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, stdout: &testbin.Buffer{}, stderr: &testbin.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.Env = testbin.CleanEnv()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p.started = time.Now()
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			t.Errorf("%s (pid %d) did not exit a minute after SIGKILL", name, p.cmd.Process.Pid)
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig unless the process is already reaped (os.Process refuses then, so a
// recycled pid is never signalled).
func (p *proc) signal(sig syscall.Signal) bool {
	if p.exited() {
		return false
	}
	return p.cmd.Process.Signal(sig) == nil
}

func (p *proc) kill() { p.signal(syscall.SIGKILL) }

// wait waits up to d for the process to exit and reports whether it did.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// runOnce runs `salesrank rank --once` to its end (bounded by a minute) and decodes its
// summary. It fails the test if the run fails.
func runOnce(t *testing.T, logs, db string, now time.Time, extra ...string) summary {
	t.Helper()
	sum, stderr, err := tryOnce(t, logs, db, now, extra...)
	if err != nil {
		t.Fatalf("rank --once --now %s: %v\nstderr:\n%s", now.Format(time.RFC3339), err, stderr)
	}
	return sum
}

func tryOnce(t *testing.T, logs, db string, now time.Time, extra ...string) (summary, string, error) {
	t.Helper()
	args := append([]string{"rank", "--once", "--logs", logs, "--db", db, "--now", now.Format(time.RFC3339)}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = testbin.CleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return summary{}, stderr.String(), err
	}
	var sum summary
	if err := json.Unmarshal(lastLine(stdout.Bytes()), &sum); err != nil {
		return summary{}, stderr.String(), fmt.Errorf("summary %q: %w", stdout.String(), err)
	}
	return sum, stderr.String(), nil
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

// summary is the part of rank --once's JSON line the tests read.
type summary struct {
	SnapshotID     int64     `json:"snapshot_id"`
	Cutoff         time.Time `json:"cutoff"`
	Objects        int       `json:"objects"`
	ObjectsTaken   int       `json:"objects_taken"`
	ObjectsSkipped int       `json:"objects_skipped"`
	ObjectsFailed  int       `json:"objects_failed"`
	LinesRead      int64     `json:"lines_read"`
	LinesRejected  int64     `json:"lines_rejected"`
	LinesTooLate   int64     `json:"lines_too_late"`
	RankedRows     int       `json:"ranked_rows"`
	Categories     int       `json:"categories"`
	Seconds        float64   `json:"seconds"`
}

// gen runs `salesrank gen` with args into out and fails the test if it fails.
func gen(t *testing.T, out string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"gen", "--out", out}, args...)...)
	cmd.Env = testbin.CleanEnv()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen %v: %v\n%s", args, err, b)
	}
}

// eventually polls cond every step until it holds or d has passed.
func eventually(d, step time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(step)
	}
}
