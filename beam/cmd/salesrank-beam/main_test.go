package main

// The black-box tests build salesrank-beam and Beam's Prism job server, and run them as an
// operator would: salesrank-beam rank against a standalone job server (the path a Flink or
// Spark job server takes), and salesrank-beam rank killed with SIGKILL at random moments.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/salesrank/salesrank/internal/testing/testbin"
)

var bin struct {
	beam, prism string
	err         error
}

func TestMain(m *testing.M) {
	flag.Parse()
	if raceEnabled {
		// The binaries are built without -race whatever the tests are built with (see
		// testbin.Build), so a -race run would only repeat these tests; the pipeline's
		// own tests cover the engine under the race detector.
		fmt.Println("skipping salesrank-beam's black-box tests under -race: they run the same non-race binary")
		os.Exit(0)
	}
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, bins, err := testbin.Build("salesrank-beam-test-", "github.com/salesrank/salesrank/beam/cmd/salesrank-beam", "github.com/apache/beam/sdks/v2/go/cmd/prism")
	if err == nil {
		bin.beam, bin.prism = bins[0], bins[1]
		defer os.RemoveAll(dir)
	}
	bin.err = err
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func needBinaries(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the black-box tests of salesrank-beam in -short mode")
	}
	if bin.err != nil {
		t.Fatal(bin.err)
	}
}

// summary is what the tests read of rank --once's JSON line.
type summary struct {
	SnapshotID    int64 `json:"snapshot_id"`
	LinesRead     int64 `json:"lines_read"`
	LinesRejected int64 `json:"lines_rejected"`
	ObjectsTaken  int   `json:"objects_taken"`
	ObjectsFailed int   `json:"objects_failed"`
}

// rankOnce runs salesrank-beam rank --once to its end and returns its summary.
func rankOnce(t *testing.T, args ...string) summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.beam, append([]string{"rank", "--once"}, args...)...)
	cmd.Env = testbin.CleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("salesrank-beam rank %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var s summary
	lines := bytes.Split(bytes.TrimSpace(stdout.Bytes()), []byte("\n"))
	if err := json.Unmarshal(lines[len(lines)-1], &s); err != nil {
		t.Fatalf("summary: %v in %q", err, stdout.Bytes())
	}
	return s
}

// freePort returns a loopback port that nothing listened on a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPrism starts Prism's job server as its own process and waits until it accepts
// connections; it is killed when t ends. The port is picked free and then given to Prism,
// so another process may take it in between: Prism then exits, and is started again on
// another port.
func startPrism(t *testing.T) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr, log, err := tryPrism(t, freePort(t))
		if err == nil {
			return addr
		}
		if attempt == 3 {
			t.Fatalf("prism: %v\n%s", err, log)
		}
		t.Logf("prism, attempt %d: %v; trying another port", attempt, err)
	}
}

func tryPrism(t *testing.T, port int) (addr string, log []byte, err error) {
	cmd := exec.Command(bin.prism, fmt.Sprintf("--job_port=%d", port), "--serve_http=false", "--log_level=warn")
	var out testbin.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr, nil, nil
		}
		select {
		case err := <-exited:
			exited <- err // for the clean-up
			return "", out.Bytes(), fmt.Errorf("exited before it listened on %s: %v", addr, err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prism does not listen on %s after a minute\n%s", addr, out.Bytes())
		}
	}
}

// lastMessages reads rank's JSON log lines and returns their "msg" fields in order.
func lastMessages(stderr []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg != "" {
			out = append(out, l.Msg)
		}
	}
	return out
}

func mkdir(t *testing.T, parts ...string) string {
	t.Helper()
	dir := filepath.Join(parts...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
