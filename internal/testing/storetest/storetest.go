// Package storetest is the contract every store must meet, written once and run against
// each backend (SQLite always, PostgreSQL when one is configured), so that the backends
// cannot drift apart in what "current", "atomic", "exactly once" and "verbatim" mean.
// Run covers published snapshots; RunIntake covers the manifest, batches and hourly partials.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
)

// Store is what the suite exercises: the store methods that the rank and serve commands use,
// plus SnapshotIDs so that pruning can be observed.
type Store interface {
	Publish(ctx context.Context, snap *salesrank.Snapshot, known []int32, rejects []salesrank.Reject) (int64, error)
	Current(ctx context.Context) (*salesrank.Snapshot, error)
	CurrentID(ctx context.Context) (int64, error)
	Rejects(ctx context.Context, limit int) ([]salesrank.Reject, error)
	// SnapshotIDs lists the stored snapshots, the current one first.
	SnapshotIDs(ctx context.Context) ([]int64, error)
	// Snapshot loads a stored snapshot by id.
	Snapshot(ctx context.Context, id int64) (*salesrank.Snapshot, error)
}

// Keep is the number of snapshots the suite expects a store to keep: open must return stores
// set to it (it is the backends' default).
const Keep = 3

// Run runs the contract suite. open must return a new, empty store keeping Keep snapshots;
// it is called once per subtest and should register its own cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"NoSnapshot", testNoSnapshot},
		{"RoundTrip", testRoundTrip},
		{"KnownWithoutRanking", testKnownWithoutRanking},
		{"NewerReplaces", testNewerReplaces},
		{"OlderCutoffIsNotCurrent", testOlderCutoffIsNotCurrent},
		{"Prune", testPrune},
		{"SharedRows", testSharedRows},
		{"SharedRowsAtTheEdges", testSharedRowsAtTheEdges},
		{"RowsMostlyReplaced", testRowsMostlyReplaced},
		{"Rejects", testRejects},
		{"InvalidSnapshot", testInvalidSnapshot},
		{"CancelledPublish", testCancelledPublish},
		{"ConcurrentReaders", testConcurrentReaders},
		{"History", testHistory},
		{"InconsistentStandings", testInconsistentStandings},
		{"FullRanksAfter", testFullRanksAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// base is the cutoff of the first snapshot in every test; later ones are hours after it.
var base = time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)

// snapshot builds an unpublished snapshot for the cutoff base+hour whose contents depend
// only on hour, so that a reader can recompute what it should see.
func snapshot(hour int, cats, top int) *salesrank.Snapshot {
	cutoff := base.Add(time.Duration(hour) * time.Hour)
	s := &salesrank.Snapshot{
		Window:   salesrank.WindowEnding(cutoff),
		Interval: time.Hour,
		Top:      top,
	}
	r := rand.New(rand.NewPCG(uint64(hour), 1))
	for c := range cats {
		n := r.IntN(top + 1)
		totals := salesrank.Totals{}
		for range n {
			totals.Add(salesrank.Key{CategoryID: int32(c), ProductID: r.Int64N(1000)}, 1+r.Int64N(1<<40))
		}
		s.Rankings = append(s.Rankings, salesrank.Rank(totals.All(), []int32{int32(c)}, top)...)
	}
	return s
}

func known(s *salesrank.Snapshot) []int32 {
	var ks []int32
	for _, r := range s.Rankings {
		ks = append(ks, r.CategoryID)
	}
	return ks
}

func publish(t *testing.T, s Store, snap *salesrank.Snapshot, rejects ...salesrank.Reject) int64 {
	t.Helper()
	id, err := s.Publish(context.Background(), snap, known(snap), rejects)
	if err != nil {
		t.Fatalf("Publish(cutoff %v): %v", snap.Window.End, err)
	}
	if id <= 0 || id != snap.ID {
		t.Fatalf("Publish returned id %d, set snap.ID %d; want the same positive id", id, snap.ID)
	}
	return id
}

func current(t *testing.T, s Store) *salesrank.Snapshot {
	t.Helper()
	got, err := s.Current(context.Background())
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	return got
}

// snapshotIDs returns the stored snapshots' ids, failing t if they cannot be listed.
func snapshotIDs(t *testing.T, s Store) []int64 {
	t.Helper()
	ids, err := s.SnapshotIDs(context.Background())
	if err != nil {
		t.Fatalf("SnapshotIDs: %v", err)
	}
	return ids
}

