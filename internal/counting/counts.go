package counting

import (
	"iter"
	"math/rand/v2"

	"github.com/salesrank/salesrank"
)

// Counts sums units per (category, product), optionally per hour of sale too. It is the
// engine's hot data structure: an open-addressing hash table with linear probing,
// specialised for its key. Tables that count a window use hour 0 throughout.
//
// Why not a Go map: a map[salesrank.Key]int64 hashes and compares the padded struct key
// through generic, out-of-line functions; profiles of a 10 M-line week showed the map at
// 70% of the run. Here the hash is a few multiplies inlined into the loop and a slot is
// compared with two integer comparisons. The zero value is an empty table ready to use.
type Counts struct {
	slots  []slot
	mask   uint64
	len    int
	growAt int
	seed   uint64
	sink   uint32 // keeps AddBatch's touching loads from being optimised away
	zeros  int    // keys whose units Add brought back to zero; see Compact
}

// slot is 24 bytes: the product, the category plus one (so 0 marks an empty slot; categories
// go up to 2^31−1, so the sum fits), the hour (hours since 1970, in what would otherwise be
// padding) and the units.
type slot struct {
	product int64
	cat     uint32
	hour    uint32
	units   int64
}

const minSlots = 1 << 10

// hash is hashKey under the table's seed.
func (c *Counts) hash(cat, hour uint32, product int64) uint64 {
	return hashKey(c.seed, cat, hour, product)
}

// hashKey mixes both halves of the key with a multiply-xorshift finalizer, so ids that differ
// only in high bits, or that share low bits, still spread over a table.
func hashKey(seed uint64, cat, hour uint32, product int64) uint64 {
	h := uint64(product) ^ seed
	h ^= (uint64(cat) | uint64(hour)<<32) * 0x9e3779b97f4a7c15
	h = (h ^ h>>30) * 0xbf58476d1ce4e5b9
	h = (h ^ h>>27) * 0x94d049bb133111eb
	return h ^ h>>31
}

// Add adds units (which may be negative) to the key (category, product) of hour 0.
func (c *Counts) Add(category int32, product int64, units int64) {
	c.AddAt(0, category, product, units)
}

// AddAt adds units (which may be negative) to the key (category, product) of an hour.
func (c *Counts) AddAt(hour uint32, category int32, product int64, units int64) {
	if c.len >= c.growAt {
		c.grow()
	}
	cat := uint32(category) + 1
	i := c.hash(cat, hour, product) & c.mask
	for {
		s := &c.slots[i]
		if s.cat == cat && s.product == product && s.hour == hour {
			if s.units == 0 {
				c.zeros--
			}
			if s.units += units; s.units == 0 {
				c.zeros++
			}
			return
		}
		if s.cat == 0 {
			*s = slot{product: product, cat: cat, hour: hour, units: units}
			c.len++
			if units == 0 {
				c.zeros++
			}
			return
		}
		i = (i + 1) & c.mask
	}
}

// Get returns the units of a key of hour 0, 0 if it was never added.
func (c *Counts) Get(category int32, product int64) int64 { return c.GetAt(0, category, product) }

// GetAt returns the units of a key of an hour, 0 if it was never added.
func (c *Counts) GetAt(hour uint32, category int32, product int64) int64 {
	if s := c.find(uint32(category)+1, hour, product); s != nil {
		return s.units
	}
	return 0
}

// GetBatch sets dst[i] to the units of keys[i] of hour 0, 0 for a key never added; dst
// must be as long as keys. It is Get for many keys at once: as AddBatch does, it touches
// the home slots of batchSize keys before comparing any, so that their cache misses
// overlap. Ranking an hourly step looks up 0.2–1.4 M keys in a table of 11 M.
func (c *Counts) GetBatch(keys []salesrank.Key, dst []int64) {
	if c.len == 0 {
		clear(dst[:len(keys)])
		return
	}
	var home [batchSize]uint64
	var first [batchSize]uint32 // the category (plus one) in each home slot: 0 if empty
	for lo := 0; lo < len(keys); lo += batchSize {
		batch := keys[lo:min(lo+batchSize, len(keys))]
		for i, k := range batch {
			h := c.hash(uint32(k.CategoryID)+1, 0, k.ProductID) & c.mask
			home[i], first[i] = h, c.slots[h].cat
		}
		for i, k := range batch {
			dst[lo+i] = 0
			if first[i] == 0 {
				continue // an empty home slot: never added
			}
			if s := c.probe(home[i], uint32(k.CategoryID)+1, 0, k.ProductID); s != nil {
				dst[lo+i] = s.units
			}
		}
	}
}

// find returns the slot of a key, nil if c does not hold it; cat is the category plus one,
// as in a slot.
func (c *Counts) find(cat, hour uint32, product int64) *slot {
	if c.len == 0 {
		return nil
	}
	return c.probe(c.hash(cat, hour, product)&c.mask, cat, hour, product)
}

