package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/salesrank/salesrank/internal/metrics"
	"github.com/salesrank/salesrank/internal/rpc"
)

// PopularPath is the path of the read API's one endpoint.
const PopularPath = "/api/v1/popular"

// addRoutes lists every route of the public listener. Methods are checked by getOnly rather
// than by the mux patterns, so a wrong method gets a problem+json 405 like every other error.
// Each route of the REST API is observed under its own pattern, so metrics and logs never
// carry a raw URL. It returns the popular endpoint's handler, as registered, for router's
// fast path.
func addRoutes(mux *http.ServeMux, logger *slog.Logger, h *Holder, m *metrics.HTTP, now func() time.Time, draining func() bool) (popular http.Handler) {
	ids := newRequestIDs()
	handle := func(pattern string, next http.Handler) http.Handler {
		o := observe(logger, ids, m.Route(pattern), pattern, next)
		mux.Handle(pattern, o)
		return o
	}
	x := &explorer{logger: logger, h: h, now: now}
	popular = handle(PopularPath, getOnly(logger, handlePopular(logger, h, m, now, x.servePopularMore)))
	handle(CategoriesPath, getOnly(logger, x.handleCategories()))
	handle(MoversPath, getOnly(logger, x.handleMovers()))
	handle(ProductRanksPath, getOnly(logger, x.handleProductRanks()))
	handle(ProductHistoryPath, getOnly(logger, x.handleProductHistory()))
	handle("/healthz", getOnly(logger, handleHealthz()))
	handle("/readyz", getOnly(logger, handleReadyz(h, draining)))
	handle("/{$}", getOnly(logger, handlePage(logger, h, now)))
	handle("/", handleNotFound(logger))
	// The RPC service answers from the same snapshot on the same listener. Connect checks
	// methods and reports errors in its own protocols' terms, so it is mounted as it is,
	// without getOnly or observe.
	rpcPath, rpcHandler := rpc.NewHandler(h, logger)
	mux.Handle(rpcPath, rpcHandler)
	return popular
}

// router sends requests for exactly PopularPath straight to its handler and every other
// request through the mux. For that path the mux picks the same handler (no pattern has a
// host or a method, and the path is clean), but finding it costs a pattern match per
// request on the path that takes nearly all of them.
type router struct {
	mux     *http.ServeMux
	popular http.Handler
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == PopularPath {
		rt.popular.ServeHTTP(w, r)
		return
	}
	rt.mux.ServeHTTP(w, r)
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
