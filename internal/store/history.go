package store

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/salesrank/salesrank"
)

// StandingsHorizon is how far back from the latest cutoff full ranks are kept: movers
// compare today's top lists with the full ranks of a day before.
const StandingsHorizon = 24 * time.Hour

// encodeStandings encodes every category of s for the standings table, on every core.
// The rows' data are slices of bufs, the buffers the Core kept from the last publication
// (see encodeBufs), grown as needed: give them back with keepEncoding once the rows are
// written.
func (c *Core) encodeStandings(s *salesrank.Standings) (rows []StandingsRow, bufs [][]byte) {
	if s == nil {
		return nil, nil
	}
	cats := s.Categories()
	rows = make([]StandingsRow, len(cats))
	workers := max(runtime.GOMAXPROCS(0), 1)
	c.encodeMu.Lock()
	bufs, c.encodeBufs = c.encodeBufs, nil // nil while another publication holds them
	c.encodeMu.Unlock()
	bufs = append(bufs, make([][]byte, max(workers-len(bufs), 0))...)
	var wg sync.WaitGroup
	per := (len(cats) + workers - 1) / workers
	for w, lo := 0, 0; lo < len(cats); w, lo = w+1, lo+per {
		wg.Go(func() {
			buf := bufs[w][:0]
			for i := lo; i < min(lo+per, len(cats)); i++ {
				cat := cats[i]
				start := len(buf)
				buf = salesrank.AppendRanked(buf, s.Ranked(cat.CategoryID))
				rows[i] = StandingsRow{CategoryID: cat.CategoryID, ProductsRanked: cat.ProductsRanked, Data: buf[start:len(buf):len(buf)]}
			}
			bufs[w] = buf
		})
	}
	wg.Wait()
	return rows, bufs
}

// keepEncoding keeps bufs, whose rows are written, for the next encodeStandings.
func (c *Core) keepEncoding(bufs [][]byte) {
	c.encodeMu.Lock()
	defer c.encodeMu.Unlock()
	c.encodeBufs = bufs
}

// withStandings gives snap the full ranks it answers from and the ranks of a day before.
// It costs one statement when this handle holds both (a replica reloads every minute, the
// full ranks change hourly), and one more for each set it does not: a replica far from its
// database pays each round trip on every new snapshot.
func (c *Core) withStandings(ctx context.Context, snap *salesrank.Snapshot) (*salesrank.Snapshot, error) {
	for range 3 {
		found, err := c.findStandings(ctx, snap.Window.End)
		if err != nil {
			return nil, err
		}
		c.standingsMu.Lock()
		cur, past := c.standings, c.past
		c.standingsMu.Unlock()
		now, then := found[0], found[1]
		if now.id != 0 && (cur == nil || cur.SnapshotID != now.id) {
			var b salesrank.StandingsBuilder
			ok, err := c.readStandings(ctx, now.id, &b)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue // expired by a publication between the two reads: look again
			}
			cur = b.Standings(now.id, salesrank.WindowEnding(time.Unix(now.cutoff, 0)))
		}
		switch {
		case then.id == 0 || past != nil && past.SnapshotID == then.id:
		case then.id == now.id:
			past = cur.Past()
		default:
			// The ranks of a day before are read without units and without the index by
			// product: a replica loads a set of each while the old ones still serve.
			var b salesrank.PastRanksBuilder
			ok, err := c.readStandings(ctx, then.id, &b)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			past = b.PastRanks(then.id, salesrank.WindowEnding(time.Unix(then.cutoff, 0)))
		}
		if now.id == 0 {
			cur = nil
		}
		if then.id == 0 {
			past = nil
		}
		c.standingsMu.Lock()
		c.standings, c.past = cmp.Or(cur, c.standings), cmp.Or(past, c.past)
		c.standingsMu.Unlock()
		snap.Standings, snap.Previous = cur, past
		return snap, nil
	}
	return nil, fmt.Errorf("full ranks at %v: they keep expiring as they are read", snap.Window.End.UTC())
}

