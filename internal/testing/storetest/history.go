package storetest

import (
	"context"
	"iter"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/store"
)

// Retaining is a store that keeps the history of the top lists and full ranks.
type Retaining interface {
	Store
	SetRetain(d time.Duration)
}

// testHistory publishes a day and a half of hourly snapshots with full ranks, then a few
// minutes' worth of snapshots between whole hours, and checks what is kept: the Keep
// latest, every whole hour's latest snapshot within the retention, and the full ranks a
// snapshot of now and of a day before need, each reading back exactly.
func testHistory(t *testing.T, st Store) {
	s, ok := st.(Retaining)
	if !ok {
		t.Skip("the store keeps no history")
	}
	ctx := context.Background()
	const retain = 10 * time.Hour
	s.SetRetain(retain)
	published := map[time.Time]*salesrank.Snapshot{} // the full ranks ranked at each cutoff
	pub := func(hour int, minute int, full bool) int64 {
		snap := snapshot(hour, 4, 3)
		at := snap.Window.End.Add(time.Duration(minute) * time.Minute)
		snap.Window = salesrank.WindowEnding(at)
		if full {
			totals := totalsOf(snap)
			for _, r := range snap.Rankings {
				for i := range r.Entries {
					// A tail below the top list, with ties.
					totals[salesrank.Key{CategoryID: r.CategoryID, ProductID: 5000 + int64(i)}] = 1
				}
			}
			snap.Rankings = salesrank.Rank(totals.All(), known(snap), snap.Top)
			snap.Standings = salesrank.NewStandings(snap.Window, []iter.Seq2[salesrank.Key, int64]{totals.All()})
			published[at] = snap
		}
		return publish(t, s, snap)
	}
	var hourly []int64
	for h := range 36 {
		hourly = append(hourly, pub(h, 0, true))
	}
	// Minute snapshots after the last hour: the Keep latest stay, the others go, and the
	// whole hours stay beside them.
	var minutes []int64
	for m := 1; m <= Keep+2; m++ {
		minutes = append(minutes, pub(35, m, false))
	}
	latest := base.Add(35*time.Hour + time.Duration(Keep+2)*time.Minute)

	var want []int64
	for h, id := range hourly {
		if !base.Add(time.Duration(h) * time.Hour).Before(latest.Add(-retain)) {
			want = append(want, id)
		}
	}
	want = append(want, minutes[len(minutes)-Keep:]...)
	slices.Reverse(want)
	if got := snapshotIDs(t, s); !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v: the %d latest and each whole hour's within %v", got, want, Keep, retain)
	}

	cur := current(t, s)
	check := func(name string, got *salesrank.Standings, at time.Time) {
		t.Helper()
		w := published[at]
		if got == nil || w == nil || !got.Window.End.Equal(at) {
			t.Fatalf("%s: full ranks %v, want those ranked at %v", name, got, at)
		}
		if got.SnapshotID != w.ID {
			t.Errorf("%s: full ranks of snapshot %d, want %d", name, got.SnapshotID, w.ID)
		}
		if !slices.Equal(got.Categories(), w.Standings.Categories()) {
			t.Fatalf("%s: categories %v, want %v", name, got.Categories(), w.Standings.Categories())
		}
		for _, c := range w.Standings.Categories() {
			if !slices.Equal(got.Ranked(c.CategoryID), w.Standings.Ranked(c.CategoryID)) {
				t.Errorf("%s: category %d reads back %v, want %v", name, c.CategoryID, got.Ranked(c.CategoryID), w.Standings.Ranked(c.CategoryID))
			}
		}
	}
	// The minute snapshot answers from the last whole hour's full ranks, and compares
	// with those ranked at or before a day earlier.
	lastHour := base.Add(35 * time.Hour)
	check("current", cur.Standings, lastHour)
	checkPast(t, cur.Previous, published[base.Add(11*time.Hour)]) // latest ≤ 35h3m+… − 24h
	// Older full ranks than the previous ones have expired.
	if old, err := s.Snapshot(ctx, hourly[len(hourly)-1]); err != nil {
		t.Fatal(err)
	} else if old.Previous == nil || !old.Previous.Window.End.Equal(base.Add(11*time.Hour)) {
		t.Errorf("the last whole hour's previous full ranks: %v, want those ranked at %v", old.Previous, base.Add(11*time.Hour))
	}
}

