package salesrank

import (
	"cmp"
	"iter"
	"runtime"
	"slices"
	"sync"
)

// TopLists keeps every category's ranking between runs, so that a window whose totals
// changed in a few keys is ranked from those keys instead of from scratch: a 1-minute
// refresh changes some 50 k keys of a window of 11 M.
//
// For each category it holds candidates with their exact totals and a floor, such that
// every key of the category that is not a candidate has a total of at most the floor (a
// floor of 0: the candidates are every key with a positive total). A key that changed is
// looked up again; every other key kept its total, so it is still at most the floor. The
// candidates above the floor are then exactly the category's keys above the floor, in
// order, and if there are at least top of them the first top are the ranking. If not, a key
// at the floor outside the candidates could rank among them (it may tie with a candidate
// and have a smaller product id), so the category is ranked again from the whole window: a
// rescan.
//
// The zero value holds no lists: Build them first.
type TopLists struct {
	top  int
	cats map[int32]*candidates // categories with a positive total, only

	// Update's buffers, kept between updates: the changed keys merged, and their totals.
	merged []Key
	totals []int64
}

// candidates is one category's list. Every key of the category with a total above floor is
// in buf, and every key not in buf has a total of at most floor.
type candidates struct {
	buf   []Entry // rank order, every total positive and at least floor
	floor int64
}

// keep returns how many candidates a list holds after a build or a trim: twice the top,
// so that a list survives many refreshes of keys falling below the floor before it
// needs a rescan. A list grows past it as keys climb above the floor, up to trimAt.
func (l *TopLists) keep() int { return 2 * l.top }

func (l *TopLists) trimAt() int { return 3 * l.top }

// Top returns the number of products per category the lists rank, 0 before Build.
func (l *TopLists) Top() int { return l.top }

// Build ranks the totals in parts (shards that share no key, as for RankParts) from
// scratch, keeping the top entries of each category and more candidates behind them. Top
// must be at least 1.
func (l *TopLists) Build(parts []iter.Seq2[Key, int64], top int) {
	if top < 1 {
		panic("salesrank: TopLists.Build with a top below 1")
	}
	l.top = top
	l.cats = make(map[int32]*candidates)
	l.fill(collect(parts, l.keep(), nil))
}

// fill replaces the lists of the categories in byCat by what a scan kept of them.
func (l *TopLists) fill(byCat map[int32]*topN) {
	for c, t := range byCat {
		buf := t.sorted()
		var floor int64
		if t.n > len(buf) {
			floor = buf[len(buf)-1].TotalSold
		}
		l.cats[c] = &candidates{buf: buf, floor: floor}
	}
}

// Update brings the lists up to date after the totals of the keys in changed changed:
// every key whose total changed since the lists were last built or updated must be in
// changed, in any order and as often as it likes (Update reorders it). totals sets
// dst[i] to the current total of keys[i] (0, or negative, for a key gone from the
// window), for all the changed keys at once: a window looks them up with their cache
// misses overlapping (counting.Counts.GetBatch); Update calls it on disjoint parts of the
// keys at once when there are many (see lookUp), so it must be safe for concurrent use.
// parts are the current totals, scanned once for the categories whose lists fell short
// and must be rescanned. Update returns the number of those categories.
func (l *TopLists) Update(parts []iter.Seq2[Key, int64], changed []Key, totals func(keys []Key, dst []int64)) (rescanned int) {
	if l.cats == nil {
		panic("salesrank: TopLists.Update before Build")
	}
	changed, l.merged = sortKeys(changed, l.merged)
	changed = slices.Compact(changed)
	l.totals = slices.Grow(l.totals[:0], len(changed))[:len(changed)]
	lookUp(changed, l.totals, totals)
	vals := l.totals
	var rescan map[int32]bool
	var fresh []Entry
	for len(changed) > 0 {
		c := changed[0].CategoryID
		n := 1
		for n < len(changed) && changed[n].CategoryID == c {
			n++
		}
		group := changed[:n]
		changed = changed[n:]
		groupVals := vals[:n]
		vals = vals[n:]

		cand := l.cats[c]
		if cand == nil {
			cand = &candidates{}
		}
		fresh = fresh[:0]
		for i, k := range group {
			if v := groupVals[i]; v > cand.floor {
				fresh = append(fresh, Entry{ProductID: k.ProductID, TotalSold: v})
			}
		}
		if !cand.update(group, fresh, l.top) {
			if rescan == nil {
				rescan = make(map[int32]bool)
			}
			rescan[c] = true
		}
		if len(cand.buf) > l.trimAt() {
			cand.trim(l.keep())
		}
		if len(cand.buf) == 0 && cand.floor == 0 {
			delete(l.cats, c) // no positive total left
		} else {
			l.cats[c] = cand
		}
	}
	if len(rescan) > 0 {
		for c := range rescan {
			delete(l.cats, c)
		}
		l.fill(collect(parts, l.keep(), rescan))
	}
	return len(rescan)
}

// lookupPiece is the fewest changed keys that are worth a goroutine of their own in
// Update's lookups: an hourly step looks up over a million, and each lookup is a likely
// cache miss in a table of hundreds of megabytes, about half of the update's time.
var lookupPiece = 1 << 16

