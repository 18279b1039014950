// Package httpapi serves the current snapshot's rankings over HTTP: the read API
// (GET /api/v1/popular), the RPC service of package rpc, health and readiness probes, and
// a small page for people (NewServer, the public listener; routes.go lists every route);
// and, on a separate admin listener kept off the public
// network, Prometheus metrics, runtime profiles and a forced reload (NewAdmin).
//
// Every public request gets an id (X-Request-Id, the proxy's when it sent a sane one), is
// counted and timed by route pattern and status code, and is logged at debug level, or at
// warn for a 5xx: the access log at production rates is the reverse proxy's.
//
// A replica holds the current snapshot in memory (package replica), pre-rendered to JSON once
// per snapshot, and swaps it atomically when its watcher sees a new one published in the
// store. Requests never
// touch the database and, on the hot path, never encode or allocate: a page of a ranking is a
// slice of bytes rendered when the snapshot was loaded.
package httpapi
