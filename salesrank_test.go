package salesrank

import (
	"maps"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func TestRank(t *testing.T) {
	totals := Totals{
		{1, 10}: 5, {1, 11}: 7, {1, 9}: 5, {1, 12}: 5, // a tie at 5: product ids ascending
		{2, 1}: 0, {2, 2}: -3, // zeros and negatives are not ranked
		{3, 1<<63 - 1}: 1 << 40,
	}
	got := Rank(totals.All(), []int32{4, 2}, 3)
	want := []Ranking{
		{CategoryID: 1, Entries: []Entry{{ProductID: 11, TotalSold: 7}, {ProductID: 9, TotalSold: 5}, {ProductID: 10, TotalSold: 5}}},
		{CategoryID: 2},
		{CategoryID: 3, Entries: []Entry{{ProductID: 1<<63 - 1, TotalSold: 1 << 40}}},
		{CategoryID: 4},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Rank =\n%v\nwant\n%v", got, want)
	}
}

// TestRankPartsMatchesRank splits random totals into shards every which way: the ranking
// must not change.
func TestRankPartsMatchesRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	totals := Totals{}
	for range 20000 {
		totals[Key{rng.Int32N(30), rng.Int64N(2000)}] += rng.Int64N(20) - 2
	}
	want := Rank(totals.All(), []int32{99}, 10)
	for _, n := range []int{1, 2, 3, 7} {
		if got := RankParts(shards(totals, n), []int32{99}, 10); !reflect.DeepEqual(got, want) {
			t.Errorf("RankParts over %d parts differs from Rank", n)
		}
	}
}

func slicesOf(t Totals) []Key {
	var out []Key
	for k := range maps.Keys(t) {
		out = append(out, k)
	}
	return out
}

func TestWindowEdges(t *testing.T) {
	cutoff := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	w := WindowEnding(cutoff)
	for _, tt := range []struct {
		t    time.Time
		want bool
	}{
		{cutoff.Add(-7 * 24 * time.Hour), true},
		{cutoff.Add(-7*24*time.Hour - time.Second), false},
		{cutoff.Add(-time.Second), true},
		{cutoff, false},
	} {
		if got := w.Contains(tt.t.Unix()); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.t, got, tt.want)
		}
	}
}

func TestCutoff(t *testing.T) {
	now := time.Date(2026, 11, 20, 13, 47, 12, 5, time.FixedZone("", 3600))
	for _, tt := range []struct {
		interval time.Duration
		want     string
		err      bool
	}{
		{time.Hour, "2026-11-20T12:00:00Z", false},
		{time.Minute, "2026-11-20T12:47:00Z", false},
		{90 * time.Minute, "2026-11-20T12:00:00Z", false},
		{30 * time.Second, "", true},
		{0, "", true},
	} {
		got, err := Cutoff(now, tt.interval)
		if (err != nil) != tt.err || (err == nil && got.Format(time.RFC3339) != tt.want) {
			t.Errorf("Cutoff(%v) = %v, %v; want %s (error %v)", tt.interval, got.Format(time.RFC3339), err, tt.want, tt.err)
		}
	}
}