// lookUp sets vals[i] to the total of keys[i] with totals, splitting the keys among the
// cores when there are enough of them.
func lookUp(keys []Key, vals []int64, totals func(keys []Key, dst []int64)) {
	n := min(runtime.GOMAXPROCS(0), len(keys)/lookupPiece)
	if n < 2 {
		totals(keys, vals)
		return
	}
	var wg sync.WaitGroup
	per := (len(keys) + n - 1) / n
	for lo := 0; lo < len(keys); lo += per {
		hi := min(lo+per, len(keys))
		wg.Go(func() { totals(keys[lo:hi], vals[lo:hi]) })
	}
	wg.Wait()
}

// update replaces the candidates among changed (all of one category, sorted by product id)
// by fresh (their new entries above the floor, in any order), and reports whether the
// candidates now give the category's top exactly.
func (c *candidates) update(changed []Key, fresh []Entry, top int) bool {
	// The candidates that did not change keep their order, in place; the fresh ones are
	// sorted and merged in from the back, which costs less than sorting the whole list
	// again and allocates only when the list grows.
	lo, hi := changed[0].ProductID, changed[len(changed)-1].ProductID
	n := 0
	for _, e := range c.buf {
		if e.ProductID >= lo && e.ProductID <= hi {
			if _, found := slices.BinarySearchFunc(changed, e.ProductID, compareProduct); found {
				continue
			}
		}
		c.buf[n] = e
		n++
	}
	slices.SortFunc(fresh, CompareEntries)
	c.buf = append(c.buf[:n], fresh...)
	for i, j, k := n-1, len(fresh)-1, len(c.buf)-1; j >= 0; k-- {
		if i >= 0 && Less(fresh[j], c.buf[i]) {
			c.buf[k] = c.buf[i]
			i--
		} else {
			c.buf[k] = fresh[j]
			j--
		}
	}
	return c.floor == 0 || len(c.buf) >= top && c.buf[top-1].TotalSold > c.floor
}

func compareProduct(k Key, p int64) int { return cmp.Compare(k.ProductID, p) }

// trim drops the candidates past the first n and raises the floor to the best of them,
// which keeps every key left out at most the floor.
func (c *candidates) trim(n int) {
	c.floor = c.buf[n].TotalSold
	c.buf = c.buf[:n]
}

// Rankings returns the current ranking of every category in known and of every category
// with a positive total, sorted by category id, as Rank would from the same totals. The
// entries are the caller's: a store may set their ids.
func (l *TopLists) Rankings(known []int32) []Ranking {
	cats := make([]int32, 0, len(l.cats)+len(known))
	rows := 0
	for c, cand := range l.cats {
		cats = append(cats, c)
		rows += min(l.top, len(cand.buf))
	}
	for _, c := range known {
		if l.cats[c] == nil {
			cats = append(cats, c)
		}
	}
	slices.Sort(cats)
	cats = slices.Compact(cats)
	entries := make([]Entry, 0, rows) // one allocation for every category's entries
	out := make([]Ranking, len(cats))
	for i, c := range cats {
		out[i].CategoryID = c
		if cand := l.cats[c]; cand != nil {
			at := len(entries)
			entries = append(entries, cand.buf[:min(l.top, len(cand.buf))]...)
			out[i].Entries = entries[at:len(entries):len(entries)]
		}
	}
	return out
}

// maxMergedRuns is how many sorted runs sortKeys merges; more are sorted from scratch.
const maxMergedRuns = 16

// sortKeys sorts keys by compareKeys and returns them sorted: in keys, or in buf, which it
// grows if need be and returns for the next call either way (it never keeps keys' memory).
// A window's changed keys come as a few sorted runs, one for each bucket of partial sums
// added or subtracted (an hourly step: some 600 k keys leaving and as many entering), so
// it merges the runs it finds, pairwise: a pass over the keys per doubling instead of a
// comparison sort, which took two fifths of an hourly step's ranking.
func sortKeys(keys, buf []Key) (sorted, bufOut []Key) {
	starts := []int{0}
	for i := 1; i < len(keys); i++ {
		if compareKeys(keys[i-1], keys[i]) > 0 {
			if starts = append(starts, i); len(starts) > maxMergedRuns {
				slices.SortFunc(keys, compareKeys)
				return keys, buf
			}
		}
	}
	if len(starts) == 1 {
		return keys, buf
	}
	if cap(buf) < len(keys) {
		buf = make([]Key, len(keys))
	}
	src, dst := keys, buf[:len(keys)]
	for len(starts) > 1 {
		// Merge runs 2i and 2i+1 of src into dst; an odd run out is copied.
		merged := starts[:0:0]
		for i := 0; i < len(starts); i += 2 {
			lo, mid, hi := starts[i], len(src), len(src)
			if i+1 < len(starts) {
				mid = starts[i+1]
			}
			if i+2 < len(starts) {
				hi = starts[i+2]
			}
			merged = append(merged, lo)
			mergeKeys(dst[lo:hi], src[lo:mid], src[mid:hi])
		}
		starts = merged
		src, dst = dst, src
	}
	return src, buf
}

// mergeKeys merges the sorted a and b into dst, which is as long as both.
func mergeKeys(dst, a, b []Key) {
	k := 0
	for len(a) > 0 && len(b) > 0 {
		if compareKeys(b[0], a[0]) < 0 {
			dst[k], b = b[0], b[1:]
		} else {
			dst[k], a = a[0], a[1:]
		}
		k++
	}
	k += copy(dst[k:], a)
	copy(dst[k:], b)
}

func compareKeys(a, b Key) int {
	if a.CategoryID != b.CategoryID {
		return cmp.Compare(a.CategoryID, b.CategoryID)
	}
	return cmp.Compare(a.ProductID, b.ProductID)
}
