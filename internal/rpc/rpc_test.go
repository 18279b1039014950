package rpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/httpapi"
	"github.com/salesrank/salesrank/internal/rpc"
	salesrankv1 "github.com/salesrank/salesrank/internal/rpc/gen/salesrank/v1"
	"github.com/salesrank/salesrank/internal/rpc/gen/salesrank/v1/salesrankv1connect"
)

var cutoff = time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)

// testSnapshot has category 1 with 25 products (product 1000+p at rank p+1, sold 25-p),
// category 3 known but empty, and category 2^31−1 whose ids and total are all 2^63−1.
func testSnapshot() *salesrank.Snapshot {
	long := salesrank.Ranking{CategoryID: 1}
	for p := range 25 {
		long.Entries = append(long.Entries, salesrank.Entry{ID: int64(p + 1), ProductID: int64(p + 1000), TotalSold: int64(25 - p)})
	}
	return &salesrank.Snapshot{
		ID:          math.MaxInt64,
		Window:      salesrank.WindowEnding(cutoff),
		Interval:    time.Hour,
		Top:         100,
		PublishedAt: cutoff.Add(2*time.Minute + 500*time.Millisecond),
		Rankings: []salesrank.Ranking{
			long,
			{CategoryID: 3},
			{CategoryID: salesrank.MaxCategoryID, Entries: []salesrank.Entry{
				{ID: math.MaxInt64, ProductID: math.MaxInt64, TotalSold: math.MaxInt64},
				{ID: math.MaxInt64 - 1, ProductID: 0, TotalSold: 1},
			}},
		},
	}
}

// server is one replica's handler in process: the REST API and the RPC service on one mux,
// reading one Holder, served over HTTP/1.1 and HTTP/2 without TLS as cmd/salesrank does.
type server struct {
	holder *httpapi.Holder
	url    string

	mu   sync.Mutex
	seen map[string]bool // r.Proto and r.Method of every RPC request
}

func newServer(tb testing.TB, snap *salesrank.Snapshot) *server {
	tb.Helper()
	h := new(httpapi.Holder)
	h.Store(snap)
	return serve(tb, h)
}

// serve serves h, whose archive, if any, must be set already: both APIs take it when
// they are built.
func serve(tb testing.TB, holder *httpapi.Holder) *server {
	tb.Helper()
	s := &server{holder: holder, seen: make(map[string]bool)}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	mux := http.NewServeMux()
	mux.Handle("/", httpapi.NewServer(logger, s.holder, nil, func() time.Time { return cutoff }, nil))
	path, h := rpc.NewHandler(s.holder, nil)
	mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen[r.Proto] = true
		s.seen[r.Method] = true
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetHTTP1(true)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	ts.Start()
	tb.Cleanup(ts.Close)
	s.url = ts.URL
	return s
}

// saw reports whether an RPC request came with protocol version or method v.
func (s *server) saw(v string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[v]
}

// transport is how a client reaches the server: HTTP/1.1, or HTTP/2 with prior knowledge
// (h2c), which gRPC needs.
type transport struct {
	name  string
	proto string // r.Proto the server sees
	new   func() *http.Client
}

var (
	http1 = transport{"http1", "HTTP/1.1", func() *http.Client {
		t := &http.Transport{Protocols: new(http.Protocols)}
		t.Protocols.SetHTTP1(true)
		return &http.Client{Transport: t}
	}}
	h2c = transport{"h2c", "HTTP/2.0", func() *http.Client {
		t := &http.Transport{Protocols: new(http.Protocols)}
		t.Protocols.SetUnencryptedHTTP2(true)
		return &http.Client{Transport: t}
	}}
)

// clientCase is one way to call the service. gRPC needs HTTP/2; the others run over both.
type clientCase struct {
	name      string
	transport transport
	opts      []connect.ClientOption
}

func clientCases() []clientCase {
	return []clientCase{
		{"connect/http1", http1, nil},
		{"connect/h2c", h2c, nil},
		{"connect-get/http1", http1, []connect.ClientOption{connect.WithHTTPGet()}},
		{"connect-json/http1", http1, []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc/h2c", h2c, []connect.ClientOption{connect.WithGRPC()}},
		{"grpcweb/http1", http1, []connect.ClientOption{connect.WithGRPCWeb()}},
		{"grpcweb/h2c", h2c, []connect.ClientOption{connect.WithGRPCWeb()}},
	}
}

func (s *server) client(tb testing.TB, c clientCase) salesrankv1connect.RankingServiceClient {
	tb.Helper()
	hc := c.transport.new()
	tb.Cleanup(hc.CloseIdleConnections)
	return salesrankv1connect.NewRankingServiceClient(hc, s.url, c.opts...)
}

// restEntry is one element of the REST API's JSON array.
type restEntry struct {
	ID         string `json:"id"`
	CategoryID string `json:"category_id"`
	TotalSold  string `json:"total_sold"`
	ProductID  string `json:"product_id"`
}

// rest calls GET /api/v1/popular and returns its entries and snapshot headers.
func (s *server) rest(tb testing.TB, query string) ([]restEntry, http.Header) {
	tb.Helper()
	resp, err := http.Get(s.url + "/api/v1/popular?" + query)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET ?%s: status %d", query, resp.StatusCode)
	}
	var out []restEntry
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		tb.Fatalf("GET ?%s: %v", query, err)
	}
	return out, resp.Header
}

