// Package replicatest is a snapshot source for tests of replicas: one whose current
// snapshot and failure the test sets, and which counts how it was asked.
package replicatest

import (
	"context"
	"fmt"
	"sync"

	"github.com/salesrank/salesrank"
)

// Source is a replica.Source whose current snapshot and failure the test sets. The zero
// value has no snapshot and does not fail.
type Source struct {
	mu      sync.Mutex
	snap    *salesrank.Snapshot
	err     error // returned by both methods when set
	idCalls int
	loads   int
}

// Set makes s current and err what both methods return (nil: no failure).
func (f *Source) Set(s *salesrank.Snapshot, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap, f.err = s, err
}

// CurrentID returns the current snapshot's id.
func (f *Source) CurrentID(ctx context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.idCalls++
	if f.err != nil {
		return 0, f.err
	}
	if f.snap == nil {
		return 0, fmt.Errorf("current snapshot id: %w", salesrank.ErrNoSnapshot)
	}
	return f.snap.ID, nil
}

// Current returns the current snapshot.
func (f *Source) Current(ctx context.Context) (*salesrank.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	if f.err != nil {
		return nil, f.err
	}
	if f.snap == nil {
		return nil, fmt.Errorf("current snapshot: %w", salesrank.ErrNoSnapshot)
	}
	return f.snap, nil
}

// Counts returns how many times CurrentID and Current were called.
func (f *Source) Counts() (idCalls, loads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.idCalls, f.loads
}
