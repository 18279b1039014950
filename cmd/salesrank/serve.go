package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/salesrank/salesrank/internal/httpapi"
)

const serveSynopsis = `
salesrank serve - serve the current snapshot over HTTP

Usage:
  salesrank serve --db DSN [--addr HOST:PORT] [--poll 1s] [--drain 5s]

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

Example:
  salesrank serve --db sqlite:data/salesrank.db --addr 127.0.0.1:8080
  curl -i 'http://127.0.0.1:8080/api/v1/popular?category_id=1&limit=3'
`

// Bounds of the HTTP server. Requests are small GETs answered from memory, so anything slow
// is a broken or hostile client and is cut off rather than allowed to hold a connection.
const (
	// readHeaderTimeout stops slowloris clients that trickle headers in.
	readHeaderTimeout = 5 * time.Second
	// readTimeout covers the whole request; the API takes no bodies.
	readTimeout = 10 * time.Second
	// writeTimeout bounds a response: at most 1000 entries, about 100 KB from memory.
	writeTimeout = 10 * time.Second
	// idleTimeout keeps keep-alive connections longer than a proxy's own upstream idle
	// timeout (nginx: 60s), so the server never closes a connection the proxy is reusing.
	idleTimeout = 75 * time.Second
	// maxHeaderBytes is ample for a query string, cookies and a few caching headers, and
	// much less memory per connection than the 1 MB default.
	maxHeaderBytes = 16 << 10
)

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "serve", serveSynopsis)
	dsn := fs.String("db", "", "`DSN` of the database: sqlite:PATH (or a bare path) or postgres://… (required)")
	addr := fs.String("addr", "127.0.0.1:8080", "`HOST:PORT` to listen on; port 0 picks a free one")
	poll := fs.Duration("poll", time.Second, "how often to ask the database whether a new snapshot was published")
	drain := fs.Duration("drain", 5*time.Second, "on shutdown, how long to report not ready while still serving,\nso a load balancer notices before connections close")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "on shutdown, how long in-flight requests may take to finish")
	level := slog.LevelInfo
	fs.TextVar(&level, "log-level", level, "log `level`: debug, info, warn or error")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	// A mistake on the command line exits 2, like one the flag package finds.
	usage := func(format string, args ...any) error {
		fmt.Fprintf(e.stderr, "serve: "+format+"\n", args...)
		fmt.Fprintln(e.stderr, `Run "salesrank serve --help" for usage.`)
		return errUsage
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
	}
	logger := newLogger(e.stderr, level)

	db, err := openDB(ctx, *dsn)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer db.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	var (
		holder   httpapi.Holder
		draining atomic.Bool
	)
	httpLogger := logger.With("component", "http")
	srv := &http.Server{
		Handler:           httpapi.NewServer(httpLogger, &holder, e.now, draining.Load),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(httpLogger.Handler(), slog.LevelWarn),
	}

	// The watcher runs until the server has shut down, so a snapshot published while
	// draining is still picked up; it does not stop with ctx.
	watchCtx, stopWatching := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		// Whichever way runServe returns, both goroutines have ended before the database
		// closes: Serve has returned by then, and the watcher stops here.
		stopWatching()
		wg.Wait()
	}()
	watcher := httpapi.NewWatcher(logger.With("component", "watcher"), db, &holder, *poll)
	wg.Go(func() { watcher.Run(watchCtx) })

	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- srv.Serve(ln) })
	logger.Info("serving", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/", "poll", poll.String())

	select {
	case err := <-serveErr:
		// Serve only returns early on a listener failure.
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	draining.Store(true)
	logger.Info("shutting down: reporting not ready", "drain", drain.String())
	t := time.NewTimer(*drain)
	select {
	case <-t.C:
	case err := <-serveErr:
		t.Stop()
		return fmt.Errorf("serve: %w", err)
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *shutdownTimeout)
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