func currentID(t *testing.T, s Store) int64 {
	t.Helper()
	id, err := s.CurrentID(context.Background())
	if err != nil {
		t.Fatalf("CurrentID: %v", err)
	}
	return id
}

// diff describes how got differs from want, or returns "" if they are the same snapshot.
// Times compare with Equal, and nil and empty entry lists are the same.
func diff(got, want *salesrank.Snapshot) string {
	switch {
	case got.ID != want.ID:
		return fmt.Sprintf("ID = %d, want %d", got.ID, want.ID)
	case !got.Window.Start.Equal(want.Window.Start) || !got.Window.End.Equal(want.Window.End):
		return fmt.Sprintf("Window = %v, want %v", got.Window, want.Window)
	case got.Interval != want.Interval:
		return fmt.Sprintf("Interval = %v, want %v", got.Interval, want.Interval)
	case got.Top != want.Top:
		return fmt.Sprintf("Top = %d, want %d", got.Top, want.Top)
	case !got.PublishedAt.Equal(want.PublishedAt):
		return fmt.Sprintf("PublishedAt = %v, want %v", got.PublishedAt, want.PublishedAt)
	case len(got.Rankings) != len(want.Rankings):
		return fmt.Sprintf("%d rankings, want %d", len(got.Rankings), len(want.Rankings))
	}
	for i, g := range got.Rankings {
		w := want.Rankings[i]
		if g.CategoryID != w.CategoryID {
			return fmt.Sprintf("Rankings[%d].CategoryID = %d, want %d", i, g.CategoryID, w.CategoryID)
		}
		if !slices.Equal(g.Entries, w.Entries) {
			return fmt.Sprintf("category %d entries:\n got %v\nwant %v", g.CategoryID, g.Entries, w.Entries)
		}
	}
	return ""
}

func testNoSnapshot(t *testing.T, s Store) {
	ctx := context.Background()
	if _, err := s.Current(ctx); !errors.Is(err, salesrank.ErrNoSnapshot) {
		t.Errorf("Current on an empty store: err = %v, want ErrNoSnapshot", err)
	}
	if _, err := s.CurrentID(ctx); !errors.Is(err, salesrank.ErrNoSnapshot) {
		t.Errorf("CurrentID on an empty store: err = %v, want ErrNoSnapshot", err)
	}
	rs, err := s.Rejects(ctx, 10)
	if err != nil || len(rs) != 0 {
		t.Errorf("Rejects on an empty store = %v, %v; want none", rs, err)
	}
	ids, err := s.SnapshotIDs(ctx)
	if err != nil || len(ids) != 0 {
		t.Errorf("SnapshotIDs on an empty store = %v, %v; want none", ids, err)
	}
}

func testRoundTrip(t *testing.T, s Store) {
	snap := &salesrank.Snapshot{
		Window:      salesrank.WindowEnding(base),
		Interval:    90 * time.Minute,
		Top:         4,
		PublishedAt: time.Date(2026, 11, 20, 13, 2, 3, 456789012, time.UTC),
		Rankings: []salesrank.Ranking{
			{CategoryID: 0, Entries: []salesrank.Entry{{ProductID: 0, TotalSold: 1}}},
			{CategoryID: 7, Entries: nil}, // known, sold nothing in the window
			{CategoryID: 1234, Entries: []salesrank.Entry{
				{ProductID: salesrank.MaxProductID, TotalSold: 1<<62 + 5},
				{ProductID: 50, TotalSold: 1 << 33},
				{ProductID: 51, TotalSold: 1 << 33}, // a tie, broken by product id
				{ProductID: 3, TotalSold: 1<<32 + 1},
			}},
			{CategoryID: salesrank.MaxCategoryID, Entries: []salesrank.Entry{
				{ProductID: 50, TotalSold: 2}, // the same product in a second category
			}},
		},
	}
	want := *snap
	id := publish(t, s, snap)
	if !snap.PublishedAt.Equal(want.PublishedAt) {
		t.Errorf("Publish changed a set PublishedAt to %v", snap.PublishedAt)
	}
	seen := map[int64]bool{}
	for _, r := range snap.Rankings {
		for _, e := range r.Entries {
			if e.ID <= 0 || seen[e.ID] {
				t.Errorf("category %d product %d: Entry.ID %d, want a positive id unique in the snapshot", r.CategoryID, e.ProductID, e.ID)
			}
			seen[e.ID] = true
		}
	}
	if got := currentID(t, s); got != id {
		t.Errorf("CurrentID = %d, want %d", got, id)
	}
	got := current(t, s)
	if d := diff(got, snap); d != "" {
		t.Errorf("Current differs from what was published: %s", d)
	}
	for _, r := range got.Rankings {
		if r.Entries == nil {
			t.Errorf("category %d: Entries is nil, want empty (it encodes as [] in JSON)", r.CategoryID)
		}
	}

	// A zero PublishedAt is set by Publish.
	next := snapshot(1, 3, 5)
	before := time.Now()
	publish(t, s, next)
	if next.PublishedAt.Before(before.Add(-time.Minute)) || next.PublishedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("Publish set PublishedAt to %v, want about %v", next.PublishedAt, before)
	}
	if d := diff(current(t, s), next); d != "" {
		t.Errorf("Current differs from the second publish: %s", d)
	}
}

