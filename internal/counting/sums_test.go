package counting

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/partial"
)

// bucketKey is a key of one bucket, for the brute-force sums the tests compare with.
type bucketKey struct {
	bucket uint32
	key    salesrank.Key
}

// TestCountPerBucket counts logs per bucket and checks the Sums against a brute-force map:
// lines in time order and shuffled, cut into many small blocks (so that a bucket's keys
// come in many runs, which Entries merges), over several objects, one of them truncated,
// with one or more workers, and with buckets far apart in time (more than a flush tells
// apart by counting).
func TestCountPerBucket(t *testing.T) {
	const bucket = time.Hour
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		shuffle bool
		spread  int64 // hours the sales spread over
	}{
		{"time order", false, 7 * 24},
		{"shuffled", true, 7 * 24},
		{"far apart", true, 2 * denseBuckets},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, uint64(tc.spread)))
			want := map[bucketKey]int64{}
			var lines []string
			for i := range 40_000 {
				at := start.Unix() + (int64(i)*tc.spread*3600)/40_000 // in time order
				if tc.spread > 7*24 && i%2 == 0 {
					at = start.Unix() + rng.Int64N(tc.spread)*3600
				}
				k := salesrank.Key{CategoryID: rng.Int32N(30), ProductID: rng.Int64N(300)}
				if i%5000 == 0 {
					k = salesrank.Key{CategoryID: 1<<31 - 1, ProductID: 1<<62 + int64(i)} // ids at their limits
				}
				q := 1 + rng.Int64N(9)
				lines = append(lines, fmt.Sprintf("%d\t%d\t%d\t%d\t9.99\t1\t2\n", at, k.ProductID, k.CategoryID, q))
				want[bucketKey{uint32(at / 3600), k}] += q
			}
			if tc.shuffle {
				rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
			}
			third := len(lines) / 3
			// d.tsv.gz is cut short: its first blocks are counted before the end of its
			// stream turns out missing, and none of them may reach the sums.
			broken := gz(t, strings.Join(lines[:third], ""))
			objs := map[string][]byte{
				"a.tsv":    []byte(strings.Join(lines[:third], "")),
				"b.tsv.gz": gz(t, strings.Join(lines[third:2*third], "")),
				"c.tsv":    []byte(strings.Join(lines[2*third:], "")),
				"d.tsv.gz": broken[:len(broken)*3/4],
			}
			spec := Spec{Window: salesrank.Window{Start: start, End: start.Add(time.Duration(tc.spread+1) * time.Hour)}, Bucket: bucket}
			for _, workers := range []int{1, 3} {
				l := &Local{Workers: workers, BlockSize: 16 << 10}
				res, err := l.Count(context.Background(), newBucket(t, objs), objectsOf(objs), spec)
				if err != nil {
					t.Fatal(err)
				}
				if res.Totals != nil {
					t.Errorf("workers=%d: Totals is set for a count with buckets", workers)
				}
				if len(res.Failed) != 1 || res.Failed[0].Key != "d.tsv.gz" {
					t.Errorf("workers=%d: failed objects %v, want d.tsv.gz alone", workers, res.Failed)
				}
				checkSums(t, fmt.Sprintf("workers=%d", workers), res.Sums, want)
				wantCats := slices.Sorted(maps.Keys(categoriesOf(want)))
				if !slices.Equal(res.Categories, wantCats) {
					t.Errorf("workers=%d: categories %v, want %v", workers, res.Categories, wantCats)
				}
			}
		})
	}
}

// TestSumsOf checks that SumsOf gives a table's counts per bucket.
func TestSumsOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var c Counts
	want := map[bucketKey]int64{}
	for range 20_000 {
		k := bucketKey{rng.Uint32N(50) * 977, salesrank.Key{CategoryID: rng.Int32N(10), ProductID: rng.Int64N(100)}}
		units := 1 + rng.Int64N(1000)
		c.AddAt(k.bucket, k.key.CategoryID, k.key.ProductID, units)
		want[k] += units
	}
	checkSums(t, "SumsOf", SumsOf(&c), want)
	if got := SumsOf(&Counts{}); len(got.Buckets()) != 0 {
		t.Errorf("SumsOf an empty table holds %d buckets", len(got.Buckets()))
	}
}

