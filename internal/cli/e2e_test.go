//go:build unix

package cli

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/salesrank/salesrank/internal/testing/testbin"
)

// The end-to-end tests build the salesrank binary once and run it as operators and scripts
// do: gen → rank --once → serve, checked through exit codes, JSON summaries and HTTP. They
// need Unix signals, hence the build constraint.

var (
	binDir   string // a folder that lives as long as the test binary; set by TestMain
	binOnce  sync.Once
	binPath  string
	binBuild error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "salesrank-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// salesrankBinary returns the path of the salesrank binary, building it on first use, or
// skips the test under -short.
func salesrankBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the end-to-end test of the built binary in -short mode")
	}
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "salesrank")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// go test puts its own GOROOT/bin first on PATH, so this is the same toolchain.
		out, err := exec.CommandContext(ctx, "go", "build", "-o", binPath, "github.com/salesrank/salesrank/cmd/salesrank").CombinedOutput()
		if err != nil {
			binBuild = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binBuild != nil {
		t.Fatal(binBuild)
	}
	return binPath
}

// cleanEnv returns this process's environment without any SALESRANK_ variable, so that a
// developer's own settings cannot change what the tests see, plus extra.
func cleanEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SALESRANK_") })
	return append(env, extra...)
}

// result is what a finished command did.
type result struct {
	stdout, stderr string
	code           int
}

