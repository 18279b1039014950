// Package ranker is the ranking job: it lists the log objects, has an engine count them over
// the past week, ranks every category and publishes the result as one snapshot.
package ranker

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"gocloud.dev/blob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/objstore"
)

// Engine counts sales in log objects over a window. counting.Local does it on this machine; a
// distributed engine must give the same Result for the same objects.
type Engine interface {
	Count(ctx context.Context, logs *blob.Bucket, objects []counting.Object, spec counting.Spec) (*counting.Result, error)
}

// Publisher stores a snapshot and makes it current atomically. Unless rankAll is nil, it
// returns the snapshot's full ranks, and the publisher calls it while it writes the top
// lists (see store.Core.PublishRanking).
type Publisher interface {
	PublishRanking(ctx context.Context, snap *salesrank.Snapshot, known []int32, rejects []salesrank.Reject, rankAll func() *salesrank.Standings) (int64, error)
}

// Job ranks the logs in one bucket into one store.
type Job struct {
	Logs     *blob.Bucket
	Engine   Engine
	Store    Publisher
	Top      int           // products kept per category; 0 means salesrank.DefaultTop
	Interval time.Duration // cutoffs are aligned to it; 0 means salesrank.DefaultInterval
	// FullRanks makes the snapshot carry every product's rank in every category, not only
	// the top lists.
	FullRanks bool
	Logger    *slog.Logger
}

// Summary reports one run. It is printed as one JSON line by "salesrank rank --once", which
// scripts rely on: keys are only ever added.
type Summary struct {
	SnapshotID       int64            `json:"snapshot_id"`
	Cutoff           time.Time        `json:"cutoff"`
	WindowStart      time.Time        `json:"window_start"`
	Objects          int              `json:"objects"`         // log objects listed
	ObjectsTaken     int              `json:"objects_taken"`   // new objects counted in this run
	ObjectsSkipped   int              `json:"objects_skipped"` // taken by an earlier run
	ObjectsRefused   int              `json:"objects_refused"` // changed after they were taken
	RefusedObjects   []string         `json:"refused_objects,omitempty"`
	ObjectsFailed    int              `json:"objects_failed"` // unreadable: left out whole, tried again
	FailedObjects    []string         `json:"failed_objects,omitempty"`
	Batches          int              `json:"batches"`
	Bytes            int64            `json:"bytes"`
	LinesRead        int64            `json:"lines_read"`
	LinesRejected    int64            `json:"lines_rejected"`
	RejectedByReason map[string]int64 `json:"rejected_by_reason"`
	LinesBefore      int64            `json:"lines_before_window"`
	LinesAfter       int64            `json:"lines_after_cutoff"`
	LinesTooLate     int64            `json:"lines_too_late"` // older than the window and its grace: reported, not counted
	WindowRebuilt    bool             `json:"window_rebuilt"`
	WindowKeys       int              `json:"window_keys"` // in the window; for a run that ranked its batch as counted (Ranker.Once), the keys it summed
	PartialsRead     int              `json:"partials_read"`
	PartialsDeleted  int64            `json:"partials_deleted"`
	Categories       int              `json:"categories"`
	RankedRows       int              `json:"ranked_rows"`
	FullRanks        int              `json:"full_ranks,omitempty"` // (category, product) pairs in the full ranks published
	// An incremental run publishes its full ranks after its top lists, as a second
	// publication of its cutoff (see Ranker.Finish): then SnapshotID is that
	// publication, TopListsSnapshotID the first, and FullRanksSeconds how long after the
	// first the second committed.
	TopListsSnapshotID int64   `json:"top_lists_snapshot_id,omitempty"`
	FullRanksSeconds   float64 `json:"full_ranks_seconds,omitempty"`
	CountSeconds       float64 `json:"count_seconds"`   // listing, reading, parsing, summing
	RankSeconds        float64 `json:"rank_seconds"`    // top K per category
	PublishSeconds     float64 `json:"publish_seconds"` // the database transaction
	Seconds            float64 `json:"seconds"`         // the whole run
	LinesPerSecond     float64 `json:"lines_per_second"`

	// How the incremental ranker ranked: from scratch (first run, a rebuilt window, too
	// many changes), or by updating the previous run's lists from the keys that changed,
	// rescanning the window for the categories whose lists fell short.
	RankedFromScratch   bool `json:"ranked_from_scratch"`
	ChangedKeys         int  `json:"changed_keys"`
	RescannedCategories int  `json:"rescanned_categories"`
}

