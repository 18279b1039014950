package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/salesrank/salesrank/internal/httpapi"
	"github.com/salesrank/salesrank/internal/memlimit"
	"github.com/salesrank/salesrank/internal/metrics"
	"github.com/salesrank/salesrank/internal/ranker"
	"github.com/salesrank/salesrank/internal/replica"
)

const serveSynopsis = `
salesrank serve - serve the current snapshot over HTTP

Usage:
  salesrank serve --db DSN [--addr HOST:PORT] [--admin-addr HOST:PORT] [--poll 1s] [--drain 5s]

Loads the current snapshot from the database into memory, serves it, and polls the
database for a newer one, swapping it in atomically. Requests never wait for the database;
if it fails, the replica keeps serving the snapshot it holds. On SIGTERM or Ctrl-C the
replica reports not ready on /readyz for --drain so a load balancer stops sending traffic,
then finishes the requests in flight and exits 0.

Endpoints:
  GET /api/v1/popular?category_id=N[&limit=L][&offset=O]
                 a category's best sellers of the past week, as JSON (limit 1-1000,
                 default 10; offset default 0)
  GET /          a page to browse the rankings
  GET /healthz   200 while the process is alive
  GET /readyz    200 while a snapshot is loaded and the replica is not shutting down
  POST /salesrank.v1.RankingService/{GetPopular,GetSnapshot}
                 the same rankings over gRPC, gRPC-Web and Connect (proto/README.md);
                 gRPC over HTTP/2 without TLS (h2c)

Admin endpoints, on --admin-addr only (default 127.0.0.1:9090; empty disables it). Keep
this listener off the public network:
  GET  /metrics          Prometheus metrics; no token, as scrapers expect
  GET  /debug/pprof/     runtime profiles (go tool pprof)          needs the token
  POST /admin/refresh    reload the current snapshot now           needs the token
The token is sent as "Authorization: Bearer TOKEN". Set it with SALESRANK_ADMIN_TOKEN
rather than --admin-token, which other users can read in the process list; without it the
token endpoints answer 403.

Memory: unless GOGC or GOMEMLIMIT is set, serve runs with GOGC=400 rather than Go's 100:
its live heap is mostly the snapshot, and collecting less often saves CPU on every request.
The heap then peaks at about 5 times the snapshot's size (10 times while a new snapshot is
loaded); set GOMEMLIMIT (e.g. GOMEMLIMIT=256MiB) to cap it, or GOGC to choose.

Per-request logs are at debug level (5xx at warn): at production rates the access log is
the reverse proxy's. Each response carries X-Request-Id: the client's (or nginx's
$request_id) when it is sane, else a new one.

Example:
  salesrank serve --db sqlite:data/salesrank.db --addr 127.0.0.1:8080
  curl -i 'http://127.0.0.1:8080/api/v1/popular?category_id=1&limit=3'
  curl -s http://127.0.0.1:9090/metrics | grep ^salesrank_
`

// adminWriteTimeout lets /debug/pprof/profile and /debug/pprof/trace run for up to about
// 100 seconds (?seconds=N), which the public listener's write timeout would cut off.
const adminWriteTimeout = 2 * time.Minute

// serveGCPercent is serve's GC target when the operator sets neither GOGC nor GOMEMLIMIT.
// The live heap is small and nearly all snapshot (about 16 MB for 1,000 categories of 100)
// while net/http allocates a few KB per request, so at Go's default (100) a replica
// answering 60,000 requests a second collects about ten times a second, a few per cent of
// its CPU. At 400 it collects a quarter as often, and its heap peaks at about five times
// the live snapshot (twice that while a new snapshot replaces the old). Full ranks make the
// live heap hundreds of MB: then a soft memory limit bounds it (package memlimit).
const serveGCPercent = 400

// minAdminToken is the shortest admin token accepted: 16 characters of a random token are
// beyond guessing at the rate one listener answers.
const minAdminToken = 16

// serveConfig is serve's command line, checked.
type serveConfig struct {
	dsn             string
	addr            string
	poll            time.Duration
	drain           time.Duration
	shutdownTimeout time.Duration
	adminAddr       string
	adminToken      string
	level           slog.Level
}

