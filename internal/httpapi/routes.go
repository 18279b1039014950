package httpapi

import (
	"log/slog"
	"net/http"
	"time"
)

// addRoutes lists every route the server answers. Methods are checked by getOnly rather
// than by the mux patterns, so a wrong method gets a problem+json 405 like every other error.
func addRoutes(mux *http.ServeMux, logger *slog.Logger, h *Holder, now func() time.Time, draining func() bool) {
	mux.Handle("/api/v1/popular", getOnly(logger, handlePopular(logger, h, now)))
	mux.Handle("/healthz", getOnly(logger, handleHealthz()))
	mux.Handle("/readyz", getOnly(logger, handleReadyz(h, draining)))
	mux.Handle("/{$}", getOnly(logger, handleStatic("index.html")))
	mux.Handle("/app.js", getOnly(logger, handleStatic("app.js")))
	mux.Handle("/style.css", getOnly(logger, handleStatic("style.css")))
	mux.Handle("/", handleNotFound(logger))
}
