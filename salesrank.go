// Package salesrank holds the domain of the sales-rank service: sales, the one-week window,
// per-category rankings and the snapshots that publish them. It does no I/O; the counting
// and top-N maths are pure functions here so that every engine (the local one, a Beam
// pipeline) and every test oracle agrees on what a ranking is.
package salesrank

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sync"
	"time"
)

// WindowLength is how far back a ranking looks: the past week.
const WindowLength = 7 * 24 * time.Hour

// Defaults that work on a laptop and match the source design.
const (
	DefaultTop      = 100       // products kept per category in a snapshot
	DefaultInterval = time.Hour // refresh interval; cutoffs are aligned to it
)

// Limits of the log format's fields (see design.md).
const (
	MaxProductID  = 1<<63 - 1
	MaxCategoryID = 1<<31 - 1
	MaxQuantity   = 1<<31 - 1
)

// ErrNoSnapshot is returned by stores asked for the current snapshot before any was published.
var ErrNoSnapshot = errors.New("no snapshot has been published yet")

// Sale is one line of a sales log. The price, seller and buyer are validated by the codec but
// play no part in a ranking.
type Sale struct {
	Time       int64 // unix seconds
	ProductID  int64
	CategoryID int32
	Quantity   int32
	SellerID   int64
	BuyerID    int64
}

// Key identifies what a ranking counts: a product within one category. A product sold under
// several categories has one key per category.
type Key struct {
	CategoryID int32
	ProductID  int64
}

// Window is the half-open time range [Start, End) a snapshot counts.
type Window struct {
	Start, End time.Time
}

// WindowEnding returns the week before cutoff: [cutoff − 7 days, cutoff).
func WindowEnding(cutoff time.Time) Window {
	cutoff = cutoff.UTC()
	return Window{Start: cutoff.Add(-WindowLength), End: cutoff}
}

// Contains reports whether the unix time t (seconds) falls in the window.
func (w Window) Contains(t int64) bool {
	return t >= w.Start.Unix() && t < w.End.Unix()
}

// String formats the window as an RFC 3339 interval.
func (w Window) String() string {
	return w.Start.UTC().Format(time.RFC3339) + "/" + w.End.UTC().Format(time.RFC3339)
}

// Cutoff returns the snapshot cutoff for a run at now: now truncated to the refresh interval,
// in UTC. Truncation counts from the zero time, so hourly cutoffs fall on the hour and
// one-minute cutoffs on the minute.
func Cutoff(now time.Time, interval time.Duration) (time.Time, error) {
	if interval < time.Minute || interval%time.Minute != 0 {
		return time.Time{}, fmt.Errorf("refresh interval must be a whole number of minutes, at least 1m; got %v", interval)
	}
	return now.UTC().Truncate(interval), nil
}

// Totals maps each key to the units sold over some period. Totals are 64-bit: a week of
// quantities up to 2^31−1 overflows 32 bits after two sales.
type Totals map[Key]int64

// Add counts units sold for k.
func (t Totals) Add(k Key, units int64) { t[k] += units }

// All yields every key and its total, for Rank.
func (t Totals) All() iter.Seq2[Key, int64] { return maps.All(t) }

// Entry is one ranked product of a category. ID is the row's id in the sales_rank table,
// assigned when the snapshot is published; it is zero before.
type Entry struct {
	ID        int64
	ProductID int64
	TotalSold int64
}

// Ranking is one category's ranked list: Entries[0] is rank 1.
type Ranking struct {
	CategoryID int32
	Entries    []Entry
}

// Less reports whether entry a ranks before entry b: more units first, then the smaller
// product id, so that a ranking is a total, deterministic order.
func Less(a, b Entry) bool {
	if a.TotalSold != b.TotalSold {
		return a.TotalSold > b.TotalSold
	}
	return a.ProductID < b.ProductID
}

// CompareEntries orders entries as a ranking does (see Less), for slices.SortFunc.
func CompareEntries(a, b Entry) int {
	if a.TotalSold != b.TotalSold {
		return cmp.Compare(b.TotalSold, a.TotalSold)
	}
	return cmp.Compare(a.ProductID, b.ProductID)
}

// Rank turns totals into per-category rankings of at most top entries each, ordered by
// units descending then product id ascending. Keys with a zero or negative total are not
// ranked (an incremental window may leave zeros behind). Every category in known gets a
// Ranking, empty if it sold nothing in the window; the result is sorted by category id.
func Rank(totals iter.Seq2[Key, int64], known []int32, top int) []Ranking {
	return RankParts([]iter.Seq2[Key, int64]{totals}, known, top)
}

