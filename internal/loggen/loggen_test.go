package loggen

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var day = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// small returns a config that generates quickly.
func small(mod func(*Config)) Config {
	cfg := Config{Start: day, End: day.Add(6 * time.Hour), Lines: 20_000, Products: 100_000, Categories: 50, Seed: 7}
	if mod != nil {
		mod(&cfg)
	}
	return cfg
}

// sale is a line parsed strictly by the design.md table.
type sale struct {
	ts                   int64
	product, seller, buy int64
	category             int64
	qty                  int64
	cents                int64
}

// parseLine parses one line per design.md, or says why it is bad.
func parseLine(line string) (sale, error) {
	f := strings.Split(line, "\t")
	if len(f) != 7 {
		return sale{}, errors.New("field count")
	}
	var s sale
	var err error
	digits := func(v string) bool {
		if v == "" {
			return false
		}
		for _, c := range v {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	switch {
	case digits(f[0]):
		s.ts, err = strconv.ParseInt(f[0], 10, 64)
	default:
		var t time.Time
		t, err = time.Parse(time.RFC3339, f[0])
		s.ts = t.Unix()
	}
	if err != nil {
		return s, errors.New("timestamp")
	}
	num := func(v string, bits int, min int64) (int64, error) {
		if !digits(v) {
			return 0, errors.New("not a number: " + v)
		}
		n, err := strconv.ParseInt(v, 10, bits)
		if err == nil && n < min {
			err = errors.New("out of range: " + v)
		}
		return n, err
	}
	if s.product, err = num(f[1], 64, 0); err != nil {
		return s, err
	}
	if s.category, err = num(f[2], 32, 0); err != nil {
		return s, err
	}
	if s.qty, err = num(f[3], 32, 1); err != nil {
		return s, err
	}
	whole, frac, ok := strings.Cut(f[4], ".")
	if !digits(whole) || (ok && !digits(frac)) {
		return s, errors.New("price")
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	c, _ := strconv.ParseInt((frac + "00")[:2], 10, 64)
	s.cents = w*100 + c
	if s.seller, err = num(f[5], 64, 0); err != nil {
		return s, err
	}
	if s.buy, err = num(f[6], 64, 0); err != nil {
		return s, err
	}
	return s, nil
}

// readLines returns every line of every log object under dir (or of the file dir), by
// object path, skipping markers, and failing on leftover temporary files.
func readLines(t testing.TB, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") {
			t.Errorf("temporary file left behind: %s", path)
		}
		if strings.HasPrefix(d.Name(), "_") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return err
			}
			if b, err = io.ReadAll(zr); err != nil {
				return err
			}
		}
		rel, _ := filepath.Rel(root, path)
		if !bytes.HasSuffix(b, []byte("\n")) && len(b) > 0 {
			t.Errorf("%s does not end with a newline", rel)
		}
		var lines []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		out[rel] = lines
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeterministic(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		file bool
	}{
		{"dir", small(func(c *Config) { c.Parts = 3 }), false},
		{"dir gzip", small(func(c *Config) { c.Gzip = true; c.Parts = 2 }), false},
		{"dir mixed bad header", small(func(c *Config) { c.TimeFormat = Mixed; c.BadRate = 0.05; c.Header = true }), false},
		{"file", small(nil), true},
		{"file gzip header", small(func(c *Config) { c.Gzip = true; c.Header = true }), true},
		{"file rate rfc3339", small(func(c *Config) { c.Lines = 0; c.Rate = 3; c.TimeFormat = RFC3339 }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [][]byte
			for _, workers := range []int{1, 2, 5} {
				dir := t.TempDir()
				var err error
				if tt.file {
					_, err = WriteFile(context.Background(), filepath.Join(dir, "sales.tsv"), tt.cfg, Options{Workers: workers})
				} else {
					_, err = WriteDir(context.Background(), dir, tt.cfg, Options{Workers: workers})
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, snapshotDir(t, dir))
			}
			for i := 1; i < len(got); i++ {
				if !bytes.Equal(got[0], got[i]) {
					t.Fatalf("output with different worker counts differs")
				}
			}
			other := tt.cfg
			other.Seed++
			dir := t.TempDir()
			if _, err := WriteDir(context.Background(), dir, other, Options{}); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(got[0], snapshotDir(t, dir)) {
				t.Errorf("another seed gave the same output")
			}
		})
	}
}

