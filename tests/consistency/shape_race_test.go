//go:build race

package consistency_test

import "time"

// The shape of a run under the race detector, which makes the pure-Go SQLite about ten
// times slower: snapshots of 64 rows, and fewer requests per publication, so that 1,000
// publications still finish in well under a minute. Every publication still overlaps
// requests of both kinds.
const (
	categories             = 8 // categories 1..categories in every snapshot
	entries                = 8 // entries per category, also the snapshots' top K
	dbReadsPerPublication  = 4
	apiReadsPerPublication = 16
	readerPause            = 10 * time.Millisecond
)
