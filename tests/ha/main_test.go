//go:build unix

// Package ha_test proves the high-availability claims of deploy/: a real nginx, configured
// from deploy/nginx.conf, in front of several "salesrank serve" processes, under a steady
// load of API requests, loses no request when a replica is killed, when every replica is
// restarted in turn, or when a new snapshot is published, and every response's body is the
// snapshot its X-Snapshot-Id names.
//
// The tests build the salesrank binary once and run it as systemd would. They skip under
// -short, and skip with a message when nginx is not installed (Debian: apt-get install
// nginx-light). See deploy/README.md.
package ha_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/salesrank/salesrank/internal/testing/testbin"
)

var (
	// binPath is the salesrank binary built by TestMain; empty when it was not built.
	binPath string
	// nginxPath is the nginx executable; empty when none is installed.
	nginxPath string
	// setupSkip says why the tests that run processes skip, if they do.
	setupSkip string
)

// repoRoot is the module's root, relative to this package's folder (go test runs each
// package in its own folder).
const repoRoot = "../.."

func TestMain(m *testing.M) {
	flag.Parse()
	nginxPath = findNginx()
	switch {
	case testing.Short():
		setupSkip = "skipping the high-availability tests (real processes, seconds of load) in -short mode"
	case nginxPath == "":
		setupSkip = "nginx is not installed (Debian: apt-get install nginx-light); skipping the high-availability tests"
	}
	if setupSkip != "" {
		os.Exit(m.Run())
	}
	dir, bins, err := testbin.Build("salesrank-ha-bin-", "github.com/salesrank/salesrank/cmd/salesrank")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests/ha:", err)
		os.Exit(1)
	}
	binPath = bins[0]
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// findNginx returns the nginx executable on PATH, or in /usr/sbin (not on PATH for
// non-root users on Debian), or "".
func findNginx() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return ""
}

// needProcesses skips t unless the binary was built and nginx is there.
func needProcesses(t *testing.T) {
	t.Helper()
	if setupSkip != "" {
		t.Skip(setupSkip)
	}
}

// salesrank runs the binary with args and returns its stdout; it fails t unless the
// binary exits 0 within two minutes (testbin.Run).
func salesrank(t *testing.T, args ...string) string {
	t.Helper()
	return testbin.Run(t, binPath, args...)
}

// rankSummary is the part of "rank --once"'s JSON summary the tests read.
type rankSummary struct {
	SnapshotID int64 `json:"snapshot_id"`
	// The run's first publication, of its top lists only, when its full ranks followed as
	// SnapshotID: the same top lists.
	TopListsSnapshotID int64 `json:"top_lists_snapshot_id"`
	Categories         int   `json:"categories"`
}

func decodeSummary(t *testing.T, out string) rankSummary {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var s rankSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil || s.SnapshotID == 0 {
		t.Fatalf("rank --once: got %q, want a JSON summary with a snapshot_id (%v)", out, err)
	}
	return s
}
