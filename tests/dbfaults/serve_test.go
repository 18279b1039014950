//go:build unix

package dbfaults_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serial runs the tests that load the machine (replicas under load, timed recoveries) one at
// a time, while TestTwoRankers, which mostly waits for the clock, runs beside them.
var serial sync.Mutex

// runSerially makes t parallel (so that TestTwoRankers runs meanwhile) but never beside
// another test that calls it.
func runSerially(t *testing.T) {
	t.Helper()
	t.Parallel()
	serial.Lock()
	t.Cleanup(serial.Unlock)
}

// replica is one "salesrank serve" process on a loopback port.
type replica struct {
	addr string // 127.0.0.1:PORT
	p    *process
}

// startReplica starts serve on the database dsn and waits until it is ready.
func startReplica(t *testing.T, dir, name, dsn string) *replica {
	t.Helper()
	ports := freePorts(t, 2)
	r := &replica{addr: "127.0.0.1:" + strconv.Itoa(ports[0])}
	r.p = startProcess(t, name, filepath.Join(dir, name+".log"), "", "serve", "--db", dsn, "--addr", r.addr,
		"--admin-addr", "127.0.0.1:"+strconv.Itoa(ports[1]), "--poll", "1s", "--drain", "0s")
	deadline := time.Now().Add(15 * time.Second)
	for {
		if code, _ := r.readyz(); code == http.StatusOK {
			return r
		}
		if r.p.exited() {
			t.Fatalf("%s exited before it was ready: %v\n%s", name, r.p.err, r.p.tail())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 15s\n%s", name, r.p.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe is the client of the tests' own checks.
var probe = &http.Client{Timeout: 2 * time.Second}

// readyz returns the replica's /readyz status and body (0 and "" if it did not answer).
func (r *replica) readyz() (int, string) {
	res, err := probe.Get("http://" + r.addr + "/readyz")
	if err != nil {
		return 0, ""
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, "read body: " + err.Error() // counted as not ready, with the reason
	}
	return res.StatusCode, string(b)
}

// answer is what one API request got.
type answer struct {
	replica  int
	sent     time.Time
	took     time.Duration
	status   int // 0 if the request failed
	stale    bool
	snapshot int64
	err      string
}

// get asks replica i for a known category's page.
func get(client *http.Client, r *replica, i int, category int64) answer {
	a := answer{replica: i, sent: time.Now()}
	res, err := client.Get("http://" + r.addr + "/api/v1/popular?category_id=" + strconv.FormatInt(category, 10) + "&limit=20")
	if err != nil {
		a.took, a.err = time.Since(a.sent), err.Error()
		return a
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	a.took = time.Since(a.sent)
	a.status = res.StatusCode
	a.stale = res.Header.Get("X-Snapshot-Stale") == "true"
	a.snapshot, _ = strconv.ParseInt(res.Header.Get("X-Snapshot-Id"), 10, 64)
	switch {
	case err != nil:
		a.status, a.err = 0, "read body: "+err.Error()
	case res.StatusCode != http.StatusOK:
		a.err = fmt.Sprintf("%s: %.200s", res.Status, body)
	case a.snapshot <= 0:
		a.err = fmt.Sprintf("no X-Snapshot-Id (got %q)", res.Header.Get("X-Snapshot-Id"))
	case !strings.HasPrefix(string(body), "["):
		a.err = fmt.Sprintf("body %.100q is not a JSON array", body)
	}
	return a
}

// load sends API requests for known categories to the replicas in turn, paced to a total
// rate, on keep-alive connections, and keeps every answer.
type load struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	began   time.Time
	sent    atomic.Int64
	mu      sync.Mutex
	answers []answer
}

// startLoad starts workers goroutines sending rate requests a second in all.
func startLoad(t *testing.T, replicas []*replica, categories []int64, workers int, rate float64) *load {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: workers, IdleConnTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, began: time.Now()}
	interval := time.Duration(float64(time.Second) * float64(workers) / rate)
	for w := range workers {
		l.wg.Go(func() {
			next := time.Now()
			for n := w; ; n++ {
				next = next.Add(interval)
				if d := time.Until(next); d > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				} else if d < -100*time.Millisecond {
					next = time.Now() // catch up, but not by more than a short burst
				}
				if ctx.Err() != nil {
					return
				}
				i := n % len(replicas)
				a := get(client, replicas[i], i, categories[n%len(categories)])
				l.sent.Add(1)
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
			}
		})
	}
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	return l
}

// stop stops sending, waits for the requests in flight, and returns every answer and the
// rate achieved.
func (l *load) stop() ([]answer, float64) {
	l.cancel()
	l.wg.Wait()
	elapsed := time.Since(l.began)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answers, float64(len(l.answers)) / elapsed.Seconds()
}

// snapshotNow returns the answers collected so far (a copy).
func (l *load) snapshotNow() []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]answer(nil), l.answers...)
}

// checkNoPanic fails t if a process's log shows a crash.
func checkNoPanic(t *testing.T, p *process) {
	t.Helper()
	out := p.output()
	for _, bad := range []string{"panic:", "fatal error:", "goroutine 1 [", "DATA RACE"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s: log shows %q (a crash):\n%s", p.name, bad, p.tail())
			return
		}
	}
}