func testKnownWithoutRanking(t *testing.T, s Store) {
	snap := snapshot(0, 2, 3)
	if _, err := s.Publish(context.Background(), snap, []int32{0, 1, 42, 99}, nil); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := current(t, s)
	var cats []int32
	for _, r := range got.Rankings {
		cats = append(cats, r.CategoryID)
		if (r.CategoryID == 42 || r.CategoryID == 99) && len(r.Entries) != 0 {
			t.Errorf("category %d: %d entries, want none", r.CategoryID, len(r.Entries))
		}
	}
	if want := []int32{0, 1, 42, 99}; !slices.Equal(cats, want) {
		t.Errorf("Current covers categories %v, want %v: every known category", cats, want)
	}
}

func testNewerReplaces(t *testing.T, s Store) {
	first := snapshot(0, 5, 10)
	id1 := publish(t, s, first)
	second := snapshot(1, 5, 10)
	id2 := publish(t, s, second)
	if id2 == id1 {
		t.Fatalf("two publishes got the same id %d", id1)
	}
	if got := currentID(t, s); got != id2 {
		t.Errorf("CurrentID = %d, want the newer %d", got, id2)
	}
	if d := diff(current(t, s), second); d != "" {
		t.Errorf("Current is not the newer snapshot: %s", d)
	}
	// The same cutoff published again (a rerun) replaces it too: ties go to the latest.
	again := snapshot(1, 5, 10)
	id3 := publish(t, s, again)
	if got := currentID(t, s); got != id3 {
		t.Errorf("after republishing a cutoff, CurrentID = %d, want %d", got, id3)
	}
}

func testOlderCutoffIsNotCurrent(t *testing.T, s Store) {
	newer := snapshot(5, 4, 6)
	id := publish(t, s, newer)
	backfill := snapshot(2, 4, 6)
	publish(t, s, backfill)
	if got := currentID(t, s); got != id {
		t.Errorf("after a backfill, CurrentID = %d, want %d (the later cutoff)", got, id)
	}
	if d := diff(current(t, s), newer); d != "" {
		t.Errorf("after a backfill, Current: %s", d)
	}
}

func testPrune(t *testing.T, s Store) {
	ctx := context.Background()
	var ids []int64
	for h := range Keep + 3 {
		ids = append(ids, publish(t, s, snapshot(h, 3, 4)))
	}
	got, err := s.SnapshotIDs(ctx)
	if err != nil {
		t.Fatalf("SnapshotIDs: %v", err)
	}
	want := slices.Clone(ids[len(ids)-Keep:])
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Errorf("after %d publishes, SnapshotIDs = %v, want %v (the %d latest)", len(ids), got, want, Keep)
	}
	// A backfill older than every kept snapshot stays readable until the next publication
	// (an operator asked for it), and does not become current.
	back := publish(t, s, snapshot(-10, 3, 4))
	if got := snapshotIDs(t, s); !slices.Equal(got, append(slices.Clone(want), back)) {
		t.Errorf("after an old backfill, SnapshotIDs = %v, want %v", got, append(slices.Clone(want), back))
	}
	if got := currentID(t, s); got != want[0] {
		t.Errorf("CurrentID = %d, want %d", got, want[0])
	}
	// The next publication prunes it.
	next := publish(t, s, snapshot(Keep+3, 3, 4))
	want = append([]int64{next}, want[:Keep-1]...)
	if got := snapshotIDs(t, s); !slices.Equal(got, want) {
		t.Errorf("after the next publication, SnapshotIDs = %v, want %v", got, want)
	}
}

