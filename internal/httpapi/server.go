package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/metrics"
)

// NewServer returns the HTTP handler of a replica's public listener, serving the snapshot in
// h through the REST API and the RPC service (package rpc; it needs HTTP/2 for gRPC, which
// is the server's to allow). m counts its requests (nil counts nothing). now is the clock Cache-Control counts down
// with (time.Now if nil); draining reports that the replica is shutting down, which makes
// /readyz fail so load balancers stop sending traffic (nil means never).
//
// Metrics, profiles and admin operations are not served here but by NewAdmin, on a listener
// of their own that the public cannot reach.
func NewServer(logger *slog.Logger, h *Holder, m *metrics.HTTP, now func() time.Time, draining func() bool) http.Handler {
	if now == nil {
		now = time.Now
	}
	if draining == nil {
		draining = func() bool { return false }
	}
	mux := http.NewServeMux()
	popular := addRoutes(mux, logger, h, m, now, draining)
	return &router{mux: mux, popular: popular}
}

// Errors that handlers report; writeProblem maps them to responses.
var (
	errUnknownCategory = errors.New("unknown category")
	errNotFound        = errors.New("not found")
	errMethod          = errors.New("method not allowed")
	errPostOnly        = errors.New("method not allowed: POST only")
	errURITooLong      = errors.New("URI too long")
	errUnauthorized    = errors.New("unauthorized")
	errAdminDisabled   = errors.New("admin operations disabled")
	errUnavailable     = errors.New("unavailable")
)

// unknownCategory is the error of a category_id that the snapshot served does not know.
func unknownCategory(cat int32) error {
	return fmt.Errorf("%w: category_id %d is not a category this service knows", errUnknownCategory, cat)
}

// paramError is a query parameter that is missing, malformed, out of range or repeated.
type paramError struct {
	param  string
	detail string
}

func (e *paramError) Error() string { return e.detail }

// problem is an RFC 9457 problem details object.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Parameter string `json:"parameter,omitempty"` // invalid-parameter only
}

// problemBase prefixes this API's problem types. Tag URIs (RFC 4151) name a type without
// promising a page behind it, as RFC 9457 suggests for types that are not dereferenceable.
const problemBase = "tag:salesrank.github.io,2026:problem/"

// retryAfter is how long a client should wait for a replica that has no snapshot yet:
// a few polls of the store.
const retryAfter = "5"

// writeProblem is the one place errors become responses. Internal errors are logged and
// never sent to the client.
func writeProblem(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	var (
		p  problem
		pe *paramError
	)
	h := w.Header()
	switch {
	case errors.As(err, &pe):
		p = problem{Type: problemBase + "invalid-parameter", Title: "Invalid query parameter",
			Status: http.StatusBadRequest, Detail: pe.detail, Parameter: pe.param}
	case errors.Is(err, errUnknownCategory):
		p = problem{Type: problemBase + "unknown-category", Title: "Unknown category",
			Status: http.StatusNotFound, Detail: err.Error()}
	case errors.Is(err, errNotKept):
		p = problem{Type: problemBase + "not-kept", Title: "No snapshot kept for that time",
			Status: http.StatusNotFound, Detail: strings.TrimPrefix(err.Error(), errNotKept.Error()+": ") + "; the history goes back as far as the ranker's --retain"}
	case errors.Is(err, errNoFullRanks):
		p = problem{Type: problemBase + "no-full-ranks", Title: "No full ranks published",
			Status: http.StatusServiceUnavailable,
			Detail: "the database holds no full ranks: run the ranker with --full-ranks (the default)"}
	case errors.Is(err, salesrank.ErrNoSnapshot):
		h.Set("Retry-After", retryAfter)
		p = problem{Type: problemBase + "no-snapshot", Title: "No snapshot loaded yet",
			Status: http.StatusServiceUnavailable,
			Detail: "this replica has not loaded a published ranking yet; retry shortly"}
	case errors.Is(err, errMethod):
		h.Set("Allow", "GET, HEAD")
		p = problem{Type: "about:blank", Title: http.StatusText(http.StatusMethodNotAllowed),
			Status: http.StatusMethodNotAllowed, Detail: fmt.Sprintf("%s is not allowed here; use GET or HEAD", r.Method)}
	case errors.Is(err, errPostOnly):
		h.Set("Allow", "POST")
		p = problem{Type: "about:blank", Title: http.StatusText(http.StatusMethodNotAllowed),
			Status: http.StatusMethodNotAllowed, Detail: fmt.Sprintf("%s is not allowed here; use POST", r.Method)}
	case errors.Is(err, errNotFound):
		p = problem{Type: "about:blank", Title: http.StatusText(http.StatusNotFound),
			Status: http.StatusNotFound, Detail: "no such resource; the API is GET /api/v1/popular?category_id=N"}
	case errors.Is(err, errURITooLong):
		p = problem{Type: "about:blank", Title: http.StatusText(http.StatusRequestURITooLong),
			Status: http.StatusRequestURITooLong,
			Detail: fmt.Sprintf("the path and the query may each be at most %d bytes", maxQueryBytes)}
	case errors.Is(err, errUnauthorized):
		h.Set("WWW-Authenticate", `Bearer realm="salesrank admin"`)
		p = problem{Type: "about:blank", Title: http.StatusText(http.StatusUnauthorized),
			Status: http.StatusUnauthorized, Detail: "send the admin token as Authorization: Bearer TOKEN"}
	case errors.Is(err, errAdminDisabled):
		p = problem{Type: "about:blank", Title: http.StatusText(http.StatusForbidden),
			Status: http.StatusForbidden,
			Detail: "admin operations are disabled: start serve with --admin-token or SALESRANK_ADMIN_TOKEN"}
	case errors.Is(err, errUnavailable):
		// The cause (a database error, which may quote SQL) is logged by whoever failed.
		h.Set("Retry-After", retryAfter)
		p = problem{Type: "about:blank", Title: http.StatusText(http.StatusServiceUnavailable),
			Status: http.StatusServiceUnavailable,
			Detail: "the snapshot store could not be read; the replica keeps serving the snapshot it holds"}
	default:
		logger.Error("request failed", "request_id", w.Header().Get(requestIDHeader),
			"method", r.Method, "path", clip(r.URL.Path), "err", err)
		p = problem{Type: "about:blank", Title: http.StatusText(http.StatusInternalServerError),
			Status: http.StatusInternalServerError}
	}
	body, merr := json.Marshal(p)
	if merr != nil { // cannot happen with these field types
		body = []byte(`{"type":"about:blank","status":500}`)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	w.Write(body)
}

// getOnly answers methods other than GET and HEAD with 405 and an Allow header.
func getOnly(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeProblem(w, r, logger, errMethod)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func handleNotFound(logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, logger, errNotFound)
	})
}
