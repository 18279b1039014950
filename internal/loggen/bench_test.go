package loggen

import (
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkWrite measures generation alone (into io.Discard) of one default-rate hour,
// ≈ 1.39 M lines, as one sorted stream on every core. Reported: lines/s and bytes/s.
func BenchmarkWrite(b *testing.B) {
	for _, tt := range []struct {
		name string
		tf   TimeFormat
		bad  float64
	}{
		{"unix", Unix, 0},
		{"rfc3339", RFC3339, 0},
		{"mixed-bad1%", Mixed, 0.01},
	} {
		b.Run(tt.name, func(b *testing.B) {
			start := time.Date(2026, 11, 20, 18, 0, 0, 0, time.UTC)
			cfg := Config{Start: start, End: start.Add(time.Hour), Seed: 1, TimeFormat: tt.tf, BadRate: tt.bad}
			var lines, bytes int64
			b.ReportAllocs()
			for b.Loop() {
				w := &countingWriter{w: io.Discard}
				st, err := Write(context.Background(), w, cfg, Options{})
				if err != nil {
					b.Fatal(err)
				}
				lines += st.Lines
				bytes += w.n
			}
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(lines)/secs, "lines/s")
			b.ReportMetric(float64(bytes)/secs/1e6, "MB/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(lines), "ns/line")
		})
	}
}

// BenchmarkLine measures one line on one core: the per-line cost and allocations.
func BenchmarkLine(b *testing.B) {
	start := time.Date(2026, 11, 20, 18, 0, 0, 0, time.UTC)
	cfg := Config{Start: start, End: start.Add(time.Hour), Seed: 1}.WithDefaults()
	bs := plan(cfg)
	g := newGenerator(cfg, NewCatalog(cfg))
	g.seed(&slice{b: &bs[0], start: bs[0].start})
	buf := make([]byte, 0, blockSize)
	var n int
	b.ReportAllocs()
	for b.Loop() {
		buf = g.appendLine(buf[:0], &bs[0], start.Unix(), flawless)
		n += len(buf)
	}
	b.ReportMetric(float64(n)/float64(b.N), "bytes/line")
}
