package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/metrics"
)

// LoadTimeout bounds one poll of the source. A hung query must not stall the watcher for
// ever; the replica keeps serving the snapshot it holds meanwhile.
const LoadTimeout = 30 * time.Second

// pollTimeout bounds one CurrentID query: a few polls' worth, at least 2 s.
func pollTimeout(every time.Duration) time.Duration { return max(2*time.Second, 3*every) }

// Watcher keeps a Holder (a Target) current: it polls the source's CurrentID, which is cheap, and
// loads the whole snapshot only when the id changed. When the source fails it logs and keeps
// the snapshot it holds, so a database outage degrades freshness, not availability.
type Watcher struct {
	logger  *slog.Logger
	src     Source
	holder  Target
	every   time.Duration
	metrics *metrics.Watcher
	refresh chan chan refreshResult // see Refresh
	poke    chan struct{}           // see Poke

	failures int // consecutive failed polls, to log an outage once rather than every poll
	waiting  bool
}

// NewWatcher returns a Watcher that polls src every interval and stores new snapshots in h;
// m counts its polls (nil counts nothing).
func NewWatcher(logger *slog.Logger, src Source, h Target, every time.Duration, m *metrics.Watcher) *Watcher {
	return &Watcher{logger: logger, src: src, holder: h, every: every, metrics: m,
		refresh: make(chan chan refreshResult), poke: make(chan struct{}, 1)}
}

type refreshResult struct {
	id  int64
	err error
}

// Run polls at once, then every interval, until ctx is cancelled; then it returns nil.
// Refresh requests are served between polls, so polls never run concurrently.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.every)
	defer t.Stop()
	w.poll(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.poll(ctx)
		case <-w.poke:
			w.poll(ctx)
		case reply := <-w.refresh:
			_, err := w.load(ctx, true)
			id, _ := w.holder.ID()
			reply <- refreshResult{id, err} // buffered: never blocks
		}
	}
}

// Poke asks Run to poll now rather than at the next tick, without waiting: a database that
// announces new snapshots (PostgreSQL's NOTIFY) calls it, so replicas learn of a snapshot in
// milliseconds while polling remains the fallback. Pokes while one is pending are merged.
func (w *Watcher) Poke() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

// Refresh makes Run load the current snapshot now, even if its id is the one held, and
// returns the id then served. It fails if Run does not get to it before ctx is done.
func (w *Watcher) Refresh(ctx context.Context) (int64, error) {
	reply := make(chan refreshResult, 1)
	select {
	case w.refresh <- reply:
	case <-ctx.Done():
		return 0, fmt.Errorf("refresh snapshot: %w", ctx.Err())
	}
	select {
	case r := <-reply:
		return r.id, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("refresh snapshot: %w", ctx.Err())
	}
}

// poll loads the current snapshot if its id differs from the one held, and reports whether
// it stored a new one.
func (w *Watcher) poll(ctx context.Context) bool {
	stored, _ := w.load(ctx, false)
	return stored
}

// load loads the current snapshot if force is set or its id differs from the one held, and
// reports whether it stored one. Failures are logged and counted here.
func (w *Watcher) load(ctx context.Context, force bool) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, LoadTimeout)
	defer cancel()
	// The id is one small query: it gets a short deadline of its own, so a database that
	// stopped answering is noticed in seconds, not after the load timeout.
	idCtx, idCancel := context.WithTimeout(ctx, pollTimeout(w.every))
	id, err := w.src.CurrentID(idCtx)
	idCancel()
	if err != nil {
		w.fail(ctx, "poll current snapshot id", err)
		return false, err
	}
	// The database answered: that restarts the silence after which answers are marked
	// stale, before a load that may take seconds on a slow link.
	w.recovered()
	if held, ok := w.holder.ID(); !force && ok && held == id {
		return false, nil
	}
	start := time.Now()
	s, err := w.src.Current(ctx)
	if err != nil {
		w.fail(ctx, "load current snapshot", err)
		return false, err
	}
	w.recovered()
	// Counted before it is stored: storing may take a while after the snapshot is served
	// (a replica's holder gives the replaced full ranks back to the system), and a scrape
	// that finds the new snapshot served must find its load counted.
	w.metrics.Loaded()
	w.holder.Store(s)
	w.logger.Info("serving new snapshot",
		"snapshot_id", s.ID,
		"window", s.Window.String(),
		"categories", len(s.Rankings),
		"load_time", time.Since(start).Round(time.Microsecond).String(),
		"forced", force)
	return true, nil
}

func (w *Watcher) fail(ctx context.Context, op string, err error) {
	if ctx.Err() != nil {
		return // shutting down: not an outage
	}
	if _, holding := w.holder.ID(); !holding && errors.Is(err, salesrank.ErrNoSnapshot) {
		// Nothing published yet is the normal state of a new deployment, not an error.
		if !w.waiting {
			w.logger.Info("waiting for the first snapshot to be published")
			w.waiting = true
		}
		return
	}
	w.failures++
	w.holder.SetSourceDown(true)
	w.metrics.PollFailed()
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
	w.holder.SetSourceDown(false)
	w.holder.SourceOK(time.Now(), 3*w.every+time.Second)
	if w.failures > 0 {
		w.logger.Info("snapshot source recovered", "failed_polls", w.failures)
		w.failures = 0
	}
}
