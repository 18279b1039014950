package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/metrics"
)

var cutoff = time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)

// seedSnapshot is the source design's example: category 1 sold product 4 ×1, product 1 ×2,
// product 2 ×3; category 2 sold product 1 ×3 and product 3 ×7. Category 3 is known but
// sold nothing this week.
func seedSnapshot(id int64) *salesrank.Snapshot {
	return &salesrank.Snapshot{
		ID:          id,
		Window:      salesrank.WindowEnding(cutoff),
		Interval:    time.Hour,
		Top:         100,
		PublishedAt: cutoff.Add(2*time.Minute + 500*time.Millisecond),
		Rankings: []salesrank.Ranking{
			{CategoryID: 1, Entries: []salesrank.Entry{
				{ID: 101, ProductID: 2, TotalSold: 3},
				{ID: 102, ProductID: 1, TotalSold: 2},
				{ID: 103, ProductID: 4, TotalSold: 1},
			}},
			{CategoryID: 2, Entries: []salesrank.Entry{
				{ID: 104, ProductID: 3, TotalSold: 7},
				{ID: 105, ProductID: 1, TotalSold: 3},
			}},
			{CategoryID: 3},
		},
	}
}

// longSnapshot has one category, 42, with n entries: product p+1000 at rank p+1 sold n-p.
func longSnapshot(id int64, n int) *salesrank.Snapshot {
	s := seedSnapshot(id)
	r := salesrank.Ranking{CategoryID: 42}
	for p := range n {
		r.Entries = append(r.Entries, salesrank.Entry{ID: int64(p + 1), ProductID: int64(p + 1000), TotalSold: int64(n - p)})
	}
	s.Rankings = append(s.Rankings, r)
	return s
}

type testServer struct {
	reg      *prometheus.Registry
	holder   *Holder
	handler  http.Handler
	now      time.Time
	draining atomic.Bool
}

func newTestServer(tb testing.TB, s *salesrank.Snapshot) *testServer {
	tb.Helper()
	ts := &testServer{reg: prometheus.NewRegistry(), holder: new(Holder), now: cutoff.Add(15 * time.Minute)}
	ts.holder.Store(s)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ts.handler = NewServer(logger, ts.holder, metrics.NewHTTP(ts.reg), func() time.Time { return ts.now }, ts.draining.Load)
	return ts
}

func (ts *testServer) do(tb testing.TB, method, target string, header ...string) *httptest.ResponseRecorder {
	tb.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	ts.handler.ServeHTTP(w, r)
	return w
}

func TestPopularSeedExactJSON(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	tests := []struct {
		target, want string
	}{
		{"/api/v1/popular?category_id=1",
			`[{"id":"101","category_id":"1","total_sold":"3","product_id":"2"},` +
				`{"id":"102","category_id":"1","total_sold":"2","product_id":"1"},` +
				`{"id":"103","category_id":"1","total_sold":"1","product_id":"4"}]`},
		{"/api/v1/popular?category_id=2",
			`[{"id":"104","category_id":"2","total_sold":"7","product_id":"3"},` +
				`{"id":"105","category_id":"2","total_sold":"3","product_id":"1"}]`},
		{"/api/v1/popular?category_id=3", `[]`},
		{"/api/v1/popular?category_id=1&limit=1&offset=1",
			`[{"id":"102","category_id":"1","total_sold":"2","product_id":"1"}]`},
	}
	for _, tt := range tests {
		w := ts.do(t, "GET", tt.target)
		if got, want := w.Code, http.StatusOK; got != want {
			t.Fatalf("GET %s: status %d, want %d; body %s", tt.target, got, want, w.Body)
		}
		if got := w.Body.String(); got != tt.want {
			t.Errorf("GET %s:\n got %s\nwant %s", tt.target, got, tt.want)
		}
		var v []map[string]string // every value is a JSON string
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Errorf("GET %s: body is not an array of string maps: %v", tt.target, err)
		}
	}
}

func TestPopular64BitIDs(t *testing.T) {
	const max = 1<<63 - 1
	s := seedSnapshot(max)
	s.Rankings = []salesrank.Ranking{{CategoryID: salesrank.MaxCategoryID, Entries: []salesrank.Entry{
		{ID: max, ProductID: max, TotalSold: max},
	}}}
	ts := newTestServer(t, s)
	w := ts.do(t, "GET", "/api/v1/popular?category_id=2147483647")
	want := `[{"id":"9223372036854775807","category_id":"2147483647","total_sold":"9223372036854775807","product_id":"9223372036854775807"}]`
	if got := w.Body.String(); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if got, want := w.Header().Get("ETag"), `"9223372036854775807"`; got != want {
		t.Errorf("ETag = %s, want %s", got, want)
	}
}

