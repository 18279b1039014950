package rpc_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/httpapi"
	"github.com/salesrank/salesrank/internal/rpc"
	"github.com/salesrank/salesrank/internal/rpc/gen/salesrank/v1/salesrankv1connect"
)

// BenchmarkGetPopular measures one page of a 100-entry ranking: the service alone, and a
// whole Connect-protocol call through the handler (decoding, encoding, headers) without the
// network, to compare with the REST API's BenchmarkPopular.
func BenchmarkGetPopular(b *testing.B) {
	snap := testSnapshot()
	long := salesrank.Ranking{CategoryID: 42}
	for p := range 100 {
		long.Entries = append(long.Entries, salesrank.Entry{ID: int64(p + 1), ProductID: int64(p + 1000), TotalSold: int64(100 - p)})
	}
	// Rankings stay sorted by category: 42 goes between 3 and 2^31−1.
	snap.Rankings = slices.Insert(snap.Rankings, 2, long)
	var h httpapi.Holder
	h.Store(snap)

	for _, limit := range []int32{10, 100} {
		req := popular(42, proto.Int32(limit), 0)
		b.Run("service/limit="+strconv.Itoa(int(limit)), func(b *testing.B) {
			svc := rpc.NewService(&h)
			creq := connect.NewRequest(req)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := svc.GetPopular(context.Background(), creq); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("connect-proto/limit="+strconv.Itoa(int(limit)), func(b *testing.B) {
			_, handler := rpc.NewHandler(&h, nil)
			body, err := proto.Marshal(req)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, salesrankv1connect.RankingServiceGetPopularProcedure, bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/proto")
				w := httptest.NewRecorder()
				handler.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
