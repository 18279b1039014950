package replica

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/metrics"
	"github.com/salesrank/salesrank/internal/testing/replicatest"
	"github.com/salesrank/salesrank/internal/testing/testbin"
)

func TestWatcherPoll(t *testing.T) {
	a, b := seedSnapshot(1), seedSnapshot(2)
	dbDown := errors.New("database is locked")
	src := new(replicatest.Source)
	var h Holder
	var log testbin.Buffer
	w := NewWatcher(slog.New(slog.NewTextHandler(&log, nil)), src, &h, time.Second, nil)

	steps := []struct {
		name      string
		snap      *salesrank.Snapshot
		err       error
		wantNew   bool
		wantID    int64 // 0: none held
		wantLoads int   // Current calls so far
		wantLog   string
		wantDown  bool // answers are marked stale: the source is failing
	}{
		{"nothing published", nil, nil, false, 0, 0, "waiting for the first snapshot", false},
		{"db down before any snapshot", nil, dbDown, false, 0, 0, "database is locked", true},
		{"A published", a, nil, true, 1, 1, "serving new snapshot", false},
		{"A unchanged: not reloaded", a, nil, false, 1, 1, "", false},
		{"db down keeps A", a, dbDown, false, 1, 1, "still serving", true},
		{"db back, A unchanged", a, nil, false, 1, 1, "recovered", false},
		{"B published", b, nil, true, 2, 2, "snapshot_id=2", false},
		{"snapshots gone keeps B", nil, nil, false, 2, 2, "no snapshot has been published", true},
	}
	for _, st := range steps {
		src.Set(st.snap, st.err)
		before := len(log.String())
		if got := w.poll(t.Context()); got != st.wantNew {
			t.Errorf("%s: poll = %v, want %v", st.name, got, st.wantNew)
		}
		id, ok := h.ID()
		if !ok {
			id = 0
		}
		if id != st.wantID {
			t.Errorf("%s: holding snapshot %d, want %d", st.name, id, st.wantID)
		}
		if _, loads := src.Counts(); loads != st.wantLoads {
			t.Errorf("%s: %d loads, want %d", st.name, loads, st.wantLoads)
		}
		if got := h.unreachable.Load(); got != st.wantDown {
			t.Errorf("%s: source down = %v, want %v", st.name, got, st.wantDown)
		}
		if logged := log.String()[before:]; !strings.Contains(logged, st.wantLog) {
			t.Errorf("%s: log %q lacks %q", st.name, logged, st.wantLog)
		}
	}
}

// seedSnapshot is a snapshot of one category, with id id.
func seedSnapshot(id int64) *salesrank.Snapshot {
	return &salesrank.Snapshot{
		ID:       id,
		Window:   salesrank.WindowEnding(time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)),
		Interval: time.Hour,
		Top:      100,
		Rankings: []salesrank.Ranking{{CategoryID: 1, Entries: []salesrank.Entry{{ID: 101, ProductID: 2, TotalSold: 3}}}},
	}
}

// TestWatcherFailingLoad checks a failure between CurrentID and Current.
func TestWatcherFailingLoad(t *testing.T) {
	var h Holder
	h.Store(seedSnapshot(1))
	src := &failingLoad{}
	src.Set(seedSnapshot(2), nil)
	w := NewWatcher(slog.New(slog.DiscardHandler), src, &h, time.Second, nil)
	if w.poll(t.Context()) {
		t.Error("poll stored a snapshot although Current failed")
	}
	if id, _ := h.ID(); id != 1 {
		t.Errorf("holding snapshot %d, want 1", id)
	}
}

type failingLoad struct{ replicatest.Source }

func (f *failingLoad) Current(ctx context.Context) (*salesrank.Snapshot, error) {
	return nil, errors.New("disk I/O error")
}

func TestWatcherRun(t *testing.T) {
	src := new(replicatest.Source)
	var h Holder
	w := NewWatcher(slog.New(slog.DiscardHandler), src, &h, time.Millisecond, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	src.Set(seedSnapshot(1), nil)
	waitFor("snapshot 1", func() bool { id, _ := h.ID(); return id == 1 })
	src.Set(seedSnapshot(2), nil)
	waitFor("snapshot 2", func() bool { id, _ := h.ID(); return id == 2 })
	idCalls, _ := src.Counts()
	waitFor("more polls", func() bool { n, _ := src.Counts(); return n > idCalls+3 })
	if _, loads := src.Counts(); loads != 2 {
		t.Errorf("%d loads for 2 snapshots", loads)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestWatcherMetrics counts polls that failed and snapshots loaded.
func TestWatcherMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	src := &replicatest.Source{}
	src.Set(seedSnapshot(1), nil)
	var h Holder
	w := NewWatcher(slog.New(slog.DiscardHandler), src, &h, time.Second, metrics.NewWatcher(reg))
	w.poll(t.Context())
	src.Set(nil, errors.New("database is locked"))
	w.poll(t.Context())
	w.poll(t.Context())
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			got[f.GetName()] += m.GetCounter().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"salesrank_snapshot_poll_errors_total": 2,
		"salesrank_snapshot_loads_total":       1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}
