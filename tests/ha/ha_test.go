//go:build unix

package ha_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// replicas is how many serve processes each test runs behind nginx. Three, not two: during
// a rolling restart one replica is stopped while the next may still be out of nginx's
// rotation for fail_timeout, and a third keeps the pool from emptying whatever the timing.
const replicas = 3

// TestKillReplica kills one replica with SIGKILL under load: the requests it held and those
// nginx sends it next fail at the TCP level, and nginx retries each on another replica
// (proxy_next_upstream error), so clients see no failure.
func TestKillReplica(t *testing.T) {
	forEachBackend(t, testKillReplica)
}

func testKillReplica(t *testing.T, dsn string) {
	began := time.Now()
	d, _ := newDataset(t, t.TempDir(), dsn)
	c := newCluster(t, d.dsn, replicas)
	_, full := rankings(t, c.replicas[0])

	l := startLoad(t, c.url, slices.Sorted(maps.Keys(full)))
	time.Sleep(2 * time.Second)
	victim := c.replicas[1]
	victim.p.signal(syscall.SIGKILL)
	if victim.p.wait(hangBound) == stillRunning {
		t.Fatalf("replica %s still running %v after SIGKILL", victim.addr, hangBound)
	}
	t.Logf("killed replica %s with SIGKILL at %v into the load", victim.addr, time.Since(l.began).Round(time.Millisecond))
	// The load's pages are in nginx's cache by now: keep it going until every one of them
	// has expired and been fetched again, so that nginx sends the dead replica its share.
	time.Sleep(nginxCacheBound(t) + time.Second)
	r := l.stop()
	r.check(t)

	a := c.stopProxy()
	t.Log(a)
	a.check(t, r)
	if a.retried == 0 {
		t.Errorf("nginx retried no request on another replica; the kill should have cost at least one attempt")
	}
	t.Logf("%s took %v", t.Name(), time.Since(began).Round(time.Millisecond))
}

// TestRollingRestart restarts every replica in turn under load, as deploy/rolling-restart.sh
// does: SIGTERM, which must make /readyz fail and the process exit 0 after draining; start
// it again; wait for /readyz; next. Clients see no failure, and every replica is back in
// nginx's rotation at the end.
func TestRollingRestart(t *testing.T) {
	forEachBackend(t, testRollingRestart)
}

