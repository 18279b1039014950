package cli

import (
	"runtime/debug"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/httpapi"
)

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
