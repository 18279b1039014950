package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/replica"
)

// The paths of what the API answers besides the top lists: where a product stands, what
// climbed, how the lists changed, and which categories there are.
const (
	CategoriesPath     = "/api/v1/categories"
	MoversPath         = "/api/v1/movers"
	ProductRanksPath   = "/api/v1/products/{product_id}/ranks"
	ProductHistoryPath = "/api/v1/products/{product_id}/history"
)

// Errors of these endpoints, which writeProblem maps to responses.
var (
	errNotKept     = errors.New("no snapshot kept")
	errNoFullRanks = errors.New("no full ranks")
)

// explorer answers the endpoints of this file from the holder's view, and the history
// through the holder's History.
type explorer struct {
	logger *slog.Logger
	h      *Holder
	now    func() time.Time
}

// query is a parsed query string: each parameter at most once, only those allowed.
type query map[string]string

// parseQuery parses raw strictly, as parsePopular does: a parameter given twice, or one
// not in allowed, is an error.
func parseQuery(raw string, allowed ...string) (query, error) {
	q := query{}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		var err1, err2 error
		key, err1 = url.QueryUnescape(key)
		value, err2 = url.QueryUnescape(value)
		if err1 != nil || err2 != nil {
			return nil, &paramError{detail: fmt.Sprintf("the query %q is not valid percent-encoding", clip(pair))}
		}
		known := false
		for _, a := range allowed {
			known = known || a == key
		}
		if !known {
			takes := "this endpoint takes no parameters"
			if len(allowed) > 0 {
				takes = "the parameters are " + strings.Join(allowed, ", ")
			}
			return nil, &paramError{param: key, detail: fmt.Sprintf("unknown parameter %q; %s", clip(key), takes)}
		}
		if _, ok := q[key]; ok {
			return nil, repeated(key)
		}
		q[key] = value
	}
	return q, nil
}

// category returns the required category_id.
func (q query) category() (int32, error) {
	v, ok := q["category_id"]
	if !ok {
		return 0, &paramError{param: "category_id", detail: fmt.Sprintf("category_id is required: an integer from 0 to %d", salesrank.MaxCategoryID)}
	}
	n, ok := parseDigits(v, salesrank.MaxCategoryID)
	if !ok {
		return 0, &paramError{param: "category_id", detail: fmt.Sprintf("category_id must be an integer from 0 to %d; got %q", salesrank.MaxCategoryID, clip(v))}
	}
	return int32(n), nil
}

// page returns limit (1 … max, default def) and offset (default 0).
func (q query) page(def, max int64) (limit, offset int64, err error) {
	limit = def
	if v, ok := q["limit"]; ok {
		n, ok := parseDigits(v, max)
		if !ok || n < 1 {
			return 0, 0, &paramError{param: "limit", detail: fmt.Sprintf("limit must be an integer from 1 to %d (default %d); got %q", max, def, clip(v))}
		}
		limit = n
	}
	if v, ok := q["offset"]; ok {
		n, ok := parseDigits(v, math.MaxInt64)
		if !ok {
			return 0, 0, &paramError{param: "offset", detail: fmt.Sprintf("offset must be an integer from 0 to %d (default 0); got %q", int64(math.MaxInt64), clip(v))}
		}
		offset = n
	}
	return limit, offset, nil
}

// time returns the RFC 3339 time of param, or zero if absent.
func (q query) time(param string) (time.Time, error) {
	v, ok := q[param]
	if !ok {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, &paramError{param: param, detail: fmt.Sprintf("%s must be an RFC 3339 time such as 2026-11-20T13:00:00Z; got %q", param, clip(v))}
	}
	return t, nil
}

// productID parses the {product_id} of the path.
func productID(r *http.Request) (int64, error) {
	v := r.PathValue("product_id")
	n, ok := parseDigits(v, salesrank.MaxProductID)
	if !ok {
		return 0, &paramError{param: "product_id", detail: fmt.Sprintf("the product id in the path must be an integer from 0 to %d; got %q", int64(salesrank.MaxProductID), clip(v))}
	}
	return n, nil
}

