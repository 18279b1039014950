package counting

import (
	"cmp"
	"iter"
	"runtime"
	"slices"
	"sync"

	"github.com/salesrank/salesrank/internal/partial"
)

// Sums is what counting with Spec.Bucket gives: the units per (category, product) of each
// bucket of sale time that had sales, each bucket's entries sorted by category, then
// product, as the bucket's partial sums are encoded. The zero value and nil are empty.
type Sums struct {
	buckets []uint32          // in order
	entries [][]partial.Entry // entries[i] are those of buckets[i]
	len     int
}

// All yields every bucket with its entries, buckets in order. The entries must not be
// changed.
func (s *Sums) All() iter.Seq2[uint32, []partial.Entry] {
	return func(yield func(uint32, []partial.Entry) bool) {
		if s == nil {
			return
		}
		for i, b := range s.buckets {
			if !yield(b, s.entries[i]) {
				return
			}
		}
	}
}

// Len returns the number of entries over every bucket.
func (s *Sums) Len() int {
	if s == nil {
		return 0
	}
	return s.len
}

// SumsOf gives the counts of a table keyed by bucket (Counts.AddAt) as Sums.
func SumsOf(c *Counts) *Sums {
	r := runs{}
	r.flush(c, 1<<20)
	return r.finish(1)
}

// runs are the counts of one or more tables keyed by bucket, bucket by bucket, as runs of
// entries sorted by key; a key may be in several runs of its bucket. Counting per bucket
// into one table the size of a week's keys (9 M at the bench's 10 M-line week) took a
// cache miss per sale and page faults on hundreds of MiB. Instead each counting goroutine
// counts a block (4 MiB of lines, an hour or two of a time-ordered log) into a table of
// its own, which stays in the CPU's caches and is reused, then flushes it into runs;
// finish combines each bucket's runs.
type runs map[uint32][][]partial.Entry

// flush moves every key of c, a table keyed by bucket, into runs (one run per bucket) and
// empties c, keeping its memory. Buckets are told apart by a counting sort when those of c
// span at most dense buckets (a few hours of a time-ordered log), by sorting otherwise.
func (r runs) flush(c *Counts, dense int) {
	if c.Len() == 0 {
		return
	}
	lo, hi := ^uint32(0), uint32(0)
	c.Each(func(b uint32, _ int32, _ int64, _ int64) { lo, hi = min(lo, b), max(hi, b) })
	all := make([]partial.Entry, c.Len()) // every run of this flush is a piece of it
	var starts []int                      // of each bucket's run in all
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
		partial.Sort(run)
		r[b] = append(r[b], run)
	}
	c.Reset()
}

// add moves o's runs into r.
func (r runs) add(o runs) {
	for b, rs := range o {
		r[b] = append(r[b], rs...)
	}
}

// finish combines each bucket's runs into its sorted entries, buckets on up to workers
// goroutines. A bucket of one run keeps it as it is.
func (r runs) finish(workers int) *Sums {
	s := &Sums{buckets: make([]uint32, 0, len(r))}
	for b := range r {
		s.buckets = append(s.buckets, b)
	}
	slices.Sort(s.buckets)
	s.entries = make([][]partial.Entry, len(s.buckets))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(max(workers, 1), runtime.GOMAXPROCS(0), len(s.buckets)) {
		wg.Go(func() {
			for i := range next {
				s.entries[i] = combine(r[s.buckets[i]])
			}
		})
	}
	for i := range s.buckets {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, e := range s.entries {
		s.len += len(e)
	}
	return s
}

// combine merges sorted runs into one, summing the units of keys found in several: two at
// a time, so that each round is a linear merge.
func combine(rs [][]partial.Entry) []partial.Entry {
	for len(rs) > 1 {
		next := rs[:0:0]
		for i := 0; i < len(rs); i += 2 {
			if i+1 == len(rs) {
				next = append(next, rs[i])
			} else {
				next = append(next, merge(rs[i], rs[i+1]))
			}
		}
		rs = next
	}
	return rs[0]
}

// merge merges two sorted runs, summing the units of keys found in both.
func merge(a, b []partial.Entry) []partial.Entry {
	out := make([]partial.Entry, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		switch c := cmp.Or(cmp.Compare(a[0].CategoryID, b[0].CategoryID), cmp.Compare(a[0].ProductID, b[0].ProductID)); {
		case c < 0:
			out, a = append(out, a[0]), a[1:]
		case c > 0:
			out, b = append(out, b[0]), b[1:]
		default:
			e := a[0]
			e.Units += b[0].Units
			out, a, b = append(out, e), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}