func TestPopularPaging(t *testing.T) {
	ts := newTestServer(t, longSnapshot(1, 25))
	tests := []struct {
		query     string
		wantFirst int // rank of the first entry, 1-based
		wantLen   int
	}{
		{"", 1, 10},
		{"&limit=1", 1, 1},
		{"&limit=25", 1, 25},
		{"&limit=1000", 1, 25},
		{"&offset=0", 1, 10},
		{"&offset=10", 11, 10},
		{"&offset=20", 21, 5},
		{"&offset=24", 25, 1},
		{"&offset=25", 0, 0},
		{"&offset=9223372036854775807", 0, 0},
		{"&offset=3&limit=4", 4, 4},
		{"&limit=4&offset=3", 4, 4},
		{"&limit=1000&offset=9223372036854775807", 0, 0},
	}
	for _, tt := range tests {
		target := "/api/v1/popular?category_id=42" + tt.query
		w := ts.do(t, "GET", target)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: status %d; body %s", target, w.Code, w.Body)
		}
		var got []map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("GET %s: %v; body %s", target, err, w.Body)
		}
		if len(got) != tt.wantLen {
			t.Errorf("GET %s: %d entries, want %d", target, len(got), tt.wantLen)
			continue
		}
		for i, e := range got {
			if got, want := e["id"], fmt.Sprint(tt.wantFirst+i); got != want {
				t.Errorf("GET %s: entry %d has id %s, want %s", target, i, got, want)
			}
		}
	}
}

func TestPopularStatus(t *testing.T) {
	const p = "/api/v1/popular"
	tests := []struct {
		name, method, target string
		wantStatus           int
		wantParam            string // the problem's "parameter", for 400s
	}{
		{"ok", "GET", p + "?category_id=1", 200, ""},
		{"head", "HEAD", p + "?category_id=1", 200, ""},
		{"empty category", "GET", p + "?category_id=3", 200, ""},
		{"category zero unknown", "GET", p + "?category_id=0", 404, ""},
		{"unknown category", "GET", p + "?category_id=1234", 404, ""},
		{"largest category id", "GET", p + "?category_id=2147483647", 404, ""},
		{"percent-encoded", "GET", p + "?category%5Fid=%31", 200, ""},
		{"trailing ampersand", "GET", p + "?category_id=1&", 200, ""},
		{"missing category", "GET", p, 400, "category_id"},
		{"missing category with limit", "GET", p + "?limit=5", 400, "category_id"},
		{"empty category", "GET", p + "?category_id=", 400, "category_id"},
		{"no equals", "GET", p + "?category_id", 400, "category_id"},
		{"negative category", "GET", p + "?category_id=-1", 400, "category_id"},
		{"plus sign", "GET", p + "?category_id=%2B1", 400, "category_id"},
		{"space", "GET", p + "?category_id=+1", 400, "category_id"},
		{"category too big", "GET", p + "?category_id=2147483648", 400, "category_id"},
		{"category huge", "GET", p + "?category_id=99999999999999999999999", 400, "category_id"},
		{"category not a number", "GET", p + "?category_id=books", 400, "category_id"},
		{"category float", "GET", p + "?category_id=1.0", 400, "category_id"},
		{"category hex", "GET", p + "?category_id=0x1", 400, "category_id"},
		{"category repeated", "GET", p + "?category_id=1&category_id=2", 400, "category_id"},
		{"category repeated same", "GET", p + "?category_id=1&category_id=1", 400, "category_id"},
		{"limit zero", "GET", p + "?category_id=1&limit=0", 400, "limit"},
		{"limit too big", "GET", p + "?category_id=1&limit=1001", 400, "limit"},
		{"limit negative", "GET", p + "?category_id=1&limit=-5", 400, "limit"},
		{"limit empty", "GET", p + "?category_id=1&limit=", 400, "limit"},
		{"limit repeated", "GET", p + "?category_id=1&limit=5&limit=5", 400, "limit"},
		{"offset negative", "GET", p + "?category_id=1&offset=-1", 400, "offset"},
		{"offset too big", "GET", p + "?category_id=1&offset=9223372036854775808", 400, "offset"},
		{"offset malformed", "GET", p + "?category_id=1&offset=ten", 400, "offset"},
		{"offset repeated", "GET", p + "?category_id=1&offset=1&offset=2", 400, "offset"},
		{"unknown parameter", "GET", p + "?category_id=1&limt=5", 400, "limt"},
		{"bad percent-encoding", "GET", p + "?category_id=%zz", 400, ""},
		{"bad params before unknown category", "GET", p + "?category_id=1234&limit=0", 400, "limit"},
		{"post", "POST", p + "?category_id=1", 405, ""},
		{"delete", "DELETE", p + "?category_id=1", 405, ""},
		{"unknown path", "GET", "/api/v1/unpopular", 404, ""},
		{"trailing slash", "GET", p + "/?category_id=1", 404, ""},
	}
	ts := newTestServer(t, seedSnapshot(7))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.do(t, tt.method, tt.target)
			if got, want := w.Code, tt.wantStatus; got != want {
				t.Fatalf("%s %s: status %d, want %d; body %s", tt.method, tt.target, got, want, w.Body)
			}
			if w.Code == 200 {
				if got, want := w.Header().Get("Content-Type"), "application/json"; got != want {
					t.Errorf("Content-Type = %q, want %q", got, want)
				}
				return
			}
			p := checkProblem(t, w, tt.wantStatus)
			if tt.wantParam != "" {
				if got, want := p.Parameter, tt.wantParam; got != want {
					t.Errorf("parameter = %q, want %q", got, want)
				}
				if !strings.Contains(p.Detail, tt.wantParam) {
					t.Errorf("detail %q does not name %s", p.Detail, tt.wantParam)
				}
			}
			if w.Code == 405 {
				if got, want := w.Header().Get("Allow"), "GET, HEAD"; got != want {
					t.Errorf("Allow = %q, want %q", got, want)
				}
			}
		})
	}
}

