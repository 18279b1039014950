package faults_test

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The oracle ranks the slow, obvious way, independently of internal/counting and
// internal/salelog: split each line, parse each field with the standard library, keep the
// week before the cutoff, sum, sort, cut. Its rules are those of ranker_test.go's oracle.

// sale is one good line.
type sale struct {
	ts   int64 // unix seconds
	prod int64
	qty  int64
	cat  int32
}

// object is one log object as the oracle read it.
type object struct {
	key            string
	stored         int64 // bytes as stored (compressed for .gz)
	read, rejected int64 // non-blank, non-header lines; bad ones among them
	failed         bool  // cannot be read to its end: counts not at all
	sales          []sale
}

// parseObject reads one object's bytes (gzip if its key ends in .gz).
func parseObject(key string, data []byte) *object {
	o := &object{key: key, stored: int64(len(data))}
	if strings.HasSuffix(key, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			o.failed = true
			return o
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			o.failed = true
			return o
		}
		data = plain
	}
	var f [8]string
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line, data = data[:i], data[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 || bytes.HasPrefix(line, []byte("timestamp\t")) {
			continue
		}
		o.read++
		s, ok := parseLine(string(line), &f)
		if !ok {
			o.rejected++
			continue
		}
		o.sales = append(o.sales, s)
	}
	return o
}

func parseLine(line string, f *[8]string) (sale, bool) {
	n := 0
	for n < len(f) {
		i := strings.IndexByte(line, '\t')
		if i < 0 {
			f[n] = line
			n++
			break
		}
		f[n], line = line[:i], line[i+1:]
		n++
	}
	if n != 7 || strings.IndexByte(f[6], '\t') >= 0 {
		return sale{}, false
	}
	var s sale
	if v, err := strconv.ParseInt(f[0], 10, 64); err == nil && f[0][0] != '+' && f[0][0] != '-' {
		s.ts = v
	} else if t, err := time.Parse(time.RFC3339, f[0]); err == nil {
		s.ts = t.Unix()
	} else {
		return sale{}, false
	}
	ok := true
	s.prod, ok = plainInt(f[1], 1<<63-1, ok)
	var cat int64
	cat, ok = plainInt(f[2], 1<<31-1, ok)
	s.cat = int32(cat)
	s.qty, ok = plainInt(f[3], 1<<31-1, ok)
	ok = ok && s.qty >= 1
	_, err := strconv.ParseFloat(f[4], 64)
	ok = ok && err == nil && f[4][0] >= '0' && f[4][0] <= '9' && !strings.ContainsAny(f[4], "eE+-_xXpP") && !strings.HasSuffix(f[4], ".")
	_, ok = plainInt(f[5], 1<<63-1, ok)
	_, ok = plainInt(f[6], 1<<63-1, ok)
	return s, ok
}

func plainInt(s string, max int64, ok bool) (int64, bool) {
	if !ok || s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n <= max
}

// parseTree reads every log object under dir (keys relative to it, names starting with _
// or . left out) on all cores.
func parseTree(dir string) (map[string]*object, error) {
	var keys []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isLogKey(path) {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		keys = append(keys, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]*object, len(keys))
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
	)
	work := make(chan string)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(k)))
				mu.Lock()
				if err != nil {
					first = cmp.Or(first, err)
				}
				mu.Unlock()
				o := parseObject(k, data)
				mu.Lock()
				out[k] = o
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	return out, first
}

// isLogKey mirrors design.md: names starting with _ or . are not logs, and neither are the
// Go CDK file bucket's attribute files.
func isLogKey(path string) bool {
	name := filepath.Base(path)
	return name != "" && name[0] != '_' && name[0] != '.' && !strings.HasSuffix(name, ".attrs")
}

// ranking is one snapshot's content: the categories it knows and its rows in
// (category, rank) order.
type ranking struct {
	cats []int32
	rows []rankRow
}

type rankRow struct {
	cat   int32
	rank  int
	prod  int64
	total int64
}

// oracleRank ranks objs for the window [cutoff − 7 days, cutoff), top K per category.
func oracleRank(objs []*object, cutoff time.Time, top int) ranking {
	start, end := cutoff.Add(-7*24*time.Hour).Unix(), cutoff.Unix()
	type key struct {
		cat  int32
		prod int64
	}
	totals := map[key]int64{}
	known := map[int32]bool{}
	for _, o := range objs {
		if o.failed {
			continue
		}
		for _, s := range o.sales {
			known[s.cat] = true
			if s.ts >= start && s.ts < end {
				totals[key{s.cat, s.prod}] += s.qty
			}
		}
	}
	byCat := map[int32][]rankRow{}
	for k, v := range totals {
		byCat[k.cat] = append(byCat[k.cat], rankRow{cat: k.cat, prod: k.prod, total: v})
	}
	var r ranking
	for c := range known {
		r.cats = append(r.cats, c)
	}
	slices.Sort(r.cats)
	for _, c := range r.cats {
		rows := byCat[c]
		slices.SortFunc(rows, func(a, b rankRow) int { return cmp.Or(cmp.Compare(b.total, a.total), cmp.Compare(a.prod, b.prod)) })
		for i, row := range rows[:min(top, len(rows))] {
			row.rank = i + 1
			r.rows = append(r.rows, row)
		}
	}
	return r
}

// diffRankings describes how got differs from want, at most a few differences, or "".
func diffRankings(got, want ranking) string {
	var b strings.Builder
	if !slices.Equal(got.cats, want.cats) {
		fmt.Fprintf(&b, "categories: got %d %s, want %d %s\n", len(got.cats), head(got.cats), len(want.cats), head(want.cats))
	}
	if len(got.rows) != len(want.rows) {
		fmt.Fprintf(&b, "rows: got %d, want %d\n", len(got.rows), len(want.rows))
	}
	shown := 0
	for i := 0; i < max(len(got.rows), len(want.rows)) && shown < 5; i++ {
		var g, w rankRow
		if i < len(got.rows) {
			g = got.rows[i]
		}
		if i < len(want.rows) {
			w = want.rows[i]
		}
		if g != w {
			fmt.Fprintf(&b, "row %d: got category %d rank %d product %d total %d; want category %d rank %d product %d total %d\n",
				i, g.cat, g.rank, g.prod, g.total, w.cat, w.rank, w.prod, w.total)
			shown++
		}
	}
	return b.String()
}

func head(s []int32) string {
	if len(s) > 8 {
		return fmt.Sprint(s[:8], "…")
	}
	return fmt.Sprint(s)
}

// values returns m's values sorted by key.
func values(m map[string]*object) []*object {
	out := make([]*object, 0, len(m))
	for _, o := range m {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *object) int { return strings.Compare(a.key, b.key) })
	return out
}
