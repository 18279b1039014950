// Package sharedrows works out how the sales_rank rows of the latest publication change into
// those of the next one, so that a store writes only what changed.
//
// Both stores keep a sales_rank row for as long as it stays true: a row (category, product,
// total) is valid from the snapshot that first published it (first_snapshot_id) to the last
// one that did (last_snapshot_id), and a snapshot's rows are those whose range holds it.
// Publishing ends the rows that are no longer in the ranking at the previous publication and
// inserts the ones that are new; a product whose total did not change keeps its row, and its
// id. At a one-minute refresh most of a week's best sellers do not sell in a given minute,
// so most rows stay, and a publication costs what changed rather than every category's
// whole list.
//
// A row of the latest publication is "open". Its last_snapshot_id is either OpenEnd (valid
// until a later publication ends it) or the latest publication itself (valid until a later
// publication extends it). Which one a publication gives its rows is its Until: OpenEnd
// suits rows that mostly stay (a minute's refresh), since then only the few that change are
// written again; the publication's own id suits rows that mostly change (an hour's refresh:
// the window drops an hour and gains one, and nearly every best seller sold in both), since
// then a changed row is already ended where it stands and only the few kept ones are
// written again. Either way every row of the latest publication has last_snapshot_id at
// least that publication's id, and readers need not know which.
//
// A row carries no rank: the rank is its position in the category's rows ordered by total
// descending, then product id ascending, which is the ranking's own order. Storing it would
// make every row below a product that moved up change too.
package sharedrows

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/salesrank/salesrank"
)

// OpenEnd is the last_snapshot_id of a row valid until a later publication ends it.
const OpenEnd = math.MaxInt64

// Open is the rows of one publication, by category: what the next publication compares
// itself with. Stores keep the Open of their latest publication between calls and load it
// again from the database when another process published in between.
type Open struct {
	// Snapshot is the id of the publication these rows belong to.
	Snapshot int64
	rows     map[int32][]Row // per category, sorted by product id
}

// Row is one sales_rank row.
type Row struct {
	ID        int64
	Category  int32
	ProductID int64
	TotalSold int64
	// Last is the row's last_snapshot_id as stored: OpenEnd or a publication's id.
	Last int64
}

// NewOpen returns the Open of snapshot id from its rows, in any order.
func NewOpen(id int64, rows []Row) *Open {
	o := &Open{Snapshot: id, rows: make(map[int32][]Row)}
	for _, r := range rows {
		o.rows[r.Category] = append(o.rows[r.Category], r)
	}
	for _, rs := range o.rows {
		slices.SortFunc(rs, byProduct)
	}
	return o
}

// Len returns the number of rows.
func (o *Open) Len() int {
	n := 0
	for _, rs := range o.rows {
		n += len(rs)
	}
	return n
}

func byProduct(a, b Row) int { return cmp.Compare(a.ProductID, b.ProductID) }

// Plan is what publishing a snapshot over an Open takes: the rows to end, the rows to extend
// and the rows to insert. Make one with Diff, choose its Until, number its new rows with
// Number, write it (Writes and Insert), and after the commit call Done.
type Plan struct {
	// Close lists the open rows that the snapshot does not have, category by category in
	// ascending order (those the snapshot still ranks first), each category's by product
	// id: their last_snapshot_id must be the previous publication's.
	Close []Row
	// Insert lists the snapshot's new rows in ranking order (category, then rank). Their
	// ids are zero until Number.
	Insert []Row
	// Kept counts the open rows the snapshot keeps as they are.
	Kept int
	// Until is the last_snapshot_id that Writes and Done give the new rows and the kept
	// rows extended: OpenEnd (Diff's choice) or the id of the snapshot the plan writes.
	Until int64

	prev int64 // the Open's publication
	snap *salesrank.Snapshot
	// ids holds, in ranking order, the row id of every entry: a kept row's id, or, for a
	// new row, -(i+1) where i is its index in Insert, until Number.
	ids []int64
	// lasts holds, in ranking order, a kept row's Last (zero for a new row).
	lasts []int64
	// productOrder holds, ranking by ranking, the indexes of its entries in product order:
	// the order of the Open's rows.
	productOrder []int
}

