// Package window is the ranking week in memory: the units of every (category, product)
// over [cutoff − 7 days, cutoff), moved forward by adding the buckets of partial sums that
// enter it and subtracting those that leave, and ranked from the keys whose totals changed
// since the last ranking rather than from every key.
//
// A Window is built from the stored partial sums the first time (or after a backfill, or a
// week of downtime), then moved: its work follows the buckets that moved and the new
// batches, not the week.
package window

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/partial"
)

// Partials calls fn with every stored partial sum of the buckets that start in [from, to),
// as a store's Partials does.
type Partials func(ctx context.Context, from, to time.Time, fn func(start time.Time, data []byte) error) error

// Stats is what moving and ranking a window did.
type Stats struct {
	Rebuilt             bool // Move rebuilt it from every stored partial of the week
	PartialsRead        int  // stored partials Move read
	RankedFromScratch   bool // Rank built the lists from every key
	ChangedKeys         int  // else, the keys Rank updated the lists from
	RescannedCategories int  // categories whose list Rank had to rebuild
}

// Window is the week's totals and the top lists ranked from them. The zero value is an
// empty window, built on the first Move.
type Window struct {
	counts *counting.Counts // units per key over [at − 7 days, at)
	at     time.Time        // the cutoff counts stand for; zero until built

	// lists rank counts between runs; nil until built, and whenever the window is
	// rebuilt. changed holds the keys whose totals moved since the lists were last brought
	// up to date, unless there are too many to be worth it (changedAll): see track.
	lists      *salesrank.TopLists
	changed    []salesrank.Key
	changedAll bool

	spare *salesrank.Standings // full ranks given back (Recycle), for Standings to reuse
}

// minTracked is how many changed keys are always worth updating the lists from, however
// small the window: tiny windows (tests, a new system) still take the incremental path.
const minTracked = 4096

// trackedFraction bounds the changed keys tracked to a fraction of the window's keys;
// beyond it the lists are built from scratch. At the seed's scale (11.3–11.7 M keys) a
// 1-minute step changes 46 k keys and updates in 15 ms; an hourly step changes the keys
// of the hour that entered and of the one that left, 0.23 M at night to 1.4 M in the
// busiest hour (bench/incremental.sh), and updates from them in 30–110 ms where a build
// takes 150–180 ms on two cores (BenchmarkTopLists: 57 ms for 1 M keys in two sorted
// runs, 152 ms a build). The bound (1.9 M) leaves room for busier hours, and stops where
// the update would cost about a build and the tracked keys' memory, kept for the next step
// (40 bytes a key: the key, its copy to merge the runs, its total), would pass 75 MB. The
// bound counts the window's keys at zero too until Compact drops them, which it does once
// they are half the table: at worst the bound is twice as high.
const trackedFraction = 6

// Len returns how many keys the window holds.
func (w *Window) Len() int {
	if w.counts == nil {
		return 0
	}
	return w.counts.Len()
}

// Reset empties the window: the next Move rebuilds it from the stored partials.
func (w *Window) Reset() {
	*w = Window{}
}

// Move makes the window stand for cutoff: by adding the buckets that entered it and
// subtracting those that left when it moves forward by less than a week, and by rebuilding
// it from the stored partial sums otherwise (first run, a backfill, downtime of a week or
// more). bucket is the length of this ranker's buckets. A move that fails half-way leaves
// the window empty, to be rebuilt.
func (w *Window) Move(ctx context.Context, cutoff time.Time, bucket time.Duration, read Partials, st *Stats) error {
	if w.counts != nil && w.at.Equal(cutoff) {
		return nil
	}
	if w.counts == nil || cutoff.Before(w.at) || !cutoff.Before(w.at.Add(salesrank.WindowLength)) {
		w.Reset()
		w.counts = &counting.Counts{}
		st.Rebuilt = true
		if err := w.apply(ctx, cutoff.Add(-salesrank.WindowLength), cutoff, +1, bucket, read, st); err != nil {
			w.Reset()
			return err
		}
		w.at = cutoff
		return nil
	}
	// Forward by less than a week: [at−7d, cutoff−7d) left, [at, cutoff) entered.
	if err := w.apply(ctx, w.at.Add(-salesrank.WindowLength), cutoff.Add(-salesrank.WindowLength), -1, bucket, read, st); err != nil {
		w.Reset() // half moved: rebuild next time
		return err
	}
	if err := w.apply(ctx, w.at, cutoff, +1, bucket, read, st); err != nil {
		w.Reset()
		return err
	}
	w.at = cutoff
	return nil
}

