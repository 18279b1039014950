package salesrank_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
)

// benchWindow is a window at the seed's scale: 1,000 categories of 11,300 products each
// (11.3 M keys) with Zipf totals (a category's best seller sells 23,000 a week, its
// 100th about 230, most of its tail 1 or 2), and minutes of 23,000 sales each, drawn with
// the same skew, that enter and leave it.
type benchWindow struct {
	counts  counting.Counts
	known   []int32
	minutes [][]salesrank.Key // a sale of one unit each
	in      int               // minutes[in-8 : in] (mod len) are in the window
}

const (
	benchCats     = 1000
	benchProducts = 11300
	benchMinute   = 23000
	benchInWindow = 8
)

var (
	benchOnce sync.Once
	bench     *benchWindow
)

func seedWindow(tb testing.TB) *benchWindow {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds a window of 11 M keys")
	}
	benchOnce.Do(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		w := &benchWindow{}
		var b counting.Batch
		for c := range int32(benchCats) {
			w.known = append(w.known, c)
			for r := range int64(benchProducts) {
				total := max(1, int64(23000/float64(r+1)*(0.9+0.2*rng.Float64())))
				w.counts.Push(&b, 0, c, product(c, r), total)
			}
		}
		w.counts.AddBatch(&b)
		z := rand.NewZipf(rng, 1.1, 1, benchProducts-1)
		w.minutes = make([][]salesrank.Key, 64)
		for i := range w.minutes {
			for range benchMinute {
				c := rng.Int32N(benchCats)
				w.minutes[i] = append(w.minutes[i], salesrank.Key{CategoryID: c, ProductID: product(c, int64(z.Uint64()))})
			}
		}
		for i := range benchInWindow {
			for _, k := range w.minutes[i] {
				w.counts.Add(k.CategoryID, k.ProductID, 1)
			}
		}
		w.in = benchInWindow
		bench = w
	})
	return bench
}

// product spreads a category's products over the id space, as real ids are.
func product(c int32, rank int64) int64 { return int64(c)*1_000_003 + rank*7919 }

// step moves the window one minute and returns the keys whose totals changed.
func (w *benchWindow) step(changed []salesrank.Key) []salesrank.Key {
	for _, k := range w.minutes[w.in%len(w.minutes)] {
		w.counts.Add(k.CategoryID, k.ProductID, 1)
		changed = append(changed, k)
	}
	for _, k := range w.minutes[(w.in-benchInWindow)%len(w.minutes)] {
		w.counts.Add(k.CategoryID, k.ProductID, -1)
		changed = append(changed, k)
	}
	w.in++
	return changed
}

// BenchmarkRankWindow ranks the seed-scale window from scratch, as every run did before
// TopLists: the cost an incremental update saves.
func BenchmarkRankWindow(b *testing.B) {
	w := seedWindow(b)
	for b.Loop() {
		salesrank.RankParts(w.counts.Shards(runtime.GOMAXPROCS(0)), w.known, salesrank.DefaultTop)
	}
}

// BenchmarkTopLists measures building the lists from scratch (the first run, a rebuild)
// and updating them after a 1-minute step (46,000 changed keys) or an hourly one (an hour
// entered and one left), with the rankings taken out for publishing, at the seed's scale.
func BenchmarkTopLists(b *testing.B) {
	w := seedWindow(b)
	b.Run("build", func(b *testing.B) {
		var l salesrank.TopLists
		for b.Loop() {
			l.Build(w.counts.Shards(runtime.GOMAXPROCS(0)), salesrank.DefaultTop)
			l.Rankings(w.known)
		}
	})
	// A 1-minute refresh; and 16 or 60 minutes at once, as after a pause, which is what
	// decides when building from scratch is cheaper (see window.trackedFraction).
	for _, minutes := range []int{1, 16, 60} {
		b.Run(fmt.Sprintf("update/%dmin", minutes), func(b *testing.B) {
			var l salesrank.TopLists
			l.Build(w.counts.Shards(runtime.GOMAXPROCS(0)), salesrank.DefaultTop)
			var changed []salesrank.Key
			rescanned := 0
			for b.Loop() {
				b.StopTimer()
				changed = changed[:0]
				for range minutes {
					changed = w.step(changed)
				}
				b.StartTimer()
				rescanned += l.Update(w.counts.Shards(runtime.GOMAXPROCS(0)), changed, w.counts.GetBatch)
				l.Rankings(w.known)
			}
			b.ReportMetric(float64(len(changed)), "changed/op")
			b.ReportMetric(float64(rescanned)/float64(b.N), "rescans/op")
		})
	}
	// An hour at once as a window tracks it: the keys of the hour that entered and of the
	// hour that left, each a sorted run of distinct keys (partial sums are sorted).
	b.Run("update/60min-runs", func(b *testing.B) {
		var l salesrank.TopLists
		l.Build(w.counts.Shards(runtime.GOMAXPROCS(0)), salesrank.DefaultTop)
		var changed, entered, left []salesrank.Key
		rescanned := 0
		for b.Loop() {
			b.StopTimer()
			entered, left = entered[:0], left[:0]
			for range 60 {
				changed = w.step(changed[:0])
				half := len(changed) / 2 // step appends the minute that entered, then the one that left
				entered, left = append(entered, changed[:half]...), append(left, changed[half:]...)
			}
			changed = append(sortedKeys(entered), sortedKeys(left)...)
			b.StartTimer()
			rescanned += l.Update(w.counts.Shards(runtime.GOMAXPROCS(0)), changed, w.counts.GetBatch)
			l.Rankings(w.known)
		}
		b.ReportMetric(float64(len(changed)), "changed/op")
		b.ReportMetric(float64(rescanned)/float64(b.N), "rescans/op")
	})
}

// sortedKeys sorts keys and drops repeats, as a partial's entries come.
func sortedKeys(keys []salesrank.Key) []salesrank.Key {
	slices.SortFunc(keys, func(a, b salesrank.Key) int {
		return cmp.Or(cmp.Compare(a.CategoryID, b.CategoryID), cmp.Compare(a.ProductID, b.ProductID))
	})
	return slices.Compact(keys)
}
