package ranker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"gocloud.dev/blob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/objstore"
	"github.com/salesrank/salesrank/internal/partial"
	"github.com/salesrank/salesrank/internal/window"
)

// Store is what the incremental ranker keeps in the database: the manifest of objects taken,
// their partial sums per bucket of sale time (committed together, so a sale is counted exactly once whatever
// fails and when), the known categories and the published snapshots.
type Store interface {
	Publisher
	Manifest(ctx context.Context) ([]salesrank.TakenObject, error)
	CommitBatch(ctx context.Context, b *salesrank.Batch) error
	Partials(ctx context.Context, from, to time.Time, fn func(hour time.Time, data []byte) error) error
	DeletePartialsBefore(ctx context.Context, t time.Time) (int64, error)
	KnownCategories(ctx context.Context) ([]int32, error)
}

// Defaults of the incremental ranker.
const (
	// DefaultGrace is how long partial sums are kept past the window: late objects
	// for hours up to a day before the window still land somewhere, and a backfill
	// (rank --once --now EARLIER) may go back that far.
	DefaultGrace = 24 * time.Hour
	// DefaultMaxBatchBytes bounds the objects (as stored) taken in one batch, so catching
	// up on a backlog commits in steps and holds a bounded amount in memory. Buckets
	// shorter than an hour get a quarter of it: a batch's table holds one entry per
	// (bucket, product) pair, and a minute repeats few pairs, so the same bytes make up to
	// four times the entries (at the seed's scale the 1-minute ranker's first run peaked at
	// 2.07 GiB with 256 MiB batches, the hourly one at 1.43 GiB).
	DefaultMaxBatchBytes = 256 << 20
	// DefaultDBTimeout bounds each database step of a run (a commit, a publication, the
	// read of a window's partial sums). A database that stops answering mid-run (a
	// partition, a hung server) then fails the run with an error, and a scheduler releases
	// nothing it should not hold and tries again, instead of hanging with a write
	// transaction open. At the seed's scale the longest step takes a few seconds.
	DefaultDBTimeout = 20 * time.Second
)

// Ranker ranks incrementally: each run takes only the objects it has not taken before,
// commits their partial sums (per bucket: an hour, or a minute for a 1-minute refresh) with their manifest entries in one transaction, moves
// the window by adding the hours that entered it and subtracting the hours that left, and
// publishes. Its work follows the new data and the hours that moved, not the week.
//
// A Ranker keeps the window in memory between runs; the first run of a process rebuilds it
// from the stored partial sums (package window). Only one Ranker may run against a store at a time (see
// packages flock and postgres); if two race anyway, the store refuses the second commit of an object.
type Ranker struct {
	Logs          *blob.Bucket
	Engine        Engine
	Store         Store
	Top           int           // products kept per category; 0 means salesrank.DefaultTop
	Interval      time.Duration // cutoffs are aligned to it; 0 means salesrank.DefaultInterval
	Grace         time.Duration // partial sums kept past the window; 0 means DefaultGrace
	MaxBatchBytes int64         // 0 means DefaultMaxBatchBytes (a quarter of it for buckets under an hour)
	DBTimeout     time.Duration // bound on each database step; 0 means DefaultDBTimeout
	// FullRanks makes the ranker publish every product's rank in every category, at most
	// hourly (see fullRanksDue) and right after the run's top lists (see
	// publishFullRanks): ranking every key costs more than updating the top lists.
	FullRanks bool
	// Once says the Ranker runs once and is then dropped (rank --once). A run that finds
	// nothing stored in the window it moved to (a first run over a new database, or after
	// more than a week without logs) and takes every new object in one batch (at most
	// MaxBatchBytes of them, or a single object of any size) then ranks that batch's sums
	// as they are (counting.Sums.Totals), as rank --full ranks its counts, rather than
	// first adding them to the window, a table of every key kept in memory for the next
	// run. The batch's partial sums are committed all the same; a later Run rebuilds the
	// window from them.
	Once   bool
	Logger *slog.Logger

	loaded   bool
	manifest map[string]salesrank.TakenObject
	known    map[int32]struct{}
	window   window.Window
	// fullRanksAt is the cutoff of the last full ranks this process published.
	fullRanksAt time.Time
	// fullRanking publishes a run's full ranks after the run returned; the next run,
	// Reset and Wait wait for it, since it reads the window. Once it is done, lateRanks
	// says how it went.
	fullRanking sync.WaitGroup
	lateRanks   *LateFullRanks
}

