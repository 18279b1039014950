package sharedrows

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/salesrank/salesrank"
)

// randomSnapshot ranks random totals of a few products in a few categories, so that
// consecutive snapshots share some rows, change others and drop and add categories.
func randomSnapshot(rng *rand.Rand) *salesrank.Snapshot {
	totals := salesrank.Totals{}
	for range rng.IntN(60) {
		k := salesrank.Key{CategoryID: int32(rng.IntN(4)), ProductID: int64(rng.IntN(12))}
		totals.Add(k, int64(1+rng.IntN(3)))
	}
	var known []int32
	for c := range int32(4) {
		if rng.IntN(4) > 0 {
			known = append(known, c)
		}
	}
	// Rank covers the known categories and those that sold; drop the others' sales so that a
	// category can leave the snapshot altogether.
	for k := range totals {
		if !slices.Contains(known, k.CategoryID) {
			delete(totals, k)
		}
	}
	return &salesrank.Snapshot{Top: 5, Rankings: salesrank.Rank(totals.All(), known, 5)}
}

// rowsOf returns the open rows as a set keyed by (category, product, total).
func rowsOf(o *Open) map[Row]int64 {
	out := map[Row]int64{}
	for _, rs := range o.rows {
		for _, r := range rs {
			out[Row{Category: r.Category, ProductID: r.ProductID, TotalSold: r.TotalSold}] = r.ID
		}
	}
	return out
}

// TestDiffChain publishes random snapshots one after the other, as a store would, and checks
// each plan against the sets it must produce: the new open rows are exactly the snapshot's
// entries, a row is kept (same id) exactly when its (category, product, total) was open
// before, every other old row is closed, and ids are never reused.
func TestDiffChain(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var open *Open
	next := int64(0)
	used := map[int64]bool{}
	kept := 0
	for step := range 500 {
		snap := randomSnapshot(rng)
		p := Diff(open, snap)
		p.Number(next)
		next += int64(len(p.Insert))
		for _, r := range p.Insert {
			if used[r.ID] {
				t.Fatalf("step %d: id %d handed out twice", step, r.ID)
			}
			used[r.ID] = true
		}
		before := map[Row]int64{}
		if open != nil {
			before = rowsOf(open)
		}
		after := p.Done(int64(step + 1))
		if after.Snapshot != int64(step+1) {
			t.Fatalf("step %d: Open.Snapshot = %d", step, after.Snapshot)
		}

		want := map[Row]bool{}
		for _, rk := range snap.Rankings {
			for _, e := range rk.Entries {
				want[Row{Category: rk.CategoryID, ProductID: e.ProductID, TotalSold: e.TotalSold}] = true
			}
		}
		got := rowsOf(after)
		if len(got) != len(want) || after.Len() != len(want) {
			t.Fatalf("step %d: %d open rows, want %d", step, after.Len(), len(want))
		}
		closed := map[int64]bool{}
		for _, r := range p.Close {
			closed[r.ID] = true
			if before[Row{Category: r.Category, ProductID: r.ProductID, TotalSold: r.TotalSold}] != r.ID {
				t.Fatalf("step %d: closed row %+v is not an open row", step, r)
			}
		}
		if len(closed) != len(p.Close) {
			t.Fatalf("step %d: Close %v names a row twice", step, p.Close)
		}
		nKept := 0
		for r, id := range got {
			if !want[r] {
				t.Fatalf("step %d: open row %+v is not in the snapshot", step, r)
			}
			if old, ok := before[r]; ok {
				nKept++
				if id != old {
					t.Fatalf("step %d: row %+v kept with id %d, was %d", step, r, id, old)
				}
			}
		}
		for r, id := range before {
			if _, stays := got[r]; stays == closed[id] {
				t.Fatalf("step %d: old row %+v (id %d): stays %v, closed %v", step, r, id, stays, closed[id])
			}
		}
		if p.Kept != nKept || len(p.Insert) != len(want)-nKept {
			t.Fatalf("step %d: Kept %d, Insert %d; want %d and %d", step, p.Kept, len(p.Insert), nKept, len(want)-nKept)
		}
		// Every entry's ID names its row.
		for _, rk := range snap.Rankings {
			for _, e := range rk.Entries {
				if got[Row{Category: rk.CategoryID, ProductID: e.ProductID, TotalSold: e.TotalSold}] != e.ID || e.ID <= 0 {
					t.Fatalf("step %d: entry %+v of category %d has the wrong ID", step, e, rk.CategoryID)
				}
			}
		}
		kept += p.Kept
		open = after
	}
	if kept == 0 || len(used) == 0 {
		t.Fatalf("the random chain kept %d rows and inserted %d: it tests nothing", kept, len(used))
	}
}

