package httpapi

import (
	"log/slog"
	"net/http"
	"time"
)

// Bounds of a public listener. Requests are small GETs answered from memory, so anything
// slow is a broken or hostile client and is cut off rather than allowed to hold a
// connection.
const (
	// ReadHeaderTimeout stops slowloris clients that trickle headers in.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout covers the whole request; the API takes no bodies.
	ReadTimeout = 10 * time.Second
	// WriteTimeout bounds a response: at most 1000 entries, about 100 KB from memory.
	WriteTimeout = 10 * time.Second
	// IdleTimeout keeps keep-alive connections longer than a proxy's own upstream idle
	// timeout (nginx: 60s), so the server never closes a connection the proxy is reusing.
	IdleTimeout = 75 * time.Second
	// MaxHeaderBytes is ample for the request line (its query is at most 1 KiB, see
	// maxQueryBytes), cookies and a few caching headers, and much less memory per
	// connection than the 1 MB default. Past it (plus net/http's 4 KiB of slack) net/http
	// itself answers 431, in plain text, before any handler runs.
	MaxHeaderBytes = 16 << 10
)

// NewHTTPServer returns a server for h with the bounds above; errors net/http reports
// (a TLS handshake, a panicking handler) go to logger at warn.
func NewHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