// standingsRef names a stored set of full ranks: the snapshot that carried them (0: none)
// and the cutoff they rank at.
type standingsRef struct{ id, cutoff int64 }

// findStandings returns, in one statement, the latest full ranks ranked at or before cutoff
// and those ranked at or before a day earlier.
func (c *Core) findStandings(ctx context.Context, cutoff time.Time) ([2]standingsRef, error) {
	var found [2]standingsRef
	const latest = `SELECT snapshot_id, cutoff FROM standings WHERE cutoff <= ? ORDER BY cutoff DESC, snapshot_id DESC LIMIT 1`
	err := c.backend.Read(ctx, `SELECT 0, snapshot_id, cutoff FROM (`+latest+`) n
		UNION ALL SELECT 1, snapshot_id, cutoff FROM (`+latest+`) p`,
		[]any{cutoff.Unix(), cutoff.Add(-StandingsHorizon).Unix()},
		func(scan func(...any) error) error {
			var (
				which int
				ref   standingsRef
			)
			if err := scan(&which, &ref.id, &ref.cutoff); err != nil {
				return err
			}
			found[which] = ref
			return nil
		})
	if err != nil {
		return found, fmt.Errorf("find full ranks at %v: %w", cutoff.UTC(), err)
	}
	return found, nil
}

// ranksBuilder is what readStandings feeds: a salesrank.StandingsBuilder, or a
// PastRanksBuilder.
type ranksBuilder interface {
	Grow(n int)
	Add(category int32, ranked []salesrank.Ranked) error
}

// readStandings reads into b the full ranks snapshot id carried, and reports whether there
// were any (any more).
func (c *Core) readStandings(ctx context.Context, id int64, b ranksBuilder) (bool, error) {
	var (
		ranked []salesrank.Ranked
		n      int
	)
	// Each row carries the set's number of products, so that the builder grows its table
	// once, not by doubling: a replica loads some 11 M at the seed's scale.
	err := c.backend.Read(ctx, `SELECT category_id, data, sum(products_ranked) OVER () FROM standings
		WHERE snapshot_id = ? ORDER BY category_id`,
		[]any{id}, func(scan func(...any) error) error {
			var (
				cat   int32
				data  RawBytes
				total int64
			)
			if err := scan(&cat, &data, &total); err != nil {
				return err
			}
			if n == 0 {
				b.Grow(int(total))
			}
			var err error
			if ranked, err = salesrank.DecodeRanked(ranked[:0], data); err != nil {
				return fmt.Errorf("category %d: %w", cat, err)
			}
			n++
			return b.Add(cat, ranked) // copies ranked
		})
	if err != nil {
		return false, fmt.Errorf("read full ranks of snapshot %d: %w", id, err)
	}
	return n > 0, nil
}

// openEnd is, in SQL, sharedrows.OpenEnd: the last_snapshot_id of a row valid until a later
// publication ends it.
// The history's reads name it as a literal: the index of closed rows is partial, and a
// planner uses it only for a query whose WHERE implies its own, which a parameter
// cannot.
const openEnd = "9223372036854775807"

// KeptSnapshot is a stored snapshot's id and cutoff.
type KeptSnapshot struct {
	ID     int64
	Cutoff time.Time
}