// RankParts is Rank over totals split into parts that share no key (shards of one table),
// each ranked on its own goroutine: a window of tens of millions of keys ranks on every
// core. The result does not depend on how the keys were split.
func RankParts(parts []iter.Seq2[Key, int64], known []int32, top int) []Ranking {
	byCat := collect(parts, top, nil)
	for _, c := range known {
		if byCat[c] == nil {
			byCat[c] = &topN{max: top}
		}
	}
	out := make([]Ranking, 0, len(byCat))
	for c, t := range byCat {
		out = append(out, Ranking{CategoryID: c, Entries: t.sorted()})
	}
	slices.SortFunc(out, func(a, b Ranking) int { return cmp.Compare(a.CategoryID, b.CategoryID) })
	return out
}

// collect keeps the best keep entries of every category that has a positive total in parts
// (of only the categories in want, if want is not nil), with how many positive keys each
// has, ranking each part on its own goroutine.
func collect(parts []iter.Seq2[Key, int64], keep int, want map[int32]bool) map[int32]*topN {
	tops := make([]map[int32]*topN, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		wg.Go(func() {
			var idx catIndex
			skip := &topN{}
			for k, v := range part {
				if v <= 0 {
					continue
				}
				t := idx.get(k.CategoryID)
				if t == nil {
					t = skip
					if want == nil || want[k.CategoryID] {
						t = &topN{max: keep}
					}
					idx.set(k.CategoryID, t)
				}
				if t != skip {
					t.offer(Entry{ProductID: k.ProductID, TotalSold: v})
				}
			}
			tops[i] = idx.all(skip)
		})
	}
	wg.Wait()
	byCat := make(map[int32]*topN)
	for _, part := range tops {
		for c, t := range part {
			into := byCat[c]
			if into == nil {
				byCat[c] = t
				continue
			}
			es := t.entries()
			into.n += t.n - len(es)
			for _, e := range es {
				into.offer(e)
			}
		}
	}
	return byCat
}

// catIndex finds a category's topN while scanning tens of millions of keys: by a slice for
// the small ids categories have in practice, by a map beyond. A map lookup per key was a
// third of a ranking's time.
type catIndex struct {
	dense  []*topN
	sparse map[int32]*topN
}

// denseCategories bounds the slice part of a catIndex: 64 Ki pointers, 512 KiB.
const denseCategories = 1 << 16

func (x *catIndex) get(c int32) *topN {
	if c >= 0 && int(c) < len(x.dense) {
		return x.dense[c]
	}
	if c >= 0 && c < denseCategories {
		return nil
	}
	return x.sparse[c]
}

func (x *catIndex) set(c int32, t *topN) {
	if c >= 0 && c < denseCategories {
		if int(c) >= len(x.dense) {
			x.dense = append(x.dense, make([]*topN, int(c)+1-len(x.dense))...)
		}
		x.dense[c] = t
		return
	}
	if x.sparse == nil {
		x.sparse = make(map[int32]*topN)
	}
	x.sparse[c] = t
}

// all returns every category's topN but skip.
func (x *catIndex) all(skip *topN) map[int32]*topN {
	out := make(map[int32]*topN, len(x.sparse))
	for c, t := range x.dense {
		if t != nil && t != skip {
			out[int32(c)] = t
		}
	}
	for c, t := range x.sparse {
		if t != skip {
			out[c] = t
		}
	}
	return out
}

// topN keeps the best max entries seen so far. Entries go to the end of a buffer of up to
// 2·max, past a bar once the buffer has been cut: when full, it is cut to its best max by a
// selection, and the worst of those is the bar. A heap did the same with less memory, but
// at 1,000 categories of 200 entries its sift-downs missed the cache on every level and
// were a third of a ranking; the buffer is written in sequence and cut in cache, for O(1)
// work per entry kept.
type topN struct {
	max int
	buf []Entry
	bar Entry // once cut: an entry not better than bar is not among the best max
	cut bool
	n   int // entries offered
}

func (t *topN) offer(e Entry) {
	t.n++
	if t.max <= 0 || t.cut && !Less(e, t.bar) {
		return
	}
	if t.buf == nil {
		t.buf = make([]Entry, 0, min(2*t.max, 64))
	}
	t.buf = append(t.buf, e)
	if len(t.buf) >= 2*t.max {
		t.shrink()
	}
}