// checkProblem checks that w is an RFC 9457 problem with the given status and returns it.
func checkProblem(tb testing.TB, w *httptest.ResponseRecorder, status int) problem {
	tb.Helper()
	if got, want := w.Header().Get("Content-Type"), "application/problem+json"; got != want {
		tb.Errorf("Content-Type = %q, want %q", got, want)
	}
	var p problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		tb.Fatalf("problem body %q: %v", w.Body, err)
	}
	if p.Status != status || p.Type == "" || p.Title == "" || p.Detail == "" {
		tb.Errorf("problem %+v: want status %d and a type, title and detail", p, status)
	}
	return p
}

func TestPopularDetailNamesRange(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	tests := []struct{ query, want string }{
		{"category_id=x", "from 0 to 2147483647"},
		{"category_id=1&limit=0", "from 1 to 1000"},
		{"category_id=1&offset=-1", "from 0 to"},
	}
	for _, tt := range tests {
		w := ts.do(t, "GET", "/api/v1/popular?"+tt.query)
		p := checkProblem(t, w, 400)
		if !strings.Contains(p.Detail, tt.want) {
			t.Errorf("%s: detail %q does not say %q", tt.query, p.Detail, tt.want)
		}
	}
}

func TestPopularNoSnapshot(t *testing.T) {
	ts := newTestServer(t, nil)
	w := ts.do(t, "GET", "/api/v1/popular?category_id=1")
	checkProblem(t, w, http.StatusServiceUnavailable)
	if w.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After on 503")
	}
}

