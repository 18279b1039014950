package counting

import (
	"cmp"
	"iter"
	"math"
	"math/bits"
	"slices"
	"unsafe"

	"github.com/salesrank/salesrank/internal/partial"
)

// Sums is what counting with Spec.Bucket gives: the units per (category, product) of each
// bucket of sale time that had sales, as runs of entries sorted by category, then product.
// A key may be in several runs of its bucket (the runs of different blocks of a log); its
// units are the sum over them. Entries merges them. The zero value and nil are empty.
type Sums struct {
	buckets []uint32            // in order
	runs    [][][]partial.Entry // runs[i] are those of buckets[i]
}

// Buckets returns the buckets that had sales, in order.
func (s *Sums) Buckets() []uint32 {
	if s == nil {
		return nil
	}
	return s.buckets
}

// Runs returns the runs of the i-th bucket of Buckets. They must not be changed.
func (s *Sums) Runs(i int) [][]partial.Entry { return s.runs[i] }

// Entries appends the entries of the i-th bucket of Buckets to dst, each key once with its
// units summed over the runs, sorted as partial.Encode writes them, and returns the
// extended slice: what All yields.
func (s *Sums) Entries(dst []partial.Entry, i int) []partial.Entry {
	for e := range s.All(i) {
		dst = append(dst, e)
	}
	return dst
}

// SumsOf gives the counts of a table keyed by bucket (Counts.AddAt) as Sums, and empties
// the table.
func SumsOf(c *Counts) *Sums {
	r := runs{}
	r.flush(c, 1<<20, nil)
	return r.sums()
}

// runs are the counts of one or more tables keyed by bucket, bucket by bucket, as runs of
// entries sorted by key; a key may be in several runs of its bucket. Counting per bucket
// into one table the size of a week's keys (9 M at the bench's 10 M-line week) took a
// cache miss per sale and page faults on hundreds of MiB. Instead each counting goroutine
// counts a block (4 MiB of lines, an hour or two of a time-ordered log) into a table of
// its own, which stays in the CPU's caches and is reused, then flushes it into runs.
type runs map[uint32][][]partial.Entry

// flush moves every key of c, a table keyed by bucket, into runs (one run per bucket) and
// empties c, keeping its memory. Buckets are told apart by a counting sort when those of c
// span at most dense buckets (a few hours of a time-ordered log), by sorting otherwise.
// The runs take their memory from mem (from the heap if mem is nil).
func (r runs) flush(c *Counts, dense int, mem *slab) {
	if c.Len() == 0 {
		return
	}
	lo, hi := ^uint32(0), uint32(0)
	c.Each(func(b uint32, _ int32, _ int64, _ int64) { lo, hi = min(lo, b), max(hi, b) })
	all := mem.take(c.Len()) // every run of this flush is a piece of it
	var starts []int         // of each bucket's run in all
	var buckets []uint32
	if span := int(hi-lo) + 1; span <= dense {
		next := make([]int, span)
		c.Each(func(b uint32, _ int32, _ int64, _ int64) { next[b-lo]++ })
		at := 0
		for i, n := range next {
			if n > 0 {
				buckets, starts = append(buckets, lo+uint32(i)), append(starts, at)
			}
			next[i], at = at, at+n
		}
		c.Each(func(b uint32, cat int32, product int64, units int64) {
			all[next[b-lo]] = partial.Entry{CategoryID: cat, ProductID: product, Units: units}
			next[b-lo]++
		})
	} else {
		type keyed struct {
			bucket uint32
			e      partial.Entry
		}
		byBucket := make([]keyed, 0, c.Len())
		c.Each(func(b uint32, cat int32, product int64, units int64) {
			byBucket = append(byBucket, keyed{b, partial.Entry{CategoryID: cat, ProductID: product, Units: units}})
		})
		slices.SortFunc(byBucket, func(x, y keyed) int { return cmp.Compare(x.bucket, y.bucket) })
		for i, k := range byBucket {
			if i == 0 || k.bucket != byBucket[i-1].bucket {
				buckets, starts = append(buckets, k.bucket), append(starts, i)
			}
			all[i] = k.e
		}
	}
	starts = append(starts, len(all))
	for i, b := range buckets {
		run := all[starts[i]:starts[i+1]:starts[i+1]]
		partial.Sort(run, mem.scratch())
		r[b] = append(r[b], run)
	}
	c.Reset()
}

