package salesrank

import (
	"math"
	"testing"
)

func TestPageBounds(t *testing.T) {
	for _, tc := range []struct {
		n              int
		offset, limit  int64
		wantLo, wantHi int
	}{
		{0, 0, DefaultLimit, 0, 0},
		{5, 0, DefaultLimit, 0, 5},
		{25, 0, DefaultLimit, 0, 10},
		{25, 20, DefaultLimit, 20, 25},
		{25, 24, 1, 24, 25},
		{25, 25, 1, 25, 25},
		{25, math.MaxInt64, MaxLimit, 25, 25},
		{25, 3, MaxLimit, 3, 25},
	} {
		lo, hi := PageBounds(tc.n, tc.offset, tc.limit)
		if lo != tc.wantLo || hi != tc.wantHi {
			t.Errorf("PageBounds(%d, %d, %d) = %d, %d; want %d, %d", tc.n, tc.offset, tc.limit, lo, hi, tc.wantLo, tc.wantHi)
		}
	}
}

func TestPagingRules(t *testing.T) {
	for _, tc := range []struct {
		limit int64
		want  bool
	}{{0, false}, {1, true}, {DefaultLimit, true}, {MaxLimit, true}, {MaxLimit + 1, false}, {-1, false}} {
		if got := ValidLimit(tc.limit); got != tc.want {
			t.Errorf("ValidLimit(%d) = %v, want %v", tc.limit, got, tc.want)
		}
	}
	if ValidOffset(-1) || !ValidOffset(0) || !ValidOffset(math.MaxInt64) {
		t.Errorf("ValidOffset: want false for -1, true for 0 and MaxInt64")
	}
	if got, want := LimitRule(), "limit must be an integer from 1 to 1000 (default 10)"; got != want {
		t.Errorf("LimitRule() = %q, want %q", got, want)
	}
}