// LateFullRanks is how the publication of a run's full ranks, which follows the run, went.
type LateFullRanks struct {
	SnapshotID int64   // the second publication of the run's cutoff, which carries them
	Ranks      int     // (category, product) pairs ranked
	Seconds    float64 // from the end of the run's publication to their commit
	Err        error
}

// Wait waits for the full ranks the last run publishes after it returned, and reports how
// that went: nil if the run had none to publish.
func (r *Ranker) Wait() *LateFullRanks {
	r.fullRanking.Wait()
	return r.lateRanks
}

// Finish waits for the full ranks the run that returned sum publishes after it, and records
// them in sum, whose SnapshotID becomes the snapshot the run left current. If their
// publication failed it returns why, naming the top lists' snapshot, which stays published:
// the full ranks are still due, and the next run publishes them.
func (r *Ranker) Finish(sum *Summary) error {
	late := r.Wait()
	switch {
	case late == nil:
		return nil
	case late.Err != nil:
		return fmt.Errorf("published the top lists as snapshot %d, but not the full ranks (the next run publishes them): %w", sum.SnapshotID, late.Err)
	}
	sum.TopListsSnapshotID, sum.SnapshotID = sum.SnapshotID, late.SnapshotID
	sum.FullRanks, sum.FullRanksSeconds = late.Ranks, late.Seconds
	return nil
}

