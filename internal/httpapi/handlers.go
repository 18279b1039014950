package httpapi

import (
	"embed"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/metrics"
)

// jsonContentType is the Content-Type of every answer of the popular endpoint. The slice
// has len == cap (see view).
var jsonContentType = []string{"application/json"}

// maxPopularHeaders bounds the header fields a 200 of the popular endpoint sets, stale mark
// aside. net/http gives each response a fresh header map and clones it when the response
// is written; a Go map holds up to 8 entries in one small group, and a ninth grows it into
// a table: with ten fields the two maps were 60 % of the 3.5 KB that net/http and this
// package allocated per request (BenchmarkServeWire). So the popular endpoint sends no
// Last-Modified (the ETag revalidates, and Date minus X-Snapshot-Age is when the snapshot
// was published) and no X-Content-Type-Options (the body is digits in JSON strings, public,
// served as application/json: nothing a browser could sniff into a script or a page;
// problem answers, which quote what a client sent, keep it).
const maxPopularHeaders = 8

// handlePopular serves GET /api/v1/popular?category_id=N[&limit=L][&offset=O]: a page of the
// category's ranking as a JSON array whose values are all strings. The snapshot is loaded
// once per request, so headers and body always come from the same snapshot.
// staleTrue marks an answer served from memory while the database is unreachable, or after
// its next snapshot was overdue by a whole interval (the ranker is down): the replica keeps
// answering, and says so.
var staleTrue = []string{"true"}

func handlePopular(logger *slog.Logger, h *Holder, m *metrics.HTTP, now func() time.Time, more func(http.ResponseWriter, *http.Request, *view, popularQuery)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := parsePopular(r.URL.RawQuery)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		v := h.load()
		if v == nil {
			writeProblem(w, r, logger, salesrank.ErrNoSnapshot)
			return
		}
		c := v.categories[q.category]
		if c == nil {
			writeProblem(w, r, logger, unknownCategory(q.category))
			return
		}
		if q.hasAt || q.withPrevious {
			more(w, r, v, q)
			return
		}
		// Canonical keys assigned directly: Header.Set would canonicalize and allocate.
		hdr := w.Header()
		hdr["Etag"] = v.etag
		t := now()
		clk := v.clocked(t)
		hdr["Cache-Control"] = clk.value
		if clk.age != nil {
			hdr["X-Snapshot-Age"] = clk.age
		}
		if clk.stale || h.SourceStale(t) {
			hdr["X-Snapshot-Stale"] = staleTrue
		}
		hdr["X-Snapshot-Id"] = v.snapshotID
		hdr["X-Window-Start"] = v.windowStart
		hdr["X-Window-End"] = v.windowEnd
		if notModified(r, v) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		hdr["Content-Type"] = jsonContentType
		// For HEAD, net/http discards the body but still uses its length for
		// Content-Length when the page is small enough to be buffered whole.
		c.writePage(w, q.offset, q.limit)
		if r.Method == http.MethodGet {
			m.RowsServed(c.count(q.offset, q.limit))
		}
	})
}

// notModified evaluates the request's preconditions against the snapshot (RFC 9110 §13.2.2):
// If-None-Match with weak comparison, or If-Modified-Since when there is no If-None-Match.
func notModified(r *http.Request, v *view) bool {
	if inm, ok := r.Header["If-None-Match"]; ok {
		return etagMatches(inm, v.etagValue)
	}
	if ims, ok := r.Header["If-Modified-Since"]; ok && len(ims) > 0 && !v.published.IsZero() {
		t, err := http.ParseTime(ims[0])
		return err == nil && !v.published.After(t)
	}
	return false
}

// etagMatches reports whether any entity tag in the If-None-Match field values matches etag
// (a quoted strong tag) by weak comparison, or whether the field is "*". Malformed members
// are skipped. It does not allocate.
func etagMatches(values []string, etag string) bool {
	for _, s := range values {
		for {
			s = strings.TrimLeft(s, " \t,")
			if s == "" {
				break
			}
			if s[0] == '*' {
				return true
			}
			s = strings.TrimPrefix(s, "W/")
			if s[0] != '"' {
				// Not an entity tag: skip to the next member.
				i := strings.IndexByte(s, ',')
				if i < 0 {
					break
				}
				s = s[i:]
				continue
			}
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				break
			}
			if s[:end+2] == etag {
				return true
			}
			s = s[end+2:]
		}
	}
	return false
}