// checkPast checks that past are the ranks of the full ranks w published.
func checkPast(t *testing.T, past *salesrank.PastRanks, w *salesrank.Snapshot) {
	t.Helper()
	if past == nil || w == nil || !past.Window.End.Equal(w.Window.End) || past.SnapshotID != w.ID {
		t.Fatalf("the ranks of a day before: %+v, want those of snapshot %+v", past, w)
	}
	if past.Len() != w.Standings.Len() {
		t.Errorf("the ranks of a day before hold %d ranks, want %d", past.Len(), w.Standings.Len())
	}
	for _, c := range w.Standings.Categories() {
		if got := past.ProductsRanked(c.CategoryID); got != c.ProductsRanked {
			t.Errorf("a day before, category %d ranked %d products, want %d", c.CategoryID, got, c.ProductsRanked)
		}
		for i, r := range w.Standings.Ranked(c.CategoryID) {
			if got, ok := past.Rank(c.CategoryID, r.ProductID); !ok || got != i+1 {
				t.Errorf("a day before, product %d of category %d ranked %d (%v), want %d", r.ProductID, c.CategoryID, got, ok, i+1)
			}
		}
	}
}

// testInconsistentStandings checks that a publication whose full ranks disagree with its
// top lists, or rank at another cutoff, is refused whole.
func testInconsistentStandings(t *testing.T, s Store) {
	ctx := context.Background()
	good := snapshot(0, 3, 4)
	publish(t, s, good)
	for name, mangle := range map[string]func(totals salesrank.Totals, snap *salesrank.Snapshot){
		"another total": func(totals salesrank.Totals, snap *salesrank.Snapshot) {
			for k := range totals {
				totals[k]++
				break
			}
		},
		"another cutoff": func(totals salesrank.Totals, snap *salesrank.Snapshot) {
			snap.Window = salesrank.WindowEnding(snap.Window.End.Add(time.Hour))
		},
		"a category the snapshot lacks": func(totals salesrank.Totals, snap *salesrank.Snapshot) {
			totals[salesrank.Key{CategoryID: 999, ProductID: 1}] = 1
		},
	} {
		snap := snapshot(1, 3, 4)
		totals := totalsOf(snap)
		win := snap.Window
		mangle(totals, snap)
		st := salesrank.NewStandings(snap.Window, []iter.Seq2[salesrank.Key, int64]{totals.All()})
		snap.Window = win
		with := *snap
		with.Standings = st
		if _, err := s.Publish(ctx, &with, known(snap), nil); err == nil {
			t.Errorf("%s: published", name)
		}
		// The same full ranks, made while the store writes the top lists.
		if r, ok := s.(Ranking); ok {
			if _, err := r.PublishRanking(ctx, snap, known(snap), nil, func() *salesrank.Standings { return st }); err == nil {
				t.Errorf("%s, made during the publication: published", name)
			}
		}
		if got := currentID(t, s); got != good.ID {
			t.Errorf("%s: current snapshot %d, want %d", name, got, good.ID)
		}
	}
	r, ok := s.(Ranking)
	if !ok {
		return
	}
	snap := snapshot(1, 3, 4)
	st := salesrank.NewStandings(snap.Window, []iter.Seq2[salesrank.Key, int64]{totalsOf(snap).All()})
	id, err := r.PublishRanking(ctx, snap, known(snap), nil, func() *salesrank.Standings { return st })
	if err != nil {
		t.Fatal(err)
	}
	if snap.Standings != st || st.SnapshotID != id {
		t.Errorf("published full ranks made during the publication: the snapshot carries %p of snapshot %d, want %p of %d", snap.Standings, st.SnapshotID, st, id)
	}
	if cur := current(t, s); cur.ID != id || cur.Standings == nil || cur.Standings.SnapshotID != id || cur.Standings.Len() != st.Len() {
		t.Errorf("the current snapshot %d has full ranks %+v, want snapshot %d's %d", cur.ID, cur.Standings, id, st.Len())
	}
}