// apply adds (sign +1) or subtracts (−1) every stored partial of the buckets in [from, to).
// A stored bucket must divide this ranker's bucket: coarser ones would straddle the edges of
// its windows. Each blob is checked whole before any of it is applied (partial.Decode).
func (w *Window) apply(ctx context.Context, from, to time.Time, sign int64, bucket time.Duration, read Partials, st *Stats) error {
	return read(ctx, from, to, func(start time.Time, data []byte) error {
		st.PartialsRead++
		_, stored, err := partial.Len(data)
		if err != nil {
			return fmt.Errorf("partial sums of %s: %w", start.Format(time.RFC3339), err)
		}
		if bucket%stored != 0 {
			return fmt.Errorf("partial sums of %s are kept per %v, too coarse for cutoffs every %v: keep the interval a multiple of %v, or rank into a new database", start.Format(time.RFC3339), stored, bucket, stored)
		}
		// Adding is batched: a rebuild adds tens of millions of entries, and an hourly
		// step adds and takes away a million each, every one a likely cache miss in a
		// table of hundreds of megabytes.
		var b counting.Batch
		_, err = partial.Decode(data, func(e partial.Entry) {
			w.counts.Push(&b, 0, e.CategoryID, e.ProductID, sign*e.Units)
			w.track(e.CategoryID, e.ProductID)
		})
		w.counts.AddBatch(&b)
		return err
	})
}

// Add adds a new batch's sums, per bucket of sale time (buckets of length bucket), to the
// window: the buckets that fall in it. The window must have been moved to its cutoff.
func (w *Window) Add(sums *counting.Sums, bucket time.Duration) {
	in := Buckets(salesrank.WindowEnding(w.at), bucket)
	var b counting.Batch
	if w.counts.Len() == 0 {
		// A first run adds a week at once, 4–5 entries for each key it ends with: size the
		// table once for its keys rather than grow it as they come.
		w.counts.Reserve(sums.EstimateKeys(in) * 51 / 50)
	}
	for i, start := range sums.Buckets() {
		if !in(start) {
			continue
		}
		for e := range sums.All(i) { // each key once a bucket, so tracked once
			w.counts.Push(&b, 0, e.CategoryID, e.ProductID, e.Units)
			w.track(e.CategoryID, e.ProductID)
		}
	}
	w.counts.AddBatch(&b)
}

// Buckets returns whether a bucket of length bucket, numbered as counting.Sums numbers
// them (its start in units of bucket since 1970), lies in window win.
func Buckets(win salesrank.Window, bucket time.Duration) func(start uint32) bool {
	secs := int64(bucket / time.Second)
	lo, hi := uint32(win.Start.Unix()/secs), uint32(win.End.Unix()/secs)
	return func(start uint32) bool { return start >= lo && start < hi }
}

// Standings ranks every key of the window: the full ranks at its cutoff. They may take the
// memory of the full ranks last given back with Recycle.
func (w *Window) Standings() *salesrank.Standings {
	win := salesrank.WindowEnding(w.at)
	spare := w.spare
	w.spare = nil
	if w.counts == nil {
		return salesrank.NewStandingsReusing(win, nil, spare)
	}
	return salesrank.NewStandingsReusing(win, w.counts.Shards(runtime.GOMAXPROCS(0)), spare)
}

// Recycle gives back full ranks that Standings made and that nobody uses any more, for the
// next Standings to reuse their memory; s must not be used after.
func (w *Window) Recycle(s *salesrank.Standings) { w.spare = s }

// Compact drops the keys whose totals fell to zero.
func (w *Window) Compact() {
	if w.counts != nil {
		w.counts.Compact()
	}
}

// track records that the total of a key changed, for the next update of the lists.
func (w *Window) track(cat int32, product int64) {
	if w.lists == nil || w.changedAll {
		return
	}
	if len(w.changed) >= max(minTracked, w.counts.Len()/trackedFraction) {
		// Cheaper to build the lists again. The memory stays for the next step's keys.
		w.changed, w.changedAll = w.changed[:0], true
		return
	}
	w.changed = append(w.changed, salesrank.Key{CategoryID: cat, ProductID: product})
}

// Rank brings the lists up to date with the window and returns the rankings of every
// known category: from the keys that changed since the last ranking when the lists are
// kept, from scratch otherwise.
func (w *Window) Rank(top int, known []int32, st *Stats) []salesrank.Ranking {
	if w.counts == nil {
		w.counts = &counting.Counts{}
	}
	parts := w.counts.Shards(runtime.GOMAXPROCS(0))
	if w.lists == nil || w.lists.Top() != top || w.changedAll {
		w.lists = &salesrank.TopLists{}
		w.lists.Build(parts, top)
		st.RankedFromScratch = true
	} else {
		st.ChangedKeys = len(w.changed)
		st.RescannedCategories = w.lists.Update(parts, w.changed, w.counts.GetBatch)
	}
	w.changed, w.changedAll = w.changed[:0], false
	return w.lists.Rankings(known)
}
