package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/replica"
)

// Refresher reloads the snapshot a replica serves from the store, now; Watcher is one.
type Refresher interface {
	// Refresh loads the current snapshot, swaps it in and returns its id.
	Refresh(ctx context.Context) (int64, error)
}

// refreshTimeout bounds POST /admin/refresh; the load itself is bounded by replica.LoadTimeout.
const refreshTimeout = replica.LoadTimeout + 5*time.Second

// NewAdmin returns the HTTP handler of a replica's admin listener:
//
//	GET  /metrics          metricsHandler (none if nil), open to whoever reaches the listener
//	GET  /debug/pprof/...  the runtime profiles (token)
//	POST /admin/refresh    reload the current snapshot now (token)
//
// The token-protected endpoints need "Authorization: Bearer TOKEN"; with an empty token they
// are disabled and answer 403.
func NewAdmin(logger *slog.Logger, token string, metricsHandler http.Handler, r Refresher) http.Handler {
	mux := http.NewServeMux()
	addAdminRoutes(mux, logger, token, metricsHandler, r)
	return mux
}

// requireToken lets a request through only if it carries the bearer token. Both sides are
// hashed before the constant-time comparison, so neither the token's bytes nor its length
// leak through timing.
func requireToken(logger *slog.Logger, token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			writeProblem(w, r, logger, errAdminDisabled)
			return
		}
		got, ok := bearer(r.Header.Get("Authorization"))
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			logger.Warn("admin request refused: missing or wrong token",
				"method", r.Method, "path", clip(r.URL.Path), "remote_addr", r.RemoteAddr)
			writeProblem(w, r, logger, errUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer returns the credentials of an "Authorization: Bearer X" value (the scheme is
// case-insensitive, RFC 9110 §11.1).
func bearer(auth string) (string, bool) {
	scheme, cred, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}

// postOnly answers methods other than POST with 405 and an Allow header.
func postOnly(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeProblem(w, r, logger, errPostOnly)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleRefresh serves POST /admin/refresh: the replica loads the current snapshot from the
// store now, even if it holds the same id, rather than at its next poll.
func handleRefresh(logger *slog.Logger, r Refresher) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r == nil {
			writeProblem(w, req, logger, errNotFound)
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), refreshTimeout)
		defer cancel()
		id, err := r.Refresh(ctx)
		switch {
		case errors.Is(err, salesrank.ErrNoSnapshot):
			writeProblem(w, req, logger, err)
			return
		case err != nil:
			// The refresher logged the cause; it is not sent, as it may quote SQL.
			logger.Warn("admin refresh failed", "err", err)
			writeProblem(w, req, logger, errUnavailable)
			return
		}
		logger.Info("admin refresh", "snapshot_id", id, "remote_addr", req.RemoteAddr)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "{\"snapshot_id\":\"%d\"}\n", id)
	})
}
