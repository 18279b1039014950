package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/memlimit"
	"github.com/salesrank/salesrank/internal/objstore"
	"github.com/salesrank/salesrank/internal/ranker"
)

const rankSynopsis = `Usage:
  salesrank rank --logs URL|DIR --db DSN --once [--now RFC3339] [--top K]
  salesrank rank --logs URL|DIR --db DSN --every 1h

Ranks each category's best sellers over the week before the cutoff and publishes them as
one snapshot, atomically. The cutoff is the run's time (--now, default the current time)
truncated to the refresh interval (--every, else --interval); the window is
[cutoff − 7 days, cutoff). Ranking: most units first, then the smaller product id.

Incremental and exactly once. Each run takes only the log objects it has not taken before:
it sums their sales per hour of sale and commits those partial sums with the objects'
manifest entries in one transaction, so a crash at any moment loses nothing and counts
nothing twice. The window then moves by adding the hours that entered it and subtracting
those that left. Late objects fold into the hours they belong to; sales older than the
window plus --grace are counted as too late and reported. An object rewritten under a key
already taken is refused and reported (logs are immutable: correct with new objects).

  --once   one run, then print a one-line JSON summary on stdout (lines_read,
           lines_rejected, snapshot_id, objects_taken, …); exit 0 when a snapshot was published.
  --every  run at every cutoff aligned to this period until SIGTERM. Only one ranker per
           database is active (a lock file beside the SQLite file); others wait as
           standbys and take over within one period. A run logs one JSON line.
  --full   count every object from scratch and keep no manifest or partial sums (a one-off
           analysis, or a benchmark against a query engine); with --once only.

Bad lines never stop a run: each is kept verbatim in the database's quarantine (table
rejected_lines) with its object, line number and reason. An object that cannot be read to
its end is left out whole, reported in failed_objects, and tried again next run.

Full ranks (--full-ranks, default true): at every whole hour, and at a process's first
run, the ranker publishes the top lists first, then the same top lists again with every
product's rank, as a second snapshot of the cutoff.

Memory: unless GOGC or GOMEMLIMIT is set, rank keeps a soft memory limit a quarter above
its live heap (at least 128 MiB above), moved every second, instead of letting the heap
double before each collection: at the seed's scale the live heap is the week's window,
~0.7-0.85 GiB, and the limit held the hourly ranker at 1.03-1.17 GiB rather than 1.57-1.64
GiB; a first run over a week took 20-30% longer. GOGC=100 gives Go's default back.

Examples:
  salesrank rank --logs ./data/logs --db ./data/salesrank.db --once
  salesrank rank --logs s3://sales-logs/api?region=eu-west-1 --db /var/lib/salesrank.db --every 1h
  salesrank rank --logs ./logs --db ./s.db --once --now 2026-11-20T13:00:00Z   # a backfill
`

// DefaultRetain is how long a ranker keeps the hourly snapshots, the history of the top
// lists, unless told otherwise (--retain).
const DefaultRetain = 30 * 24 * time.Hour

// rankConfig is rank's command line, checked.
type rankConfig struct {
	logs, dsn   string
	full        bool
	every       time.Duration // 0 for one run
	now         time.Time     // the run's time, which sets the cutoff
	top         int
	interval    time.Duration
	grace       time.Duration
	retain      time.Duration
	fullRanks   bool
	workers     int
	batchBytes  int64
	level       slog.Level
	cpuProfile  string
	metricsAddr string
}

func runRank(ctx context.Context, e *env, args []string) error {
	cfg, err := parseRank(e, args)
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, cfg.level).With("component", "rank")
	if memlimit.Unset(e.getenv) {
		defer memlimit.Start(ctx, memlimit.Rank)()
	}

	logs, err := objstore.Open(ctx, cfg.logs)
	if err != nil {
		return fmt.Errorf("rank: %w", err)
	}
	defer logs.Close()
	db, err := openDB(ctx, cfg.dsn)
	if err != nil {
		return fmt.Errorf("rank: %w", err)
	}
	defer db.Close()
	db.SetRetain(cfg.retain)

	if cfg.cpuProfile != "" {
		stop, err := startCPUProfile(cfg.cpuProfile)
		if err != nil {
			return fmt.Errorf("rank: --cpuprofile: %w", err)
		}
		defer stop()
	}
	eng, progress, closeEngine, err := rankEngine(ctx, e, cfg, log)
	if err != nil {
		return fmt.Errorf("rank: %w", err)
	}
	defer closeEngine()

	if cfg.full {
		stopProgress := progress()
		job := &ranker.Job{Logs: logs, Engine: eng, Store: db, Top: cfg.top, Interval: cfg.interval, FullRanks: cfg.fullRanks, Logger: log}
		sum, err := job.Run(ctx, cfg.now)
		stopProgress()
		if err != nil {
			return fmt.Errorf("rank: %w", err)
		}
		return reportOnce(e, log, sum)
	}
	rk := &ranker.Ranker{Logs: logs, Engine: eng, Store: db, Top: cfg.top, Interval: cfg.interval, Grace: cfg.grace,
		MaxBatchBytes: cfg.batchBytes, FullRanks: cfg.fullRanks, Once: cfg.every == 0, Logger: log}
	if cfg.every != 0 {
		return runRankScheduler(ctx, e, cfg, log, rk, db)
	}
	return runRankOnce(ctx, e, cfg, log, rk, db, progress)
}