func runServe(ctx context.Context, e *env, args []string) error {
	cfg, err := parseServe(e, args)
	if err != nil {
		return err
	}
	logger := newLogger(e.stderr, cfg.level)
	if memlimit.Unset(e.getenv) {
		// A replica's live heap is small (16 MB of top lists) until it holds full
		// ranks (some 320 MB at the seed's scale), which at serveGCPercent could
		// grow to 1.6 GB: a soft limit above the live heap bounds it.
		defer debug.SetGCPercent(debug.SetGCPercent(serveGCPercent))
		defer memlimit.Start(ctx, memlimit.Serve)()
	}

	db, err := openDB(ctx, cfg.dsn)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer db.Close()

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	var (
		holder   httpapi.Holder
		draining atomic.Bool
	)
	holder.History.Archive = db
	reg := metrics.NewRegistry()
	metrics.NewSnapshot(reg, holder.Snapshot, e.now)
	srv := newPublicServer(logger, &holder, metrics.NewHTTP(reg), e.now, draining.Load)

	// The watcher runs until the server has shut down, so a snapshot published while
	// draining is still picked up; it does not stop with ctx.
	watchCtx, stopWatching := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		// Whichever way runServe returns, every goroutine it started has ended before the
		// database closes: Serve has returned by then, and the watchers stop here.
		stopWatching()
		wg.Wait()
	}()
	watcher := startWatcher(watchCtx, logger, db, &holder, cfg.poll, metrics.NewWatcher(reg), &wg)

	if cfg.adminAddr != "" {
		adminLogger := logger.With("component", "admin")
		if stop := startAdmin(adminLogger, cfg, metrics.Handler(reg, adminLogger), watcher, &wg); stop != nil {
			defer stop(context.WithoutCancel(ctx), cfg.shutdownTimeout)
		}
	}

	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- srv.Serve(ln) })
	logger.Info("serving", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/", "poll", cfg.poll.String(),
		"max_header_bytes", httpapi.MaxHeaderBytes, "read_header_timeout", httpapi.ReadHeaderTimeout.String())
	return drainAndStop(ctx, logger, srv, serveErr, &draining, cfg.drain, cfg.shutdownTimeout)
}

// parseServe reads serve's flags and checks them. A mistake on the command line exits 2,
// like one the flag package finds.
func parseServe(e *env, args []string) (serveConfig, error) {
	fs := newFlagSet(e, "serve", serveSynopsis)
	dsn := fs.String("db", "", "`DSN` of the database: sqlite:PATH (or a bare path) or postgres://… (required)")
	addr := fs.String("addr", "127.0.0.1:8080", "`HOST:PORT` to listen on; port 0 picks a free one")
	poll := fs.Duration("poll", time.Second, "how often to ask the database whether a new snapshot was published")
	drain := fs.Duration("drain", 5*time.Second, "on shutdown, how long to report not ready while still serving,\nso a load balancer notices before connections close")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "on shutdown, how long in-flight requests may take to finish")
	adminAddr := fs.String("admin-addr", "127.0.0.1:9090", "`HOST:PORT` of the admin listener (/metrics, /debug/pprof/, /admin/refresh);\nempty disables it; keep it off the public network")
	adminToken := fs.String("admin-token", "", "bearer `token` for /debug/pprof/ and /admin/refresh (at least 16 characters);\nunset disables them; prefer the environment variable to the flag")
	level := slog.LevelInfo
	fs.TextVar(&level, "log-level", level, "log `level`: debug, info, warn or error")
	if err := parseFlags(e, fs, args); err != nil {
		return serveConfig{}, err
	}
	usage := func(format string, args ...any) (serveConfig, error) {
		fmt.Fprintf(e.stderr, "serve: "+format+"\n", args...)
		fmt.Fprintln(e.stderr, `Run "salesrank serve --help" for usage.`)
		return serveConfig{}, errUsage
	}
	switch {
	case *dsn == "":
		return usage("--db is required")
	case *poll <= 0:
		return usage("--poll must be positive, got %v", *poll)
	case *drain < 0:
		return usage("--drain must not be negative, got %v", *drain)
	case *shutdownTimeout <= 0:
		return usage("--shutdown-timeout must be positive, got %v", *shutdownTimeout)
	case *adminToken != "" && len(*adminToken) < minAdminToken:
		// The token itself is never echoed.
		return usage("--admin-token must be at least %d characters, got %d", minAdminToken, len(*adminToken))
	}
	return serveConfig{
		dsn:             *dsn,
		addr:            *addr,
		poll:            *poll,
		drain:           *drain,
		shutdownTimeout: *shutdownTimeout,
		adminAddr:       *adminAddr,
		adminToken:      *adminToken,
		level:           level,
	}, nil
}

// newPublicServer returns the server of the public listener: the routes of httpapi.NewServer,
// counted by m, with the listener's bounds.
func newPublicServer(logger *slog.Logger, h *httpapi.Holder, m *metrics.HTTP, now func() time.Time, draining func() bool) *http.Server {
	httpLogger := logger.With("component", "http")
	srv := httpapi.NewHTTPServer(httpapi.NewServer(httpLogger, h, m, now, draining), httpLogger)
	// The RPC service shares the listener and the snapshot with the REST API. gRPC needs
	// HTTP/2, which without TLS is h2c with prior knowledge: net/http serves it beside
	// HTTP/1.1 once Protocols allows it, with no x/net/http2/h2c wrapper.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return srv
}

