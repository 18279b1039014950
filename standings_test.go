package salesrank

import (
	"cmp"
	"iter"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

// bruteRanks ranks totals the obvious way: per category, every positive key, sorted.
func bruteRanks(totals Totals) map[int32][]Ranked {
	out := map[int32][]Ranked{}
	for k, v := range totals {
		if v > 0 {
			out[k.CategoryID] = append(out[k.CategoryID], Ranked{ProductID: k.ProductID, TotalSold: v})
		}
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b Ranked) int {
			return cmp.Or(cmp.Compare(b.TotalSold, a.TotalSold), cmp.Compare(a.ProductID, b.ProductID))
		})
	}
	return out
}

// randomTotals makes totals with ties, zeros, negative leftovers, products in several
// categories and ids and totals at their limits.
func randomTotals(rng *rand.Rand, n int) Totals {
	products := []int64{0, 1, 2, MaxProductID, 1 << 40, 255, 256, 65535, 65536}
	cats := []int32{0, 1, 7, 300, MaxCategoryID}
	t := Totals{}
	for range n {
		p := rng.Int64N(50)
		if rng.IntN(4) == 0 {
			p = products[rng.IntN(len(products))]
		}
		units := []int64{1, 1, 2, 3, 0, -1, 1 << 62}[rng.IntN(7)]
		t[Key{CategoryID: cats[rng.IntN(len(cats))], ProductID: p}] = units
	}
	return t
}

// split shards totals into parts that share no key, as a window's table does.
func split(t Totals, n int) []iter.Seq2[Key, int64] {
	shards := make([]Totals, n)
	for i := range shards {
		shards[i] = Totals{}
	}
	for k, v := range t {
		shards[int(uint64(k.ProductID)%uint64(n))][k] = v
	}
	parts := make([]iter.Seq2[Key, int64], n)
	for i, s := range shards {
		parts[i] = maps.All(s)
	}
	return parts
}

func TestStandingsMatchBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 20))
	w := WindowEnding(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	var spare *Standings // the last round's, whose memory a third of the rounds reuse
	for round := range 200 {
		totals := randomTotals(rng, rng.IntN(300))
		if round%2 == 0 {
			// Ids under 2^32 index by 4-byte keys, others by 8: half the rounds each.
			maps.DeleteFunc(totals, func(k Key, _ int64) bool { return k.ProductID > math.MaxUint32 })
		}
		want := bruteRanks(totals)
		var s *Standings
		if round%3 == 0 {
			s = NewStandingsReusing(w, split(totals, 1+rng.IntN(4)), spare)
		} else {
			s = NewStandings(w, split(totals, 1+rng.IntN(4)))
		}
		check := func(s *Standings, how string) {
			t.Helper()
			n := 0
			for _, c := range s.Categories() {
				if !slices.Equal(s.Ranked(c.CategoryID), want[c.CategoryID]) || c.ProductsRanked != len(want[c.CategoryID]) {
					t.Fatalf("round %d, %s: category %d ranks\n%v\nwant\n%v", round, how, c.CategoryID, s.Ranked(c.CategoryID), want[c.CategoryID])
				}
				n += c.ProductsRanked
			}
			if len(s.Categories()) != len(want) || s.Len() != n {
				t.Fatalf("round %d, %s: %d categories of %d products, want %d categories", round, how, len(s.Categories()), s.Len(), len(want))
			}
			// Every product's standings, and a product that sold nothing.
			products := map[int64]bool{-5: true, 12345: true}
			for k := range totals {
				products[k.ProductID] = true
			}
			for p := range products {
				var wantSt []Standing
				for _, c := range slices.Sorted(maps.Keys(want)) {
					for i, r := range want[c] {
						if r.ProductID == p {
							wantSt = append(wantSt, Standing{CategoryID: c, Rank: i + 1, TotalSold: r.TotalSold, ProductsRanked: len(want[c])})
						}
					}
				}
				if got := s.Product(p); !slices.Equal(got, wantSt) {
					t.Fatalf("round %d, %s: product %d stands %v, want %v", round, how, p, got, wantSt)
				}
				for _, c := range []int32{-1, 0, 1, 7, 300, MaxCategoryID} {
					want, wantOK := 0, false
					for _, st := range wantSt {
						if st.CategoryID == c {
							want, wantOK = st.Rank, true
						}
					}
					if got, ok := s.Rank(c, p); got != want || ok != wantOK {
						t.Fatalf("round %d, %s: Rank(%d, %d) = %d, %v; want %d, %v", round, how, c, p, got, ok, want, wantOK)
					}
				}
			}
		}
		check(s, "built")

		// Through the encoding and the builder, as a store reads them back.
		var b StandingsBuilder
		for _, c := range s.Categories() {
			data := AppendRanked(nil, s.Ranked(c.CategoryID))
			ranked, err := DecodeRanked(nil, data)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Add(c.CategoryID, ranked); err != nil {
				t.Fatal(err)
			}
		}
		back := b.Standings(7, w)
		if back.SnapshotID != 7 || back.Window != w {
			t.Fatalf("builder lost the id or window: %d %v", back.SnapshotID, back.Window)
		}
		check(back, "decoded")
		spare = s
	}
}

