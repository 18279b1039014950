package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/store"
)

// Failing is a store whose writes can be made to fail at each of their steps (every
// backend's, through package store).
type Failing interface {
	Store
	Intake
	SetFailAt(fn func(step string) error)
}

// RunFailures aborts a publication and a batch at each of their steps (store.PublishSteps,
// store.BatchSteps), as a crash or a full disk would, and checks that nothing of either is
// left: counts renders the row count of every table, and must not change. Then it empties
// the database under a store (wipe deletes every row, as a restore from an old backup
// would lose them) and checks that the store's next publication does not trust what it
// remembers. open must return a new, empty store keeping Keep snapshots.
func RunFailures(t *testing.T, open func(t *testing.T) Failing, counts func(t *testing.T, s Failing) string, wipe func(t *testing.T, s Failing)) {
	t.Run("PublishFailsMidway", func(t *testing.T) { testPublishFailsMidway(t, open(t), counts) })
	t.Run("CommitBatchFailsMidway", func(t *testing.T) { testCommitBatchFailsMidway(t, open(t), counts) })
	t.Run("DatabaseRestored", func(t *testing.T) { testDatabaseRestored(t, open(t), counts, wipe) })
}

// failAt returns a hook that fails at step with boom, and records the steps it passed.
func failAt(step string, boom error, passed *[]string) func(string) error {
	return func(s string) error {
		*passed = append(*passed, s)
		if s == step {
			return boom
		}
		return nil
	}
}

func testPublishFailsMidway(t *testing.T, s Failing, counts func(t *testing.T, s Failing) string) {
	ctx := context.Background()
	// Keep publications, each with a product that the next drops: the failing one must
	// prune the oldest and close rows, and undo both.
	var id int64
	for h := range Keep {
		id = publish(t, s, &salesrank.Snapshot{
			Window: salesrank.WindowEnding(base.Add(time.Duration(h) * time.Hour)), Interval: time.Hour, Top: 2,
			Rankings: []salesrank.Ranking{{CategoryID: 1, Entries: []salesrank.Entry{{ProductID: int64(100 + h), TotalSold: 5}}}},
		})
	}
	next := func() *salesrank.Snapshot {
		return &salesrank.Snapshot{
			Window: salesrank.WindowEnding(base.Add(Keep * time.Hour)), Interval: time.Hour, Top: 2,
			Rankings: []salesrank.Ranking{
				{CategoryID: 1, Entries: []salesrank.Entry{{ProductID: 7, TotalSold: 6}}},
				{CategoryID: 2, Entries: []salesrank.Entry{{ProductID: 9, TotalSold: 7}}},
			},
		}
	}
	before := counts(t, s)
	boom := errors.New("boom")
	for i, step := range store.PublishSteps {
		var passed []string
		s.SetFailAt(failAt(step, boom, &passed))
		snap := next()
		_, err := s.Publish(ctx, snap, []int32{1, 2}, []salesrank.Reject{{Object: "o", Line: 1, Text: []byte("x")}})
		if !errors.Is(err, boom) {
			t.Fatalf("failing at %s: err = %v, want boom", step, err)
		}
		if want := store.PublishSteps[:i+1]; !slices.Equal(passed, want) {
			t.Errorf("failing at %s: the write passed the steps %v, want %v", step, passed, want)
		}
		if snap.ID != 0 || snap.Rankings[0].Entries[0].ID != 0 || !snap.PublishedAt.IsZero() {
			t.Errorf("failing at %s: the snapshot was modified: %+v", step, snap)
		}
		if got := currentID(t, s); got != id {
			t.Errorf("failing at %s: CurrentID = %d, want %d", step, got, id)
		}
		if got := counts(t, s); got != before {
			t.Errorf("failing at %s: row counts %s, want %s as before", step, got, before)
		}
	}
	s.SetFailAt(nil)
	// The store still publishes, and the failed attempts left nothing it trips on.
	snap := next()
	publish(t, s, snap)
	if d := diff(current(t, s), snap); d != "" {
		t.Errorf("after the failures, the next publication reads back differently: %s", d)
	}
	if ids, err := s.SnapshotIDs(ctx); err != nil || len(ids) != Keep {
		t.Errorf("after the failures, %d snapshots are kept (%v), want %d", len(ids), err, Keep)
	}
}

func testCommitBatchFailsMidway(t *testing.T, s Failing, counts func(t *testing.T, s Failing) string) {
	ctx := context.Background()
	commit(t, s, batch("a", []string{"a.log"}, []int{0}, 3))
	before := counts(t, s)
	boom := errors.New("boom")
	for i, step := range store.BatchSteps {
		var passed []string
		s.SetFailAt(failAt(step, boom, &passed))
		b := batch("b", []string{"b.log", "c.log"}, []int{1, 2}, 4)
		if err := s.CommitBatch(ctx, b); !errors.Is(err, boom) {
			t.Fatalf("failing at %s: err = %v, want boom", step, err)
		}
		if want := store.BatchSteps[:i+1]; !slices.Equal(passed, want) {
			t.Errorf("failing at %s: the write passed the steps %v, want %v", step, passed, want)
		}
		if b.ID != 0 || b.Objects[0].BatchID != 0 {
			t.Errorf("failing at %s: the batch was given ids: %+v", step, b)
		}
		if got := counts(t, s); got != before {
			t.Errorf("failing at %s: row counts %s, want %s as before", step, got, before)
		}
	}
	s.SetFailAt(nil)
	commit(t, s, batch("b", []string{"b.log", "c.log"}, []int{1, 2}, 4))
	if m, err := s.Manifest(ctx); err != nil || len(m) != 3 {
		t.Errorf("after the failures, the manifest holds %d objects (%v), want 3", len(m), err)
	}
}

// testDatabaseRestored publishes, loses every row under the store as a restore from an
// empty backup would, and publishes the same products again: the store must not skip
// products it remembers having written, which the database no longer has.
func testDatabaseRestored(t *testing.T, s Failing, counts func(t *testing.T, s Failing) string, wipe func(t *testing.T, s Failing)) {
	snap := func(h int) *salesrank.Snapshot {
		return &salesrank.Snapshot{
			Window: salesrank.WindowEnding(base.Add(time.Duration(h) * time.Hour)), Interval: time.Hour, Top: 2,
			Rankings: []salesrank.Ranking{{CategoryID: 1, Entries: []salesrank.Entry{{ProductID: 9, TotalSold: 5 + int64(h)}}}},
		}
	}
	publish(t, s, snap(0))
	publish(t, s, snap(1)) // remembered: this handle made the latest publication
	wipe(t, s)
	if left := counts(t, s); strings.Trim(left, "0/") != "" {
		t.Fatalf("wipe left rows: %s", left)
	}
	want := snap(2)
	publish(t, s, want)
	if d := diff(current(t, s), want); d != "" {
		t.Errorf("after the restore, the publication reads back differently: %s", d)
	}
}
