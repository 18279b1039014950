package browser_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The API's answers, as the contract of issue 10 gives them: every value a string.
type (
	category struct {
		CategoryID     string `json:"category_id"`
		ProductsRanked string `json:"products_ranked"`
	}
	popularEntry struct {
		ID           string  `json:"id"`
		CategoryID   string  `json:"category_id"`
		TotalSold    string  `json:"total_sold"`
		ProductID    string  `json:"product_id"`
		PreviousRank *string `json:"previous_rank"`
	}
	mover struct {
		ProductID    string `json:"product_id"`
		Rank         string `json:"rank"`
		PreviousRank string `json:"previous_rank"`
		TotalSold    string `json:"total_sold"`
	}
	productRank struct {
		CategoryID     string `json:"category_id"`
		ProductID      string `json:"product_id"`
		Rank           string `json:"rank"`
		TotalSold      string `json:"total_sold"`
		ProductsRanked string `json:"products_ranked"`
	}
	historyPoint struct {
		Cutoff    string `json:"cutoff"`
		Rank      string `json:"rank"`
		TotalSold string `json:"total_sold"`
	}
)

// listRow is one row of the page's top list as a person sees it.
type listRow struct {
	Rank    string `json:"rank"`
	Change  string `json:"change"` // the visible part: "▲ 3", "▼ 2", "=", "new" or ""
	Said    string `json:"said"`   // all of it, with what only a screen reader reads
	Product string `json:"product"`
	Units   string `json:"units"`
	Bar     string `json:"bar"` // the bar's width in percent of rank 1's units
}

const readList = `[...document.querySelectorAll("#list tbody tr")].map((tr) => ({
  rank: tr.cells[0].textContent.trim(),
  change: [...tr.cells[1].childNodes].filter((n) => !(n.classList && n.classList.contains("vh"))).map((n) => n.textContent).join("").trim(),
  said: tr.cells[1].textContent.trim(),
  product: tr.cells[2].textContent.trim(),
  units: tr.cells[3].querySelector(".n").textContent.trim(),
  bar: tr.cells[3].querySelector("rect").getAttribute("width"),
}))`