func testRejects(t *testing.T, s Store) {
	ctx := context.Background()
	rejects := []salesrank.Reject{
		{Object: "2026/11/20/host-a.log", Line: 1, Reason: "7 fields expected, got 3", Text: []byte("a\tb\tc")},
		{Object: "2026/11/20/host-a.log", Line: 2, Reason: "quantity: not a number", Text: []byte("1\t2\t3\tx\t5\t6\t7\r")},
		{Object: "2026/11/20/host-b.log.gz", Line: 1 << 40, Reason: "invalid UTF-8", Text: []byte{0xff, 0xfe, 0, '\t', 0x80, '\r'}},
		{Object: "weird\tname\xff", Line: 3, Reason: "empty", Text: []byte{}},
	}
	publish(t, s, snapshot(0, 2, 3), rejects[:2]...)
	publish(t, s, snapshot(1, 2, 3), rejects[2:]...)
	// Enough newer snapshots to prune the ones the rejects came with.
	for h := range Keep + 1 {
		publish(t, s, snapshot(2+h, 2, 3))
	}
	got, err := s.Rejects(ctx, 100)
	if err != nil {
		t.Fatalf("Rejects: %v", err)
	}
	want := slices.Clone(rejects)
	slices.Reverse(want) // newest first
	if len(got) != len(want) {
		t.Fatalf("Rejects returned %d lines, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Object != w.Object || g.Line != w.Line || g.Reason != w.Reason || !bytes.Equal(g.Text, w.Text) {
			t.Errorf("Rejects[%d] = {%q %d %q %q}, want {%q %d %q %q}", i, g.Object, g.Line, g.Reason, g.Text, w.Object, w.Line, w.Reason, w.Text)
		}
	}
	if got := readRejects(t, s, 2); len(got) != 2 || got[0].Object != want[0].Object || got[1].Line != want[1].Line {
		t.Errorf("Rejects(limit 2) = %+v, want the 2 newest", got)
	}
}

func testInvalidSnapshot(t *testing.T, s Store) {
	ctx := context.Background()
	good := snapshot(0, 3, 4)
	id := publish(t, s, good)
	bad := map[string]func(*salesrank.Snapshot){
		"repeated category": func(s *salesrank.Snapshot) { s.Rankings = append(s.Rankings, s.Rankings[0]) },
		"zero total": func(s *salesrank.Snapshot) {
			s.Rankings = []salesrank.Ranking{{CategoryID: 1, Entries: []salesrank.Entry{{ProductID: 1, TotalSold: 0}}}}
		},
		"out of order": func(s *salesrank.Snapshot) {
			s.Rankings = []salesrank.Ranking{{CategoryID: 1, Entries: []salesrank.Entry{{ProductID: 1, TotalSold: 1}, {ProductID: 2, TotalSold: 5}}}}
		},
		"negative category": func(s *salesrank.Snapshot) {
			s.Rankings = []salesrank.Ranking{{CategoryID: -1}}
		},
	}
	for name, spoil := range bad {
		snap := snapshot(1, 3, 4)
		spoil(snap)
		if _, err := s.Publish(ctx, snap, nil, []salesrank.Reject{{Object: name, Line: 1, Text: []byte("x")}}); err == nil {
			t.Errorf("Publish with a %s succeeded, want an error", name)
		}
		if snap.ID != 0 {
			t.Errorf("a failed Publish (%s) set snap.ID to %d", name, snap.ID)
		}
		if got := currentID(t, s); got != id {
			t.Errorf("after a failed Publish (%s), CurrentID = %d, want %d", name, got, id)
		}
	}
	if d := diff(current(t, s), good); d != "" {
		t.Errorf("after failed publishes, Current: %s", d)
	}
	if rs := readRejects(t, s, 10); len(rs) != 0 {
		t.Errorf("failed publishes left %d rejects behind, want none", len(rs))
	}
}