// Run counts every log object over the week before the cutoff of now and publishes the
// ranking. Objects that cannot be read are left out whole, logged and reported in the
// summary; the snapshot is still published so that one damaged object does not stop every
// refresh.
func (j *Job) Run(ctx context.Context, now time.Time) (*Summary, error) {
	began := time.Now()
	log := cmp.Or(j.Logger, slog.New(slog.DiscardHandler))
	interval := cmp.Or(j.Interval, salesrank.DefaultInterval)
	top := cmp.Or(j.Top, salesrank.DefaultTop)
	cutoff, err := salesrank.Cutoff(now, interval)
	if err != nil {
		return nil, err
	}
	w := salesrank.WindowEnding(cutoff)

	listed, err := objstore.ListObjects(ctx, j.Logs)
	if err != nil {
		return nil, err
	}
	objects := engineObjects(listed)
	log.Debug("listed logs", "objects", len(objects))
	res, err := j.Engine.Count(ctx, j.Logs, objects, counting.Spec{Window: w, Top: top})
	if err != nil {
		return nil, fmt.Errorf("count sales: %w", err)
	}
	counted := time.Now()
	for _, f := range res.Failed {
		log.Error("object left out: it could not be read to its end; none of its lines count", "object", f.Key, "err", f.Err)
	}
	snap := &salesrank.Snapshot{
		Window:   w,
		Interval: interval,
		Top:      top,
		Rankings: salesrank.Rank(res.Totals.All(), res.Categories, top),
	}
	var rankAll func() *salesrank.Standings
	if j.FullRanks {
		rankAll = func() *salesrank.Standings {
			return salesrank.NewStandings(w, res.Totals.Shards(runtime.GOMAXPROCS(0)))
		}
	}
	ranked := time.Now()
	id, err := j.Store.PublishRanking(ctx, snap, res.Categories, res.Rejects, rankAll)
	if err != nil {
		return nil, fmt.Errorf("publish snapshot: %w", err)
	}
	s := &Summary{
		SnapshotID:        id,
		Cutoff:            w.End,
		WindowStart:       w.Start,
		Objects:           len(objects),
		ObjectsFailed:     len(res.Failed),
		Bytes:             res.Stats.Bytes,
		LinesRead:         res.Stats.LinesRead,
		LinesRejected:     res.Stats.LinesRejected,
		RejectedByReason:  res.Stats.RejectedByReason(),
		LinesBefore:       res.Stats.LinesBefore,
		LinesAfter:        res.Stats.LinesAfter,
		Categories:        len(snap.Rankings),
		RankedFromScratch: true,
		CountSeconds:      counted.Sub(began).Seconds(),
		RankSeconds:       ranked.Sub(counted).Seconds(),
		PublishSeconds:    time.Since(ranked).Seconds(),
		Seconds:           time.Since(began).Seconds(),
	}
	for _, f := range res.Failed {
		s.FailedObjects = append(s.FailedObjects, f.Key)
	}
	s.FullRanks = snap.Standings.Len()
	for _, r := range snap.Rankings {
		s.RankedRows += len(r.Entries)
	}
	if s.Seconds > 0 {
		s.LinesPerSecond = float64(s.LinesRead) / s.Seconds
	}
	return s, nil
}

// engineObjects returns listed objects as an engine counts them.
func engineObjects(listed []objstore.Object) []counting.Object {
	out := make([]counting.Object, len(listed))
	for i, o := range listed {
		out[i] = counting.Object{Key: o.Key, Size: o.Size, ETag: o.ETag}
	}
	return out
}
