package counting

import (
	"cmp"
	"slices"

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
// extended slice. Merging into a buffer the caller reuses rather than keeping the merged
// buckets saves a first run over a week writing all its entries a second time into new
// memory.
func (s *Sums) Entries(dst []partial.Entry, i int) []partial.Entry {
	rs := s.runs[i]
	n := 0
	for _, run := range rs {
		n += len(run)
	}
	dst = slices.Grow(dst, n) // at most n: grown once, not by doubling
	switch len(rs) {
	case 1:
		return append(dst, rs[0]...)
	case 2:
		return merge(dst, rs[0], rs[1])
	default:
		start := len(dst)
		for _, run := range rs {
			dst = append(dst, run...)
		}
		all := dst[start:]
		partial.Sort(all)
		out := all[:0]
		for _, e := range all {
			if k := len(out) - 1; k >= 0 && out[k].CategoryID == e.CategoryID && out[k].ProductID == e.ProductID {
				out[k].Units += e.Units
				continue
			}
			out = append(out, e)
		}
		return dst[:start+len(out)]
	}
}

// SumsOf gives the counts of a table keyed by bucket (Counts.AddAt) as Sums, and empties
// the table.
func SumsOf(c *Counts) *Sums {
	r := runs{}
	r.flush(c, 1<<20)
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

// merge appends the merge of two sorted runs to dst, summing the units of keys found in
// both.
func merge(dst, a, b []partial.Entry) []partial.Entry {
	for len(a) > 0 && len(b) > 0 {
		switch c := cmp.Or(cmp.Compare(a[0].CategoryID, b[0].CategoryID), cmp.Compare(a[0].ProductID, b[0].ProductID)); {
		case c < 0:
			dst, a = append(dst, a[0]), a[1:]
		case c > 0:
			dst, b = append(dst, b[0]), b[1:]
		default:
			e := a[0]
			e.Units += b[0].Units
			dst, a, b = append(dst, e), a[1:], b[1:]
		}
	}
	return append(append(dst, a...), b...)
}
