package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/testing/testbin"
)

// fakeSource is a Source whose current snapshot and failure the test sets.
type fakeSource struct {
	mu      sync.Mutex
	snap    *salesrank.Snapshot
	err     error // returned by both methods when set
	idCalls int
	loads   int
}

func (f *fakeSource) set(s *salesrank.Snapshot, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap, f.err = s, err
}

func (f *fakeSource) CurrentID(ctx context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.idCalls++
	if f.err != nil {
		return 0, f.err
	}
	if f.snap == nil {
		return 0, fmt.Errorf("current snapshot id: %w", salesrank.ErrNoSnapshot)
	}
	return f.snap.ID, nil
}

func (f *fakeSource) Current(ctx context.Context) (*salesrank.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	if f.err != nil {
		return nil, f.err
	}
	if f.snap == nil {
		return nil, fmt.Errorf("current snapshot: %w", salesrank.ErrNoSnapshot)
	}
	return f.snap, nil
}

func (f *fakeSource) counts() (idCalls, loads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.idCalls, f.loads
}

func TestWatcherPoll(t *testing.T) {
	a, b := seedSnapshot(1), seedSnapshot(2)
	dbDown := errors.New("database is locked")
	src := new(fakeSource)
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
		src.set(st.snap, st.err)
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
		if _, loads := src.counts(); loads != st.wantLoads {
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

// TestWatcherFailingLoad checks a failure between CurrentID and Current.
func TestWatcherFailingLoad(t *testing.T) {
	var h Holder
	h.Store(seedSnapshot(1))
	src := &failingLoad{fakeSource: fakeSource{snap: seedSnapshot(2)}}
	w := NewWatcher(slog.New(slog.DiscardHandler), src, &h, time.Second, nil)
	if w.poll(t.Context()) {
		t.Error("poll stored a snapshot although Current failed")
	}
	if id, _ := h.ID(); id != 1 {
		t.Errorf("holding snapshot %d, want 1", id)
	}
}

type failingLoad struct{ fakeSource }

func (f *failingLoad) Current(ctx context.Context) (*salesrank.Snapshot, error) {
	return nil, errors.New("disk I/O error")
}

func TestWatcherRun(t *testing.T) {
	src := new(fakeSource)
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
	src.set(seedSnapshot(1), nil)
	waitFor("snapshot 1", func() bool { id, _ := h.ID(); return id == 1 })
	src.set(seedSnapshot(2), nil)
	waitFor("snapshot 2", func() bool { id, _ := h.ID(); return id == 2 })
	idCalls, _ := src.counts()
	waitFor("more polls", func() bool { n, _ := src.counts(); return n > idCalls+3 })
	if _, loads := src.counts(); loads != 2 {
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
