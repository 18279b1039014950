package counting

import (
	"math/rand/v2"
	"testing"

	"github.com/salesrank/salesrank"
)

// TestCountsMatchesMap drives Counts and a Go map with the same random operations, on keys
// chosen to collide: ids at their limits, ids sharing low bits, one product in many
// categories.
func TestCountsMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	products := []int64{0, 1, 1<<63 - 1, 1 << 62, 1 << 32, 1<<32 + 1}
	for i := range 2000 {
		products = append(products, int64(i)<<20) // same low bits
	}
	var c Counts
	want := salesrank.Totals{}
	for range 200_000 {
		k := salesrank.Key{CategoryID: rng.Int32N(50), ProductID: products[rng.IntN(len(products))]}
		if rng.IntN(10) == 0 {
			k.CategoryID = 1<<31 - 1
		}
		units := 1 + rng.Int64N(1<<31-1)
		c.Add(k.CategoryID, k.ProductID, units)
		want[k] += units
	}
	if c.Len() != len(want) {
		t.Fatalf("Len() = %d, want %d", c.Len(), len(want))
	}
	for k, v := range want {
		if got := c.Get(k.CategoryID, k.ProductID); got != v {
			t.Fatalf("Get(%v) = %d, want %d", k, got, v)
		}
	}
	got := salesrank.Totals{}
	for k, v := range c.All() {
		got[k] += v
	}
	if len(got) != len(want) {
		t.Fatalf("All() yields %d keys, want %d", len(got), len(want))
	}
	var m Counts
	m.Merge(&c)
	m.Merge(&c)
	for k, v := range want {
		if got := m.Get(k.CategoryID, k.ProductID); got != 2*v {
			t.Fatalf("after merging twice, Get(%v) = %d, want %d", k, got, 2*v)
		}
	}
	if got := c.Get(5, 12345); got != 0 {
		t.Errorf("Get of a missing key = %d, want 0", got)
	}
	c.Reset()
	if c.Len() != 0 || c.Get(0, products[0]) != 0 {
		t.Errorf("after Reset: Len() = %d", c.Len())
	}
}

func BenchmarkCountsAdd(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]salesrank.Key, 1<<20)
	for i := range keys {
		keys[i] = salesrank.Key{CategoryID: rng.Int32N(1000), ProductID: rng.Int64N(3_000_000)}
	}
	b.Run("Counts", func(b *testing.B) {
		var c Counts
		for i := 0; b.Loop(); i++ {
			k := keys[i&(len(keys)-1)]
			c.Add(k.CategoryID, k.ProductID, 1)
		}
	})
	b.Run("map", func(b *testing.B) {
		m := salesrank.Totals{}
		for i := 0; b.Loop(); i++ {
			m[keys[i&(len(keys)-1)]]++
		}
	})
}

