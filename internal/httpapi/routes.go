package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/salesrank/salesrank/internal/metrics"
)

// addRoutes lists every route of the public listener. Methods are checked by getOnly rather
// than by the mux patterns, so a wrong method gets a problem+json 405 like every other error.
// Each route is observed under its own pattern, so metrics and logs never carry a raw URL.
func addRoutes(mux *http.ServeMux, logger *slog.Logger, h *Holder, m *metrics.HTTP, now func() time.Time, draining func() bool) {
	ids := newRequestIDs()
	handle := func(pattern string, next http.Handler) {
		mux.Handle(pattern, observe(logger, ids, m.Route(pattern), pattern, next))
	}
	handle("/api/v1/popular", getOnly(logger, handlePopular(logger, h, m, now)))
	handle("/healthz", getOnly(logger, handleHealthz()))
	handle("/readyz", getOnly(logger, handleReadyz(h, draining)))
	handle("/{$}", getOnly(logger, handleStatic("index.html")))
	handle("/app.js", getOnly(logger, handleStatic("app.js")))
	handle("/style.css", getOnly(logger, handleStatic("style.css")))
	handle("/", handleNotFound(logger))
}

// addAdminRoutes lists every route of the admin listener. /metrics is open to whoever can
// reach the listener, as Prometheus expects; profiles and operations need the admin token.
func addAdminRoutes(mux *http.ServeMux, logger *slog.Logger, token string, metricsHandler http.Handler, r Refresher) {
	auth := func(next http.Handler) http.Handler { return requireToken(logger, token, next) }
	if metricsHandler != nil {
		mux.Handle("/metrics", getOnly(logger, metricsHandler))
	}
	// Registered one by one on this mux: importing net/http/pprof also registers them on
	// http.DefaultServeMux, which salesrank never serves.
	mux.Handle("/debug/pprof/", auth(http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/cmdline", auth(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("/debug/pprof/profile", auth(http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/symbol", auth(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("/debug/pprof/trace", auth(http.HandlerFunc(pprof.Trace)))
	mux.Handle("/admin/refresh", auth(postOnly(logger, handleRefresh(logger, r))))
	mux.Handle("/", handleNotFound(logger))
}
