// Package consistency_test proves that no reader ever sees a mix of two snapshots under heavy
// publication: 1,000 publications, one after another, while 16 readers load the current
// snapshot from the store (Current) and 16 more query the read API of a real httpapi server
// whose Watcher follows the store, and every response is checked on its own against the
// publication that got the snapshot id it names. It runs on SQLite always and on PostgreSQL
// when SALESRANK_TEST_POSTGRES names a database.
//
// Every snapshot describes itself: snapshot number n (cutoff base + n hours) ranks categories
// 1..C with E entries each, and entry r of category c has product id and units sold computed
// from n, c and r alone (see build), so rows of two publications never look alike. The stores
// keep only the current snapshot (Keep = 1), the harshest setting: each publication deletes
// the rows of the one before, so a reader that is not isolated from the writer sees rows
// vanish or change under it, and the test reports it.
package consistency_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/httpapi"
	"github.com/salesrank/salesrank/internal/postgres"
	"github.com/salesrank/salesrank/internal/replica"
	"github.com/salesrank/salesrank/internal/sqlite"
)

// The shape of the run. The size of a snapshot (categories × entries) and how hard the
// readers read depend on the race detector: see shape_test.go.
const (
	publications = 1000
	dbReaders    = 16 // goroutines calling store.Current in a loop
	apiReaders   = 16 // goroutines querying GET /api/v1/popular in a loop

	// minDistinct is how many distinct snapshot ids each kind of reader must have checked:
	// proof that reading really overlapped publishing rather than running before or after.
	minDistinct = 100

	pollEvery = 10 * time.Millisecond // the API server's Watcher interval
	// idWait bounds how long a reader waits for the publisher to record an id it has seen:
	// a reader may see a commit before Publish has returned to the publisher.
	idWait = time.Minute // catches only a publisher that never records it
	// runTimeout bounds one backend's run, so that a hang fails the test instead of
	// stalling it until go test's own timeout (20 minutes in .ci/run, for both runs). It
	// is not a speed check: PostgreSQL's run takes ~30 s alone but took 150 s (150 ms a
	// publication) while CI's other packages shared the server and the two cores.
	runTimeout = 6 * time.Minute
)

// base is the cutoff of snapshot number 0; snapshot n's cutoff is n hours later.
var base = time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)

// store is what the test needs of a backend: Publish for the publisher, and the read side
// that both the database readers and the server's Watcher use.
type store interface {
	replica.Source
	Publish(ctx context.Context, snap *salesrank.Snapshot, known []int32, rejects []salesrank.Reject) (int64, error)
}

func TestNoMixSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: 1,000 publications under 32 readers take tens of seconds")
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "salesrank.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.Keep = 1
	run(t, db, nil)
}

func TestNoMixPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: 1,000 publications under 32 readers take tens of seconds")
	}
	dsn := postgresDSN(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // registered after the schema's drop, so it runs first
	db.Keep = 1
	db.Logger = slog.New(slog.DiscardHandler)
	run(t, db, db.Watch)
}

// productID and totalSold define snapshot n: entry rank r (1-based) of category c. Products
// are distinct within a snapshot and come from one fixed set (so Publish registers new
// products only in the first publication), rotated by n so that the product at a rank
// changes with every publication. Units carry n in their millions and fall strictly with the
// rank, so the order is the ranking order.
func productID(n, c, r int) int64 { return int64(c)*1_000 + int64((r+n)%entries) + 1 }
func totalSold(n, c, r int) int64 {
	return int64(n)*1_000_000 + int64(c)*1_000 + int64(entries+1-r)
}

// build returns unpublished snapshot number n.
func build(n int) *salesrank.Snapshot {
	s := &salesrank.Snapshot{
		Window:   salesrank.WindowEnding(base.Add(time.Duration(n) * time.Hour)),
		Interval: time.Hour,
		Top:      entries,
	}
	for c := 1; c <= categories; c++ {
		r := salesrank.Ranking{CategoryID: int32(c)}
		for rank := 1; rank <= entries; rank++ {
			r.Entries = append(r.Entries, salesrank.Entry{ProductID: productID(n, c, rank), TotalSold: totalSold(n, c, rank)})
		}
		s.Rankings = append(s.Rankings, r)
	}
	return s
}

func known() []int32 {
	ks := make([]int32, 0, categories)
	for c := 1; c <= categories; c++ {
		ks = append(ks, int32(c))
	}
	return ks
}

// published maps each snapshot id to the publication that got it: its number and the
// snapshot as Publish left it (entry ids set). The publisher fills it right after Publish
// returns; readers that see an id first wait for it.
type published struct {
	mu      sync.Mutex
	changed *sync.Cond
	byID    map[int64]publication
}

type publication struct {
	n    int
	snap *salesrank.Snapshot
}