// History returns the stored snapshots, oldest cutoff first, the latest id of each cutoff
// only: those the history answers from.
func (c *Core) History(ctx context.Context) ([]KeptSnapshot, error) {
	var out []KeptSnapshot
	err := c.backend.Read(ctx, `SELECT max(id), cutoff FROM snapshots GROUP BY cutoff ORDER BY cutoff`, nil,
		func(scan func(...any) error) error {
			var (
				k  KeptSnapshot
				at int64
			)
			if err := scan(&k.ID, &at); err != nil {
				return err
			}
			k.Cutoff = time.Unix(at, 0).UTC()
			out = append(out, k)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list kept snapshots: %w", err)
	}
	return out, nil
}

// TopList returns category's top list in snapshot id, in rank order; empty if the
// category sold nothing then, or the snapshot is not stored.
func (c *Core) TopList(ctx context.Context, id int64, category int32) ([]salesrank.Entry, error) {
	var out []salesrank.Entry
	err := c.backend.Read(ctx, `SELECT id, product_id, total_sold FROM sales_rank
		WHERE category_id = ? AND last_snapshot_id >= ? AND last_snapshot_id < `+openEnd+` AND first_snapshot_id <= ?
		UNION ALL
		SELECT id, product_id, total_sold FROM sales_rank
		WHERE last_snapshot_id = `+openEnd+` AND category_id = ? AND first_snapshot_id <= ?
		ORDER BY total_sold DESC, product_id`, []any{category, id, id, category, id},
		func(scan func(...any) error) error {
			var e salesrank.Entry
			if err := scan(&e.ID, &e.ProductID, &e.TotalSold); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read top list of category %d in snapshot %d: %w", category, id, err)
	}
	return out, nil
}

// HistoryPoint is where a product stood in a category's top list in one kept snapshot.
type HistoryPoint struct {
	Cutoff    time.Time
	Rank      int // from 1; 0 when the product was not in the top list
	TotalSold int64
}

// ProductHistory returns where product stood in category's top list in each of kept (the
// snapshots History lists), from since on.
//
// It reads the category's rows of every snapshot from the oldest asked for on, once, and
// ranks the product in each snapshot from them: a row is in snapshot s when its range of
// snapshots holds s, and the product's rank is one more than the rows in s ahead of its own.
func (c *Core) ProductHistory(ctx context.Context, kept []KeptSnapshot, category int32, product int64, since time.Time) ([]HistoryPoint, error) {
	kept = slices.DeleteFunc(slices.Clone(kept), func(k KeptSnapshot) bool { return k.Cutoff.Before(since) })
	if len(kept) == 0 {
		return []HistoryPoint{}, nil
	}
	type row struct {
		product, total, first, last int64
	}
	oldest := kept[0].ID
	for _, k := range kept {
		oldest = min(oldest, k.ID)
	}
	var rows []row
	err := c.backend.Read(ctx, `SELECT product_id, total_sold, first_snapshot_id, last_snapshot_id FROM sales_rank
		WHERE category_id = ? AND last_snapshot_id >= ? AND last_snapshot_id < `+openEnd+`
		UNION ALL
		SELECT product_id, total_sold, first_snapshot_id, last_snapshot_id FROM sales_rank
		WHERE last_snapshot_id = `+openEnd+` AND category_id = ?`, []any{category, oldest, category},
		func(scan func(...any) error) error {
			var r row
			if err := scan(&r.product, &r.total, &r.first, &r.last); err != nil {
				return err
			}
			rows = append(rows, r)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read history of category %d: %w", category, err)
	}
	// Sweep the kept snapshots in id order (the order of the rows' ranges), holding the
	// rows valid in each: about the top list's length, so the work is the kept snapshots
	// times K, not times every row read.
	order := make([]int, len(kept)) // positions in kept, by snapshot id
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(kept[a].ID, kept[b].ID) })
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(a.first, b.first) })
	out := make([]HistoryPoint, len(kept))
	var valid []row
	next := 0
	for _, i := range order {
		id := kept[i].ID
		out[i].Cutoff = kept[i].Cutoff
		for ; next < len(rows) && rows[next].first <= id; next++ {
			valid = append(valid, rows[next])
		}
		valid = slices.DeleteFunc(valid, func(r row) bool { return r.last < id })
		for _, m := range valid {
			if m.product != product {
				continue
			}
			rank := 1
			for _, r := range valid {
				if r.total > m.total || r.total == m.total && r.product < m.product {
					rank++
				}
			}
			out[i].Rank, out[i].TotalSold = rank, m.total
		}
	}
	return out, nil
}
