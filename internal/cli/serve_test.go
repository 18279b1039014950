package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/salesrank/salesrank/internal/testing/testbin"
)

// rankedDB ranks a day of generated logs into a new SQLite database, and returns the logs,
// the database and the snapshot the run left current.
func rankedDB(t *testing.T) (logs, dsn string, snapshot int64) {
	t.Helper()
	dir := t.TempDir()
	logs, dsn = filepath.Join(dir, "logs"), "sqlite:"+filepath.Join(dir, "s.db")
	if _, stderr, err := runCLI(t, nil, "gen", "--out", logs, "--start", "2026-11-19T00:00:00Z", "--end", "2026-11-20T00:00:00Z",
		"--lines", "2000", "--products", "200", "--categories", "10"); err != nil {
		t.Fatalf("gen: got %v, want nil; stderr:\n%s", err, stderr)
	}
	stdout, stderr, err := runCLI(t, nil, "rank", "--logs", logs, "--db", dsn, "--once", "--now", "2026-11-20T00:00:00Z")
	if err != nil {
		t.Fatalf("rank: got %v, want nil; stderr:\n%s", err, stderr)
	}
	var sum struct {
		SnapshotID int64 `json:"snapshot_id"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || sum.SnapshotID < 1 {
		t.Fatalf("rank: got %q (%v), want a summary with a snapshot_id", stdout, err)
	}
	return logs, dsn, sum.SnapshotID
}

// startCommand runs the command line args in-process until the test ends, and returns its
// log and a channel with its result.
func startCommand(t *testing.T, vars map[string]string, args ...string) (*testbin.Buffer, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var log testbin.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Program{}, append([]string{"salesrank"}, args...), func(k string) string { return vars[k] },
			strings.NewReader(""), io.Discard, &log)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: got %v, want nil after cancel", args[0], err)
			}
		case <-time.After(hangBound):
			t.Errorf("%s did not return within %v of cancel", args[0], hangBound)
		}
	})
	return &log, done
}

// loggedAddr returns the address of the first log line with message msg and, if component
// is not empty, that component.
func loggedAddr(log, msg, component string) (string, bool) {
	for line := range strings.Lines(log) {
		var rec struct{ Msg, Addr, Component string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg && rec.Addr != "" &&
			(component == "" || rec.Component == component) {
			return rec.Addr, true
		}
	}
	return "", false
}

func httpDo(t *testing.T, method, url, auth string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s: read body: %v", req.URL, err)
	}
	return res.StatusCode, string(b), res.Header
}

// TestServeAdminListener runs serve with an admin listener and checks the split: metrics,
// profiles and refresh on the admin address only, the token from the environment.
func TestServeAdminListener(t *testing.T) {
	_, dsn, id := rankedDB(t)
	const token = "test-admin-token-0123456789abcdef"
	log, _ := startCommand(t, map[string]string{"SALESRANK_ADMIN_TOKEN": token},
		"serve", "--db", dsn, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--poll", "50ms", "--drain", "0s")
	var addr, admin string
	waitFor(t, hangBound, "serve to log both addresses", func() (bool, string) {
		var ok1, ok2 bool
		addr, ok1 = loggedAddr(log.String(), "serving", "")
		admin, ok2 = loggedAddr(log.String(), "listening", "admin")
		return ok1 && ok2, log.String()
	})
	waitFor(t, hangBound, "/readyz to answer 200", func() (bool, string) {
		code, body, _ := httpDo(t, "GET", "http://"+addr+"/readyz", "")
		return code == 200, body
	})
	code, _, hdr := httpDo(t, "GET", "http://"+addr+"/api/v1/popular?category_id=1&limit=3", "")
	if code != 200 || hdr.Get("X-Request-Id") == "" {
		t.Errorf("popular: %d, X-Request-Id %q; want 200 and an id", code, hdr.Get("X-Request-Id"))
	}

	for _, path := range []string{"/metrics", "/debug/pprof/", "/admin/refresh"} {
		if code, _, _ := httpDo(t, "GET", "http://"+addr+path, "Bearer "+token); code != 404 {
			t.Errorf("public %s: %d, want 404", path, code)
		}
	}
	code, metricsText, _ := httpDo(t, "GET", "http://"+admin+"/metrics", "")
	if code != 200 {
		t.Fatalf("admin /metrics: %d", code)
	}
	for _, want := range []string{
		`salesrank_http_requests_total{code="200",route="/api/v1/popular"} 1`,
		`salesrank_http_rows_served_total 3`,
		`salesrank_snapshot_loaded 1`,
		fmt.Sprintf("salesrank_snapshot_id %d", id),
		`salesrank_snapshot_window_end_timestamp_seconds 1.7951328e+09`, // 2026-11-20T00:00:00Z
		`salesrank_snapshot_age_seconds `,
		`salesrank_snapshot_loads_total 1`,
		`salesrank_snapshot_poll_errors_total 0`,
		`go_goroutines `,
		`process_open_fds `,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("admin /metrics lacks %q", want)
		}
	}
	if code, _, hdr := httpDo(t, "GET", "http://"+admin+"/debug/pprof/", ""); code != 401 || hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("pprof without token: %d, WWW-Authenticate %q; want 401 and a challenge", code, hdr.Get("WWW-Authenticate"))
	}
	if code, _, _ := httpDo(t, "GET", "http://"+admin+"/debug/pprof/", "Bearer "+token); code != 200 {
		t.Errorf("pprof with token: %d, want 200", code)
	}
	if code, body, _ := httpDo(t, "POST", "http://"+admin+"/admin/refresh", "Bearer "+token); code != 200 || !strings.Contains(body, fmt.Sprintf(`"snapshot_id":"%d"`, id)) {
		t.Errorf("refresh: %d %s, want 200 and snapshot %d", code, body, id)
	}
	if strings.Contains(log.String(), token) {
		t.Error("the admin token appears in the log")
	}
}

// TestServeAdminDisabled checks the two ways the admin endpoints are off: no token (a clear
// log line; 403 for the token endpoints, /metrics still served) and no admin address.
func TestServeAdminDisabled(t *testing.T) {
	_, dsn, _ := rankedDB(t)
	log, _ := startCommand(t, nil, "serve", "--db", dsn, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--drain", "0s")
	var admin string
	waitFor(t, hangBound, "the admin listener", func() (bool, string) {
		var ok bool
		admin, ok = loggedAddr(log.String(), "listening", "admin")
		return ok, log.String()
	})
	if !strings.Contains(log.String(), "no admin token") {
		t.Errorf("no log line says the admin endpoints are disabled:\n%s", log)
	}
	if code, _, _ := httpDo(t, "GET", "http://"+admin+"/metrics", ""); code != 200 {
		t.Errorf("/metrics without a token configured: %d, want 200", code)
	}
	if code, body, _ := httpDo(t, "POST", "http://"+admin+"/admin/refresh", "Bearer whatever-whatever-whatever"); code != 403 || !strings.Contains(body, "SALESRANK_ADMIN_TOKEN") {
		t.Errorf("refresh with no token configured: %d %s, want 403 naming SALESRANK_ADMIN_TOKEN", code, body)
	}

	log2, _ := startCommand(t, nil, "serve", "--db", dsn, "--addr", "127.0.0.1:0", "--admin-addr", "", "--drain", "0s")
	waitFor(t, hangBound, "serve to start", func() (bool, string) {
		_, ok := loggedAddr(log2.String(), "serving", "")
		return ok, log2.String()
	})
	if _, ok := loggedAddr(log2.String(), "listening", "admin"); ok {
		t.Error("--admin-addr '' still started an admin listener")
	}
}

func TestServeAdminTokenTooShort(t *testing.T) {
	_, stderr, err := runCLI(t, map[string]string{"SALESRANK_ADMIN_TOKEN": "short"}, "serve", "--db", "x.db")
	if err == nil || !strings.Contains(stderr, "--admin-token must be at least 16") || strings.Contains(stderr, "short") {
		t.Errorf("got %v, stderr %q; want a usage error that does not echo the token", err, stderr)
	}
}

// TestRankMetrics runs the ranker daemon with --metrics-addr and checks that its run shows.
func TestRankMetrics(t *testing.T) {
	logs, dsn, first := rankedDB(t)
	if _, stderr, err := runCLI(t, nil, "rank", "--logs", logs, "--db", dsn, "--once", "--metrics-addr", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error()+stderr, "--every") {
		t.Errorf("--metrics-addr with --once: %v, want an error naming --every", err)
	}
	log, _ := startCommand(t, nil, "rank", "--logs", logs, "--db", dsn, "--every", "1h", "--metrics-addr", "127.0.0.1:0")
	var addr string
	waitFor(t, hangBound, "the metrics listener", func() (bool, string) {
		var ok bool
		addr, ok = loggedAddr(log.String(), "listening", "metrics")
		return ok, log.String()
	})
	var text string
	waitFor(t, hangBound, "a run in the metrics", func() (bool, string) {
		_, text, _ = httpDo(t, "GET", "http://"+addr+"/metrics", "")
		return strings.Contains(text, `salesrank_rank_runs_total{result="ok"} 1`), text
	})
	for _, want := range []string{
		`salesrank_rank_run_duration_seconds_count 1`,
		`salesrank_rank_full_ranks_seconds_count 1`, // a process's first run publishes them
		`salesrank_rank_objects_total{outcome="skipped"}`,
		`salesrank_rank_objects_total{outcome="taken"}`,
		`salesrank_rank_objects_total{outcome="refused"} 0`,
		`salesrank_rank_objects_total{outcome="failed"} 0`,
		`salesrank_rank_lines_read_total`,
		`salesrank_rank_lines_too_late_total`,
		`salesrank_rank_last_success_timestamp_seconds 1.`,
		// The run publishes its top lists, then its full ranks: the run's snapshot is the second.
		fmt.Sprintf("salesrank_rank_last_snapshot_id %d", first+2),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