// Diff compares snap with the open rows o (nil: none) and returns the plan that turns one
// into the other. Neither is modified. snap's rankings must be valid (salesrank.Snapshot
// Validate): sorted by category, each in ranking order without a repeated product.
func Diff(o *Open, snap *salesrank.Snapshot) *Plan {
	p := &Plan{snap: snap, Until: OpenEnd}
	var old map[int32][]Row
	if o != nil {
		old, p.prev = o.rows, o.Snapshot
	}
	covered := make(map[int32]bool, len(snap.Rankings))
	n := 0
	for _, rk := range snap.Rankings {
		n += len(rk.Entries)
	}
	p.ids = make([]int64, 0, n) // zeros, handed out ranking by ranking below
	p.lasts = make([]int64, n)
	p.productOrder = make([]int, 0, n)
	for _, rk := range snap.Rankings {
		covered[rk.CategoryID] = true
		prev := old[rk.CategoryID]
		first := len(p.productOrder)
		for i := range rk.Entries {
			p.productOrder = append(p.productOrder, i)
		}
		byProd := p.productOrder[first:]
		slices.SortFunc(byProd, func(a, b int) int { return cmp.Compare(rk.Entries[a].ProductID, rk.Entries[b].ProductID) })
		p.ids = p.ids[:first+len(rk.Entries)]
		ids := p.ids[first:]
		// Merge the two lists by product id.
		j := 0
		for _, i := range byProd {
			e := rk.Entries[i]
			for j < len(prev) && prev[j].ProductID < e.ProductID {
				p.Close = append(p.Close, prev[j]) // left the top list
				j++
			}
			if j < len(prev) && prev[j].ProductID == e.ProductID {
				if prev[j].TotalSold == e.TotalSold {
					ids[i] = prev[j].ID
					p.lasts[first+i] = prev[j].Last
					p.Kept++
					j++
					continue
				}
				p.Close = append(p.Close, prev[j]) // its total changed
				j++
			}
			// A new row: ids[i] stays 0 and is numbered below, in ranking order.
		}
		p.Close = append(p.Close, prev[j:]...)
		for i, e := range rk.Entries {
			if ids[i] == 0 {
				p.Insert = append(p.Insert, Row{Category: rk.CategoryID, ProductID: e.ProductID, TotalSold: e.TotalSold})
				ids[i] = -int64(len(p.Insert))
			}
		}
	}
	var left []int32 // categories the snapshot no longer ranks: all of their rows close
	for c := range old {
		if !covered[c] {
			left = append(left, c)
		}
	}
	slices.Sort(left)
	for _, c := range left {
		p.Close = append(p.Close, old[c]...)
	}
	return p
}

// Entries returns how many rows the snapshot has, kept and new.
func (p *Plan) Entries() int { return len(p.ids) }

// Writes returns the rows a store rewrites for the snapshot id it publishes, besides
// inserting p.Insert: the rows to end, whose last_snapshot_id becomes the previous
// publication's (those that still have a later one), and the kept rows to extend, whose
// last_snapshot_id becomes p.Until (those that end before id).
func (p *Plan) Writes(id int64) (end, extend []Row) {
	for _, r := range p.Close {
		if r.Last > p.prev {
			end = append(end, r)
		}
	}
	k := 0
	for _, rk := range p.snap.Rankings {
		for i := range rk.Entries {
			if rid, last := p.ids[k], p.lasts[k]; rid > 0 && last < id {
				e := rk.Entries[i]
				extend = append(extend, Row{ID: rid, Category: rk.CategoryID, ProductID: e.ProductID, TotalSold: e.TotalSold, Last: last})
			}
			k++
		}
	}
	return end, extend
}

// NewProducts returns the products of the new rows, sorted and without repeats: the only
// ones a store's products table may lack, since every kept row names a product already.
func (p *Plan) NewProducts() []int64 {
	products := make([]int64, len(p.Insert))
	for i, r := range p.Insert {
		products[i] = r.ProductID
	}
	slices.Sort(products)
	return slices.Compact(products)
}

// Number gives the new rows the ids base+1, base+2, … in ranking order.
func (p *Plan) Number(base int64) {
	for i := range p.Insert {
		p.Insert[i].ID = base + int64(i) + 1
	}
}

