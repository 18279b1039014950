package loggen

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// Popularity follows a Zipf law P(rank k) ∝ (zipfV + k)^-zipfS. The offset keeps the very
// top from being absurd: the best seller takes about 0.15% of all sales (a third of a
// million a week at the default rate) while the median product sells a couple of units.
const (
	zipfS = 1.1
	zipfV = 100
)

// sliceSecs is the unit of work: each minute of each part draws from its own random
// stream, so a single sorted file can still be generated on every core, a minute each,
// while the writer puts the minutes back in order with only a few minutes in memory.
const sliceSecs = 60

// blockSize is the size of the buffers lines are formatted into and written from.
const blockSize = 1 << 20

// Header is the optional first line of an object; readers skip it.
const Header = "timestamp\tproduct_id\tcategory_id\tquantity\ttotal_price\tseller_id\tbuyer_id\n"

// quantityCDF holds, out of 2^32, the chance that a quantity is at most i+1: geometric with
// P(1) = 0.7, so most sales are of one unit and a few are of many.
var quantityCDF = func() (t [24]uint64) {
	p, cum := 0.7, 0.0
	for i := range t {
		cum += p * pow(1-p, i)
		t[i] = uint64(cum * (1 << 32))
	}
	return t
}()

func pow(x float64, n int) float64 {
	r := 1.0
	for range n {
		r *= x
	}
	return r
}

// flaw is what is wrong with a deliberately bad line.
type flaw uint8

const (
	flawless flaw = iota
	flawFieldCount
	flawNonNumeric
	flawZeroQuantity
	flawNegativePrice
	flawTimestamp
	numFlaws
)

// badTimestamps are timestamps no reader should accept.
var badTimestamps = []string{"not-a-time", "", "2026-02-30T25:61:00Z", "17O0000000", "12:00:00"}

// zones are the offsets the mixed time format writes, whole hours so that an hour's
// prefix can be formatted once.
var zones = []*time.Location{
	time.FixedZone("", 2*3600),
	time.FixedZone("", -5*3600),
	time.FixedZone("", 9*3600),
}

// generator formats the lines of one slice after another into a reused buffer. It is not
// safe for concurrent use: each worker has its own.
type generator struct {
	cfg     Config
	cat     *Catalog
	pcg     *rand.PCG
	rng     *rand.Rand
	zipf    *rand.Zipf
	badRate float64
	counts  [sliceSecs]int32

	// Per-bucket timestamp prefixes for RFC 3339: "2026-11-20T13:" and its zones.
	prefixHour int64
	prefixes   [1 + 3][]byte
	suffixes   [1 + 3]string

	lines, bad int64
}

func newGenerator(cfg Config, cat *Catalog) *generator {
	g := &generator{cfg: cfg, cat: cat, pcg: rand.NewPCG(0, 0), badRate: cfg.BadRate, prefixHour: -1}
	g.rng = rand.New(g.pcg)
	if cfg.Products > 1 {
		g.zipf = rand.NewZipf(g.rng, zipfS, zipfV, uint64(cfg.Products-1))
	}
	return g
}

// partLines returns how many of a bucket's lines part p holds: the lines are dealt out evenly.
func partLines(lines int64, parts, p int) int64 {
	n := lines / int64(parts)
	if int64(p) < lines%int64(parts) {
		n++
	}
	return n
}

// slice describes one minute (or less, at the edges of [Start, End)) of one part.
type slice struct {
	b     *bucket
	part  int
	start int64 // first second
	secs  int64
	lines int64
}

// partSlices returns the slices of part p of bucket b in time order. A part's lines are spread
// over its seconds in proportion, with exact integer totals.
func partSlices(b *bucket, parts, p int) []slice {
	lines := partLines(b.lines, parts, p)
	end := b.start + b.secs
	var out []slice
	cum := func(t int64) int64 { return lines * (t - b.start) / b.secs }
	for s := b.start; s < end; {
		e := min(s-(s-b.hour)%sliceSecs+sliceSecs, end)
		out = append(out, slice{b: b, part: p, start: s, secs: e - s, lines: cum(e) - cum(s)})
		s = e
	}
	return out
}

// seed points the random stream at slice s, so that its lines depend on nothing else.
func (g *generator) seed(s *slice) {
	g.pcg.Seed(mix(g.cfg.Seed^mix(uint64(s.start))), mix(^g.cfg.Seed+uint64(s.part)*0x9e3779b97f4a7c15))
}

// slice appends the lines of s to buf, handing buf to flush whenever it is nearly full
// and carrying on with the buffer flush returns.
func (g *generator) slice(s *slice, buf []byte, flush func([]byte) ([]byte, error)) ([]byte, error) {
	g.seed(s)
	if g.cfg.TimeFormat != Unix && g.prefixHour != s.b.hour {
		g.setPrefixes(s.b.hour)
	}
	counts := g.counts[:s.secs]
	clear(counts)
	for range s.lines {
		counts[g.rng.Uint64N(uint64(s.secs))]++
	}
	var err error
	for i, c := range counts {
		ts := s.start + int64(i)
		for range c {
			f := flawless
			if g.badRate > 0 && g.rng.Float64() < g.badRate {
				f = 1 + flaw(g.rng.IntN(int(numFlaws-1)))
				g.bad++
			}
			buf = g.appendLine(buf, s.b, ts, f)
			if len(buf) > blockSize-512 {
				if buf, err = flush(buf); err != nil {
					return buf, err
				}
			}
		}
	}
	g.lines += s.lines
	return buf, nil
}