// probe walks the table from slot i, a key's home, to the key's slot: nil if it meets an
// empty slot first.
func (c *Counts) probe(i uint64, cat, hour uint32, product int64) *slot {
	for ; ; i = (i + 1) & c.mask {
		s := &c.slots[i]
		if s.cat == cat && s.product == product && s.hour == hour {
			return s
		}
		if s.cat == 0 {
			return nil
		}
	}
}

// Len returns the number of distinct keys, those whose units came back to zero included.
func (c *Counts) Len() int { return c.len }

// Compact drops the keys whose units Add brought back to zero, if they are at least half
// the table. A window table needs it: subtracting an expired hour leaves its products at
// zero, and without it the table would keep every product ever sold.
func (c *Counts) Compact() {
	if c.zeros == 0 || c.zeros < c.len/2 {
		return
	}
	old := c.slots
	c.slots, c.len, c.zeros, c.growAt, c.mask = nil, 0, 0, 0, 0
	live := 0
	for i := range old {
		if old[i].cat != 0 && old[i].units != 0 {
			live++
		}
	}
	c.growFor(live)
	for i := range old {
		if s := &old[i]; s.cat != 0 && s.units != 0 {
			c.AddAt(s.hour, int32(s.cat-1), s.product, s.units)
		}
	}
}

// Each calls fn for every key with its hour and units, in no particular order.
func (c *Counts) Each(fn func(hour uint32, category int32, product int64, units int64)) {
	for i := range c.slots {
		if s := &c.slots[i]; s.cat != 0 {
			fn(s.hour, int32(s.cat-1), s.product, s.units)
		}
	}
}

// All yields every key and its units, in no particular order. In a table with several
// hours, a key appears once per hour.
func (c *Counts) All() iter.Seq2[salesrank.Key, int64] {
	return func(yield func(salesrank.Key, int64) bool) {
		for i := range c.slots {
			s := &c.slots[i]
			if s.cat != 0 && !yield(salesrank.Key{CategoryID: int32(s.cat - 1), ProductID: s.product}, s.units) {
				return
			}
		}
	}
}

// Shards splits All into n sequences over disjoint ranges of the table, for ranking on n
// goroutines. Each key is in exactly one shard.
func (c *Counts) Shards(n int) []iter.Seq2[salesrank.Key, int64] {
	n = max(1, min(n, len(c.slots)))
	out := make([]iter.Seq2[salesrank.Key, int64], n)
	for i := range n {
		lo, hi := len(c.slots)*i/n, len(c.slots)*(i+1)/n
		out[i] = func(yield func(salesrank.Key, int64) bool) {
			for j := lo; j < hi; j++ {
				s := &c.slots[j]
				if s.cat != 0 && !yield(salesrank.Key{CategoryID: int32(s.cat - 1), ProductID: s.product}, s.units) {
					return
				}
			}
		}
	}
	return out
}

// Merge adds every count of o into c.
func (c *Counts) Merge(o *Counts) {
	// Make room for the union once, rather than doubling step by step. Sizing for the sum
	// would double the table for nothing when the two share most keys (two workers' counts
	// of one object over a window), so the share is estimated from a sample of o's keys.
	if keys := c.unionLen(o); keys >= c.growAt {
		c.growFor(keys)
	}
	var b batch
	for i := range o.slots {
		if s := &o.slots[i]; s.cat != 0 {
			b.cats[b.n], b.hours[b.n], b.products[b.n], b.units[b.n] = int32(s.cat-1), s.hour, s.product, s.units
			if b.n++; b.n == batchSize {
				c.AddBatch(&b)
			}
		}
	}
	c.AddBatch(&b)
}

// unionLen estimates how many distinct keys c and o hold together, from up to 512 of o's
// keys spread over its table: exact for tables that share all or none of their keys, close
// enough otherwise (AddBatch still grows the table if the estimate is short).
func (c *Counts) unionLen(o *Counts) int {
	if c.len == 0 || o.len == 0 {
		return c.len + o.len
	}
	const samples = 512
	seen, shared := 0, 0
	step := max(1, len(o.slots)/samples)
	for i := 0; i < len(o.slots); i += step {
		if s := &o.slots[i]; s.cat != 0 {
			seen++
			if c.find(s.cat, s.hour, s.product) != nil {
				shared++
			}
		}
	}
	if seen == 0 {
		return c.len + o.len
	}
	return c.len + int(int64(o.len)*int64(seen-shared)/int64(seen))
}

// Reset empties c and keeps its memory for reuse.
func (c *Counts) Reset() {
	clear(c.slots)
	c.len, c.zeros = 0, 0
}