// Run takes new objects and publishes the snapshot for the cutoff of now.
func (r *Ranker) Run(ctx context.Context, now time.Time) (*Summary, error) {
	r.Wait() // the previous run's full ranks read the window this run moves
	r.lateRanks = nil
	began := time.Now()
	log := cmp.Or(r.Logger, slog.New(slog.DiscardHandler))
	interval := cmp.Or(r.Interval, salesrank.DefaultInterval)
	grace := cmp.Or(r.Grace, DefaultGrace)
	cutoff, err := salesrank.Cutoff(now, interval)
	if err != nil {
		return nil, err
	}
	w := salesrank.WindowEnding(cutoff)
	bucket := Bucket(interval)
	retain := w.Start.Add(-grace).Truncate(bucket)
	sum := &Summary{Cutoff: w.End, WindowStart: w.Start, RejectedByReason: map[string]int64{}}

	if err := r.load(ctx); err != nil {
		return nil, err
	}
	log.Debug("listing logs")
	listed, err := objstore.ListObjects(ctx, r.Logs)
	if err != nil {
		return nil, err
	}
	sum.Objects = len(listed)
	fresh := r.sortOut(listed, sum, log)
	log.Debug("listed logs", "objects", len(listed), "new", len(fresh))

	// Move the window first, from what is already committed; new batches are then added
	// to it as they commit, so nothing is added twice.
	log.Debug("moving window", "cutoff", cutoff)
	var ws window.Stats
	err = r.window.Move(ctx, cutoff, bucket, func(ctx context.Context, from, to time.Time, fn func(time.Time, []byte) error) error {
		ctx, cancel := r.dbContext(ctx)
		defer cancel()
		return r.Store.Partials(ctx, from, to, fn)
	}, &ws)
	if err != nil {
		return nil, err
	}
	counted := time.Now()
	// A run that needs the window only for itself ranks its one batch as counted (see Once).
	direct := r.Once && r.window.Len() == 0 && len(fresh) > 0 && r.batchLen(fresh, bucket) == len(fresh)
	// Batches commit one after the other; the last one's commit runs on while the lists
	// are ranked, and the snapshot is published only once it has committed.
	var last *pending
	for len(fresh) > 0 {
		n := r.batchLen(fresh, bucket)
		if err := last.wait(); err != nil {
			return nil, err
		}
		if last, err = r.take(ctx, fresh[:n], retain, bucket, !direct, sum, log); err != nil {
			return nil, err
		}
		fresh = fresh[n:]
	}
	direct = direct && last != nil
	r.window.Compact()
	sum.CountSeconds = time.Since(counted).Seconds()

	ranked := time.Now()
	known := r.knownList(last)
	top := cmp.Or(r.Top, salesrank.DefaultTop)
	snap := &salesrank.Snapshot{Window: w, Interval: interval, Top: top}
	rankAll := r.window.Standings
	if direct {
		// The window never gets the batch: the next Run rebuilds it from the store.
		r.window.Reset()
		in := window.Buckets(w, bucket)
		parts, keys := countKeys(last.sums.Totals(in, runtime.GOMAXPROCS(0)))
		snap.Rankings = salesrank.RankParts(parts, known, top)
		sums := last.sums
		rankAll = func() *salesrank.Standings { return salesrank.NewStandings(w, sums.Totals(in, runtime.GOMAXPROCS(0))) }
		ws.RankedFromScratch = true
		sum.WindowKeys = keys()
	} else {
		snap.Rankings = r.window.Rank(top, known, &ws)
		sum.WindowKeys = r.window.Len()
	}
	due := r.FullRanks && fullRanksDue(cutoff, r.fullRanksAt)
	sum.WindowRebuilt, sum.PartialsRead = ws.Rebuilt, ws.PartialsRead
	sum.RankedFromScratch, sum.ChangedKeys, sum.RescannedCategories = ws.RankedFromScratch, ws.ChangedKeys, ws.RescannedCategories
	sum.RankSeconds = time.Since(ranked).Seconds()
	waited := time.Now()
	if err := last.wait(); err != nil {
		return nil, err
	}
	sum.CountSeconds += time.Since(waited).Seconds() // the commit, as for the batches before
	published := time.Now()
	log.Debug("publishing snapshot", "cutoff", w.End)
	dbctx, cancel := r.dbContext(ctx)
	id, err := r.Store.PublishRanking(dbctx, snap, known, nil, nil)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("publish snapshot: %w", err)
	}
	sum.PublishSeconds = time.Since(published).Seconds()
	sum.SnapshotID = id
	sum.Categories = len(snap.Rankings)
	for _, rk := range snap.Rankings {
		sum.RankedRows += len(rk.Entries)
	}
	// The top lists are served from here on; every product's rank follows (see
	// publishFullRanks) while the old partial sums are deleted.
	if due {
		r.publishFullRanks(context.WithoutCancel(ctx), snap, known, rankAll, log)
	}
	dbctx, cancel = r.dbContext(ctx)
	defer cancel()
	if n, err := r.Store.DeletePartialsBefore(dbctx, retain); err != nil {
		log.Warn("could not delete expired partial sums; will retry next run", "err", err)
	} else {
		sum.PartialsDeleted = n
	}
	sum.Seconds = time.Since(began).Seconds()
	if sum.Seconds > 0 {
		sum.LinesPerSecond = float64(sum.LinesRead) / sum.Seconds
	}
	return sum, nil
}

// load reads the manifest and the known categories once per process.
func (r *Ranker) load(ctx context.Context) error {
	if r.loaded {
		return nil
	}
	ctx, cancel := r.dbContext(ctx)
	defer cancel()
	taken, err := r.Store.Manifest(ctx)
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	r.manifest = make(map[string]salesrank.TakenObject, len(taken))
	for _, o := range taken {
		r.manifest[o.Key] = o
	}
	cats, err := r.Store.KnownCategories(ctx)
	if err != nil {
		return fmt.Errorf("read categories: %w", err)
	}
	r.known = make(map[int32]struct{}, len(cats))
	for _, c := range cats {
		r.known[c] = struct{}{}
	}
	r.loaded = true
	return nil
}

