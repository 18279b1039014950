package loggen

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Traffic shape, in UTC. Nights are a fifth of the evening peak; weekends start later,
// run flatter through the day and sell more overall.
var (
	weekdayShape = [24]float64{
		0.45, 0.32, 0.22, 0.17, 0.15, 0.18, 0.30, 0.55, 0.80, 0.95, 1.05, 1.15,
		1.25, 1.20, 1.15, 1.10, 1.12, 1.20, 1.35, 1.55, 1.70, 1.60, 1.20, 0.75,
	}
	weekendShape = [24]float64{
		0.55, 0.40, 0.28, 0.20, 0.16, 0.16, 0.20, 0.30, 0.50, 0.75, 1.00, 1.20,
		1.30, 1.35, 1.35, 1.30, 1.30, 1.30, 1.35, 1.45, 1.50, 1.40, 1.10, 0.80,
	}
	dayFactor = [7]float64{ // time.Weekday order: Sunday first
		1.10, 0.95, 0.93, 0.95, 0.98, 1.05, 1.15,
	}
)

// Spikes and surges. Each is decided by a hash of (seed, hour), so every part of an hour,
// generated on any worker, agrees on them.
const (
	spikeChance = 0.03 // of hours that are 2–5 times busier than their shape says

	surgeChance   = 0.08 // of hours in which a hot product starts to surge
	surgeMinHours = 2    // a surge lasts 2–6 hours
	surgeMaxHours = 6
	surgeMinShare = 0.01 // and takes 1–6% of each of those hours' sales
	surgeMaxShare = 0.06
	surgeColdRank = 1000 // surging products come from outside the usual best sellers
)

// surge is one hot product's share of an hour's sales.
type surge struct {
	rank  uint64
	share float64
}

// bucket is the slice of [Start, End) inside one clock hour: its objects hold the sales
// whose timestamps fall in it.
type bucket struct {
	hour   int64 // unix seconds of the clock hour
	start  int64 // first second of sales, ≥ hour
	secs   int64 // seconds of sales, ≤ 3600
	lines  int64 // lines in the whole bucket, all parts
	surges []surge
}

// hash01 returns a hash of (seed, hour, salt) as a fraction in [0, 1).
func hash01(seed uint64, hour int64, salt uint64) float64 {
	return float64(mix(mix(seed^salt)+uint64(hour))>>11) / (1 << 53)
}

func hourWeight(seed uint64, hour int64) float64 {
	t := time.Unix(hour, 0).UTC()
	shape := &weekdayShape
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		shape = &weekendShape
	}
	w := shape[t.Hour()] * dayFactor[t.Weekday()]
	if hash01(seed, hour, 1) < spikeChance {
		w *= 2 + 3*hash01(seed, hour, 2)
	}
	return w
}

// surgesAt returns the hot products surging in hour: those whose surge started in one of
// the surgeMaxHours hours up to it and has not yet ended.
func surgesAt(seed uint64, hour int64, products uint64) []surge {
	var out []surge
	for back := int64(0); back < surgeMaxHours; back++ {
		h := hour - back*3600
		if hash01(seed, h, 3) >= surgeChance {
			continue
		}
		dur := surgeMinHours + int64(hash01(seed, h, 4)*(surgeMaxHours-surgeMinHours+1))
		if back >= dur {
			continue
		}
		rank := uint64(hash01(seed, h, 5) * float64(products))
		if products > 2*surgeColdRank {
			rank = surgeColdRank + rank%(products-surgeColdRank)
		}
		out = append(out, surge{rank: rank, share: surgeMinShare + (surgeMaxShare-surgeMinShare)*hash01(seed, h, 6)})
	}
	return out
}

// plan splits cfg's lines over the hours of [Start, End) by the traffic shape. The counts
// add up to exactly TotalLines: each bucket gets the floor of its share, and the leftover
// lines go to the buckets with the largest remainders (the earlier one on a tie).
func plan(cfg Config) []bucket {
	start, end := cfg.Start.Unix(), cfg.End.Unix()
	var bs []bucket
	var weights []float64
	var sum float64
	for h := start - start%3600; h < end; h += 3600 {
		b := bucket{hour: h, start: max(h, start)}
		b.secs = min(h+3600, end) - b.start
		w := hourWeight(cfg.Seed, h) * float64(b.secs) / 3600
		bs = append(bs, b)
		weights = append(weights, w)
		sum += w
	}
	total := cfg.TotalLines()
	type rem struct {
		i int
		r float64
	}
	rems := make([]rem, len(bs))
	var given int64
	for i := range bs {
		exact := float64(total) * weights[i] / sum
		n := int64(math.Floor(exact))
		bs[i].lines = n
		given += n
		rems[i] = rem{i, exact - float64(n)}
	}
	slices.SortStableFunc(rems, func(a, b rem) int { return cmp.Compare(b.r, a.r) })
	for k := 0; given < total; k = (k + 1) % len(rems) {
		bs[rems[k].i].lines++
		given++
	}
	for i := range bs {
		bs[i].surges = surgesAt(cfg.Seed, bs[i].hour, uint64(cfg.Products))
	}
	return bs
}
