// Command incremental benchmarks the incremental ranker (internal/ranker.Ranker) at the
// seed's scale, or a stated fraction of it: the first run over a week of hour-partitioned
// logs, the hourly step that takes one new hour and moves the window, a 1-minute refresh
// that takes one new minute, and the window rebuild from stored partial sums by a fresh
// process. It prints a markdown table of the figures against the targets of issue 3.
//
// The logs come from internal/loggen (as "salesrank gen" writes them) and are cached under
// --out: the week before the cutoff T, the hours after T, and one folder per minute after
// those hours. The ranker reads a fileblob bucket in a temporary folder into which the
// cached objects are hard-linked step by step, as the Sales API hosts would land them.
//
// Usage: see bench/incremental.sh, or go run ./bench/incremental --help.
//
// The files follow the run: main.go reads the flags, data.go generates and lands the logs,
// steps.go runs and times the steps, check.go compares snapshots with a from-scratch count,
// child.go is the fresh process of the rebuild, measure.go reads time, CPU and memory, and
// report.go prints the table.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/memlimit"
)

// config is the benchmark's command line.
type config struct {
	fraction    float64
	seed        uint64
	cutoff      time.Time
	hours       int
	minutes     int
	parts       int
	top         int
	workers     int
	out         string
	tmp         string
	check       string
	cpuProfile  string
	keepData    bool
	keepRun     bool
	fullRanks   bool          // the rankers publish full ranks (Ranker.FullRanks)
	memoryLimit bool          // a soft memory limit above the live heap, as rank keeps (package memlimit)
	logLevel    slog.Level    // the rankers' log level: debug shows each step's phases with their times
	retain      time.Duration // the stores keep every whole hour's snapshot this long (store.Core.Retain)

	// Child mode: one fresh Ranker's run in this process (the rebuild of step 4).
	child    bool
	childDB  string
	childLog string
	childNow time.Time
	// With --child-count, the publication whose rows a child process counts and the top
	// lists it carries (see countRows).
	countSnapshot, countTopLists int64
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "incremental:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("incremental", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Float64Var(&c.fraction, "fraction", 1.0, "share of the seed's sales rate to generate (1.0: a week ≈ 233 M lines); products and categories stay at 10 M and 1,000")
	fs.Uint64Var(&c.seed, "seed", 1, "generator seed")
	cutoff := fs.String("cutoff", "2026-11-08T00:00:00Z", "the first run's cutoff T (RFC 3339, a whole hour); the week is [T−7d, T)")
	fs.IntVar(&c.hours, "hours", 3, "hourly steps (new hour + window move) after the first run; the median is reported")
	fs.IntVar(&c.minutes, "minutes", 5, "1-minute refresh steps; the median is reported (60 reaches the next whole hour, where full ranks are due)")
	fs.IntVar(&c.parts, "parts", 1, "objects per hour in the generated logs")
	fs.IntVar(&c.top, "top", salesrank.DefaultTop, "products kept per category")
	fs.IntVar(&c.workers, "workers", 0, "counting goroutines (0: GOMAXPROCS)")
	fs.StringVar(&c.out, "out", "bench/out/incremental", "cache folder for the generated logs")
	fs.StringVar(&c.tmp, "tmp", "", "parent of the temporary run folder (bucket + db); default: --out, so objects are hard-linked, not copied")
	fs.StringVar(&c.check, "check", "auto", "compare the published snapshots with a from-scratch count (ranker.Job): on, off, or auto (on when --fraction ≤ 0.1)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of each step to `PREFIX`-{first,hour,rebuild,minute}.pprof")
	fs.BoolVar(&c.keepData, "keep-data", true, "keep the generated logs under --out for the next run")
	fs.BoolVar(&c.keepRun, "keep-run", false, "keep the run folder (its bucket and databases) and print its path, to serve or inspect them afterwards")
	fs.BoolVar(&c.fullRanks, "full-ranks", false, "the rankers also publish every product's rank (at whole-hour cutoffs and a process's first run), as rank --full-ranks does")
	fs.DurationVar(&c.retain, "retain", 0, "how long the stores keep every whole hour's snapshot, as rank --retain (0: only the latest few)")
	fs.BoolVar(&c.memoryLimit, "memory-limit", true, "keep a soft memory limit above the live heap, as rank does unless GOGC or GOMEMLIMIT is set (package memlimit)")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelWarn, "the rankers' log level on stderr: debug shows when each phase of a step begins (listing, counting, committing, publishing)")
	fs.BoolVar(&c.child, "child-rebuild", false, "internal: run one fresh Ranker and print its result as JSON")
	fs.StringVar(&c.childDB, "child-db", "", "internal")
	fs.StringVar(&c.childLog, "child-logs", "", "internal")
	childNow := fs.String("child-now", "", "internal")
	childCount := fs.Bool("child-count", false, "internal: count the rows of one publication in --child-db and print them as JSON")
	fs.Int64Var(&c.countSnapshot, "child-snapshot", 0, "internal")
	fs.Int64Var(&c.countTopLists, "child-top-lists", 0, "internal")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if c.cutoff, err = time.Parse(time.RFC3339, *cutoff); err != nil || !c.cutoff.Equal(c.cutoff.Truncate(time.Hour)) {
		return fmt.Errorf("--cutoff %q: want a whole hour in RFC 3339, such as 2026-11-08T00:00:00Z", *cutoff)
	}
	c.cutoff = c.cutoff.UTC()
	if *childCount { // one query: no memory limit to follow
		return runCountChild(ctx, c, stdout)
	}
	if c.memoryLimit && memlimit.Unset(os.Getenv) {
		defer memlimit.Start(ctx, memlimit.Rank)()
	}
	if c.child {
		if c.childNow, err = time.Parse(time.RFC3339, *childNow); err != nil {
			return fmt.Errorf("--child-now: %w", err)
		}
		return runChild(ctx, c, stdout)
	}
	switch {
	case !(c.fraction > 0 && c.fraction <= 1):
		return fmt.Errorf("--fraction must be in (0, 1], got %v", c.fraction)
	case c.hours < 1 || c.hours > 24:
		return fmt.Errorf("--hours must be 1 … 24, got %d", c.hours)
	case c.minutes < 1 || c.minutes > 60:
		return fmt.Errorf("--minutes must be 1 … 60, got %d", c.minutes)
	case c.check != "on" && c.check != "off" && c.check != "auto":
		return fmt.Errorf("--check must be on, off or auto, got %q", c.check)
	case c.retain < 0:
		return fmt.Errorf("--retain must not be negative, got %v", c.retain)
	}
	return bench(ctx, c, stdout, stderr)
}
