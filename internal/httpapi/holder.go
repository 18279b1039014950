package httpapi

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/replica"
)

// Holder is a replica's holder (replica.Holder) whose snapshots are pre-rendered for HTTP
// when stored: rendering happens before the swap, in the storing goroutine, so requests
// never wait for it. The zero value holds no snapshot and is ready to use.
type Holder struct {
	replica.Holder
	// History reads the history of the top lists; set its Archive (the store) before the
	// holder is served. Without one, history requests get 503.
	History replica.History
}

// Store renders s and makes it the snapshot served from now on. A nil s is ignored.
func (h *Holder) Store(s *salesrank.Snapshot) {
	if s == nil {
		return
	}
	h.StoreView(s, render(s))
}

// load returns the view being served, or nil.
func (h *Holder) load() *view {
	v, _ := h.View().(*view)
	return v
}

// view is one snapshot rendered for serving. It is immutable once built, except for the
// Cache-Control cache, which is itself swapped atomically.
type view struct {
	snap       *salesrank.Snapshot
	categories map[int32]*category
	// movers holds each category's movers, and categoryList every category with its
	// number of ranked products, rendered as categories are.
	movers       map[int32]*category
	categoryList *category

	// Header values, built once. Each slice has len == cap, so a middleware that appends
	// to a header copies it rather than writing into the shared array.
	etag        []string
	etagValue   string    // the quoted entity tag, for If-None-Match
	published   time.Time // PublishedAt truncated to the second, for If-Modified-Since
	snapshotID  []string
	windowStart []string
	windowEnd   []string

	nextRefresh int64 // unix seconds
	staleAfter  int64 // unix seconds; see perSecond.stale
	cc          atomic.Pointer[cacheControl]
}

// cacheControl holds the headers that change with the clock, for requests within one
// second: Cache-Control's max-age counts down, the snapshot's age counts up. Rendering them
// once a second rather than once a request keeps the hot path free of allocations.
type cacheControl struct {
	unix  int64
	value []string // Cache-Control
	age   []string // X-Snapshot-Age: seconds since the snapshot was published
	// stale is set once a whole refresh interval has passed since the next snapshot was
	// due: the database or the ranker is down, and the answer comes from memory.
	stale bool
}

// category is one category's ranking rendered as JSON. elems holds every entry's object
// separated by commas, without brackets; starts[i] is where entry i begins and
// starts[len] is one past the end as if a comma followed the last one, so entries [i, j) are
// elems[starts[i] : starts[j]-1].
type category struct {
	elems  []byte
	starts []int
	first  []byte // the default page (offset 0, limit 10), brackets included
}

func render(s *salesrank.Snapshot) *view {
	v := &view{
		snap:        s,
		categories:  make(map[int32]*category, len(s.Rankings)),
		etagValue:   `"` + strconv.FormatInt(s.ID, 10) + `"`,
		snapshotID:  []string{strconv.FormatInt(s.ID, 10)},
		windowStart: []string{s.Window.Start.UTC().Format(time.RFC3339)},
		windowEnd:   []string{s.Window.End.UTC().Format(time.RFC3339)},
		nextRefresh: s.NextRefresh().Unix(),
		staleAfter:  s.NextRefresh().Add(s.Interval).Unix(),
	}
	v.etag = []string{v.etagValue}
	if !s.PublishedAt.IsZero() {
		v.published = s.PublishedAt.UTC().Truncate(time.Second)
	}
	v.movers = make(map[int32]*category, len(s.Rankings))
	for _, r := range s.Rankings {
		v.categories[r.CategoryID] = renderCategory(r)
		v.movers[r.CategoryID] = renderMovers(salesrank.Movers(r.CategoryID, r.Entries, s.Previous))
	}
	v.categoryList = renderList(len(s.Rankings), func(b []byte, i int) []byte {
		c := s.Rankings[i].CategoryID
		b = append(b, `{"category_id":"`...)
		b = strconv.AppendInt(b, int64(c), 10)
		b = append(b, `","products_ranked":"`...)
		b = strconv.AppendInt(b, int64(s.Standings.ProductsRanked(c)), 10)
		return append(b, `"}`...)
	})
	return v
}

func renderCategory(r salesrank.Ranking) *category {
	cat := strconv.AppendInt(nil, int64(r.CategoryID), 10)
	return renderList(len(r.Entries), func(b []byte, i int) []byte { return appendEntry(b, r.Entries[i], cat) })
}

