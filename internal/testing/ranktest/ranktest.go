// Package ranktest holds what tests of any counting engine check against: a brute-force
// oracle that ranks logs the slow, obvious way (the standard library's parsers, a map, a
// sort), independent of internal/counting and internal/salelog, and generators of random and
// adversarial logs. The ranker's tests and the Beam engine's differential tests share them.
package ranktest

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/salesrank/salesrank"
)

// Format renders rankings one row a line: category, rank, product, units.
func Format(rs []salesrank.Ranking) string {
	var b strings.Builder
	for _, r := range rs {
		if len(r.Entries) == 0 {
			fmt.Fprintf(&b, "category %d: no sales\n", r.CategoryID)
		}
		for i, e := range r.Entries {
			fmt.Fprintf(&b, "category %d rank %d product %d total_sold %d\n", r.CategoryID, i+1, e.ProductID, e.TotalSold)
		}
	}
	return b.String()
}

// Oracle ranks logs the slow, obvious way: split every line, parse each field with the
// standard library, keep the week before the cutoff, sum, sort, cut.
func Oracle(objects map[string][]byte, cutoff time.Time, top int) (ranking string, read, rejected int64) {
	start := cutoff.Add(-7 * 24 * time.Hour)
	totals := map[[2]int64]int64{} // {category, product} → units
	known := map[int64]bool{}
	for key, data := range objects {
		if strings.HasSuffix(key, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				panic(err)
			}
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(zr); err != nil {
				continue // an unreadable object counts not at all
			}
			data = buf.Bytes()
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSuffix(line, "\r")
			if line == "" || strings.HasPrefix(line, "timestamp\t") {
				continue
			}
			read++
			f := strings.Split(line, "\t")
			ok := len(f) == 7
			var ts time.Time
			var product, category, qty int64
			if ok {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && f[0][0] != '+' && f[0][0] != '-' {
					ts = time.Unix(n, 0)
				} else if t, err := time.Parse(time.RFC3339, f[0]); err == nil {
					ts = t
				} else {
					ok = false
				}
				product, ok = plainInt(f[1], 1<<63-1, ok)
				category, ok = plainInt(f[2], 1<<31-1, ok)
				qty, ok = plainInt(f[3], 1<<31-1, ok)
				ok = ok && qty >= 1
				_, err := strconv.ParseFloat(f[4], 64)
				ok = ok && err == nil && f[4][0] >= '0' && f[4][0] <= '9' && !strings.ContainsAny(f[4], "eE+-_xXpP") && !strings.HasSuffix(f[4], ".")
				_, ok = plainInt(f[5], 1<<63-1, ok)
				_, ok = plainInt(f[6], 1<<63-1, ok)
			}
			if !ok {
				rejected++
				continue
			}
			known[category] = true
			if !ts.Before(start) && ts.Before(cutoff) {
				totals[[2]int64{category, product}] += qty
			}
		}
	}
	type row struct{ product, units int64 }
	byCat := map[int64][]row{}
	for k, v := range totals {
		byCat[k[0]] = append(byCat[k[0]], row{k[1], v})
	}
	var cats []int64
	for c := range known {
		cats = append(cats, c)
	}
	slices.Sort(cats)
	var b strings.Builder
	for _, c := range cats {
		rows := byCat[c]
		slices.SortFunc(rows, func(a, b row) int { return cmp.Or(cmp.Compare(b.units, a.units), cmp.Compare(a.product, b.product)) })
		if len(rows) == 0 {
			fmt.Fprintf(&b, "category %d: no sales\n", c)
		}
		for i, r := range rows[:min(top, len(rows))] {
			fmt.Fprintf(&b, "category %d rank %d product %d total_sold %d\n", c, i+1, r.product, r.units)
		}
	}
	return b.String(), read, rejected
}

func plainInt(s string, max int64, ok bool) (int64, bool) {
	if !ok || s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n <= max
}

