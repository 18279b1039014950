package cli

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDemoServesWhenItSaysSo runs the demo and, the moment it prints that it serves, asks
// what it suggests trying: the answers must be there, not a 503 while the server is still
// loading the snapshot.
func TestDemoServesWhenItSaysSo(t *testing.T) {
	if testing.Short() || raceDetector {
		t.Skip("the demo generates and ranks a sample week: seconds, or a minute under the race detector")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	log, done := startCommand(t, nil, "demo", "--dir", t.TempDir(), "--addr", addr)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(log.String(), "serving on") {
		select {
		case err := <-done:
			t.Fatalf("demo returned %v before serving; its output:\n%s", err, log.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not say it serves within 2 minutes; its output:\n%s", log.String())
		}
	}
	for _, path := range []string{"/api/v1/popular?category_id=1", "/api/v1/movers?category_id=1&limit=3", "/api/v1/products/1/ranks", "/"} {
		if code, body, _ := httpDo(t, http.MethodGet, "http://"+addr+path, ""); code != http.StatusOK {
			t.Errorf("GET %s right after the demo said it serves: %d %s", path, code, body)
		}
	}
}

func TestReadyURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080/readyz",
		":8080":          "http://127.0.0.1:8080/readyz",
		"0.0.0.0:80":     "http://127.0.0.1:80/readyz",
		"[::]:80":        "http://127.0.0.1:80/readyz",
		"[::1]:80":       "http://[::1]:80/readyz",
		"example.com:1":  "http://example.com:1/readyz",
	} {
		if got := readyURL(addr); got != want {
			t.Errorf("readyURL(%q) = %q, want %q", addr, got, want)
		}
	}
}