// tab opens a tab of the shared browser at the given viewport and returns its context,
// with a deadline that only turns a hang into a failure. Uncaught script errors on the page
// fail the test.
func tab(t *testing.T, width, height int64, opts ...chromedp.EmulateViewportOption) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserContext(t))
	// The tab's first Run opens it and must not carry the deadline (see chromedp.Run).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height, opts...)); err != nil {
		cancel()
		t.Fatalf("open a tab: %v", err)
	}
	var (
		mu     sync.Mutex
		thrown []string
		done   = make(chan struct{})
	)
	events := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		defer close(done)
		for ev, err := range events {
			if err != nil {
				return
			}
			mu.Lock()
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			thrown = append(thrown, fmt.Sprintf("%s (line %d, column %d)", msg, d.LineNumber+1, d.ColumnNumber+1))
			mu.Unlock()
		}
	}()
	// Cleanups run last first: close the tab, which ends the event loop, then read it.
	t.Cleanup(func() {
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, e := range thrown {
			t.Errorf("the page threw: %s", e)
		}
	})
	t.Cleanup(cancel)
	tctx, cancelTimeout := context.WithTimeout(ctx, hangBound)
	t.Cleanup(cancelTimeout)
	return tctx
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitFor polls the page until expr is true. Its deadline is the tab's: it only catches hangs.
func waitFor(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(0))); err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent`))
		t.Fatalf("waiting for %s: %v (the page's status: %q)", expr, err, status)
	}
}

// waitList waits until the top list shows category c from offset with limit.
func waitList(t *testing.T, ctx context.Context, c string, offset, limit int) {
	t.Helper()
	waitFor(t, ctx, fmt.Sprintf(`document.getElementById("list").dataset.shown === %q`, fmt.Sprintf("%s/%d/%d", c, offset, limit)))
}

// open opens one of the page's closed parts (movers, history) by clicking its summary and
// waits until it shows category c. One at a time: a part that fills in moves the ones
// below it, and a click aimed at a moving target can miss.
func open(t *testing.T, ctx context.Context, part, c string) {
	t.Helper()
	shown := map[string]string{"movers-box": "movers", "history-box": "chart"}[part]
	do(t, ctx, chromedp.Click(chromedp.CSS("#"+part+" summary")))
	waitFor(t, ctx, fmt.Sprintf(`document.getElementById(%q).dataset.shown === %q`, shown, c))
}

// search looks product up with the search box and waits for its answer.
func search(t *testing.T, ctx context.Context, product string) {
	t.Helper()
	do(t, ctx, chromedp.SendKeys(chromedp.ID("product"), product), chromedp.Click(chromedp.ID("find-go")))
	waitFor(t, ctx, fmt.Sprintf(`document.getElementById("found").dataset.shown === %q`, product))
}

// load opens path of s in the tab and waits until the script has enhanced the list.
func load(t *testing.T, ctx context.Context, s *site, path string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(s.base+path))
	waitFor(t, ctx, `document.getElementById("list").dataset.shown !== undefined`)
}

func digitsOnly(s string) string { return strings.ReplaceAll(s, ",", "") }

// checkList compares the list on the page with the API's page of category c at offset, and
// returns how many rows show each kind of change ("▲", "▼", "=" or "new").
func checkList(t *testing.T, ctx context.Context, s *site, c string, offset, limit int) map[string]int {
	t.Helper()
	var want []popularEntry
	s.get(t, fmt.Sprintf("/api/v1/popular?category_id=%s&limit=%d&offset=%d&with=previous_rank", c, limit, offset), &want)
	var top []popularEntry
	s.get(t, "/api/v1/popular?category_id="+c+"&limit=1", &top)
	got := eval[[]listRow](t, ctx, readList)
	if len(got) != len(want) {
		t.Fatalf("category %s offset %d: the page lists %d products, the API %d", c, offset, len(got), len(want))
	}
	kinds := map[string]int{}
	for i, w := range want {
		g := got[i]
		rank := strconv.Itoa(offset + i + 1)
		if g.Rank != rank || g.Product != w.ProductID || digitsOnly(g.Units) != w.TotalSold {
			t.Errorf("category %s row %d: page (rank %s, product %s, units %s), API (rank %s, product %s, units %s)",
				c, i, g.Rank, g.Product, g.Units, rank, w.ProductID, w.TotalSold)
		}
		if w.PreviousRank == nil {
			t.Fatalf("the API's entry has no previous_rank: %+v", w)
		}
		wantChange, wantSaid := changeOf(rank, *w.PreviousRank)
		kinds[strings.Fields(wantChange)[0]]++
		if g.Change != wantChange || !strings.Contains(g.Said, wantSaid) {
			t.Errorf("category %s rank %s (previous %q): change shown %q (read %q), want %q (read with %q)",
				c, rank, *w.PreviousRank, g.Change, g.Said, wantChange, wantSaid)
		}
		total, _ := strconv.ParseFloat(w.TotalSold, 64)
		first, _ := strconv.ParseFloat(top[0].TotalSold, 64)
		bar, err := strconv.ParseFloat(g.Bar, 64)
		if err != nil || math.Abs(bar-100*total/first) > 0.01 {
			t.Errorf("category %s rank %s: bar %q%%, want %.2f%% (%s of rank 1's %s)", c, rank, g.Bar, 100*total/first, w.TotalSold, top[0].TotalSold)
		}
	}
	return kinds
}

// changeOf is what the page shows for a product at rank that was at previous 24 hours
// before, and a part of what it says to a screen reader.
func changeOf(rank, previous string) (shown, said string) {
	if previous == "" {
		return "new", "sold nothing 24 hours before"
	}
	r, _ := strconv.Atoi(rank)
	p, _ := strconv.Atoi(previous)
	switch {
	case p > r:
		return fmt.Sprintf("▲ %d", p-r), "up from " + previous
	case p < r:
		return fmt.Sprintf("▼ %d", r-p), "down from " + previous
	}
	return "=", "unchanged"
}

// checkLabels compares the category list's options with the API's categories.
func checkLabels(t *testing.T, ctx context.Context, cs []category) {
	t.Helper()
	labels := eval[[]string](t, ctx, `[...document.querySelectorAll("#category option")].map((o) => o.textContent)`)
	if len(labels) != len(cs) {
		t.Fatalf("the list offers %d categories, the API %d", len(labels), len(cs))
	}
	for i, c := range cs {
		if want := c.CategoryID + " · "; !strings.HasPrefix(labels[i], want) || digitsOnly(strings.TrimSuffix(strings.TrimPrefix(labels[i], want), " products")) != c.ProductsRanked {
			t.Errorf("option %d reads %q; the API has category %s with %s products ranked", i, labels[i], c.CategoryID, c.ProductsRanked)
		}
	}
}

func categories(t *testing.T, s *site) []category {
	t.Helper()
	var cs []category
	s.get(t, "/api/v1/categories", &cs)
	if len(cs) < 3 {
		t.Fatalf("the API lists %d categories; the data set has 30", len(cs))
	}
	return cs
}

// TestFirstPaint loads the page with scripts disabled: the document alone, one request,
// must show the category list and the first category's top list, as the API has them.
func TestFirstPaint(t *testing.T) {
	s := freshSite(t)
	ctx := tab(t, 1024, 900)
	var (
		mu   sync.Mutex
		urls []string
		done = make(chan struct{})
	)
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	go func() {
		defer close(done)
		for ev, err := range requests {
			if err != nil {
				return
			}
			mu.Lock()
			urls = append(urls, ev.Request.URL)
			mu.Unlock()
		}
	}()
	do(t, ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}),
		chromedp.Navigate(s.base+"/"),
	)

	cs := categories(t, s)
	options := eval[[]string](t, ctx, `[...document.querySelectorAll("#category option")].map((o) => o.value)`)
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.CategoryID)
	}
	if !slices.Equal(options, ids) {
		t.Errorf("the page offers categories %v, the API lists %v", options, ids)
	}
	checkLabels(t, ctx, cs)
	first := eval[string](t, ctx, `document.getElementById("category").value`)
	if first != cs[0].CategoryID {
		t.Errorf("the page shows category %s first, want the first of the list, %s", first, cs[0].CategoryID)
	}
	if kinds := checkList(t, ctx, s, first, 0, 25); kinds["new"] == 0 || kinds["▲"]+kinds["▼"] == 0 {
		t.Errorf("category %s's first page shows changes %v; the data set has a newcomer and movers there", first, kinds)
	}
	if id := eval[string](t, ctx, `document.getElementById("w-id").textContent`); id == "" {
		t.Error("the page does not say which snapshot it shows")
	}

	if err := chromedp.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	var others []string
	for _, u := range urls {
		if u != s.base+"/" && !strings.HasSuffix(u, "/favicon.ico") {
			others = append(others, u)
		}
	}
	if len(urls) == 0 || len(others) > 0 {
		t.Errorf("without a script the page made requests %v; want only %s/", urls, s.base)
	}

	// Without a script the pager still works: its buttons submit the category form.
	ctx = tab(t, 1024, 900)
	do(t, ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}),
		chromedp.Navigate(s.base+"/?category_id="+first),
	)
	res, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("next")))
	if err != nil {
		t.Fatalf("Next without a script: %v", err)
	}
	if !strings.Contains(res.URL, "offset=25") {
		t.Errorf("Next without a script went to %s", res.URL)
	}
	waitList(t, ctx, first, 25, 25)
	checkList(t, ctx, s, first, 25, 25)
}

// TestPickAndPage picks a category from the list and pages through its top list to the end
// and back, checking every row against the API.
func TestPickAndPage(t *testing.T) {
	s := freshSite(t)
	ctx := tab(t, 1024, 900)
	load(t, ctx, s, "/")
	cs := categories(t, s)
	checkLabels(t, ctx, cs)

	c := cs[2].CategoryID
	// SetValue fires input and change, as picking from the list does; the list then loads
	// by itself (Show is for pages without a script).
	do(t, ctx, chromedp.SetValue(chromedp.ID("category"), c))
	waitList(t, ctx, c, 0, 25)
	kinds := checkList(t, ctx, s, c, 0, 25)
	if got := eval[string](t, ctx, `document.getElementById("list-h").textContent`); got != "Category "+c {
		t.Errorf("the list's heading reads %q", got)
	}
	// What changed is said in the live status line, which a screen reader reads out.
	if got := eval[string](t, ctx, `(() => { const s = document.getElementById("status");
	  return s.getAttribute("role") + " " + s.getAttribute("aria-live") + ": " + s.textContent; })()`); got != "status polite: Category "+c+": ranks 1–25." {
		t.Errorf("the status line is %q", got)
	}
	// Every control has a label, and every table a name.
	if unlabelled := eval[[]string](t, ctx, `[...document.querySelectorAll("input, select")].filter((e) => e.labels.length === 0).map((e) => e.id)`); len(unlabelled) > 0 {
		t.Errorf("controls without a label: %q", unlabelled)
	}
	if unnamed := eval[[]string](t, ctx, `[...document.querySelectorAll("table")].filter((e) => !e.getAttribute("aria-labelledby")).map((e) => e.id)`); len(unnamed) > 0 {
		t.Errorf("tables without a name: %q", unnamed)
	}
	var all []popularEntry
	s.get(t, "/api/v1/popular?category_id="+c+"&limit=1000", &all)
	pages := 0
	for offset := 25; offset < len(all); offset += 25 {
		if eval[bool](t, ctx, `document.getElementById("next").disabled`) {
			t.Fatalf("Next is disabled at offset %d of %d", offset-25, len(all))
		}
		do(t, ctx, chromedp.Click(chromedp.ID("next")))
		waitList(t, ctx, c, offset, 25)
		for k, n := range checkList(t, ctx, s, c, offset, 25) {
			kinds[k] += n
		}
		pages++
	}
	if kinds["▲"] == 0 || kinds["▼"] == 0 {
		t.Errorf("category %s's pages showed changes %v; a day of sales must move some up and some down", c, kinds)
	}
	if pages < 2 {
		t.Fatalf("category %s has %d products: too few to page through", c, len(all))
	}
	if !eval[bool](t, ctx, `document.getElementById("next").disabled`) {
		t.Error("Next is enabled on the last page")
	}
	last := (len(all) - 1) / 25 * 25
	if got, want := eval[string](t, ctx, `document.getElementById("range").textContent`), fmt.Sprintf("Ranks %d–%d", last+1, len(all)); got != want {
		t.Errorf("the last page says %q, want %q", got, want)
	}
	do(t, ctx, chromedp.Click(chromedp.ID("prev")))
	waitList(t, ctx, c, last-25, 25)
	checkList(t, ctx, s, c, last-25, 25)

	// The address says what is shown, and loading it again shows the same page, from the
	// server this time.
	search := eval[string](t, ctx, `location.search`)
	if want := fmt.Sprintf("?category_id=%s&limit=25&offset=%d", c, last-25); search != want {
		t.Errorf("the address's query is %q, want %q", search, want)
	}
	load(t, ctx, s, "/"+search)
	waitList(t, ctx, c, last-25, 25)
	checkList(t, ctx, s, c, last-25, 25)

	// Another page size starts the category over.
	do(t, ctx, chromedp.SetValue(chromedp.ID("limit"), "50"))
	waitList(t, ctx, c, 0, 50)
	checkList(t, ctx, s, c, 0, 50)
}

// TestMovers opens the movers of a category and checks them against the API.
func TestMovers(t *testing.T) {
	s := freshSite(t)
	ctx := tab(t, 1024, 900)
	// Category 1, where the newcomer is a mover from nowhere.
	c := "1"
	var want []mover
	s.get(t, "/api/v1/movers?category_id="+c+"&limit=20", &want)
	if len(want) < 2 || want[0].ProductID != newcomer || want[0].PreviousRank != "" || want[1].PreviousRank == "" {
		t.Fatalf("category %s's movers are %+v; the data set has the newcomer first, then products that climbed", c, want)
	}
	load(t, ctx, s, "/?category_id="+c)
	waitList(t, ctx, c, 0, 25)
	if eval[bool](t, ctx, `document.getElementById("movers").checkVisibility()`) {
		t.Error("the movers show before they are opened")
	}
	open(t, ctx, "movers-box", c)
	type row struct{ Rank, Previous, Product, Units string }
	got := eval[[]row](t, ctx, `[...document.querySelectorAll("#movers tbody tr")].map((tr) => ({
	  Rank: tr.cells[0].textContent.trim(), Previous: tr.cells[1].textContent.trim(),
	  Product: tr.cells[2].textContent.trim(), Units: tr.cells[3].textContent.trim()}))`)
	if len(got) != len(want) {
		t.Fatalf("category %s: the page shows %d movers, the API %d", c, len(got), len(want))
	}
	for i, w := range want {
		prev := w.PreviousRank
		if prev == "" {
			prev = "new"
		}
		g := got[i]
		if g.Rank != w.Rank || g.Previous != prev || g.Product != w.ProductID || digitsOnly(g.Units) != w.TotalSold {
			t.Errorf("mover %d: page %+v, API %+v", i, g, w)
		}
	}
	if !eval[bool](t, ctx, `document.getElementById("movers").checkVisibility()`) {
		t.Error("the movers are not visible once opened")
	}
}

// TestHistory opens the chart of the top 10's ranks over the kept snapshots and checks each
// line's points against the products' history in the API.
func TestHistory(t *testing.T) {
	s := freshSite(t)
	ctx := tab(t, 1024, 900)
	c := categories(t, s)[0].CategoryID
	load(t, ctx, s, "/?category_id="+c)
	open(t, ctx, "history-box", c)

	var top []popularEntry
	s.get(t, "/api/v1/popular?category_id="+c+"&limit=10", &top)
	if len(top) != 10 {
		t.Fatalf("category %s has a top %d", c, len(top))
	}
	legend := eval[[]string](t, ctx, `[...document.querySelectorAll("#legend li")].map((li) => li.textContent)`)
	if len(legend) != len(top) {
		t.Fatalf("the legend names %d products, want %d", len(legend), len(top))
	}
	type point struct {
		Title string  `json:"title"`
		Y     float64 `json:"y"`
	}
	lastY := map[string]float64{} // product → the height of its point at the latest cutoff
	kept, gaps := 0, 0
	for i, e := range top {
		if !strings.HasPrefix(legend[i], "Product "+e.ProductID+" ") {
			t.Errorf("legend %d reads %q, want product %s", i, legend[i], e.ProductID)
		}
		var h []historyPoint
		s.get(t, "/api/v1/products/"+e.ProductID+"/history?category_id="+c, &h)
		points := eval[[]point](t, ctx, fmt.Sprintf(`[...document.querySelectorAll("#chart circle.s%d")].map((c) => ({title: c.textContent, y: Number(c.getAttribute("cy"))}))`, i))
		var want []string
		for _, p := range h {
			if p.Rank != "" {
				want = append(want, "#"+p.Rank+" at "+strings.Replace(p.Cutoff[:16], "T", " ", 1)+" UTC")
			}
		}
		if len(points) != len(want) {
			t.Errorf("product %s: %d points on the chart, %d ranks in its history", e.ProductID, len(points), len(want))
			continue
		}
		// The line breaks where the product was out of the top list: one stroke per run of
		// kept snapshots that ranked it.
		runs := 0
		for j, p := range h {
			if p.Rank != "" && (j == 0 || h[j-1].Rank == "") {
				runs++
			}
		}
		d := eval[string](t, ctx, fmt.Sprintf(`document.querySelector("#chart path.s%d").getAttribute("d")`, i))
		if strokes := strings.Count(d, "M"); strokes != runs {
			t.Errorf("product %s: its line has %d strokes, its history %d runs in the top list", e.ProductID, strokes, runs)
		}
		if runs > 1 {
			gaps++
		}
		for j, p := range points {
			if !strings.HasSuffix(p.Title, want[j]) {
				t.Errorf("product %s point %d: %q, want %q", e.ProductID, j, p.Title, want[j])
			}
		}
		if n := len(h); n > 0 && h[n-1].Rank != "" {
			lastY[h[n-1].Rank] = points[len(points)-1].Y
		}
		kept = max(kept, len(h))
	}
	if gaps == 0 {
		t.Errorf("no line of category %s has a gap in the middle; the data set's returner should", c)
	}
	if kept < 24 {
		t.Errorf("the history holds %d snapshots; the data set ranked 27 hourly cutoffs", kept)
	}
	// Rank 1 is drawn highest, then each next rank lower.
	for r := 2; r <= 10; r++ {
		a, okA := lastY[strconv.Itoa(r-1)]
		b, okB := lastY[strconv.Itoa(r)]
		if okA && okB && a >= b {
			t.Errorf("rank %d is drawn at y=%v, not above rank %d at y=%v", r-1, a, r, b)
		}
	}
	if paths := eval[int](t, ctx, `document.querySelectorAll("#chart path.series").length`); paths != len(top) {
		t.Errorf("%d lines on the chart, want %d", paths, len(top))
	}
}

// TestSearch looks a product up by id and checks its rank in each of its categories
// against the API; a category in the answer opens that category's list.
func TestSearch(t *testing.T) {
	s := freshSite(t)
	ctx := tab(t, 1024, 900)
	// The newcomer: ranked in two categories, with an id a JavaScript Number would round.
	id := newcomer
	var want []productRank
	s.get(t, "/api/v1/products/"+id+"/ranks", &want)
	if len(want) != 2 {
		t.Fatalf("the newcomer is ranked in %d categories, want 2: %+v", len(want), want)
	}
	load(t, ctx, s, "/")
	search(t, ctx, id)
	type row struct{ Category, Rank, Units string }
	got := eval[[]row](t, ctx, `[...document.querySelectorAll("#found-table tbody tr")].map((tr) => ({
	  Category: tr.cells[0].textContent.trim(), Rank: tr.cells[1].textContent.trim(), Units: tr.cells[2].textContent.trim()}))`)
	if len(got) != len(want) {
		t.Fatalf("product %s: the page shows %d categories, the API %d", id, len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Category != w.CategoryID || digitsOnly(g.Rank) != "#"+w.Rank+" of "+w.ProductsRanked || digitsOnly(g.Units) != w.TotalSold {
			t.Errorf("product %s, row %d: page %+v, API %+v", id, i, g, w)
		}
	}
	if q := eval[string](t, ctx, `location.search`); !strings.Contains(q, "product_id="+id) {
		t.Errorf("the address's query %q does not name the product", q)
	}

	// A category of the answer opens its list.
	other := want[len(want)-1].CategoryID
	do(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#found-table button[data-category=%q]`, other))))
	waitList(t, ctx, other, 0, 25)
	checkList(t, ctx, s, other, 0, 25)

	// What is not an id is refused on the page, with the field marked and a message.
	do(t, ctx, chromedp.Clear(chromedp.ID("product")), chromedp.SendKeys(chromedp.ID("product"), "12x"), chromedp.Click(chromedp.ID("find-go")))
	waitFor(t, ctx, `document.getElementById("product").getAttribute("aria-invalid") === "true"`)
	if !eval[bool](t, ctx, `document.getElementById("status").classList.contains("error")`) {
		t.Error("a malformed id gives no error in the status line")
	}
}