func testCancelledPublish(t *testing.T, s Store) {
	good := snapshot(0, 3, 4)
	publish(t, s, good)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Publish(ctx, snapshot(1, 3, 4), nil, nil); err == nil {
		t.Fatal("Publish with a cancelled context succeeded, want an error")
	}
	if d := diff(current(t, s), good); d != "" {
		t.Fatalf("after a cancelled publish, Current: %s", d)
	}

	// Cancel at assorted moments during a large publish: whatever the moment, the store
	// holds either the old snapshot or the whole new one. The moments are fractions of
	// how long an uncancelled publish takes, so that some land midway on any machine.
	big := snapshot(1, 300, 100)
	start := time.Now()
	publish(t, s, big)
	took := time.Since(start)
	prev := big
	var outcomes []string
	for i := range 8 {
		next := snapshot(2+i, 300, 100)
		after := took * time.Duration(i) / 6
		ctx, cancel := context.WithTimeout(context.Background(), after)
		_, err := s.Publish(ctx, next, known(next), nil)
		cancel()
		got := current(t, s)
		switch {
		case err == nil:
			prev = next
			outcomes = append(outcomes, "published")
		case got.ID != prev.ID && sameContent(got, next):
			// The deadline struck while the database was committing: the caller cannot
			// know the outcome (a ranker then re-reads what the store holds), but the
			// snapshot is in whole.
			prev = got
			outcomes = append(outcomes, "failed, committed")
		default:
			outcomes = append(outcomes, "failed")
		}
		if d := diff(got, prev); d != "" {
			t.Fatalf("publish cancelled after %v (err %v): Current: %s", after, err, d)
		}
	}
	t.Logf("publishes cancelled after 0/6 … 7/6 of %v: %v", took, outcomes)
}

// sameContent reports whether got holds want's window and rankings, whatever its ids and
// publication time.
func sameContent(got, want *salesrank.Snapshot) bool {
	if !got.Window.End.Equal(want.Window.End) || got.Top != want.Top || len(got.Rankings) != len(want.Rankings) {
		return false
	}
	for i, g := range got.Rankings {
		w := want.Rankings[i]
		if g.CategoryID != w.CategoryID || len(g.Entries) != len(w.Entries) {
			return false
		}
		for j, e := range g.Entries {
			if e.ProductID != w.Entries[j].ProductID || e.TotalSold != w.Entries[j].TotalSold {
				return false
			}
		}
	}
	return true
}

