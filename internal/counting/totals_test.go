package counting

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/salesrank/salesrank"
)

// TestTotals sums random per-bucket counts, split into several runs a bucket as counting
// blocks makes them, and checks every part Totals gives against a sum kept in a map: each
// key of the accepted buckets once, with its total, in exactly one part, whatever the
// number of parts; on ids at their extremes, on one category that holds every key, and on
// categories whose entries are all distinct keys (the table must grow as it fills).
func TestTotals(t *testing.T) {
	cats := []int32{0, 1, 2, 7, 1000, math.MaxInt32}
	products := []int64{0, 1, 2, 3, -1, math.MaxInt64, math.MinInt64, 1 << 40, 1 << 50, 2 << 50}
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 3))
		buckets := 1 + rng.IntN(30)
		var key func() (int32, int64)
		switch seed % 4 {
		case 0: // few ids, at their extremes: many entries a key
			key = func() (int32, int64) { return cats[rng.IntN(len(cats))], products[rng.IntN(len(products))] }
		case 1: // one category
			key = func() (int32, int64) { return 5, rng.Int64N(5000) }
		case 2: // every entry its own key, across categories
			next := int64(0)
			key = func() (int32, int64) { next++; return int32(rng.IntN(3)), next << 20 }
		default:
			key = func() (int32, int64) { return int32(rng.IntN(50)), rng.Int64N(300) }
		}
		r := runs{}
		want := map[uint32]map[salesrank.Key]int64{} // bucket → key → units
		for range 1 + rng.IntN(6) {                  // blocks, each flushed into runs
			var c Counts
			for range rng.IntN(4000) {
				b := uint32(rng.IntN(buckets))
				cat, p := key()
				u := 1 + rng.Int64N(1<<20)
				c.AddAt(b, cat, p, u)
				if want[b] == nil {
					want[b] = map[salesrank.Key]int64{}
				}
				want[b][salesrank.Key{CategoryID: cat, ProductID: p}] += u
			}
			r.flush(&c, 1<<20, nil)
		}
		sums := r.sums()
		lo, hi := uint32(rng.IntN(buckets)), uint32(rng.IntN(buckets+1))
		in := func(b uint32) bool { return b >= lo && b < hi }
		wantTotals := map[salesrank.Key]int64{}
		for b, keys := range want {
			if in(b) {
				for k, u := range keys {
					wantTotals[k] += u
				}
			}
		}
		for _, n := range []int{1, 2, 3, 8} {
			parts := sums.Totals(in, n)
			if len(parts) > n {
				t.Fatalf("seed %d: %d parts, asked for %d", seed, len(parts), n)
			}
			if seed%4 == 3 && n == 8 && len(wantTotals) > 1000 && len(parts) < 4 {
				t.Fatalf("seed %d: %d parts of 50 categories, asked for 8", seed, len(parts))
			}
			for reading := range 2 {
				// The second reading reads every part at once, as RankParts does.
				yielded := make([][]partUnits, len(parts))
				var wg sync.WaitGroup
				for i, part := range parts {
					read := func() {
						for k, u := range part {
							yielded[i] = append(yielded[i], partUnits{k, u})
						}
					}
					if reading == 0 {
						read()
					} else {
						wg.Go(read)
					}
				}
				wg.Wait()
				got := map[salesrank.Key]int64{}
				partOf := map[int32]int{}
				for i, ks := range yielded {
					for _, ku := range ks {
						k := ku.key
						if _, dup := got[k]; dup {
							t.Fatalf("seed %d n %d: key %v yielded twice", seed, n, k)
						}
						if j, seen := partOf[k.CategoryID]; seen && j != i {
							t.Fatalf("seed %d n %d: category %d in parts %d and %d", seed, n, k.CategoryID, j, i)
						}
						partOf[k.CategoryID] = i
						got[k] = ku.units
					}
				}
				if diff := diffTotals(got, wantTotals); diff != "" {
					t.Fatalf("seed %d n %d reading %d, buckets [%d, %d): %s", seed, n, reading, lo, hi, diff)
				}
			}
		}
	}
}

type partUnits struct {
	key   salesrank.Key
	units int64
}

func diffTotals(got, want map[salesrank.Key]int64) string {
	for k, u := range want {
		if got[k] != u {
			return fmt.Sprintf("key %v: total %d, want %d", k, got[k], u)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d keys, want %d", len(got), len(want))
	}
	return ""
}

// TestCategorySumsGrows fills a table sized for fewer entries than it gets keys (a caller's
// estimate can be short): it must grow and keep every key.
func TestCategorySumsGrows(t *testing.T) {
	var s categorySums
	s.reset(4)
	want := map[int64]int64{}
	for i := range int64(10_000) {
		p := i * 7919 << 32
		s.add(p, i+1)
		s.add(p, 1)
		want[p] = i + 2
	}
	if len(s.used) != len(want) || len(s.slots) < 2*len(want) {
		t.Fatalf("%d keys in %d slots, want %d keys at most half full", len(s.used), len(s.slots), len(want))
	}
	for _, i := range s.used {
		if e := s.slots[i]; want[e.product] != e.units {
			t.Fatalf("product %d: %d units, want %d", e.product, e.units, want[e.product])
		}
		delete(want, s.slots[i].product)
	}
	if len(want) != 0 {
		t.Fatalf("%d keys lost", len(want))
	}

	// Generations run out after 2^32 categories: the table must start again empty.
	s.cur = math.MaxUint32
	s.reset(4)
	s.add(1, 5)
	if len(s.used) != 1 || s.slots[s.used[0]] != (productUnits{1, 5}) {
		t.Fatalf("after the generations ran out: %d keys, first %+v; want product 1 with 5 units alone", len(s.used), s.slots[s.used[0]])
	}
	n := 0
	for i := range s.slots {
		if s.gen[i] == s.cur {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("after the generations ran out: %d slots in use, want 1", n)
	}
}