// Reserve makes room for keys keys in all, so that adding up to that many grows the table
// no more. Growing as keys arrive allocates every size on the way, reinserts into each and
// holds the old table beside the new one at the peak: perf put 7% of a first run's CPU
// (bench/rank.sh, a window of 2 M keys) in it, most of it the kernel zeroing new memory.
func (c *Counts) Reserve(keys int) {
	if keys >= c.growAt {
		c.growFor(keys)
	}
}

// grow enlarges the table (or allocates the first one) and reinserts every key.
func (c *Counts) grow() { c.growFor(c.len + 1) }

// growFor grows the table to hold keys at most 3/4 full (linear probing slows sharply past
// that). Up to 4 M slots (96 MiB) it grows fourfold, not twofold: every growth reinserts
// every key into new memory, and profiles of a 10 M-line run showed doubling spend a fifth
// of the run reinserting. Past that it doubles, so a table of a week's keys never holds
// four times the memory it needs.
func (c *Counts) growFor(keys int) {
	factor := 4
	if len(c.slots) >= 1<<22 {
		factor = 2
	}
	n := max(factor*len(c.slots), minSlots)
	for n/4*3 <= keys {
		n *= 2
	}
	old := c.slots
	if c.seed == 0 {
		// The seed is fixed per table but differs between tables, so that walking one
		// table in slot order (Merge, Each) while adding to another does not visit the
		// other's slots in order too, which piles keys into long probe runs.
		c.seed = rand.Uint64() | 1
	}
	c.slots = hugeSlice[slot](n)
	c.mask = uint64(n - 1)
	c.growAt = n / 4 * 3
	c.len, c.zeros = 0, 0
	c.reinsert(old)
}

// reinsert puts every key of an old table into c, which has room for them. The keys are
// distinct, so each goes to the first empty slot from its home, no comparison needed; as in
// AddBatch, the home slots of batchSize keys are touched first so that their cache misses
// overlap.
func (c *Counts) reinsert(old []slot) {
	var from [batchSize]int
	var home [batchSize]uint64
	var sink uint32
	for lo := 0; lo < len(old); {
		n := 0
		for ; lo < len(old) && n < batchSize; lo++ {
			if s := &old[lo]; s.cat != 0 {
				h := c.hash(s.cat, s.hour, s.product) & c.mask
				from[n], home[n] = lo, h
				sink += c.slots[h].cat
				n++
			}
		}
		for i := range n {
			s := &old[from[i]]
			j := home[i]
			for c.slots[j].cat != 0 {
				j = (j + 1) & c.mask
			}
			c.slots[j] = *s
			if s.units == 0 {
				c.zeros++
			}
		}
		c.len += n
	}
	c.sink = sink
}

// batchSize is how many sales AddBatch looks up at once: enough independent memory loads
// in flight to hide most of a cache miss, few enough to stay in L1.
const batchSize = 64

// Batch is a run of sales waiting to be added, kept as columns; see AddBatch and Push.
type Batch = batch

// Push queues units (which may be negative) for (hour, category, product) in b, adding the
// batch to c once full. Call c.AddBatch(b) at the end for what is left.
func (c *Counts) Push(b *Batch, hour uint32, category int32, product int64, units int64) {
	b.cats[b.n], b.hours[b.n], b.products[b.n], b.units[b.n] = category, hour, product, units
	if b.n++; b.n == batchSize {
		c.AddBatch(b)
	}
}

// batch is a run of sales waiting to be added, kept as columns.
type batch struct {
	n        int
	cats     [batchSize]int32
	hours    [batchSize]uint32
	products [batchSize]int64
	units    [batchSize]int64
	slot     [batchSize]uint64
}

// AddBatch adds every sale of b and empties it; units may be negative, as in AddAt. It is
// AddAt for many keys at once: it first computes every key's home slot and touches each,
// so the CPU fetches up to batchSize cache lines in parallel rather than one miss after
// another, then adds them in order.
func (c *Counts) AddBatch(b *batch) {
	if c.len+b.n >= c.growAt {
		c.growFor(c.len + b.n)
	}
	var sink uint32
	for i := range b.n {
		h := c.hash(uint32(b.cats[i])+1, b.hours[i], b.products[i]) & c.mask
		b.slot[i] = h
		sink += c.slots[h].cat
	}
	c.sink = sink
	for i := range b.n {
		cat, hour := uint32(b.cats[i])+1, b.hours[i]
		product := b.products[i]
		for j := b.slot[i]; ; j = (j + 1) & c.mask {
			s := &c.slots[j]
			if s.cat == cat && s.product == product && s.hour == hour {
				if s.units == 0 {
					c.zeros--
				}
				if s.units += b.units[i]; s.units == 0 {
					c.zeros++
				}
				break
			}
			if s.cat == 0 {
				*s = slot{product: product, cat: cat, hour: hour, units: b.units[i]}
				c.len++
				if b.units[i] == 0 {
					c.zeros++
				}
				break
			}
		}
	}
	b.n = 0
}
