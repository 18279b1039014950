package httpapi

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
)

// BenchmarkServeWire is one replica's read path as production sees it: NewHTTPServer (with
// its timeouts) on a loopback listener, keep-alive connections, and clients that write raw
// requests and read raw responses. The clients allocate nothing, so allocs/op and B/op are
// the server's own: net/http's and ours. ns/op includes the clients' syscalls; compare it
// only between runs on the same machine (benchstat).
func BenchmarkServeWire(b *testing.B) {
	ts := newTestServer(b, longSnapshot(1, 100))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := NewHTTPServer(ts.handler, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go srv.Serve(ln)
	defer srv.Close()
	req := []byte("GET /api/v1/popular?category_id=42 HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\n\r\n")

	b.SetParallelism(4)
	b.ReportAllocs()
	var mu sync.Mutex
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		r := bufio.NewReaderSize(c, 8<<10)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			if err := readResponse(r); err != nil {
				mu.Lock()
				b.Error(err)
				mu.Unlock()
				return
			}
		}
	})
}

var contentLengthPrefix = []byte("content-length: ")

// readResponse reads one 200 response with a Content-Length from r, allocating nothing.
func readResponse(r *bufio.Reader) error {
	n := -1
	for first := true; ; first = false {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first && !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
			return &wireError{string(line)}
		}
		if len(line) <= 2 {
			break
		}
		if len(line) > len(contentLengthPrefix) && bytes.EqualFold(line[:len(contentLengthPrefix)], contentLengthPrefix) {
			n, err = strconv.Atoi(string(bytes.TrimSpace(line[len(contentLengthPrefix):])))
			if err != nil {
				return err
			}
		}
	}
	if n < 0 {
		return &wireError{"no Content-Length"}
	}
	_, err := r.Discard(n)
	return err
}

type wireError struct{ s string }

func (e *wireError) Error() string { return "unexpected response: " + e.s }