// slab hands out the memory of one counting goroutine's runs, in pieces of slices of 2 MiB
// to 32 MiB backed by transparent huge pages (see hugeSlice). A first run over a week makes
// 9 M entries of runs, 216 MB: taken a flush (a block's keys, about 2 MiB) at a time from
// the heap, that memory was faulted in 4 KiB at a time, 53 k faults and about a fifth of the
// run's CPU time. The first huge page's worth comes from the heap, piece by piece, so that
// a small count (a minute's object, a test's) does not zero 2 MiB for a few keys. A slice
// lives as long as any run made from it. The zero value is ready to use.
type slab struct {
	free  []partial.Entry // what is left of the last slice made
	pages int             // huge pages in every slice made so far
	small int             // entries taken from the heap, up to a huge page's worth
	sort  []partial.Entry // partial.Sort's second buffer, for runs sorted one at a time
}

// hugePage is the size of a transparent huge page on the machines we run on (x86-64, and
// arm64 with 4 KiB base pages).
const hugePage = 2 << 20

// maxSlabPages bounds a slab's slices to 32 MiB: each takes as many huge pages as the
// slab has made so far (doubling, so that a small batch takes little) up to that.
const maxSlabPages = 16

// take returns n zero entries. A nil slab takes them from the heap.
func (s *slab) take(n int) []partial.Entry {
	const size = int(unsafe.Sizeof(partial.Entry{}))
	if s == nil {
		return make([]partial.Entry, n)
	}
	if s.pages == 0 && (s.small+n)*size <= hugePage {
		s.small += n
		return make([]partial.Entry, n)
	}
	if len(s.free) < n {
		pages := min(maxSlabPages, max(1, s.pages))
		pages = max(pages, (n*size+hugePage-1)/hugePage)
		// Whole huge pages: hugeSlice advises only those the slice covers entirely.
		s.free = hugeSlice[partial.Entry]((pages*hugePage + size - 1) / size)
		s.pages += pages
	}
	out := s.free[:n:n]
	s.free = s.free[n:]
	return out
}

// scratch returns the buffer partial.Sort keeps between the sorts of this slab's runs; nil
// for a nil slab.
func (s *slab) scratch() *[]partial.Entry {
	if s == nil {
		return nil
	}
	return &s.sort
}

// add moves o's runs into r.
func (r runs) add(o runs) {
	for b, rs := range o {
		r[b] = append(r[b], rs...)
	}
}

// sums gives the runs as Sums.
func (r runs) sums() *Sums {
	s := &Sums{buckets: make([]uint32, 0, len(r))}
	for b := range r {
		s.buckets = append(s.buckets, b)
	}
	slices.Sort(s.buckets)
	s.runs = make([][][]partial.Entry, len(s.buckets))
	for i, b := range s.buckets {
		s.runs[i] = r[b]
	}
	return s
}

