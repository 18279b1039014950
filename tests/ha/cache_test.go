//go:build unix

package ha_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// The response cache of deploy/nginx.conf (the location of the API's answers from a
// snapshot), through a real nginx. TestPublishUnderLoad checks that a publication reaches
// every answer once nginx has refreshed its cache and that no answer mixes snapshots; the
// tests here check what the cache must never do (keep an error, answer for a request it
// was not asked) and what it is for when every replica is down.

// nginxCacheBound returns how long after storing an answer nginx can still answer with it
// as fresh: deploy/nginx.conf's proxy_cache_valid for 200, plus one second, because nginx
// counts the validity in whole seconds of its clock (an answer stored at 10.9 s with 1 s of
// validity is fresh until 12.0 s).
func nginxCacheBound(t *testing.T) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*proxy_cache_valid\s+200\s+(\d+)s;`).FindStringSubmatch(directives(readDeploy(t, "nginx.conf")))
	if m == nil {
		t.Fatal("deploy/nginx.conf: no proxy_cache_valid 200 Ns;")
	}
	n, _ := strconv.Atoi(m[1])
	return time.Duration(n+1) * time.Second
}

// answer is one response, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// fetch GETs url with the request id id and reads the whole answer.
func fetch(t *testing.T, url, id string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-Id", id)
	res, err := probe.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	if got := res.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != id {
		t.Errorf("GET %s: got X-Request-Id %q, want ours, %q, once", url, got, id)
	}
	return answer{status: res.StatusCode, header: res.Header, body: body}
}

// getPage GETs a page of the API and returns its entries and snapshot id; it fails t
// unless the answer is a 200 with a JSON list.
func getPage(t *testing.T, url string) ([]entry, int64) {
	t.Helper()
	a := fetch(t, url, "ha-page")
	if a.status != http.StatusOK {
		t.Fatalf("GET %s: got %d, want 200: %.300s", url, a.status, a.body)
	}
	var es []entry
	if err := json.Unmarshal(a.body, &es); err != nil {
		t.Fatalf("GET %s: %v: %.300s", url, err, a.body)
	}
	id, err := strconv.ParseInt(a.header.Get("X-Snapshot-Id"), 10, 64)
	if err != nil {
		t.Fatalf("GET %s: X-Snapshot-Id %q: %v", url, a.header.Get("X-Snapshot-Id"), err)
	}
	return es, id
}

// checkProblem fails t unless a is an application/problem+json answer with status want.
func checkProblem(t *testing.T, what string, a answer, want int) {
	t.Helper()
	var p struct {
		Status int    `json:"status"`
		Title  string `json:"title"`
	}
	if a.status != want || a.header.Get("Content-Type") != "application/problem+json" ||
		json.Unmarshal(a.body, &p) != nil || p.Status != want || p.Title == "" {
		t.Errorf("%s: got %d %q %.300q, want a %d application/problem+json with its status and a title",
			what, a.status, a.header.Get("Content-Type"), a.body, want)
	}
}

// checkErrorNotCached asks base+path twice through nginx and fails t unless both answers
// are the problem want, neither from the cache.
func checkErrorNotCached(t *testing.T, base, path string, want int) {
	t.Helper()
	for i := range 2 {
		a := fetch(t, base+path, fmt.Sprintf("ha-bad-%d", i))
		checkProblem(t, "GET "+path, a, want)
		if s := a.header.Get("X-Cache-Status"); s == "HIT" || s == "STALE" {
			t.Errorf("GET %s: answered from the cache (X-Cache-Status %s)", path, s)
		}
	}
}

// TestCacheErrorsNotCached: nginx never answers an error from its cache, and its key tells
// apart every request the replicas tell apart. A category unknown to the first snapshot is
// a 404 however often it is asked; the moment every replica serves a snapshot that knows
// it, nginx answers it with 200 — without waiting for any cache lifetime, since no 404 was
// kept. Bad requests for a category whose page is cached (a repeated, unknown or malformed
// parameter) stay 400s; pages that differ only in limit or offset get their own answers;
// /readyz and /healthz are not cached at all.
func TestCacheErrorsNotCached(t *testing.T) {
	forEachBackend(t, testCacheErrorsNotCached)
}

func testCacheErrorsNotCached(t *testing.T, dsn string) {
	began := time.Now()
	d, _ := newDataset(t, t.TempDir(), dsn)
	c := newCluster(t, d.dsn, 2)
	snapA, fullA := rankings(t, c.replicas[0])
	newCat := int32(numCategories + 1)
	if _, ok := fullA[newCat]; ok {
		t.Fatalf("category %d is in the first snapshot; the test needs one that is not", newCat)
	}

	// An unknown category: a 404 every time, none of them from the cache.
	for i := range 3 {
		a := fetch(t, c.url+pagePath(newCat, 0, 0), fmt.Sprintf("ha-unknown-%d", i))
		checkProblem(t, fmt.Sprintf("unknown category %d, request %d", newCat, i), a, http.StatusNotFound)
		if s := a.header.Get("X-Cache-Status"); s == "HIT" || s == "STALE" || s == "UPDATING" {
			t.Errorf("unknown category %d, request %d: X-Cache-Status %s; a 404 must never be answered from the cache", newCat, i, s)
		}
	}

	// A cached page, then requests that differ from it: each is answered for itself.
	cat := slices.Min(slices.Collect(maps.Keys(fullA)))
	base := pagePath(cat, 0, 0)
	fetch(t, c.url+base, "ha-warm")
	if a := fetch(t, c.url+base, "ha-warm-again"); a.status != http.StatusOK || a.header.Get("X-Cache-Status") != "HIT" {
		t.Fatalf("GET %s twice: got %d with X-Cache-Status %q the second time, want 200 from the cache (HIT)", base, a.status, a.header.Get("X-Cache-Status"))
	}
	for _, q := range []string{
		base + "&category_id=" + strconv.Itoa(int(cat)), // repeated
		base + "&at=yesterday",                          // not an RFC 3339 time
		base + "&since=" + cutoffA,                      // unknown
		base + "&limit=0",                               // out of range
		base + "&limit=x",                               // malformed
	} {
		checkErrorNotCached(t, c.url, q, http.StatusBadRequest)
	}
	for _, p := range []struct{ limit, offset int }{{3, 0}, {4, 0}, {3, 1}, {4, 1}} {
		for i := range 2 { // the second from the cache
			got, id := getPage(t, c.url+pagePath(cat, p.limit, p.offset))
			if want := page(fullA[cat], p.offset, p.limit); id != snapA || !slices.Equal(got, want) {
				t.Errorf("category %d, limit %d, offset %d, request %d: got snapshot %d, %v; want %d, %v", cat, p.limit, p.offset, i, id, got, snapA, want)
			}
		}
	}
	for _, path := range []string{"/readyz", "/healthz"} {
		for i := range 2 {
			a := fetch(t, c.url+path, fmt.Sprintf("ha-probe-%d", i))
			if a.status != http.StatusOK || a.header.Get("X-Cache-Status") != "" {
				t.Errorf("GET %s through nginx: got %d with X-Cache-Status %q, want 200 and no cache involved", path, a.status, a.header.Get("X-Cache-Status"))
			}
		}
	}

	// The category appears in the next snapshot.
	d.addCategory(t, newCat)
	d.addHours(t)
	sumB := d.publish(t)
	waitSnapshot(t, c, sumB.SnapshotID)
	got, id := getPage(t, c.url+pagePath(newCat, 0, 0))
	if id != sumB.SnapshotID || len(got) != 1 || got[0].CategoryID != strconv.Itoa(int(newCat)) {
		t.Errorf("category %d once every replica serves snapshot %d: got snapshot %d, %v; want its one product", newCat, sumB.SnapshotID, id, got)
	}
	t.Logf("%s took %v", t.Name(), time.Since(began).Round(time.Millisecond))
}

// waitSnapshot waits until every replica serves snapshot id; the deadline only catches a
// replica that never does.
func waitSnapshot(t *testing.T, c *cluster, id int64) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for _, rep := range c.replicas {
		for rep.snapshotID() != id {
			if time.Now().After(deadline) {
				t.Fatalf("replica %s: serving snapshot %d, want %d", rep.addr, rep.snapshotID(), id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestCacheReplicasDown kills every replica: the pages nginx has cached are still answered,
// the same bytes, from the cache (fresh hits while they last, then marked
// X-Snapshot-Stale: true); the others get nginx's own 503 problem answer, and /readyz a
// 503. When the replicas are back, every page is answered fresh and unmarked again.
func TestCacheReplicasDown(t *testing.T) {
	forEachBackend(t, testCacheReplicasDown)
}

func testCacheReplicasDown(t *testing.T, dsn string) {
	began := time.Now()
	d, _ := newFreshDataset(t, t.TempDir(), dsn)
	c := newCluster(t, d.dsn, 2)
	snap, full := rankings(t, c.replicas[0])
	cats := slices.Sorted(maps.Keys(full))
	cached, uncached := cats[:len(cats)/2], cats[len(cats)/2:]

	// Cache half the categories' default pages: the second request is a hit, and nothing
	// is marked stale (this week's snapshot is not overdue).
	bodies := map[int32][]byte{}
	for _, cat := range cached {
		url := c.url + pagePath(cat, 0, 0)
		first := fetch(t, url, "ha-fill")
		a := fetch(t, url, "ha-fill-again")
		if a.status != http.StatusOK || a.header.Get("X-Cache-Status") != "HIT" || string(a.body) != string(first.body) {
			t.Fatalf("category %d: got %d with X-Cache-Status %q, want 200 from the cache (HIT) with the first answer's body", cat, a.status, a.header.Get("X-Cache-Status"))
		}
		if v := a.header.Values("X-Snapshot-Stale"); len(v) != 0 {
			t.Fatalf("category %d: X-Snapshot-Stale %q before any replica is down; the test needs unmarked answers", cat, v)
		}
		bodies[cat] = a.body
	}

	c.killReplicas()
	killed := time.Now()

	// Cached pages: 200 with the cached answer, HIT until it expires, then STALE and marked.
	deadline := killed.Add(hangBound)
	for _, cat := range cached {
		url := c.url + pagePath(cat, 0, 0)
		for i := 0; ; i++ {
			a := fetch(t, url, fmt.Sprintf("ha-down-%d-%d", cat, i))
			status, stale := a.header.Get("X-Cache-Status"), a.header.Values("X-Snapshot-Stale")
			if a.status != http.StatusOK || string(a.body) != string(bodies[cat]) || a.header.Get("X-Snapshot-Id") != strconv.FormatInt(snap, 10) {
				t.Fatalf("category %d with every replica down: got %d, snapshot %q, %.200q; want 200 and the cached answer of snapshot %d",
					cat, a.status, a.header.Get("X-Snapshot-Id"), a.body, snap)
			}
			if status == "STALE" {
				if len(stale) != 1 || stale[0] != "true" {
					t.Errorf("category %d served stale from the cache: X-Snapshot-Stale %q, want [true]", cat, stale)
				}
				break
			}
			if status != "HIT" || len(stale) != 0 {
				t.Fatalf("category %d with every replica down: X-Cache-Status %q, X-Snapshot-Stale %q; want HIT unmarked until the copy expires, then STALE marked", cat, status, stale)
			}
			if time.Now().After(deadline) {
				t.Fatalf("category %d: still a fresh hit %v after every replica was killed", cat, time.Since(killed))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Never cached: nginx's own problem answer, every time.
	for _, cat := range uncached {
		for i := range 2 {
			a := fetch(t, c.url+pagePath(cat, 0, 0), fmt.Sprintf("ha-none-%d-%d", cat, i))
			checkProblem(t, fmt.Sprintf("category %d (never cached) with every replica down", cat), a, http.StatusServiceUnavailable)
			if a.header.Get("Retry-After") == "" || a.header.Get("X-Snapshot-Id") != "" {
				t.Errorf("category %d with every replica down: Retry-After %q, X-Snapshot-Id %q; want a Retry-After and no snapshot",
					cat, a.header.Get("Retry-After"), a.header.Get("X-Snapshot-Id"))
			}
		}
	}
	checkProblem(t, "/readyz with every replica down", fetch(t, c.url+"/readyz", "ha-readyz"), http.StatusServiceUnavailable)
	t.Logf("every replica down: %d cached pages answered from the cache, marked stale once expired; %d others answered 503", len(cached), len(uncached))

	// Back: once nginx tries the replicas again (after fail_timeout), every page is answered
	// fresh and unmarked.
	for _, rep := range c.replicas {
		rep.start()
	}
	for _, rep := range c.replicas {
		rep.waitReady(hangBound)
	}
	deadline = time.Now().Add(hangBound)
	for _, cat := range cats {
		url := c.url + pagePath(cat, 0, 0)
		for i := 0; ; i++ {
			a := fetch(t, url, fmt.Sprintf("ha-back-%d-%d", cat, i))
			if a.status == http.StatusOK && a.header.Get("X-Cache-Status") != "STALE" && len(a.header.Values("X-Snapshot-Stale")) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("category %d: got %d, X-Cache-Status %q, X-Snapshot-Stale %q %v after the replicas were back; want a fresh 200",
					cat, a.status, a.header.Get("X-Cache-Status"), a.header.Values("X-Snapshot-Stale"), hangBound)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("%s took %v", t.Name(), time.Since(began).Round(time.Millisecond))
}

// TestCacheStaleMarkedOnce: an answer a replica marked X-Snapshot-Stale (the fixed week's
// snapshot is long overdue) keeps that one mark from nginx's cache, as a fresh hit and,
// with every replica down, as STALE: nginx adds its own mark only to answers that have none,
// so a client never sees two. On SQLite only: what is tested is nginx's configuration.
func TestCacheStaleMarkedOnce(t *testing.T) {
	needProcesses(t)
	d, _ := newDataset(t, t.TempDir(), "")
	c := newCluster(t, d.dsn, 2)
	_, full := rankings(t, c.replicas[0])
	url := c.url + pagePath(slices.Min(slices.Collect(maps.Keys(full))), 0, 0)
	fetch(t, url, "ha-marked-fill")
	if a := fetch(t, url, "ha-marked-hit"); a.header.Get("X-Cache-Status") != "HIT" || !slices.Equal(a.header.Values("X-Snapshot-Stale"), []string{"true"}) {
		t.Fatalf("a replica-marked page from the cache: X-Cache-Status %q, X-Snapshot-Stale %q; want HIT and the replica's mark, [true]",
			a.header.Get("X-Cache-Status"), a.header.Values("X-Snapshot-Stale"))
	}
	c.killReplicas()
	killed := time.Now()
	for i := 0; ; i++ {
		a := fetch(t, url, fmt.Sprintf("ha-marked-down-%d", i))
		status, stale := a.header.Get("X-Cache-Status"), a.header.Values("X-Snapshot-Stale")
		if a.status != http.StatusOK || !slices.Equal(stale, []string{"true"}) {
			t.Fatalf("with every replica down: got %d, X-Cache-Status %q, X-Snapshot-Stale %q; want 200 and one mark, [true]", a.status, status, stale)
		}
		if status == "STALE" {
			break
		}
		if time.Since(killed) > hangBound {
			t.Fatalf("still X-Cache-Status %q %v after every replica was killed; want STALE", status, hangBound)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCacheSnapshotAnswers: the API's other answers from a snapshot (movers, categories, a
// product's ranks and history) are cached as /popular is: a second request is a hit with
// the same bytes, error answers never are, and after a publication nginx comes to answer
// every one of them from the new snapshot, each equal to what a replica answers itself.
func TestCacheSnapshotAnswers(t *testing.T) {
	forEachBackend(t, testCacheSnapshotAnswers)
}

func testCacheSnapshotAnswers(t *testing.T, dsn string) {
	began := time.Now()
	d, _ := newDataset(t, t.TempDir(), dsn)
	c := newCluster(t, d.dsn, 2)
	snapA, full := rankings(t, c.replicas[0])
	cat := slices.Min(slices.Collect(maps.Keys(full)))
	best := full[cat][0].ProductID
	paths := []string{
		fmt.Sprintf("/api/v1/movers?category_id=%d", cat),
		"/api/v1/categories",
		"/api/v1/products/" + best + "/ranks",
		fmt.Sprintf("/api/v1/products/%s/history?category_id=%d", best, cat),
	}
	for _, path := range paths {
		first := fetch(t, c.url+path, "ha-answer")
		again := fetch(t, c.url+path, "ha-answer-again")
		if first.status != http.StatusOK || again.status != http.StatusOK || again.header.Get("X-Cache-Status") != "HIT" ||
			string(again.body) != string(first.body) || again.header.Get("X-Snapshot-Id") != first.header.Get("X-Snapshot-Id") {
			t.Errorf("GET %s twice: got %d, then %d with X-Cache-Status %q; want 200, then 200 from the cache (HIT) with the same answer",
				path, first.status, again.status, again.header.Get("X-Cache-Status"))
		}
	}
	for path, want := range map[string]int{
		"/api/v1/products/x/ranks":            http.StatusBadRequest, // malformed id
		"/api/v1/movers":                      http.StatusBadRequest, // no category
		"/api/v1/movers?category_id=99999":    http.StatusNotFound,   // unknown category
		"/api/v1/categories?limit=0":          http.StatusBadRequest, // out of range
		"/api/v1/products/1/history?since=no": http.StatusBadRequest, // no category, bad time
	} {
		checkErrorNotCached(t, c.url, path, want)
	}

	d.addHours(t)
	sumB := d.publish(t)
	waitSnapshot(t, c, sumB.SnapshotID)
	switched := time.Now()
	for _, path := range paths {
		for i := 0; ; i++ {
			a := fetch(t, c.url+path, fmt.Sprintf("ha-new-%d", i))
			if a.status == http.StatusOK && a.header.Get("X-Snapshot-Id") == strconv.FormatInt(sumB.SnapshotID, 10) {
				direct := fetch(t, "http://"+c.replicas[0].addr+path, "ha-direct")
				if string(a.body) != string(direct.body) {
					t.Errorf("GET %s through nginx from snapshot %d: %.300q; the replica answers %.300q", path, sumB.SnapshotID, a.body, direct.body)
				}
				t.Logf("GET %s: from snapshot %d %v after every replica served it", path, sumB.SnapshotID, time.Since(switched).Round(time.Millisecond))
				break
			}
			// Between the two, the run's top lists alone (sumB.TopListsSnapshotID).
			if id := a.header.Get("X-Snapshot-Id"); a.status != http.StatusOK || id != strconv.FormatInt(snapA, 10) && id != strconv.FormatInt(sumB.TopListsSnapshotID, 10) {
				t.Fatalf("GET %s during the switch: got %d from snapshot %q; want 200 from snapshot %d, %d or %d", path, a.status, id, snapA, sumB.TopListsSnapshotID, sumB.SnapshotID)
			}
			if time.Since(switched) > hangBound {
				t.Fatalf("GET %s: nginx still answers from snapshot %d %v after every replica served snapshot %d", path, snapA, hangBound, sumB.SnapshotID)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("%s took %v", t.Name(), time.Since(began).Round(time.Millisecond))
}
