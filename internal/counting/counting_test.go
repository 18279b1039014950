package counting

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/salesrank/salesrank"
)

var cutoff = time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)

func newBucket(t testing.TB, objects map[string][]byte) *blob.Bucket {
	t.Helper()
	b := memblob.OpenBucket(nil)
	t.Cleanup(func() { b.Close() })
	for k, v := range objects {
		if err := b.WriteAll(context.Background(), k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func gz(t testing.TB, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write([]byte(s))
	w.Close()
	return buf.Bytes()
}

func objectsOf(m map[string][]byte) []Object {
	var out []Object
	for k, v := range m {
		out = append(out, Object{Key: k, Size: int64(len(v))})
	}
	return out
}

func TestCountEdgesAndBadLines(t *testing.T) {
	w := salesrank.WindowEnding(cutoff)
	start, end := w.Start.Unix(), w.End.Unix()
	plain := fmt.Sprintf("timestamp\tproduct_id\tcategory_id\tquantity\ttotal_price\tseller_id\tbuyer_id\r\n"+
		"%d\t1\t10\t2\t20.00\t1\t1\r\n"+ // at T−7d: in
		"%d\t1\t10\t5\t20.00\t1\t1\r\n"+ // at T: out (after)
		"%d\t1\t10\t7\t20.00\t1\t1\r\n"+ // just before T−7d: out (before), category 10 still known
		"\r\n"+
		"%d\t9223372036854775807\t2147483647\t2147483647\t1\t1\t1\n"+
		"%d\t9223372036854775807\t2147483647\t2147483647\t1\t1\t1\n"+
		"bad line\n"+
		"%d\t2\t11\t0\t1\t1\t1", // zero quantity, no final newline
		start, end, start-1, end-1, start, start)
	objs := map[string][]byte{
		"a/part-0.tsv":    []byte(plain),
		"a/part-1.tsv.gz": gz(t, fmt.Sprintf("%d\t1\t10\t3\t1\t1\t1\n%d\t3\t12\t1\t1\t1\t1\n", end-1, start-3600)),
		"a/broken.tsv.gz": gz(t, fmt.Sprintf("%d\t1\t10\t100\t1\t1\t1\n", end-1))[:20], // truncated
	}
	res, err := (&Local{}).Count(context.Background(), newBucket(t, objs), objectsOf(objs), Spec{Window: w})
	if err != nil {
		t.Fatal(err)
	}
	want := salesrank.Totals{
		{CategoryID: 10, ProductID: 1}:                5,
		{CategoryID: 1<<31 - 1, ProductID: 1<<63 - 1}: 2 * (1<<31 - 1),
	}
	if fmt.Sprint(totalsOf(res)) != fmt.Sprint(want) {
		t.Errorf("totals = %v, want %v", totalsOf(res), want)
	}
	if got, want := fmt.Sprint(res.Categories), "[10 12 2147483647]"; got != want {
		t.Errorf("categories = %v, want %v", got, want)
	}
	st := res.Stats
	if st.Objects != 2 || st.LinesRead != 9 || st.LinesRejected != 2 || st.LinesBefore != 2 || st.LinesAfter != 1 {
		t.Errorf("stats = %+v, want 2 objects, 9 lines read, 2 rejected, 2 before, 1 after", st)
	}
	if len(res.Failed) != 1 || res.Failed[0].Key != "a/broken.tsv.gz" {
		t.Errorf("failed = %v, want a/broken.tsv.gz", res.Failed)
	}
	var got []string
	for _, r := range res.Rejects {
		got = append(got, fmt.Sprintf("%s:%d:%s:%q", r.Object, r.Line, r.Reason, r.Text))
	}
	wantRejects := []string{
		`a/part-0.tsv:8:field_count:"bad line"`,
		fmt.Sprintf(`a/part-0.tsv:9:bad_quantity:"%d\t2\t11\t0\t1\t1\t1"`, start),
	}
	if strings.Join(got, "\n") != strings.Join(wantRejects, "\n") {
		t.Errorf("rejects =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantRejects, "\n"))
	}
}

// TestCountBlocks cuts objects into many blocks and checks that totals and line numbers do
// not depend on where the cuts fall, on the number of workers or on compression.
func TestCountBlocks(t *testing.T) {
	w := salesrank.WindowEnding(cutoff)
	rng := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	want := salesrank.Totals{}
	var badLines []int64
	const n = 60000
	for i := int64(1); i <= n; i++ {
		if rng.IntN(1000) == 0 {
			fmt.Fprintf(&sb, "oops %d\n", i)
			badLines = append(badLines, i)
			continue
		}
		k := salesrank.Key{CategoryID: rng.Int32N(20), ProductID: rng.Int64N(500)}
		q := 1 + rng.Int64N(5)
		fmt.Fprintf(&sb, "%d\t%d\t%d\t%d\t9.99\t1\t2\n", w.Start.Unix()+rng.Int64N(int64(salesrank.WindowLength/time.Second)), k.ProductID, k.CategoryID, q)
		want[k] += q
	}
	// A line longer than a block, in the middle.
	long := "1\t2\t3\t" + strings.Repeat("9", 300<<10)
	text := sb.String()
	half := strings.Index(text[len(text)/2:], "\n") + len(text)/2 + 1
	text = text[:half] + long + "\n" + text[half:]
	longLine := int64(strings.Count(text[:half], "\n") + 1)
	for i := range badLines {
		if badLines[i] >= longLine {
			badLines[i]++
		}
	}
	badLines = append(badLines, longLine)

	for _, workers := range []int{1, 2, 5} {
		for _, name := range []string{"x.tsv", "x.tsv.gz"} {
			data := []byte(text)
			if strings.HasSuffix(name, ".gz") {
				data = gz(t, text)
			}
			objs := map[string][]byte{name: data}
			l := &Local{Workers: workers, BlockSize: 128 << 10}
			res, err := l.Count(context.Background(), newBucket(t, objs), objectsOf(objs), Spec{Window: w})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(totalsOf(res)) != fmt.Sprint(want) {
				t.Errorf("workers=%d %s: totals differ", workers, name)
			}
			var got []int64
			for _, r := range res.Rejects {
				got = append(got, r.Line)
			}
			if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(badLines)) {
				t.Errorf("workers=%d %s: reject lines = %v, want %v", workers, name, got, badLines)
			}
			if res.Stats.LinesRead != int64(n+1) {
				t.Errorf("workers=%d %s: lines read = %d, want %d", workers, name, res.Stats.LinesRead, n+1)
			}
		}
	}
}

func sorted(s []int64) []int64 {
	out := append([]int64(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func BenchmarkCount(b *testing.B) {
	w := salesrank.WindowEnding(cutoff)
	rng := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	const lines = 1_000_000
	for range lines {
		fmt.Fprintf(&sb, "%d\t%d\t%d\t%d\t19.99\t%d\t%d\n", w.Start.Unix()+rng.Int64N(7*86400), rng.Int64N(10_000_000), rng.Int32N(1000), 1+rng.IntN(3), rng.Int64N(100000), rng.Int64N(100_000_000))
	}
	data := []byte(sb.String())
	objs := map[string][]byte{"x.tsv": data}
	bucket := newBucket(b, objs)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (&Local{}).Count(context.Background(), bucket, objectsOf(objs), Spec{Window: w}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}

func totalsOf(r *Result) salesrank.Totals {
	t := salesrank.Totals{}
	for k, v := range r.Totals.All() {
		t[k] += v
	}
	return t
}
