package replica

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/store"
)

// Archive is where a replica reads the history of the top lists: the store. The current
// snapshot is in memory; the snapshots kept before it are read on demand.
type Archive interface {
	History(ctx context.Context) ([]store.KeptSnapshot, error)
	TopList(ctx context.Context, id int64, category int32) ([]salesrank.Entry, error)
	ProductHistory(ctx context.Context, kept []store.KeptSnapshot, category int32, product int64, since time.Time) ([]store.HistoryPoint, error)
}

// Errors of History. ErrNotKept is the client's to fix (ask for a later time);
// ErrArchive is the store failing, whose cause the caller logs and does not send.
var (
	ErrNotKept = errors.New("no snapshot kept")
	ErrArchive = errors.New("the history could not be read")
)

// historyTimeout bounds one read of the archive.
const historyTimeout = 10 * time.Second

// History answers, for the REST API and the RPC service alike, what a replica is asked of
// the past. It reads the list of kept snapshots once per current snapshot: it changes only
// with publications. The zero value has no archive, and fails every read with ErrArchive.
type History struct {
	Archive Archive
	kept    atomic.Pointer[keptList]
}

type keptList struct {
	current int64
	kept    []store.KeptSnapshot
}

// keptSnapshots returns the archive's kept snapshots as of current, the snapshot served.
func (h *History) keptSnapshots(ctx context.Context, current *salesrank.Snapshot) ([]store.KeptSnapshot, error) {
	if h.Archive == nil {
		return nil, fmt.Errorf("%w: this replica has no store to read it from", ErrArchive)
	}
	if k := h.kept.Load(); k != nil && k.current == current.ID {
		return k.kept, nil
	}
	ctx, cancel := context.WithTimeout(ctx, historyTimeout)
	defer cancel()
	kept, err := h.Archive.History(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: list kept snapshots: %w", ErrArchive, err)
	}
	h.kept.Store(&keptList{current: current.ID, kept: kept})
	return kept, nil
}

// TopListAt returns the id, window and category's top list of the latest kept snapshot
// whose cutoff is at or before at: current itself (from memory) when at is at or after
// its cutoff. It fails with ErrNotKept if no kept snapshot is that old.
func (h *History) TopListAt(ctx context.Context, current *salesrank.Snapshot, category int32, at time.Time) (int64, salesrank.Window, []salesrank.Entry, error) {
	if !at.Before(current.Window.End) {
		return current.ID, current.Window, entriesOf(current, category), nil
	}
	kept, err := h.keptSnapshots(ctx, current)
	if err != nil {
		return 0, salesrank.Window{}, nil, err
	}
	var found *store.KeptSnapshot
	for i := range kept {
		if !kept[i].Cutoff.After(at) {
			found = &kept[i]
		}
	}
	switch {
	case found == nil:
		return 0, salesrank.Window{}, nil, fmt.Errorf("%w at or before %s", ErrNotKept, at.UTC().Format(time.RFC3339))
	case found.ID == current.ID:
		return current.ID, current.Window, entriesOf(current, category), nil
	}
	ctx, cancel := context.WithTimeout(ctx, historyTimeout)
	defer cancel()
	entries, err := h.Archive.TopList(ctx, found.ID, category)
	if err != nil {
		return 0, salesrank.Window{}, nil, fmt.Errorf("%w: top list of category %d in snapshot %d: %w", ErrArchive, category, found.ID, err)
	}
	return found.ID, salesrank.WindowEnding(found.Cutoff), entries, nil
}

// ProductHistory returns where product stood in category's top list in each kept
// snapshot from since on, oldest first, as of current.
func (h *History) ProductHistory(ctx context.Context, current *salesrank.Snapshot, category int32, product int64, since time.Time) ([]store.HistoryPoint, error) {
	kept, err := h.keptSnapshots(ctx, current)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, historyTimeout)
	defer cancel()
	points, err := h.Archive.ProductHistory(ctx, kept, category, product, since)
	if err != nil {
		return nil, fmt.Errorf("%w: product %d in category %d: %w", ErrArchive, product, category, err)
	}
	return points, nil
}

// entriesOf returns category's top list in snap, or nil.
func entriesOf(snap *salesrank.Snapshot, category int32) []salesrank.Entry {
	if r := snap.Ranking(category); r != nil {
		return r.Entries
	}
	return nil
}
