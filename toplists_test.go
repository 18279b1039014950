package salesrank

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"testing"
)

// shards splits totals into n parts that share no key, as a table's shards would.
func shards(totals Totals, n int) []iter.Seq2[Key, int64] {
	keys := slicesOf(totals)
	parts := make([]iter.Seq2[Key, int64], n)
	for i := range n {
		parts[i] = func(yield func(Key, int64) bool) {
			for j := i; j < len(keys); j += n {
				if !yield(keys[j], totals[keys[j]]) {
					return
				}
			}
		}
	}
	return parts
}

// checkLists checks the invariant Update relies on, category by category, so that a list
// gone wrong is caught the step it goes wrong rather than when it shows in a ranking:
// every candidate's total is current, positive, at least the floor and in rank order; every
// other key is at most the floor; and the lists hold exactly the categories with a
// positive total.
func checkLists(tb testing.TB, l *TopLists, totals Totals) {
	tb.Helper()
	positive := map[int32]bool{}
	for k, v := range totals {
		if v > 0 {
			positive[k.CategoryID] = true
		}
	}
	for c := range positive {
		if l.cats[c] == nil {
			tb.Fatalf("category %d has positive totals but no list", c)
		}
	}
	for c, cand := range l.cats {
		if !positive[c] {
			tb.Fatalf("category %d has a list but no positive total", c)
		}
		in := map[int64]bool{}
		for i, e := range cand.buf {
			if got := totals[Key{c, e.ProductID}]; got != e.TotalSold {
				tb.Fatalf("category %d: candidate %d holds %d, its total is %d", c, e.ProductID, e.TotalSold, got)
			}
			if e.TotalSold <= 0 || e.TotalSold < cand.floor {
				tb.Fatalf("category %d: candidate %d total %d, floor %d", c, e.ProductID, e.TotalSold, cand.floor)
			}
			if i > 0 && !Less(cand.buf[i-1], e) {
				tb.Fatalf("category %d: candidates out of order at %d", c, i)
			}
			in[e.ProductID] = true
		}
		if len(cand.buf) > l.trimAt() {
			tb.Fatalf("category %d: %d candidates, more than %d", c, len(cand.buf), l.trimAt())
		}
		for k, v := range totals {
			if k.CategoryID == c && !in[k.ProductID] && v > cand.floor {
				tb.Fatalf("category %d: product %d (total %d) is above the floor %d but not a candidate", c, k.ProductID, v, cand.floor)
			}
		}
	}
}

// TestTopListsMatchesRank changes random totals step after step — up, down to zero, new
// keys, many ties, totals near 2^63, categories smaller than top — and checks after every
// step that the lists rank exactly as Rank does from scratch.
func TestTopListsMatchesRank(t *testing.T) {
	// Lookups split among the cores from a few keys on, and at least two of them even
	// under -cpu 1, so that the steps below take both paths of lookUp.
	defer func(n int) { lookupPiece = n }(lookupPiece)
	lookupPiece = 4
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	var steps, rescans, rescanSteps int
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 11))
		top := []int{1, 2, 3, 5, 10, 40}[seed%6]
		ncats := 1 + rng.IntN(8)
		nprod := []int64{5, 30, 300, 3000}[rng.IntN(4)] // 5: categories smaller than top
		maxUnits := []int64{3, 50, 1 << 20, 1 << 61}[rng.IntN(4)]
		known := []int32{0, 2, 100} // 100 never sells
		totals := Totals{}
		randKey := func() Key { return Key{rng.Int32N(int32(ncats)), rng.Int64N(nprod)} }
		for range rng.IntN(int(nprod) * ncats) {
			totals[randKey()] += 1 + rng.Int64N(maxUnits)
		}
		var l TopLists
		l.Build(shards(totals, 1+rng.IntN(3)), top)
		checkLists(t, &l, totals)
		for step := range 40 {
			var changed []Key
			set := func(k Key, v int64) {
				totals[k] = v
				changed = append(changed, k)
				if rng.IntN(4) == 0 {
					changed = append(changed, k) // a key both subtracted and added
				}
			}
			for range rng.IntN(20) {
				k := randKey()
				switch rng.IntN(7) {
				case 0, 1: // more sales
					set(k, totals[k]+1+rng.Int64N(maxUnits))
				case 2: // a bucket left the window
					set(k, max(0, totals[k]-1-rng.Int64N(maxUnits)))
				case 3: // gone
					set(k, 0)
				case 4: // the top falls below the rest
					if cand := l.cats[k.CategoryID]; cand != nil && len(cand.buf) > 0 {
						e := cand.buf[rng.IntN(min(len(cand.buf), top))]
						set(Key{k.CategoryID, e.ProductID}, rng.Int64N(max(1, cand.floor+1)))
					}
				case 5: // an outsider climbs to the floor: a tie only a rescan can break
					if cand := l.cats[k.CategoryID]; cand != nil && cand.floor > 0 {
						set(k, cand.floor)
					}
				case 6: // ties everywhere
					set(k, 1+rng.Int64N(3))
				}
			}
			n := l.Update(shards(totals, 1+rng.IntN(3)), changed, totals.lookup)
			steps++
			rescans += n
			if n > 0 {
				rescanSteps++
			}
			checkLists(t, &l, totals)
			got, want := l.Rankings(known), Rank(totals.All(), known, top)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d (top %d) step %d: Rankings =\n%v\nwant\n%v", seed, top, step, got, want)
			}
		}
	}
	t.Logf("%d steps, %d with rescans, %d categories rescanned", steps, rescanSteps, rescans)
	// Both paths must be exercised: rescans by the adversarial changes, lists that answer
	// alone by the rest.
	if rescanSteps == 0 || rescanSteps > steps/2 {
		t.Errorf("%d of %d steps rescanned; want some, and not most", rescanSteps, steps)
	}
}

