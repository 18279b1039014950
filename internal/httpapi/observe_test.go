package httpapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/salesrank/salesrank/internal/metrics"
	"github.com/salesrank/salesrank/internal/testing/testbin"
)

// scrape fetches /metrics of an admin handler over HTTP, as Prometheus does, and parses it.
func scrape(tb testing.TB, admin http.Handler) map[string]*dto.MetricFamily {
	tb.Helper()
	srv := httptest.NewServer(admin)
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		tb.Fatalf("GET /metrics: %s", res.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		tb.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metricValue returns the value of the series of family name whose labels include labels
// (given as name, value pairs): a counter's or gauge's value, a histogram's sample count.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func newAdminForTest(ts *testServer, token string, r Refresher) http.Handler {
	logger := slog.New(slog.DiscardHandler)
	return NewAdmin(logger, token, metrics.Handler(ts.reg, logger), r)
}

func TestMetricsRequestsByRoute(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	metrics.NewSnapshot(ts.reg, ts.holder.Snapshot, func() time.Time { return ts.now })
	for _, target := range []string{
		"/api/v1/popular?category_id=1",         // 200, 3 rows
		"/api/v1/popular?category_id=2&limit=1", // 200, 1 row
		"/api/v1/popular?category_id=3",         // 200, 0 rows
		"/api/v1/popular?category_id=1234",      // 404
		"/api/v1/popular?category_id=x",         // 400
		"/healthz",
		"/no/such/page/12345", // 404 under the catch-all pattern, not its own path
	} {
		ts.do(t, "GET", target)
	}
	ts.do(t, "HEAD", "/api/v1/popular?category_id=1") // 200, no rows: HEAD has no body
	ts.do(t, "POST", "/api/v1/popular?category_id=1") // 405

	fams := scrape(t, newAdminForTest(ts, "", nil))
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"salesrank_http_requests_total", []string{"route", "/api/v1/popular", "code", "200"}, 4},
		{"salesrank_http_requests_total", []string{"route", "/api/v1/popular", "code", "404"}, 1},
		{"salesrank_http_requests_total", []string{"route", "/api/v1/popular", "code", "400"}, 1},
		{"salesrank_http_requests_total", []string{"route", "/api/v1/popular", "code", "405"}, 1},
		{"salesrank_http_requests_total", []string{"route", "/healthz", "code", "200"}, 1},
		{"salesrank_http_requests_total", []string{"route", "/", "code", "404"}, 1},
		{"salesrank_http_request_duration_seconds", []string{"route", "/api/v1/popular", "code", "200"}, 4},
		{"salesrank_http_rows_served_total", nil, 4},
		{"salesrank_snapshot_loaded", nil, 1},
		{"salesrank_snapshot_id", nil, 7},
		{"salesrank_snapshot_age_seconds", nil, (15*time.Minute - 2*time.Minute - 500*time.Millisecond).Seconds()},
		{"salesrank_snapshot_window_end_timestamp_seconds", nil, float64(cutoff.Unix())},
	}
	for _, tt := range tests {
		got, ok := metricValue(fams, tt.name, tt.labels...)
		if !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	// The raw URL never becomes a label: that would let clients grow the series without bound.
	for _, m := range fams["salesrank_http_requests_total"].Metric {
		for _, lp := range m.Label {
			if strings.Contains(lp.GetValue(), "?") || strings.Contains(lp.GetValue(), "12345") {
				t.Errorf("label %s=%q carries a raw URL", lp.GetName(), lp.GetValue())
			}
		}
	}
	if _, ok := fams["go_goroutines"]; ok {
		t.Error("test registry has the Go collector; the test wanted a bare registry")
	}
}

func TestMetricsSnapshotBeforeLoad(t *testing.T) {
	ts := newTestServer(t, nil)
	metrics.NewSnapshot(ts.reg, ts.holder.Snapshot, nil)
	fams := scrape(t, newAdminForTest(ts, "", nil))
	if got, ok := metricValue(fams, "salesrank_snapshot_loaded"); !ok || got != 0 {
		t.Errorf("salesrank_snapshot_loaded = %v (found %v), want 0", got, ok)
	}
	for _, name := range []string{"salesrank_snapshot_id", "salesrank_snapshot_age_seconds"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s reported before any snapshot was loaded", name)
		}
	}
}

