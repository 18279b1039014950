//go:build unix

package ha_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/salesrank/salesrank/internal/testing/testbin"
)

// Replica settings in the tests. Production keeps serve's defaults (--drain 5s,
// --shutdown-timeout 10s). The drain here is shorter, to keep the rolling restart quick,
// but keeps what makes it safe: it is longer than nginx's fail_timeout (2s) plus a restart
// (TestRollingRestart checks).
const (
	poll            = time.Second
	drain           = 3 * time.Second
	shutdownTimeout = 5 * time.Second
)

// hangBound is how long a test waits for something that must happen (a replica ready, a
// switch to a new snapshot, nginx refreshing its cache, a process exiting) before it calls
// it a hang. It bounds waits, not the system: serve polls every second and nginx keeps an
// answer a second or two, so a wait anywhere near this long is a bug, not a busy machine.
const hangBound = 60 * time.Second

// cluster is N "salesrank serve" replicas on loopback ports behind one nginx, all started
// by the test and all stopped when it ends.
type cluster struct {
	t        *testing.T
	dir      string // logs of every process; the nginx prefix
	dsn      string
	replicas []*replica
	proxy    *process
	url      string // http://127.0.0.1:PORT of nginx
}

// replica is one serve process slot: a fixed port, and the process running on it now.
type replica struct {
	c     *cluster
	addr  string // 127.0.0.1:PORT
	admin string // 127.0.0.1:PORT of its admin listener (/metrics)
	runs  int    // processes started on this port so far
	p     *process
}

// process is a child process whose output goes to a file.
type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process has exited
	err  error         // Wait's result; read it after done
}

// startProcess starts name with args, its stdout and stderr going to logPath. The process
// gets its own process group, so that the cleanup can end it together with any children
// (nginx's workers) without touching anything else, and deathSig if the test binary dies.
func startProcess(t *testing.T, deathSig syscall.Signal, logPath, name string, args ...string) *process {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: exec.Command(name, args...), log: logPath, done: make(chan struct{})}
	p.cmd.Env = testbin.CleanEnv()
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = procAttr(deathSig)
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process group if the process is still running.
func (p *process) signal(sig syscall.Signal) {
	if !p.exited() {
		syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// stillRunning is what wait returns when the process has not exited in time.
const stillRunning = -2

// wait waits up to timeout for the process to exit and returns its exit code (-1 if a
// signal ended it), or stillRunning.
func (p *process) wait(timeout time.Duration) int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		return stillRunning
	}
}

// kill ends the process group with SIGKILL and waits for the process.
func (p *process) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// killReplicas sends every replica SIGKILL and fails the test if one outlives hangBound.
func (c *cluster) killReplicas() {
	c.t.Helper()
	for _, rep := range c.replicas {
		rep.p.signal(syscall.SIGKILL)
		if rep.p.wait(hangBound) == stillRunning {
			c.t.Fatalf("replica %s still running %v after SIGKILL", rep.addr, hangBound)
		}
	}
}