// popularQuery is a parsed, validated query of the popular endpoint.
type popularQuery struct {
	category int32
	limit    int64
	offset   int64
	// The slower forms (see explorer.servePopularMore).
	at           time.Time // if hasAt, a past snapshot's top list: the latest kept at or before
	hasAt        bool
	withPrevious bool // with each product's rank a day before
}

// parsePopular parses a raw query strictly: category_id is required, limit and offset are
// optional, each may appear once, and nothing else is accepted, so a typo is an error rather
// than a silent default. Values are plain decimal digits. It allocates only for
// percent-encoded queries and errors.
func parsePopular(raw string) (popularQuery, error) {
	q := popularQuery{limit: salesrank.DefaultLimit}
	var seenCategory, seenLimit, seenOffset, seenAt, seenWith bool
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(pair, "%+") {
			var err1, err2 error
			key, err1 = url.QueryUnescape(key)
			value, err2 = url.QueryUnescape(value)
			if err1 != nil || err2 != nil {
				return q, &paramError{detail: fmt.Sprintf("the query %q is not valid percent-encoding", clip(pair))}
			}
		}
		switch key {
		case "category_id":
			if seenCategory {
				return q, repeated(key)
			}
			seenCategory = true
			n, ok := parseDigits(value, salesrank.MaxCategoryID)
			if !ok {
				return q, &paramError{param: key, detail: fmt.Sprintf("category_id must be an integer from 0 to %d; got %q", salesrank.MaxCategoryID, clip(value))}
			}
			q.category = int32(n)
		case "limit":
			if seenLimit {
				return q, repeated(key)
			}
			seenLimit = true
			n, ok := parseDigits(value, salesrank.MaxLimit)
			if !ok || !salesrank.ValidLimit(n) {
				return q, &paramError{param: key, detail: fmt.Sprintf("%s; got %q", salesrank.LimitRule(), clip(value))}
			}
			q.limit = n
		case "offset":
			if seenOffset {
				return q, repeated(key)
			}
			seenOffset = true
			n, ok := parseDigits(value, math.MaxInt64)
			if !ok {
				return q, &paramError{param: key, detail: fmt.Sprintf("offset must be an integer from 0 to %d (default 0); got %q", int64(math.MaxInt64), clip(value))}
			}
			q.offset = n
		case "at":
			if seenAt {
				return q, repeated(key)
			}
			seenAt = true
			t, err := time.Parse(time.RFC3339, value)
			if err != nil {
				return q, &paramError{param: key, detail: fmt.Sprintf("at must be an RFC 3339 time such as 2026-11-20T13:00:00Z; got %q", clip(value))}
			}
			q.at, q.hasAt = t, true
		case "with":
			if seenWith {
				return q, repeated(key)
			}
			seenWith = true
			if value != "previous_rank" {
				return q, &paramError{param: key, detail: fmt.Sprintf("with takes previous_rank; got %q", clip(value))}
			}
			q.withPrevious = true
		default:
			return q, &paramError{param: key, detail: fmt.Sprintf("unknown parameter %q; the parameters are category_id, limit, offset, at and with", clip(key))}
		}
	}
	if seenAt && seenWith {
		return q, &paramError{param: "with", detail: "with=previous_rank answers for the current snapshot only, not with at"}
	}
	if !seenCategory {
		return q, &paramError{param: "category_id", detail: fmt.Sprintf("category_id is required: an integer from 0 to %d", salesrank.MaxCategoryID)}
	}
	return q, nil
}

func repeated(param string) error {
	return &paramError{param: param, detail: param + " must be given at most once"}
}

// parseDigits parses s as decimal digits only (no sign, no spaces) with a value at most max.
func parseDigits(s string, max int64) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return 0, false
		}
		n = n*10 + uint64(d) // 19 digits fit in a uint64
	}
	if n > uint64(max) {
		return 0, false
	}
	return int64(n), true
}

// clip shortens what a client sent before it is quoted back in an error.
func clip(s string) string {
	const n = 40
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
}

// handleReadyz reports whether this replica should get traffic: it holds a snapshot and is
// not draining.
func handleReadyz(h *Holder, draining func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := h.ID()
		switch {
		case draining():
			writeText(w, http.StatusServiceUnavailable, "not ready: shutting down\n")
		case !ok:
			writeText(w, http.StatusServiceUnavailable, "not ready: no snapshot loaded yet\n")
		default:
			writeText(w, http.StatusOK, "ready: serving snapshot "+strconv.FormatInt(id, 10)+"\n")
		}
	})
}

func writeText(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

// static holds the page's template, style and script, which page.go renders into one
// answer.
//
//go:embed static
var static embed.FS