func TestServeRequestID(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	const p = "/api/v1/popular?category_id=1"
	tests := []struct {
		name   string
		header []string
		keep   bool // the incoming id is echoed
	}{
		{"none", nil, false},
		{"nginx request_id", []string{"X-Request-Id", "0f8fad5bd9cb469fa16570867728950e"}, true},
		{"uuid", []string{"X-Request-Id", "f47ac10b-58cc-4372-a567-0e02b2c3d479"}, true},
		{"base64", []string{"X-Request-Id", "aGVsbG8+/w=="}, true},
		{"empty", []string{"X-Request-Id", ""}, false},
		{"spaces", []string{"X-Request-Id", "a b"}, false},
		{"quote", []string{"X-Request-Id", `a"b`}, false},
		{"json breaker", []string{"X-Request-Id", `x","level":"ERROR`}, false},
		{"too long", []string{"X-Request-Id", strings.Repeat("a", 129)}, false},
		{"longest", []string{"X-Request-Id", strings.Repeat("a", 128)}, true},
		{"two", []string{"X-Request-Id", "a1", "X-Request-Id", "b2"}, false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.do(t, "GET", p, tt.header...)
			got := w.Header().Values("X-Request-Id")
			if len(got) != 1 || got[0] == "" {
				t.Fatalf("X-Request-Id = %q, want one value", got)
			}
			if tt.keep && got[0] != tt.header[1] {
				t.Errorf("X-Request-Id = %q, want the incoming %q", got[0], tt.header[1])
			}
			if !tt.keep {
				if len(tt.header) > 1 && got[0] == tt.header[1] {
					t.Errorf("X-Request-Id %q echoed although it is not sane", got[0])
				}
				if seen[got[0]] {
					t.Errorf("generated X-Request-Id %q twice", got[0])
				}
				seen[got[0]] = true
				if !saneRequestID(got[0]) {
					t.Errorf("generated X-Request-Id %q is not sane itself", got[0])
				}
			}
		})
	}
	// Errors carry it too, so a client can quote it when reporting a problem.
	if w := ts.do(t, "GET", "/api/v1/popular?category_id=x", "X-Request-Id", "abc"); w.Header().Get("X-Request-Id") != "abc" {
		t.Errorf("400: X-Request-Id = %q, want abc", w.Header().Get("X-Request-Id"))
	}
}

// TestRequestIDsBatches: ids made ahead in batches are unique across batches and
// goroutines, and each is handed out as its own one-element slice, so a middleware that
// appends to the header cannot overwrite another request's id.
func TestRequestIDsBatches(t *testing.T) {
	g := newRequestIDs()
	r := httptest.NewRequest("GET", "/", nil)
	const workers, each = 4, 2*idBatch + 3
	got := make([][]string, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				got[w*each+i] = g.get(r)
			}
		})
	}
	wg.Wait()
	seen := make(map[string]bool, len(got))
	for _, v := range got {
		if len(v) != 1 || cap(v) != 1 || !saneRequestID(v[0]) || !strings.HasPrefix(v[0], g.prefix) {
			t.Fatalf("id %q (len %d, cap %d), want one sane value with prefix %q and cap 1", v, len(v), cap(v), g.prefix)
		}
		if seen[v[0]] {
			t.Fatalf("id %q handed out twice", v[0])
		}
		seen[v[0]] = true
	}
	a, b := g.get(r), g.get(r)
	want := b[0]
	_ = append(a, "appended")
	if b[0] != want {
		t.Errorf("appending to one id's slice changed the next id to %q, want %q", b[0], want)
	}
}

