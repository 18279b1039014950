package salelog

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line string
		want salesrank.Sale
		why  Reason
	}{
		{"1700000000\t1\t2\t3\t20.00\t4\t5", salesrank.Sale{Time: 1700000000, ProductID: 1, CategoryID: 2, Quantity: 3, SellerID: 4, BuyerID: 5}, OK},
		{"1700000000\t1\t2\t3\t20.00\t4\t5\r", salesrank.Sale{Time: 1700000000, ProductID: 1, CategoryID: 2, Quantity: 3, SellerID: 4, BuyerID: 5}, OK},
		{"2026-11-20T13:00:00Z\t50\t1234\t1\t7\t0\t0", salesrank.Sale{Time: 1795179600, ProductID: 50, CategoryID: 1234, Quantity: 1}, OK},
		{"2026-11-20T15:00:00+02:00\t50\t1234\t1\t0.5\t0\t0", salesrank.Sale{Time: 1795179600, ProductID: 50, CategoryID: 1234, Quantity: 1}, OK},
		{"2026-11-20T13:00:00.999999999Z\t50\t1234\t1\t0.5\t0\t0", salesrank.Sale{Time: 1795179600, ProductID: 50, CategoryID: 1234, Quantity: 1}, OK},
		{"2026-11-20t10:30:00-02:30\t50\t1234\t1\t0.5\t0\t0", salesrank.Sale{Time: 1795179600, ProductID: 50, CategoryID: 1234, Quantity: 1}, OK},
		{"0\t9223372036854775807\t2147483647\t2147483647\t0\t9223372036854775807\t9223372036854775807",
			salesrank.Sale{ProductID: 1<<63 - 1, CategoryID: 1<<31 - 1, Quantity: 1<<31 - 1, SellerID: 1<<63 - 1, BuyerID: 1<<63 - 1}, OK},
		{"1\t2\t3\t4\t5\t6", salesrank.Sale{}, FieldCount},
		{"1\t2\t3\t4\t5\t6\t7\t", salesrank.Sale{}, FieldCount},
		{"1 2 3 4 5 6 7", salesrank.Sale{}, FieldCount},
		{"\t2\t3\t4\t5\t6\t7", salesrank.Sale{}, BadTimestamp},
		{"-1\t2\t3\t4\t5\t6\t7", salesrank.Sale{}, BadTimestamp},
		{"253402300800\t2\t3\t4\t5\t6\t7", salesrank.Sale{}, BadTimestamp},
		{"2026-02-29T00:00:00Z\t2\t3\t4\t5\t6\t7", salesrank.Sale{}, BadTimestamp},
		{"2026-11-20T24:00:00Z\t2\t3\t4\t5\t6\t7", salesrank.Sale{}, BadTimestamp},
		{"2026-11-20T13:00:00\t2\t3\t4\t5\t6\t7", salesrank.Sale{}, BadTimestamp},
		{"2026-11-20 13:00:00Z\t2\t3\t4\t5\t6\t7", salesrank.Sale{}, BadTimestamp},
		{"1\t9223372036854775808\t3\t4\t5\t6\t7", salesrank.Sale{}, BadProductID},
		{"1\t+2\t3\t4\t5\t6\t7", salesrank.Sale{}, BadProductID},
		{"1\tproduct1\t3\t4\t5\t6\t7", salesrank.Sale{}, BadProductID},
		{"1\t2\t2147483648\t4\t5\t6\t7", salesrank.Sale{}, BadCategoryID},
		{"1\t2\t\t4\t5\t6\t7", salesrank.Sale{}, BadCategoryID},
		{"1\t2\t3\t0\t5\t6\t7", salesrank.Sale{}, BadQuantity},
		{"1\t2\t3\t2147483648\t5\t6\t7", salesrank.Sale{}, BadQuantity},
		{"1\t2\t3\t-1\t5\t6\t7", salesrank.Sale{}, BadQuantity},
		{"1\t2\t3\t4\t-5\t6\t7", salesrank.Sale{}, BadTotalPrice},
		{"1\t2\t3\t4\t5.\t6\t7", salesrank.Sale{}, BadTotalPrice},
		{"1\t2\t3\t4\t.5\t6\t7", salesrank.Sale{}, BadTotalPrice},
		{"1\t2\t3\t4\t1e3\t6\t7", salesrank.Sale{}, BadTotalPrice},
		{"1\t2\t3\t4\t5\tx\t7", salesrank.Sale{}, BadSellerID},
		{"1\t2\t3\t4\t5\t6\t7 ", salesrank.Sale{}, BadBuyerID},
		{"1\t2\t3\t4\t5\t6\t" + strings.Repeat("1", MaxLineLength), salesrank.Sale{}, TooLong},
	}
	for _, tt := range tests {
		got, why := ParseLine([]byte(tt.line))
		if why != tt.why {
			t.Errorf("ParseLine(%q) reason = %v, want %v", tt.line, why, tt.why)
			continue
		}
		if why == OK && got != tt.want {
			t.Errorf("ParseLine(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		line string
		want Kind
	}{
		{"", Blank},
		{"\r", Blank},
		{"timestamp\tproduct_id\tcategory_id\tqty\ttotal_price\tseller_id\tbuyer_id", Header},
		{"timestamp", Sale}, // not a header: quarantined as a bad line
		{"1\t2\t3\t4\t5\t6\t7", Sale},
		{" ", Sale},
	}
	for _, tt := range tests {
		if got := Classify([]byte(tt.line)); got != tt.want {
			t.Errorf("Classify(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestIsLogObject(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"2026/11/20/13/part-0.tsv", true},
		{"2026/11/20/13/part-0.tsv.gz", true},
		{"_SUCCESS", false},
		{"2026/11/20/13/_SUCCESS", false},
		{"2026/11/20/13/.part-0.tsv.tmp", false},
		{"dir/", false},
	}
	for _, tt := range tests {
		if got := IsLogObject(tt.key); got != tt.want {
			t.Errorf("IsLogObject(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

func TestParseLineAllocs(t *testing.T) {
	line := []byte("2026-11-20T13:00:00+02:00\t50\t1234\t1\t7.00\t3\t4")
	if n := testing.AllocsPerRun(100, func() { ParseLine(line) }); n != 0 {
		t.Errorf("ParseLine allocates %v times per line, want 0", n)
	}
}

// reference parses a line the slow, obvious way with the standard library. The fuzz target
// holds ParseLine to it.
func reference(line string) (salesrank.Sale, bool) {
	var s salesrank.Sale
	line = strings.TrimSuffix(line, "\r")
	if len(line) > MaxLineLength {
		return s, false
	}
	f := strings.Split(line, "\t")
	if len(f) != 7 {
		return s, false
	}
	uint := func(v string, max uint64) (uint64, bool) {
		if !digitsRE.MatchString(v) {
			return 0, false
		}
		n, err := strconv.ParseUint(v, 10, 64)
		return n, err == nil && n <= max
	}
	if digitsRE.MatchString(f[0]) {
		n, ok := uint(f[0], maxUnix)
		if !ok {
			return s, false
		}
		s.Time = int64(n)
	} else {
		if !rfc3339RE.MatchString(f[0]) {
			return s, false
		}
		ts, err := time.Parse(time.RFC3339Nano, strings.NewReplacer("t", "T", "z", "Z").Replace(f[0]))
		if err != nil || ts.Unix() < minUnix || ts.Unix() > maxUnix {
			return s, false
		}
		s.Time = ts.Unix()
	}
	var ok bool
	var n uint64
	if n, ok = uint(f[1], 1<<63-1); !ok {
		return s, false
	}
	s.ProductID = int64(n)
	if n, ok = uint(f[2], 1<<31-1); !ok {
		return s, false
	}
	s.CategoryID = int32(n)
	if n, ok = uint(f[3], 1<<31-1); !ok || n == 0 {
		return s, false
	}
	s.Quantity = int32(n)
	if !priceRE.MatchString(f[4]) {
		return s, false
	}
	if n, ok = uint(f[5], 1<<63-1); !ok {
		return s, false
	}
	s.SellerID = int64(n)
	if n, ok = uint(f[6], 1<<63-1); !ok {
		return s, false
	}
	s.BuyerID = int64(n)
	return s, true
}

var (
	digitsRE  = regexp.MustCompile(`^[0-9]+$`)
	priceRE   = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	rfc3339RE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$`)
)

// FuzzParseLine checks ParseLine against the reference parser: both accept the same lines and
// agree on every field. Its seed corpus (testdata/fuzz/FuzzParseLine) runs with go test.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"1700000000\t1\t2\t3\t20.00\t4\t5",
		"2026-11-20T13:00:00+02:00\t50\t1234\t1\t7\t0\t0\r",
		"2026-11-20T13:00:00.5Z\t9223372036854775807\t2147483647\t2147483647\t0.5\t9223372036854775807\t0",
		"2024-02-29T23:59:59-23:59\t1\t1\t1\t1\t1\t1",
		"0001-01-01T00:00:00Z\t1\t1\t1\t1\t1\t1",
		"9999-12-31T23:59:59Z\t1\t1\t1\t1\t1\t1",
		"timestamp\tproduct_id\tcategory_id\tquantity\ttotal_price\tseller_id\tbuyer_id",
		"\t\t\t\t\t\t",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got, why := ParseLine([]byte(line))
		want, ok := reference(line)
		if ok != (why == OK) {
			t.Fatalf("ParseLine(%q) reason %v, reference accepts=%v", line, why, ok)
		}
		if ok && got != want {
			t.Fatalf("ParseLine(%q) = %+v, reference %+v", line, got, want)
		}
	})
}

func BenchmarkParseLine(b *testing.B) {
	lines := [][]byte{
		[]byte("1795179600\t8412345\t417\t1\t19.99\t84123\t73456789"),
		[]byte("2026-11-20T13:00:00Z\t50\t1234\t2\t7.00\t3\t4"),
	}
	b.ReportAllocs()
	var bytes int64
	for _, l := range lines {
		bytes += int64(len(l) + 1)
	}
	b.SetBytes(bytes / int64(len(lines)))
	for i := 0; b.Loop(); i++ {
		if _, why := ParseLine(lines[i&1]); why != OK {
			b.Fatal(why)
		}
	}
}
