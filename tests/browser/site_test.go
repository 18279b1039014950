package browser_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/salesrank/salesrank/internal/testing/testbin"
)

// hangBound is how long any one step may take before the test calls it a hang: generous,
// since it only turns a hang into a failure and never judges speed.
const hangBound = 2 * time.Minute

// site is a running "salesrank serve" over a database the tests ranked.
type site struct {
	base   string    // http://127.0.0.1:PORT
	cutoff time.Time // the latest snapshot's cutoff
	cmd    *exec.Cmd
	done   chan struct{} // closed once the process has exited
	log    testbin.Buffer
}

// siteSet is the sites, built once per test binary and shared: the tests only read from
// them.
type siteSet struct {
	once sync.Once
	dir  string
	// fresh is ranked at every hour of the last 26 up to the current hour, so its latest
	// snapshot is current, has a full rank 24 hours earlier, and 27 snapshots of history.
	// stale's only snapshot is three hours old: the next was due two hours ago.
	fresh, stale *site
	err          error
}

var sites siteSet

// freshSite returns the site whose snapshot is current, building both on first use.
func freshSite(t *testing.T) *site {
	t.Helper()
	buildSites(t)
	return sites.fresh
}

// staleSite returns the site whose snapshot is overdue.
func staleSite(t *testing.T) *site {
	t.Helper()
	buildSites(t)
	return sites.stale
}

func buildSites(t *testing.T) {
	t.Helper()
	need(t)
	sites.once.Do(func() { sites.err = setUpSites() })
	if sites.err != nil {
		t.Fatalf("set up the served databases: %v", sites.err)
	}
}

func setUpSites() error {
	dir, err := os.MkdirTemp("", "salesrank-browser-")
	if err != nil {
		return err
	}
	sites.dir = dir
	logs := filepath.Join(dir, "logs")
	now := time.Now().UTC().Truncate(time.Hour)
	// 300 000 sales over nine days in 30 categories: every category has more than its top
	// 100, the last 24 hours have movers, and products sit in up to three categories.
	if _, err := run("gen", "--out", logs, "--end", now.Format(time.RFC3339), "--days", "9",
		"--lines", "300000", "--categories", "30", "--products", "20000", "--seed", "10"); err != nil {
		return err
	}
	fresh := filepath.Join(dir, "fresh.db")
	if err := writeSales(logs, "part-returner.tsv", now.Add(-7*24*time.Hour-13*time.Hour), returner, 180, 1); err != nil {
		return err
	}
	for h := 26; h >= 0; h-- {
		// Each object is written before the first run whose window holds its sales, as it
		// would arrive: a run counts no sale at or after its cutoff.
		var err error
		switch h {
		case 4:
			err = writeSales(logs, "part-returner.tsv", now.Add(-5*time.Hour), returner, 180, 1)
		case 0:
			err = writeSales(logs, "part-newcomer.tsv", now.Add(-time.Hour), newcomer, 300, 1, 2)
		}
		if err != nil {
			return err
		}
		if _, err := run("rank", "--logs", logs, "--db", "sqlite:"+fresh, "--once", "--now", now.Add(-time.Duration(h)*time.Hour).Format(time.RFC3339)); err != nil {
			return err
		}
	}
	stale := filepath.Join(dir, "stale.db")
	if _, err := run("rank", "--logs", logs, "--db", "sqlite:"+stale, "--once", "--now", now.Add(-3*time.Hour).Format(time.RFC3339)); err != nil {
		return err
	}
	if sites.fresh, err = serve(fresh, now, true); err != nil {
		return err
	}
	sites.stale, err = serve(stale, now.Add(-3*time.Hour), true)
	return err
}

// Two products are added to the generated logs, in categories the tests know:
//
//   - newcomer first sells in the last hour before the latest cutoff, enough to rank first
//     in categories 1 and 2: "new" in the top lists and the movers, with a gap before its
//     one point in the history. Its id is 2^53+1, which a JavaScript Number cannot hold:
//     the page shows it exactly only if it never converts ids to numbers.
//   - returner sells a burst in category 1 just inside the window of the first ranked
//     cutoff, which leaves the window 13 hours before the latest, and another 5 hours
//     before it: a line with a gap in the middle of the history chart.
const (
	newcomer = "9007199254740993"
	returner = "9007199254740995"
)

// writeSales adds a log object named name to the hour of logs that starts at hour: five
// sales of units each of product in each of categories, from half past the hour, as a
// late-arriving API host's object would be.
func writeSales(logs, name string, hour time.Time, product string, units int, categories ...int) error {
	dir := filepath.Join(logs, hour.UTC().Format("2006/01/02/15"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	for i := range 5 {
		ts := hour.Add(30*time.Minute + time.Duration(i)*time.Second).Unix()
		for _, c := range categories {
			fmt.Fprintf(&b, "%d\t%s\t%d\t%d\t10.00\t1\t%d\n", ts, product, c, units, i+1)
		}
	}
	return os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644)
}

// run runs the salesrank binary and returns its stdout.
func run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = testbin.CleanEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("salesrank %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// serve starts "salesrank serve" on db and waits until it serves, and if ready is set
// until it is ready (has a snapshot).
func serve(db string, cutoff time.Time, ready bool) (*site, error) {
	s := &site{cutoff: cutoff, done: make(chan struct{})}
	s.cmd = exec.Command(binPath, "serve", "--db", "sqlite:"+db, "--addr", "127.0.0.1:0", "--admin-addr", "", "--drain", "0s")
	s.cmd.Env = testbin.CleanEnv()
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	// One goroutine reads stderr to its end and then waits for the process; it ends when
	// the process does, which close makes sure of.
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		found := false
		for sc.Scan() {
			line := sc.Text()
			s.log.Write([]byte(line + "\n"))
			var rec struct{ Msg, Addr string }
			if !found && json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" && rec.Addr != "" {
				found = true
				addr <- rec.Addr
			}
		}
		io.Copy(io.Discard, stderr)
		s.cmd.Wait()
	}()
	select {
	case a := <-addr:
		s.base = "http://" + a
	case <-s.done:
		return nil, fmt.Errorf("serve exited before serving; log:\n%s", s.log.String())
	case <-time.After(hangBound):
		s.close()
		return nil, fmt.Errorf("serve did not log its address within %v; log:\n%s", hangBound, s.log.String())
	}
	if !ready {
		return s, nil
	}
	for deadline := time.Now().Add(hangBound); ; {
		res, err := http.Get(s.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.close()
			return nil, fmt.Errorf("serve not ready within %v; log:\n%s", hangBound, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *site) close() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
	default:
		s.cmd.Process.Kill()
		<-s.done
	}
}

func (ss *siteSet) close() {
	ss.fresh.close()
	ss.stale.close()
	if ss.dir != "" {
		os.RemoveAll(ss.dir)
	}
}

// get fetches an API path of s, fails t unless it answers 200, decodes its JSON into v and
// returns the answer's header.
func (s *site) get(t *testing.T, path string, v any) http.Header {
	t.Helper()
	c := http.Client{Timeout: hangBound}
	res, err := c.Get(s.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", path, res.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return res.Header
}
