package salesrank

import (
	"cmp"
	"math"
	"slices"
)

// PastRanks are full ranks kept only to compare with: each product's rank in each category,
// without its units. Movers, and a top list's change against a day before, need no more,
// and a replica holds them in 8 bytes a rank (12 for product ids of 2^32 and above) where
// Standings take 20: it holds a day-old set beside the current one, and loads a new one of
// each every hour while it still serves the old.
//
// PastRanks are built once (a PastRanksBuilder, or Standings.Past) and then only read: safe
// for concurrent use. A nil *PastRanks ranks nothing.
type PastRanks struct {
	SnapshotID int64  // the publication that carried them
	Window     Window // Window.End is the cutoff they rank at

	cats []pastCategory // sorted by id
	// Each category's product ids, ascending: in ids32 while every id is below 2^32, the
	// usual case, and in ids64 (ids32 then nil) once one is not.
	ids32 []uint32
	ids64 []int64
	ranks []uint32 // the rank of the product at the same position of the ids
}

type pastCategory struct {
	id         int32
	start, end int // its products' positions in the ids and ranks
}

// Len returns how many (category, product) pairs p ranks.
func (p *PastRanks) Len() int {
	if p == nil {
		return 0
	}
	return len(p.ranks)
}

// ProductsRanked returns how many products category ranked (0 if it sold nothing).
func (p *PastRanks) ProductsRanked(category int32) int {
	if c := p.find(category); c != nil {
		return c.end - c.start
	}
	return 0
}

// Rank returns product's rank in category, from 1, and false if it sold nothing there.
func (p *PastRanks) Rank(category int32, product int64) (int, bool) {
	c := p.find(category)
	if c == nil {
		return 0, false
	}
	var (
		i     int
		found bool
	)
	if p.ids64 != nil {
		i, found = slices.BinarySearch(p.ids64[c.start:c.end], product)
	} else if product >= 0 && product <= math.MaxUint32 {
		i, found = slices.BinarySearch(p.ids32[c.start:c.end], uint32(product))
	}
	if !found {
		return 0, false
	}
	return int(p.ranks[c.start+i]), true
}

func (p *PastRanks) find(category int32) *pastCategory {
	if p == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(p.cats, category, func(c pastCategory, id int32) int { return cmp.Compare(c.id, id) })
	if !ok {
		return nil
	}
	return &p.cats[i]
}

// Past returns s's ranks as PastRanks.
func (s *Standings) Past() *PastRanks {
	if s == nil {
		return nil
	}
	var b PastRanksBuilder
	b.Grow(s.Len())
	for i := range s.cats {
		if err := b.Add(s.cats[i].id, s.category(i)); err != nil {
			panic("salesrank: standings out of order: " + err.Error()) // NewStandings and StandingsBuilder order them
		}
	}
	return b.PastRanks(s.SnapshotID, s.Window)
}

// PastRanksBuilder makes PastRanks from categories in rank order, as a store reads them
// back.
type PastRanksBuilder struct {
	p       PastRanks
	scratch []uint64 // one category's ranks, packed with their ids to sort by id
}

// Grow makes room for n more products.
func (b *PastRanksBuilder) Grow(n int) {
	if b.p.ids64 != nil {
		b.p.ids64 = slices.Grow(b.p.ids64, n)
	} else {
		b.p.ids32 = slices.Grow(b.p.ids32, n)
	}
	b.p.ranks = slices.Grow(b.p.ranks, n)
}

// Add appends category's products, which must be in rank order; categories must come in
// ascending order, each once. It keeps their ranks, sorted by product id.
func (b *PastRanksBuilder) Add(category int32, ranked []Ranked) error {
	var last *int32
	if n := len(b.p.cats); n > 0 {
		last = &b.p.cats[n-1].id
	}
	if err := checkAdd(last, len(b.p.ranks), category, ranked); err != nil || len(ranked) == 0 {
		return err
	}
	start := len(b.p.ranks)
	if b.p.ids64 == nil && slices.ContainsFunc(ranked, func(r Ranked) bool { return r.ProductID > math.MaxUint32 }) {
		b.widen()
	}
	if b.p.ids64 != nil {
		type rankOf struct {
			product int64
			rank    uint32
		}
		byID := make([]rankOf, len(ranked))
		for i, r := range ranked {
			byID[i] = rankOf{r.ProductID, uint32(i + 1)}
		}
		slices.SortFunc(byID, func(a, b rankOf) int { return cmp.Compare(a.product, b.product) })
		for _, r := range byID {
			b.p.ids64 = append(b.p.ids64, r.product)
			b.p.ranks = append(b.p.ranks, r.rank)
		}
	} else {
		// id<<32 | rank sorts by id: ids are unique within a category.
		b.scratch = slices.Grow(b.scratch[:0], 2*len(ranked))
		packed, tmp := b.scratch[:len(ranked)], b.scratch[len(ranked):2*len(ranked)]
		for i, r := range ranked {
			packed[i] = uint64(r.ProductID)<<32 | uint64(i+1)
		}
		for _, v := range sortByHigh32(packed, tmp) {
			b.p.ids32 = append(b.p.ids32, uint32(v>>32))
			b.p.ranks = append(b.p.ranks, uint32(v))
		}
	}
	b.p.cats = append(b.p.cats, pastCategory{id: category, start: start, end: len(b.p.ranks)})
	return nil
}

// widen moves the ids to ids64, for a product id of 2^32 or more.
func (b *PastRanksBuilder) widen() {
	b.p.ids64 = make([]int64, len(b.p.ids32), cap(b.p.ids32))
	for i, id := range b.p.ids32 {
		b.p.ids64[i] = int64(id)
	}
	b.p.ids32 = nil
}

// PastRanks returns what was added, with its window and snapshot id. The builder must not
// be used after.
func (b *PastRanksBuilder) PastRanks(snapshotID int64, w Window) *PastRanks {
	p := &b.p
	p.SnapshotID, p.Window = snapshotID, w
	b.scratch = nil
	return p
}

// sortByHigh32 sorts a by its high 32 bits, using tmp (len(a)) as scratch, and returns
// the sorted slice: a or tmp. An LSD radix sort, one pass per byte that varies: a
// category of tens of thousands of products sorts in a few sequential passes.
func sortByHigh32(a, tmp []uint64) []uint64 {
	if len(a) < 256 {
		slices.Sort(a)
		return a
	}
	src, dst := a, tmp
	for shift := 32; shift < 64; shift += 8 {
		var count [256]int
		for _, v := range src {
			count[byte(v>>shift)]++
		}
		if count[byte(src[0]>>shift)] == len(src) {
			continue // every entry has this byte
		}
		sum := 0
		for i := range count {
			count[i], sum = sum, sum+count[i]
		}
		for _, v := range src {
			k := byte(v >> shift)
			dst[count[k]] = v
			count[k]++
		}
		src, dst = dst, src
	}
	return src
}