// current returns the view served, or writes the problem of having none.
func (x *explorer) current(w http.ResponseWriter, r *http.Request) *view {
	v := x.h.load()
	if v == nil {
		writeProblem(w, r, x.logger, salesrank.ErrNoSnapshot)
	}
	return v
}

// writeJSON sends body, an answer from snapshot id with window win, with the headers every
// answer of the API carries.
func (x *explorer) writeJSON(w http.ResponseWriter, r *http.Request, v *view, id int64, win salesrank.Window, body []byte) {
	hdr := w.Header()
	t := x.now()
	clk := v.clocked(t)
	etag := `"` + strconv.FormatInt(id, 10) + `"`
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Etag", etag)
	hdr["Cache-Control"] = clk.value
	if clk.age != nil {
		hdr["X-Snapshot-Age"] = clk.age
	}
	if clk.stale || x.h.SourceStale(t) {
		hdr["X-Snapshot-Stale"] = staleTrue
	}
	hdr.Set("X-Snapshot-Id", strconv.FormatInt(id, 10))
	hdr.Set("X-Window-Start", win.Start.UTC().Format(time.RFC3339))
	hdr.Set("X-Window-End", win.End.UTC().Format(time.RFC3339))
	if inm, ok := r.Header["If-None-Match"]; ok && etagMatches(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(body)
}

// appendArray appends to b a JSON array of n elements, element i appended by elem.
func appendArray(b []byte, n int, elem func(b []byte, i int) []byte) []byte {
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = elem(b, i)
	}
	return append(b, ']')
}

// handleCategories serves GET /api/v1/categories: every category of the current snapshot
// with how many products its full ranks hold.
func (x *explorer) handleCategories() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := parseQuery(r.URL.RawQuery, "limit", "offset")
		if err != nil {
			writeProblem(w, r, x.logger, err)
			return
		}
		limit, offset, err := q.page(salesrank.DefaultCategoriesLimit, salesrank.MaxCategoriesLimit)
		if err != nil {
			writeProblem(w, r, x.logger, err)
			return
		}
		v := x.current(w, r)
		if v == nil {
			return
		}
		x.writeJSON(w, r, v, v.snap.ID, v.snap.Window, v.categoryList.appendPage(nil, offset, limit))
	})
}

// handleMovers serves GET /api/v1/movers?category_id=N: the products of the category's top
// list that climbed most since the day before.
func (x *explorer) handleMovers() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := parseQuery(r.URL.RawQuery, "category_id", "limit", "offset")
		if err != nil {
			writeProblem(w, r, x.logger, err)
			return
		}
		cat, err := q.category()
		if err != nil {
			writeProblem(w, r, x.logger, err)
			return
		}
		limit, offset, err := q.page(salesrank.DefaultMoversLimit, salesrank.MaxMoversLimit)
		if err != nil {
			writeProblem(w, r, x.logger, err)
			return
		}
		v := x.current(w, r)
		if v == nil {
			return
		}
		m := v.movers[cat]
		if m == nil {
			writeProblem(w, r, x.logger, unknownCategory(cat))
			return
		}
		x.writeJSON(w, r, v, v.snap.ID, v.snap.Window, m.appendPage(nil, offset, limit))
	})
}

// handleProductRanks serves GET /api/v1/products/{product_id}/ranks: where the product
// stands in every category it sold in, from the full ranks.
func (x *explorer) handleProductRanks() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		product, err := productID(r)
		if err == nil {
			_, err = parseQuery(r.URL.RawQuery)
		}
		if err != nil {
			writeProblem(w, r, x.logger, err)
			return
		}
		v := x.current(w, r)
		if v == nil {
			return
		}
		st := v.snap.Standings
		if st == nil {
			writeProblem(w, r, x.logger, errNoFullRanks)
			return
		}
		standings := st.Product(product)
		b := appendArray(nil, len(standings), func(b []byte, i int) []byte {
			s := standings[i]
			b = append(b, `{"category_id":"`...)
			b = strconv.AppendInt(b, int64(s.CategoryID), 10)
			b = append(b, `","product_id":"`...)
			b = strconv.AppendInt(b, product, 10)
			b = append(b, `","rank":"`...)
			b = strconv.AppendInt(b, int64(s.Rank), 10)
			b = append(b, `","total_sold":"`...)
			b = strconv.AppendInt(b, s.TotalSold, 10)
			b = append(b, `","products_ranked":"`...)
			b = strconv.AppendInt(b, int64(s.ProductsRanked), 10)
			return append(b, `"}`...)
		})
		x.writeJSON(w, r, v, st.SnapshotID, st.Window, b)
	})
}

