//go:build unix

// Package dbfaults_test puts PostgreSQL behind an in-process toxiproxy and shows what the
// salesrank binary does when the database goes away, slows down or drops connections:
// serve replicas keep answering from memory (marked stale) and catch up without a restart
// once the database is back; rank --once publishes a whole snapshot or fails cleanly, and
// the next run succeeds without repair; of two rank --every schedulers on one database
// exactly one publishes, and the other takes over when it is killed.
//
// The tests need a PostgreSQL database: set SALESRANK_TEST_POSTGRES to its URL (e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable). Each test works in a schema of
// its own, dropped at the end. They build the binary once and skip under -short.
package dbfaults_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/salesrank/salesrank/internal/testing/pgtest"
	"github.com/salesrank/salesrank/internal/testing/testbin"
)

// envPostgres names the PostgreSQL database the tests run against; unset, they skip.
const envPostgres = pgtest.Env

var (
	// binPath is the salesrank binary built by TestMain; empty when it was not built.
	binPath string
	// setupSkip says why the tests skip, if they do.
	setupSkip string
)

// minParallel is how many of the package's tests may run at once unless -parallel says:
// TestTwoRankers, TestServeThroughToxics, and the two that take turns (runSerially).
const minParallel = 4

func TestMain(m *testing.M) {
	flag.Parse()
	switch {
	case testing.Short():
		setupSkip = "skipping the database fault tests (real processes, a minute or more) in -short mode"
	case os.Getenv(envPostgres) == "":
		setupSkip = envPostgres + " is not set: skipping the PostgreSQL fault tests (set it to a database URL, " +
			"e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)"
	}
	if setupSkip != "" {
		os.Exit(m.Run())
	}
	// The tests mostly wait for processes and the clock (TestTwoRankers for minutes), so
	// they run side by side even on a small machine, where -parallel defaults to the
	// number of cores: with 2, TestTwoRankers would wait for the others and the package
	// would take twice as long. An explicit -parallel is left alone.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if p := flag.Lookup("test.parallel"); p != nil && !explicit {
		if n, _ := strconv.Atoi(p.Value.String()); n < minParallel {
			if err := p.Value.Set(strconv.Itoa(minParallel)); err != nil {
				fmt.Fprintln(os.Stderr, "tests/dbfaults: set -test.parallel:", err)
				os.Exit(1)
			}
		}
	}
	dir, bins, err := testbin.Build("salesrank-dbfaults-bin-", "github.com/salesrank/salesrank/cmd/salesrank")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests/dbfaults:", err)
		os.Exit(1)
	}
	binPath = bins[0]
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needSetup skips t unless the binary was built and a database is configured.
func needSetup(t *testing.T) {
	t.Helper()
	if setupSkip != "" {
		t.Skip(setupSkip)
	}
}

// schemaDSN creates a fresh schema, dropped when t ends after the processes using it, and
// returns the DSN that selects it, and its name (see pgtest.Schema).
func schemaDSN(t *testing.T) (dsn, schema string) {
	t.Helper()
	return pgtest.Schema(t, "salesrank_dbfaults_")
}

// viaAddr returns dsn with its host and port replaced by addr (a toxiproxy listener).
func viaAddr(t *testing.T, dsn, addr string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// upstreamAddr returns the HOST:PORT of the database dsn names (port 5432 by default).
func upstreamAddr(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		t.Fatalf("%s: the URL names no host; the fault tests need a TCP address to proxy", envPostgres)
	}
	if port == "" {
		port = "5432"
	}
	return net.JoinHostPort(host, port)
}

// freePorts returns n distinct free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// process is a child process whose output goes to a file.
type process struct {
	t    *testing.T // fails when the process's log cannot be read
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process has exited
	err  error         // Wait's result; read it after done
	at   time.Time     // when it exited; read it after done
}

// startProcess runs the binary with args, its stdout and stderr going to logPath (stdout
// to stdoutPath instead when it is not ""). The process gets its own process group and
// SIGKILL if the test binary dies; the test's cleanup kills it.
func startProcess(t *testing.T, name, logPath, stdoutPath string, args ...string) *process {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	out := f
	if stdoutPath != "" {
		if out, err = os.Create(stdoutPath); err != nil {
			t.Fatal(err)
		}
	}
	p := &process{t: t, name: name, cmd: exec.Command(binPath, args...), log: logPath, done: make(chan struct{})}
	p.cmd.Env = testbin.CleanEnv()
	p.cmd.Stdout, p.cmd.Stderr = out, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.at = time.Now()
		f.Close()
		if out != f {
			out.Close()
		}
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stillRunning is what wait returns when the process has not exited in time.
const stillRunning = -2

// wait waits up to timeout for the process to exit and returns its exit code (-1 if a
// signal ended it), or stillRunning.
func (p *process) wait(timeout time.Duration) int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		return stillRunning
	}
}

// kill ends the process group with SIGKILL and waits for the process.
func (p *process) kill() {
	if !p.exited() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// output returns what the process wrote to its log. A log that cannot be read fails the
// test: the checks that read it would otherwise pass on an empty one.
func (p *process) output() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		p.t.Errorf("%s: read its log: %v", p.name, err)
	}
	return string(b)
}

// tail returns the last lines of the process's log, for failure messages.
func (p *process) tail() string {
	lines := strings.Split(strings.TrimRight(p.output(), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// salesrank runs the binary with args and returns its stdout; it fails t unless the
// binary exits 0 within two minutes (testbin.Run).
func salesrank(t *testing.T, args ...string) string {
	t.Helper()
	return testbin.Run(t, binPath, args...)
}

// rankSummary is the part of "rank --once"'s JSON summary the tests read.
type rankSummary struct {
	SnapshotID   int64 `json:"snapshot_id"`
	Categories   int   `json:"categories"`
	RankedRows   int64 `json:"ranked_rows"`
	ObjectsTaken int   `json:"objects_taken"`
}

// decodeSummary parses the last line of a rank --once stdout.
func decodeSummary(out string) (rankSummary, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var s rankSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		return s, fmt.Errorf("rank --once: got %q, want a JSON summary: %v", out, err)
	}
	if s.SnapshotID == 0 {
		return s, fmt.Errorf("rank --once: got %q, want a JSON summary with a snapshot_id", out)
	}
	return s, nil
}
