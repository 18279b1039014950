//go:build unix

package ha_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// These tests read deploy/ without running anything, so they run under -short too: the
// timings that make a rolling restart lossless are spread over three files, and a change
// to one must not silently break the rule.

func readDeploy(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// directives returns an nginx or systemd file without its comments.
func directives(s string) string {
	return regexp.MustCompile(`(?m)#.*$`).ReplaceAllString(s, "")
}

// envDuration returns a NAME=DURATION setting of the environment file example.
func envDuration(t *testing.T, env, name string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `=(\S+)$`).FindStringSubmatch(env)
	if m == nil {
		t.Fatalf("deploy/salesrank.env.example: no %s=…", name)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("deploy/salesrank.env.example: %s: %v", name, err)
	}
	return d
}

// TestDeployTimings checks the rules deploy/README.md states: systemd waits longer than a
// clean shutdown takes, the drain outlasts nginx's fail_timeout plus a restart, and the
// rolling restart script waits that fail_timeout.
func TestDeployTimings(t *testing.T) {
	env := readDeploy(t, "salesrank.env.example")
	drain, shutdown := envDuration(t, env, "SALESRANK_DRAIN"), envDuration(t, env, "SALESRANK_SHUTDOWN_TIMEOUT")
	unit := directives(readDeploy(t, "salesrank-serve@.service"))
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\d+)s$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("salesrank-serve@.service: no TimeoutStopSec=Ns")
	}
	stop, _ := time.ParseDuration(m[1] + "s")
	if stop <= drain+shutdown {
		t.Errorf("salesrank-serve@.service: TimeoutStopSec %v, want more than --drain %v + --shutdown-timeout %v", stop, drain, shutdown)
	}
	if !strings.Contains(unit, "\nKillSignal=SIGTERM\n") {
		t.Error("salesrank-serve@.service: want KillSignal=SIGTERM")
	}
	failTimeout := nginxFailTimeout(t)
	if failTimeout+time.Second > drain {
		t.Errorf("nginx fail_timeout %v + 1s for a restart > --drain %v: a rolling restart would take two replicas out", failTimeout, drain)
	}
	script := readDeploy(t, "rolling-restart.sh")
	if want := "FAIL_TIMEOUT=${FAIL_TIMEOUT:-" + strings.TrimSuffix(failTimeout.String(), "s") + "}"; !strings.Contains(script, want) {
		t.Errorf("rolling-restart.sh: want %q, nginx.conf's fail_timeout", want)
	}
}

// TestNginxConf checks the directives the HA tests depend on, so that an edit which drops
// one fails here with a reason rather than as a lost request under load, and that the
// test's configuration can be derived from the file.
func TestNginxConf(t *testing.T) {
	src := readDeploy(t, "nginx.conf")
	conf := directives(src)
	for _, want := range []struct{ re, why string }{
		{`\bkeepalive \d+;`, "idle connections to the replicas are kept"},
		{`\bproxy_http_version 1\.1;`, "keep-alive to the upstream needs HTTP/1.1"},
		{`\bproxy_set_header Connection "";`, "keep-alive to the upstream"},
		{`\bproxy_next_upstream error timeout http_502 http_503 http_504;`, "retry failed GETs on the next replica"},
		{`\bproxy_next_upstream_tries [2-9];`, "at least one retry"},
		{`\bmax_fails=\d+ fail_timeout=\d+s;`, "passive health checks"},
		{`\bproxy_set_header X-Request-Id \$\w+;`, "request ids reach the replicas"},
		{`\bgzip_types application/json`, "JSON is compressed"},
		{`\bgzip_vary on;`, "caches keep compressed and plain apart"},
		{`\bclient_max_body_size 1k;`, "the API takes no bodies"},
		{`"msec":\$msec`, "the HA tests read the access log's times"},
	} {
		if !regexp.MustCompile(want.re).MatchString(conf) {
			t.Errorf("deploy/nginx.conf: no line matching %q (%s)", want.re, want.why)
		}
	}
	if strings.Contains(conf, "non_idempotent") {
		t.Error("deploy/nginx.conf: proxy_next_upstream non_idempotent would replay requests that are not GET or HEAD")
	}

	got, err := testNginxConf(src, "/tmp/prefix", "127.0.0.1:9999", []string{"127.0.0.1:1", "127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	servers := regexp.MustCompile(`(?m)^\s*server\s+(\S+)\s+max_fails`).FindAllStringSubmatch(got, -1)
	if len(servers) != 2 || servers[0][1] != "127.0.0.1:1" || servers[1][1] != "127.0.0.1:2" {
		t.Errorf("derived upstream servers: got %v, want 127.0.0.1:1 and 127.0.0.1:2", servers)
	}
	for _, want := range []string{"listen 127.0.0.1:9999 ", "pid /tmp/prefix/nginx.pid;", "/tmp/prefix/logs/salesrank.access.log salesrank"} {
		if !strings.Contains(got, want) {
			t.Errorf("derived configuration: no %q", want)
		}
	}
	if regexp.MustCompile(`(?m)^user\b|/var/log/|/run/`).MatchString(got) {
		t.Errorf("derived configuration still names system paths or a user:\n%s", got)
	}
}