// snapshotDir returns every file's path and raw bytes under dir, in a stable order.
func snapshotDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		buf.WriteString(rel + "\n")
		buf.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriteDirLayout(t *testing.T) {
	tests := []struct {
		name       string
		start, end time.Time
		parts      int
		gzip       bool
		want       []string
	}{
		{
			name:  "partial hours across midnight",
			start: time.Date(2026, 11, 20, 22, 30, 0, 0, time.UTC),
			end:   time.Date(2026, 11, 21, 1, 15, 0, 0, time.UTC),
			parts: 2,
			want: []string{
				"2026/11/20/22/part-0.tsv", "2026/11/20/22/part-1.tsv",
				"2026/11/20/23/part-0.tsv", "2026/11/20/23/part-1.tsv",
				"2026/11/21/00/part-0.tsv", "2026/11/21/00/part-1.tsv",
				"2026/11/21/01/part-0.tsv", "2026/11/21/01/part-1.tsv",
			},
		},
		{
			name:  "one hour gzip",
			start: day.Add(5 * time.Hour),
			end:   day.Add(6 * time.Hour),
			parts: 1,
			gzip:  true,
			want:  []string{"2026/11/20/05/part-0.tsv.gz"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := small(func(c *Config) { c.Start, c.End, c.Parts, c.Gzip = tt.start, tt.end, tt.parts, tt.gzip })
			st, err := WriteDir(context.Background(), dir, cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			objs := readLines(t, dir)
			var names []string
			var n int64
			for name, lines := range objs {
				names = append(names, filepath.ToSlash(name))
				hour, err := time.Parse("2006/01/02/15", filepath.ToSlash(filepath.Dir(name)))
				if err != nil {
					t.Fatalf("%s: not in an hour folder: %v", name, err)
				}
				for _, l := range lines {
					s, err := parseLine(l)
					if err != nil {
						t.Fatalf("%s: %q: %v", name, l, err)
					}
					if s.ts < hour.Unix() || s.ts >= hour.Unix()+3600 {
						t.Errorf("%s: sale at %d outside its hour", name, s.ts)
					}
					if s.ts < tt.start.Unix() || s.ts >= tt.end.Unix() {
						t.Errorf("%s: sale at %d outside [start, end)", name, s.ts)
					}
					n++
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, tt.want) {
				t.Errorf("objects = %v, want %v", names, tt.want)
			}
			if n != cfg.Lines || st.Lines != cfg.Lines {
				t.Errorf("lines read %d, stats %d, want %d", n, st.Lines, cfg.Lines)
			}
			if st.Objects != int64(len(tt.want)) {
				t.Errorf("stats objects = %d, want %d", st.Objects, len(tt.want))
			}
			if _, err := os.Stat(filepath.Join(dir, MarkerName)); err != nil {
				t.Errorf("no marker: %v", err)
			}
		})
	}
}

func TestLinesFollowFormat(t *testing.T) {
	for _, tf := range []TimeFormat{Unix, RFC3339, Mixed} {
		t.Run(string(tf), func(t *testing.T) {
			cfg := small(func(c *Config) { c.TimeFormat = tf; c.Header = true })
			path := filepath.Join(t.TempDir(), "sales.tsv")
			if _, err := WriteFile(context.Background(), path, cfg, Options{}); err != nil {
				t.Fatal(err)
			}
			lines := readLines(t, path)["."]
			if lines[0]+"\n" != Header {
				t.Fatalf("first line %q, want the header", lines[0])
			}
			cat := NewCatalog(cfg)
			formats := map[string]bool{}
			for _, l := range lines[1:] {
				s, err := parseLine(l)
				if err != nil {
					t.Fatalf("%q: %v", l, err)
				}
				ts, _, _ := strings.Cut(l, "\t")
				switch {
				case !strings.Contains(ts, "T"):
					formats["unix"] = true
				case strings.HasSuffix(ts, "Z"):
					formats["utc"] = true
				default:
					formats["offset"] = true
				}
				if s.product < 1 || s.product > cfg.Products {
					t.Errorf("%q: product outside 1…%d", l, cfg.Products)
				}
				if !slices.Contains(cat.Categories(s.product), int32(s.category)) {
					t.Errorf("%q: category %d is not one of the product's %v", l, s.category, cat.Categories(s.product))
				}
				if want := s.qty * cat.UnitPrice(s.product); s.cents != want {
					t.Errorf("%q: total %d cents, want quantity × unit price = %d", l, s.cents, want)
				}
				if s.buy < 1 || s.buy > DefaultBuyers || s.seller < 1 || s.seller > DefaultSellers {
					t.Errorf("%q: seller or buyer out of range", l)
				}
			}
			want := map[TimeFormat]int{Unix: 1, RFC3339: 1, Mixed: 3}[tf]
			if len(formats) != want {
				t.Errorf("timestamp formats seen %v, want %d kinds", formats, want)
			}
		})
	}
}

func TestWriteFileSortedByTime(t *testing.T) {
	cfg := small(func(c *Config) { c.Lines = 50_000; c.Start = day.Add(90 * time.Second) })
	path := filepath.Join(t.TempDir(), "sales.tsv")
	st, err := WriteFile(context.Background(), path, cfg, Options{Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)["."]
	if int64(len(lines)) != cfg.Lines || st.Lines != cfg.Lines {
		t.Fatalf("got %d lines (stats %d), want %d", len(lines), st.Lines, cfg.Lines)
	}
	fi, _ := os.Stat(path)
	if st.Bytes != fi.Size() {
		t.Errorf("stats bytes = %d, file has %d", st.Bytes, fi.Size())
	}
	var prev int64
	for i, l := range lines {
		s, err := parseLine(l)
		if err != nil {
			t.Fatalf("line %d %q: %v", i+1, l, err)
		}
		if s.ts < prev {
			t.Fatalf("line %d at %d comes after %d", i+1, s.ts, prev)
		}
		prev = s.ts
	}
}

func TestZipfSkew(t *testing.T) {
	cfg := small(func(c *Config) { c.Lines = 200_000; c.Products = 10_000 })
	path := filepath.Join(t.TempDir(), "sales.tsv")
	if _, err := WriteFile(context.Background(), path, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	sold := make(map[int64]int, cfg.Products)
	for _, l := range readLines(t, path)["."] {
		s, err := parseLine(l)
		if err != nil {
			t.Fatal(err)
		}
		sold[s.product]++
	}
	counts := make([]int, cfg.Products) // unsold products count as zero
	i := 0
	for _, n := range sold {
		counts[i] = n
		i++
	}
	slices.Sort(counts)
	top, median := counts[len(counts)-1], counts[len(counts)/2]
	if top < 20*max(median, 1) {
		t.Errorf("top product sold %d, median %d: want the top ≥ 20× the median", top, median)
	}
	// The best seller is not simply product 1: ranks map to ids through a bijection.
	cat := NewCatalog(cfg)
	if cat.ProductAt(0) == 1 && cat.ProductAt(1) == 2 {
		t.Errorf("rank 0 and 1 are products 1 and 2; want them spread over the ids")
	}
	seen := map[int64]bool{}
	for r := range uint64(cfg.Products) {
		id := cat.ProductAt(r)
		if id < 1 || id > cfg.Products || seen[id] {
			t.Fatalf("ProductAt(%d) = %d: not a bijection onto 1…%d", r, id, cfg.Products)
		}
		seen[id] = true
	}
}

func TestCategoriesPerProduct(t *testing.T) {
	tests := []struct {
		categories int32
		minRatio   int // largest category ÷ smallest, at least
	}{
		{1, 1},
		{2, 1},
		{100, 10},
		{1000, 30},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(int(tt.categories)), func(t *testing.T) {
			cat := NewCatalog(Config{Products: 1_000_000, Categories: tt.categories, Seed: 3})
			size := map[int32]int{}
			perProduct := map[int]int{}
			for id := int64(1); id <= 200_000; id++ {
				cs := cat.Categories(id)
				if len(cs) < 1 || len(cs) > 3 || len(cs) > int(tt.categories) {
					t.Fatalf("product %d has %d categories", id, len(cs))
				}
				perProduct[len(cs)]++
				for i, c := range cs {
					if c < 1 || c > tt.categories {
						t.Fatalf("product %d: category %d outside 1…%d", id, c, tt.categories)
					}
					if slices.Contains(cs[:i], c) {
						t.Fatalf("product %d: category %d twice in %v", id, c, cs)
					}
					size[c]++
				}
				if !slices.Equal(cs, cat.Categories(id)) {
					t.Fatalf("product %d: categories not deterministic", id)
				}
			}
			if tt.categories >= 3 && (perProduct[1] == 0 || perProduct[2] == 0 || perProduct[3] == 0) {
				t.Errorf("products per category count = %v, want some with 1, 2 and 3", perProduct)
			}
			lo, hi := 1<<30, 0
			for _, n := range size {
				lo, hi = min(lo, n), max(hi, n)
			}
			if len(size) != int(tt.categories) || hi < tt.minRatio*lo {
				t.Errorf("%d categories used, sizes %d…%d: want all used and the largest ≥ %d× the smallest", len(size), lo, hi, tt.minRatio)
			}
		})
	}
}

func TestBadRate(t *testing.T) {
	tests := []struct {
		rate    float64
		minFrac float64
		maxFrac float64
	}{
		{0, 0, 0},
		{0.05, 0.04, 0.06},
		{1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatFloat(tt.rate, 'g', -1, 64), func(t *testing.T) {
			cfg := small(func(c *Config) { c.BadRate = tt.rate; c.TimeFormat = Mixed })
			dir := t.TempDir()
			st, err := WriteDir(context.Background(), dir, cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			reasons := map[string]int{}
			var bad int64
			for _, lines := range readLines(t, dir) {
				for _, l := range lines {
					if _, err := parseLine(l); err != nil {
						bad++
						reason, _, _ := strings.Cut(err.Error(), ":")
						reasons[reason]++
					}
				}
			}
			if bad != st.BadLines {
				t.Errorf("parser rejects %d lines, stats say %d bad", bad, st.BadLines)
			}
			if f := float64(bad) / float64(cfg.Lines); f < tt.minFrac || f > tt.maxFrac {
				t.Errorf("bad fraction %.4f, want %v…%v", f, tt.minFrac, tt.maxFrac)
			}
			if tt.rate > 0 {
				// Field count, non-numeric id, zero quantity (out of range), negative
				// price, timestamp.
				for _, want := range []string{"field count", "not a number", "out of range", "price", "timestamp"} {
					if reasons[want] == 0 {
						t.Errorf("no bad line of kind %q; got %v", want, reasons)
					}
				}
			}
		})
	}
}

func TestComplete(t *testing.T) {
	cfg := small(func(c *Config) { c.Lines = 0; c.Rate = 0.5 })
	dir := t.TempDir()
	if Complete(dir, cfg) {
		t.Fatal("empty folder is complete")
	}
	if _, err := WriteDir(context.Background(), dir, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want bool
	}{
		{"same", cfg, true},
		{"same with defaults spelled out", cfg.WithDefaults(), true},
		{"same line count as lines", small(func(c *Config) { c.Lines = cfg.TotalLines() }), true},
		{"another seed", small(func(c *Config) { c.Lines = 0; c.Rate = 0.5; c.Seed = 8 }), false},
		{"another rate", small(func(c *Config) { c.Lines = 0; c.Rate = 0.6 }), false},
		{"gzipped", small(func(c *Config) { c.Lines = 0; c.Rate = 0.5; c.Gzip = true }), false},
		{"longer", small(func(c *Config) { c.Lines = 0; c.Rate = 0.5; c.End = c.End.Add(time.Hour) }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Complete(dir, tt.cfg); got != tt.want {
				t.Errorf("Complete = %v, want %v", got, tt.want)
			}
		})
	}

	// Another config must not be mixed into a finished folder.
	other := small(func(c *Config) { c.Seed = 99 })
	if _, err := WriteDir(context.Background(), dir, other, Options{}); err == nil {
		t.Error("WriteDir over another config's output succeeded; want an error")
	}
	// Regenerating the same config is fine and leaves it complete.
	if _, err := WriteDir(context.Background(), dir, cfg, Options{}); err != nil || !Complete(dir, cfg) {
		t.Errorf("rewrite: err %v, complete %v", err, Complete(dir, cfg))
	}
	if err := os.Remove(filepath.Join(dir, MarkerName)); err != nil {
		t.Fatal(err)
	}
	if Complete(dir, cfg) {
		t.Error("complete without a marker")
	}
}

func TestCancelLeavesNoMarker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if _, err := WriteDir(ctx, dir, small(nil), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteDir err = %v, want context.Canceled", err)
	}
	if Complete(dir, small(nil)) {
		t.Error("cancelled output is complete")
	}
	if _, err := WriteFile(ctx, filepath.Join(dir, "f.tsv"), small(nil), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteFile err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "f.tsv")); err == nil {
		t.Error("cancelled WriteFile left a file")
	}
}

func TestPlan(t *testing.T) {
	cfg := Config{Start: day, End: day.Add(7 * 24 * time.Hour), Rate: DefaultRate, Seed: 1}.WithDefaults()
	bs := plan(cfg)
	if len(bs) != 168 {
		t.Fatalf("%d buckets, want 168", len(bs))
	}
	var sum int64
	byHour := [24]int64{}
	for _, b := range bs {
		sum += b.lines
		byHour[time.Unix(b.hour, 0).UTC().Hour()] += b.lines
	}
	if want := cfg.TotalLines(); sum != want || want != 233_331_840 {
		t.Errorf("lines sum to %d, TotalLines %d, want 233331840 (385.8/s for a week)", sum, want)
	}
	if byHour[4]*3 > byHour[20] {
		t.Errorf("4 am sells %d, 8 pm %d: want a night trough", byHour[4], byHour[20])
	}
	surging := 0
	for _, b := range bs {
		if len(b.surges) > 0 {
			surging++
		}
	}
	if surging == 0 || surging > len(bs)/2 {
		t.Errorf("%d of %d hours have a surging product; want some, not most", surging, len(bs))
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"ok", func(*Config) {}, ""},
		{"no start", func(c *Config) { c.Start = time.Time{} }, "start"},
		{"end before start", func(c *Config) { c.End = c.Start.Add(-time.Hour) }, "end"},
		{"negative rate", func(c *Config) { c.Lines = 0; c.Rate = -1 }, "rate"},
		{"bad rate above 1", func(c *Config) { c.BadRate = 1.5 }, "bad_rate"},
		{"time format", func(c *Config) { c.TimeFormat = "iso" }, "time_format"},
		{"parts", func(c *Config) { c.Parts = -1 }, "parts"},
		{"products", func(c *Config) { c.Products = -5 }, "products"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := small(tt.mod).Validate()
			var fe *FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
				t.Errorf("Validate = %v, want an error about %s", err, tt.field)
			}
		})
	}
}