// tail returns the last lines of the process's output, for failure messages.
func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// newCluster starts n replicas on the database dsn and nginx in front of them, configured
// from deploy/nginx.conf, and waits until all are ready.
func newCluster(t *testing.T, dsn string, n int) *cluster {
	t.Helper()
	// Not t.TempDir: when the tests run as root, nginx's workers run as an unprivileged
	// user and must be able to reach the prefix, and t.TempDir's folders are private.
	dir, err := os.MkdirTemp("", "salesrank-ha-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir, dsn: dsn}
	ports := freePorts(t, 1+2*n)
	for i := range n {
		c.replicas = append(c.replicas, &replica{c: c,
			addr:  "127.0.0.1:" + strconv.Itoa(ports[1+2*i]),
			admin: "127.0.0.1:" + strconv.Itoa(ports[2+2*i])})
	}
	// Cleanups run last-in first-out; this one runs after every other cleanup of the test,
	// so logs are still there for them.
	t.Cleanup(func() {
		if c.proxy != nil {
			c.proxy.signal(syscall.SIGQUIT)
			if c.proxy.wait(hangBound) == stillRunning {
				c.proxy.kill()
			}
		}
		for _, r := range c.replicas {
			if r.p != nil {
				r.p.kill()
			}
		}
		if t.Failed() {
			c.dumpLogs()
		}
		os.RemoveAll(dir)
	})
	for _, r := range c.replicas {
		r.start()
	}
	for _, r := range c.replicas {
		r.waitReady(hangBound)
	}
	c.startProxy(ports[0])
	return c
}

// freePorts returns n distinct free loopback ports. They are free when returned; nothing
// else on the machine is expected to race for them in the next second.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// start starts a serve process on the replica's port.
func (r *replica) start() {
	t := r.c.t
	t.Helper()
	r.runs++
	log := filepath.Join(r.c.dir, fmt.Sprintf("serve-%s-%d.log", strings.TrimPrefix(r.addr, "127.0.0.1:"), r.runs))
	r.p = startProcess(t, syscall.SIGKILL, log, binPath, "serve", "--db", r.c.dsn, "--addr", r.addr, "--admin-addr", r.admin,
		"--poll", poll.String(), "--drain", drain.String(), "--shutdown-timeout", shutdownTimeout.String())
}

// probe is the client of the tests' own checks, straight to a replica or nginx.
var probe = &http.Client{Timeout: 2 * time.Second}

// readyz returns the replica's /readyz status and body ("" and 0 if it did not answer).
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

// waitReady waits until the replica's /readyz answers 200.
func (r *replica) waitReady(timeout time.Duration) {
	t := r.c.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if code, _ := r.readyz(); code == http.StatusOK {
			return
		}
		if r.p.exited() {
			t.Fatalf("replica %s exited before it was ready: %v\n%s", r.addr, r.p.err, r.p.tail())
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s not ready within %v\n%s", r.addr, timeout, r.p.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// snapshotID returns the id of the snapshot the replica serves, from /readyz
// ("ready: serving snapshot N"), or 0.
func (r *replica) snapshotID() int64 {
	_, body := r.readyz()
	s, ok := strings.CutPrefix(strings.TrimSpace(body), "ready: serving snapshot ")
	if !ok {
		return 0
	}
	id, _ := strconv.ParseInt(s, 10, 64)
	return id
}

// startProxy starts nginx on port with the configuration derived from deploy/nginx.conf.
func (c *cluster) startProxy(port int) {
	t := c.t
	t.Helper()
	src := readDeploy(t, "nginx.conf")
	var upstreams []string
	for _, r := range c.replicas {
		upstreams = append(upstreams, r.addr)
	}
	conf, err := testNginxConf(src, c.dir, "127.0.0.1:"+strconv.Itoa(port), upstreams)
	if err != nil {
		t.Fatalf("deploy/nginx.conf: %v", err)
	}
	for _, sub := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(c.dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	confPath := filepath.Join(c.dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(c.dir, "logs", "error.log")
	args := []string{"-p", c.dir, "-c", confPath, "-e", errorLog}
	if out, err := exec.Command(nginxPath, append(args, "-t", "-q")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t on the configuration derived from deploy/nginx.conf: %v\n%s\n%s", err, out, conf)
	}
	// SIGTERM, not SIGKILL: nginx's master then stops its workers, which SIGKILL would
	// leave running.
	c.proxy = startProcess(t, syscall.SIGTERM, filepath.Join(c.dir, "nginx.out"), nginxPath, append(args, "-g", "daemon off;")...)
	c.url = "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(hangBound)
	for {
		res, err := probe.Get(c.url + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if c.proxy.exited() || time.Now().After(deadline) {
			b, _ := os.ReadFile(errorLog)
			t.Fatalf("nginx did not answer on %s: %v\n%s\n%s", c.url, err, c.proxy.tail(), b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopProxy stops nginx gracefully (SIGQUIT: finish requests, flush the access log) and
// returns what its access log says.
func (c *cluster) stopProxy() accessStats {
	t := c.t
	t.Helper()
	c.proxy.signal(syscall.SIGQUIT)
	if code := c.proxy.wait(hangBound); code != 0 {
		t.Errorf("nginx: got exit code %d after SIGQUIT, want 0\n%s", code, c.proxy.tail())
	}
	return readAccessLog(t, filepath.Join(c.dir, "logs", "salesrank.access.log"))
}

func (c *cluster) dumpLogs() {
	t := c.t
	for _, r := range c.replicas {
		if r.p != nil {
			t.Logf("replica %s (run %d) log tail:\n%s", r.addr, r.runs, r.p.tail())
		}
	}
	if b, err := os.ReadFile(filepath.Join(c.dir, "logs", "error.log")); err == nil {
		t.Logf("nginx error.log:\n%s", b)
	}
}

// testNginxConf turns the production configuration src into one that runs as the test's
// own process: files (logs, temporary files, the cache) under prefix, listening on listen,
// proxying to upstreams. Only these lines change; every other directive is tested as
// written. It fails if a line it expects
// is missing, so the test cannot silently drift from the file.
func testNginxConf(src, prefix, listen string, upstreams []string) (string, error) {
	type edit struct {
		re   *regexp.Regexp
		repl func(m []string) string
	}
	edits := []edit{
		// The test runs nginx as whoever runs the test.
		{regexp.MustCompile(`(?m)^user\s+[^;]+;\n`), func([]string) string { return "" }},
		{regexp.MustCompile(`(?m)^pid\s+[^;]+;`), func([]string) string { return "pid " + prefix + "/nginx.pid;" }},
		{regexp.MustCompile(`(?m)^(error_log\s+)\S+`), func(m []string) string { return m[1] + prefix + "/logs/error.log" }},
		{regexp.MustCompile(`(?m)^(\s*access_log\s+)/\S+`), func(m []string) string { return m[1] + prefix + "/logs/salesrank.access.log" }},
		{regexp.MustCompile(`(?m)^(\s*listen\s+)[^\s;]+`), func(m []string) string { return m[1] + listen }},
		// The response cache's folder; its zone and every other parameter stay.
		{regexp.MustCompile(`(?m)^(\s*proxy_cache_path\s+)/\S+`), func(m []string) string { return m[1] + prefix + "/cache" }},
		// Temporary files stay under the prefix (the packaged default is /var/lib/nginx).
		{regexp.MustCompile(`(?m)^http \{\n`), func(m []string) string {
			var b strings.Builder
			b.WriteString(m[0])
			for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
				fmt.Fprintf(&b, "    %s_temp_path %s/tmp/%s;\n", d, prefix, d)
			}
			return b.String()
		}},
	}
	for _, e := range edits {
		n := len(e.re.FindAllStringIndex(src, -1))
		if n != 1 {
			return "", fmt.Errorf("want exactly one line matching %q, got %d", e.re, n)
		}
		src = e.re.ReplaceAllStringFunc(src, func(s string) string { return e.repl(e.re.FindStringSubmatch(s)) })
	}
	// The upstream's servers: one line per replica, with the parameters (max_fails,
	// fail_timeout) of the first line in the file.
	server := regexp.MustCompile(`(?m)^(\s*server\s+)\d+\.\d+\.\d+\.\d+:\d+((?:\s+[^;]*)?;)\n`)
	ms := server.FindAllStringSubmatchIndex(src, -1)
	if len(ms) == 0 {
		return "", fmt.Errorf("want server HOST:PORT lines in the upstream, got none")
	}
	for i := 1; i < len(ms); i++ {
		if ms[i][0] != ms[i-1][1] {
			return "", fmt.Errorf("want the upstream's server lines together, one after the other")
		}
	}
	first := server.FindStringSubmatch(src)
	var b strings.Builder
	for _, u := range upstreams {
		b.WriteString(first[1] + u + first[2] + "\n")
	}
	return src[:ms[0][0]] + b.String() + src[ms[len(ms)-1][1]:], nil
}

// accessStats is what nginx's access log says about the requests it proxied. nginx logs
// every request but fresh cache hits, and one in a hundred of those (deploy/nginx.conf).
type accessStats struct {
	requests int                  // the load's API requests (isLoadRequestID) logged
	hits     int                  // of which fresh hits ("cache":"HIT"), a sample
	non200   int                  // API requests nginx did not answer 200
	retried  int                  // API requests that nginx sent to more than one replica
	statuses map[string]int       // upstream_status lists of retried requests: "502, 200"
	examples []string             // a few of the failed requests' lines
	lastOK   map[string]time.Time // by replica: when it last answered an API request 200 at the first try
}

func (s accessStats) String() string {
	return fmt.Sprintf("nginx access log: %d of the load's API requests (%d of them sampled fresh hits), %d API requests not 200, %d retried on another replica %v",
		s.requests, s.hits, s.non200, s.retried, s.statuses)
}

// readAccessLog reads the JSON-lines access log that deploy/nginx.conf's log_format writes.
func readAccessLog(t *testing.T, path string) accessStats {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseAccessLog(t, b)
}

// parseAccessLog parses the whole lines of an access log; a last line that nginx has not
// finished writing is left out, so a log can be read while nginx runs.
func parseAccessLog(t *testing.T, b []byte) accessStats {
	t.Helper()
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	s := accessStats{statuses: map[string]int{}, lastOK: map[string]time.Time{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var line struct {
			Msec           float64 `json:"msec"`
			RequestID      string  `json:"request_id"`
			URI            string  `json:"uri"`
			Cache          string  `json:"cache"`
			Status         int     `json:"status"`
			UpstreamAddr   string  `json:"upstream_addr"`
			UpstreamStatus string  `json:"upstream_status"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("access log line %q: %v", sc.Text(), err)
		}
		if !strings.HasPrefix(line.URI, "/api/") {
			continue
		}
		if isLoadRequestID(line.RequestID) {
			s.requests++
			if line.Cache == "HIT" {
				s.hits++
			}
		}
		if line.Status != http.StatusOK {
			s.non200++
			if len(s.examples) < 5 {
				s.examples = append(s.examples, sc.Text())
			}
		}
		if strings.Contains(line.UpstreamAddr, ",") {
			s.retried++
			s.statuses[line.UpstreamStatus]++
		} else if line.Status == http.StatusOK {
			s.lastOK[line.UpstreamAddr] = time.UnixMilli(int64(line.Msec * 1000))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}