// TestTopListsTieAtFloor is the case that makes a rescan necessary: the top falls, and the
// key that takes its place ties at the floor with a candidate but was never a candidate.
func TestTopListsTieAtFloor(t *testing.T) {
	totals := Totals{{1, 1}: 10, {1, 5}: 5, {1, 3}: 4, {1, 6}: 1}
	var l TopLists
	l.Build(shards(totals, 2), 1) // keeps products 1 and 5; floor 5
	if cand := l.cats[1]; len(cand.buf) != 2 || cand.floor != 5 {
		t.Fatalf("after Build: candidates %v, floor %d; want products 1 and 5, floor 5", cand.buf, cand.floor)
	}
	totals[Key{1, 3}], totals[Key{1, 1}] = 5, 0
	n := l.Update(shards(totals, 2), []Key{{1, 3}, {1, 1}}, totals.lookup)
	want := []Ranking{{CategoryID: 1, Entries: []Entry{{ProductID: 3, TotalSold: 5}}}}
	if got := l.Rankings(nil); n != 1 || !reflect.DeepEqual(got, want) {
		t.Errorf("after the top fell: rescanned %d, ranking %v; want 1, %v", n, got, want)
	}
}

// TestTopListsRescanOnlyWhatFellShort checks that a rescan rebuilds the categories that need
// it and leaves the others' lists as they were.
func TestTopListsRescanOnlyWhatFellShort(t *testing.T) {
	totals := Totals{}
	for c := range int32(3) {
		for p := range int64(10) {
			totals[Key{c, p}] = 100 - p
		}
	}
	var l TopLists
	l.Build(shards(totals, 3), 2) // keeps 4 of 10; floor 96
	other := l.cats[2]
	for p := range int64(4) {
		totals[Key{0, p}] = 1 // category 0's candidates all fall
	}
	totals[Key{1, 9}] = 1000 // category 1 gains a new top
	changed := []Key{{0, 0}, {0, 1}, {0, 2}, {0, 3}, {1, 9}}
	if n := l.Update(shards(totals, 3), changed, totals.lookup); n != 1 {
		t.Errorf("rescanned %d categories, want 1", n)
	}
	if l.cats[2] != other {
		t.Errorf("category 2 did not change but its list was replaced")
	}
	checkLists(t, &l, totals)
	if got, want := l.Rankings(nil), Rank(totals.All(), nil, 2); !reflect.DeepEqual(got, want) {
		t.Errorf("Rankings = %v, want %v", got, want)
	}
}

func ExampleTopLists() {
	totals := Totals{{1, 10}: 5, {1, 11}: 7, {1, 12}: 2}
	var l TopLists
	l.Build([]iter.Seq2[Key, int64]{totals.All()}, 2)
	totals[Key{1, 12}] += 9 // a minute of sales
	l.Update([]iter.Seq2[Key, int64]{totals.All()}, []Key{{1, 12}}, totals.lookup)
	for _, r := range l.Rankings(nil) {
		fmt.Println(r.CategoryID, r.Entries)
	}
	// Output: 1 [{0 12 11} {0 11 7}]
}

// TestSelectBest checks the selection topN cuts its buffer with, on inputs in random,
// sorted and reversed order with many ties in totals.
func TestSelectBest(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		n := 1 + rng.IntN(300)
		es := make([]Entry, n)
		for i, p := range rng.Perm(n) {
			es[i] = Entry{ProductID: int64(p), TotalSold: rng.Int64N(1 + int64(rng.IntN(10)))}
		}
		switch rng.IntN(3) {
		case 1:
			slices.SortFunc(es, CompareEntries)
		case 2:
			slices.SortFunc(es, func(a, b Entry) int { return CompareEntries(b, a) })
		}
		want := slices.SortedFunc(slices.Values(es), CompareEntries)
		k := 1 + rng.IntN(n)
		selectBest(es, k)
		if es[k-1] != want[k-1] {
			t.Fatalf("n %d k %d: es[k-1] = %v, want %v", n, k, es[k-1], want[k-1])
		}
		got := slices.SortedFunc(slices.Values(es[:k]), CompareEntries)
		if !slices.Equal(got, want[:k]) {
			t.Fatalf("n %d k %d: best k = %v, want %v", n, k, got, want[:k])
		}
	}
}

// TestSortKeys checks the merge of sorted runs against a comparison sort: inputs of one to
// more runs than it merges, with keys repeated within and across runs, and a buffer kept
// from call to call that must never take over the input's memory.
func TestSortKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var buf []Key
	for round := range 300 {
		runs := 1 + rng.IntN(maxMergedRuns+4)
		var keys []Key
		for range runs {
			run := make([]Key, rng.IntN(50))
			for i := range run {
				run[i] = Key{CategoryID: rng.Int32N(4), ProductID: rng.Int64N(30)}
			}
			slices.SortFunc(run, compareKeys)
			keys = append(keys, run...)
		}
		want := slices.Clone(keys)
		slices.SortFunc(want, compareKeys)
		in := keys
		got, next := sortKeys(keys, buf)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d, %d runs: sortKeys = %v, want %v", round, runs, got, want)
		}
		if len(next) > 0 && len(in) > 0 && &next[:1][0] == &in[:1][0] {
			t.Fatalf("round %d: the buffer returned is the input's memory", round)
		}
		buf = next
		// The caller reuses its slice: the next call's input shares no memory with buf.
		clear(in)
	}
}

// lookup is TopLists.Update's totals for a map of totals.
func (t Totals) lookup(keys []Key, dst []int64) {
	for i, k := range keys {
		dst[i] = t[k]
	}
}