// sortOut splits the listing into objects to take, objects already taken (skipped) and
// objects that changed since they were taken (refused: logs are immutable, and counting a
// rewritten object again would count its sales twice).
func (r *Ranker) sortOut(listed []objstore.Object, sum *Summary, log *slog.Logger) []objstore.Object {
	var fresh []objstore.Object
	for _, o := range listed {
		t, ok := r.manifest[o.Key]
		switch {
		case !ok:
			fresh = append(fresh, o)
		case t.ETag == o.ETag && t.Size == o.Size:
			sum.ObjectsSkipped++
		default:
			sum.ObjectsRefused++
			sum.RefusedObjects = append(sum.RefusedObjects, o.Key)
			log.Error("object changed after it was taken; its new content is not counted. Logs are immutable: write corrections as new objects",
				"object", o.Key, "taken_etag", t.ETag, "etag", o.ETag, "taken_size", t.Size, "size", o.Size, "taken_at", t.TakenAt)
		}
	}
	return fresh
}

// batchLen returns how many of objects make the next batch: at least one, and no more than
// MaxBatchBytes of them as stored.
func (r *Ranker) batchLen(objects []objstore.Object, bucket time.Duration) int {
	limit := r.MaxBatchBytes
	if limit == 0 {
		limit = DefaultMaxBatchBytes
		if bucket < time.Hour {
			limit /= 4
		}
	}
	var size int64
	for i, o := range objects {
		if size += o.Size; i > 0 && size > limit {
			return i
		}
	}
	return len(objects)
}

// dbContext returns ctx bounded by the ranker's DBTimeout, for one database step.
func (r *Ranker) dbContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, cmp.Or(r.DBTimeout, DefaultDBTimeout))
}

// publishFullRanks ranks every product of the window and publishes the full ranks as a
// second publication of snap's cutoff, just published: the same top lists (every row
// shared with snap's) carrying the full ranks, so that replicas load them as they load any
// new snapshot. It runs in a goroutine that the next run waits for: at the seed's scale
// ranking and storing 11 M ranks takes about a second, and the hour's top lists need not
// wait for it. A failure is logged and reported by Wait; the next run tries again, since
// the full ranks are still due.
func (r *Ranker) publishFullRanks(ctx context.Context, snap *salesrank.Snapshot, known []int32, rank func() *salesrank.Standings, log *slog.Logger) {
	began := time.Now()
	again := *snap // shares snap's entries: publishing gives them the same row ids
	again.ID, again.PublishedAt, again.Standings = 0, time.Time{}, nil
	r.fullRanking.Go(func() {
		ctx, cancel := r.dbContext(ctx)
		defer cancel()
		var made *salesrank.Standings
		rankAll := func() *salesrank.Standings { made = rank(); return made }
		id, err := r.Store.PublishRanking(ctx, &again, known, nil, rankAll)
		if made != nil {
			// Stored or refused, nothing else holds them (PublishRanking has returned):
			// their memory serves the next full ranks.
			defer r.window.Recycle(made)
		}
		late := &LateFullRanks{SnapshotID: id, Seconds: time.Since(began).Seconds(), Err: err}
		r.lateRanks = late
		if err != nil {
			log.Error("could not publish full ranks; will retry next run", "cutoff", snap.Window.End, "top_lists_snapshot_id", snap.ID, "err", err)
			return
		}
		r.fullRanksAt = snap.Window.End
		late.Ranks = made.Len()
		log.Info("published full ranks", "snapshot_id", id, "top_lists_snapshot_id", snap.ID, "cutoff", snap.Window.End,
			"full_ranks", late.Ranks, "seconds", late.Seconds)
	})
}

// fullRanksDue reports whether a run at cutoff publishes full ranks, the last ones this
// process published being at last: at every whole hour, and at the first run of a process
// and of each hour it missed, so that full ranks are never more than an hour behind the
// top lists while the ranker runs.
func fullRanksDue(cutoff, last time.Time) bool {
	return cutoff.Truncate(time.Hour).Equal(cutoff) || last.Before(cutoff.Truncate(time.Hour))
}