// parseRank reads rank's flags, and a Counter's, and checks them.
func parseRank(e *env, args []string) (rankConfig, error) {
	synopsis := strings.ReplaceAll(rankSynopsis, "salesrank rank", e.prog.name()+" rank")
	if c := e.prog.Counter; c != nil {
		synopsis += "\n" + c.Help()
	}
	fs := newFlagSet(e, "rank", synopsis)
	logs := fs.String("logs", "", "where the sales logs are: a folder, or a URL (file://, s3://, gs://, mem://)")
	dsn := fs.String("db", "", "the database: sqlite:PATH or a bare path")
	once := fs.Bool("once", false, "run once, print a JSON summary and exit")
	every := fs.Duration("every", 0, "run as a scheduler at this period (whole minutes, at least 1m)")
	full := fs.Bool("full", false, "with --once: count every object from scratch, keep no state")
	nowFlag := fs.String("now", "", "the run's time, RFC 3339 (default: the current time); sets the cutoff")
	top := fs.Int("top", salesrank.DefaultTop, "products kept per category")
	interval := fs.Duration("interval", salesrank.DefaultInterval, "with --once: cutoffs are aligned to it (whole minutes, at least 1m)")
	grace := fs.Duration("grace", ranker.DefaultGrace, "how long hourly partial sums are kept past the window, for late objects and backfills")
	retain := fs.Duration("retain", DefaultRetain, "how long the snapshot of every whole hour is kept: the history of the top lists\n(0 keeps only the latest few)")
	fullRanks := fs.Bool("full-ranks", true, "also publish every product's rank in every category, hourly (what /products/{id}/ranks\nand /movers answer from); =false publishes the top lists only")
	workers := new(int)
	if e.prog.Counter == nil { // a Counter brings its own
		fs.IntVar(workers, "workers", 0, "counting goroutines (default: one per core)")
	}
	batchBytes := fs.Int64("batch-bytes", 0, "new objects (bytes as stored) counted and committed together in one batch\n(default 256 MiB, 64 MiB for buckets under an hour; an engine on a cluster wants more)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this `file` (for go tool pprof)")
	metricsAddr := fs.String("metrics-addr", "", "with --every: serve Prometheus metrics of the runs on `HOST:PORT` at /metrics\n(default none; keep it off the public network)")
	if e.prog.Counter != nil {
		e.prog.Counter.Flags(fs)
	}
	if err := parseFlags(e, fs, args); err != nil {
		return rankConfig{}, err
	}
	level, err := parseLevel(*logLevel)
	if err != nil {
		return rankConfig{}, err
	}
	switch {
	case *once == (*every != 0):
		return rankConfig{}, errors.New("rank: say either --once (one run) or --every PERIOD (the scheduler)")
	case *metricsAddr != "" && *every == 0:
		return rankConfig{}, errors.New("rank: --metrics-addr goes with --every; a --once run reports in its JSON summary")
	case *full && !*once:
		return rankConfig{}, errors.New("rank: --full goes with --once")
	case *top < 1 || *top > 10000:
		return rankConfig{}, fmt.Errorf("rank: --top must be between 1 and 10000, got %d", *top)
	case *batchBytes < 0:
		return rankConfig{}, fmt.Errorf("rank: --batch-bytes must not be negative, got %d", *batchBytes)
	case *grace < 0:
		return rankConfig{}, fmt.Errorf("rank: --grace must not be negative, got %v", *grace)
	case *retain < 0:
		return rankConfig{}, fmt.Errorf("rank: --retain must not be negative, got %v", *retain)
	case *dsn == "":
		return rankConfig{}, errors.New("rank: no database: set --db (or SALESRANK_DB) to a SQLite path such as ./data/salesrank.db")
	}
	if *every != 0 {
		*interval = *every
	}
	now := e.now()
	if *nowFlag != "" {
		if *every != 0 {
			return rankConfig{}, errors.New("rank: --now goes with --once; the scheduler runs on the clock")
		}
		if now, err = time.Parse(time.RFC3339, *nowFlag); err != nil {
			return rankConfig{}, fmt.Errorf("rank: --now %q is not an RFC 3339 time such as 2026-11-20T13:00:00Z", *nowFlag)
		}
	}
	if _, err := salesrank.Cutoff(now, *interval); err != nil {
		return rankConfig{}, fmt.Errorf("rank: --every/--interval: %w", err)
	}
	return rankConfig{
		logs: *logs, dsn: *dsn, full: *full, every: *every, now: now,
		top: *top, interval: *interval, grace: *grace, retain: *retain, fullRanks: *fullRanks,
		workers: *workers, batchBytes: *batchBytes,
		level: level, cpuProfile: *cpuProfile, metricsAddr: *metricsAddr,
	}, nil
}

