package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/ranker"
	"github.com/salesrank/salesrank/internal/sqlite"
)

// capture is a Publisher that keeps the snapshot instead of storing it.
type capture struct{ snap *salesrank.Snapshot }

func (p *capture) PublishRanking(_ context.Context, snap *salesrank.Snapshot, _ []int32, _ []salesrank.Reject, rankAll func() *salesrank.Standings) (int64, error) {
	if rankAll != nil {
		snap.Standings = rankAll()
	}
	p.snap = snap
	return 1, nil
}

// compare counts every object in bucket from scratch (ranker.Job) at now and returns how
// the store's current snapshot differs from it ("" when it does not).
func compare(ctx context.Context, db *sqlite.DB, logs *blob.Bucket, eng *counting.Local, top int, interval time.Duration, now time.Time) (string, error) {
	cur, err := db.Current(ctx)
	if err != nil {
		return "", err
	}
	p := &capture{}
	job := &ranker.Job{Logs: logs, Engine: eng, Store: p, Top: top, Interval: interval}
	if _, err := job.Run(ctx, now); err != nil {
		return "", fmt.Errorf("from-scratch count at %s: %w", now.Format(time.RFC3339), err)
	}
	if !cur.Window.End.Equal(p.snap.Window.End) {
		return fmt.Sprintf("cutoff %s, want %s", cur.Window.End, p.snap.Window.End), nil
	}
	return diffRankings(p.snap.Rankings, cur.Rankings), nil
}

// diffRankings describes how got differs from want ("" when equal), ignoring row ids.
func diffRankings(want, got []salesrank.Ranking) string {
	key := func(rs []salesrank.Ranking) map[int32][]salesrank.Entry {
		m := map[int32][]salesrank.Entry{}
		for _, r := range rs {
			es := make([]salesrank.Entry, len(r.Entries))
			for i, e := range r.Entries {
				es[i] = salesrank.Entry{ProductID: e.ProductID, TotalSold: e.TotalSold}
			}
			m[r.CategoryID] = es
		}
		return m
	}
	w, g := key(want), key(got)
	var diff []int32
	var example string
	for c, we := range w {
		if ge, ok := g[c]; !ok || !slices.Equal(we, ge) {
			diff = append(diff, c)
			if example == "" || c < diff[0] {
				example = fmt.Sprintf("category %d: got %s, want %s", c, head(ge), head(we))
			}
		}
	}
	for c := range g {
		if _, ok := w[c]; !ok {
			diff = append(diff, c)
		}
	}
	if len(diff) == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d categories differ (e.g. %s)", len(diff), len(w), example)
}

func head(es []salesrank.Entry) string {
	var b strings.Builder
	for i, e := range es[:min(3, len(es))] {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%d:%d", e.ProductID, e.TotalSold)
	}
	if len(es) > 3 {
		b.WriteString(" …")
	}
	return "[" + b.String() + "]"
}
