package salesrank

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Standings are the full ranks at one cutoff: every product with units in the window, in
// every category, in ranking order (units desc, then product id asc, as Rank). They answer
// where any product stands ("#1,234 of 9,876 in category 7"), and, kept for a day, how far
// a product of today's top list climbed. A snapshot's top lists are their first K entries.
//
// Standings are built once (NewStandings, or a StandingsBuilder fed category by category)
// and then only read: safe for concurrent use.
type Standings struct {
	SnapshotID int64  // the publication that carried them; set by the store
	Window     Window // Window.End is the cutoff they rank at

	cats   []standingsCategory // sorted by id; only categories with a ranked product
	ranked []Ranked            // each category's products in rank order, one category after another
	// byProduct holds every position of ranked, sorted by product id, then category id: a
	// product's ranks are one run of it. It is built on the first lookup (indexOnce): a
	// ranker only publishes full ranks and never looks a product up, and the index is a
	// fifth of their memory and a third of the time it takes to make them.
	byProduct []uint32
	indexOnce sync.Once
}

// Ranked is one product in a category's full ranks.
type Ranked struct {
	ProductID int64
	TotalSold int64
}

type standingsCategory struct {
	id    int32
	start int // its products are ranked[start : the next category's start]
}

// Standing is where one product stands in one category.
type Standing struct {
	CategoryID     int32
	Rank           int // from 1
	TotalSold      int64
	ProductsRanked int // how many products the category ranks
}

// CategoryCount is a category and how many products its full ranks hold.
type CategoryCount struct {
	CategoryID     int32
	ProductsRanked int
}

// NewStandings ranks every key with a positive total in parts (shards that share no key,
// as for RankParts), each category on its own, on every core.
func NewStandings(w Window, parts []iter.Seq2[Key, int64]) *Standings {
	return NewStandingsReusing(w, parts, nil)
}

// NewStandingsReusing is NewStandings that may take the memory of spare, full ranks that
// nobody uses any more (nil: none); spare must not be used after. A ranker makes full
// ranks of some 180 MB every hour at the seed's scale, and memory already touched costs a
// tenth of what fresh memory does on the first write to each page.
func NewStandingsReusing(w Window, parts []iter.Seq2[Key, int64], spare *Standings) *Standings {
	// Count each category's keys per part, lay the categories out one after another, and
	// let each part write its keys into its own stretch of every category: no locks, and
	// two passes over the keys.
	counts := make([]catSlots, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		wg.Go(func() {
			for k, v := range part {
				if v > 0 {
					*counts[i].at(k.CategoryID)++
				}
			}
		})
	}
	wg.Wait()
	var total catSlots
	for i := range counts {
		counts[i].each(func(c int32, n int) { *total.at(c) += n })
	}
	s := &Standings{Window: w}
	total.each(func(c int32, _ int) { s.cats = append(s.cats, standingsCategory{id: c}) })
	slices.SortFunc(s.cats, func(a, b standingsCategory) int { return cmp.Compare(a.id, b.id) })
	n := 0
	var next catSlots // where the next part writes, per category
	for i := range s.cats {
		s.cats[i].start = n
		*next.at(s.cats[i].id) = n
		n += *total.at(s.cats[i].id)
	}
	if spare != nil && cap(spare.ranked) >= n {
		s.ranked = spare.ranked[:n] // every entry is written below
		spare.ranked, spare.cats, spare.byProduct = nil, nil, nil
	} else {
		s.ranked = make([]Ranked, n)
	}
	for i := range counts {
		// counts[i] becomes where part i writes each category.
		counts[i].each(func(c int32, k int) {
			at := next.at(c)
			*counts[i].at(c) = *at
			*at += k
		})
	}
	for i, part := range parts {
		wg.Go(func() {
			at := &counts[i]
			for k, v := range part {
				if v > 0 {
					p := at.at(k.CategoryID)
					s.ranked[*p] = Ranked{ProductID: k.ProductID, TotalSold: v}
					*p++
				}
			}
		})
	}
	wg.Wait()
	s.sortCategories()
	return s
}

// catSlots holds an int per category: in a slice for the small ids categories have in
// practice, in a map beyond (a map access per key was most of a ranking's time).
type catSlots struct {
	dense  []int
	used   []bool
	sparse map[int32]*int
}

// at returns the category's slot, made zero if new.
func (x *catSlots) at(c int32) *int {
	if c >= 0 && c < denseCategories {
		if int(c) >= len(x.dense) {
			n := max(int(c)+1, 2*len(x.dense))
			x.dense = append(x.dense, make([]int, min(n, denseCategories)-len(x.dense))...)
			x.used = append(x.used, make([]bool, len(x.dense)-len(x.used))...)
		}
		x.used[c] = true
		return &x.dense[c]
	}
	if x.sparse == nil {
		x.sparse = make(map[int32]*int)
	}
	p := x.sparse[c]
	if p == nil {
		p = new(int)
		x.sparse[c] = p
	}
	return p
}

