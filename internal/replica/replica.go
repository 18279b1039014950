// Package replica is what a serving replica is: the snapshot it holds in memory (Holder),
// kept current from the store by a Watcher, which polls for a new snapshot id and loads the
// whole snapshot only when it changed. The HTTP API and the RPC service both answer from
// the one Holder, so they always serve the same snapshot.
//
// When the store fails, the replica keeps serving the snapshot it holds, marked stale:
// a database outage degrades freshness, not availability.
package replica

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/salesrank/salesrank"
)

// Source is where published snapshots are read from: the SQL store.
type Source interface {
	// CurrentID returns the id of the current snapshot. It is cheap, so it can be polled.
	// The error wraps salesrank.ErrNoSnapshot when none was published.
	CurrentID(ctx context.Context) (int64, error)
	// Current returns the whole current snapshot, with a Ranking for every known category
	// (empty Entries for one that sold nothing). The error wraps salesrank.ErrNoSnapshot
	// when none was published.
	Current(ctx context.Context) (*salesrank.Snapshot, error)
}

// Target is what a Watcher keeps current: a Holder, or a type that embeds one and renders
// what it stores.
type Target interface {
	ID() (int64, bool)
	Store(s *salesrank.Snapshot)
	SetSourceDown(down bool)
	SourceOK(t time.Time, silentAfter time.Duration)
}

// Holder holds the snapshot a replica serves, with whatever a server rendered from it (a
// view). StoreView swaps both at once, so a request sees either the old snapshot or the new
// one, never a mix. The zero value holds no snapshot and is ready to use.
type Holder struct {
	v atomic.Pointer[held]
	// unreachable is set while the snapshot source fails: answers keep coming from memory,
	// marked stale, because a newer snapshot may exist that this replica cannot see.
	unreachable atomic.Bool
	// lastOK is when a poll last succeeded (unix ns; 0 before any) and silentAfter how long
	// without one makes answers stale: a database that stops answering altogether (a
	// partition) fails no poll until the poll's own timeout, so silence counts too.
	lastOK      atomic.Int64
	silentAfter atomic.Int64
}

type held struct {
	snap *salesrank.Snapshot
	view any
}

// Store makes s the snapshot served from now on, with no view. A nil s is ignored.
func (h *Holder) Store(s *salesrank.Snapshot) { h.StoreView(s, nil) }

// StoreView makes s, and view rendered from it, what is served from now on. A nil s is
// ignored.
func (h *Holder) StoreView(s *salesrank.Snapshot, view any) {
	if s == nil {
		return
	}
	h.v.Store(&held{snap: s, view: view})
}

// Snapshot returns the snapshot being served, or nil if none was stored yet. It must not be
// modified.
func (h *Holder) Snapshot() *salesrank.Snapshot {
	if v := h.v.Load(); v != nil {
		return v.snap
	}
	return nil
}

// View returns the view stored with the snapshot being served, or nil.
func (h *Holder) View() any {
	if v := h.v.Load(); v != nil {
		return v.view
	}
	return nil
}

// ID returns the id of the snapshot being served and whether there is one.
func (h *Holder) ID() (int64, bool) {
	if v := h.v.Load(); v != nil {
		return v.snap.ID, true
	}
	return 0, false
}

// SetSourceDown records whether the snapshot source (the database) is failing.
func (h *Holder) SetSourceDown(down bool) { h.unreachable.Store(down) }

// SourceOK records a successful poll at t; answers become stale if none follows within
// silentAfter (0: never on silence alone).
func (h *Holder) SourceOK(t time.Time, silentAfter time.Duration) {
	h.lastOK.Store(t.UnixNano())
	h.silentAfter.Store(int64(silentAfter))
}

// SourceStale reports whether answers at now must be marked stale for want of the source.
func (h *Holder) SourceStale(now time.Time) bool {
	if h.unreachable.Load() {
		return true
	}
	last, after := h.lastOK.Load(), h.silentAfter.Load()
	return last != 0 && after > 0 && now.UnixNano()-last > after
}