func TestPopularHeaders(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	tests := []struct {
		name   string
		now    time.Time
		method string
		want   map[string]string
	}{
		{"GET", cutoff.Add(15 * time.Minute), "GET", map[string]string{
			"Content-Type":   "application/json",
			"ETag":           `"7"`,
			"Cache-Control":  "public, max-age=2700", // next refresh at 14:00
			"X-Snapshot-Age": "780",
			"X-Snapshot-Id":  "7",
			"X-Window-Start": "2026-11-13T13:00:00Z",
			"X-Window-End":   "2026-11-20T13:00:00Z",
		}},
		{"HEAD", cutoff.Add(59*time.Minute + 59*time.Second), "HEAD", map[string]string{
			"Content-Type":  "application/json",
			"ETag":          `"7"`,
			"Cache-Control": "public, max-age=1",
		}},
		{"refresh overdue", cutoff.Add(3 * time.Hour), "GET", map[string]string{
			"Cache-Control": "public, max-age=0",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.now = tt.now
			w := ts.do(t, tt.method, "/api/v1/popular?category_id=1")
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			for k, want := range tt.want {
				if got := w.Header().Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestPopularHeaderFields checks the exact set of fields a 200 of the popular endpoint
// sets: at most maxPopularHeaders, stale mark aside, so that net/http's per-response
// header map and its clone stay small Go maps.
func TestPopularHeaderFields(t *testing.T) {
	for _, stale := range []bool{false, true} {
		ts := newTestServer(t, seedSnapshot(7))
		ts.holder.SetSourceDown(stale)
		w := ts.do(t, "GET", "/api/v1/popular?category_id=1")
		got := slices.Sorted(maps.Keys(w.Result().Header)) // as at WriteHeader
		want := []string{"Cache-Control", "Content-Type", "Etag", "X-Request-Id", "X-Snapshot-Age", "X-Snapshot-Id", "X-Window-End", "X-Window-Start"}
		if stale {
			want = append(want, "X-Snapshot-Stale")
			slices.Sort(want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("stale %v: header fields\n got %q\nwant %q", stale, got, want)
		}
		if n := len(got); !stale && n > maxPopularHeaders {
			t.Errorf("%d header fields, want at most %d", n, maxPopularHeaders)
		}
	}
}

// TestPopularOverHTTP checks what only a real server shows: HEAD has no body but the
// Content-Length of GET, and large pages arrive whole.
func TestPopularOverHTTP(t *testing.T) {
	ts := newTestServer(t, longSnapshot(1, 1000))
	srv := httptest.NewServer(ts.handler)
	defer srv.Close()
	get := func(method, query string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+"/api/v1/popular?"+query, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, b
	}
	res, body := get("GET", "category_id=1")
	head, headBody := get("HEAD", "category_id=1")
	if got, want := head.ContentLength, int64(len(body)); got != want || res.ContentLength != want {
		t.Errorf("Content-Length: HEAD %d, GET %d; want %d", got, res.ContentLength, want)
	}
	if len(headBody) != 0 {
		t.Errorf("HEAD body %q, want none", headBody)
	}
	_, all := get("GET", "category_id=42&limit=1000")
	var entries []map[string]string
	if err := json.Unmarshal(all, &entries); err != nil || len(entries) != 1000 {
		t.Errorf("limit=1000: %d entries, err %v", len(entries), err)
	}
}

func TestPopularNotModified(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	tests := []struct {
		name   string
		header []string
		want   int
	}{
		{"no precondition", nil, 200},
		{"same etag", []string{"If-None-Match", `"7"`}, 304},
		{"weak etag", []string{"If-None-Match", `W/"7"`}, 304},
		{"star", []string{"If-None-Match", `*`}, 304},
		{"in a list", []string{"If-None-Match", `"5", "6" ,W/"7"`}, 304},
		{"in a second field", []string{"If-None-Match", `"5"`, "If-None-Match", `"7"`}, 304},
		{"old etag", []string{"If-None-Match", `"6"`}, 200},
		{"prefix only", []string{"If-None-Match", `"77"`}, 200},
		{"unquoted", []string{"If-None-Match", `7`}, 200},
		{"malformed then match", []string{"If-None-Match", `xyz, "7"`}, 304},
		{"unterminated", []string{"If-None-Match", `"7`}, 200},
		{"empty", []string{"If-None-Match", ``}, 200},
		{"modified since before", []string{"If-Modified-Since", "Fri, 20 Nov 2026 13:01:59 GMT"}, 200},
		{"not modified since", []string{"If-Modified-Since", "Fri, 20 Nov 2026 13:02:00 GMT"}, 304},
		{"if-none-match wins", []string{"If-None-Match", `"6"`, "If-Modified-Since", "Fri, 20 Nov 2026 14:00:00 GMT"}, 200},
		{"bad date", []string{"If-Modified-Since", "yesterday"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.do(t, "GET", "/api/v1/popular?category_id=1", tt.header...)
			if got := w.Code; got != tt.want {
				t.Fatalf("status %d, want %d", got, tt.want)
			}
			if got, want := w.Header().Get("ETag"), `"7"`; got != want {
				t.Errorf("ETag = %q, want %q", got, want)
			}
			if w.Header().Get("Cache-Control") == "" || w.Header().Get("X-Snapshot-Id") == "" {
				t.Errorf("missing cache headers: %v", w.Header())
			}
			if w.Code == 304 && w.Body.Len() != 0 {
				t.Errorf("304 with body %q", w.Body)
			}
		})
	}
	// Preconditions come after validation: a bad request is not "not modified".
	w := ts.do(t, "GET", "/api/v1/popular?category_id=1234", "If-None-Match", "*")
	if got, want := w.Code, 404; got != want {
		t.Errorf("unknown category with If-None-Match *: status %d, want %d", got, want)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	tests := []struct {
		name                 string
		snap                 *salesrank.Snapshot
		draining             bool
		wantHealth, wantRead int
	}{
		{"no snapshot", nil, false, 200, 503},
		{"serving", seedSnapshot(7), false, 200, 200},
		{"draining", seedSnapshot(7), true, 200, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, tt.snap)
			ts.draining.Store(tt.draining)
			if got := ts.do(t, "GET", "/healthz").Code; got != tt.wantHealth {
				t.Errorf("/healthz: %d, want %d", got, tt.wantHealth)
			}
			w := ts.do(t, "GET", "/readyz")
			if got := w.Code; got != tt.wantRead {
				t.Errorf("/readyz: %d, want %d", got, tt.wantRead)
			}
			if w.Body.Len() == 0 {
				t.Error("/readyz: no body saying why")
			}
			if got := ts.do(t, "POST", "/readyz").Code; got != 405 {
				t.Errorf("POST /readyz: %d, want 405", got)
			}
		})
	}
}

func TestPage(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	tests := []struct{ target, wantType, wantText string }{
		{"/", "text/html; charset=utf-8", "/api/v1/popular"},
	}
	for _, tt := range tests {
		w := ts.do(t, "GET", tt.target)
		if w.Code != 200 {
			t.Fatalf("GET %s: status %d", tt.target, w.Code)
		}
		if got := w.Header().Get("Content-Type"); got != tt.wantType {
			t.Errorf("GET %s: Content-Type %q, want %q", tt.target, got, tt.wantType)
		}
		if !strings.Contains(w.Body.String(), tt.wantText) {
			t.Errorf("GET %s: body lacks %q", tt.target, tt.wantText)
		}
		etag := w.Header().Get("ETag")
		if got := ts.do(t, "GET", tt.target, "If-None-Match", etag).Code; got != 304 {
			t.Errorf("GET %s with its ETag: status %d, want 304", tt.target, got)
		}
	}
	// The style and script are inlined in the page: no route serves them apart.
	for _, target := range []string{"/app.js", "/style.css"} {
		if got := ts.do(t, "GET", target).Code; got != 404 {
			t.Errorf("GET %s: status %d, want 404", target, got)
		}
	}
}

func TestSwap(t *testing.T) {
	a, b := seedSnapshot(1), seedSnapshot(2)
	b.Rankings[0].Entries = b.Rankings[0].Entries[:1]
	b.Rankings = append(b.Rankings, salesrank.Ranking{CategoryID: 9})
	ts := newTestServer(t, a)
	check := func(wantID string, want9 int) {
		t.Helper()
		w := ts.do(t, "GET", "/api/v1/popular?category_id=1")
		if got := w.Header().Get("X-Snapshot-Id"); got != wantID {
			t.Errorf("X-Snapshot-Id = %s, want %s", got, wantID)
		}
		if got := ts.do(t, "GET", "/api/v1/popular?category_id=9").Code; got != want9 {
			t.Errorf("category 9: status %d, want %d", got, want9)
		}
		if got := ts.do(t, "GET", "/api/v1/popular?category_id=1", "If-None-Match", `"1"`).Code; (got == 304) != (wantID == "1") {
			t.Errorf("If-None-Match \"1\" on snapshot %s: status %d", wantID, got)
		}
	}
	check("1", 404)
	ts.holder.Store(b)
	check("2", 200)
}

// TestSwapConcurrent swaps snapshots while requests run and checks that every response's
// body belongs to the snapshot its headers name.
func TestSwapConcurrent(t *testing.T) {
	snaps := map[string]*salesrank.Snapshot{}
	bodies := map[string]string{}
	for id := int64(1); id <= 3; id++ {
		s := longSnapshot(id, 30)
		for i := range s.Rankings[3].Entries {
			s.Rankings[3].Entries[i].TotalSold += id * 1000 // tell the snapshots apart
		}
		key := fmt.Sprint(id)
		snaps[key] = s
		w := newTestServer(t, s).do(t, "GET", "/api/v1/popular?category_id=42&limit=20&offset=5")
		bodies[key] = w.Body.String()
	}
	ts := newTestServer(t, snaps["1"])
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ts.holder.Store(snaps[fmt.Sprint(i%3+1)])
		}
	})
	var clients sync.WaitGroup
	for range 8 {
		clients.Go(func() {
			for range 300 {
				w := ts.do(t, "GET", "/api/v1/popular?category_id=42&limit=20&offset=5")
				id := w.Header().Get("X-Snapshot-Id")
				if etag := w.Header().Get("ETag"); etag != `"`+id+`"` {
					t.Errorf("ETag %s with X-Snapshot-Id %s", etag, id)
				}
				if got, want := w.Body.String(), bodies[id]; got != want {
					t.Errorf("snapshot %s: body mixed\n got %s\nwant %s", id, got, want)
					return
				}
			}
		})
	}
	clients.Wait()
	close(stop)
	wg.Wait()
}

// discard is a ResponseWriter that keeps nothing, so the benchmark measures the handler
// rather than a recorder.
type discard struct {
	h http.Header
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func BenchmarkPopular(b *testing.B) {
	ts := newTestServer(b, longSnapshot(1, 100))
	benchmarks := []struct {
		name   string
		target string
		header []string
	}{
		{"default page", "/api/v1/popular?category_id=42", nil},
		{"limit=100", "/api/v1/popular?category_id=42&limit=100", nil},
		{"offset=50&limit=25", "/api/v1/popular?category_id=42&offset=50&limit=25", nil},
		{"not modified", "/api/v1/popular?category_id=42", []string{"If-None-Match", `"1"`}},
		// Behind nginx (proxy_set_header X-Request-Id $request_id) the id is reused, not made.
		{"request id from proxy", "/api/v1/popular?category_id=42", []string{"X-Request-Id", "0f8fad5bd9cb469fa16570867728950e"}},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", bm.target, nil)
			for i := 0; i+1 < len(bm.header); i += 2 {
				r.Header.Set(bm.header[i], bm.header[i+1])
			}
			w := &discard{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				ts.handler.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkPopularParallel is the hot path under concurrent load with snapshot swaps
// competing for nothing: requests only load an atomic pointer.
func BenchmarkPopularParallel(b *testing.B) {
	ts := newTestServer(b, longSnapshot(1, 100))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "/api/v1/popular?category_id=42", nil)
		w := &discard{h: make(http.Header)}
		for pb.Next() {
			clear(w.h)
			ts.handler.ServeHTTP(w, r)
		}
	})
}

// BenchmarkPopularHTTP goes through a real listener and net/http on both sides, with
// keep-alive connections, to show requests per second for one replica. The client shares
// the machine, so this understates what the server alone can do.
func BenchmarkPopularHTTP(b *testing.B) {
	ts := newTestServer(b, longSnapshot(1, 100))
	srv := httptest.NewServer(ts.handler)
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	url := srv.URL + "/api/v1/popular?category_id=42"
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// TestSnapshotAgeAndStale: every answer says how old its snapshot is; once a whole interval
// has passed since the next snapshot was due (the database or the ranker is down), answers
// from memory are marked stale, and still 200.
func TestSnapshotAgeAndStale(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7)) // published at cutoff+2m0.5s, hourly
	tests := []struct {
		now       time.Time
		age       string
		stale     string
		wantCache string
	}{
		{cutoff.Add(15 * time.Minute), "780", "", "public, max-age=2700"},
		{cutoff.Add(2*time.Hour - time.Second), "7079", "", "public, max-age=0"},
		{cutoff.Add(2 * time.Hour), "7080", "true", "public, max-age=0"},
		{cutoff.Add(30 * time.Hour), "107880", "true", "public, max-age=0"},
	}
	for _, tt := range tests {
		ts.now = tt.now
		w := ts.do(t, "GET", "/api/v1/popular?category_id=1")
		if w.Code != http.StatusOK {
			t.Fatalf("at %s: status %d, want 200", tt.now, w.Code)
		}
		if got := w.Header().Get("X-Snapshot-Age"); got != tt.age {
			t.Errorf("at %s: X-Snapshot-Age %q, want %q", tt.now, got, tt.age)
		}
		if got := w.Header().Get("X-Snapshot-Stale"); got != tt.stale {
			t.Errorf("at %s: X-Snapshot-Stale %q, want %q", tt.now, got, tt.stale)
		}
		if got := w.Header().Get("Cache-Control"); got != tt.wantCache {
			t.Errorf("at %s: Cache-Control %q, want %q", tt.now, got, tt.wantCache)
		}
	}
}

// TestStaleWhileSourceDown: while the database is unreachable, answers still come, 200,
// from memory, and say they may be stale.
func TestStaleWhileSourceDown(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	ts.holder.SetSourceDown(true)
	w := ts.do(t, "GET", "/api/v1/popular?category_id=1")
	if w.Code != http.StatusOK || w.Header().Get("X-Snapshot-Stale") != "true" {
		t.Errorf("source down: status %d, X-Snapshot-Stale %q; want 200, true", w.Code, w.Header().Get("X-Snapshot-Stale"))
	}
	ts.holder.SetSourceDown(false)
	if w := ts.do(t, "GET", "/api/v1/popular?category_id=1"); w.Header().Get("X-Snapshot-Stale") != "" {
		t.Errorf("source back: X-Snapshot-Stale %q, want none", w.Header().Get("X-Snapshot-Stale"))
	}
}

// TestStaleWhenSourceSilent: a database that stops answering fails no poll until the poll's
// timeout; answers are marked stale once no poll has succeeded for a while.
func TestStaleWhenSourceSilent(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	ts.holder.SourceOK(ts.now, 4*time.Second)
	for _, tt := range []struct {
		after time.Duration
		want  string
	}{{time.Second, ""}, {4 * time.Second, ""}, {4*time.Second + time.Millisecond, "true"}} {
		saved := ts.now
		ts.now = saved.Add(tt.after)
		w := ts.do(t, "GET", "/api/v1/popular?category_id=1")
		ts.now = saved
		if got := w.Header().Get("X-Snapshot-Stale"); w.Code != http.StatusOK || got != tt.want {
			t.Errorf("%v after the last good poll: status %d, X-Snapshot-Stale %q; want 200, %q", tt.after, w.Code, got, tt.want)
		}
	}
}

// TestServerRoutesRPC checks that the public handler serves the RPC service beside the REST
// API, from the same snapshot, over the Connect protocol's JSON.
func TestServerRoutesRPC(t *testing.T) {
	ts := newTestServer(t, seedSnapshot(7))
	r := httptest.NewRequest("POST", "/salesrank.v1.RankingService/GetPopular", strings.NewReader(`{"categoryId":2,"limit":1}`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	ts.handler.ServeHTTP(w, r)
	if got, want := w.Code, http.StatusOK; got != want {
		t.Fatalf("GetPopular: status %d, want %d; body %s", got, want, w.Body)
	}
	var resp struct {
		SnapshotID string `json:"snapshotId"`
		Entries    []struct {
			ProductID string `json:"productId"`
			Rank      string `json:"rank"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("GetPopular: %v; body %s", err, w.Body)
	}
	if resp.SnapshotID != "7" || len(resp.Entries) != 1 || resp.Entries[0].ProductID != "3" || resp.Entries[0].Rank != "1" {
		t.Errorf("GetPopular = %s, want snapshot 7 with product 3 at rank 1", w.Body)
	}
}

// An unknown parameter's error names it and what the endpoint does take, or says that
// it takes none (GET /api/v1/products/{id}/ranks).
func TestParseQueryUnknownParameter(t *testing.T) {
	tests := []struct {
		raw     string
		allowed []string
		want    string
	}{
		{"category_id=1", nil, `unknown parameter "category_id"; this endpoint takes no parameters`},
		{"since=x&limt=5", []string{"category_id", "since"}, `unknown parameter "limt"; the parameters are category_id, since`},
	}
	for _, tt := range tests {
		_, err := parseQuery(tt.raw, tt.allowed...)
		var pe *paramError
		if !errors.As(err, &pe) {
			t.Fatalf("parseQuery(%q, %q) = %v, want a parameter error", tt.raw, tt.allowed, err)
		}
		if pe.detail != tt.want {
			t.Errorf("parseQuery(%q, %q): detail %q, want %q", tt.raw, tt.allowed, pe.detail, tt.want)
		}
	}
}
