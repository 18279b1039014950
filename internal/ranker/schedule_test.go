package ranker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/flock"
	"github.com/salesrank/salesrank/internal/sqlite"
)

// fakeClock jumps forward by whatever the scheduler waits for, so hours pass in microseconds.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- c.t
	return ch
}

// TestSchedulerStandbyTakesOver runs a scheduler while another process holds the lock: it
// must publish nothing, then publish the next cutoff once the lock is free.
func TestSchedulerStandbyTakesOver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	start := time.Date(2026, 11, 20, 13, 0, 30, 0, time.UTC)
	if err := bucket.WriteAll(ctx, "a.tsv", []byte(fmt.Sprintf("%d\t1\t1\t2\t1\t1\t1\n", start.Add(-time.Hour).Unix())), nil); err != nil {
		t.Fatal(err)
	}

	lockPath := filepath.Join(dir, "rank.lock")
	active := flock.NewFile(lockPath)
	if ok, _ := active.TryLock(); !ok {
		t.Fatal("could not take the lock")
	}
	clock := &fakeClock{t: start}
	var mu sync.Mutex
	var runs []*Summary
	standbyPolls := 0
	s := &Scheduler{
		Ranker: &Ranker{Logs: bucket, Engine: &counting.Local{}, Store: db, Interval: time.Minute},
		Lock:   flock.NewFile(lockPath),
		Now:    clock.Now,
		After: func(d time.Duration) <-chan time.Time {
			mu.Lock()
			defer mu.Unlock()
			if len(runs) == 0 {
				standbyPolls++
				if standbyPolls == 3 {
					active.Unlock() // the active ranker dies
				}
			}
			if len(runs) >= 3 {
				cancel()
			}
			return clock.After(d)
		},
		OnRun: func(s *Summary, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			runs = append(runs, s)
		},
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if standbyPolls < 3 {
		t.Fatalf("published after %d standby polls, want none while the lock was held", standbyPolls)
	}
	if len(runs) < 3 {
		t.Fatalf("%d runs, want at least 3", len(runs))
	}
	for i, r := range runs {
		if i > 0 && r.Cutoff.Sub(runs[i-1].Cutoff) != time.Minute {
			t.Errorf("run %d cutoff %s, want one minute after %s", i, r.Cutoff, runs[i-1].Cutoff)
		}
	}
	if runs[0].ObjectsTaken != 1 || runs[1].ObjectsTaken != 0 {
		t.Errorf("objects taken per run: %d, %d; want 1, 0", runs[0].ObjectsTaken, runs[1].ObjectsTaken)
	}
}

func TestFullRanksDue(t *testing.T) {
	h := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		cutoff, last time.Time
		want         bool
	}{
		{h, time.Time{}, true},                                   // a process's first run
		{h.Add(5 * time.Minute), time.Time{}, true},              // first run, between hours
		{h, h.Add(-time.Hour), true},                             // every whole hour
		{h.Add(time.Minute), h, false},                           // a minute after the hour's
		{h.Add(59 * time.Minute), h, false},                      // still within the hour
		{h.Add(3 * time.Minute), h.Add(-58 * time.Minute), true}, // the hour's run was missed
		{h.Add(90 * time.Minute), h.Add(time.Hour), false},       // 90m interval, ranked at 11:00
	} {
		if got := fullRanksDue(c.cutoff, c.last); got != c.want {
			t.Errorf("fullRanksDue(%v, last %v) = %v, want %v", c.cutoff.Format("15:04"), c.last.Format("15:04"), got, c.want)
		}
	}
}

// TestSchedulerRetriesFailedFullRanks fails the full ranks of a scheduled hourly run: the
// run is reported as failed, and the scheduler tries again at its next poll, within the
// same hour, and publishes them.
func TestSchedulerRetriesFailedFullRanks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bucket, db, hour := weekBefore(t, 6, 200)
	standings := 0
	db.SetFailAt(func(step string) error {
		if step == "standings" { // each publication passes it; the second carries the full ranks
			if standings++; standings == 2 {
				return errors.New("disk full")
			}
		}
		return nil
	})
	clock := &fakeClock{t: hour.Add(10 * time.Second)}
	var (
		errs []error
		sums []*Summary
	)
	s := &Scheduler{
		Ranker: &Ranker{Logs: bucket, Engine: &counting.Local{}, Store: db, Top: 2, FullRanks: true},
		Lock:   flock.NewFile(filepath.Join(t.TempDir(), "rank.lock")),
		Now:    clock.Now,
		After: func(d time.Duration) <-chan time.Time {
			if len(errs) >= 2 {
				cancel()
			}
			return clock.After(d)
		},
		OnRun: func(s *Summary, err error) { errs, sums = append(errs, err), append(sums, s) },
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(errs) < 2 {
		t.Fatalf("%d runs, want 2", len(errs))
	}
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "full ranks") || !strings.Contains(errs[0].Error(), "disk full") {
		t.Errorf("the first run: error %v, want one that says its full ranks failed", errs[0])
	}
	// The same cutoff: the retry came within the hour, not at the next one.
	if errs[1] != nil || !sums[1].Cutoff.Equal(hour) || sums[1].FullRanks == 0 || sums[1].TopListsSnapshotID == 0 {
		t.Errorf("the second run: error %v, summary %+v; want the full ranks of %v published", errs[1], sums[1], hour)
	}
}