// EstimateKeys estimates how many distinct (category, product) keys the buckets that in
// accepts hold together, for sizing a table before adding them to it (Counts.Reserve). It is
// linear counting (Whang et al., 1990): each entry of every run sets one bit of a bitmap of
// at least as many bits as entries (at most 2^26, 8 MiB), and the bits left clear give the
// estimate, within a fraction of a per cent at these loads. It reads every entry once, in
// memory order, without merging the runs; a few milliseconds a million entries.
func (s *Sums) EstimateKeys(in func(bucket uint32) bool) int {
	entries := 0
	for i, b := range s.Buckets() {
		if in(b) {
			for _, r := range s.runs[i] {
				entries += len(r)
			}
		}
	}
	if entries == 0 {
		return 0
	}
	m := 1 << min(max(bits.Len(uint(entries)), 12), 26) // bits: a power of two ≥ entries
	bitmap := make([]uint64, m/64)
	mask := uint64(m - 1)
	for i, b := range s.buckets {
		if !in(b) {
			continue
		}
		for _, r := range s.runs[i] {
			for _, e := range r {
				h := hashKey(0, uint32(e.CategoryID), 0, e.ProductID) & mask
				bitmap[h/64] |= 1 << (h % 64)
			}
		}
	}
	set := 0
	for _, w := range bitmap {
		set += bits.OnesCount64(w)
	}
	// A full bitmap (some m·ln m keys, over a billion at the cap) gives that as the estimate.
	est := float64(m) * math.Log(float64(m)/float64(max(m-set, 1)))
	return min(entries, int(math.Round(est)))
}

// All yields the entries of the i-th bucket of Buckets as Entries gives them, each key once
// with its units summed over the runs, in order, merging the runs as it goes: the merged
// entries take no memory. An hourly step's bucket has 10 to 20 runs of some 100 k entries
// each, and merging them into a buffer cost it 32 MB of new memory twice (the encoder and
// the window each merge it), at about 10 µs a new page here.
func (s *Sums) All(i int) iter.Seq[partial.Entry] {
	return func(yield func(partial.Entry) bool) {
		rs := s.runs[i]
		switch len(rs) {
		case 1:
			for _, e := range rs[0] {
				if !yield(e) {
					return
				}
			}
			return
		case 2: // the common case of a first run over a time-ordered log: two blocks
			a, b := rs[0], rs[1]
			for len(a) > 0 && len(b) > 0 {
				var e partial.Entry
				switch c := partial.Compare(a[0], b[0]); {
				case c < 0:
					e, a = a[0], a[1:]
				case c > 0:
					e, b = b[0], b[1:]
				default:
					e = a[0]
					e.Units += b[0].Units
					a, b = a[1:], b[1:]
				}
				if !yield(e) {
					return
				}
			}
			for _, rest := range [][]partial.Entry{a, b} { // one of them is used up
				for _, e := range rest {
					if !yield(e) {
						return
					}
				}
			}
			return
		}
		// A binary heap of the runs not yet used up, by the key at their head.
		h := make([][]partial.Entry, 0, len(rs))
		for _, r := range rs {
			if len(r) > 0 {
				h = append(h, r)
			}
		}
		for j := len(h)/2 - 1; j >= 0; j-- {
			siftDown(h, j)
		}
		for len(h) > 0 {
			e := h[0][0]
			for {
				// Advance the run at the top past its head, then see whether the next
				// head is the same key.
				if h[0] = h[0][1:]; len(h[0]) == 0 {
					last := len(h) - 1
					h[0] = h[last]
					h = h[:last]
					if last == 0 {
						break
					}
				}
				siftDown(h, 0)
				if partial.Compare(h[0][0], e) != 0 {
					break
				}
				e.Units += h[0][0].Units
			}
			if !yield(e) {
				return
			}
		}
	}
}

// siftDown restores the heap order of h below j, by the key at the head of each run.
func siftDown(h [][]partial.Entry, j int) {
	for {
		least := j
		if l := 2*j + 1; l < len(h) && headLess(h[l], h[least]) {
			least = l
		}
		if r := 2*j + 2; r < len(h) && headLess(h[r], h[least]) {
			least = r
		}
		if least == j {
			return
		}
		h[j], h[least] = h[least], h[j]
		j = least
	}
}

func headLess(a, b []partial.Entry) bool { return partial.Compare(a[0], b[0]) < 0 }
