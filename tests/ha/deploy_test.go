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
	if !strings.Contains(got, "proxy_cache_path /tmp/prefix/cache ") {
		t.Errorf("derived configuration: the cache folder is not under the prefix")
	}
	if regexp.MustCompile(`(?m)^user\b|/var/log/|/var/cache/|/run/`).MatchString(got) {
		t.Errorf("derived configuration still names system paths or a user:\n%s", got)
	}
}

// TestNginxCacheConf checks the response cache's directives that its guarantees rest on
// (deploy/README.md, "The response cache"), each with the reason an edit must not drop it.
func TestNginxCacheConf(t *testing.T) {
	conf := directives(readDeploy(t, "nginx.conf"))
	cached := regexp.MustCompile(`(?s)\blocation \^~ (/\S*) \{(.*?)\n        \}`).FindStringSubmatch(conf)
	rest := regexp.MustCompile(`(?s)\blocation / \{(.*?)\n        \}`).FindStringSubmatch(conf)
	if cached == nil || rest == nil {
		t.Fatal("deploy/nginx.conf: want a location ^~ PREFIX (cached) and a location / (not cached)")
	}
	if regexp.MustCompile(`\blocation ~\*? `).MatchString(conf) {
		t.Error("deploy/nginx.conf: a regular-expression location runs for every request (and could take the cached paths from a prefix without ^~)")
	}
	// The cached location's paths: every answer from a snapshot, and nothing about one
	// replica or about now. Other paths under the prefix are the replicas' 404s, which are
	// never cached (only 200s are, below).
	prefix := cached[1]
	for _, p := range []string{"/api/v1/popular", "/api/v1/movers", "/api/v1/categories", "/api/v1/products/42/ranks", "/api/v1/products/42/history"} {
		if !strings.HasPrefix(p, prefix) {
			t.Errorf("deploy/nginx.conf: the cached location %s leaves out %s", prefix, p)
		}
	}
	for _, p := range []string{"/", "/readyz", "/healthz", "/metrics", "/x/api/v1/popular", "/salesrank.v1.RankingService/GetPopular"} {
		if strings.HasPrefix(p, prefix) {
			t.Errorf("deploy/nginx.conf: the cached location %s takes %s", prefix, p)
		}
	}
	cached = cached[1:]
	for _, want := range []struct{ re, why string }{
		{`\bproxy_cache salesrank_cache;`, "the answers from a snapshot are cached"},
		{`\bproxy_cache_key \$request_uri;`, "the key is the path and query the replica receives: every parameter"},
		{`\bproxy_cache_valid 200 [1-5]s;`, "a short lifetime bounds how long a published snapshot waits"},
		{`\bproxy_ignore_headers Cache-Control Expires`, "the replicas' max-age (to the next refresh) must not set the lifetime"},
		{`\bproxy_cache_lock on;`, "one fetch per key at a time"},
		{`\bproxy_cache_use_stale updating error timeout http_502 http_503 http_504;`, "stale answers while one refreshes and while every replica is down"},
		{`\bproxy_set_header Accept-Encoding "";`, "a cached answer is an identity body for every client"},
		{`\bproxy_set_header X-Request-Id \$\w+;`, "request ids reach the replicas from this location too"},
	} {
		if !regexp.MustCompile(want.re).MatchString(cached[1]) {
			t.Errorf("deploy/nginx.conf, the cached location: no line matching %q (%s)", want.re, want.why)
		}
	}
	for _, line := range regexp.MustCompile(`(?m)^\s*proxy_cache_valid\b.*$`).FindAllString(conf, -1) {
		if !regexp.MustCompile(`^\s*proxy_cache_valid 200 \d+s;$`).MatchString(line) {
			t.Errorf("deploy/nginx.conf: %q; only 200s may be cached (a kept 404 would hide a new category, a kept 5xx an outage's end)", strings.TrimSpace(line))
		}
	}
	for _, bad := range []struct{ re, why string }{
		{`\bproxy_cache_revalidate on;`, "on a 304 nginx keeps the stored header fields, so Cache-Control, X-Snapshot-Age and X-Snapshot-Stale would stay as first fetched for the snapshot's whole life"},
		{`\bproxy_cache_background_update on;`, "answers that set off a refresh would be reported STALE like those served while every replica is down, which must be marked"},
	} {
		if regexp.MustCompile(bad.re).MatchString(conf) {
			t.Errorf("deploy/nginx.conf: %q: %s", bad.re, bad.why)
		}
	}
	if regexp.MustCompile(`\bproxy_cache\s+[a-z_]+;`).MatchString(rest[1]) && !strings.Contains(rest[1], "proxy_cache off;") {
		t.Error("deploy/nginx.conf: location / must not be cached (/readyz, /healthz, the page, RPC)")
	}
	for _, want := range []struct{ re, why string }{
		{`\badd_header X-Cache-Status \$upstream_cache_status always;`, "tests and operators see hits"},
		{`\bmap \$upstream_cache_status \$salesrank_stale \{\s*STALE\s+\$salesrank_stale_unmarked;\s*default "";\s*\}`, "answers served from the cache while no replica answers are marked stale"},
		{`\bmap \$upstream_http_x_snapshot_stale \$salesrank_stale_unmarked \{\s*""\s+true;\s*default "";\s*\}`, "nginx marks a stale answer only if the replica did not: one mark, never two"},
		{`\badd_header X-Snapshot-Stale \$salesrank_stale always;`, "the stale mark reaches clients"},
		{`\berror_page 502 503 504 = @salesrank_unavailable;`, "with no replica and nothing cached, clients get a problem answer, not nginx's HTML page"},
		{`(?s)location @salesrank_unavailable \{[^}]*default_type application/problem\+json;[^}]*return 503 '\{`, "the problem answer"},
	} {
		if !regexp.MustCompile(want.re).MatchString(conf) {
			t.Errorf("deploy/nginx.conf: no line matching %q (%s)", want.re, want.why)
		}
	}
}
