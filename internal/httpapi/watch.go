package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/salesrank/salesrank"
)

// loadTimeout bounds one poll of the source. A hung query must not stall the watcher for
// ever; the replica keeps serving the snapshot it holds meanwhile.
const loadTimeout = 30 * time.Second

// Watcher keeps a Holder current: it polls the source's CurrentID, which is cheap, and
// loads the whole snapshot only when the id changed. When the source fails it logs and keeps
// the snapshot it holds, so a database outage degrades freshness, not availability.
type Watcher struct {
	logger *slog.Logger
	src    Source
	holder *Holder
	every  time.Duration

	failures int // consecutive failed polls, to log an outage once rather than every poll
	waiting  bool
}

// NewWatcher returns a Watcher that polls src every interval and stores new snapshots in h.
func NewWatcher(logger *slog.Logger, src Source, h *Holder, every time.Duration) *Watcher {
	return &Watcher{logger: logger, src: src, holder: h, every: every}
}

// Run polls at once, then every interval, until ctx is cancelled; then it returns nil.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		w.poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// poll loads the current snapshot if its id differs from the one held, and reports whether
// it stored a new one.
func (w *Watcher) poll(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	id, err := w.src.CurrentID(ctx)
	if err != nil {
		w.fail(ctx, "poll current snapshot id", err)
		return false
	}
	if held, ok := w.holder.ID(); ok && held == id {
		w.recovered()
		return false
	}
	start := time.Now()
	s, err := w.src.Current(ctx)
	if err != nil {
		w.fail(ctx, "load current snapshot", err)
		return false
	}
	w.recovered()
	w.holder.Store(s)
	w.logger.Info("serving new snapshot",
		"snapshot_id", s.ID,
		"window", s.Window.String(),
		"categories", len(s.Rankings),
		"load_time", time.Since(start).Round(time.Microsecond).String())
	return true
}

func (w *Watcher) fail(ctx context.Context, op string, err error) {
	if ctx.Err() != nil {
		return // shutting down: not an outage
	}
	if _, holding := w.holder.ID(); !holding && errors.Is(err, salesrank.ErrNoSnapshot) {
		if !w.waiting {
			w.logger.Info("waiting for the first snapshot to be published")
			w.waiting = true
		}
		return
	}
	w.failures++
	// Log the first failure, then one a minute or so at the default interval, so an outage
	// is visible without flooding the log.
	if w.failures == 1 || w.failures%60 == 0 {
		held, ok := w.holder.ID()
		w.logger.Error("snapshot source failed; still serving the snapshot held",
			"op", op, "err", err, "failures", w.failures, "held_snapshot_id", held, "holding", ok)
	}
}

func (w *Watcher) recovered() {
	w.waiting = false
	if w.failures > 0 {
		w.logger.Info("snapshot source recovered", "failed_polls", w.failures)
		w.failures = 0
	}
}