// shrink cuts the buffer to its best max entries and raises the bar to the worst of them.
func (t *topN) shrink() {
	if len(t.buf) <= t.max {
		return
	}
	selectBest(t.buf, t.max)
	t.buf = t.buf[:t.max]
	t.bar, t.cut = t.buf[t.max-1], true
}

// entries returns the best max entries, in no order.
func (t *topN) entries() []Entry {
	t.shrink()
	return t.buf
}

func (t *topN) sorted() []Entry {
	out := slices.Clone(t.entries())
	slices.SortFunc(out, CompareEntries)
	return out
}

// selectBest reorders es (distinct entries) so that es[:k] are its k best and es[k-1] the
// worst of those: a quickselect, with the median of three as pivot.
func selectBest(es []Entry, k int) {
	target := k - 1
	lo, hi := 0, len(es)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if Less(es[mid], es[lo]) {
			es[mid], es[lo] = es[lo], es[mid]
		}
		if Less(es[hi], es[lo]) {
			es[hi], es[lo] = es[lo], es[hi]
		}
		if Less(es[hi], es[mid]) {
			es[hi], es[mid] = es[mid], es[hi]
		}
		p := es[mid]
		i, j := lo, hi
		for i <= j {
			for Less(es[i], p) {
				i++
			}
			for Less(p, es[j]) {
				j--
			}
			if i <= j {
				es[i], es[j] = es[j], es[i]
				i++
				j--
			}
		}
		switch {
		case target <= j:
			hi = j
		case target >= i:
			lo = i
		default:
			return
		}
	}
}

// Snapshot is one published, immutable ranking of every known category for one cutoff.
type Snapshot struct {
	ID          int64
	Window      Window        // Window.End is the cutoff
	Interval    time.Duration // refresh interval: the next snapshot is due at Window.End+Interval
	Top         int           // the K of top K
	PublishedAt time.Time
	Rankings    []Ranking // every known category, sorted by category id

	// Standings are the full ranks that say where any product stands. A publication may
	// carry its own (ranked at its cutoff); a loaded snapshot has the latest stored ones
	// ranked at or before its cutoff, since full ranks may refresh hourly while the top
	// lists refresh every minute. Nil if there are none.
	Standings *Standings
	// Previous are, in a loaded snapshot, the ranks of the latest stored full ranks ranked
	// at least a day before its cutoff, which Movers compares the top lists with; nil if
	// none.
	Previous *PastRanks
}

// Ranking returns the ranking of category in s, or nil if s does not know the category.
func (s *Snapshot) Ranking(category int32) *Ranking {
	// Rankings are sorted by category id (a Snapshot's contract, checked when published).
	i, ok := slices.BinarySearchFunc(s.Rankings, category, func(r Ranking, c int32) int { return cmp.Compare(r.CategoryID, c) })
	if !ok {
		return nil
	}
	return &s.Rankings[i]
}

// NextRefresh returns when the snapshot after s is due.
func (s *Snapshot) NextRefresh() time.Time { return s.Window.End.Add(s.Interval) }

// Reject is a log line that could not be counted, kept verbatim for an operator to read in
// the quarantine: which object, which line (1-based), why, and the line's bytes.
type Reject struct {
	Object string
	Line   int64
	Reason string
	Text   []byte
}

// TakenObject is the manifest entry of a log object that has been taken: recorded in the
// same transaction as its contribution, so an object is counted exactly once. ETag, Size and
// ModTime identify the version taken; an object found later under the same key with another
// version has changed, and is refused rather than counted again.
type TakenObject struct {
	Key           string
	ETag          string // empty where the store gives none
	Size          int64
	ModTime       time.Time
	BatchID       int64 // set by the store
	LinesRead     int64
	LinesRejected int64
	LinesTooLate  int64 // good lines older than the retention: reported, not counted
	TakenAt       time.Time
}

// Partial is the encoded partial sums (units per category and product) of one bucket of
// sales time from one batch of objects. A bucket is an hour, or the refresh interval when
// that is shorter (a 1-minute refresh keeps minute buckets), so that every window
// [cutoff − 7 days, cutoff) is a union of whole buckets and the ranking stays exact. The
// store keeps the data opaque; package partial encodes it.
type Partial struct {
	Start time.Time // the bucket's first second, UTC
	Data  []byte
}

// Batch is what taking a set of objects contributes, committed atomically: the manifest
// entries, the partial sums per bucket, the quarantined lines and the categories named.
type Batch struct {
	ID         int64 // set by the store
	Objects    []TakenObject
	Partials   []Partial
	Rejects    []Reject
	Categories []int32
}
