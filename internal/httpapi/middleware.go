package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/salesrank/salesrank/internal/metrics"
)

// maxQueryBytes bounds a request's query string and its path. The API's longest sane query
// (category_id, limit and offset, each at its maximum) is under 80 bytes; 1 KiB leaves room
// for cache-busting parameters a client adds, which are then refused by name.
const maxQueryBytes = 1 << 10

// requestIDHeader carries a request's id in both directions. The shipped nginx sets it
// (deploy/nginx.conf: the client's own id when it looks like one, else one made from the
// clock and connection counters), so its access log and ours share the id.
const requestIDHeader = "X-Request-Id"

// maxRequestID bounds an incoming request id, as deploy/nginx.conf does; a UUID is 36
// characters.
const maxRequestID = 128

// observe is what every route of the public listener goes through: it gives the request an
// id, echoes it in the response, refuses overlong URLs, and counts, times and logs the
// request under its route pattern.
//
// A success is logged at debug level only: at tens of thousands of requests a second the
// access log belongs to the reverse proxy, and production logs keep to what needs a look.
// A 5xx is logged at warn.
func observe(logger *slog.Logger, ids *requestIDs, route *metrics.Route, pattern string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := ids.get(r)
		w.Header()[requestIDHeader] = id

		sw := statusWriters.Get().(*statusWriter)
		sw.ResponseWriter, sw.code = w, 0
		if len(r.URL.RawQuery) > maxQueryBytes || len(r.URL.Path) > maxQueryBytes {
			writeProblem(sw, r, logger, errURITooLong)
		} else {
			next.ServeHTTP(sw, r)
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK // nothing written: net/http sends 200
		}
		sw.ResponseWriter = nil
		statusWriters.Put(sw)

		elapsed := time.Since(start)
		route.Observe(code, elapsed)
		level := slog.LevelDebug
		if code >= 500 {
			level = slog.LevelWarn
		}
		if !logger.Enabled(r.Context(), level) {
			return
		}
		logger.LogAttrs(r.Context(), level, "request",
			slog.String("request_id", id[0]),
			slog.String("method", r.Method),
			slog.String("route", pattern),
			slog.String("path", clip(r.URL.Path)),
			slog.String("query", clip(r.URL.RawQuery)),
			slog.Int("status", code),
			slog.Duration("duration", elapsed),
			slog.String("remote_addr", r.RemoteAddr))
	})
}

// statusWriter records the status code a handler sends. They are pooled so the hot path
// does not allocate one per request.
type statusWriter struct {
	http.ResponseWriter
	code int
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 { // 1xx are informational; the final status comes later
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requestIDs hands out request ids: the client's (or the proxy's) when it is sane, else a
// new one made of a per-process random prefix and a counter, which is unique across
// replicas without costing a random read per request.
type requestIDs struct {
	prefix string

	mu   sync.Mutex
	n    uint64   // ids made so far
	made []string // made and not handed out yet; see get
}

// idBatch is how many ids are made at once: one string holding them all and one slice of
// header values, rather than two allocations on every request that comes without an id.
const idBatch = 64

func newRequestIDs() *requestIDs {
	var b [6]byte
	rand.Read(b[:]) // never fails (crypto/rand panics if the OS cannot supply randomness)
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

// get returns the request's id as a header value (len == cap, see view). A sane incoming id
// is reused without copying; a new one is the next of a batch made ahead.
func (g *requestIDs) get(r *http.Request) []string {
	if v := r.Header[requestIDHeader]; len(v) == 1 && saneRequestID(v[0]) {
		return v[:1:1]
	}
	g.mu.Lock()
	if len(g.made) == 0 {
		g.made = g.batch()
	}
	v := g.made[:1:1]
	g.made = g.made[1:]
	g.mu.Unlock()
	return v
}

// batch makes the next idBatch ids, as substrings of one string.
func (g *requestIDs) batch() []string {
	var (
		ends [idBatch]int
		sb   strings.Builder // its String does not copy
		n    [13]byte        // a uint64 in base 36
	)
	sb.Grow(idBatch * (len(g.prefix) + 8))
	for i := range ends {
		g.n++
		sb.WriteString(g.prefix)
		sb.Write(strconv.AppendUint(n[:0], g.n, 36))
		ends[i] = sb.Len()
	}
	s := sb.String()
	ids := make([]string, idBatch)
	start := 0
	for i, end := range ends {
		ids[i], start = s[start:end], end
	}
	return ids
}

// saneRequestID reports whether s can be logged and echoed as is: 1 to 128 characters of
// letters, digits and -_.:+/=@ (hex, UUIDs, base64 and most tracing ids), nothing that could
// split a log line or a header.
func saneRequestID(s string) bool {
	if s == "" || len(s) > maxRequestID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '+', c == '/', c == '=', c == '@':
		default:
			return false
		}
	}
	return true
}