// checkSums compares Sums with brute-force sums: buckets in order, each bucket's runs
// sorted, their sum the brute force's, and Entries merging them into every key once,
// sorted as partial.Encode writes them, after what the buffer already held.
func checkSums(t *testing.T, name string, s *Sums, want map[bucketKey]int64) {
	t.Helper()
	byKey := func(x, y partial.Entry) int {
		return cmp.Or(cmp.Compare(x.CategoryID, y.CategoryID), cmp.Compare(x.ProductID, y.ProductID))
	}
	fromRuns, fromEntries := map[bucketKey]int64{}, map[bucketKey]int64{}
	buf := []partial.Entry{{CategoryID: -1}} // Entries must append after it, not overwrite it
	for i, b := range s.Buckets() {
		for _, run := range s.Runs(i) {
			if !slices.IsSortedFunc(run, byKey) {
				t.Errorf("%s: a run of bucket %d is not sorted", name, b)
			}
			for _, e := range run {
				fromRuns[bucketKey{b, salesrank.Key{CategoryID: e.CategoryID, ProductID: e.ProductID}}] += e.Units
			}
		}
		for range s.All(i) {
			break // All must stop when asked
		}
		buf = s.Entries(buf[:1], i)
		if buf[0].CategoryID != -1 {
			t.Fatalf("%s: Entries overwrote what dst held", name)
		}
		entries := buf[1:]
		if !slices.IsSortedFunc(entries, byKey) {
			t.Errorf("%s: the entries of bucket %d are not sorted", name, b)
		}
		for _, e := range entries {
			k := bucketKey{b, salesrank.Key{CategoryID: e.CategoryID, ProductID: e.ProductID}}
			if _, dup := fromEntries[k]; dup {
				t.Fatalf("%s: Entries gives %v twice", name, k)
			}
			fromEntries[k] = e.Units
		}
	}
	if !slices.IsSorted(s.Buckets()) {
		t.Errorf("%s: buckets out of order: %v", name, s.Buckets())
	}
	if !maps.Equal(fromRuns, want) {
		t.Errorf("%s: the runs sum to %d keys that differ from the %d brute-force sums", name, len(fromRuns), len(want))
	}
	if !maps.Equal(fromEntries, want) {
		t.Errorf("%s: Entries gives %d keys that differ from the %d brute-force sums", name, len(fromEntries), len(want))
	}
}

func categoriesOf(m map[bucketKey]int64) map[int32]struct{} {
	out := map[int32]struct{}{}
	for k := range m {
		out[k.key.CategoryID] = struct{}{}
	}
	return out
}

// BenchmarkMergeRuns merges an hourly step's bucket at the seed's scale as the encoder and
// the window read it: 15 runs of 90 k Zipf-skewed sales each.
func BenchmarkMergeRuns(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rng, 1.1, 1, 10_000_000)
	r := runs{}
	var block Counts
	var mem slab
	for range 15 {
		for range 90_000 {
			p := int64(zipf.Uint64())
			block.AddAt(7, int32(p%1000), p, 1)
		}
		r.flush(&block, denseBuckets, &mem)
	}
	s := r.sums()
	for b.Loop() {
		var units int64
		for e := range s.All(0) {
			units += e.Units
		}
		if units != 15*90_000 {
			b.Fatalf("merged %d units, want %d", units, 15*90_000)
		}
	}
}

// TestSlab checks that a slab's pieces are zero, exactly as long as asked (so that an
// append to one cannot reach the next) and apart, across the slices it makes, a piece
// larger than any slice included.
func TestSlab(t *testing.T) {
	var mem slab
	var pieces [][]partial.Entry
	for i, n := range []int{1, 1000, 80_000, 90_000, 3, 0, 2_000_000, 500_000, 70_000} {
		p := mem.take(n)
		if len(p) != n || cap(p) != n {
			t.Fatalf("take(%d): len %d, cap %d", n, len(p), cap(p))
		}
		for j := range p {
			if p[j] != (partial.Entry{}) {
				t.Fatalf("take(%d): entry %d is not zero", n, j)
			}
			p[j] = partial.Entry{CategoryID: int32(i), ProductID: int64(j)}
		}
		pieces = append(pieces, p)
	}
	for i, p := range pieces {
		for j, e := range p {
			if e != (partial.Entry{CategoryID: int32(i), ProductID: int64(j)}) {
				t.Fatalf("piece %d, entry %d was overwritten: %+v", i, j, e)
			}
		}
	}
	if mem.pages < 2_000_000*24/hugePage {
		t.Errorf("made %d huge pages, fewer than the entries taken", mem.pages)
	}
}

// TestEstimateKeys checks the distinct-key estimate against an exact count: keys repeated
// across runs and buckets, buckets left out by the filter, sizes from none to 300 k keys
// (where the bitmap is 2^19 bits and nearly full, the hardest case below its cap), and an
// estimate never above the number of entries.
func TestEstimateKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 1, 7, 1000, 50_000, 300_000} {
		var c Counts
		distinct := map[salesrank.Key]bool{}
		entries := 0
		for range n {
			k := salesrank.Key{CategoryID: rng.Int32N(1000), ProductID: rng.Int64N(1 << 40)}
			if len(distinct) > 0 && rng.IntN(3) == 0 { // a key sold in more than one hour
				for d := range distinct {
					k = d
					break
				}
			}
			bucket := rng.Uint32N(8)
			if bucket < 6 { // buckets 6 and 7 are filtered out below
				distinct[k] = true
				entries++ // at most one entry per key and bucket: an upper bound
			}
			c.AddAt(bucket, k.CategoryID, k.ProductID, 1)
		}
		s := SumsOf(&c)
		got := s.EstimateKeys(func(b uint32) bool { return b < 6 })
		want := len(distinct)
		if d := got - want; d*100 < -want-100 || d*100 > want+100 { // 1%, or one key
			t.Errorf("%d keys added: estimate %d, want %d within 1%%", n, got, want)
		}
		if got > entries {
			t.Errorf("%d keys added: estimate %d above the %d entries", n, got, entries)
		}
	}
	if got := (&Sums{}).EstimateKeys(func(uint32) bool { return true }); got != 0 {
		t.Errorf("empty Sums: estimate %d, want 0", got)
	}
}
