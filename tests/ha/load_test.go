//go:build unix

package ha_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The load: loadWorkers goroutines on keep-alive connections, paced to a total target rate
// so that the load generator leaves CPU to the replicas and nginx on a small machine.
// SALESRANK_HA_RPS sets the target. The rate reached is logged, never asserted: it says
// how busy the machine was, not whether nginx and the replicas lost a request (bench/
// serve.sh and serve-mix.sh measure throughput).
const (
	loadWorkers = 16
	defaultRate = 3000
)

func envFloat(t *testing.T, name string, def float64) float64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		t.Fatalf("%s=%q: want a non-negative number", name, v)
	}
	return f
}

// pageKey names one page of one snapshot's ranking.
type pageKey struct {
	snapshot      int64
	category      int32
	limit, offset int
}

// load sends GET /api/v1/popular requests for known categories, with a mix of limits and
// offsets, through nginx until stopped. A request fails unless it gets a 200 with a
// snapshot id, a matching ETag and its own X-Request-Id back. Every distinct page's body is
// kept, per snapshot, to be checked against the snapshot's full ranking afterwards.
type load struct {
	url        string
	categories []int32
	client     *http.Client
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	began      time.Time

	sent, failed, gzipped atomic.Int64

	mu        sync.Mutex
	failures  []string // the first few
	snapshots map[int64]int64
	lastSent  map[int64]time.Time // by snapshot: when the last request it answered was sent
	cache     map[string]int64    // answers by X-Cache-Status ("" when there is none)
	pages     map[pageKey][]byte
	conflicts []string // one page of one snapshot answered with two different bodies
}

// loadReport is what a load did.
type loadReport struct {
	sent, failed, gzipped int64
	elapsed               time.Duration
	rate                  float64 // requests a second
	snapshots             map[int64]int64
	lastSent              map[int64]time.Time
	cache                 map[string]int64
	failures              []string
	conflicts             []string
	pages                 map[pageKey][]byte
}

func (r loadReport) String() string {
	return fmt.Sprintf("load: %d requests in %v (%.0f requests/s, %d workers), %d failed, %d gzipped, by snapshot %v, by X-Cache-Status %v",
		r.sent, r.elapsed.Round(time.Millisecond), r.rate, loadWorkers, r.failed, r.gzipped, r.snapshots, r.cache)
}

// startLoad starts the load against url (nginx) for categories.
func startLoad(t *testing.T, url string, categories []int32) *load {
	t.Helper()
	rate := envFloat(t, "SALESRANK_HA_RPS", defaultRate)
	if rate <= 0 {
		t.Fatalf("SALESRANK_HA_RPS must be positive")
	}
	tr := &http.Transport{
		MaxIdleConnsPerHost: loadWorkers,
		IdleConnTimeout:     time.Minute,
	}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{
		url:        url,
		categories: categories,
		client:     &http.Client{Transport: tr, Timeout: 10 * time.Second},
		cancel:     cancel,
		began:      time.Now(),
		snapshots:  map[int64]int64{},
		lastSent:   map[int64]time.Time{},
		cache:      map[string]int64{},
		pages:      map[pageKey][]byte{},
	}
	interval := time.Duration(float64(time.Second) * loadWorkers / rate)
	for w := range loadWorkers {
		l.wg.Go(func() { l.run(ctx, w, interval) })
	}
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	return l
}

// run is one worker: a request every interval, catching up after a slow one but not by
// more than a burst of 100 ms.
func (l *load) run(ctx context.Context, worker int, interval time.Duration) {
	rng := rand.New(rand.NewPCG(uint64(worker), 42))
	next := time.Now()
	for n := 0; ; n++ {
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		} else if d < -100*time.Millisecond {
			next = time.Now()
		}
		if ctx.Err() != nil {
			return
		}
		l.one(rng, loadRequestID(worker, n))
	}
}

// loadRequestID is the X-Request-Id of the load's n-th request from worker: unique in a test,
// and told apart from the test's other requests in nginx's access log (isLoadRequestID).
func loadRequestID(worker, n int) string { return fmt.Sprintf("ha-%d-%d", worker, n) }

var loadRequestIDs = regexp.MustCompile(`^ha-\d+-\d+$`)

func isLoadRequestID(id string) bool { return loadRequestIDs.MatchString(id) }

// Pages the load asks for: limit 0 means the parameter is left out (default 10).
var (
	limits  = []int{0, 10, 50, 100}
	offsets = []int{0, 0, 5, 20}
)