// TestServeRequestLogs checks the levels: successes and client errors at debug, so that
// production logs at info stay quiet, and 5xx at warn.
func TestServeRequestLogs(t *testing.T) {
	var buf testbin.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := NewServer(logger, new(Holder), nil, nil, nil) // no snapshot: popular answers 503
	do := func(target, id string) {
		r := httptest.NewRequest("GET", target, nil)
		r.Header.Set("X-Request-Id", id)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	do("/healthz", "ok-1")
	do("/api/v1/popular?category_id=1", "unavailable-1")
	levels := map[string]string{}
	for line := range strings.Lines(buf.String()) {
		var rec struct {
			Level, Msg, RequestID, Route string
			Status                       int
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		var raw map[string]any
		json.Unmarshal([]byte(line), &raw)
		if rec.Msg == "request" {
			levels[fmt.Sprint(raw["request_id"])] = rec.Level
			if raw["route"] == nil || raw["status"] == nil || raw["duration"] == nil {
				t.Errorf("request log %s lacks route, status or duration", line)
			}
		}
	}
	if got, want := levels["ok-1"], "DEBUG"; got != want {
		t.Errorf("200 logged at %q, want %q; log:\n%s", got, want, buf.String())
	}
	if got, want := levels["unavailable-1"], "WARN"; got != want {
		t.Errorf("503 logged at %q, want %q; log:\n%s", got, want, buf.String())
	}
}

// internals are words that would betray the implementation in an error body.
var internals = []string{"sql", "select ", "sales_rank", "database", "goroutine", "panic", "runtime.", ".go:", "strconv"}

func TestServeHostileRequests(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	const p = "/api/v1/popular?"
	tests := []struct {
		name   string
		target string
		want   int
	}{
		{"sql injection quote", p + "category_id=1%27%20OR%20%271%27%3D%271", 400},
		{"sql injection union", p + "category_id=1%20UNION%20SELECT%20*%20FROM%20sales_rank", 400},
		{"sql injection stacked", p + "category_id=1;DROP%20TABLE%20sales_rank;--", 400},
		{"sql injection in limit", p + "category_id=1&limit=10;DELETE%20FROM%20snapshots", 400},
		{"sql injection as key", p + "category_id=1&1%27%3Bselect=1", 400},
		{"nul byte", p + "category_id=1%00", 400},
		{"bad percent", p + "category_id=%zz", 400},
		{"huge category", p + "category_id=" + strings.Repeat("9", 1000), 400},
		{"huge limit", p + "category_id=1&limit=" + strings.Repeat("9", 900), 400},
		{"2000-char query", p + "category_id=1&pad=" + strings.Repeat("x", 2000), 414},
		{"huge category over 1 KiB", p + "category_id=" + strings.Repeat("9", 5000), 414},
		{"long path", "/" + strings.Repeat("a", 2000), 414},
		{"many parameters", p + strings.Repeat("category_id=1&", 70), 400},
		{"script", p + "category_id=%3Cscript%3Ealert(1)%3C/script%3E", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.do(t, "GET", tt.target)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.want, w.Body)
			}
			checkProblem(t, w, tt.want)
			body := strings.ToLower(w.Body.String())
			for _, s := range internals {
				// The client's own input may be quoted back, clipped; nothing else may.
				if strings.Contains(body, s) && !strings.Contains(strings.ToLower(tt.target), strings.TrimSpace(s)) {
					t.Errorf("body mentions %q: %s", s, w.Body)
				}
			}
			if w.Body.Len() > 512 {
				t.Errorf("body of %d bytes: the input is echoed rather than clipped", w.Body.Len())
			}
		})
	}
}

// TestServeHostileOverHTTP sends what only a real connection can carry, to the server
// serve builds.
func TestServeHostileOverHTTP(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	srv := httptest.NewUnstartedServer(ts.handler)
	srv.Config = NewHTTPServer(ts.handler, slog.New(slog.DiscardHandler))
	srv.Start()
	defer srv.Close()

	get := func(target string, header http.Header) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("GET", srv.URL+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("%s: read body: %v", target, err)
		}
		return res, string(b)
	}
	// MaxHeaderBytes: net/http refuses before any handler runs, in plain text.
	res, body := get("/api/v1/popular?category_id=1", http.Header{"Cookie": {strings.Repeat("c", MaxHeaderBytes+8<<10)}})
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized header: %s, want 431; body %q", res.Status, body)
	}
	// Under the limit but with a 2,000-character query: ours, as problem+json.
	res, body = get("/api/v1/popular?category_id=1&x="+strings.Repeat("y", 2000), nil)
	if res.StatusCode != http.StatusRequestURITooLong || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("2,000-character query: %s %s, want 414 problem+json; body %q", res.Status, res.Header.Get("Content-Type"), body)
	}
	res, _ = get("/api/v1/popular?category_id=1", nil)
	if res.StatusCode != http.StatusOK {
		t.Errorf("a normal request after the hostile ones: %s", res.Status)
	}
}