// Done records that the plan was committed as snapshot id (Writes(id) and Insert written):
// it sets every entry's ID in the snapshot (a kept row's id, or the new row's) and returns
// the Open of the new publication.
func (p *Plan) Done(id int64) *Open {
	o := &Open{Snapshot: id, rows: make(map[int32][]Row, len(p.snap.Rankings))}
	first := 0
	for _, rk := range p.snap.Rankings {
		rs := make([]Row, len(rk.Entries))
		for j, i := range p.productOrder[first : first+len(rk.Entries)] {
			k := first + i
			rid, last := p.ids[k], p.lasts[k]
			if rid < 0 {
				rid, last = p.Insert[-rid-1].ID, p.Until
			} else if last < id {
				last = p.Until // extended
			}
			rk.Entries[i].ID = rid
			rs[j] = Row{ID: rid, Category: rk.CategoryID, ProductID: rk.Entries[i].ProductID, TotalSold: rk.Entries[i].TotalSold, Last: last}
		}
		first += len(rk.Entries)
		if len(rs) > 0 {
			o.rows[rk.CategoryID] = rs
		}
	}
	return o
}

// Assembler builds a snapshot from its rows as a store reads them back, checking them on the
// way: a row of a category the snapshot does not cover, rows out of ranking order, a
// repeated product or more rows than the snapshot says it has are errors, never a silently
// different ranking.
type Assembler struct {
	s      *salesrank.Snapshot
	index  map[int32]int
	all    []salesrank.Entry
	bounds []int // Rankings[i] is all[bounds[i]:bounds[i+1]]
	prev   int   // the ranking of the last row, -1 before any
	start  int   // where that ranking's entries start in all
	want   int
}

// NewAssembler starts assembling s, which covers the categories cats (ascending) and holds
// entries rows in all. The rows must come in (category, rank) order.
func NewAssembler(s *salesrank.Snapshot, cats []int32, entries int) *Assembler {
	a := &Assembler{
		s:      s,
		index:  make(map[int32]int, len(cats)),
		all:    make([]salesrank.Entry, 0, entries),
		bounds: make([]int, len(cats)+1),
		prev:   -1,
		want:   entries,
	}
	s.Rankings = make([]salesrank.Ranking, len(cats))
	for i, c := range cats {
		a.index[c] = i
		s.Rankings[i].CategoryID = c
	}
	return a
}

// Add appends the next row: entry e of category c.
func (a *Assembler) Add(c int32, e salesrank.Entry) error {
	i, ok := a.index[c]
	if !ok || i < a.prev {
		return fmt.Errorf("snapshot %d: sales_rank row %d: category %d is not in the snapshot, or out of order", a.s.ID, e.ID, c)
	}
	if i == a.prev {
		last := a.all[len(a.all)-1]
		if !salesrank.Less(last, e) {
			return fmt.Errorf("snapshot %d: category %d: row %d (product %d, %d sold) does not rank after row %d (product %d, %d sold)",
				a.s.ID, c, e.ID, e.ProductID, e.TotalSold, last.ID, last.ProductID, last.TotalSold)
		}
	} else {
		a.prev, a.start = i, len(a.all)
	}
	a.all = append(a.all, e)
	a.bounds[i+1] = len(a.all)
	if a.s.Top > 0 && len(a.all)-a.start > a.s.Top {
		return fmt.Errorf("snapshot %d: category %d has more than its top %d rows", a.s.ID, c, a.s.Top)
	}
	return nil
}

// Done checks the row count and returns the snapshot.
func (a *Assembler) Done() (*salesrank.Snapshot, error) {
	if len(a.all) != a.want {
		return nil, fmt.Errorf("snapshot %d: %d sales_rank rows, but the snapshot says %d", a.s.ID, len(a.all), a.want)
	}
	for i := range a.s.Rankings {
		a.bounds[i+1] = max(a.bounds[i+1], a.bounds[i]) // categories without rows end where they start
		// The full slice expression caps each ranking so that appending to one cannot
		// overwrite the next.
		a.s.Rankings[i].Entries = a.all[a.bounds[i]:a.bounds[i+1]:a.bounds[i+1]]
	}
	return a.s, nil
}
