//go:build !race

package consistency_test

import "time"

// The shape of a run without the race detector: snapshots of 400 rows; the 16 database
// readers make up to 32 requests per publication between them and the 16 API readers up to
// 64, each after a random pause of up to 2 ms.
const (
	categories             = 20 // categories 1..categories in every snapshot
	entries                = 20 // entries per category, also the snapshots' top K
	dbReadsPerPublication  = 32
	apiReadsPerPublication = 64
	readerPause            = 2 * time.Millisecond
)