func BenchmarkCountsZipf(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(rand.New(rand.NewPCG(5, 6)), 1.1, 100, 10_000_000)
	const n = 4_000_000
	cats := make([]int32, n)
	prods := make([]int64, n)
	for i := range n {
		p := int64(z.Uint64())
		prods[i] = (p * 2654435761) % 10_000_000
		cats[i] = int32(p%1000) + rng.Int32N(2)
	}
	b.Run("Add", func(b *testing.B) {
		for b.Loop() {
			var c Counts
			for i := range n {
				c.Add(cats[i], prods[i], 1)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/add")
	})
	b.Run("AddBatch", func(b *testing.B) {
		for b.Loop() {
			var c Counts
			var bt batch
			for i := range n {
				bt.cats[bt.n], bt.products[bt.n], bt.units[bt.n] = cats[i], prods[i], 1
				if bt.n++; bt.n == batchSize {
					c.AddBatch(&bt)
				}
			}
			c.AddBatch(&bt)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/add")
	})
}

func TestCountsHoursAndCompact(t *testing.T) {
	var c Counts
	c.AddAt(1, 7, 100, 3)
	c.AddAt(2, 7, 100, 5)
	c.Add(7, 100, 11)
	if got := []int64{c.GetAt(1, 7, 100), c.GetAt(2, 7, 100), c.Get(7, 100)}; got[0] != 3 || got[1] != 5 || got[2] != 11 {
		t.Fatalf("per-hour units = %v, want [3 5 11]", got)
	}
	hours := map[uint32]int64{}
	c.Each(func(hour uint32, cat int32, product int64, units int64) { hours[hour] += units })
	if len(hours) != 3 || hours[1] != 3 || hours[2] != 5 || hours[0] != 11 {
		t.Errorf("Each: %v", hours)
	}
	// A window table: add 1,000 products, take 600 back out, compact.
	var w Counts
	for p := range int64(1000) {
		w.Add(1, p, 2)
	}
	for p := range int64(600) {
		w.Add(1, p, -2)
	}
	w.Add(1, 5, 1) // back from zero: live again
	w.Compact()
	if w.Len() != 401 {
		t.Errorf("after Compact, Len() = %d, want 401", w.Len())
	}
	if w.Get(1, 5) != 1 || w.Get(1, 999) != 2 || w.Get(1, 0) != 0 {
		t.Errorf("after Compact, units wrong: %d %d %d", w.Get(1, 5), w.Get(1, 999), w.Get(1, 0))
	}

	// The same through batches, as a window moves: units taken away in a batch bring keys
	// to zero just as Add does.
	var bw Counts
	var b Batch
	for p := range int64(1000) {
		bw.Push(&b, 0, 1, p, 2)
	}
	bw.AddBatch(&b)
	for p := range int64(600) {
		bw.Push(&b, 0, 1, p, -2)
	}
	bw.Push(&b, 0, 1, 5, 1)
	bw.AddBatch(&b)
	bw.Compact()
	if bw.Len() != 401 || bw.Get(1, 5) != 1 || bw.Get(1, 0) != 0 {
		t.Errorf("batched: after Compact, Len() = %d, units %d %d; want 401, 1, 0", bw.Len(), bw.Get(1, 5), bw.Get(1, 0))
	}
}

// TestCountsMergeKeepsProbesShort merges tables of the same size with disjoint and with
// shared keys, as collect does with two workers' counts of a sorted log (disjoint hours) and
// of one week (shared keys). Shared keys must not grow the table; disjoint ones must get
// room at once: adding a table's keys in its slot order to a table of the same size that
// fills up on the way piles them into runs of occupied slots thousands long (a 10 M-line
// run took 55 s instead of 3).
func TestCountsMergeKeepsProbesShort(t *testing.T) {
	const keys = 400_000 // 1 M slots; two tables' worth would not fit
	for _, tc := range []struct {
		name   string
		offset int64 // o's products start here; keys means disjoint
	}{{"disjoint", keys}, {"shared", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			var c, o Counts
			for p := range int64(keys) {
				c.Add(1, p, 1)
				o.Add(1, tc.offset+p, 2)
			}
			slots := len(c.slots)
			c.Merge(&o)
			wantLen := 2 * keys
			if tc.offset == 0 {
				wantLen = keys
				if len(c.slots) != slots {
					t.Errorf("merging shared keys grew the table from %d to %d slots", slots, len(c.slots))
				}
			}
			if c.Len() != wantLen {
				t.Fatalf("Len() = %d, want %d", c.Len(), wantLen)
			}
			if got, want := c.Get(1, tc.offset+7), int64(2); tc.offset != 0 && got != want {
				t.Errorf("Get = %d, want %d", got, want)
			}
			if got := c.Get(1, 7); tc.offset == 0 && got != 3 {
				t.Errorf("Get of a shared key = %d, want 3", got)
			}
			if run := longestRun(&c); run > 1000 {
				t.Errorf("longest run of occupied slots after the merge: %d (of %d slots)", run, len(c.slots))
			}
		})
	}
}

// longestRun returns the longest run of occupied slots: an upper bound on any probe.
func longestRun(c *Counts) int {
	longest, run := 0, 0
	for i := range 2 * len(c.slots) { // twice round, for a run that wraps
		if c.slots[i%len(c.slots)].cat == 0 {
			run = 0
			continue
		}
		run++
		longest = max(longest, min(run, len(c.slots)))
	}
	return longest
}

// TestUnionLen checks the estimate Merge sizes the table by, at its exact ends.
func TestUnionLen(t *testing.T) {
	var a, b, c Counts
	for p := range int64(50_000) {
		a.Add(1, p, 1)
		b.Add(1, p, 1)
		c.Add(2, p, 1)
	}
	if got := a.unionLen(&b); got != 50_000 {
		t.Errorf("union of equal tables: %d, want 50000", got)
	}
	if got := a.unionLen(&c); got != 100_000 {
		t.Errorf("union of disjoint tables: %d, want 100000", got)
	}
	var empty Counts
	if got := empty.unionLen(&a); got != 50_000 {
		t.Errorf("union with an empty table: %d, want 50000", got)
	}
}

// TestGetBatch checks GetBatch against a map: keys present, absent, present only in another
// hour, and at zero units, in batches shorter and longer than batchSize, and on an empty
// table.
func TestGetBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var c Counts
	want := map[salesrank.Key]int64{}
	var keys []salesrank.Key
	for range 5000 {
		k := salesrank.Key{CategoryID: rng.Int32N(50), ProductID: rng.Int64N(400) << (rng.IntN(3) * 30)}
		keys = append(keys, k)
		switch rng.IntN(4) {
		case 0: // absent from hour 0, present in another
			c.AddAt(7, k.CategoryID, k.ProductID, 3)
		case 1: // absent
		default:
			u := rng.Int64N(5) - 1
			c.Add(k.CategoryID, k.ProductID, u)
			want[k] += u
		}
	}
	dst := make([]int64, len(keys))
	var empty Counts
	empty.GetBatch(keys, dst)
	for i, v := range dst {
		if v != 0 {
			t.Fatalf("empty table: key %v has %d", keys[i], v)
		}
	}
	for _, n := range []int{0, 1, batchSize - 1, batchSize, batchSize + 1, len(keys)} {
		for i := range dst {
			dst[i] = -99
		}
		c.GetBatch(keys[:n], dst[:n])
		for i, k := range keys[:n] {
			if dst[i] != want[k] || dst[i] != c.Get(k.CategoryID, k.ProductID) {
				t.Fatalf("%d keys: key %v has %d, want %d", n, k, dst[i], want[k])
			}
		}
	}
}

// TestReserve checks that a table given room for n keys takes n distinct keys without
// growing, keeps the keys it held, and that reserving less than it has is a no-op.
func TestReserve(t *testing.T) {
	var c Counts
	c.Add(3, 30, 5)
	c.Reserve(100_000)
	slots := len(c.slots)
	if c.growAt < 100_000 {
		t.Fatalf("Reserve(100000): room for %d keys", c.growAt)
	}
	for p := range int64(100_000 - 1) {
		c.Add(4, p, 1)
	}
	if len(c.slots) != slots {
		t.Errorf("the table grew from %d to %d slots within its reservation", slots, len(c.slots))
	}
	if got := c.Get(3, 30); got != 5 {
		t.Errorf("key held before Reserve: %d units, want 5", got)
	}
	if c.Len() != 100_000 {
		t.Errorf("Len %d, want 100000", c.Len())
	}
	c.Reserve(10)
	if len(c.slots) != slots {
		t.Errorf("Reserve(10) resized a table of %d keys", c.Len())
	}
}