func TestStandingsBuilderRefusesDisorder(t *testing.T) {
	var b StandingsBuilder
	if err := b.Add(3, []Ranked{{1, 5}, {2, 5}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(3, []Ranked{{1, 1}}); err == nil {
		t.Error("the same category twice was taken")
	}
	if err := b.Add(2, []Ranked{{1, 1}}); err == nil {
		t.Error("a category out of order was taken")
	}
	if err := b.Add(4, []Ranked{{2, 5}, {1, 5}}); err == nil {
		t.Error("a tie out of product order was taken")
	}
	if err := b.Add(5, []Ranked{{1, 4}, {2, 5}}); err == nil {
		t.Error("a rising total was taken")
	}
}

func TestMoversMatchBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w := WindowEnding(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	for round := range 300 {
		before, now := randomTotals(rng, rng.IntN(200)), randomTotals(rng, rng.IntN(200))
		prevRanks, nowRanks := bruteRanks(before), bruteRanks(now)
		prev := NewStandings(WindowEnding(w.End.Add(-24*time.Hour)), split(before, 2)).Past()
		top := 1 + rng.IntN(12)
		for c, ranked := range nowRanks {
			var list []Entry
			for _, r := range ranked[:min(top, len(ranked))] {
				list = append(list, Entry{ProductID: r.ProductID, TotalSold: r.TotalSold})
			}
			// Brute force: every list entry whose previous rank (or the previous count + 1)
			// is worse, sorted by the gain as a float, then the rank.
			type mv struct {
				Mover
				gain float64
			}
			var want []mv
			for i, e := range list {
				was := len(prevRanks[c]) + 1
				found := 0
				for j, r := range prevRanks[c] {
					if r.ProductID == e.ProductID {
						was, found = j+1, j+1
					}
				}
				if was > i+1 {
					want = append(want, mv{Mover{e.ProductID, i + 1, found, e.TotalSold}, float64(was) / float64(i+1)})
				}
			}
			slices.SortStableFunc(want, func(a, b mv) int { return cmp.Or(cmp.Compare(b.gain, a.gain), cmp.Compare(a.Rank, b.Rank)) })
			var wantM []Mover
			for _, m := range want {
				wantM = append(wantM, m.Mover)
			}
			if got := Movers(c, list, prev); !slices.Equal(got, wantM) {
				t.Fatalf("round %d category %d: movers %v, want %v", round, c, got, wantM)
			}
		}
	}
	if got := Movers(1, []Entry{{ProductID: 1, TotalSold: 1}}, nil); got != nil {
		t.Errorf("with no full ranks a day before, movers are %v", got)
	}
}

func TestDecodeRankedRefusesBadData(t *testing.T) {
	good := AppendRanked(nil, []Ranked{{5, 10}, {2, 3}, {9, 3}})
	for name, data := range map[string][]byte{
		"empty":         {},
		"short":         good[:len(good)-1],
		"extra":         append(append([]byte{}, good...), 0),
		"count too big": {0xff, 0x01, 1, 1},
		"zero total":    AppendRanked(nil, []Ranked{{1, 0}}),
		"tie disorder":  {2, 9, 3, 2, 0},
		"huge product":  {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1},
	} {
		if _, err := DecodeRanked(nil, data); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
	if got, err := DecodeRanked(nil, good); err != nil || len(got) != 3 || got[2] != (Ranked{9, 3}) {
		t.Errorf("good data: %v, %v", got, err)
	}
}

// FuzzDecodeRanked checks that whatever DecodeRanked accepts is in rank order and survives
// an encoding round trip, and that nothing makes it panic. (Varints may come overlong, so
// the bytes need not come back the same.)
func FuzzDecodeRanked(f *testing.F) {
	f.Add(AppendRanked(nil, []Ranked{{5, 10}, {2, 3}, {9, 3}}))
	f.Add(AppendRanked(nil, []Ranked{{MaxProductID, MaxProductID}}))
	f.Add([]byte{0})
	f.Add([]byte{2, 9, 3, 2, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeRanked(nil, data)
		if err != nil {
			return
		}
		var b StandingsBuilder
		if err := b.Add(1, got); err != nil {
			t.Fatalf("decoded entries the builder refuses: %v", err)
		}
		again, err := DecodeRanked(nil, AppendRanked(nil, got))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("round trip of %v: %v, %v", got, again, err)
		}
	})
}

// BenchmarkNewStandings ranks a window's keys into full ranks (see benchParts).
func BenchmarkNewStandings(b *testing.B) {
	parts, n := benchParts()
	w := WindowEnding(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	b.ResetTimer()
	for b.Loop() {
		s := NewStandings(w, parts)
		if s.Len() != n {
			b.Fatalf("%d keys ranked, want %d", s.Len(), n)
		}
	}
}

// BenchmarkLoadStandings decodes and indexes full ranks as a replica loads them, from the
// encoding a store keeps (SALESRANK_BENCH_KEYS as for BenchmarkNewStandings).
func BenchmarkLoadStandings(b *testing.B) {
	w, n, cats, blobs := benchStored()
	size := 0
	for _, data := range blobs {
		size += len(data)
	}
	b.ResetTimer()
	for b.Loop() {
		var sb StandingsBuilder
		sb.Grow(n)
		var buf []Ranked
		for i, data := range blobs {
			var err error
			if buf, err = DecodeRanked(buf[:0], data); err != nil {
				b.Fatal(err)
			}
			if err := sb.Add(cats[i], buf); err != nil {
				b.Fatal(err)
			}
		}
		if got := sb.Standings(1, w); got.Len() != n {
			b.Fatalf("%d keys loaded, want %d", got.Len(), n)
		}
	}
	b.ReportMetric(float64(size)/float64(n), "stored-B/key")
}

// benchStored makes full ranks of benchParts' keys and encodes them as a store keeps them:
// their window, how many products they rank, and each category with its encoding.
func benchStored() (w Window, n int, cats []int32, blobs [][]byte) {
	parts, n := benchParts()
	w = WindowEnding(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	s := NewStandings(w, parts)
	for _, c := range s.Categories() {
		cats = append(cats, c.CategoryID)
		blobs = append(blobs, AppendRanked(nil, s.Ranked(c.CategoryID)))
	}
	return w, n, cats, blobs
}

// benchParts makes keys spread like the seed's window over 1,000 categories, as shards
// of a window's table: SALESRANK_BENCH_KEYS=11000000 is the seed's scale.
func benchParts() ([]iter.Seq2[Key, int64], int) {
	n := 1_100_000
	if v, err := strconv.Atoi(os.Getenv("SALESRANK_BENCH_KEYS")); err == nil && v > 0 {
		n = v
	}
	rng := rand.New(rand.NewPCG(1, 1))
	totals := make(Totals, n)
	for len(totals) < n {
		k := Key{CategoryID: int32(rng.IntN(1000)), ProductID: rng.Int64N(10_000_000)}
		totals[k] = 1 + int64(rng.ExpFloat64()*20)
	}
	// The window's table iterates its shards as flat arrays; so do these parts, lest the
	// benchmark time Go's map iteration rather than the ranking.
	type kv struct {
		k Key
		v int64
	}
	shards := make([][]kv, runtime.GOMAXPROCS(0))
	for k, v := range totals {
		i := int(uint64(k.ProductID) % uint64(len(shards)))
		shards[i] = append(shards[i], kv{k, v})
	}
	parts := make([]iter.Seq2[Key, int64], len(shards))
	for i, sh := range shards {
		parts[i] = func(yield func(Key, int64) bool) {
			for _, e := range sh {
				if !yield(e.k, e.v) {
					return
				}
			}
		}
	}
	return parts, n
}

// TestSortRankedMatchesComparisonSort checks the radix sort of large categories against a
// comparison sort: ties, ids and totals at their limits, bytes that vary in only a few
// entries.
func TestSortRankedMatchesComparisonSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var tmp []Ranked
	for round := range 50 {
		n := 256 + rng.IntN(3000)
		seen := map[int64]bool{}
		var a []Ranked
		for len(a) < n {
			p := []int64{rng.Int64N(1000), rng.Int64(), MaxProductID - rng.Int64N(3), 1<<32 + rng.Int64N(4)}[rng.IntN(4)]
			if seen[p] {
				continue
			}
			seen[p] = true
			total := []int64{1, 2, 1 + rng.Int64N(300), MaxProductID, 1 << 40, 255, 256}[rng.IntN(7)]
			a = append(a, Ranked{ProductID: p, TotalSold: total})
		}
		want := slices.Clone(a)
		slices.SortFunc(want, compareRanked)
		tmp = sortRanked(a, tmp)
		if !slices.Equal(a, want) {
			t.Fatalf("round %d: radix order differs from the comparison sort", round)
		}
	}
}
