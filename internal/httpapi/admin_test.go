package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/salesrank/salesrank/internal/metrics"
	"github.com/salesrank/salesrank/internal/replica"
	"github.com/salesrank/salesrank/internal/testing/replicatest"
)

const testToken = "s3cret-admin-token-0123456789"

// adminRequest sends one request to an admin handler; auth is the Authorization value.
func adminRequest(tb testing.TB, h http.Handler, method, target, auth string) *httptest.ResponseRecorder {
	tb.Helper()
	r := httptest.NewRequest(method, target, nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// staticRefresher is a Refresher that returns what the test set.
type staticRefresher struct {
	id  int64
	err error
}

func (s staticRefresher) Refresh(ctx context.Context) (int64, error) { return s.id, s.err }

func TestAdminToken(t *testing.T) {
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	withToken := NewAdmin(logger, testToken, metrics.Handler(reg, logger), staticRefresher{id: 7})
	noToken := NewAdmin(logger, "", metrics.Handler(reg, logger), staticRefresher{id: 7})
	tests := []struct {
		name           string
		h              http.Handler
		method, target string
		auth           string
		want           int
	}{
		{"metrics needs no token", withToken, "GET", "/metrics", "", 200},
		{"metrics with tokens disabled", noToken, "GET", "/metrics", "", 200},
		{"pprof without token", withToken, "GET", "/debug/pprof/", "", 401},
		{"pprof wrong token", withToken, "GET", "/debug/pprof/", "Bearer wrong", 401},
		{"pprof token prefix", withToken, "GET", "/debug/pprof/", "Bearer " + testToken[:len(testToken)-1], 401},
		{"pprof token longer", withToken, "GET", "/debug/pprof/", "Bearer " + testToken + "x", 401},
		{"pprof basic auth", withToken, "GET", "/debug/pprof/", "Basic " + testToken, 401},
		{"pprof bare token", withToken, "GET", "/debug/pprof/", testToken, 401},
		{"pprof empty bearer", withToken, "GET", "/debug/pprof/", "Bearer ", 401},
		{"pprof with token", withToken, "GET", "/debug/pprof/", "Bearer " + testToken, 200},
		{"pprof scheme case", withToken, "GET", "/debug/pprof/cmdline", "bearer " + testToken, 200},
		{"refresh without token", withToken, "POST", "/admin/refresh", "", 401},
		{"refresh with token", withToken, "POST", "/admin/refresh", "Bearer " + testToken, 200},
		{"refresh GET", withToken, "GET", "/admin/refresh", "Bearer " + testToken, 405},
		{"refresh GET without token", withToken, "GET", "/admin/refresh", "", 401},
		{"pprof disabled", noToken, "GET", "/debug/pprof/", "", 403},
		{"pprof disabled even with a token", noToken, "GET", "/debug/pprof/", "Bearer " + testToken, 403},
		{"refresh disabled", noToken, "POST", "/admin/refresh", "Bearer anything", 403},
		{"unknown path", withToken, "GET", "/admin/other", "Bearer " + testToken, 404},
		{"api is not here", withToken, "GET", "/api/v1/popular?category_id=1", "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := adminRequest(t, tt.h, tt.method, tt.target, tt.auth)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.want, w.Body)
			}
			if tt.want >= 400 {
				checkProblem(t, w, tt.want)
			}
			if tt.want == 401 {
				if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
				}
			}
			if strings.Contains(w.Body.String(), testToken) && tt.want != 200 {
				t.Errorf("the token is echoed: %s", w.Body)
			}
		})
	}
}

// TestAdminRefresh forces a watcher to reload: the snapshot is loaded again although its id
// has not changed, and a failing store answers 503 without its error text.
func TestAdminRefresh(t *testing.T) {
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	src := &replicatest.Source{}
	src.Set(seedSnapshot(3), nil)
	var h Holder
	w := replica.NewWatcher(logger, src, &h, time.Hour, metrics.NewWatcher(reg))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	admin := NewAdmin(logger, testToken, metrics.Handler(reg, logger), w)

	res := adminRequest(t, admin, "POST", "/admin/refresh", "Bearer "+testToken)
	if res.Code != 200 || !strings.Contains(res.Body.String(), `"snapshot_id":"3"`) {
		t.Fatalf("refresh: %d %s, want 200 and snapshot 3", res.Code, res.Body)
	}
	if _, loads := src.Counts(); loads != 2 { // the first poll, then the forced reload
		t.Errorf("loads = %d, want 2: refresh must reload even when the id is unchanged", loads)
	}

	src.Set(nil, errors.New(`sqlite: SELECT id FROM snapshots: database disk image is malformed`))
	res = adminRequest(t, admin, "POST", "/admin/refresh", "Bearer "+testToken)
	checkProblem(t, res, http.StatusServiceUnavailable)
	body := strings.ToLower(res.Body.String())
	for _, s := range []string{"select", "sqlite", "malformed", "snapshots:"} {
		if strings.Contains(body, s) {
			t.Errorf("refresh error body leaks %q: %s", s, res.Body)
		}
	}
	if id, _ := h.ID(); id != 3 {
		t.Errorf("after a failed refresh the replica serves %d, want 3 still", id)
	}

	fams := scrape(t, admin)
	if got, _ := metricValue(fams, "salesrank_snapshot_poll_errors_total"); got != 1 {
		t.Errorf("poll errors = %v, want 1", got)
	}
}

// TestAdminRefreshWithoutWatcher checks that a refresh nobody serves ends with its context.
func TestAdminRefreshWithoutWatcher(t *testing.T) {
	w := replica.NewWatcher(slog.New(slog.DiscardHandler), &replicatest.Source{}, new(Holder), time.Hour, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := w.Refresh(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Refresh without Run: %v, want a deadline error", err)
	}
}

// TestAdminPprofProfile checks that a short CPU profile gets through the token and the
// admin write timeout.
func TestAdminPprofProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("profiles for a second")
	}
	logger := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(NewAdmin(logger, testToken, nil, nil))
	defer srv.Close()
	req, err := http.NewRequest("GET", srv.URL+"/debug/pprof/profile?seconds=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("profile: read body: %v", err)
	}
	if res.StatusCode != 200 || len(b) == 0 {
		t.Errorf("profile: %s, %d bytes", res.Status, len(b))
	}
}