func (g *generator) setPrefixes(hour int64) {
	g.prefixHour = hour
	t := time.Unix(hour, 0).UTC()
	g.prefixes[0] = t.AppendFormat(g.prefixes[0][:0], "2006-01-02T15:")
	g.suffixes[0] = "Z"
	for i, z := range zones {
		g.prefixes[i+1] = t.In(z).AppendFormat(g.prefixes[i+1][:0], "2006-01-02T15:")
		g.suffixes[i+1] = t.In(z).Format("-07:00")
	}
}

// rank draws the popularity rank of the next sale: a surging hot product, or a Zipf
// draw over the whole catalog.
func (g *generator) rank(b *bucket) uint64 {
	if len(b.surges) > 0 {
		u := g.rng.Float64()
		for _, s := range b.surges {
			if u < s.share {
				return s.rank
			}
			u -= s.share
		}
	}
	if g.zipf == nil {
		return 0
	}
	return g.zipf.Uint64()
}

// appendLine appends one sale at ts, spoiled by f unless f is flawless.
func (g *generator) appendLine(buf []byte, b *bucket, ts int64, f flaw) []byte {
	cat := g.cat
	id := cat.ProductAt(g.rank(b))
	ph := cat.productHash(id)
	x := g.rng.Uint64()
	category := cat.category(ph, int((x&0xffff)%uint64(cat.numCategories(ph))))
	seller := cat.seller(ph, (x>>16&0xffff)%cat.numSellers(ph))
	qty := int64(1)
	for u := x >> 32; qty <= int64(len(quantityCDF)) && u >= quantityCDF[qty-1]; {
		qty++
	}
	buyer := 1 + g.rng.Int64N(g.cfg.Buyers)
	cents := qty * cat.unitPrice(ph)

	// x's bits have gone to the category, seller and quantity; the rarer choices below
	// draw afresh so they are independent of those.
	var y uint64
	if f != flawless || g.cfg.TimeFormat == Mixed {
		y = g.rng.Uint64()
	}
	switch {
	case f == flawTimestamp:
		buf = append(buf, badTimestamps[y%uint64(len(badTimestamps))]...)
	case g.cfg.TimeFormat == Unix:
		buf = strconv.AppendInt(buf, ts, 10)
	case g.cfg.TimeFormat == RFC3339:
		buf = g.appendRFC3339(buf, ts, 0)
	default: // Mixed: half unix seconds, a quarter UTC, a quarter with an offset.
		switch z := y >> 60; {
		case z < 8:
			buf = strconv.AppendInt(buf, ts, 10)
		case z < 12:
			buf = g.appendRFC3339(buf, ts, 0)
		default:
			buf = g.appendRFC3339(buf, ts, 1+int(z)%3)
		}
	}
	buf = append(buf, '\t')
	if f == flawNonNumeric {
		buf = append(buf, "SKU-"...)
	}
	buf = strconv.AppendInt(buf, id, 10)
	buf = append(buf, '\t')
	buf = strconv.AppendInt(buf, int64(category), 10)
	buf = append(buf, '\t')
	if f == flawZeroQuantity {
		qty, cents = 0, 0
	}
	buf = strconv.AppendInt(buf, qty, 10)
	buf = append(buf, '\t')
	if f == flawNegativePrice {
		buf = append(buf, '-')
	}
	buf = strconv.AppendInt(buf, cents/100, 10)
	buf = append(buf, '.', byte('0'+cents%100/10), byte('0'+cents%10), '\t')
	buf = strconv.AppendInt(buf, seller, 10)
	if f == flawFieldCount && y>>63 != 0 {
		// Six fields: the buyer is missing.
		return append(buf, '\n')
	}
	buf = append(buf, '\t')
	buf = strconv.AppendInt(buf, buyer, 10)
	if f == flawFieldCount {
		// Eight fields: a stray trailing one.
		buf = append(buf, "\tgift"...)
	}
	return append(buf, '\n')
}

// appendRFC3339 appends ts in zone z (0 is UTC) from the bucket's prefix: only the minutes
// and seconds change within an hour, and the zones are whole hours.
func (g *generator) appendRFC3339(buf []byte, ts int64, z int) []byte {
	sec := ts - g.prefixHour
	buf = append(buf, g.prefixes[z]...)
	buf = append(buf, byte('0'+sec/600), byte('0'+sec/60%10), ':', byte('0'+sec%60/10), byte('0'+sec%10))
	return append(buf, g.suffixes[z]...)
}