func testRollingRestart(t *testing.T, dsn string) {
	began := time.Now()
	d, _ := newDataset(t, t.TempDir(), dsn)
	c := newCluster(t, d.dsn, replicas)
	_, full := rankings(t, c.replicas[0])
	failTimeout := nginxFailTimeout(t)

	if failTimeout+500*time.Millisecond >= drain {
		t.Fatalf("deploy/nginx.conf's fail_timeout %v must be shorter than the replicas' --drain %v, with a margin for a restart", failTimeout, drain)
	}

	l := startLoad(t, c.url, slices.Sorted(maps.Keys(full)))
	time.Sleep(time.Second)
	back := map[string]time.Time{} // when each replica was ready again
	for _, rep := range c.replicas {
		stop := time.Now()
		rep.p.signal(syscall.SIGTERM)
		// Draining: not ready, still alive.
		sawNotReady := false
		for !rep.p.exited() && time.Since(stop) < drain {
			if code, _ := rep.readyz(); code == http.StatusServiceUnavailable {
				sawNotReady = true
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !sawNotReady {
			t.Errorf("replica %s: /readyz never answered 503 while draining", rep.addr)
		}
		code := rep.p.wait(hangBound)
		if code != 0 {
			t.Fatalf("replica %s: got exit code %d after SIGTERM (%d: still running), want 0\n%s", rep.addr, code, stillRunning, rep.p.tail())
		}
		exited := time.Now()
		rep.start()
		rep.waitReady(hangBound)
		back[rep.addr] = time.Now()
		t.Logf("replica %s: SIGTERM → exit 0 in %v (drain %v); restarted and ready in %v",
			rep.addr, exited.Sub(stop).Round(time.Millisecond), drain, back[rep.addr].Sub(exited).Round(time.Millisecond))
	}
	// Every replica must be back in nginx's rotation: its access log (flushed every
	// second) shows an answer from each after it was ready again. nginx tries a replica
	// again after fail_timeout, and the cached pages need a replica once they expire.
	accessLog := filepath.Join(c.dir, "logs", "salesrank.access.log")
	lastRestart := back[c.replicas[len(c.replicas)-1].addr]
	for {
		b, err := os.ReadFile(accessLog)
		if err != nil {
			t.Fatal(err)
		}
		lastOK := parseAccessLog(t, b).lastOK
		var missing []string
		for _, rep := range c.replicas {
			if !lastOK[rep.addr].After(back[rep.addr]) {
				missing = append(missing, rep.addr)
			}
		}
		if len(missing) == 0 {
			t.Logf("every replica answered through nginx again; the last %v after it was ready (fail_timeout %v, cache bound %v)",
				time.Since(lastRestart).Round(time.Millisecond), failTimeout, nginxCacheBound(t))
			break
		}
		if time.Since(lastRestart) > hangBound {
			t.Errorf("replicas %v: nginx sent them no request in the %v after their restart", missing, hangBound)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := l.stop()
	r.check(t)

	a := c.stopProxy()
	t.Log(a)
	a.check(t, r)
	t.Logf("%s took %v", t.Name(), time.Since(began).Round(time.Millisecond))
}

// TestPublishUnderLoad publishes a new snapshot while the load runs through nginx and its
// response cache: every replica moves to it without a restart; once nginx has refreshed
// its cache (a sweep of every page the load asks for comes back from the new snapshot),
// no answer of the load to a request sent afterwards is from the old one; and every
// response's body is the page of the snapshot its X-Snapshot-Id names, never a mix and
// never the wrong one. How long the switch and the refresh took is logged, not asserted:
// on a busy machine any figure is the machine's, and a hang is caught by hangBound.
func TestPublishUnderLoad(t *testing.T) {
	forEachBackend(t, testPublishUnderLoad)
}

func testPublishUnderLoad(t *testing.T, dsn string) {
	began := time.Now()
	d, sumA := newDataset(t, t.TempDir(), dsn)
	c := newCluster(t, d.dsn, replicas)
	d.addHours(t) // the new objects are there; the ranker has not taken them yet
	snapA, fullA := rankings(t, c.replicas[0])
	if snapA != sumA.SnapshotID {
		t.Fatalf("replica serves snapshot %d, want %d", snapA, sumA.SnapshotID)
	}

	l := startLoad(t, c.url, slices.Sorted(maps.Keys(fullA)))
	time.Sleep(1500 * time.Millisecond)
	rankStart := time.Now()
	sumB := d.publish(t)
	rankEnd := time.Now()
	// Every replica must come to serve the new snapshot, without a restart.
	for _, rep := range c.replicas {
		for rep.snapshotID() != sumB.SnapshotID && time.Since(rankEnd) < hangBound {
			time.Sleep(5 * time.Millisecond)
		}
		if id := rep.snapshotID(); id != sumB.SnapshotID {
			t.Fatalf("replica %s: serving snapshot %d %v after rank --once published snapshot %d; want it to switch\n%s",
				rep.addr, id, time.Since(rankEnd).Round(time.Millisecond), sumB.SnapshotID, rep.p.tail())
		}
		t.Logf("replica %s: serving snapshot %d %v after rank --once exited (it ran %v)",
			rep.addr, sumB.SnapshotID, time.Since(rankEnd).Round(time.Millisecond), rankEnd.Sub(rankStart).Round(time.Millisecond))
	}
	switched := time.Now()
	snapB, fullB := rankings(t, c.replicas[0])
	if snapB != sumB.SnapshotID {
		t.Fatalf("replica serves snapshot %d after the publication, want %d", snapB, sumB.SnapshotID)
	}
	// The run published its top lists, then the same with every product's rank (snapB):
	// the first may be served, and cached, in between.
	topB := sumB.TopListsSnapshotID
	// Every replica serves only the new snapshot now, so nginx's cache can only come to
	// hold it: sweep every page the load asks for through nginx until a whole sweep is of
	// the new snapshot, each page equal to the new ranking's.
	type pageOf struct {
		cat           int32
		limit, offset int
	}
	var pages []pageOf
	for _, cat := range slices.Sorted(maps.Keys(fullA)) {
		for _, limit := range limits {
			for _, offset := range slices.Compact(slices.Sorted(slices.Values(offsets))) {
				pages = append(pages, pageOf{cat, limit, offset})
			}
		}
	}
	sweeps := 0
	var refreshed time.Time // when a whole sweep had answered from the new snapshot
	for refreshed.IsZero() {
		if time.Since(switched) > hangBound {
			t.Fatalf("nginx still answers from snapshot %d %v after every replica served snapshot %d", snapA, time.Since(switched).Round(time.Millisecond), snapB)
		}
		sweeps++
		old := 0
		for _, p := range pages {
			got, id := getPage(t, c.url+pagePath(p.cat, p.limit, p.offset))
			n := cmp.Or(p.limit, 10)
			switch {
			case id == snapA:
				old++
			case id != snapB && id != topB || !slices.Equal(got, page(fullB[p.cat], p.offset, n)):
				t.Errorf("after every replica served snapshot %d: category %d, offset %d, limit %d: got snapshot %d, %v; want %v",
					snapB, p.cat, p.offset, n, id, got, page(fullB[p.cat], p.offset, n))
			}
		}
		if old == 0 {
			refreshed = time.Now()
		}
	}
	t.Logf("nginx answered every one of %d pages from snapshot %d %v after every replica served it (%d sweeps; the cache's bound is %v)",
		len(pages), snapB, refreshed.Sub(switched).Round(time.Millisecond), sweeps, nginxCacheBound(t))
	time.Sleep(time.Second)
	r := l.stop()
	r.check(t)

	if !rankingsDiffer(fullA, fullB) {
		t.Fatalf("snapshots %d and %d rank every category alike; the test needs them to differ", snapA, snapB)
	}
	checked := checkPages(t, r.pages, map[int64]map[int32][]entry{snapA: fullA, snapB: fullB, topB: fullB})
	if r.snapshots[snapA] == 0 || r.snapshots[snapB]+r.snapshots[topB] == 0 {
		t.Errorf("got responses by snapshot %v, want some of both %d and %d", r.snapshots, snapA, snapB)
	}
	t.Logf("checked %d distinct pages (%d responses) against the full rankings of snapshots %d and %d; %d pages through nginx after every replica switched",
		checked, r.sent, snapA, snapB, sweeps*len(pages))
	// The load's own answers: none of the previous snapshot to a request sent after nginx
	// answered every page from the new one, and some straight from nginx's cache (or this
	// test would prove nothing about it).
	lastA := r.lastSent[snapA]
	if lastA.After(refreshed) {
		t.Errorf("a request sent %v after nginx answered every page from snapshot %d was answered from snapshot %d; want none",
			lastA.Sub(refreshed).Round(time.Millisecond), snapB, snapA)
	}
	t.Logf("the last answer from snapshot %d was to a request sent %v after rank --once exited, %v after this test saw every replica serve snapshot %d",
		snapA, lastA.Sub(rankEnd).Round(time.Millisecond), lastA.Sub(switched).Round(time.Millisecond), snapB)
	if r.cache["HIT"] == 0 {
		t.Errorf("no answer of the load came from nginx's cache (X-Cache-Status %v)", r.cache)
	}

	a := c.stopProxy()
	t.Log(a)
	a.check(t, r)
	t.Logf("%s took %v", t.Name(), time.Since(began).Round(time.Millisecond))
}

// checkPages fails t unless every page in pages is exactly that page of the snapshot its
// key names (one of full's), and returns how many it checked.
func checkPages(t *testing.T, pages map[pageKey][]byte, full map[int64]map[int32][]entry) int {
	t.Helper()
	checked := 0
	for k, body := range pages {
		f, ok := full[k.snapshot]
		if !ok {
			t.Errorf("a response named snapshot %d, want one of %v", k.snapshot, slices.Sorted(maps.Keys(full)))
			continue
		}
		var got []entry
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("snapshot %d, %+v: body %.200q: %v", k.snapshot, k, body, err)
			continue
		}
		if want := page(f[k.category], k.offset, k.limit); !slices.Equal(got, want) {
			t.Errorf("snapshot %d, category %d, offset %d, limit %d: got %v, want the snapshot's %v",
				k.snapshot, k.category, k.offset, k.limit, got, want)
		}
		checked++
	}
	return checked
}

// check fails t unless nginx answered every API request of the load with 200, and saw as
// many as the load sent: a request lost between the client and nginx would show here.
func (a accessStats) check(t *testing.T, r loadReport) {
	t.Helper()
	if a.non200 != 0 {
		t.Errorf("nginx answered %d API requests with another status than 200; the first:\n%s", a.non200, join(a.examples))
	}
	// Every request that was not a fresh hit has its line; fresh hits only as a sample.
	if got, want := int64(a.requests-a.hits), r.sent-r.cache["HIT"]; got != want {
		t.Errorf("nginx logged %d of the load's API requests besides fresh hits, the load sent %d that were not answered as fresh hits (X-Cache-Status %v)",
			got, want, r.cache)
	}
	if int64(a.hits) > r.cache["HIT"] {
		t.Errorf("nginx logged %d fresh hits of the load, more than the %d it answered", a.hits, r.cache["HIT"])
	}
}

// entry is one ranked product as the API sends it; every value is a JSON string.
type entry struct {
	ID         string `json:"id"`
	CategoryID string `json:"category_id"`
	TotalSold  string `json:"total_sold"`
	ProductID  string `json:"product_id"`
}

// page is what offset and limit select of a full ranking.
func page(full []entry, offset, limit int) []entry {
	if offset >= len(full) {
		return []entry{}
	}
	return full[offset:min(offset+limit, len(full))]
}

// rankings fetches every known category's whole ranking (limit=1000; the dataset ranks the
// top 100) from one replica directly, and returns them with their snapshot id. Categories
// are probed by id: 1 … numCategories, those answering 404 are not known.
func rankings(t *testing.T, rep *replica) (int64, map[int32][]entry) {
	t.Helper()
	for attempt := 0; attempt < 3; attempt++ {
		var snap int64
		out := map[int32][]entry{}
		mixed := false
		for cat := int32(1); cat <= numCategories; cat++ {
			u := fmt.Sprintf("http://%s/api/v1/popular?category_id=%d&limit=1000", rep.addr, cat)
			res, err := probe.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode == http.StatusNotFound {
				continue
			}
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: got %s, want 200 or 404: %s", u, res.Status, body)
			}
			id, err := strconv.ParseInt(res.Header.Get("X-Snapshot-Id"), 10, 64)
			if err != nil {
				t.Fatalf("GET %s: X-Snapshot-Id %q: %v", u, res.Header.Get("X-Snapshot-Id"), err)
			}
			if snap == 0 {
				snap = id
			} else if id != snap {
				mixed = true // a new snapshot arrived while fetching: start again
				break
			}
			var es []entry
			if err := json.Unmarshal(body, &es); err != nil {
				t.Fatalf("GET %s: %v", u, err)
			}
			out[cat] = es
		}
		if !mixed {
			if len(out) < numCategories/2 {
				t.Fatalf("got %d known categories of %d, want most", len(out), numCategories)
			}
			return snap, out
		}
	}
	t.Fatalf("the snapshot kept changing while its rankings were fetched")
	return 0, nil
}

// rankingsDiffer reports whether some category ranks other products or other totals in b
// than in a (row ids aside, which differ between any two snapshots).
func rankingsDiffer(a, b map[int32][]entry) bool {
	for cat, ea := range a {
		eb := b[cat]
		if len(ea) != len(eb) {
			return true
		}
		for i := range ea {
			if ea[i].ProductID != eb[i].ProductID || ea[i].TotalSold != eb[i].TotalSold {
				return true
			}
		}
	}
	return false
}

// nginxFailTimeout returns the fail_timeout of deploy/nginx.conf's upstream servers.
func nginxFailTimeout(t *testing.T) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*server\s+\S+\s.*fail_timeout=(\d+)s`).FindStringSubmatch(readDeploy(t, "nginx.conf"))
	if m == nil {
		t.Fatal("deploy/nginx.conf: no server line with fail_timeout=Ns")
	}
	n, _ := strconv.Atoi(m[1])
	return time.Duration(n) * time.Second
}