// runBinary runs salesrank with args and the environment env (cleanEnv() if nil) and waits
// at most a minute for it.
func runBinary(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, salesrankBinary(t), args...)
	if env == nil {
		env = cleanEnv()
	}
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("salesrank %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// mustSucceed runs salesrank and fails the test unless it exits 0.
func mustSucceed(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := runBinary(t, env, args...)
	if r.code != 0 {
		t.Fatalf("salesrank %s: got exit code %d, want 0; stderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// server is a running "salesrank serve" process.
type server struct {
	base string         // http://HOST:PORT
	done chan struct{}  // closed once the process has exited and its stderr is read
	log  testbin.Buffer // its stderr
	cmd  *exec.Cmd
	err  error // Wait's result; read it after done
}

// startServe starts "salesrank serve" on a port the system picks, waits until it logs its
// address, and kills it when the test ends if it is still running.
func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	s := &server{done: make(chan struct{})}
	s.cmd = exec.Command(salesrankBinary(t), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	s.cmd.Env = cleanEnv()
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	// One goroutine reads stderr to its end and then waits for the process, as Wait
	// requires; it ends when the process does, which the cleanup makes sure of.
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		found := false
		for sc.Scan() {
			line := sc.Text()
			s.log.Write([]byte(line + "\n"))
			if a, ok := servingAddr(line); ok && !found {
				found = true
				addr <- a
			}
		}
		io.Copy(io.Discard, stderr)
		s.err = s.cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("serve log:\n%s", s.log.String())
		}
	})
	select {
	case a := <-addr:
		s.base = "http://" + a
	case <-s.done:
		t.Fatalf("serve exited before serving: %v; log:\n%s", s.err, s.log.String())
	case <-time.After(hangBound):
		t.Fatalf("serve did not log its address within %v; log:\n%s", hangBound, s.log.String())
	}
	return s
}

// stop sends sig to the server and returns its exit code, failing the test if it has not
// exited within timeout.
func (s *server) stop(t *testing.T, sig os.Signal, timeout time.Duration) int {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal serve: %v", err)
	}
	select {
	case <-s.done:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("serve did not exit within %v of %v", timeout, sig)
		return -1
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// response is an HTTP response with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request and reads the whole response.
func do(t *testing.T, method, url string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{res.StatusCode, res.Header, body}
}

func get(t *testing.T, url string) response {
	t.Helper()
	return do(t, http.MethodGet, url, nil)
}

// entry is one ranked product as the API sends it.
type entry struct {
	ID, CategoryID, TotalSold, ProductID int64
}

// decodeRanking decodes a popular response, checking that it is a JSON array of objects
// with exactly the four fields of the design, each a string holding a decimal integer.
func decodeRanking(t *testing.T, body []byte) []entry {
	t.Helper()
	var raw []map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("body is not a JSON array of objects: %v; got %q", err, body)
	}
	if raw == nil {
		t.Fatalf("got %q, want a JSON array", body)
	}
	out := make([]entry, len(raw))
	for i, obj := range raw {
		if len(obj) != 4 {
			t.Errorf("entry %d: got fields %v, want id, category_id, total_sold, product_id", i, obj)
		}
		for name, dst := range map[string]*int64{"id": &out[i].ID, "category_id": &out[i].CategoryID,
			"total_sold": &out[i].TotalSold, "product_id": &out[i].ProductID} {
			s, ok := obj[name].(string)
			if !ok {
				t.Fatalf("entry %d: got %s = %#v, want a JSON string", i, name, obj[name])
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("entry %d: got %s = %q, want a decimal integer", i, name, s)
			}
			*dst = n
		}
	}
	return out
}

// checkRanked checks that a ranking is in order: total_sold non-increasing, ties broken by
// the smaller product_id, every entry of category.
func checkRanked(t *testing.T, es []entry, category int64) {
	t.Helper()
	for i, e := range es {
		if e.CategoryID != category {
			t.Errorf("entry %d: got category_id %d, want %d", i, e.CategoryID, category)
		}
		if e.TotalSold < 1 {
			t.Errorf("entry %d: got total_sold %d, want ≥ 1", i, e.TotalSold)
		}
		if i == 0 {
			continue
		}
		p := es[i-1]
		if e.TotalSold > p.TotalSold || (e.TotalSold == p.TotalSold && e.ProductID <= p.ProductID) {
			t.Errorf("entries %d, %d: got (total_sold %d, product_id %d) after (%d, %d), want most sold first, then the smaller product_id",
				i-1, i, e.TotalSold, e.ProductID, p.TotalSold, p.ProductID)
		}
	}
}

// TestEndToEnd runs the life of a deployment: gen writes a week of logs, serve starts on an
// empty database, rank publishes a snapshot that serve picks up, the API is queried, a second
// rank is picked up too, and SIGTERM stops serve cleanly.
func TestEndToEnd(t *testing.T) {
	salesrankBinary(t)
	dir := t.TempDir()
	logs, db := filepath.Join(dir, "logs"), filepath.Join(dir, "db", "s.db")
	// The week ends at the current hour so that Cache-Control has a real max-age to count
	// down; the counts checked below do not depend on the date.
	end := time.Now().UTC().Truncate(time.Hour)
	start := end.Add(-7 * 24 * time.Hour)
	const lines = 200_000

	r := mustSucceed(t, nil, "gen", "--out", logs, "--start", start.Format(time.RFC3339), "--end", end.Format(time.RFC3339),
		"--lines", strconv.Itoa(lines), "--bad-rate", "0.001", "--seed", "7")
	gen := decodeLine[genSummary](t, r.stdout)
	if gen.Lines != lines || gen.Objects != 7*24 || gen.BadLines < 100 || gen.BadLines > 400 {
		t.Errorf("gen: got %+v, want %d lines in %d objects, about 200 of them bad", gen, lines, 7*24)
	}
	if _, err := os.Stat(filepath.Join(logs, "_SUCCESS")); err != nil {
		t.Errorf("gen: got %v, want a _SUCCESS marker", err)
	}

	// serve starts before anything was published: alive, not ready, and 503 on the API.
	const drain, shutdown = 200 * time.Millisecond, time.Second
	srv := startServe(t, "--db", db, "--poll", "100ms", "--drain", drain.String(), "--shutdown-timeout", shutdown.String())
	api := srv.base + "/api/v1/popular?"
	t.Run("before the first snapshot", func(t *testing.T) {
		if res := get(t, srv.base+"/healthz"); res.status != http.StatusOK {
			t.Errorf("/healthz: got %d, want 200", res.status)
		}
		if res := get(t, srv.base+"/readyz"); res.status != http.StatusServiceUnavailable {
			t.Errorf("/readyz: got %d, want 503", res.status)
		}
		res := get(t, api+"category_id=1")
		checkProblem(t, res, http.StatusServiceUnavailable)
		if got := res.header.Get("Retry-After"); got == "" {
			t.Errorf("got no Retry-After on 503, want one")
		}
	})

	now := end.Add(17 * time.Minute) // truncated to the hour: the cutoff is end
	r = mustSucceed(t, nil, "rank", "--logs", logs, "--db", db, "--once", "--now", now.Format(time.RFC3339))
	sum := decodeLine[rankSummary](t, r.stdout)
	if sum.LinesRead != gen.Lines || sum.LinesRejected != gen.BadLines || sum.SnapshotID < 1 {
		t.Errorf("rank: got lines_read %d, lines_rejected %d, snapshot_id %d; want %d, %d, ≥ 1",
			sum.LinesRead, sum.LinesRejected, sum.SnapshotID, gen.Lines, gen.BadLines)
	}
	if !sum.Cutoff.Equal(end) || !sum.WindowStart.Equal(start) || sum.ObjectsFailed != 0 || sum.Objects != 7*24 {
		t.Errorf("rank: got cutoff %v, window start %v, %d objects, %d failed; want %v, %v, %d, 0",
			sum.Cutoff, sum.WindowStart, sum.Objects, sum.ObjectsFailed, end, start, 7*24)
	}
	snapshotID := strconv.FormatInt(sum.SnapshotID, 10)

	// The run published its top lists, then the same again with every product's rank:
	// serve loads one, then the other.
	waitFor(t, hangBound, "serve to answer from the run's snapshot", func() (bool, string) {
		res := get(t, api+"category_id=1")
		return res.status == http.StatusOK && res.header.Get("X-Snapshot-Id") == snapshotID,
			fmt.Sprintf("%d from snapshot %q", res.status, res.header.Get("X-Snapshot-Id"))
	})

	const category = 1
	var full []entry
	t.Run("default page", func(t *testing.T) {
		res := get(t, api+"category_id=1")
		if res.status != http.StatusOK {
			t.Fatalf("got %d %s, want 200", res.status, res.body)
		}
		if got := res.header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
			t.Errorf("got Content-Type %q, want application/json", got)
		}
		page := decodeRanking(t, res.body)
		if len(page) != 10 {
			t.Errorf("got %d entries, want the default limit, 10", len(page))
		}
		checkRanked(t, page, category)

		if got := res.header.Get("X-Snapshot-Id"); got != snapshotID {
			t.Errorf("got X-Snapshot-Id %q, want %q", got, snapshotID)
		}
		if got, want := res.header.Get("X-Window-Start"), start.Format(time.RFC3339); got != want {
			t.Errorf("got X-Window-Start %q, want %q", got, want)
		}
		if got, want := res.header.Get("X-Window-End"), end.Format(time.RFC3339); got != want {
			t.Errorf("got X-Window-End %q, want %q", got, want)
		}
		if res.header.Get("ETag") == "" {
			t.Errorf("got no ETag, want one")
		}
		// The snapshot is due again at end + 1h, which is less than an hour from now.
		cc := res.header.Get("Cache-Control")
		age, err := strconv.Atoi(strings.TrimPrefix(cc, "public, max-age="))
		if err != nil || age < 1 || age > 3600 {
			t.Errorf("got Cache-Control %q, want public, max-age=N with 0 < N ≤ 3600", cc)
		}
	})

	t.Run("full list and paging", func(t *testing.T) {
		res := get(t, api+"category_id=1&limit=1000")
		if res.status != http.StatusOK {
			t.Fatalf("got %d %s, want 200", res.status, res.body)
		}
		full = decodeRanking(t, res.body)
		// 200,000 sales over 1,000 categories: the largest category has more than 10
		// products sold, and rank keeps the top 100 by default.
		if len(full) <= 10 || len(full) > 100 {
			t.Fatalf("got %d entries with limit=1000, want 11 … 100", len(full))
		}
		checkRanked(t, full, category)
		n := len(full)
		for _, p := range []struct{ limit, offset int }{
			{10, 0}, {1, 0}, {1, 1}, {3, 7}, {25, 5}, {1000, 0}, {7, n - 3}, {5, n - 1}, {5, n}, {5, n + 10}, {1, 1 << 40},
		} {
			query := fmt.Sprintf("category_id=1&limit=%d&offset=%d", p.limit, p.offset)
			res := get(t, api+query)
			if res.status != http.StatusOK {
				t.Errorf("%s: got %d %s, want 200", query, res.status, res.body)
				continue
			}
			lo := min(p.offset, n)
			want := full[lo:min(lo+p.limit, n)]
			if got := decodeRanking(t, res.body); !slices.Equal(got, want) {
				t.Errorf("%s: got %v, want %v", query, got, want)
			}
		}
		// Paging by 7 from 0 gives back the whole list.
		var paged []entry
		for off := 0; off < n+7; off += 7 {
			paged = append(paged, decodeRanking(t, get(t, fmt.Sprintf("%scategory_id=1&limit=7&offset=%d", api, off)).body)...)
		}
		if !slices.Equal(paged, full) {
			t.Errorf("pages of 7: got %d entries, want the %d of the full list in order", len(paged), n)
		}
	})

	t.Run("conditional requests", func(t *testing.T) {
		first := get(t, api+"category_id=1")
		etag := first.header.Get("ETag")
		tests := []struct {
			ifNoneMatch string
			want        int
		}{
			{etag, http.StatusNotModified},
			{"W/" + etag, http.StatusNotModified},
			{`"nope", ` + etag, http.StatusNotModified},
			{"*", http.StatusNotModified},
			{`"nope"`, http.StatusOK},
		}
		for _, tt := range tests {
			res := do(t, http.MethodGet, api+"category_id=1", map[string]string{"If-None-Match": tt.ifNoneMatch})
			if res.status != tt.want {
				t.Errorf("If-None-Match %s: got %d, want %d", tt.ifNoneMatch, res.status, tt.want)
			}
			if tt.want == http.StatusNotModified {
				if len(res.body) != 0 {
					t.Errorf("If-None-Match %s: got body %q on 304, want none", tt.ifNoneMatch, res.body)
				}
				if got := res.header.Get("ETag"); got != etag {
					t.Errorf("If-None-Match %s: got ETag %q on 304, want %q", tt.ifNoneMatch, got, etag)
				}
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name   string
			method string
			query  string
			want   int
		}{
			{"missing category_id", "GET", "", http.StatusBadRequest},
			{"only limit", "GET", "limit=5", http.StatusBadRequest},
			{"letters", "GET", "category_id=abc", http.StatusBadRequest},
			{"negative category", "GET", "category_id=-1", http.StatusBadRequest},
			{"empty category", "GET", "category_id=", http.StatusBadRequest},
			{"category above int32", "GET", "category_id=2147483648", http.StatusBadRequest},
			{"limit 0", "GET", "category_id=1&limit=0", http.StatusBadRequest},
			{"limit 1001", "GET", "category_id=1&limit=1001", http.StatusBadRequest},
			{"limit letters", "GET", "category_id=1&limit=ten", http.StatusBadRequest},
			{"offset -1", "GET", "category_id=1&offset=-1", http.StatusBadRequest},
			{"repeated category_id", "GET", "category_id=1&category_id=1", http.StatusBadRequest},
			{"repeated limit", "GET", "category_id=1&limit=5&limit=5", http.StatusBadRequest},
			{"unknown parameter", "GET", "category_id=1&page=2", http.StatusBadRequest},
			{"unknown category", "GET", "category_id=999999", http.StatusNotFound},
			{"unknown category, largest id", "GET", "category_id=2147483647", http.StatusNotFound},
			{"POST", "POST", "category_id=1", http.StatusMethodNotAllowed},
			{"DELETE", "DELETE", "category_id=1", http.StatusMethodNotAllowed},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := do(t, tt.method, api+tt.query, nil)
				checkProblem(t, res, tt.want)
				if tt.want == http.StatusMethodNotAllowed && !strings.Contains(res.header.Get("Allow"), "GET") {
					t.Errorf("got Allow %q, want it to list GET", res.header.Get("Allow"))
				}
			})
		}
		if res := get(t, srv.base+"/api/v1/nothing"); res.status != http.StatusNotFound {
			t.Errorf("unknown path: got %d, want 404", res.status)
		}
	})

	// A second run, an hour later, publishes a newer snapshot that serve swaps in.
	r = mustSucceed(t, nil, "rank", "--logs", logs, "--db", db, "--once", "--now", end.Add(time.Hour).Format(time.RFC3339))
	second := decodeLine[rankSummary](t, r.stdout)
	if second.SnapshotID <= sum.SnapshotID {
		t.Fatalf("second rank: got snapshot_id %d, want more than %d", second.SnapshotID, sum.SnapshotID)
	}
	secondID := strconv.FormatInt(second.SnapshotID, 10)
	var oldETag string
	waitFor(t, hangBound, "serve to pick up snapshot "+secondID, func() (bool, string) {
		res := get(t, api+"category_id=1")
		if res.header.Get("X-Snapshot-Id") == snapshotID {
			oldETag = res.header.Get("ETag")
		}
		return res.status == http.StatusOK && res.header.Get("X-Snapshot-Id") == secondID,
			fmt.Sprintf("%d, X-Snapshot-Id %q", res.status, res.header.Get("X-Snapshot-Id"))
	})
	res := get(t, api+"category_id=1")
	if got, want := res.header.Get("X-Window-End"), end.Add(time.Hour).Format(time.RFC3339); got != want {
		t.Errorf("after the second rank: got X-Window-End %q, want %q", got, want)
	}
	if oldETag != "" {
		if got := do(t, "GET", api+"category_id=1", map[string]string{"If-None-Match": oldETag}); got.status != http.StatusOK {
			t.Errorf("If-None-Match with the previous snapshot's ETag: got %d, want 200", got.status)
		}
	}

	// SIGTERM: not ready for --drain, then a graceful shutdown and exit 0. The wait only
	// catches a serve that never exits; how long it took is not the point.
	if code := srv.stop(t, syscall.SIGTERM, hangBound); code != 0 {
		t.Errorf("serve after SIGTERM: got exit code %d, want 0 (wait: %v)", code, srv.err)
	}
	if !strings.Contains(srv.log.String(), `"msg":"stopped"`) {
		t.Errorf("serve log does not end with \"stopped\":\n%s", srv.log.String())
	}
}