// Bucket returns the length of the partial-sum buckets for a refresh interval: an hour, or
// the largest length that divides both the interval and an hour (1m for a 1-minute
// refresh, 30m for 90m), so that every cutoff falls on a bucket's edge and each window is
// exactly a union of whole buckets.
func Bucket(interval time.Duration) time.Duration {
	a, b := int64(interval/time.Second), int64(time.Hour/time.Second)
	for b != 0 {
		a, b = b, a%b
	}
	return time.Duration(a) * time.Second
}

// take counts one batch of new objects, adds what falls in the window, and starts
// committing the batch: it returns once the window has it, with the commit still running
// (nil if no object could be read). The caller waits for the commit before the next batch
// and before publishing.
func (r *Ranker) take(ctx context.Context, objects []objstore.Object, retain time.Time, bucket time.Duration, toWindow bool, sum *Summary, log *slog.Logger) (*pending, error) {
	eobjs := engineObjects(objects)
	byKey := make(map[string]objstore.Object, len(objects))
	for _, o := range objects {
		byKey[o.Key] = o
	}
	// Every sale from the retention on is kept, in the hour it was made: future hours too,
	// so they count once the window reaches them.
	spec := counting.Spec{Window: salesrank.Window{Start: retain, End: time.Unix(1<<40, 0)}, Bucket: bucket}
	log.Debug("counting batch", "objects", len(objects))
	res, err := r.Engine.Count(ctx, r.Logs, eobjs, spec)
	if err != nil {
		return nil, fmt.Errorf("count sales: %w", err)
	}
	log.Debug("counted batch", "objects", len(res.Objects), "lines", res.Stats.LinesRead, "buckets", len(res.Sums.Buckets()))
	for _, f := range res.Failed {
		sum.ObjectsFailed++
		sum.FailedObjects = append(sum.FailedObjects, f.Key)
		log.Error("object left out: it could not be read to its end; none of its lines count, and it will be tried again next run", "object", f.Key, "err", f.Err)
	}
	if len(res.Objects) == 0 {
		return nil, nil
	}
	if res.Sums == nil {
		// counting.Result's contract: an engine that counted per bucket gives Sums (the
		// Beam engine turns its table into them with counting.SumsOf). Without them the
		// batch would commit its objects with no partials, and their sales would be lost.
		return nil, fmt.Errorf("count sales: the engine gave no per-bucket sums for %d objects", len(res.Objects))
	}

	b := &salesrank.Batch{Rejects: res.Rejects, Categories: res.Categories}
	now := time.Now().UTC()
	for _, o := range res.Objects {
		lo := byKey[o.Key]
		b.Objects = append(b.Objects, salesrank.TakenObject{
			Key: o.Key, ETag: lo.ETag, Size: lo.Size, ModTime: lo.ModTime, TakenAt: now,
			LinesRead: o.Stats.LinesRead, LinesRejected: o.Stats.LinesRejected, LinesTooLate: o.Stats.LinesBefore,
		})
	}
	slices.SortFunc(b.Objects, func(x, y salesrank.TakenObject) int { return cmp.Compare(x.Key, y.Key) })

	// The window [at − 7d, at) gains what the batch sold in it while the batch is encoded
	// and committed: the three only read res.Sums, and a first run over a week saves the
	// half second adding takes. The commit runs on after the window has the batch (see
	// pending); if it fails, the window is forgotten.
	p := &pending{r: r, batch: b, stats: res.Stats, sum: sum}
	p.committing.Go(func() { p.err = r.commit(ctx, b, res.Sums, bucket, log) })
	if toWindow {
		r.window.Add(res.Sums, bucket)
	} else {
		p.sums = res.Sums
	}
	return p, nil
}

// pending is a batch whose commit is running.
type pending struct {
	r          *Ranker
	batch      *salesrank.Batch
	sums       *counting.Sums // what the batch sold, per bucket, if the window does not have it
	stats      counting.Stats
	sum        *Summary
	committing sync.WaitGroup
	err        error // the commit's, once committing is done
}