func testConcurrentReaders(t *testing.T, s Store) {
	const (
		publishes = 30
		readers   = 4
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var (
		mu        sync.Mutex
		published = map[int64]*salesrank.Snapshot{}
		seen      []*salesrank.Snapshot
	)
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for range readers {
		wg.Go(func() {
			var last time.Time
			for ctx.Err() == nil {
				got, err := s.Current(ctx)
				if errors.Is(err, salesrank.ErrNoSnapshot) || ctx.Err() != nil {
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("Current: %w", err)
					return
				}
				// Contents depend only on the cutoff, so a reader can check a snapshot
				// before the publisher has even heard back from Publish.
				hour := int(got.Window.End.Sub(base) / time.Hour)
				want := snapshot(hour, 20, 10)
				want.ID, want.PublishedAt = got.ID, got.PublishedAt
				for i := range want.Rankings {
					if i < len(got.Rankings) {
						for j := range want.Rankings[i].Entries {
							if j < len(got.Rankings[i].Entries) {
								want.Rankings[i].Entries[j].ID = got.Rankings[i].Entries[j].ID
							}
						}
					}
				}
				if d := diff(got, want); d != "" {
					errs <- fmt.Errorf("snapshot %d (hour %d) is not what was published: %s", got.ID, hour, d)
					return
				}
				if got.Window.End.Before(last) {
					errs <- fmt.Errorf("snapshot %d went back in time to %v after %v", got.ID, got.Window.End, last)
					return
				}
				last = got.Window.End
				mu.Lock()
				seen = append(seen, got)
				mu.Unlock()
			}
		})
	}
	for h := range publishes {
		snap := snapshot(h, 20, 10)
		id, err := s.Publish(context.Background(), snap, known(snap), nil)
		if err != nil {
			cancel()
			wg.Wait()
			t.Fatalf("Publish %d: %v", h, err)
		}
		mu.Lock()
		published[id] = snap
		mu.Unlock()
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Entry ids are only known once Publish returns; check them now.
	for _, got := range seen {
		want := published[got.ID]
		if want == nil {
			t.Errorf("a reader saw snapshot %d, which was never published", got.ID)
			continue
		}
		if d := diff(got, want); d != "" {
			t.Errorf("a reader saw snapshot %d as: %s", got.ID, d)
		}
	}
	t.Logf("%d reads across %d publishes", len(seen), publishes)
}

// testSharedRows publishes a chain of slowly changing rankings, as a one-minute ranker does,
// with backfills and repeated cutoffs among them, and checks after every publication that
// every stored snapshot reads back exactly as it was published, that a pruned one is gone,
// and that a row whose product and total did not change kept its id (the store shares it
// rather than writing it again).
// testSharedRowsAtTheEdges changes the totals of products whose ids differ by one at the
// edges of the id range, in the highest category: a store that lost the lowest bits of an id
// on the way to the database (a float64 holds integers up to 2^53 only) or truncated one
// would close or keep the wrong row, and a snapshot would read back wrong.
func testSharedRowsAtTheEdges(t *testing.T, s Store) {
	ctx := context.Background()
	c := int32(salesrank.MaxCategoryID)
	products := []int64{salesrank.MaxProductID, salesrank.MaxProductID - 1, 1<<53 + 1, 1 << 53, 1<<31 + 1, 1 << 31}
	published := map[int64]*salesrank.Snapshot{}
	for step := range 4 {
		totals := salesrank.Totals{}
		for i, p := range products {
			total := int64(100 - i)
			if i%2 == step%2 { // every other product, each step the other half
				total = int64(200 + 10*step + i)
			}
			totals[salesrank.Key{CategoryID: c, ProductID: p}] = total
		}
		snap := &salesrank.Snapshot{
			Window: salesrank.WindowEnding(base.Add(time.Duration(step) * time.Hour)), Interval: time.Hour, Top: len(products),
			Rankings: salesrank.Rank(totals.All(), []int32{c}, len(products)),
		}
		id, err := s.Publish(ctx, snap, []int32{c}, nil)
		if err != nil {
			t.Fatalf("step %d: Publish: %v", step, err)
		}
		published[id] = snap
		for sid, want := range published {
			got, err := s.Snapshot(ctx, sid)
			if errors.Is(err, salesrank.ErrNoSnapshot) {
				continue // pruned
			}
			if err != nil {
				t.Fatalf("step %d: Snapshot(%d): %v", step, sid, err)
			}
			if d := diff(got, want); d != "" {
				t.Fatalf("step %d: snapshot %d: %s", step, sid, d)
			}
		}
	}
}

// testRowsMostlyReplaced publishes a chain in which most rows change every time, as at an
// hourly refresh (where a store may leave rows ending at their publication, see
// store.Core.EndInPlace), some publications followed by the same lists again (as the
// ranker's full ranks follow its top lists), and a backfill now and then. Every kept
// snapshot must read back as published, and a product whose total stayed must keep its row
// id.
func testRowsMostlyReplaced(t *testing.T, s Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 10))
	known := []int32{1, 2, 3}
	totals := salesrank.Totals{}
	published := map[int64]*salesrank.Snapshot{}
	var prev map[salesrank.Key]salesrank.Entry // the previous publication's rows
	hour, kept, again := 0, 0, 0
	for step := range 40 {
		for _, c := range known {
			for p := range int64(8) {
				if k := (salesrank.Key{CategoryID: c, ProductID: p}); rng.IntN(5) > 0 || totals[k] == 0 {
					totals[k] = 1 + rng.Int64N(1000)
				}
			}
		}
		hour++
		cutoff := hour
		if rng.IntN(8) == 0 {
			cutoff -= 1 + rng.IntN(4) // a backfill
		}
		snap := &salesrank.Snapshot{
			Window: salesrank.WindowEnding(base.Add(time.Duration(cutoff) * time.Hour)), Interval: time.Hour, Top: 5,
			Rankings: salesrank.Rank(totals.All(), known, 5),
		}
		pubs := []*salesrank.Snapshot{snap}
		if rng.IntN(2) == 0 {
			same := *snap // the same lists, as the ranker publishes them again
			pubs = append(pubs, &same)
			again++
		}
		for _, pub := range pubs {
			id, err := s.Publish(ctx, pub, known, nil)
			if err != nil {
				t.Fatalf("step %d: Publish: %v", step, err)
			}
			published[id] = pub
			var k int
			prev, k, _ = rowsKept(t, step, prev, pub)
			kept += k
			checkStored(t, s, step, published)
		}
	}
	if kept == 0 || again == 0 {
		t.Fatalf("the chain kept %d rows and published %d lists again: it tests nothing", kept, again)
	}
}