// handleProductHistory serves GET /api/v1/products/{product_id}/history?category_id=N:
// where the product stood in the category's top list in every kept snapshot.
func (x *explorer) handleProductHistory() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		product, err := productID(r)
		var (
			q     query
			cat   int32
			since time.Time
		)
		if err == nil {
			q, err = parseQuery(r.URL.RawQuery, "category_id", "since")
		}
		if err == nil {
			cat, err = q.category()
		}
		if err == nil {
			since, err = q.time("since")
		}
		if err != nil {
			writeProblem(w, r, x.logger, err)
			return
		}
		v := x.current(w, r)
		if v == nil {
			return
		}
		if v.categories[cat] == nil {
			writeProblem(w, r, x.logger, unknownCategory(cat))
			return
		}
		points, err := x.h.History.ProductHistory(r.Context(), v.snap, cat, product, since)
		if err != nil {
			x.historyProblem(w, r, err)
			return
		}
		b := appendArray(nil, len(points), func(b []byte, i int) []byte {
			p := points[i]
			b = append(b, `{"cutoff":"`...)
			b = p.Cutoff.UTC().AppendFormat(b, time.RFC3339)
			b = append(b, `","rank":"`...)
			if p.Rank > 0 {
				b = strconv.AppendInt(b, int64(p.Rank), 10)
				b = append(b, `","total_sold":"`...)
				b = strconv.AppendInt(b, p.TotalSold, 10)
			} else {
				b = append(b, `","total_sold":"`...)
			}
			return append(b, `"}`...)
		})
		x.writeJSON(w, r, v, v.snap.ID, v.snap.Window, b)
	})
}

// historyProblem answers a failed read of the history: a time before the history as the
// client's mistake, the store failing as unavailable (logged, not sent).
func (x *explorer) historyProblem(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, replica.ErrNotKept) {
		writeProblem(w, r, x.logger, fmt.Errorf("%w: %w", errNotKept, err))
		return
	}
	x.logger.Error("read history", "err", err)
	writeProblem(w, r, x.logger, errUnavailable)
}

// servePopularMore answers the popular endpoint's slower forms: a past snapshot (at=) or
// the previous ranks beside the current ones (with=previous_rank).
func (x *explorer) servePopularMore(w http.ResponseWriter, r *http.Request, v *view, q popularQuery) {
	id, win, entries := v.snap.ID, v.snap.Window, v.snap.Ranking(q.category).Entries // handlePopular checked it is known
	if q.hasAt {
		var err error
		if id, win, entries, err = x.h.History.TopListAt(r.Context(), v.snap, q.category, q.at); err != nil {
			x.historyProblem(w, r, err)
			return
		}
	}
	lo, hi := salesrank.PageBounds(len(entries), q.offset, q.limit)
	page := entries[lo:hi]
	cat := strconv.AppendInt(nil, int64(q.category), 10)
	b := appendArray(nil, len(page), func(b []byte, i int) []byte {
		e := page[i]
		b = appendEntry(b, e, cat)
		if !q.withPrevious {
			return b
		}
		b = append(b[:len(b)-1], `,"previous_rank":"`...) // reopen the object
		if rank, ok := v.snap.Previous.Rank(q.category, e.ProductID); ok {
			b = strconv.AppendInt(b, int64(rank), 10)
		}
		return append(b, `"}`...)
	})
	x.writeJSON(w, r, v, id, win, b)
}