// wait waits for the batch's commit; once it has committed, the batch counts in the
// summary and its objects in the manifest. If it failed, wait forgets the manifest and the
// window: the commit's outcome is unknown (a timeout may strike after the database
// committed, and another ranker may have taken some of the objects), so the next run
// starts again from what the store holds. A nil pending, or one already waited for, has
// nothing to wait for.
func (p *pending) wait() error {
	if p == nil || p.r == nil {
		return nil
	}
	p.committing.Wait()
	r, b, sum := p.r, p.batch, p.sum
	p.r = nil
	if p.err != nil {
		r.Reset()
		return p.err
	}
	sum.Batches++
	sum.ObjectsTaken += len(b.Objects)
	for _, o := range b.Objects {
		r.manifest[o.Key] = o
	}
	for _, c := range b.Categories {
		r.known[c] = struct{}{}
	}
	st := p.stats
	sum.Bytes += st.Bytes
	sum.LinesRead += st.LinesRead
	sum.LinesRejected += st.LinesRejected
	sum.LinesTooLate += st.LinesBefore
	for reason, n := range st.RejectedByReason() {
		sum.RejectedByReason[reason] += n
	}
	return nil
}

// commit encodes a batch's partial sums and commits the batch.
func (r *Ranker) commit(ctx context.Context, b *salesrank.Batch, sums *counting.Sums, bucket time.Duration, log *slog.Logger) error {
	var err error
	if b.Partials, err = encodeBuckets(sums, bucket); err != nil {
		return err
	}
	log.Debug("committing batch", "objects", len(b.Objects), "partials", len(b.Partials))
	began := time.Now()
	ctx, cancel := r.dbContext(ctx)
	defer cancel()
	if err := r.Store.CommitBatch(ctx, b); err != nil {
		return fmt.Errorf("commit batch of %d objects: %w", len(b.Objects), err)
	}
	// Logged here, as it commits: the run waits for it only once the lists are ranked.
	log.Debug("batch committed", "batch_id", b.ID, "seconds", time.Since(began).Seconds())
	return nil
}

// encodeBuckets encodes each bucket's sums into its partial, buckets on every core.
func encodeBuckets(sums *counting.Sums, bucket time.Duration) ([]salesrank.Partial, error) {
	buckets := sums.Buckets()
	out := make([]salesrank.Partial, len(buckets))
	errs := make([]error, len(buckets))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(buckets)) {
		wg.Go(func() {
			// The runs are merged as they are encoded; the encoded entries go to a
			// buffer reused from bucket to bucket, then to the partial's own slice.
			var enc partial.Encoder
			var body []byte
			for i := range next {
				enc.Reset(bucket, body)
				for e := range sums.All(i) {
					enc.Add(e)
				}
				out[i].Start = time.Unix(int64(buckets[i])*int64(bucket/time.Second), 0).UTC()
				out[i].Data, errs[i] = enc.AppendTo(make([]byte, 0, enc.Len()))
				body = enc.Body()
			}
		})
	}
	for i := range buckets {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, errors.Join(errs...)
}

// countKeys returns parts that count the keys they yield, and how many they yielded in
// all, once every part has been read once.
func countKeys(parts []iter.Seq2[salesrank.Key, int64]) ([]iter.Seq2[salesrank.Key, int64], func() int) {
	counts := make([]int, len(parts)) // each written by its part's reader only
	counted := make([]iter.Seq2[salesrank.Key, int64], len(parts))
	for i, p := range parts {
		counted[i] = func(yield func(salesrank.Key, int64) bool) {
			for k, v := range p {
				counts[i]++
				if !yield(k, v) {
					return
				}
			}
		}
	}
	return counted, func() int {
		n := 0
		for _, c := range counts {
			n += c
		}
		return n
	}
}

// knownList returns the known categories, sorted, with those of the run's last batch
// (nil if none): its lists are ranked before it commits, and published only after. Once it
// has committed they are known already, and counted once.
func (r *Ranker) knownList(last *pending) []int32 {
	out := make([]int32, 0, len(r.known))
	for c := range r.known {
		out = append(out, c)
	}
	if last != nil {
		out = append(out, last.batch.Categories...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