// rankEngine returns the engine that counts: the program's Counter if it has one, else the
// local engine, whose progress shows on a terminal while a run counts. closeEngine releases
// it.
func rankEngine(ctx context.Context, e *env, cfg rankConfig, log *slog.Logger) (eng ranker.Engine, progress func() (stop func()), closeEngine func(), err error) {
	if c := e.prog.Counter; c != nil {
		eng, closeEngine, err := c.Engine(ctx, cfg.logs, log)
		if err != nil {
			return nil, nil, nil, err
		}
		return eng, func() func() { return func() {} }, closeEngine, nil
	}
	local := &counting.Local{Workers: cfg.workers}
	return local, func() func() { return startProgress(e, local) }, func() {}, nil
}

// runRankScheduler runs rk at every cutoff until ctx is done, as the active ranker or a
// standby, serving its metrics when asked to.
func runRankScheduler(ctx context.Context, e *env, cfg rankConfig, log *slog.Logger, rk *ranker.Ranker, db store) error {
	s := &ranker.Scheduler{Ranker: rk, Lock: db.RankerLock(), Now: e.now, Logger: log}
	if cfg.metricsAddr != "" {
		stop, err := serveRankMetrics(log, cfg.metricsAddr, e.now, s)
		if err != nil {
			return fmt.Errorf("rank: --metrics-addr: %w", err)
		}
		defer stop()
	}
	log.Info("scheduler starting", "every", cfg.every.String(), "db", db.Describe())
	return s.Run(ctx)
}

// runRankOnce runs rk once at cfg.now, if no other ranker is active, and reports the run.
func runRankOnce(ctx context.Context, e *env, cfg rankConfig, log *slog.Logger, rk *ranker.Ranker, db store, progress func() (stop func())) error {
	lk := db.RankerLock()
	ok, err := lk.TryLock()
	if err != nil {
		return fmt.Errorf("rank: %w", err)
	}
	if !ok {
		return fmt.Errorf("rank: another ranker is active on %s; stop it, or run this one with --every to wait as a standby", db.Describe())
	}
	defer lk.Unlock()
	stopProgress := progress()
	sum, err := rk.Run(ctx, cfg.now)
	var lateErr error
	if err == nil {
		lateErr = rk.Finish(sum) // the full ranks, published after the run's top lists
	}
	stopProgress()
	if err != nil {
		return fmt.Errorf("rank: %w", err)
	}
	// The top lists are published even if the full ranks failed: say so, then fail.
	if err := reportOnce(e, log, sum); err != nil {
		return err
	}
	if lateErr != nil {
		return fmt.Errorf("rank: %w", lateErr)
	}
	return nil
}

// reportOnce logs a run and prints its one-line JSON summary.
func reportOnce(e *env, log *slog.Logger, sum *ranker.Summary) error {
	log.Info("published snapshot", "snapshot_id", sum.SnapshotID, "cutoff", sum.Cutoff,
		"lines_read", sum.LinesRead, "lines_rejected", sum.LinesRejected, "seconds", sum.Seconds)
	if sum.LinesRejected > 0 {
		log.Warn("bad lines were quarantined; read them with: sqlite3 DB 'select * from rejected_lines'", "lines_rejected", sum.LinesRejected)
	}
	return json.NewEncoder(e.stdout).Encode(sum)
}

// startProgress shows bytes counted and the rate on a terminal, once a second, until the
// returned function is called. Elsewhere it does nothing: logs stay quiet.
func startProgress(e *env, eng *counting.Local) (stop func()) {
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