// focused returns the id of the focused element (or its tag when it has none) and whether
// its focus ring is visible: an outline at least 2 px wide.
func focused(t *testing.T, ctx context.Context) (string, bool) {
	t.Helper()
	type f struct {
		ID      string `json:"id"`
		Visible bool   `json:"visible"`
	}
	v := eval[f](t, ctx, `(() => {
	  const e = document.activeElement, s = getComputedStyle(e);
	  const within = e.parentElement && e.parentElement.closest("[id]");
	  return {id: e.id || e.tagName.toLowerCase() + (within ? " in #" + within.id : ""),
	          visible: s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2};
	})()`)
	return v.ID, v.Visible
}

// TestKeyboard uses the page with keys alone: Tab to each control in order, arrows to pick
// a category, Enter to search, to open a category, to page and to open the movers and the
// history. Every focused control shows its focus.
func TestKeyboard(t *testing.T) {
	s := freshSite(t)
	ctx := tab(t, 1024, 900)
	cs := categories(t, s)
	c0, c1 := cs[0].CategoryID, cs[1].CategoryID
	load(t, ctx, s, "/")
	waitList(t, ctx, c0, 0, 25)

	key := func(keys string, want string) {
		t.Helper()
		do(t, ctx, chromedp.KeyEvent(keys))
		id, visible := focused(t, ctx)
		if id != want {
			t.Fatalf("after %q the focus is on %q, want %q", keys, id, want)
		}
		if !visible {
			t.Errorf("%s has the focus but shows no focus ring", id)
		}
	}
	key(kb.Tab, "category")
	key(kb.ArrowDown, "category")
	waitList(t, ctx, c1, 0, 25)
	checkList(t, ctx, s, c1, 0, 25)
	key(kb.Tab, "limit")
	key(kb.Tab, "show")
	key(kb.Tab, "product")

	var top []popularEntry
	s.get(t, "/api/v1/popular?category_id="+c1+"&limit=1", &top)
	id := top[0].ProductID
	var ranks []productRank
	s.get(t, "/api/v1/products/"+id+"/ranks", &ranks)
	key(id, "product")
	key(kb.Enter, "product")
	waitFor(t, ctx, fmt.Sprintf(`document.getElementById("found").dataset.shown === %q`, id))
	key(kb.Tab, "find-go")
	key(kb.Tab, "button in #found-table") // the first category of the answer
	if got := eval[string](t, ctx, `document.activeElement.dataset.category`); got != ranks[0].CategoryID {
		t.Fatalf("the first category button is for %q, want %s", got, ranks[0].CategoryID)
	}
	do(t, ctx, chromedp.KeyEvent(kb.Enter))
	c := ranks[0].CategoryID
	waitList(t, ctx, c, 0, 25)
	if id, _ := focused(t, ctx); id != "list-h" {
		t.Errorf("after opening a category the focus is on %q, want its list's heading", id)
	}
	key(kb.Tab, "next") // Previous is disabled on the first page
	key(kb.Enter, "next")
	waitList(t, ctx, c, 25, 25)
	checkList(t, ctx, s, c, 25, 25)
	shiftTab := func(want string) {
		t.Helper()
		do(t, ctx, chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
		if id, _ := focused(t, ctx); id != want {
			t.Fatalf("after Shift+Tab the focus is on %q, want %q", id, want)
		}
	}
	shiftTab("prev")
	do(t, ctx, chromedp.KeyEvent(kb.Enter))
	waitList(t, ctx, c, 0, 25)
	// Previous is disabled again: the focus must not fall out of the page with it.
	if id, _ := focused(t, ctx); id != "next" {
		t.Errorf("back on the first page the focus is on %q, want Next", id)
	}
	key(kb.Enter, "next")
	waitList(t, ctx, c, 25, 25)
	key(kb.Tab, "summary in #movers-box")
	key(kb.Enter, "summary in #movers-box")
	waitFor(t, ctx, fmt.Sprintf(`document.getElementById("movers").dataset.shown === %q`, c))
	key(kb.Tab, "summary in #history-box")
	key(kb.Enter, "summary in #history-box")
	waitFor(t, ctx, fmt.Sprintf(`document.getElementById("chart").dataset.shown === %q`, c))
}

// noHorizontalScroll fails t if the page is wider than width.
func noHorizontalScroll(t *testing.T, ctx context.Context, width int, when string) {
	t.Helper()
	if got := eval[int](t, ctx, `document.scrollingElement.scrollWidth`); got > width {
		wide := eval[[]string](t, ctx, fmt.Sprintf(`[...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > %d).slice(0, 5).map((e) => e.outerHTML.slice(0, 80))`, width))
		t.Errorf("%s: the page is %d px wide at a %d px viewport; too wide: %q", when, got, width, wide)
	}
}

// TestNarrow uses the page at phone width (375 px): nothing may scroll sideways, with the
// list, the movers, the chart and a product's ranks all open.
func TestNarrow(t *testing.T) {
	s := freshSite(t)
	ctx := tab(t, 375, 800, chromedp.EmulateMobile)
	c := categories(t, s)[0].CategoryID
	load(t, ctx, s, "/?category_id="+c+"&limit=100")
	waitList(t, ctx, c, 0, 100)
	noHorizontalScroll(t, ctx, 375, "the list")
	open(t, ctx, "movers-box", c)
	open(t, ctx, "history-box", c)
	noHorizontalScroll(t, ctx, 375, "with the movers and the chart open")
	var top []popularEntry
	s.get(t, "/api/v1/popular?category_id="+c+"&limit=1", &top)
	search(t, ctx, top[0].ProductID)
	noHorizontalScroll(t, ctx, 375, "with a product's ranks")
	// The controls stay big enough to hit with a finger: 24 px at least (WCAG 2.2 AA).
	small := eval[[]string](t, ctx, `[...document.querySelectorAll("button, select, input, summary")].filter((e) => {
	  const r = e.getBoundingClientRect(); return r.height < 24 || r.width < 24; }).map((e) => e.id || e.textContent)`)
	if len(small) > 0 {
		t.Errorf("controls smaller than 24 px at phone width: %q", small)
	}
}

// TestStaleness shows that the page says when its numbers are out of date, exactly when the
// API does, and which window and snapshot they are from.
func TestStaleness(t *testing.T) {
	for _, tt := range []struct {
		name      string
		site      func(*testing.T) *site
		wantStale bool
	}{
		{"current", freshSite, false},
		{"overdue", staleSite, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.site(t)
			ctx := tab(t, 1024, 900)
			load(t, ctx, s, "/")
			c := eval[string](t, ctx, `document.getElementById("category").value`)
			var page []popularEntry
			h := s.get(t, "/api/v1/popular?category_id="+c, &page)
			if stale := h.Get("X-Snapshot-Stale") == "true"; stale != tt.wantStale {
				t.Fatalf("the API's X-Snapshot-Stale is %q; the test needs a %v snapshot", h.Get("X-Snapshot-Stale"), tt.wantStale)
			}
			if shown := eval[bool](t, ctx, `document.getElementById("stale").checkVisibility()`); shown != tt.wantStale {
				t.Errorf("as served, the out-of-date notice shows: %v; the API says stale: %v", shown, tt.wantStale)
			}
			// The script's answers carry the mark too, and the notice follows them.
			open(t, ctx, "movers-box", c)
			if shown := eval[bool](t, ctx, `document.getElementById("stale").checkVisibility()`); shown != tt.wantStale {
				t.Errorf("after the script's request, the out-of-date notice shows: %v; the API says stale: %v", shown, tt.wantStale)
			}
			for id, want := range map[string]string{
				"w-start": h.Get("X-Window-Start"),
				"w-end":   h.Get("X-Window-End"),
			} {
				if got := eval[string](t, ctx, `document.getElementById("`+id+`").getAttribute("datetime")`); got != want {
					t.Errorf("#%s is %q, the API's window header %q", id, got, want)
				}
			}
			if got := eval[string](t, ctx, `document.getElementById("w-id").textContent`); got != h.Get("X-Snapshot-Id") {
				t.Errorf("the page shows snapshot %q, the API answers from %q", got, h.Get("X-Snapshot-Id"))
			}
			if want := s.cutoff.Format("2006-01-02 15:04") + " UTC"; eval[string](t, ctx, `document.getElementById("w-end").textContent`) != want {
				t.Errorf("the cutoff shown is not %s", want)
			}
		})
	}
}

