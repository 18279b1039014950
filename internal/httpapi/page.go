package httpapi

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/salesrank/salesrank"
)

// The page at "/" is rendered on the server from the snapshot being served, with its style
// and script inlined, so that the first paint needs one request: the category list and the
// chosen category's page, with each product's change against 24 hours before, are in the
// HTML, and it reads without a script. The script asks the API for the rest (movers,
// history, a product's ranks, other pages and categories) when a person asks for it.

// pageLimits are the page sizes the page offers, and defaultPageLimit the one it starts with.
var pageLimits = []int64{10, 25, 50, 100}

const defaultPageLimit = 25

// pageAssets is the page's template with its inlined style and script, and the
// Content-Security-Policy that allows exactly those two by their hashes.
type pageAssets struct {
	tmpl   *template.Template
	style  template.CSS
	script template.JS
	csp    string
	hash   string // of the template, style and script: part of every ETag
}

func loadPageAssets() *pageAssets {
	read := func(name string) []byte {
		b, err := static.ReadFile("static/" + name)
		if err != nil {
			panic(err) // the file list is fixed at compile time; a typo must fail every test
		}
		return b
	}
	html, css, js := read("index.html"), read("style.css"), read("app.js")
	cspHash := func(b []byte) string {
		sum := sha256.Sum256(b)
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	all := sha256.New()
	for _, b := range [][]byte{html, css, js} {
		all.Write(b)
	}
	return &pageAssets{
		tmpl: template.Must(template.New("index.html").Funcs(template.FuncMap{
			"group": groupDigits,
			"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
			"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		}).Parse(string(html))),
		style:  template.CSS(css),
		script: template.JS(js),
		// The inlined style and script are allowed by hash, and nothing else inline: the
		// markup carries no style attributes (the bars are SVG rects with a width).
		csp: "default-src 'none'; script-src " + cspHash(js) + "; style-src " + cspHash(css) +
			"; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		hash: hex.EncodeToString(all.Sum(nil)[:6]),
	}
}

// pageData is what index.html is rendered from.
type pageData struct {
	Style  template.CSS
	Script template.JS

	Loaded     bool // a snapshot is being served
	SnapshotID int64
	Window     salesrank.Window
	Stale      bool
	NextDue    time.Time

	Categories []pageCategory
	Category   string // the chosen category's id; "" when there is none
	Unknown    string // a category_id asked for that the snapshot does not know
	Limits     []pageLimit
	Limit      int64
	Offset     int64
	Top        string // units of the category's rank 1, which the bars are relative to
	Rows       []pageRow
	Range      string // which ranks the page shows
	Prev, Next int64  // offsets of the neighbouring pages; Next is 0 when there is none
	HasPrev    bool
	Product    string // a product_id asked for, for the script's search
}

type pageCategory struct {
	ID, ProductsRanked string
	Selected           bool
}

type pageLimit struct {
	N        int64
	Selected bool
}

type pageRow struct {
	Rank, ProductID, TotalSold string
	Bar                        string // the bar's length in percent of Top
	Change                     pageChange
}

// pageChange is a product's rank against its rank 24 hours before the cutoff, as
// /popular?with=previous_rank gives it: Kind is "new" (it sold nothing then), "up", "down"
// or "same"; By is how many places; Previous the rank then.
type pageChange struct {
	Kind, By, Previous string
}

// handlePage serves the page: 200 with the snapshot's data, or 503 with a page that says no
// snapshot is loaded yet. The query picks what is shown (category_id, limit, offset,
// product_id, as the page's own links and form send them); values the page does not offer
// are ignored rather than refused, since a person followed the link.
func handlePage(logger *slog.Logger, h *Holder, now func() time.Time) http.Handler {
	a := loadPageAssets()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := pageData{Style: a.style, Script: a.script}
		q, _ := url.ParseQuery(r.URL.RawQuery)
		d.Product = q.Get("product_id")
		if _, ok := parseDigits(d.Product, 1<<63-1); !ok {
			d.Product = ""
		}
		status, etag := http.StatusServiceUnavailable, ""
		d.Limits = limitChoices(defaultPageLimit)
		if v := h.load(); v != nil {
			t := now()
			fillPage(&d, v.snap, q)
			d.Stale = v.clocked(t).stale || h.SourceStale(t)
			// The body is the assets and the snapshot, and the notice when it is stale.
			status = http.StatusOK
			etag = `"p` + a.hash + "-" + strconv.FormatInt(d.SnapshotID, 10)
			if d.Stale {
				etag += "-stale"
			}
			etag += `"`
		}
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", a.csp)
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Cache-Control", "no-cache")
		if status != http.StatusOK {
			hdr.Set("Retry-After", "1")
		} else {
			hdr.Set("Etag", etag)
			if inm, ok := r.Header["If-None-Match"]; ok && etagMatches(inm, etag) {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		var b bytes.Buffer
		if err := a.tmpl.Execute(&b, &d); err != nil {
			logger.Error("render the page", "err", err)
			writeProblem(w, r, logger, err)
			return
		}
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Content-Length", strconv.Itoa(b.Len()))
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			w.Write(b.Bytes())
		}
	})
}

// fillPage sets d from snapshot s and the page's query q.
func fillPage(d *pageData, s *salesrank.Snapshot, q url.Values) {
	d.Loaded = true
	d.SnapshotID = s.ID
	d.Window = s.Window
	d.NextDue = s.NextRefresh()

	d.Limit = defaultPageLimit
	if n, ok := parseDigits(q.Get("limit"), salesrank.MaxLimit); ok && slices.Contains(pageLimits, n) {
		d.Limit = n
	}
	d.Limits = limitChoices(d.Limit)
	if n, ok := parseDigits(q.Get("offset"), 1<<62); ok {
		d.Offset = n
	}

	// The chosen category: the one asked for, else the first that sold anything.
	chosen := -1
	if c := q.Get("category_id"); c != "" {
		if n, ok := parseDigits(c, salesrank.MaxCategoryID); ok {
			if i, found := slices.BinarySearchFunc(s.Rankings, int32(n), func(r salesrank.Ranking, id int32) int {
				return cmp.Compare(r.CategoryID, id)
			}); found {
				chosen = i
			}
		}
		if chosen < 0 {
			d.Unknown = c
		}
	}
	if chosen < 0 {
		d.Offset = 0
		chosen = slices.IndexFunc(s.Rankings, func(r salesrank.Ranking) bool { return len(r.Entries) > 0 })
		if chosen < 0 && len(s.Rankings) > 0 {
			chosen = 0
		}
	}
	d.Categories = make([]pageCategory, len(s.Rankings))
	for i, r := range s.Rankings {
		d.Categories[i] = pageCategory{
			ID:             strconv.FormatInt(int64(r.CategoryID), 10),
			ProductsRanked: strconv.Itoa(s.Standings.ProductsRanked(r.CategoryID)),
			Selected:       i == chosen,
		}
	}
	if chosen < 0 {
		return
	}
	d.Category = d.Categories[chosen].ID
	cat := s.Rankings[chosen].CategoryID
	entries := s.Rankings[chosen].Entries
	var top int64
	if len(entries) > 0 {
		top = entries[0].TotalSold
		d.Top = strconv.FormatInt(top, 10)
	}
	lo, hi := salesrank.PageBounds(len(entries), d.Offset, d.Limit)
	for i := lo; i < hi; i++ {
		e := entries[i]
		bar := 0.0
		if top > 0 {
			bar = 100 * float64(e.TotalSold) / float64(top)
		}
		d.Rows = append(d.Rows, pageRow{
			Rank:      strconv.Itoa(i + 1),
			ProductID: strconv.FormatInt(e.ProductID, 10),
			TotalSold: strconv.FormatInt(e.TotalSold, 10),
			Bar:       strconv.FormatFloat(bar, 'f', 2, 64),
			Change:    changeOf(i+1, s.Previous, cat, e.ProductID),
		})
	}
	switch {
	case hi > lo:
		d.Range = "Ranks " + strconv.Itoa(lo+1) + "–" + strconv.Itoa(hi)
	case len(entries) == 0:
		d.Range = "No sales in this window."
	default:
		d.Range = "No more products."
	}
	if d.Offset > 0 {
		d.HasPrev = true
		d.Prev = max(d.Offset-d.Limit, 0)
	}
	if int64(hi) < int64(len(entries)) {
		d.Next = int64(hi)
	}
}

// changeOf compares rank with the product's rank a day before.
func changeOf(rank int, prev *salesrank.PastRanks, cat int32, product int64) pageChange {
	p, ok := prev.Rank(cat, product)
	switch {
	case !ok:
		return pageChange{Kind: "new"}
	case p > rank:
		return pageChange{Kind: "up", By: strconv.Itoa(p - rank), Previous: strconv.Itoa(p)}
	case p < rank:
		return pageChange{Kind: "down", By: strconv.Itoa(rank - p), Previous: strconv.Itoa(p)}
	}
	return pageChange{Kind: "same", Previous: strconv.Itoa(p)}
}

func limitChoices(chosen int64) []pageLimit {
	out := make([]pageLimit, len(pageLimits))
	for i, n := range pageLimits {
		out[i] = pageLimit{N: n, Selected: n == chosen}
	}
	return out
}

// groupDigits writes a decimal string with a comma between groups of three digits, as the
// script does, so the server's numbers and the script's look the same.
func groupDigits(s string) string {
	if len(s) <= 3 {
		return s
	}
	b := make([]byte, 0, len(s)+len(s)/3)
	for i := 0; i < len(s); i++ {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(b)
}