func popular(category int32, limit *int32, offset int64) *salesrankv1.GetPopularRequest {
	return &salesrankv1.GetPopularRequest{CategoryId: proto.Int32(category), Limit: limit, Offset: offset}
}

// TestGetPopularMatchesREST checks that every protocol returns, for the same snapshot and
// page, exactly the entries the REST API returns.
func TestGetPopularMatchesREST(t *testing.T) {
	s := newServer(t, testSnapshot())
	pages := []struct {
		category int32
		limit    *int32
		offset   int64
	}{
		{1, nil, 0},               // the default page: 10
		{1, proto.Int32(1), 0},    // the best seller
		{1, proto.Int32(7), 20},   // the last page, short
		{1, proto.Int32(1000), 0}, // the whole ranking
		{1, nil, 25},              // just past the end
		{1, nil, math.MaxInt64},   // far past the end
		{3, nil, 0},               // known, no sales
		{salesrank.MaxCategoryID, nil, 0},
	}
	for _, c := range clientCases() {
		t.Run(c.name, func(t *testing.T) {
			client := s.client(t, c)
			for _, p := range pages {
				query := "category_id=" + strconv.Itoa(int(p.category)) + "&offset=" + strconv.FormatInt(p.offset, 10)
				if p.limit != nil {
					query += "&limit=" + strconv.Itoa(int(*p.limit))
				}
				resp, err := client.GetPopular(context.Background(), connect.NewRequest(popular(p.category, p.limit, p.offset)))
				if err != nil {
					t.Fatalf("GetPopular(%s): %v", query, err)
				}
				want, hdr := s.rest(t, query)
				got := resp.Msg
				if g, w := strconv.FormatInt(got.SnapshotId, 10), hdr.Get("X-Snapshot-Id"); g != w {
					t.Errorf("%s: snapshot_id %s, REST %s", query, g, w)
				}
				if g, w := got.WindowStart.AsTime().Format(time.RFC3339), hdr.Get("X-Window-Start"); g != w {
					t.Errorf("%s: window_start %s, REST %s", query, g, w)
				}
				if g, w := got.WindowEnd.AsTime().Format(time.RFC3339), hdr.Get("X-Window-End"); g != w {
					t.Errorf("%s: window_end %s, REST %s", query, g, w)
				}
				if len(got.Entries) != len(want) {
					t.Fatalf("%s: %d entries, REST %d", query, len(got.Entries), len(want))
				}
				for i, e := range got.Entries {
					g := restEntry{
						ID:         strconv.FormatInt(e.Id, 10),
						CategoryID: strconv.Itoa(int(p.category)),
						TotalSold:  strconv.FormatInt(e.TotalSold, 10),
						ProductID:  strconv.FormatInt(e.ProductId, 10),
					}
					if g != want[i] {
						t.Errorf("%s: entry %d = %+v, REST %+v", query, i, g, want[i])
					}
					if wantRank := p.offset + int64(i) + 1; e.Rank != wantRank {
						t.Errorf("%s: entry %d has rank %d, want %d", query, i, e.Rank, wantRank)
					}
				}
			}
			if !s.saw(c.transport.proto) {
				t.Errorf("the server saw no %s request", c.transport.proto)
			}
			if c.name == "connect-get/http1" && !s.saw(http.MethodGet) {
				t.Error("the server saw no GET request")
			}
		})
	}
}

// TestInt64Exact checks that ids and totals at 2^63−1 cross every protocol exactly: the
// Connect protocol's JSON must carry them as strings, not as float64.
func TestInt64Exact(t *testing.T) {
	s := newServer(t, testSnapshot())
	for _, c := range clientCases() {
		t.Run(c.name, func(t *testing.T) {
			client := s.client(t, c)
			resp, err := client.GetPopular(context.Background(), connect.NewRequest(popular(salesrank.MaxCategoryID, nil, 0)))
			if err != nil {
				t.Fatal(err)
			}
			got := resp.Msg
			want := []*salesrankv1.RankedProduct{
				{Id: math.MaxInt64, ProductId: math.MaxInt64, TotalSold: math.MaxInt64, Rank: 1},
				{Id: math.MaxInt64 - 1, ProductId: 0, TotalSold: 1, Rank: 2},
			}
			if got.SnapshotId != math.MaxInt64 {
				t.Errorf("snapshot_id = %d, want %d", got.SnapshotId, int64(math.MaxInt64))
			}
			if len(got.Entries) != len(want) {
				t.Fatalf("got %d entries, want %d", len(got.Entries), len(want))
			}
			for i := range want {
				if !proto.Equal(got.Entries[i], want[i]) {
					t.Errorf("entry %d = %v, want %v", i, got.Entries[i], want[i])
				}
			}
		})
	}
}

