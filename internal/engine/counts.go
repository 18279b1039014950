package engine

import (
	"iter"

	"github.com/salesrank/salesrank"
)

// Counts sums units per (category, product). It is the engine's hot data structure: an
// open-addressing hash table with linear probing, specialised for its key.
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
}

// slot is 24 bytes: the product, the category plus one (so 0 marks an empty slot; categories
// go up to 2^31−1, so the sum fits), and the units.
type slot struct {
	product int64
	cat     uint32
	units   int64
}

const minSlots = 1 << 10

// hash mixes both halves of the key with a multiply-xorshift finalizer, so ids that differ
// only in high bits, or that share low bits, still spread over the table.
func (c *Counts) hash(cat uint32, product int64) uint64 {
	h := uint64(product) ^ c.seed
	h ^= uint64(cat) * 0x9e3779b97f4a7c15
	h = (h ^ h>>30) * 0xbf58476d1ce4e5b9
	h = (h ^ h>>27) * 0x94d049bb133111eb
	return h ^ h>>31
}

// Add adds units to the key (category, product).
func (c *Counts) Add(category int32, product int64, units int64) {
	if c.len >= c.growAt {
		c.grow()
	}
	cat := uint32(category) + 1
	i := c.hash(cat, product) & c.mask
	for {
		s := &c.slots[i]
		if s.cat == cat && s.product == product {
			s.units += units
			return
		}
		if s.cat == 0 {
			*s = slot{product: product, cat: cat, units: units}
			c.len++
			return
		}
		i = (i + 1) & c.mask
	}
}

// Get returns the units of a key, 0 if it was never added.
func (c *Counts) Get(category int32, product int64) int64 {
	if c.len == 0 {
		return 0
	}
	cat := uint32(category) + 1
	for i := c.hash(cat, product) & c.mask; ; i = (i + 1) & c.mask {
		s := &c.slots[i]
		if s.cat == cat && s.product == product {
			return s.units
		}
		if s.cat == 0 {
			return 0
		}
	}
}

// Len returns the number of distinct keys.
func (c *Counts) Len() int { return c.len }

// All yields every key and its units, in no particular order.
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

// Merge adds every count of o into c.
func (c *Counts) Merge(o *Counts) {
	if c.len+o.len >= c.growAt {
		c.growFor(c.len + o.len) // once, rather than doubling step by step
	}
	var b batch
	for i := range o.slots {
		if s := &o.slots[i]; s.cat != 0 {
			b.cats[b.n], b.products[b.n], b.units[b.n] = int32(s.cat-1), s.product, s.units
			if b.n++; b.n == batchSize {
				c.AddBatch(&b)
			}
		}
	}
	c.AddBatch(&b)
}

// Reset empties c and keeps its memory for reuse.
func (c *Counts) Reset() {
	clear(c.slots)
	c.len = 0
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
		// Any odd constant works; the seed only has to be fixed per table.
		c.seed = 0x2545f4914f6cdd1d
	}
	c.slots = make([]slot, n)
	c.mask = uint64(n - 1)
	c.growAt = n / 4 * 3
	c.len = 0
	for i := range old {
		if s := &old[i]; s.cat != 0 {
			c.Add(int32(s.cat-1), s.product, s.units)
		}
	}
}

// batchSize is how many sales AddBatch looks up at once: enough independent memory loads
// in flight to hide most of a cache miss, few enough to stay in L1.
const batchSize = 64

// batch is a run of sales waiting to be added, kept as columns.
type batch struct {
	n        int
	cats     [batchSize]int32
	products [batchSize]int64
	units    [batchSize]int64
	slot     [batchSize]uint64
}

// AddBatch adds every sale of b and empties it. It is Add for many keys at once: it first
// computes every key's home slot and touches each, so the CPU fetches up to batchSize cache
// lines in parallel rather than one miss after another, then adds them in order.
func (c *Counts) AddBatch(b *batch) {
	if c.len+b.n >= c.growAt {
		c.growFor(c.len + b.n)
	}
	var sink uint32
	for i := range b.n {
		h := c.hash(uint32(b.cats[i])+1, b.products[i]) & c.mask
		b.slot[i] = h
		sink += c.slots[h].cat
	}
	c.sink = sink
	for i := range b.n {
		cat := uint32(b.cats[i]) + 1
		product := b.products[i]
		for j := b.slot[i]; ; j = (j + 1) & c.mask {
			s := &c.slots[j]
			if s.cat == cat && s.product == product {
				s.units += b.units[i]
				break
			}
			if s.cat == 0 {
				*s = slot{product: product, cat: cat, units: b.units[i]}
				c.len++
				break
			}
		}
	}
	b.n = 0
}