func newPublished() *published {
	p := &published{byID: map[int64]publication{}}
	p.changed = sync.NewCond(&p.mu)
	return p
}

func (p *published) add(id int64, n int, snap *salesrank.Snapshot) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.byID[id]; ok {
		return fmt.Errorf("publication %d got id %d, already given to publication %d", n, id, prev.n)
	}
	p.byID[id] = publication{n, snap}
	p.changed.Broadcast()
	return nil
}

// wait returns the publication of id, waiting up to idWait for the publisher to record it.
func (p *published) wait(id int64) (publication, bool) {
	deadline := time.Now().Add(idWait)
	// A Cond cannot wait with a timeout: a timer broadcasts once the deadline passes.
	timer := time.AfterFunc(idWait, func() {
		p.mu.Lock()
		p.changed.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if pub, ok := p.byID[id]; ok {
			return pub, true
		}
		if !time.Now().Before(deadline) {
			return publication{}, false
		}
		p.changed.Wait()
	}
}

// tally counts what one kind of reader checked, and paces those readers.
type tally struct {
	kind string
	// tokens paces the readers: one is taken per request, and the publisher grants perPub
	// more after each publication. Readers therefore read as hard as they can while they
	// keep up, but never more than perPub times per publication, so that on a slow or busy
	// machine they cannot starve the publisher.
	tokens chan struct{}
	perPub int

	responses atomic.Int64 // responses checked
	rows      atomic.Int64 // ranking entries checked
	mixes     atomic.Int64 // responses that are not exactly one publication
	backwards atomic.Int64 // responses older than one the same reader had already seen

	mu       sync.Mutex
	distinct map[int64]bool
	examples []string // the first few mixes, described
}

func newTally(kind string, perPub int) *tally {
	t := &tally{kind: kind, tokens: make(chan struct{}, 2*perPub), perPub: perPub, distinct: map[int64]bool{}}
	t.grant()
	return t
}

// grant lets the readers make perPub more requests, up to a backlog of two publications'
// worth.
func (t *tally) grant() {
	for range t.perPub {
		select {
		case t.tokens <- struct{}{}:
		default:
			return
		}
	}
}

const maxExamples = 10

func (t *tally) seen(id int64, rows int) {
	t.responses.Add(1)
	t.rows.Add(int64(rows))
	t.mu.Lock()
	t.distinct[id] = true
	t.mu.Unlock()
}

func (t *tally) mix(format string, args ...any) {
	t.mixes.Add(1)
	t.note(format, args...)
}

func (t *tally) note(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.examples) < maxExamples {
		t.examples = append(t.examples, t.kind+": "+fmt.Sprintf(format, args...))
	}
}

func (t *tally) report(tb testing.TB) {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	tb.Logf("%-4s readers: %d responses (%d rows) checked, %d distinct snapshots, %d mixes, %d went backwards",
		t.kind, t.responses.Load(), t.rows.Load(), len(t.distinct), t.mixes.Load(), t.backwards.Load())
	for _, e := range t.examples {
		tb.Error(e)
	}
	if n := t.mixes.Load(); n > 0 {
		tb.Errorf("%s readers: %d of %d responses mixed two snapshots (or were not the publication their id names)",
			t.kind, n, t.responses.Load())
	}
	if n := t.backwards.Load(); n > 0 {
		tb.Errorf("%s readers: %d responses were older than one the same reader saw before", t.kind, n)
	}
	if len(t.distinct) < minDistinct {
		tb.Errorf("%s readers checked %d distinct snapshots, want at least %d: reading did not overlap publishing enough",
			t.kind, len(t.distinct), minDistinct)
	}
}

