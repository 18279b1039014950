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
			t.Fatalf("step %d: Close %v is not sorted and unique", step, p.Close)
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