// RandomLogs writes objects meant to break a ranking: sales on both edges of the window,
// ties, one product in several categories, ids and quantities at their maximum, every kind
// of bad line, CRLF endings, headers, blank lines, gzip, an empty object and a truncated one.
func RandomLogs(rng *rand.Rand, cutoff time.Time) map[string][]byte {
	start, end := cutoff.Add(-7*24*time.Hour).Unix(), cutoff.Unix()
	times := []int64{start, start - 1, end - 1, end, start + 1, end + 3600, start - 86400}
	products := []int64{0, 1, 2, 3, 1<<63 - 1, 1 << 40}
	categories := []int64{0, 1, 7, 1<<31 - 1}
	quantities := []int64{1, 1, 2, 5, 1<<31 - 1}
	bad := []string{
		"garbage", "1\t2\t3", "1\t2\t3\t4\t5\t6\t7\t8", "x\t1\t1\t1\t1\t1\t1",
		"%d\t-1\t1\t1\t1\t1\t1", "%d\t9223372036854775808\t1\t1\t1\t1\t1", "%d\t1\t2147483648\t1\t1\t1\t1",
		"%d\t1\t1\t0\t1\t1\t1", "%d\t1\t1\t2147483648\t1\t1\t1", "%d\t1\t1\t1\t-1\t1\t1", "%d\t1\t1\t1\t1.\t1\t1",
		"%d\t1\t1\t1\t1\tseller\t1", "%d\t1\t1\t1\t1\t1\t", "2026-13-01T00:00:00Z\t1\t1\t1\t1\t1\t1", "%d \t1\t1\t1\t1\t1\t1",
	}
	objects := map[string][]byte{}
	nObjects := 1 + rng.IntN(6)
	for o := range nObjects {
		var b strings.Builder
		eol := "\n"
		if rng.IntN(3) == 0 {
			eol = "\r\n"
		}
		if rng.IntN(3) == 0 {
			b.WriteString("timestamp\tproduct_id\tcategory_id\tquantity\ttotal_price\tseller_id\tbuyer_id" + eol)
		}
		for range rng.IntN(400) {
			ts := times[rng.IntN(len(times))]
			if rng.IntN(2) == 0 {
				ts = start + rng.Int64N(end-start)
			}
			switch rng.IntN(20) {
			case 0:
				line := bad[rng.IntN(len(bad))]
				if strings.Contains(line, "%d") {
					line = fmt.Sprintf(line, ts)
				}
				b.WriteString(line + eol)
				continue
			case 1:
				b.WriteString(eol)
				continue
			}
			tsText := strconv.FormatInt(ts, 10)
			if rng.IntN(4) == 0 {
				tsText = time.Unix(ts, 0).In(time.FixedZone("", (rng.IntN(48)-24)*1800)).Format(time.RFC3339)
			}
			fmt.Fprintf(&b, "%s\t%d\t%d\t%d\t%d.%02d\t%d\t%d%s", tsText, products[rng.IntN(len(products))],
				categories[rng.IntN(len(categories))], quantities[rng.IntN(len(quantities))], rng.IntN(1000), rng.IntN(100),
				rng.Int64(), rng.Int64(), eol)
		}
		data := []byte(b.String())
		if rng.IntN(5) == 0 && len(data) > 0 {
			data = data[:len(data)-len(eol)] // no final newline
		}
		key := fmt.Sprintf("2026/11/%02d/part-%d.tsv", 1+o, o)
		if rng.IntN(3) == 0 {
			var zb bytes.Buffer
			zw := gzip.NewWriter(&zb)
			zw.Write(data)
			zw.Close()
			data, key = zb.Bytes(), key+".gz"
			if rng.IntN(4) == 0 {
				data = data[:len(data)/2] // truncated: must count not at all
			}
		}
		objects[key] = data
	}
	return objects
}

// Lines writes n random sales around base: some in the window of every cutoff the test
// uses, some on its edges, a few bad.
func Lines(rng *rand.Rand, base time.Time, spread time.Duration, n int) []byte {
	var b strings.Builder
	for range n {
		ts := base.Add(time.Duration(rng.Int64N(int64(spread)))).Unix()
		if rng.IntN(15) == 0 {
			b.WriteString("broken line\n")
			continue
		}
		fmt.Fprintf(&b, "%d\t%d\t%d\t%d\t1.00\t1\t1\n", ts, rng.IntN(8), rng.IntN(3), 1+rng.IntN(4))
	}
	return []byte(b.String())
}