// TestScreenshot writes the page, at desktop width with the history open, to the PNG that
// SALESRANK_SCREENSHOT names (the README's docs/page.png).
func TestScreenshot(t *testing.T) {
	path := os.Getenv("SALESRANK_SCREENSHOT")
	if path == "" {
		t.Skip("set SALESRANK_SCREENSHOT=PATH to write a screenshot of the page")
	}
	s := freshSite(t)
	ctx := tab(t, 860, 1300)
	c := categories(t, s)[0].CategoryID
	load(t, ctx, s, "/?category_id="+c+"&limit=10")
	open(t, ctx, "history-box", c)
	eval[chromedp.Void](t, ctx, `window.scrollTo(0, 0)`)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}

// lowContrast lists the page's visible text whose contrast with its background is below
// WCAG AA: 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold); and the bars and the
// chart's lines below 3:1. Text on disabled controls is exempt, as WCAG has it; the chart's
// SVG text is checked by its fill.
const lowContrast = `(() => {
  const parse = (c) => {
    const m = /^rgba?\(([^)]+)\)$/.exec(c);
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = ({ r, g, b }) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) return c;
    }
    return parse(getComputedStyle(document.documentElement).backgroundColor) || { r: 255, g: 255, b: 255, a: 1 };
  };
  const bad = [];
  for (const e of document.querySelectorAll("body *")) {
    if (!e.checkVisibility() || e.closest(":disabled")) continue;
    if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const s = getComputedStyle(e), inSVG = e instanceof SVGElement;
    const fg = parse(inSVG ? s.fill : s.color), bg = background(inSVG ? e.closest("svg").parentElement : e);
    if (!fg || !bg) { bad.push(e.tagName + ": colour " + (inSVG ? s.fill : s.color) + " not understood"); continue; }
    const mixed = { r: fg.r * fg.a + bg.r * (1 - fg.a), g: fg.g * fg.a + bg.g * (1 - fg.a), b: fg.b * fg.a + bg.b * (1 - fg.a) };
    const [hi, lo] = [lum(mixed), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) bad.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " + JSON.stringify(e.textContent.trim().slice(0, 30)) + ": " + ratio.toFixed(2) + ":1, needs " + need);
  }
  // Bars and the chart's lines are graphics that carry meaning: 3:1 against the page.
  for (const e of document.querySelectorAll("svg.bar rect, #chart path.series, #chart circle")) {
    if (!e.checkVisibility()) continue;
    const s = getComputedStyle(e), paint = parse(e.tagName === "path" ? s.stroke : s.fill), bg = background(e.closest("svg").parentElement);
    if (!paint) { bad.push(e.tagName + ": colour not understood"); continue; }
    const [hi, lo] = [lum(paint), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < 3) bad.push(e.tagName + "." + e.getAttribute("class") + ": " + ratio.toFixed(2) + ":1, needs 3");
  }
  return bad;
})()`

