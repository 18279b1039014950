package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/engine"
	"github.com/salesrank/salesrank/internal/objstore"
	"github.com/salesrank/salesrank/internal/ranker"
)

const rankSynopsis = `Usage: salesrank rank --logs URL|DIR --db DSN --once [--now RFC3339] [--top K]

Counts the units each product sold in each category over the week before the cutoff,
ranks every category (most units first, then the smaller product id) and publishes the
top K of each as one snapshot, atomically. The cutoff is --now (default: the current time)
truncated to --interval, and the window is [cutoff − 7 days, cutoff).

Bad lines never stop a run: each is kept verbatim in the database's quarantine
(table rejected_lines) with its object, line number and reason, and counted in the
summary. An object that cannot be read to its end (say, a truncated .gz) is left out
whole and named in the summary's failed_objects.

With --once, prints one JSON line on stdout when done, for example:
  {"snapshot_id":3,"lines_read":1400000,"lines_rejected":2,...}
and exits 0 when a snapshot was published, non-zero otherwise.

Examples:
  salesrank rank --logs ./data/logs --db ./data/salesrank.db --once
  salesrank rank --logs file:///srv/logs --db sqlite:/srv/salesrank.db --once --now 2026-11-20T13:00:00Z
`

func runRank(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "rank", rankSynopsis)
	logs := fs.String("logs", "", "where the sales logs are: a folder, or a URL (file://, mem://)")
	dsn := fs.String("db", "", "the database: sqlite:PATH or a bare path")
	once := fs.Bool("once", false, "run once, print a JSON summary and exit")
	every := fs.Duration("every", 0, "run as a scheduler at this period (not yet available: use --once from cron)")
	nowFlag := fs.String("now", "", "the run's time, RFC 3339 (default: the current time); sets the cutoff")
	top := fs.Int("top", salesrank.DefaultTop, "products kept per category")
	interval := fs.Duration("interval", salesrank.DefaultInterval, "refresh interval: cutoffs are aligned to it (whole minutes, at least 1m)")
	workers := fs.Int("workers", 0, "counting goroutines (default: one per core)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this `file` (for go tool pprof)")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	level, err := parseLevel(*logLevel)
	if err != nil {
		return err
	}
	switch {
	case *every != 0:
		return errors.New("rank: --every (the scheduler) is not available yet; run --once from cron or a systemd timer")
	case !*once:
		return errors.New("rank: say --once to run once (the scheduler, --every, is not available yet)")
	case *top < 1 || *top > 10000:
		return fmt.Errorf("rank: --top must be between 1 and 10000, got %d", *top)
	case *dsn == "":
		return errors.New("rank: no database: set --db (or SALESRANK_DB) to a SQLite path such as ./data/salesrank.db")
	}
	now := e.now()
	if *nowFlag != "" {
		if now, err = time.Parse(time.RFC3339, *nowFlag); err != nil {
			return fmt.Errorf("rank: --now %q is not an RFC 3339 time such as 2026-11-20T13:00:00Z", *nowFlag)
		}
	}
	if _, err := salesrank.Cutoff(now, *interval); err != nil {
		return fmt.Errorf("rank: --interval: %w", err)
	}
	log := newLogger(e.stderr, level).With("component", "rank")

	bucket, err := objstore.Open(ctx, *logs)
	if err != nil {
		return fmt.Errorf("rank: %w", err)
	}
	defer bucket.Close()
	db, err := openDB(ctx, *dsn)
	if err != nil {
		return fmt.Errorf("rank: %w", err)
	}
	defer db.Close()

	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return fmt.Errorf("rank: --cpuprofile: %w", err)
		}
		defer stop()
	}
	eng := &engine.Local{Workers: *workers}
	stopProgress := startProgress(e, eng)
	job := &ranker.Job{Logs: bucket, Engine: eng, Store: db, Top: *top, Interval: *interval, Logger: log}
	sum, err := job.Run(ctx, now)
	stopProgress()
	if err != nil {
		return fmt.Errorf("rank: %w", err)
	}
	log.Info("published snapshot", "snapshot_id", sum.SnapshotID, "cutoff", sum.Cutoff,
		"lines_read", sum.LinesRead, "lines_rejected", sum.LinesRejected, "seconds", sum.Seconds)
	if sum.LinesRejected > 0 {
		log.Warn("bad lines were quarantined; read them with: sqlite3 DB 'select * from rejected_lines'", "lines_rejected", sum.LinesRejected)
	}
	return json.NewEncoder(e.stdout).Encode(sum)
}

// startProgress shows bytes counted and the rate on a terminal, once a second, until the
// returned function is called. Elsewhere it does nothing: logs stay quiet.
func startProgress(e *env, eng *engine.Local) (stop func()) {
	if !isTerminal(e.stderr) {
		return func() {}
	}
	var n atomic.Int64
	eng.Progress = func(b int64) { n.Add(b) }
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(e.stderr, "\r\033[K")
				return
			case <-t.C:
				b := n.Load()
				fmt.Fprintf(e.stderr, "\rcounting: %d MB, %.0f MB/s", b>>20, float64(b)/(1<<20)/time.Since(start).Seconds())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