// startWatcher starts, in goroutines counted by wg, the watcher that keeps h current from db
// every poll, and, when db announces publications, a listener that pokes it sooner. Both run
// until ctx is done.
func startWatcher(ctx context.Context, logger *slog.Logger, db store, h *httpapi.Holder, poll time.Duration, m *metrics.Watcher, wg *sync.WaitGroup) *replica.Watcher {
	watcher := replica.NewWatcher(logger.With("component", "watcher"), db, releasingHolder{h}, poll, m)
	wg.Go(func() { watcher.Run(ctx) })
	if n, ok := db.(notifier); ok {
		// PostgreSQL announces each publication; polling stays as the fallback.
		wg.Go(func() { n.Watch(ctx, func(int64) { watcher.Poke() }) })
	}
	return watcher
}

// startAdmin starts the admin listener on cfg.adminAddr in a goroutine counted by wg and
// returns the function that stops it, or nil if it could not listen.
func startAdmin(adminLogger *slog.Logger, cfg serveConfig, metricsHandler http.Handler, r httpapi.Refresher, wg *sync.WaitGroup) (stop func(ctx context.Context, timeout time.Duration)) {
	if cfg.adminToken == "" {
		adminLogger.Warn("no admin token: /debug/pprof/ and /admin/refresh are disabled; set SALESRANK_ADMIN_TOKEN to enable them")
	}
	admin := httpapi.NewHTTPServer(httpapi.NewAdmin(adminLogger, cfg.adminToken, metricsHandler, r), adminLogger)
	admin.WriteTimeout = adminWriteTimeout
	stop, err := startServer(adminLogger, admin, cfg.adminAddr, wg)
	if err != nil {
		// The read API does not depend on the admin listener: a port taken by another
		// replica on the host costs metrics (Prometheus reports the target down), not
		// availability.
		adminLogger.Error("admin listener disabled: cannot listen", "addr", cfg.adminAddr, "err", err)
		return nil
	}
	return stop
}

// drainAndStop waits for ctx to end, then reports not ready (through draining) for drain
// while still serving, then shuts srv down, giving requests in flight up to timeout.
// serveErr carries what srv.Serve returned; an early return is a listener failure.
func drainAndStop(ctx context.Context, logger *slog.Logger, srv *http.Server, serveErr <-chan error, draining *atomic.Bool, drain, timeout time.Duration) error {
	select {
	case err := <-serveErr:
		// Serve only returns early on a listener failure.
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	draining.Store(true)
	// Answer on, but close each connection after its response: the proxy opens new ones to
	// other replicas instead of reusing one that is about to close under it.
	srv.SetKeepAlivesEnabled(false)
	logger.Info("shutting down: reporting not ready", "drain", drain.String())
	t := time.NewTimer(drain)
	select {
	case <-t.C:
	case err := <-serveErr:
		t.Stop()
		return fmt.Errorf("serve: %w", err)
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Requests still running past the timeout are cut off; that is the timeout's job,
		// not a failure of the command.
		logger.Warn("shutdown timed out; closing remaining connections", "err", err)
		srv.Close()
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// startServer serves srv on addr in a goroutine counted by wg, and returns the function that
// shuts it down, closing what is left after timeout. Only listening errors are returned;
// the server logs its own.
func startServer(logger *slog.Logger, srv *http.Server, addr string, wg *sync.WaitGroup) (stop func(ctx context.Context, timeout time.Duration), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("listener failed", "addr", ln.Addr().String(), "err", err)
		}
	})
	logger.Info("listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/metrics")
	return func(ctx context.Context, timeout time.Duration) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	}, nil
}

// serveRankMetrics serves the ranker daemon's metrics on addr at /metrics, fed by s.OnRun,
// until stop is called. Unlike serve's admin listener, a failure to listen is an error: the
// operator asked for this address and the daemon has nothing else to offer on it.
func serveRankMetrics(logger *slog.Logger, addr string, now func() time.Time, s *ranker.Scheduler) (stop func(), err error) {
	reg := metrics.NewRegistry()
	s.OnRun = metrics.NewRanker(reg, now).Observe
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg, logger))
	srv := httpapi.NewHTTPServer(mux, logger)
	var wg sync.WaitGroup
	shutdown, err := startServer(logger.With("component", "metrics"), srv, addr, &wg)
	if err != nil {
		return nil, err
	}
	return func() {
		shutdown(context.Background(), 5*time.Second)
		wg.Wait()
	}, nil
}

// notifier is a store that announces new snapshots (PostgreSQL's LISTEN/NOTIFY). Watch runs
// until ctx is done, reconnecting as needed, and calls fn for each announcement.
type notifier interface {
	Watch(ctx context.Context, fn func(id int64)) error
}