// rowsKept returns pub's rows by key, and how many of them kept the total they had in prev
// (the previous publication's rows) and how many changed it. It fails t for a kept one whose
// row id changed.
func rowsKept(t *testing.T, step int, prev map[salesrank.Key]salesrank.Entry, pub *salesrank.Snapshot) (rows map[salesrank.Key]salesrank.Entry, kept, changed int) {
	t.Helper()
	rows = map[salesrank.Key]salesrank.Entry{}
	for _, rk := range pub.Rankings {
		for _, e := range rk.Entries {
			k := salesrank.Key{CategoryID: rk.CategoryID, ProductID: e.ProductID}
			rows[k] = e
			if p, ok := prev[k]; ok && p.TotalSold == e.TotalSold {
				kept++
				if p.ID != e.ID {
					t.Errorf("step %d: category %d product %d sold %d as before, but its row id changed from %d to %d",
						step, k.CategoryID, k.ProductID, e.TotalSold, p.ID, e.ID)
				}
			} else if ok {
				changed++
			}
		}
	}
	return rows, kept, changed
}

// checkStored checks, after step, that every snapshot the store keeps reads back as
// published, that those it pruned (which it forgets from published) read back as
// ErrNoSnapshot, and that Current is the one SnapshotIDs lists first.
func checkStored(t *testing.T, s Store, step int, published map[int64]*salesrank.Snapshot) {
	t.Helper()
	ctx := context.Background()
	ids, err := s.SnapshotIDs(ctx)
	if err != nil {
		t.Fatalf("step %d: SnapshotIDs: %v", step, err)
	}
	for _, sid := range ids {
		got, err := s.Snapshot(ctx, sid)
		if err != nil {
			t.Fatalf("step %d: Snapshot(%d): %v", step, sid, err)
		}
		if d := diff(got, published[sid]); d != "" {
			t.Fatalf("step %d: snapshot %d: %s", step, sid, d)
		}
	}
	for pid := range published {
		if !slices.Contains(ids, pid) {
			if _, err := s.Snapshot(ctx, pid); !errors.Is(err, salesrank.ErrNoSnapshot) {
				t.Fatalf("step %d: pruned snapshot %d: err = %v, want ErrNoSnapshot", step, pid, err)
			}
			delete(published, pid)
		}
	}
	if d := diff(current(t, s), published[ids[0]]); d != "" {
		t.Fatalf("step %d: Current: %s", step, d)
	}
}

func testSharedRows(t *testing.T, s Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	totals := salesrank.Totals{}
	known := []int32{1, 2, 3, salesrank.MaxCategoryID}
	// Ids at the edges too: 2^53+1 is the first a float64 cannot hold, which a store that
	// passed ids through a JSON number parsed as a double would close the wrong row for.
	products := []int64{salesrank.MaxProductID, 1<<53 + 1, 1 << 53}
	for p := range int64(27) {
		products = append(products, p)
	}
	published := map[int64]*salesrank.Snapshot{}
	hour, kept, changed := 0, 0, 0
	var prev map[salesrank.Key]salesrank.Entry // the previous publication's rows
	for step := range 40 {
		for range 1 + rng.IntN(6) {
			k := salesrank.Key{CategoryID: known[rng.IntN(len(known))], ProductID: products[rng.IntN(len(products))]}
			switch rng.IntN(4) {
			case 0:
				delete(totals, k)
			default:
				totals[k] = 1 + rng.Int64N(20) // ties are likely
			}
		}
		cutoff := hour
		switch rng.IntN(8) {
		case 0:
			cutoff = hour - 1 - rng.IntN(6) // a backfill, maybe older than every kept one
		case 1: // the same cutoff again
		default:
			hour++
			cutoff = hour
		}
		snap := &salesrank.Snapshot{
			Window: salesrank.WindowEnding(base.Add(time.Duration(cutoff) * time.Hour)), Interval: time.Hour, Top: 5,
			Rankings: salesrank.Rank(totals.All(), known, 5),
		}
		id, err := s.Publish(ctx, snap, known, nil)
		if err != nil {
			t.Fatalf("step %d: Publish: %v", step, err)
		}
		published[id] = snap
		var k, c int
		prev, k, c = rowsKept(t, step, prev, snap)
		kept, changed = kept+k, changed+c

		checkStored(t, s, step, published)
	}
	if kept == 0 || changed == 0 {
		t.Fatalf("the chain kept %d rows and changed %d: it does not test sharing", kept, changed)
	}
}