func TestGetSnapshot(t *testing.T) {
	snap := testSnapshot()
	s := newServer(t, snap)
	for _, c := range clientCases() {
		t.Run(c.name, func(t *testing.T) {
			resp, err := s.client(t, c).GetSnapshot(context.Background(), connect.NewRequest(&salesrankv1.GetSnapshotRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			got := resp.Msg
			if got.SnapshotId != snap.ID {
				t.Errorf("snapshot_id = %d, want %d", got.SnapshotId, snap.ID)
			}
			for _, ts := range []struct {
				name      string
				got, want time.Time
			}{
				{"window_start", got.WindowStart.AsTime(), snap.Window.Start},
				{"window_end", got.WindowEnd.AsTime(), snap.Window.End},
				{"published_at", got.PublishedAt.AsTime(), snap.PublishedAt},
				{"next_refresh", got.NextRefresh.AsTime(), cutoff.Add(time.Hour)},
			} {
				if !ts.got.Equal(ts.want) {
					t.Errorf("%s = %v, want %v", ts.name, ts.got, ts.want)
				}
			}
			if got.CategoryCount != 3 || got.Top != 100 {
				t.Errorf("category_count, top = %d, %d; want 3, 100", got.CategoryCount, got.Top)
			}
		})
	}
}

// TestErrors checks the code of every error, over every protocol, and that a message names
// the field at fault.
func TestErrors(t *testing.T) {
	loaded := newServer(t, testSnapshot())
	empty := newServer(t, nil)
	tests := []struct {
		name   string
		srv    *server
		req    *salesrankv1.GetPopularRequest
		code   connect.Code
		inText string
	}{
		{"no category", loaded, &salesrankv1.GetPopularRequest{}, connect.CodeInvalidArgument, "category_id"},
		{"negative category", loaded, popular(-1, nil, 0), connect.CodeInvalidArgument, "category_id"},
		{"limit 0", loaded, popular(1, proto.Int32(0), 0), connect.CodeInvalidArgument, "limit"},
		{"limit negative", loaded, popular(1, proto.Int32(-5), 0), connect.CodeInvalidArgument, "limit"},
		{"limit 1001", loaded, popular(1, proto.Int32(rpc.MaxLimit+1), 0), connect.CodeInvalidArgument, "limit"},
		{"offset negative", loaded, popular(1, nil, -1), connect.CodeInvalidArgument, "offset"},
		{"unknown category", loaded, popular(2, nil, 0), connect.CodeNotFound, "category_id 2"},
		{"no snapshot", empty, popular(1, nil, 0), connect.CodeUnavailable, "retry"},
		// Parameters are checked before the snapshot, as the REST API does.
		{"no snapshot, bad limit", empty, popular(1, proto.Int32(0), 0), connect.CodeInvalidArgument, "limit"},
	}
	for _, c := range clientCases() {
		t.Run(c.name, func(t *testing.T) {
			for _, tt := range tests {
				_, err := tt.srv.client(t, c).GetPopular(context.Background(), connect.NewRequest(tt.req))
				checkCode(t, tt.name, err, tt.code, tt.inText)
			}
			_, err := empty.client(t, c).GetSnapshot(context.Background(), connect.NewRequest(&salesrankv1.GetSnapshotRequest{}))
			checkCode(t, "GetSnapshot with no snapshot", err, connect.CodeUnavailable, "retry")
		})
	}
}

func checkCode(t *testing.T, name string, err error, code connect.Code, inText string) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Errorf("%s: err = %v, want a %v error", name, err, code)
		return
	}
	if ce.Code() != code {
		t.Errorf("%s: code = %v (%s), want %v", name, ce.Code(), ce.Message(), code)
	}
	if !strings.Contains(ce.Message(), inText) {
		t.Errorf("%s: message %q does not mention %q", name, ce.Message(), inText)
	}
}

// TestSwap checks that the service follows the holder: a snapshot stored while serving is
// the one the next call sees, as the REST API does.
func TestSwap(t *testing.T) {
	s := newServer(t, testSnapshot())
	client := s.client(t, clientCases()[0])
	next := testSnapshot()
	next.ID = 7
	next.Rankings = next.Rankings[1:] // category 1 is gone
	s.holder.Store(next)
	resp, err := client.GetSnapshot(context.Background(), connect.NewRequest(&salesrankv1.GetSnapshotRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Msg.SnapshotId != 7 || resp.Msg.CategoryCount != 2 {
		t.Errorf("after the swap: snapshot %d with %d categories, want 7 with 2", resp.Msg.SnapshotId, resp.Msg.CategoryCount)
	}
	_, err = client.GetPopular(context.Background(), connect.NewRequest(popular(1, nil, 0)))
	checkCode(t, "category 1 after the swap", err, connect.CodeNotFound, "category_id 1")
}