// TestContrast checks every visible text's contrast in the light and the dark colour
// scheme, with every part of the page open and the out-of-date notice showing.
func TestContrast(t *testing.T) {
	for _, scheme := range []string{"light", "dark"} {
		t.Run(scheme, func(t *testing.T) {
			s := staleSite(t)
			ctx := tab(t, 1024, 900)
			do(t, ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
					Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
				})
				return err
			}))
			c := categories(t, s)[0].CategoryID
			load(t, ctx, s, "/?category_id="+c)
			var top []popularEntry
			s.get(t, "/api/v1/popular?category_id="+c+"&limit=1", &top)
			open(t, ctx, "movers-box", c)
			open(t, ctx, "history-box", c)
			search(t, ctx, top[0].ProductID)
			if !eval[bool](t, ctx, `document.getElementById("stale").checkVisibility()`) {
				t.Fatal("the out-of-date notice does not show on the overdue site")
			}
			if bg := eval[string](t, ctx, `getComputedStyle(document.documentElement).backgroundColor`); (bg == "rgb(255, 255, 255)") != (scheme == "light") {
				t.Fatalf("the %s scheme has the background %s", scheme, bg)
			}
			for _, b := range eval[[]string](t, ctx, lowContrast) {
				t.Errorf("low contrast: %s", b)
			}
		})
	}
}