// pagePath is the path and query of the API request for a page, as the load asks for it:
// limit 0 and offset 0 are left out.
func pagePath(category int32, limit, offset int) string {
	u := "/api/v1/popular?category_id=" + strconv.Itoa(int(category))
	if limit != 0 {
		u += "&limit=" + strconv.Itoa(limit)
	}
	if offset != 0 {
		u += "&offset=" + strconv.Itoa(offset)
	}
	return u
}

// one sends one request and records what came back. Requests are not cancelled when the
// load stops: a request in flight is finished and counted.
func (l *load) one(rng *rand.Rand, requestID string) {
	k := pageKey{category: l.categories[rng.IntN(len(l.categories))], limit: limits[rng.IntN(len(limits))], offset: offsets[rng.IntN(len(offsets))]}
	u := l.url + pagePath(k.category, k.limit, k.offset)
	if k.limit == 0 {
		k.limit = 10
	}
	l.sent.Add(1)
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		l.fail(fmt.Sprintf("GET %s: %v", u, err))
		return
	}
	req.Header.Set("X-Request-Id", requestID)
	sent := time.Now()
	res, err := l.client.Do(req)
	if err != nil {
		l.fail(fmt.Sprintf("GET %s: %v", u, err))
		return
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		l.fail(fmt.Sprintf("GET %s: read body: %v", u, err))
		return
	}
	snap, _ := strconv.ParseInt(res.Header.Get("X-Snapshot-Id"), 10, 64)
	switch {
	case res.StatusCode != http.StatusOK:
		l.fail(fmt.Sprintf("GET %s: got %s, want 200: %.200s", u, res.Status, body))
		return
	case snap <= 0:
		l.fail(fmt.Sprintf("GET %s: got X-Snapshot-Id %q, want a snapshot id", u, res.Header.Get("X-Snapshot-Id")))
		return
	case len(res.Header.Values("X-Request-Id")) != 1 || res.Header.Get("X-Request-Id") != requestID:
		l.fail(fmt.Sprintf("GET %s: got X-Request-Id %q, want ours, %q, once", u, res.Header.Values("X-Request-Id"), requestID))
		return
	}
	// nginx's gzip weakens the replica's strong ETag; either way it names the snapshot.
	if etag, want := res.Header.Get("Etag"), strconv.Quote(strconv.FormatInt(snap, 10)); etag != want && etag != "W/"+want {
		l.fail(fmt.Sprintf("GET %s: got ETag %q with X-Snapshot-Id %d, want %s", u, etag, snap, want))
		return
	}
	if res.Uncompressed {
		l.gzipped.Add(1)
	}
	k.snapshot = snap
	l.mu.Lock()
	defer l.mu.Unlock()
	l.snapshots[snap]++
	if sent.After(l.lastSent[snap]) {
		l.lastSent[snap] = sent
	}
	l.cache[res.Header.Get("X-Cache-Status")]++
	if prev, ok := l.pages[k]; !ok {
		l.pages[k] = body
	} else if !bytes.Equal(prev, body) && len(l.conflicts) < 5 {
		l.conflicts = append(l.conflicts, fmt.Sprintf("GET %s: snapshot %d answered %.200q and %.200q", u, snap, prev, body))
	}
}

func (l *load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+msg)
	}
}

// stop stops sending, waits for the requests in flight and reports.
func (l *load) stop() loadReport {
	l.cancel()
	l.wg.Wait()
	elapsed := time.Since(l.began)
	l.mu.Lock()
	defer l.mu.Unlock()
	return loadReport{
		sent:      l.sent.Load(),
		failed:    l.failed.Load(),
		gzipped:   l.gzipped.Load(),
		elapsed:   elapsed,
		rate:      float64(l.sent.Load()) / elapsed.Seconds(),
		snapshots: l.snapshots,
		lastSent:  l.lastSent,
		cache:     l.cache,
		failures:  l.failures,
		conflicts: l.conflicts,
		pages:     l.pages,
	}
}

// check fails t unless the load lost no request and never got two bodies for one page.
func (r loadReport) check(t *testing.T) {
	t.Helper()
	t.Log(r)
	if r.failed != 0 {
		t.Errorf("got %d failed requests of %d, want 0; the first:\n%s", r.failed, r.sent, join(r.failures))
	}
	for _, c := range r.conflicts {
		t.Errorf("two bodies for one page of one snapshot: %s", c)
	}
}

func join(lines []string) string {
	var b bytes.Buffer
	for _, s := range lines {
		b.WriteString("  " + s + "\n")
	}
	return b.String()
}