// Ranking is a store whose full ranks can be made while it writes the top lists.
type Ranking interface {
	Store
	PublishRanking(ctx context.Context, snap *salesrank.Snapshot, known []int32, rejects []salesrank.Reject, rankAll func() *salesrank.Standings) (int64, error)
	History(ctx context.Context) ([]store.KeptSnapshot, error)
}

// testFullRanksAfter publishes a snapshot's top lists, then publishes them again at the same
// cutoff with their full ranks, as the incremental ranker does, and checks that the second
// publication is current, answers from its own full ranks, shares every sales_rank row with
// the first, and takes the cutoff's place in the history; and that a second publication
// whose full ranks disagree with the top lists is refused and leaves the first current.
func testFullRanksAfter(t *testing.T, st Store) {
	s, ok := st.(Ranking)
	if !ok {
		t.Skip("the store cannot make full ranks while it publishes")
	}
	ctx := context.Background()
	snap := snapshot(0, 3, 4)
	snap.Rankings[1].Entries = []salesrank.Entry{{ProductID: 5, TotalSold: 9}, {ProductID: 6, TotalSold: 9}}
	first := publish(t, s, snap)
	totals := totalsOf(snap)
	again := func(totals salesrank.Totals) (*salesrank.Snapshot, error) {
		with := *snap
		with.ID, with.PublishedAt = 0, time.Time{}
		with.Rankings = slices.Clone(snap.Rankings)
		for i := range with.Rankings {
			with.Rankings[i].Entries = slices.Clone(snap.Rankings[i].Entries)
		}
		_, err := s.PublishRanking(ctx, &with, known(&with), nil, func() *salesrank.Standings {
			return salesrank.NewStandings(snap.Window, []iter.Seq2[salesrank.Key, int64]{totals.All()})
		})
		return &with, err
	}
	wrong := maps.Clone(totals)
	for k := range wrong {
		wrong[k]++
		break
	}
	if _, err := again(wrong); err == nil {
		t.Error("full ranks that disagree with the top lists were published")
	}
	if cur := current(t, s); cur.ID != first || cur.Standings != nil {
		t.Fatalf("after a refused publication, current is snapshot %d with full ranks %+v; want snapshot %d without", cur.ID, cur.Standings, first)
	}
	with, err := again(totals)
	if err != nil {
		t.Fatal(err)
	}
	cur := current(t, s)
	if cur.ID != with.ID || cur.ID <= first {
		t.Fatalf("after the full ranks' publication (snapshot %d), current is snapshot %d; want it, after %d", with.ID, cur.ID, first)
	}
	if cur.Standings == nil || cur.Standings.SnapshotID != with.ID || !cur.Standings.Window.End.Equal(snap.Window.End) {
		t.Fatalf("the current snapshot's full ranks are %+v, want snapshot %d's", cur.Standings, with.ID)
	}
	for _, c := range with.Standings.Categories() {
		if !slices.Equal(cur.Standings.Ranked(c.CategoryID), with.Standings.Ranked(c.CategoryID)) {
			t.Errorf("category %d reads back %v, want %v", c.CategoryID, cur.Standings.Ranked(c.CategoryID), with.Standings.Ranked(c.CategoryID))
		}
	}
	for i, r := range cur.Rankings {
		if !slices.Equal(r.Entries, snap.Rankings[i].Entries) {
			t.Errorf("category %d: the second publication holds %+v, the first %+v; want the same rows", r.CategoryID, r.Entries, snap.Rankings[i].Entries)
		}
	}
	kept, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || kept[0].ID != with.ID {
		t.Errorf("history %+v, want the cutoff once, as snapshot %d", kept, with.ID)
	}
}

// totalsOf returns the totals snap's top lists rank: the full ranks they are the whole of.
func totalsOf(snap *salesrank.Snapshot) salesrank.Totals {
	totals := salesrank.Totals{}
	for _, r := range snap.Rankings {
		for _, e := range r.Entries {
			totals[salesrank.Key{CategoryID: r.CategoryID, ProductID: e.ProductID}] = e.TotalSold
		}
	}
	return totals
}