// checkProblem checks an error response: status, an RFC 9457 body of that status, and a
// Content-Type of application/problem+json.
func checkProblem(t *testing.T, res response, status int) {
	t.Helper()
	if res.status != status {
		t.Errorf("got status %d, want %d; body %s", res.status, status, res.body)
	}
	if got := res.header.Get("Content-Type"); got != "application/problem+json" {
		t.Errorf("got Content-Type %q, want application/problem+json", got)
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(res.body, &p); err != nil {
		t.Errorf("problem body is not JSON: %v; got %q", err, res.body)
		return
	}
	if p.Status != status || p.Type == "" || p.Title == "" {
		t.Errorf("got problem %+v, want status %d with a type and a title", p, status)
	}
}

// saleLines returns n valid log lines at time at, in design.md's format.
func saleLines(at time.Time, n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "%d\t%d\t%d\t%d\t%d.%02d\t%d\t%d\n", at.Unix(), 1000+i%97, 1+i%5, 1+i%3, i%50, i%100, 7, 10000+i)
	}
	return b.Bytes()
}

// TestRankTruncatedGzip checks that an object which cannot be read to its end is left out
// whole, named in the summary, and does not stop the run.
func TestRankTruncatedGzip(t *testing.T) {
	salesrankBinary(t)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	at := cutoff.Add(-time.Hour)
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(logs, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const good = 300
	write("a-good.tsv", saleLines(at, good))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(saleLines(at, 5000))
	zw.Close()
	write("b-truncated.tsv.gz", gz.Bytes()[:gz.Len()/2])
	write("c-good.tsv.gz", gzipped(t, saleLines(at, good)))

	r := runBinary(t, nil, "rank", "--logs", logs, "--db", filepath.Join(dir, "s.db"), "--once", "--now", cutoff.Format(time.RFC3339))
	if r.code != 0 {
		t.Fatalf("got exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
	}
	sum := decodeLine[rankSummary](t, r.stdout)
	if sum.ObjectsFailed != 1 || !slices.Equal(sum.FailedObjects, []string{"b-truncated.tsv.gz"}) {
		t.Errorf("got objects_failed %d, failed_objects %q, want 1, [b-truncated.tsv.gz]", sum.ObjectsFailed, sum.FailedObjects)
	}
	// None of the truncated object's lines count, not even those before the cut.
	if sum.LinesRead != 2*good || sum.LinesRejected != 0 || sum.Objects != 3 || sum.SnapshotID < 1 {
		t.Errorf("got lines_read %d, lines_rejected %d, objects %d, snapshot_id %d; want %d, 0, 3, ≥ 1",
			sum.LinesRead, sum.LinesRejected, sum.Objects, sum.SnapshotID, 2*good)
	}
	if !strings.Contains(r.stderr, "b-truncated.tsv.gz") {
		t.Errorf("the log does not name the object left out; stderr:\n%s", r.stderr)
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRankWithoutDB(t *testing.T) {
	salesrankBinary(t)
	logs := t.TempDir()
	r := runBinary(t, nil, "rank", "--logs", logs, "--once")
	if r.code == 0 {
		t.Errorf("got exit code 0, want non-zero")
	}
	if !strings.Contains(r.stderr, "--db") {
		t.Errorf("got stderr %q, want it to name --db", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("got stdout %q, want no summary", r.stdout)
	}
}

// TestEnvironmentTwins runs rank with its settings in SALESRANK_ variables, and checks that
// a flag on the command line wins over its variable.
func TestEnvironmentTwins(t *testing.T) {
	salesrankBinary(t)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	if err := os.WriteFile(filepath.Join(logs, "part-0.tsv"), saleLines(cutoff.Add(-time.Minute), 40), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		db   string // the database file that must have been written
	}{
		{"variables only",
			[]string{"SALESRANK_DB=sqlite:" + filepath.Join(dir, "env.db"), "SALESRANK_LOGS=" + logs, "SALESRANK_ONCE=true",
				"SALESRANK_NOW=" + cutoff.Format(time.RFC3339)},
			nil, "env.db"},
		{"flags over variables",
			[]string{"SALESRANK_DB=postgres://u:secret@nowhere/db", "SALESRANK_LOGS=" + filepath.Join(dir, "missing"), "SALESRANK_TOP=0"},
			[]string{"--db", filepath.Join(dir, "flag.db"), "--logs", "file://" + logs, "--top", "5", "--once", "--now", cutoff.Format(time.RFC3339)},
			"flag.db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBinary(t, cleanEnv(tt.env...), append([]string{"rank"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("got exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
			}
			sum := decodeLine[rankSummary](t, r.stdout)
			if sum.LinesRead != 40 || sum.SnapshotID < 1 {
				t.Errorf("got lines_read %d, snapshot_id %d, want 40, ≥ 1", sum.LinesRead, sum.SnapshotID)
			}
			if _, err := os.Stat(filepath.Join(dir, tt.db)); err != nil {
				t.Errorf("got %v, want the database written to %s", err, tt.db)
			}
		})
	}
}

// TestServeStartErrors checks that serve exits at once, non-zero, when it cannot start.
func TestServeStartErrors(t *testing.T) {
	salesrankBinary(t)
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		want     string
		secret   string
	}{
		{"no --db", nil, []string{"serve"}, 2, "--db", ""},
		{"postgres from the environment", []string{"SALESRANK_DB=postgres://u:secret@h/db"}, []string{"serve", "--addr", "127.0.0.1:0"}, 1, "PostgreSQL", "secret"},
		{"bad address", nil, []string{"serve", "--db", filepath.Join(t.TempDir(), "s.db"), "--addr", "256.0.0.1:1"}, 1, "256.0.0.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBinary(t, cleanEnv(tt.env...), tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("got exit code %d, want %d; stderr:\n%s", r.code, tt.wantCode, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("got stderr %q, want it to contain %q", r.stderr, tt.want)
			}
			if tt.secret != "" && strings.Contains(r.stderr, tt.secret) {
				t.Errorf("got stderr %q, want it not to reveal %q", r.stderr, tt.secret)
			}
		})
	}
}