// TestServeSlowHeaders opens 200 connections that trickle their headers in, and checks that
// normal requests are still answered meanwhile and that the server closes the slow ones at
// its ReadHeaderTimeout, however busy they keep the line.
func TestServeSlowHeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 200 connections for a few seconds")
	}
	ts := newTestServer(t, seedSnapshot(7))
	cfg := NewHTTPServer(ts.handler, slog.New(slog.DiscardHandler))
	if cfg.ReadHeaderTimeout != ReadHeaderTimeout || cfg.MaxHeaderBytes != MaxHeaderBytes ||
		cfg.ReadTimeout == 0 || cfg.WriteTimeout == 0 || cfg.IdleTimeout == 0 {
		t.Fatalf("NewHTTPServer lacks its bounds: %+v", cfg)
	}
	const timeout = 500 * time.Millisecond // ReadHeaderTimeout is 5s; the test need not wait that long
	// slowHang is how long a slow connection may stay open before the test calls it never
	// closed: far past the timeout, so that a busy machine's scheduling cannot fail it.
	const slowHang = time.Minute
	cfg.ReadHeaderTimeout = timeout
	srv := httptest.NewUnstartedServer(ts.handler)
	srv.Config = cfg
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	const slow = 200
	start := time.Now()
	closedAfter := make(chan time.Duration, slow)
	var wg sync.WaitGroup
	for range slow {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial slow connection: %v", err)
		}
		defer c.Close()
		wg.Go(func() {
			if _, err := io.WriteString(c, "GET /api/v1/popular?category_id=1 HTTP/1.1\r\nHost: x\r\n"); err != nil {
				closedAfter <- time.Since(start)
				return
			}
			// One header line every 50ms: activity must not extend the deadline.
			go func() {
				for i := 0; ; i++ {
					time.Sleep(50 * time.Millisecond)
					if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", i); err != nil {
						return
					}
				}
			}()
			c.SetReadDeadline(time.Now().Add(slowHang))
			_, err := bufio.NewReader(c).ReadByte() // the server sends nothing, then closes
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				closedAfter <- -1 // still open: the server did not cut it off
				return
			}
			closedAfter <- time.Since(start)
		})
	}

	// Normal clients, on fresh connections, while the slow ones hold theirs.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for i := range 20 {
		res, err := client.Get(srv.URL + "/api/v1/popular?category_id=1")
		if err != nil {
			t.Fatalf("normal request %d: %v", i, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("normal request %d: %s", i, res.Status)
		}
	}

	wg.Wait()
	close(closedAfter)
	var latest time.Duration
	for d := range closedAfter {
		if d < 0 {
			t.Fatalf("a slow connection was still open after %v", slowHang)
		}
		latest = max(latest, d)
	}
	if latest < timeout {
		t.Errorf("slow connections closed after %v, before the %v timeout", latest, timeout)
	}
	t.Logf("%d slow connections closed within %v (ReadHeaderTimeout %v)", slow, latest, timeout)
}

// TestServeMetricsNotPublic checks that /metrics and the admin paths are not served on the
// public listener.
func TestServeMetricsNotPublic(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	for _, target := range []string{"/metrics", "/debug/pprof/", "/admin/refresh"} {
		if w := ts.do(t, "GET", target); w.Code != http.StatusNotFound {
			t.Errorf("public GET %s: status %d, want 404", target, w.Code)
		}
	}
}
