package counting

import (
	"iter"
	"math"
	"math/bits"
	"sort"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/partial"
)

// Totals returns the units of every key over the buckets that in accepts, each key once, as
// up to max(n, 1) sequences over disjoint ranges of categories, to be read on as many goroutines
// (salesrank.RankParts, salesrank.NewStandings). Each reading sums the runs again, a
// category at a time: every run is sorted by category, so a category's entries of all the
// runs are summed in a table sized for them, which stays in the CPU's caches, instead of in
// one table of every key of the window, where each entry is a cache miss and whose memory
// the kernel must first hand out and zero. Keys come in no particular order within a
// category.
func (s *Sums) Totals(in func(bucket uint32) bool, n int) []iter.Seq2[salesrank.Key, int64] {
	var runs [][]partial.Entry
	longest := -1
	for i, b := range s.Buckets() {
		if !in(b) {
			continue
		}
		for _, r := range s.runs[i] {
			if len(r) == 0 {
				continue
			}
			if longest < 0 || len(r) > len(runs[longest]) {
				longest = len(runs)
			}
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		return nil
	}
	// The shards' edges are categories at even steps through the longest run: the runs of
	// a time-ordered log each hold a slice of every category's sales, so the shards share
	// the entries about evenly.
	edges := []int64{math.MinInt32}
	for k := 1; k < n; k++ {
		c := int64(runs[longest][len(runs[longest])*k/n].CategoryID)
		if c > edges[len(edges)-1] {
			edges = append(edges, c)
		}
	}
	edges = append(edges, math.MaxInt32+1)
	out := make([]iter.Seq2[salesrank.Key, int64], len(edges)-1)
	for k := range out {
		lo, hi := edges[k], edges[k+1]
		out[k] = func(yield func(salesrank.Key, int64) bool) { sumCategories(runs, lo, hi, yield) }
	}
	return out
}

// sumCategories yields the total of every key of the categories in [lo, hi) that the runs
// hold, a category at a time.
func sumCategories(runs [][]partial.Entry, lo, hi int64, yield func(salesrank.Key, int64) bool) {
	var heads [][]partial.Entry // each run from the next category to sum on
	for _, r := range runs {
		i := sort.Search(len(r), func(i int) bool { return int64(r[i].CategoryID) >= lo })
		if i < len(r) && int64(r[i].CategoryID) < hi {
			heads = append(heads, r[i:])
		}
	}
	var t categorySums
	ends := make([]int, len(heads))
	for len(heads) > 0 {
		cat := heads[0][0].CategoryID
		for _, h := range heads[1:] {
			cat = min(cat, h[0].CategoryID)
		}
		entries := 0
		for k, h := range heads {
			n := 0
			for n < len(h) && h[n].CategoryID == cat {
				n++
			}
			ends[k] = n
			entries += n
		}
		t.reset(entries)
		for k, h := range heads {
			for _, e := range h[:ends[k]] {
				t.add(e.ProductID, e.Units)
			}
			heads[k] = h[ends[k]:]
		}
		for _, i := range t.used {
			if s := &t.slots[i]; !yield(salesrank.Key{CategoryID: cat, ProductID: s.product}, s.units) {
				return
			}
		}
		// Drop the runs that are done with the shard's categories.
		kept := heads[:0]
		for _, h := range heads {
			if len(h) > 0 && int64(h[0].CategoryID) < hi {
				kept = append(kept, h)
			}
		}
		heads, ends = kept, ends[:len(kept)]
	}
}

// categorySums sums units per product of one category in an open-addressing table that
// forgets its keys by moving to a new generation instead of clearing its memory, and uses no
// more of that memory than the category needs, so that a small category's stays in the
// fastest caches.
type categorySums struct {
	slots []productUnits
	gen   []uint32 // a slot is in use if its generation is the table's
	cur   uint32
	shift uint     // a product's home slot is the top bits of its hash
	used  []uint32 // the slots in use, in the order their products came
}

type productUnits struct {
	product int64
	units   int64
}

// reset empties the table and sizes it for a category whose runs hold entries entries
// between them: more than half as many slots. A key is in 4–5 of an hourly week's runs, so
// that leaves the table under half full; add doubles it when it is not.
func (t *categorySums) reset(entries int) {
	t.used = t.used[:0]
	t.cur++
	t.size(1 << bits.Len(uint(entries/2)))
}

// size makes the table n slots (a power of two) in the current generation, empty.
func (t *categorySums) size(n int) {
	if n > cap(t.slots) || t.cur == 0 {
		t.slots, t.gen, t.cur = hugeSlice[productUnits](n), hugeSlice[uint32](n), 1
		// Written before add reads it: a fresh page of a large slice that is read first
		// is mapped to the kernel's zero page, and the write after it faults again, and
		// flushes every core's TLB.
		clear(t.gen)
	}
	t.slots, t.gen = t.slots[:n], t.gen[:n]
	t.shift = uint(64 - bits.Len(uint(n-1)))
}

// add adds units to product.
func (t *categorySums) add(product int64, units int64) {
	mask := uint64(len(t.slots) - 1)
	for i := hashKey(0, 0, 0, product) >> t.shift; ; i = (i + 1) & mask {
		if t.gen[i] != t.cur {
			if 2*len(t.used) >= len(t.slots) {
				t.grow()
				t.add(product, units)
				return
			}
			t.gen[i] = t.cur
			t.slots[i] = productUnits{product, units}
			t.used = append(t.used, uint32(i))
			return
		}
		if t.slots[i].product == product {
			t.slots[i].units += units
			return
		}
	}
}

// grow doubles the table, keeping its keys.
func (t *categorySums) grow() {
	old := make([]productUnits, len(t.used))
	for k, i := range t.used {
		old[k] = t.slots[i]
	}
	t.used = t.used[:0]
	t.cur++
	t.size(2 * len(t.slots))
	for _, e := range old {
		t.add(e.product, e.units)
	}
}
