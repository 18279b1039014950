package salesrank

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestPastRanksMatchStandings checks PastRanks against the Standings they come from: every
// product's rank in every category, and products and categories that sold nothing. Large
// categories take the radix sort, and some rounds add a product id of 2^32 or more after
// smaller ones, so the ids widen mid-build.
func TestPastRanksMatchStandings(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	w := WindowEnding(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	for round := range 60 {
		totals := Totals{}
		for range 1 + rng.IntN(4) {
			cat := int32(rng.IntN(20))
			for range rng.IntN(2000) {
				p := []int64{rng.Int64N(1000), rng.Int64N(math.MaxUint32), math.MaxUint32 - rng.Int64N(3), 1 << 16}[rng.IntN(4)]
				totals[Key{CategoryID: cat, ProductID: p}] = 1 + rng.Int64N(5)
			}
		}
		if round%3 == 0 {
			totals[Key{CategoryID: 30, ProductID: []int64{1 << 32, MaxProductID}[rng.IntN(2)]}] = 1
		}
		s := NewStandings(w, split(totals, 2))
		s.SnapshotID = 9
		p := s.Past()
		if p.SnapshotID != 9 || p.Window != w || p.Len() != s.Len() {
			t.Fatalf("round %d: past ranks of snapshot %d at %v with %d ranks, want 9, %v, %d", round, p.SnapshotID, p.Window.End, p.Len(), w.End, s.Len())
		}
		for _, c := range s.Categories() {
			if got := p.ProductsRanked(c.CategoryID); got != c.ProductsRanked {
				t.Fatalf("round %d: category %d ranked %d, want %d", round, c.CategoryID, got, c.ProductsRanked)
			}
		}
		for _, c := range []int32{-1, 0, 3, 19, 30, 31} {
			for _, product := range []int64{-1, 0, 1 << 16, math.MaxUint32, 1 << 32, MaxProductID, 12345678901} {
				want, wantOK := s.Rank(c, product)
				if got, ok := p.Rank(c, product); got != want || ok != wantOK {
					t.Fatalf("round %d: Rank(%d, %d) = %d, %v; want %d, %v", round, c, product, got, ok, want, wantOK)
				}
			}
		}
		for k := range totals {
			want, _ := s.Rank(k.CategoryID, k.ProductID)
			if got, ok := p.Rank(k.CategoryID, k.ProductID); !ok || got != want {
				t.Fatalf("round %d: product %d of category %d ranks %d (%v), want %d", round, k.ProductID, k.CategoryID, got, ok, want)
			}
		}
	}
	var none *PastRanks
	if _, ok := none.Rank(1, 1); ok || none.ProductsRanked(1) != 0 || none.Len() != 0 {
		t.Error("nil past ranks rank something")
	}
}

func TestPastRanksBuilderRefusesDisorder(t *testing.T) {
	var b PastRanksBuilder
	if err := b.Add(3, []Ranked{{1, 5}, {2, 5}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(3, []Ranked{{1, 1}}); err == nil {
		t.Error("the same category twice was taken")
	}
	if err := b.Add(4, []Ranked{{2, 5}, {1, 5}}); err == nil {
		t.Error("a tie out of product order was taken")
	}
	if err := b.Add(5, []Ranked{{1, 4}, {2, 5}}); err == nil {
		t.Error("a rising total was taken")
	}
	if p := b.PastRanks(1, Window{}); p.Len() != 2 {
		t.Errorf("%d ranks kept, want the first category's 2", p.Len())
	}
}

// BenchmarkLoadPastRanks decodes full ranks into PastRanks as a replica loads the set of a
// day before (SALESRANK_BENCH_KEYS as for BenchmarkNewStandings), to compare with
// BenchmarkLoadStandings.
func BenchmarkLoadPastRanks(b *testing.B) {
	w, n, cats, blobs := benchStored()
	b.ResetTimer()
	for b.Loop() {
		var pb PastRanksBuilder
		pb.Grow(n)
		var buf []Ranked
		for i, data := range blobs {
			var err error
			if buf, err = DecodeRanked(buf[:0], data); err != nil {
				b.Fatal(err)
			}
			if err := pb.Add(cats[i], buf); err != nil {
				b.Fatal(err)
			}
		}
		if got := pb.PastRanks(1, w); got.Len() != n {
			b.Fatalf("%d keys loaded, want %d", got.Len(), n)
		}
	}
}
