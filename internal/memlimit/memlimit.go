// Package memlimit keeps the Go runtime's soft memory limit a margin above the live heap,
// moved as the live heap moves.
//
// At Go's default GOGC (100) a heap grows to twice what is live before it is collected.
// For salesrank's big processes most of the live heap is a few long-lived tables without
// pointers (a replica's full ranks, the ranker's window of 11 M keys at the seed's
// scale), so doubling it buys little and costs hundreds of MB of resident memory: the
// ranker's hourly steps peaked at 1.55–1.86 GiB for a live heap of 0.67–1.2 GiB. A limit
// a margin above the live heap makes the runtime collect before it grows that far; the
// tables hold no pointers, so a collection does not scan them.
package memlimit

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// minMargin is the least margin above the live heap: a small process keeps the GC
// schedule GOGC gives it.
const minMargin = 128 << 20

// Serve is a replica's limit for a live heap of live bytes: half as much again, and at
// least 128 MiB more.
func Serve(live uint64) int64 { return int64(live + max(live/2, minMargin)) }

// Rank is the ranker's: a quarter as much again, and at least 128 MiB more. The ranker
// allocates in bursts of known size (a batch's table, the hour's full ranks), which the
// runtime collects ahead of when the margin is small.
func Rank(live uint64) int64 { return int64(live + max(live/4, minMargin)) }

// Unset reports whether the operator left both of the runtime's memory settings, GOGC and
// GOMEMLIMIT, alone: only then do salesrank's commands choose them.
func Unset(getenv func(string) string) bool {
	return getenv("GOGC") == "" && getenv("GOMEMLIMIT") == ""
}

// Start sets the runtime's soft memory limit to limit(live heap) and moves it after each
// garbage collection (see follower), from the live heap that collection found, until ctx
// is done or the returned function is called; that function restores the limit Start
// found.
//
// The limit moves with each collection rather than on a timer: a process that allocates a
// table larger than its margin (a ranker's first count, a replica's full ranks) would
// otherwise hold a live heap above its limit until the timer fired, and the runtime would
// collect again and again, finding nothing to free, on up to half the CPU. A ranker's first
// run over a week (bench/rank.sh) spent 0.45 s of its 2.5 s that way with a one-second
// timer. Moved after each collection, the limit lets the heap grow by the margin between
// collections, as GOGC does.
func Start(ctx context.Context, limit func(live uint64) int64) (stop func()) {
	f := &follower{
		limit:  limit,
		before: debug.SetMemoryLimit(-1),
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}},
	}
	f.mu.Lock()
	f.follow()
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.stopped = true
		debug.SetMemoryLimit(f.before)
	}()
	return func() { cancel(); <-done }
}

// follower moves the limit after each collection. A collection is seen by the cleanup of
// a sentinel allocated after the previous one and dropped at once: the collection that
// frees it runs the cleanup, which reads the live heap it marked, sets the limit and drops
// a new sentinel. A sentinel dropped while the next collection is already marking
// survives it (new objects are born marked), so when collections run back to back the
// limit moves after every other one.
type follower struct {
	limit  func(live uint64) int64
	before int64
	sample []metrics.Sample

	mu      sync.Mutex
	stopped bool // Start's caller is done: set no limit, drop no sentinel
}

// sentinel holds a pointer so that it is never packed with other small objects into one
// block (Go's tiny allocator), whose cleanup would wait for all of them.
type sentinel struct{ _ *byte }

// follow sets the limit from the live heap of the last collection and drops a sentinel for
// the next one. f.mu is held.
func (f *follower) follow() {
	if f.stopped {
		return
	}
	metrics.Read(f.sample)
	if f.sample[0].Value.Kind() == metrics.KindUint64 {
		debug.SetMemoryLimit(f.limit(f.sample[0].Value.Uint64()))
	}
	runtime.AddCleanup(new(sentinel), func(f *follower) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.follow()
	}, f)
}
