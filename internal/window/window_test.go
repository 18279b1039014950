package window

import (
	"context"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/partial"
)

// TestMoveAndRank moves a window hour by hour, by a day, back in time and past a week of
// downtime over random stored partials, adds new batches between moves, and after every
// step compares its ranking with one counted from scratch over the same buckets.
func TestMoveAndRank(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	c0 := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	stored := map[time.Time][]partial.Entry{} // the store: entries per hour
	for h := -9 * 24; h < 12*24; h++ {
		stored[c0.Add(time.Duration(h)*time.Hour)] = randomEntries(rng, 1+rng.IntN(30))
	}
	read := func(_ context.Context, from, to time.Time, fn func(time.Time, []byte) error) error {
		for _, h := range slices.SortedFunc(maps.Keys(stored), time.Time.Compare) {
			if h.Before(from) || !h.Before(to) {
				continue
			}
			data, err := partial.Encode(nil, time.Hour, merged(stored[h]))
			if err != nil {
				return err
			}
			if err := fn(h, data); err != nil {
				return err
			}
		}
		return nil
	}
	var w Window
	cutoff := c0
	for step, move := range []time.Duration{0, time.Hour, time.Hour, 24 * time.Hour, -3 * time.Hour, 5 * time.Hour, 8 * 24 * time.Hour, time.Hour} {
		cutoff = cutoff.Add(move)
		var st Stats
		if err := w.Move(ctx, cutoff, time.Hour, read, &st); err != nil {
			t.Fatal(err)
		}
		if wantRebuilt := step == 0 || move < 0 || move >= salesrank.WindowLength; st.Rebuilt != wantRebuilt {
			t.Errorf("step %d (move %v): rebuilt = %v, want %v", step, move, st.Rebuilt, wantRebuilt)
		}
		// A new batch: sums in hours inside, before and after the window, and at its
		// edges: its first hour and the hours just before it and at its cutoff.
		batch := &counting.Counts{}
		edges := []time.Duration{-salesrank.WindowLength - time.Hour, -salesrank.WindowLength, -time.Hour, 0}
		for i := range 20 + len(edges) {
			h := cutoff.Add(time.Duration(rng.IntN(9*24)-8*24) * time.Hour)
			if i < len(edges) {
				h = cutoff.Add(edges[i])
			}
			e := randomEntries(rng, 1)[0]
			e.Units += 5 // enough to move the ranking
			batch.AddAt(uint32(h.Unix()/3600), e.CategoryID, e.ProductID, e.Units)
			stored[h] = append(stored[h], e)
		}
		w.Add(counting.SumsOf(batch), time.Hour)
		w.Compact()

		top := 1 + rng.IntN(4)
		got := w.Rank(top, []int32{0, 1, 2, 3, 99}, &st)
		want := salesrank.Rank(scratch(stored, cutoff).All(), []int32{0, 1, 2, 3, 99}, top)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d (cutoff %v, top %d):\n got %v\nwant %v", step, cutoff, top, got, want)
		}
	}
}

// scratch counts the stored entries of the week before cutoff.
func scratch(stored map[time.Time][]partial.Entry, cutoff time.Time) *counting.Counts {
	c := &counting.Counts{}
	for h, es := range stored {
		if !h.Before(cutoff.Add(-salesrank.WindowLength)) && h.Before(cutoff) {
			for _, e := range es {
				c.Add(e.CategoryID, e.ProductID, e.Units)
			}
		}
	}
	return c
}

// merged sums entries of the same key, as a stored partial holds them.
func merged(es []partial.Entry) []partial.Entry {
	sums := map[salesrank.Key]int64{}
	for _, e := range es {
		sums[salesrank.Key{CategoryID: e.CategoryID, ProductID: e.ProductID}] += e.Units
	}
	var out []partial.Entry
	for k, u := range sums {
		out = append(out, partial.Entry{CategoryID: k.CategoryID, ProductID: k.ProductID, Units: u})
	}
	return out
}

// randomEntries returns n entries over few categories and products, so that totals tie.
func randomEntries(rng *rand.Rand, n int) []partial.Entry {
	es := make([]partial.Entry, n)
	for i := range es {
		es[i] = partial.Entry{CategoryID: int32(rng.IntN(4)), ProductID: int64(rng.IntN(12)), Units: 1 + int64(rng.IntN(3))}
	}
	return es
}

func TestMoveRefusesCoarserPartials(t *testing.T) {
	read := func(_ context.Context, from, to time.Time, fn func(time.Time, []byte) error) error {
		data, err := partial.Encode(nil, time.Hour, []partial.Entry{{CategoryID: 1, ProductID: 1, Units: 1}})
		if err != nil {
			return err
		}
		return fn(from, data)
	}
	var w Window
	err := w.Move(context.Background(), time.Date(2026, 11, 20, 13, 1, 0, 0, time.UTC), time.Minute, read, &Stats{})
	if err == nil {
		t.Fatal("a minute window built from hourly partials: no error")
	}
	if w.Len() != 0 {
		t.Errorf("after a failed move the window holds %d keys, want it emptied", w.Len())
	}
}