// run publishes 1,000 snapshots to s while 16 readers call s.Current and 16 query a server
// following s, then reports. watch, if not nil, is the store's notification feed (PostgreSQL's
// Watch): it pokes the server's Watcher, on top of polling.
func run(t *testing.T, s store, watch func(ctx context.Context, fn func(id int64)) error) {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	discard := slog.New(slog.DiscardHandler)

	var holder httpapi.Holder
	watcher := replica.NewWatcher(discard, s, &holder, pollEvery, nil)
	srv := httptest.NewServer(httpapi.NewServer(discard, &holder, nil, nil, nil))
	defer srv.Close()
	transport := &http.Transport{MaxIdleConns: apiReaders, MaxIdleConnsPerHost: apiReaders}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}

	// Everything reading or following the store stops when publishing is done (or failed).
	readCtx, stopReading := context.WithCancel(ctx)
	var background sync.WaitGroup
	defer func() {
		stopReading()
		background.Wait()
	}()
	background.Go(func() { watcher.Run(readCtx) })
	if watch != nil {
		background.Go(func() { watch(readCtx, func(int64) { watcher.Poke() }) })
	}

	pubs := newPublished()
	db, api := newTally("db", dbReadsPerPublication), newTally("api", apiReadsPerPublication)
	var (
		readers   sync.WaitGroup
		errsMu    sync.Mutex
		errs      []error // failures that are not mixes: a reader that could not read
		readerErr = func(err error) {
			errsMu.Lock()
			defer errsMu.Unlock()
			if len(errs) < maxExamples {
				errs = append(errs, err)
			}
		}
	)
	for i := range dbReaders {
		readers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			if err := readDB(readCtx, s, r, pubs, db); err != nil {
				readerErr(fmt.Errorf("db reader %d: %w", i, err))
			}
		})
	}
	for i := range apiReaders {
		readers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 2))
			if err := readAPI(readCtx, client, srv.URL, r, pubs, api); err != nil {
				readerErr(fmt.Errorf("api reader %d: %w", i, err))
			}
		})
	}

	start := time.Now()
	var pubErr error
	for n := 1; n <= publications && pubErr == nil; n++ {
		snap := build(n)
		var id int64
		id, pubErr = s.Publish(ctx, snap, known(), nil)
		switch {
		case pubErr != nil:
			pubErr = fmt.Errorf("publication %d: %w", n, pubErr)
		case id != snap.ID:
			pubErr = fmt.Errorf("publication %d: Publish returned id %d but set snap.ID %d", n, id, snap.ID)
		default:
			pubErr = pubs.add(id, n, snap)
		}
		if watch == nil {
			// SQLite announces nothing: poke the server as PostgreSQL's NOTIFY does, so that it
			// follows every publication however fast they come (polling alone would see one
			// in ten at a millisecond each); the poll stays the fallback.
			watcher.Poke()
		}
		db.grant()
		api.grant()
	}
	elapsed := time.Since(start)
	stopReading()
	readers.Wait()

	t.Logf("%d publications in %v (%.1f ms each), %d + %d readers",
		publications, elapsed.Round(time.Millisecond), float64(elapsed.Microseconds())/publications/1000, dbReaders, apiReaders)
	db.report(t)
	api.report(t)
	if pubErr != nil {
		t.Error(pubErr)
	}
	for _, err := range errs {
		t.Error(err)
	}
}

// next waits for the reader's next turn: a token from tl, then a random pause below
// readerPause so that requests land at every point of a publication, not only right after
// one. It reports false once ctx is done.
func next(ctx context.Context, r *rand.Rand, tl *tally) bool {
	select {
	case <-ctx.Done():
		return false
	case <-tl.tokens:
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Duration(r.Int64N(int64(readerPause)))):
		return true
	}
}

// readDB loads the current snapshot in a loop until ctx is done, checking each whole.
func readDB(ctx context.Context, s store, r *rand.Rand, pubs *published, tl *tally) error {
	last := 0
	for next(ctx, r, tl) {
		got, err := s.Current(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, salesrank.ErrNoSnapshot):
			continue // before the first publication
		case err != nil:
			return fmt.Errorf("Current: %w", err)
		}
		pub, ok := pubs.wait(got.ID)
		if !ok {
			tl.mix("snapshot %d: no publication got this id (waited %v)", got.ID, idWait)
			tl.seen(got.ID, 0)
			continue
		}
		rows := 0
		for _, r := range got.Rankings {
			rows += len(r.Entries)
		}
		tl.seen(got.ID, rows)
		if d := diffSnapshot(got, pub); d != "" {
			tl.mix("snapshot %d (publication %d): %s", got.ID, pub.n, d)
		}
		if pub.n < last {
			tl.backwards.Add(1)
			tl.note("snapshot %d (publication %d) after publication %d", got.ID, pub.n, last)
		}
		last = max(last, pub.n)
	}
	return nil
}

// diffSnapshot describes how got differs from the publication that got its id, or returns ""
// if it is exactly that publication: metadata, categories and every row.
func diffSnapshot(got *salesrank.Snapshot, pub publication) string {
	want := pub.snap
	switch {
	case !got.Window.End.Equal(want.Window.End) || !got.Window.Start.Equal(want.Window.Start):
		return fmt.Sprintf("window %v, want %v", got.Window, want.Window)
	case got.Top != want.Top || got.Interval != want.Interval:
		return fmt.Sprintf("top %d interval %v, want %d and %v", got.Top, got.Interval, want.Top, want.Interval)
	case len(got.Rankings) != len(want.Rankings):
		return fmt.Sprintf("%d categories, want %d", len(got.Rankings), len(want.Rankings))
	}
	for i, g := range got.Rankings {
		w := want.Rankings[i]
		if g.CategoryID != w.CategoryID {
			return fmt.Sprintf("category #%d is %d, want %d", i, g.CategoryID, w.CategoryID)
		}
		if d := diffEntries(g.Entries, w.Entries); d != "" {
			return fmt.Sprintf("category %d: %s", g.CategoryID, d)
		}
	}
	return ""
}

