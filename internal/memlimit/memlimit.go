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
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Every is how often Follow moves the limit.
const Every = time.Second

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

// Follow sets the runtime's soft memory limit to limit(live heap) every Every until ctx
// is done, then restores the limit it found.
func Follow(ctx context.Context, limit func(live uint64) int64) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(Every)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(limit(sample[0].Value.Uint64()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Start runs Follow in a goroutine, and returns the function that stops it and waits
// until the limit it found is restored.
func Start(ctx context.Context, limit func(live uint64) int64) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Follow(ctx, limit)
	}()
	return func() { cancel(); <-done }
}
