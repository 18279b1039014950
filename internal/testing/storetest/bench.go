package storetest

import (
	"context"
	"iter"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
)

// BigSnapshot is the scale of the source design: 1,000 categories of 100 products each, for
// the cutoff base+hour.
func BigSnapshot(hour int) (*salesrank.Snapshot, []int32) {
	s := &salesrank.Snapshot{
		Window:   salesrank.WindowEnding(base.Add(time.Duration(hour) * time.Hour)),
		Interval: time.Hour,
		Top:      salesrank.DefaultTop,
	}
	known := make([]int32, 1000)
	for c := range known {
		known[c] = int32(c)
		entries := make([]salesrank.Entry, salesrank.DefaultTop)
		for r := range entries {
			entries[r] = salesrank.Entry{ProductID: int64(c*7919+r*104729) % 10_000_000, TotalSold: int64(1_000_000 - r)}
		}
		s.Rankings = append(s.Rankings, salesrank.Ranking{CategoryID: int32(c), Entries: entries})
	}
	return s, known
}

// BenchmarkPublish publishes BigSnapshot (100k sales_rank rows) over and over into the store
// open returns, which soon holds Keep snapshots, so each publish also prunes one. In "all"
// every row's total changes; in "four-fifths" all but one row in five do, as in an hourly
// step at the seed's scale (where 79 % of the rows change: bench/README.md); in "tenth" one
// row in ten does, as in a one-minute refresh.
func BenchmarkPublish(b *testing.B, open func(b *testing.B) Store) {
	for _, bm := range []struct {
		name  string
		every int  // one entry in every changes its total …
		keep  int  // … but one in every keep (if not 0) keeps it
		full  bool // the publication carries full ranks of 11 M products
	}{{"all", 1, 0, false}, {"four-fifths", 1, 5, false}, {"tenth", 10, 0, false}, {"all+full-ranks", 1, 0, true}} {
		b.Run(bm.name, func(b *testing.B) {
			ctx := context.Background()
			s := open(b)
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				snap, known := BigSnapshot(i)
				// Totals 10 apart, so a changed one (+1 … +9, differing from the previous
				// publication's) keeps the order.
				n := 0
				for _, r := range snap.Rankings {
					for j := range r.Entries {
						r.Entries[j].TotalSold = int64(10 * (1_000_000 - j))
						if n++; n%bm.every == 0 && (bm.keep == 0 || n%bm.keep != 0) {
							r.Entries[j].TotalSold += int64(i%9 + 1)
						}
					}
				}
				if bm.full {
					snap.Standings = salesrank.NewStandings(snap.Window, fullRanksOf(snap))
				}
				b.StartTimer()
				if _, err := s.Publish(ctx, snap, known, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(100_000, "rows/op")
		})
	}
}

// fullRanksOf returns snap's top lists with a tail of 10,900 products a category below
// them, as shards for NewStandings: the seed's 11 M ranked products in all.
func fullRanksOf(snap *salesrank.Snapshot) []iter.Seq2[salesrank.Key, int64] {
	const tail = 10_900
	var parts []iter.Seq2[salesrank.Key, int64]
	for _, r := range snap.Rankings {
		parts = append(parts, func(yield func(salesrank.Key, int64) bool) {
			for _, e := range r.Entries {
				if !yield(salesrank.Key{CategoryID: r.CategoryID, ProductID: e.ProductID}, e.TotalSold) {
					return
				}
			}
			// 10,900 … 1 units: below every top list's total, which are near 10 M.
			for k := range tail {
				total := int64(tail - k)
				if !yield(salesrank.Key{CategoryID: r.CategoryID, ProductID: 10_000_000 + int64(r.CategoryID)*tail + int64(k)}, total) {
					return
				}
			}
		})
	}
	return parts
}

// CheckMigratedSharedRows checks a store opened on a database written before shared rows
// (migration 0003) with this content: categories 7 and 8; snapshot 2 (cutoff 2 h after the
// epoch) ranking products 1 (50 sold, row 3) and 2 (40, row 4) in category 7; snapshot 3
// (3 h) ranking products 2 (60, row 5) and 1 (50, row 6) in category 7 and 3 (5, row 7) in
// category 8; the sales_rank id sequence at 9, top 10. Both snapshots must read back as they
// were, and the next publication must keep the unchanged rows and number new ones above 9.
func CheckMigratedSharedRows(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	want := map[int64][]salesrank.Ranking{
		2: {{CategoryID: 7, Entries: []salesrank.Entry{{ID: 3, ProductID: 1, TotalSold: 50}, {ID: 4, ProductID: 2, TotalSold: 40}}}, {CategoryID: 8}},
		3: {{CategoryID: 7, Entries: []salesrank.Entry{{ID: 5, ProductID: 2, TotalSold: 60}, {ID: 6, ProductID: 1, TotalSold: 50}}}, {CategoryID: 8, Entries: []salesrank.Entry{{ID: 7, ProductID: 3, TotalSold: 5}}}},
	}
	for id, rks := range want {
		got, err := s.Snapshot(ctx, id)
		if err != nil {
			t.Fatalf("Snapshot(%d): %v", id, err)
		}
		w := &salesrank.Snapshot{ID: id, Window: salesrank.WindowEnding(time.Unix(id*3600, 0).UTC()), Interval: time.Hour, Top: 10,
			PublishedAt: time.Unix(0, id+3).UTC(), Rankings: rks}
		if d := diff(got, w); d != "" {
			t.Errorf("snapshot %d after the migration: %s", id, d)
		}
	}
	if id := currentID(t, s); id != 3 {
		t.Fatalf("CurrentID = %d, want 3", id)
	}
	next := &salesrank.Snapshot{
		Window: salesrank.WindowEnding(time.Unix(4*3600, 0)), Interval: time.Hour, Top: 10,
		Rankings: []salesrank.Ranking{
			{CategoryID: 7, Entries: []salesrank.Entry{{ProductID: 2, TotalSold: 60}, {ProductID: 1, TotalSold: 51}}},
			{CategoryID: 8, Entries: []salesrank.Entry{{ProductID: 3, TotalSold: 5}}},
		},
	}
	if _, err := s.Publish(ctx, next, []int32{7, 8}, nil); err != nil {
		t.Fatal(err)
	}
	if got := []int64{next.Rankings[0].Entries[0].ID, next.Rankings[0].Entries[1].ID, next.Rankings[1].Entries[0].ID}; got[0] != 5 || got[1] != 10 || got[2] != 7 {
		t.Errorf("row ids after the migration = %v, want [5 10 7]: kept, new above the old high-water mark 9, kept", got)
	}
}

// BenchmarkCurrent loads a 100k-row snapshot from the store open returns, as a serve replica
// does on each new snapshot.
func BenchmarkCurrent(b *testing.B, open func(b *testing.B) Store) {
	ctx := context.Background()
	s := open(b)
	snap, known := BigSnapshot(0)
	if _, err := s.Publish(ctx, snap, known, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		got, err := s.Current(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(got.Rankings) != 1000 {
			b.Fatalf("%d rankings", len(got.Rankings))
		}
	}
}

// BenchmarkCurrentID is what a poller pays per check.
func BenchmarkCurrentID(b *testing.B, open func(b *testing.B) Store) {
	ctx := context.Background()
	s := open(b)
	snap, known := BigSnapshot(0)
	if _, err := s.Publish(ctx, snap, known, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.CurrentID(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// CheckIDsNotReused checks, on a store that keeps a single snapshot, that a pruned
// snapshot's ids are not handed out again, so that an ETag or a sales_rank id a client
// holds never comes to mean something else. Every publish changes both rows' totals, so
// each needs new rows, numbered consecutively in rank order.
func CheckIDsNotReused(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	var lastSnap, lastEntry int64
	for i, hour := range []int{10, 11, 3, 12} { // hour 3 is a backfill, pruned by the next publish
		snap := &salesrank.Snapshot{
			Window: salesrank.WindowEnding(time.Unix(int64(hour)*3600, 0)), Interval: time.Hour, Top: 2,
			Rankings: []salesrank.Ranking{{CategoryID: 1, Entries: []salesrank.Entry{{ProductID: 1, TotalSold: int64(20 + i)}, {ProductID: 2, TotalSold: int64(10 + i)}}}},
		}
		id, err := s.Publish(ctx, snap, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if id <= lastSnap || snap.Rankings[0].Entries[0].ID <= lastEntry {
			t.Errorf("publish %d: snapshot id %d, entry id %d; want above %d and %d", i, id, snap.Rankings[0].Entries[0].ID, lastSnap, lastEntry)
		}
		if e := snap.Rankings[0].Entries; e[1].ID != e[0].ID+1 {
			t.Errorf("publish %d: entry ids %d, %d; want consecutive", i, e[0].ID, e[1].ID)
		}
		lastSnap, lastEntry = id, snap.Rankings[0].Entries[1].ID
	}
	ids := snapshotIDs(t, s)
	if len(ids) != 1 || ids[0] != lastSnap {
		t.Errorf("with Keep 1, SnapshotIDs = %v, want [%d]", ids, lastSnap)
	}
}
