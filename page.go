package salesrank

import "fmt"

// The paging of a ranking: a request names the category's entries it wants as an offset
// (from 0) and a limit. The REST API and the RPC service both apply these, so a client gets
// the same page, and the same complaint about a bad limit, from either.
const (
	DefaultLimit = 10   // entries in a page when a request names no limit
	MaxLimit     = 1000 // the most entries one page may hold

	// The list of categories and the movers page by the same rule with their own bounds.
	DefaultCategoriesLimit = 1000
	MaxCategoriesLimit     = 10000
	DefaultMoversLimit     = DefaultLimit
	MaxMoversLimit         = 100
)

// ValidLimit reports whether limit is a page size a request may ask for: 1 to MaxLimit.
func ValidLimit(limit int64) bool { return 1 <= limit && limit <= MaxLimit }

// ValidOffset reports whether offset is one a request may ask for: any from 0. A page that
// starts past the end of a ranking is empty, not an error.
func ValidOffset(offset int64) bool { return offset >= 0 }

// LimitRule states the bounds of limit as the APIs' error messages give them; each API
// appends what the request sent, in its own notation.
func LimitRule() string {
	return fmt.Sprintf("limit must be an integer from 1 to %d (default %d)", MaxLimit, DefaultLimit)
}

// PageBounds returns the half-open range [lo, hi) of a ranking of n entries that the page at
// offset holding at most limit entries covers; it is empty (lo == hi) when offset is at or
// past the end. offset and limit must be valid.
func PageBounds(n int, offset, limit int64) (lo, hi int) {
	if offset >= int64(n) {
		return n, n
	}
	return int(offset), int(offset + min(limit, int64(n)-offset))
}