// each calls fn with every category that has a slot and its value.
func (x *catSlots) each(fn func(c int32, n int)) {
	for c, ok := range x.used {
		if ok {
			fn(int32(c), x.dense[c])
		}
	}
	for c, p := range x.sparse {
		fn(c, *p)
	}
}

// sortCategories puts each category's products in rank order, categories spread over
// every core.
func (s *Standings) sortCategories() {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var tmp []Ranked
			for i := int(next.Add(1) - 1); i < len(s.cats); i = int(next.Add(1) - 1) {
				tmp = sortRanked(s.category(i), tmp)
			}
		})
	}
	wg.Wait()
}

// sortRanked puts a in rank order, using tmp (grown if short, and returned) as scratch. A
// category of thousands of products is sorted by an LSD radix sort over the bytes of the
// product id, then of the inverted total, that are not the same in every entry: a few
// sequential passes, where a comparison sort's ~log2(n) passes of unpredictable branches
// took most of the time of ranking a window of 11 M keys.
func sortRanked(a, tmp []Ranked) []Ranked {
	if len(a) < 256 {
		slices.SortFunc(a, compareRanked)
		return tmp
	}
	if cap(tmp) < len(a) {
		tmp = make([]Ranked, len(a))
	}
	b := tmp[:len(a)]
	// key(r, 0…7) are the product id's bytes, key(r, 8…15) those of ^total: ascending
	// order of the 16 bytes, most significant last, is rank order.
	key := func(r Ranked, d int) byte {
		if d < 8 {
			return byte(uint64(r.ProductID) >> (8 * d))
		}
		return byte(^uint64(r.TotalSold) >> (8 * (d - 8)))
	}
	var counts [16][256]int
	for _, r := range a {
		for d := range 16 {
			counts[d][key(r, d)]++
		}
	}
	src, dst := a, b
	for d := range 16 {
		c := &counts[d]
		if c[key(src[0], d)] == len(src) {
			continue // every entry has this byte
		}
		sum := 0
		for i := range c {
			c[i], sum = sum, sum+c[i]
		}
		for _, r := range src {
			k := key(r, d)
			dst[c[k]] = r
			c[k]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
	return tmp
}

func compareRanked(a, b Ranked) int {
	if a.TotalSold != b.TotalSold {
		return cmp.Compare(b.TotalSold, a.TotalSold)
	}
	return cmp.Compare(a.ProductID, b.ProductID)
}

// category returns the products of s.cats[i], in rank order.
func (s *Standings) category(i int) []Ranked {
	end := len(s.ranked)
	if i+1 < len(s.cats) {
		end = s.cats[i+1].start
	}
	return s.ranked[s.cats[i].start:end]
}

// index sorts every position by product id with a radix sort: stable, so a product's
// positions stay in category order, and linear, where a comparison sort of tens of millions
// of positions by a value they point to would miss the cache at every comparison.
func (s *Standings) index() { s.indexOnce.Do(s.buildIndex) }

func (s *Standings) buildIndex() {
	if len(s.ranked) == 0 {
		return
	}
	// Product ids under 2^32, the usual case, sort as 4-byte keys: a replica builds the
	// index while it still serves the previous full ranks, and the scratch is what
	// decides its peak memory.
	var top int64
	for _, r := range s.ranked {
		top = max(top, r.ProductID)
	}
	if top <= math.MaxUint32 {
		s.byProduct = sortPositions[uint32](s.ranked)
	} else {
		s.byProduct = sortPositions[uint64](s.ranked)
	}
}

// sortPositions returns the positions of ranked sorted by product id, stably, by an LSD
// radix sort over the bytes of K (which must hold every id) that are not all the same.
func sortPositions[K uint32 | uint64](ranked []Ranked) []uint32 {
	n := len(ranked)
	keys, keys2 := make([]K, n), make([]K, n)
	pos, pos2 := make([]uint32, n), make([]uint32, n)
	for i, r := range ranked {
		keys[i] = K(r.ProductID) // product ids are never negative
		pos[i] = uint32(i)
	}
	for shift := 0; shift < 8*int(unsafe.Sizeof(keys[0])); shift += 8 {
		var count [256]int
		for _, k := range keys {
			count[byte(k>>shift)]++
		}
		if count[byte(keys[0]>>shift)] == n {
			continue // every key has this byte: the pass would change nothing
		}
		sum := 0
		for b := range count {
			count[b], sum = sum, sum+count[b]
		}
		for i, k := range keys {
			b := byte(k >> shift)
			keys2[count[b]], pos2[count[b]] = k, pos[i]
			count[b]++
		}
		keys, keys2, pos, pos2 = keys2, keys, pos2, pos
	}
	return pos
}

// Len returns how many (category, product) pairs the standings rank.
func (s *Standings) Len() int {
	if s == nil {
		return 0
	}
	return len(s.ranked)
}

// Categories returns every category with a ranked product and how many it ranks, sorted
// by category id.
func (s *Standings) Categories() []CategoryCount {
	if s == nil {
		return nil
	}
	out := make([]CategoryCount, len(s.cats))
	for i, c := range s.cats {
		out[i] = CategoryCount{CategoryID: c.id, ProductsRanked: len(s.category(i))}
	}
	return out
}

// ProductsRanked returns how many products category ranks (0 if it sold nothing).
func (s *Standings) ProductsRanked(category int32) int {
	if i, ok := s.findCategory(category); ok {
		return len(s.category(i))
	}
	return 0
}

// Ranked returns category's products in rank order (nil if it sold nothing). The slice
// must not be modified.
func (s *Standings) Ranked(category int32) []Ranked {
	if i, ok := s.findCategory(category); ok {
		return s.category(i)
	}
	return nil
}

func (s *Standings) findCategory(category int32) (int, bool) {
	if s == nil {
		return 0, false
	}
	return slices.BinarySearchFunc(s.cats, category, func(c standingsCategory, id int32) int { return cmp.Compare(c.id, id) })
}

// categoryAt returns the index in s.cats of the category holding position p.
func (s *Standings) categoryAt(p int) int {
	i, found := slices.BinarySearchFunc(s.cats, p, func(c standingsCategory, p int) int { return cmp.Compare(c.start, p) })
	if !found {
		i--
	}
	return i
}

// positions returns where product stands in ranked: one run of byProduct, in category
// order (empty if it sold nothing).
func (s *Standings) positions(product int64) []uint32 {
	s.index()
	lo, _ := slices.BinarySearchFunc(s.byProduct, product, func(p uint32, id int64) int { return cmp.Compare(s.ranked[p].ProductID, id) })
	hi := lo
	for hi < len(s.byProduct) && s.ranked[s.byProduct[hi]].ProductID == product {
		hi++
	}
	return s.byProduct[lo:hi]
}

// Product returns where product stands in each category it sold in, sorted by category id.
func (s *Standings) Product(product int64) []Standing {
	if s == nil {
		return nil
	}
	var out []Standing
	for _, p := range s.positions(product) {
		i := s.categoryAt(int(p))
		out = append(out, Standing{
			CategoryID: s.cats[i].id, Rank: int(p) - s.cats[i].start + 1,
			TotalSold: s.ranked[p].TotalSold, ProductsRanked: len(s.category(i)),
		})
	}
	return out
}

// Rank returns product's rank in category, from 1, and false if it sold nothing there.
func (s *Standings) Rank(category int32, product int64) (int, bool) {
	i, ok := s.findCategory(category)
	if !ok {
		return 0, false
	}
	lo, hi := s.cats[i].start, len(s.ranked)
	if i+1 < len(s.cats) {
		hi = s.cats[i+1].start
	}
	for _, p := range s.positions(product) {
		if int(p) >= lo && int(p) < hi {
			return int(p) - lo + 1, true
		}
	}
	return 0, false
}

// StandingsBuilder makes Standings from categories already in rank order, as a store
// reads them back.
type StandingsBuilder struct {
	s Standings
}

// Grow makes room for n more products, so that a builder told how many products it will
// be given grows its table once.
func (b *StandingsBuilder) Grow(n int) { b.s.ranked = slices.Grow(b.s.ranked, n) }

// Add appends category's products, which must be in rank order; categories must come in
// ascending order, each once.
func (b *StandingsBuilder) Add(category int32, ranked []Ranked) error {
	var last *int32
	if n := len(b.s.cats); n > 0 {
		last = &b.s.cats[n-1].id
	}
	if err := checkAdd(last, len(b.s.ranked), category, ranked); err != nil || len(ranked) == 0 {
		return err
	}
	b.s.cats = append(b.s.cats, standingsCategory{id: category, start: len(b.s.ranked)})
	b.s.ranked = append(b.s.ranked, ranked...)
	return nil
}

// checkAdd checks what a builder is given: category's products, after those of category
// *last (nil: none) and have products in all, which must come in rank order and keep the
// set indexable by uint32.
func checkAdd(last *int32, have int, category int32, ranked []Ranked) error {
	if last != nil && *last >= category {
		return fmt.Errorf("full ranks: category %d after %d", category, *last)
	}
	for i := 1; i < len(ranked); i++ {
		if compareRanked(ranked[i-1], ranked[i]) >= 0 {
			return fmt.Errorf("full ranks of category %d: entry %d is out of rank order", category, i)
		}
	}
	if have+len(ranked) > math.MaxUint32 {
		return errors.New("full ranks: more than 2^32-1 entries")
	}
	return nil
}

// Standings returns what was added, indexed, with its window and snapshot id. The builder
// must not be used after.
func (b *StandingsBuilder) Standings(snapshotID int64, w Window) *Standings {
	s := &b.s
	s.SnapshotID, s.Window = snapshotID, w
	s.index()
	return s
}

// Mover is a product of a category's top list whose rank rose over the last day.
type Mover struct {
	ProductID    int64
	Rank         int
	PreviousRank int // 0: it sold nothing in the window a day before
	TotalSold    int64
}

// Movers returns the entries of a category's top list (rank order, rank 1 first) that
// rank higher than they did in prev, the ranks of a day before: ordered by the
// ratio previous rank / rank, highest first, then by rank. A product prev does not rank
// counts as ranked one past prev's last product of the category, so a product that came
// from nowhere rises too; with no prev at all, nothing rose.
func Movers(category int32, top []Entry, prev *PastRanks) []Mover {
	if prev == nil {
		return nil
	}
	absent := prev.ProductsRanked(category) + 1
	var out []Mover
	for i, e := range top {
		rank := i + 1
		was, ok := prev.Rank(category, e.ProductID)
		if !ok {
			was = absent
		}
		if was <= rank {
			continue
		}
		m := Mover{ProductID: e.ProductID, Rank: rank, TotalSold: e.TotalSold}
		if ok {
			m.PreviousRank = was
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Mover) int {
		wa, wb := int64(cmp.Or(a.PreviousRank, absent)), int64(cmp.Or(b.PreviousRank, absent))
		// wa/ra > wb/rb, without division.
		if c := cmp.Compare(wb*int64(a.Rank), wa*int64(b.Rank)); c != 0 {
			return c
		}
		return cmp.Compare(a.Rank, b.Rank)
	})
	return out
}

// AppendRanked appends the encoding of one category's full ranks (rank order) to b: per
// product, its id as an unsigned varint, then how many units fewer than the product
// before it sold (the first: its total), also a varint. Totals only fall down the ranks,
// so the second number is mostly 0 or small: about four bytes a product.
func AppendRanked(b []byte, ranked []Ranked) []byte {
	b = binary.AppendUvarint(b, uint64(len(ranked)))
	prev := int64(0)
	for i, r := range ranked {
		b = binary.AppendUvarint(b, uint64(r.ProductID))
		if i == 0 {
			b = binary.AppendUvarint(b, uint64(r.TotalSold))
		} else {
			b = binary.AppendUvarint(b, uint64(prev-r.TotalSold))
		}
		prev = r.TotalSold
	}
	return b
}

// DecodeRanked decodes what AppendRanked wrote, appending to dst. It checks what it reads:
// product ids and totals in range, totals positive, entries in rank order, nothing left
// over.
func DecodeRanked(dst []Ranked, data []byte) ([]Ranked, error) {
	n, k := binary.Uvarint(data)
	if k <= 0 {
		return dst, errors.New("full ranks: bad length")
	}
	data = data[k:]
	if n > uint64(len(data))/2 { // every entry takes at least two bytes
		return dst, fmt.Errorf("full ranks: %d entries cannot fit in %d bytes", n, len(data))
	}
	dst = slices.Grow(dst, int(n))
	var prev Ranked
	for i := range int(n) {
		p, k := binary.Uvarint(data)
		if k <= 0 || p > MaxProductID {
			return dst, fmt.Errorf("full ranks: entry %d: bad product id", i)
		}
		data = data[k:]
		d, k := binary.Uvarint(data)
		if k <= 0 || d > MaxProductID {
			return dst, fmt.Errorf("full ranks: entry %d: bad total", i)
		}
		data = data[k:]
		r := Ranked{ProductID: int64(p), TotalSold: int64(d)}
		if i > 0 {
			r.TotalSold = prev.TotalSold - int64(d)
		}
		if r.TotalSold <= 0 || i > 0 && compareRanked(prev, r) >= 0 {
			return dst, fmt.Errorf("full ranks: entry %d is out of rank order", i)
		}
		dst = append(dst, r)
		prev = r
	}
	if len(data) != 0 {
		return dst, fmt.Errorf("full ranks: %d bytes left over", len(data))
	}
	return dst, nil
}
