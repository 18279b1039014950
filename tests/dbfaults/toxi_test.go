//go:build unix

package dbfaults_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// toxi is one in-process toxiproxy TCP proxy on a loopback port in front of PostgreSQL.
// Faults are injected here, so the machine's PostgreSQL server is never stopped.
type toxi struct {
	t     *testing.T
	proxy *toxiproxy.Proxy
	addr  string // 127.0.0.1:PORT it listens on, the same after disable/enable
}

// newToxi starts a proxy from a free loopback port to upstream, stopped when t ends.
func newToxi(t *testing.T, upstream string) *toxi {
	t.Helper()
	// No API listener: the server value only carries the logger and (disabled) metrics
	// the proxy's links use.
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(server, "postgres", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: start: %v", err)
	}
	x := &toxi{t: t, proxy: p, addr: p.Listen}
	t.Cleanup(p.Stop)
	return x
}

// disable stops the proxy: it closes its listener and every connection through it, so
// new connections are refused, as when the database host is down.
func (x *toxi) disable() { x.proxy.Stop() }

// enable starts the proxy again on the same port.
func (x *toxi) enable() {
	x.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := x.proxy.Start()
		if err == nil || err == toxiproxy.ErrProxyAlreadyStarted {
			return
		}
		// The port may linger for a moment after the listener closed.
		if time.Now().After(deadline) {
			x.t.Fatalf("toxiproxy: start again on %s: %v", x.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// addToxic adds a toxic of type kind (latency, reset_peer, timeout, …) on stream
// (downstream: from PostgreSQL to the client; upstream: the other way) with attrs. It
// applies to the connections open now and to new ones.
func (x *toxi) addToxic(name, kind, stream string, attrs map[string]any) {
	x.t.Helper()
	b, err := json.Marshal(map[string]any{"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	if err != nil {
		x.t.Fatal(err)
	}
	if _, err := x.proxy.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
		x.t.Fatalf("toxiproxy: add toxic %s: %v", name, err)
	}
}

// removeToxic removes the toxic named name.
func (x *toxi) removeToxic(name string) {
	x.t.Helper()
	if err := x.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		x.t.Fatalf("toxiproxy: remove toxic %s: %v", name, err)
	}
}

// clear removes every toxic.
func (x *toxi) clear() { x.proxy.Toxics.ResetToxics(context.Background()) }