// TestNewOpen checks that loading rows back from a database gives the Open that Done gave.
func TestNewOpen(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	snap := randomSnapshot(rng)
	p := Diff(nil, snap)
	p.Number(100)
	done := p.Done(7)
	var rows []Row
	for _, rs := range done.rows {
		rows = append(rows, rs...)
	}
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	loaded := NewOpen(7, rows)
	if again := Diff(loaded, snap); len(again.Close) != 0 || len(again.Insert) != 0 || again.Kept != len(rows) {
		t.Fatalf("the same snapshot over its own rows: close %d, insert %d, kept %d of %d", len(again.Close), len(again.Insert), again.Kept, len(rows))
	}
}

// TestWritesKeepEverySnapshot publishes random snapshots into a table kept in memory as a
// store keeps sales_rank, each with a random Until (OpenEnd or its own id), ids with gaps
// and some snapshots published twice, and checks after each one that every snapshot so far
// reads back exactly from the rows whose range holds it, that each write finds its row
// where the plan says it is, and that no row is written that need not be.
func TestWritesKeepEverySnapshot(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	type stored struct {
		row         Row
		first, last int64
	}
	table := map[int64]*stored{} // by row id
	published := map[int64]map[Row]int64{}
	var open *Open
	var ids, next, skipped, endedInPlace int64
	var snap *salesrank.Snapshot
	for step := range 250 {
		if snap == nil || rng.IntN(5) > 0 {
			snap = randomSnapshot(rng) // else the same lists again
		}
		prev := ids
		ids += 1 + int64(rng.IntN(3)) // a failed publication burns ids
		id := ids
		p := Diff(open, snap)
		if rng.IntN(2) == 0 {
			p.Until = id
		}
		p.Number(next)
		next += int64(len(p.Insert))
		end, extend := p.Writes(id)
		for _, w := range []struct {
			rows []Row
			to   int64
		}{{end, prev}, {extend, p.Until}} {
			for _, r := range w.rows {
				s := table[r.ID]
				if s == nil || s.last != r.Last {
					t.Fatalf("step %d: row %+v to write is not stored as the plan says: %+v", step, r, s)
				}
				if r.Last == w.to || w.to == prev && r.Last < prev || w.to == p.Until && r.Last >= id {
					t.Fatalf("step %d: row %+v written to end at %d for nothing", step, r, w.to)
				}
				s.last = w.to
			}
		}
		for _, r := range p.Insert {
			table[r.ID] = &stored{row: r, first: id, last: p.Until}
		}
		for _, r := range p.Close {
			if r.Last == prev {
				skipped++ // already ended where it stands
			}
		}
		after := p.Done(id)
		// sales_rank's key in SQLite: (category, last, total, product) stays unique.
		keys := map[Row]bool{}
		for _, s := range table {
			k := Row{Category: s.row.Category, ProductID: s.row.ProductID, TotalSold: s.row.TotalSold, Last: s.last}
			if keys[k] {
				t.Fatalf("step %d: two rows stored with the key %+v", step, k)
			}
			keys[k] = true
		}

		want := map[Row]int64{}
		for _, rk := range snap.Rankings {
			for _, e := range rk.Entries {
				want[Row{Category: rk.CategoryID, ProductID: e.ProductID, TotalSold: e.TotalSold}] = e.ID
			}
		}
		published[id] = want
		for sid, want := range published {
			got := map[Row]int64{}
			for rid, s := range table {
				if s.first <= sid && sid <= s.last {
					got[Row{Category: s.row.Category, ProductID: s.row.ProductID, TotalSold: s.row.TotalSold}] = rid
				}
			}
			if len(got) != len(want) {
				t.Fatalf("step %d: snapshot %d reads back %d rows, published %d", step, sid, len(got), len(want))
			}
			for r, rid := range want {
				if got[r] != rid {
					t.Fatalf("step %d: snapshot %d: row %+v reads back as id %d, published as %d", step, sid, r, got[r], rid)
				}
			}
		}
		// The Open remembers each row's last_snapshot_id as stored, which the next plan
		// relies on, and every row of the new publication is valid in it.
		for _, rs := range after.rows {
			for _, r := range rs {
				if s := table[r.ID]; s.last != r.Last || r.Last < id {
					t.Fatalf("step %d: open row %+v, stored with last %d", step, r, s.last)
				}
			}
		}
		if p.Until != OpenEnd {
			endedInPlace++
		}
		open = after
	}
	if skipped == 0 || endedInPlace == 0 {
		t.Fatalf("the chain ended %d rows where they stood, in %d publications: it tests nothing", skipped, endedInPlace)
	}
}
