package ranker

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/salesrank/salesrank"
)

// Lock elects the one active ranker: flock.File beside a SQLite database, or
// postgres.AdvisoryLock. TryLock must not wait.
type Lock interface {
	TryLock() (bool, error)
	Unlock() error
}

// Scheduler runs a Ranker at every cutoff aligned to its Interval, while it holds Lock; without
// the lock it waits as a standby and tries again every StandbyPoll, so it takes over within
// one interval of the active ranker's death. After downtime the first run publishes the
// latest cutoff; objects that landed late are taken by the next run.
type Scheduler struct {
	Ranker      *Ranker // its Interval is the schedule's period
	Lock        Lock
	Now         func() time.Time                     // defaults to time.Now
	After       func(time.Duration) <-chan time.Time // defaults to time.After
	StandbyPoll time.Duration                        // 0 means min(Every, 5s)
	Logger      *slog.Logger
	// OnRun, if set, is called after every run with its summary, or its error.
	OnRun func(*Summary, error)
}

// Run schedules until ctx is cancelled, then releases the lock and returns nil.
func (s *Scheduler) Run(ctx context.Context) error {
	log := cmp.Or(s.Logger, slog.New(slog.DiscardHandler))
	now, after := s.Now, s.After
	if now == nil {
		now = time.Now
	}
	if after == nil {
		after = time.After
	}
	every := cmp.Or(s.Ranker.Interval, salesrank.DefaultInterval)
	poll := cmp.Or(s.StandbyPoll, min(every, 5*time.Second))
	active := false
	defer func() {
		s.Ranker.Wait() // full ranks a run publishes after it, under the lock
		if active {
			s.Lock.Unlock()
		}
	}()
	var last time.Time // the cutoff of the last successful run
	for {
		wait := poll
		// Try the lock before every run, not only on standby: a lock held through a
		// database session (PostgreSQL) is lost with the session, and a ranker that went
		// on publishing without it could race the one that took over.
		ok, err := s.Lock.TryLock()
		switch {
		case err != nil:
			log.Error("could not try the ranker lock", "err", err)
			ok = false
		case ok && !active:
			s.Ranker.Reset() // another ranker may have run meanwhile: start from the store
			log.Info("active: this ranker holds the lock and publishes")
		case !ok && active:
			log.Warn("lost the ranker lock; standing by")
		case !ok:
			log.Debug("standby: another ranker holds the lock")
		}
		active = ok
		if active {
			t := now()
			cutoff, err := salesrank.Cutoff(t, every)
			if err != nil {
				return err
			}
			if !cutoff.Equal(last) {
				sum, err := s.Ranker.Run(ctx, t)
				// The run's full ranks follow its top lists; the next run is a whole
				// interval away, so wait for them here and report the run with them. If
				// they failed the run is not done: the next try publishes them (and the
				// same top lists again), a poll from now rather than an hour.
				if err == nil {
					err = s.Ranker.Finish(sum)
				}
				if ctx.Err() != nil {
					return nil
				}
				if s.OnRun != nil {
					s.OnRun(sum, err)
				}
				if err != nil {
					log.Error("run failed; retrying", "err", err, "retry_in", poll)
				} else {
					last = cutoff
					log.Info("run", "snapshot_id", sum.SnapshotID, "top_lists_snapshot_id", sum.TopListsSnapshotID, "cutoff", sum.Cutoff, "objects_taken", sum.ObjectsTaken,
						"objects_skipped", sum.ObjectsSkipped, "objects_refused", sum.ObjectsRefused, "objects_failed", sum.ObjectsFailed,
						"lines_read", sum.LinesRead, "lines_rejected", sum.LinesRejected, "lines_too_late", sum.LinesTooLate,
						"window_rebuilt", sum.WindowRebuilt, "ranked_from_scratch", sum.RankedFromScratch,
						"rescanned_categories", sum.RescannedCategories, "seconds", sum.Seconds)
				}
			}
			if cutoff.Equal(last) {
				// Sleep to the next aligned cutoff.
				wait = cutoff.Add(every).Sub(now())
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-after(max(wait, 0)):
		}
	}
}

// Reset forgets what the ranker holds in memory, so its next run starts from the store.
func (r *Ranker) Reset() {
	r.Wait()
	r.loaded = false
	r.window.Reset()
}