// appendEntry appends e of the category whose id is cat, in digits, as the popular
// endpoint shows it.
func appendEntry(b []byte, e salesrank.Entry, cat []byte) []byte {
	b = append(b, `{"id":"`...)
	b = strconv.AppendInt(b, e.ID, 10)
	b = append(b, `","category_id":"`...)
	b = append(b, cat...)
	b = append(b, `","total_sold":"`...)
	b = strconv.AppendInt(b, e.TotalSold, 10)
	b = append(b, `","product_id":"`...)
	b = strconv.AppendInt(b, e.ProductID, 10)
	return append(b, `"}`...)
}

func renderMovers(ms []salesrank.Mover) *category {
	return renderList(len(ms), func(b []byte, i int) []byte {
		m := ms[i]
		b = append(b, `{"product_id":"`...)
		b = strconv.AppendInt(b, m.ProductID, 10)
		b = append(b, `","rank":"`...)
		b = strconv.AppendInt(b, int64(m.Rank), 10)
		b = append(b, `","previous_rank":"`...)
		if m.PreviousRank > 0 {
			b = strconv.AppendInt(b, int64(m.PreviousRank), 10)
		}
		b = append(b, `","total_sold":"`...)
		b = strconv.AppendInt(b, m.TotalSold, 10)
		return append(b, `"}`...)
	})
}

// renderList renders n elements, appended by elem, as a pageable list.
func renderList(n int, elem func(b []byte, i int) []byte) *category {
	// About 80 bytes an element; one allocation for the common case.
	c := &category{
		elems:  make([]byte, 0, 96*n),
		starts: make([]int, 0, n+1),
	}
	for i := range n {
		if i > 0 {
			c.elems = append(c.elems, ',')
		}
		c.starts = append(c.starts, len(c.elems))
		c.elems = elem(c.elems, i)
	}
	c.starts = append(c.starts, len(c.elems)+1)
	c.first = c.appendPage(nil, 0, salesrank.DefaultLimit)
	return c
}

// len returns the number of entries.
func (c *category) len() int { return len(c.starts) - 1 }

// count returns how many entries page(offset, limit) holds.
func (c *category) count(offset, limit int64) int {
	lo, hi := salesrank.PageBounds(c.len(), offset, limit)
	return hi - lo
}

// page returns the JSON of entries [offset, offset+limit) without the brackets; it is empty
// when offset is past the end.
func (c *category) page(offset, limit int64) []byte {
	lo, hi := salesrank.PageBounds(c.len(), offset, limit)
	if lo == hi {
		return nil
	}
	return c.elems[c.starts[lo] : c.starts[hi]-1]
}

func (c *category) appendPage(b []byte, offset, limit int64) []byte {
	b = append(b, '[')
	b = append(b, c.page(offset, limit)...)
	return append(b, ']')
}

var (
	openBracket  = []byte{'['}
	closeBracket = []byte{']'}
)

// writePage writes entries [offset, offset+limit) as a JSON array without encoding anything.
func (c *category) writePage(w http.ResponseWriter, offset, limit int64) {
	if offset == 0 && limit == salesrank.DefaultLimit {
		w.Write(c.first)
		return
	}
	// Three writes into net/http's buffered writer cost less than copying the page.
	w.Write(openBracket)
	w.Write(c.page(offset, limit))
	w.Write(closeBracket)
}

// cacheControl returns the Cache-Control value at now: public, until the next snapshot is
// due (never negative, so a late refresh makes caches revalidate rather than misbehave).
func (v *view) cacheControl(now time.Time) []string { return v.clocked(now).value }

// clocked returns the clock-dependent headers for now, rendered at most once a second.
func (v *view) clocked(now time.Time) *cacheControl {
	unix := now.Unix()
	if c := v.cc.Load(); c != nil && c.unix == unix {
		return c
	}
	maxAge := max(v.nextRefresh-unix, 0)
	c := &cacheControl{unix: unix, value: []string{"public, max-age=" + strconv.FormatInt(maxAge, 10)}, stale: unix >= v.staleAfter}
	if !v.published.IsZero() {
		c.age = []string{strconv.FormatInt(max(unix-v.published.Unix(), 0), 10)}
	}
	v.cc.Store(c)
	return c
}

// ReplicaHistory returns the history the holder's snapshots are read with, for the RPC
// service, which asks for it so that both APIs answer from the same one.
func (h *Holder) ReplicaHistory() *replica.History { return &h.History }
