package metrics

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/salesrank/salesrank/internal/ranker"
)

// gathered returns the value of the series of family name in reg whose labels include labels
// (name, value pairs): a counter's or gauge's value, a histogram's sample count; -1 if none.
// (prometheus/testutil would do, at the price of a diff library in go.mod.)
func gathered(tb testing.TB, reg prometheus.Gatherer, name string, labels ...string) float64 {
	tb.Helper()
	fams, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, lp := range m.Label {
		if lp.GetName() == name && lp.GetValue() == value {
			return true
		}
	}
	return false
}

// TestMetricsRegistryPerProcess checks that registries are independent: two "processes" in
// one test binary register the same metrics without a conflict, and count apart.
func TestMetricsRegistryPerProcess(t *testing.T) {
	a, b := NewRegistry(), NewRegistry()
	ha, hb := NewHTTP(a), NewHTTP(b)
	ha.Route("/x").Observe(200, time.Millisecond)
	ha.Route("/x").Observe(200, time.Millisecond)
	hb.Route("/x").Observe(200, time.Millisecond)
	if got := gathered(t, a, "salesrank_http_requests_total", "route", "/x", "code", "200"); got != 2 {
		t.Errorf("registry a: %v requests, want 2", got)
	}
	if got := gathered(t, b, "salesrank_http_requests_total", "route", "/x", "code", "200"); got != 1 {
		t.Errorf("registry b: %v requests, want 1", got)
	}
	w := httptest.NewRecorder()
	Handler(a, nil).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`salesrank_http_requests_total{code="200",route="/x"} 2`, "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestMetricsNilIsNoop(t *testing.T) {
	var h *HTTP
	h.Route("/x").Observe(200, time.Second)
	h.RowsServed(3)
	var w *Watcher
	w.PollFailed()
	w.Loaded()
	var r *Ranker
	r.Observe(&ranker.Summary{}, nil)
}

// TestMetricsRouteObserveAllocs keeps the request path free of allocations once a status
// code has been seen.
func TestMetricsRouteObserveAllocs(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := NewHTTP(reg).Route("/api/v1/popular")
	r.Observe(200, time.Microsecond)
	if n := testing.AllocsPerRun(1000, func() { r.Observe(200, time.Microsecond) }); n != 0 {
		t.Errorf("Observe allocates %v times a call, want 0", n)
	}
	r.Observe(999, time.Microsecond) // outside the table: resolved each time, still counted
	r.Observe(42, time.Microsecond)
	if got := gathered(t, reg, "salesrank_http_request_duration_seconds", "code", "999"); got != 1 {
		t.Errorf("code 999: %v, want 1", got)
	}
}

func TestMetricsRankerObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	at := time.Date(2026, 11, 20, 13, 0, 5, 0, time.UTC)
	m := NewRanker(reg, func() time.Time { return at })
	sum := &ranker.Summary{
		SnapshotID: 12, ObjectsTaken: 3, ObjectsSkipped: 40, ObjectsRefused: 1, ObjectsFailed: 2,
		LinesRead: 1000, LinesRejected: 7, RejectedByReason: map[string]int64{"field_count": 5, "bad_quantity": 2},
		LinesTooLate: 4, Seconds: 1.5,
	}
	m.Observe(sum, nil)
	withFull := *sum // a run whose full ranks followed its top lists
	withFull.TopListsSnapshotID, withFull.FullRanks, withFull.FullRanksSeconds = 11, 5000, 0.8
	m.Observe(&withFull, nil)
	m.Observe(nil, errors.New("publish snapshot: database is locked"))
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"salesrank_rank_runs_total", []string{"result", "ok"}, 2},
		{"salesrank_rank_runs_total", []string{"result", "error"}, 1},
		{"salesrank_rank_objects_total", []string{"outcome", "taken"}, 6},
		{"salesrank_rank_objects_total", []string{"outcome", "skipped"}, 80},
		{"salesrank_rank_objects_total", []string{"outcome", "refused"}, 2},
		{"salesrank_rank_objects_total", []string{"outcome", "failed"}, 4},
		{"salesrank_rank_lines_read_total", nil, 2000},
		{"salesrank_rank_lines_rejected_total", []string{"reason", "field_count"}, 10},
		{"salesrank_rank_lines_rejected_total", []string{"reason", "bad_quantity"}, 4},
		{"salesrank_rank_lines_too_late_total", nil, 8},
		{"salesrank_rank_last_success_timestamp_seconds", nil, float64(at.Unix())},
		{"salesrank_rank_last_snapshot_id", nil, 12},
		{"salesrank_rank_run_duration_seconds", nil, 2}, // failed runs are not timed
		{"salesrank_rank_full_ranks_seconds", nil, 1},   // runs that published full ranks
	}
	for _, tt := range tests {
		if got := gathered(t, reg, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	w := httptest.NewRecorder()
	Handler(reg, nil).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`salesrank_rank_run_duration_seconds_bucket{le="1"} 0`,
		`salesrank_rank_run_duration_seconds_bucket{le="2.5"} 2`,
		`salesrank_rank_run_duration_seconds_sum 3`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, w.Body)
		}
	}
}