// TestNoSnapshotYet opens the page of a replica that has no snapshot yet: it says so, and
// shows the ranking by itself once one is published.
func TestNoSnapshotYet(t *testing.T) {
	buildSites(t) // for the logs
	db := filepath.Join(t.TempDir(), "later.db")
	s, err := serve(db, time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	ctx := tab(t, 1024, 900)
	res, err := chromedp.RunResponse(ctx, chromedp.Navigate(s.base+"/"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusServiceUnavailable {
		t.Errorf("the page without a snapshot answers %d, want 503", res.Status)
	}
	if got := eval[string](t, ctx, `document.getElementById("window").textContent`); !strings.Contains(got, "No ranking has been loaded yet") {
		t.Errorf("the page without a snapshot says %q", got)
	}
	if eval[bool](t, ctx, `document.querySelector("main").checkVisibility()`) {
		t.Error("the page without a snapshot shows empty controls")
	}
	cutoff := time.Now().UTC().Truncate(time.Hour)
	if _, err := run("rank", "--logs", filepath.Join(sites.dir, "logs"), "--db", "sqlite:"+db, "--once", "--now", cutoff.Format(time.RFC3339)); err != nil {
		t.Fatal(err)
	}
	// The replica polls the database and the page reloads itself; neither is timed here.
	// A reload interrupts whatever runs in the page, so this asks again and again rather
	// than waiting inside it.
	for {
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === "complete" && document.getElementById("list").dataset.shown === "1/0/25"`))
		if err == nil && shown {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the page did not show the published ranking: %v", ctx.Err())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !eval[bool](t, ctx, `document.querySelector("main").checkVisibility()`) {
		t.Error("the page does not show the ranking once there is one")
	}
}
