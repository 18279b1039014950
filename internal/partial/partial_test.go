package partial

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
)

func decodeAll(t testing.TB, data []byte) []Entry {
	t.Helper()
	var out []Entry
	bucket, err := Decode(data, func(e Entry) { out = append(out, e) })
	if err != nil {
		t.Fatal(err)
	}
	if bucket != time.Hour {
		t.Fatalf("bucket = %v, want 1h", bucket)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	tests := [][]Entry{
		nil,
		{{CategoryID: 0, ProductID: 0, Units: 1}},
		{{CategoryID: salesrank.MaxCategoryID, ProductID: salesrank.MaxProductID, Units: 1<<63 - 1}, {CategoryID: 0, ProductID: salesrank.MaxProductID, Units: 2}},
		{{CategoryID: 5, ProductID: 9, Units: 3}, {CategoryID: 5, ProductID: 2, Units: 1}, {CategoryID: 1, ProductID: 9, Units: 7}},
	}
	rng := rand.New(rand.NewPCG(1, 1))
	var big []Entry
	seen := map[[2]int64]bool{}
	for len(big) < 50000 {
		e := Entry{CategoryID: rng.Int32N(1000), ProductID: rng.Int64N(10_000_000), Units: 1 + rng.Int64N(100)}
		if !seen[[2]int64{int64(e.CategoryID), e.ProductID}] {
			seen[[2]int64{int64(e.CategoryID), e.ProductID}] = true
			big = append(big, e)
		}
	}
	tests = append(tests, big)
	for _, entries := range tests {
		want := slices.Clone(entries)
		data, err := Encode(nil, time.Hour, entries)
		if err != nil {
			t.Fatal(err)
		}
		got := decodeAll(t, data)
		slices.SortFunc(want, func(a, b Entry) int {
			if a.CategoryID != b.CategoryID {
				return int(a.CategoryID - b.CategoryID)
			}
			if a.ProductID < b.ProductID {
				return -1
			}
			return 1
		})
		if !slices.Equal(got, want) {
			t.Fatalf("round trip of %d entries differs", len(want))
		}
		if n, _, err := Len(data); err != nil || n != len(want) {
			t.Errorf("Len = %d, %v; want %d", n, err, len(want))
		}
		if len(want) == 50000 {
			t.Logf("50,000 entries over 1,000 categories: %d bytes, %.1f bytes/entry", len(data), float64(len(data))/50000)
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, entries := range [][]Entry{
		{{CategoryID: 1, ProductID: 1, Units: 0}},
		{{CategoryID: 1, ProductID: 1, Units: -5}},
		{{CategoryID: 1, ProductID: 1, Units: 1}, {CategoryID: 1, ProductID: 1, Units: 2}},
		{{CategoryID: -1, ProductID: 1, Units: 1}},
	} {
		if _, err := Encode(nil, time.Hour, entries); err == nil {
			t.Errorf("Encode(%v) succeeded, want an error", entries)
		}
	}
}

// TestEncoder checks that an Encoder, reset for each bucket and fed sorted entries, writes
// what Encode writes, and refuses entries out of order, which it cannot sort.
func TestEncoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	var enc Encoder
	var body []byte
	for round := range 3 {
		var entries []Entry
		for range 1 + rng.IntN(5000) {
			entries = append(entries, Entry{CategoryID: rng.Int32N(50), ProductID: rng.Int64N(1 << 40), Units: 1 + rng.Int64N(1<<20)})
		}
		Sort(entries, nil)
		entries = slices.CompactFunc(entries, func(a, b Entry) bool { return Compare(a, b) == 0 })
		want, err := Encode(nil, time.Hour, slices.Clone(entries))
		if err != nil {
			t.Fatal(err)
		}
		enc.Reset(time.Hour, body)
		for _, e := range entries {
			enc.Add(e)
		}
		got, err := enc.AppendTo([]byte("prefix"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got[:6]) != "prefix" || !slices.Equal(got[6:], want) || len(got) > 6+enc.Len() {
			t.Fatalf("round %d: the Encoder wrote %d bytes (Len %d), Encode %d; want the same bytes after dst", round, len(got)-6, enc.Len(), len(want))
		}
		body = enc.Body()
	}
	for _, entries := range [][]Entry{
		{{CategoryID: 2, ProductID: 1, Units: 1}, {CategoryID: 1, ProductID: 5, Units: 1}},
		{{CategoryID: 1, ProductID: 7, Units: 1}, {CategoryID: 1, ProductID: 5, Units: 1}},
		{{CategoryID: 1, ProductID: 5, Units: 1}, {CategoryID: 1, ProductID: 5, Units: 1}},
	} {
		enc.Reset(time.Hour, nil)
		for _, e := range entries {
			enc.Add(e)
		}
		if _, err := enc.AppendTo(nil); err == nil {
			t.Errorf("the Encoder took %v, want an error", entries)
		}
	}
	if enc.Reset(90*time.Millisecond, nil); func() error { _, err := enc.AppendTo(nil); return err }() == nil {
		t.Error("the Encoder took a bucket of 90ms, want an error")
	}
}

func TestDecodeRefusesDamage(t *testing.T) {
	data, err := Encode(nil, time.Hour, []Entry{{1, 2, 3}, {1, 5, 1}, {4, 1, 9}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		for _, bit := range []byte{1, 0x80} {
			bad := slices.Clone(data)
			bad[i] ^= bit
			calls := 0
			_, err := Decode(bad, func(Entry) { calls++ })
			if !errors.Is(err, ErrCorrupt) || calls != 0 {
				t.Errorf("flipping bit %#x of byte %d: err %v after %d calls, want ErrCorrupt and no calls", bit, i, err, calls)
			}
		}
	}
	for n := range len(data) {
		if _, err := Decode(data[:n], func(Entry) { t.Fatal("called on a truncated blob") }); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated to %d bytes: err %v, want ErrCorrupt", n, err)
		}
	}
}

// FuzzDecode feeds Decode arbitrary bytes: it must never panic, and whatever it accepts must
// re-encode to the same bytes (there is one encoding of a set of entries).
func FuzzDecode(f *testing.F) {
	for _, entries := range [][]Entry{nil, {{1, 2, 3}}, {{0, 0, 1}, {0, 9, 2}, {salesrank.MaxCategoryID, salesrank.MaxProductID, 1<<63 - 1}}} {
		data, _ := Encode(nil, time.Hour, entries)
		f.Add(data)
	}
	f.Add([]byte("SRP2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []Entry
		bucket, err := Decode(data, func(e Entry) { got = append(got, e) })
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := Encode(nil, bucket, got)
		if err != nil {
			t.Fatalf("re-encoding what Decode accepted: %v", err)
		}
		if string(again) != string(data) {
			t.Fatalf("re-encoding gives other bytes")
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	entries := make([]Entry, 0, 1_000_000)
	for i := range 1_000_000 {
		entries = append(entries, Entry{CategoryID: int32(i % 1000), ProductID: int64(i/1000)*10 + rng.Int64N(10), Units: 1 + rng.Int64N(3)})
	}
	data, err := Encode(nil, time.Hour, entries)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	var sum int64
	for b.Loop() {
		Decode(data, func(e Entry) { sum += e.Units })
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/entry")
	b.ReportMetric(float64(len(data))/1e6, "bytes/entry")
}

// TestSortEntries checks the radix sort against a comparison sort, on inputs around the size
// where it takes over and on keys that differ only in their highest bytes. Every sort but
// the first reuses a second buffer that earlier, larger sorts left their entries in.
func TestSortEntries(t *testing.T) {
	var scratch []Entry
	rng := rand.New(rand.NewPCG(7, 8))
	gens := map[string]func() Entry{
		"small ids": func() Entry { return Entry{CategoryID: rng.Int32N(1000), ProductID: rng.Int64N(1 << 24)} },
		"huge ids": func() Entry {
			return Entry{CategoryID: math.MaxInt32 - rng.Int32N(3), ProductID: math.MaxInt64 - rng.Int64N(1<<10)<<52}
		},
		"one category": func() Entry { return Entry{CategoryID: 42, ProductID: rng.Int64()} },
		"one product":  func() Entry { return Entry{CategoryID: rng.Int32(), ProductID: 7} },
		"duplicates":   func() Entry { return Entry{CategoryID: rng.Int32N(3), ProductID: rng.Int64N(3) << 40} },
		"negative ids": func() Entry { return Entry{CategoryID: rng.Int32N(5) - 2, ProductID: rng.Int64N(1<<20) - 1<<19} },
	}
	for name, gen := range gens {
		for _, n := range []int{1, radixMin - 1, 5000, radixMin, 2000} {
			got := make([]Entry, n)
			for i := range got {
				got[i] = gen()
				got[i].Units = int64(i) + 1 // tells equal keys apart: the sort must be stable
			}
			want := slices.Clone(got)
			slices.SortStableFunc(want, Compare)
			Sort(got, &scratch)
			if n >= radixMin && !slices.Equal(got, want) {
				t.Errorf("%s, %d entries: radix order differs from a stable comparison sort", name, n)
			}
			if !slices.IsSortedFunc(got, Compare) {
				t.Errorf("%s, %d entries: not sorted", name, n)
			}
		}
	}
}

func BenchmarkSortEntries(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	in := make([]Entry, 55_000) // an hour at the bench's 10 M-line week
	for i := range in {
		in[i] = Entry{CategoryID: rng.Int32N(1000), ProductID: rng.Int64N(10_000_000), Units: 1}
	}
	work := make([]Entry, len(in))
	for _, sort := range []struct {
		name string
		fn   func([]Entry)
	}{{"radix", func(e []Entry) { Sort(e, nil) }}, {"compare", func(e []Entry) { slices.SortFunc(e, Compare) }}} {
		b.Run(sort.name, func(b *testing.B) {
			for b.Loop() {
				copy(work, in)
				sort.fn(work)
			}
		})
	}
}