func diffEntries(got, want []salesrank.Entry) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d entries, want %d", len(got), len(want))
	}
	for j, g := range got {
		if w := want[j]; g != w {
			return fmt.Sprintf("rank %d: row %d product %d total %d, want row %d product %d total %d (%s)",
				j+1, g.ID, g.ProductID, g.TotalSold, w.ID, w.ProductID, w.TotalSold, whose(g.TotalSold))
		}
	}
	return ""
}

// whose names the publication a total belongs to, for error messages: totals carry n.
func whose(total int64) string { return fmt.Sprintf("units of publication %d", total/1_000_000) }

// apiEntry is one element of the popular endpoint's JSON array: every value is a string.
type apiEntry struct {
	ID         string `json:"id"`
	CategoryID string `json:"category_id"`
	TotalSold  string `json:"total_sold"`
	ProductID  string `json:"product_id"`
}

// readAPI queries a random category's whole ranking in a loop until ctx is done, checking
// each response against the snapshot its X-Snapshot-Id names.
func readAPI(ctx context.Context, client *http.Client, url string, r *rand.Rand, pubs *published, tl *tally) error {
	last := 0
	for next(ctx, r, tl) {
		c := 1 + r.IntN(categories)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet,
			fmt.Sprintf("%s/api/v1/popular?category_id=%d&limit=1000", url, c), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("category %d: read body: %w", c, err)
		}
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("X-Snapshot-Id") == "" {
			continue // the server has loaded no snapshot yet
		}
		if resp.StatusCode == http.StatusNotFound {
			// Every publication ranks category c, so the snapshot served lacks rows of its
			// own. A 404 names no snapshot; count it without one.
			tl.responses.Add(1)
			tl.mix("category %d: 404, but every publication ranks it: the server holds a torn snapshot", c)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("category %d: status %s: %s", c, resp.Status, body)
		}
		idText := resp.Header.Get("X-Snapshot-Id")
		id, err := strconv.ParseInt(idText, 10, 64)
		if err != nil {
			return fmt.Errorf("category %d: X-Snapshot-Id %q: %v", c, idText, err)
		}
		pub, ok := pubs.wait(id)
		if !ok {
			tl.mix("snapshot %d: no publication got this id (waited %v)", id, idWait)
			tl.seen(id, 0)
			continue
		}
		var got []apiEntry
		if err := json.Unmarshal(body, &got); err != nil {
			tl.mix("snapshot %d category %d: body is not a ranking: %v: %.200s", id, c, err, body)
			tl.seen(id, 0)
			continue
		}
		tl.seen(id, len(got))
		if d := diffResponse(resp.Header, got, c, id, pub); d != "" {
			tl.mix("snapshot %d (publication %d) category %d: %s", id, pub.n, c, d)
		}
		if pub.n < last {
			tl.backwards.Add(1)
			tl.note("snapshot %d (publication %d) after publication %d", id, pub.n, last)
		}
		last = max(last, pub.n)
	}
	return nil
}

// diffResponse describes how a response for category c naming snapshot id differs from that
// publication, or returns "" if headers and every row are exactly it.
func diffResponse(h http.Header, got []apiEntry, c int, id int64, pub publication) string {
	want := pub.snap
	if etag, w := h.Get("Etag"), `"`+strconv.FormatInt(id, 10)+`"`; etag != w {
		return fmt.Sprintf("ETag %s, want %s", etag, w)
	}
	if end, w := h.Get("X-Window-End"), want.Window.End.Format(time.RFC3339); end != w {
		return fmt.Sprintf("X-Window-End %s, want %s", end, w)
	}
	if start, w := h.Get("X-Window-Start"), want.Window.Start.Format(time.RFC3339); start != w {
		return fmt.Sprintf("X-Window-Start %s, want %s", start, w)
	}
	var wantEntries []salesrank.Entry
	for _, r := range want.Rankings {
		if int(r.CategoryID) == c {
			wantEntries = r.Entries
		}
	}
	if len(got) != len(wantEntries) {
		return fmt.Sprintf("%d entries, want %d", len(got), len(wantEntries))
	}
	cat := strconv.Itoa(c)
	for j, g := range got {
		w := wantEntries[j]
		if g.CategoryID != cat || g.ID != strconv.FormatInt(w.ID, 10) ||
			g.ProductID != strconv.FormatInt(w.ProductID, 10) || g.TotalSold != strconv.FormatInt(w.TotalSold, 10) {
			total, _ := strconv.ParseInt(g.TotalSold, 10, 64)
			return fmt.Sprintf("rank %d: %+v, want row %d category %d product %d total %d (%s)",
				j+1, g, w.ID, c, w.ProductID, w.TotalSold, whose(total))
		}
	}
	return ""
}
