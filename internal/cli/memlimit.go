package cli

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/httpapi"
)

// A replica's live heap is small (16 MB of top lists) until it holds full ranks: some
// 225 MB for the current ones and 90 MB for the ranks of a day before, at the seed's
// scale. serveGCPercent lets the heap grow to five times what is live, which for full
// ranks would be 1.6 GB for 320 MB of data. So serve also keeps a soft memory limit a little
// above the live heap, moved as the live heap moves: small replicas keep the cheap GC
// that serveGCPercent buys, big ones collect before their heap doubles. The full ranks
// hold no pointers, so a collection does not scan them.

// limitEvery is how often the limit follows the live heap.
const limitEvery = time.Second

// memoryHeadroom returns the soft memory limit for a live heap of live bytes: half as much
// again, and at least 128 MiB more.
func memoryHeadroom(live uint64) int64 {
	return int64(live + max(live/2, 128<<20))
}

// followLiveHeap sets the runtime's soft memory limit from the live heap every
// limitEvery until ctx is done, then restores the limit it found.
func followLiveHeap(ctx context.Context) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(limitEvery)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(memoryHeadroom(sample[0].Value.Uint64()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// releasingHolder is the holder a replica's watcher stores into. When a new snapshot
// brings new full ranks, the ones it replaces (hundreds of MB), and the scratch of loading
// them, are garbage once it is stored: it collects them and gives their pages back to the
// system at once. Left to the
// runtime, an idle replica kept them resident for as long as it made no garbage.
type releasingHolder struct {
	*httpapi.Holder
}

func (h releasingHolder) Store(s *salesrank.Snapshot) {
	old := h.Holder.Snapshot()
	h.Holder.Store(s)
	if s != nil && (old == nil && s.Standings != nil || old != nil && (old.Standings != s.Standings || old.Previous != s.Previous)) {
		debug.FreeOSMemory()
	}
}
