// Package rpc serves the current snapshot's rankings as an RPC service, RankingService
// (proto/salesrank/v1/ranking.proto), over gRPC, gRPC-Web and the Connect protocol, with
// connectrpc.com/connect on plain net/http.
//
// It reads the snapshot the REST API serves (httpapi.Holder), so both answer from the same
// snapshot, swapped at the same instant, and share the listener; the history comes from the
// same store (the holder's archive). Unlike the REST API it does not pre-render: a response
// is a few hundred bytes of protobuf encoded per call.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/replica"
	salesrankv1 "github.com/salesrank/salesrank/internal/rpc/gen/salesrank/v1"
	"github.com/salesrank/salesrank/internal/rpc/gen/salesrank/v1/salesrankv1connect"
)

// The paging bounds of GetPopular: the domain's (salesrank.ValidLimit), which the REST API
// applies too, so that a client gets the same answer from either.
const (
	DefaultLimit = salesrank.DefaultLimit
	MaxLimit     = salesrank.MaxLimit
)

// maxRequestBytes bounds a request message. A GetPopularRequest is at most about 30 bytes in
// protobuf and 100 in JSON; anything near this is not a client of this service.
const maxRequestBytes = 16 << 10

// Snapshots gives the snapshot being served. httpapi.Holder is one.
type Snapshots interface {
	// Snapshot returns the snapshot being served, or nil before one is loaded. The caller
	// must not modify it.
	Snapshot() *salesrank.Snapshot
}

// NewHandler returns the RankingService handler reading snapshots from src and the path
// prefix to mount it at, for http.ServeMux.Handle; it logs store failures to logger
// (slog.Default if nil). opts come after this package's own (a request size limit), so
// they can override them.
func NewHandler(src Snapshots, logger *slog.Logger, opts ...connect.HandlerOption) (string, http.Handler) {
	opts = append([]connect.HandlerOption{connect.WithReadMaxBytes(maxRequestBytes)}, opts...)
	svc := NewService(src)
	if logger != nil {
		svc.logger = logger.With("component", "rpc")
	}
	return salesrankv1connect.NewRankingServiceHandler(svc, opts...)
}

// Service implements RankingService over the snapshot of a Snapshots.
type Service struct {
	src     Snapshots
	history *replica.History // nil: the history is unavailable
	logger  *slog.Logger
}

var _ salesrankv1connect.RankingServiceHandler = (*Service)(nil)

// NewService returns the RankingService implementation reading snapshots from src. If src
// also says where the history is read (ReplicaHistory, as httpapi.Holder does), the history
// comes from there; else the calls that need it answer Unavailable, as the REST API does
// without an archive.
func NewService(src Snapshots) *Service {
	s := &Service{src: src, logger: slog.Default().With("component", "rpc")}
	if h, ok := src.(historian); ok {
		s.history = h.ReplicaHistory()
	} else {
		s.history = &replica.History{} // no archive: every read fails
	}
	return s
}

// errNoSnapshot is what a replica that has not loaded a snapshot answers: Unavailable is the
// code clients and proxies retry on, as they do the REST API's 503. It is made per call
// because a *connect.Error carries mutable metadata.
func errNoSnapshot() error {
	return connect.NewError(connect.CodeUnavailable,
		errors.New("this replica has not loaded a published ranking yet; retry shortly"))
}

// GetPopular returns a page of one category's ranking, checking its parameters as strictly
// as the REST API does.
func (s *Service) GetPopular(ctx context.Context, req *connect.Request[salesrankv1.GetPopularRequest]) (*connect.Response[salesrankv1.GetPopularResponse], error) {
	m := req.Msg
	limit := int64(DefaultLimit)
	if err := checkCategory(m.CategoryId); err != nil {
		return nil, err
	}
	switch {
	case m.Limit != nil && !salesrank.ValidLimit(int64(*m.Limit)):
		return nil, invalid("%s; got %d", salesrank.LimitRule(), *m.Limit)
	case !salesrank.ValidOffset(m.Offset):
		return nil, invalid("offset must be 0 or more; got %d", m.Offset)
	}
	if m.Limit != nil {
		limit = int64(*m.Limit)
	}
	at, err := timestamp("at", m.At)
	if err != nil {
		return nil, err
	}
	if m.At != nil && m.WithPreviousRank {
		return nil, invalid("with_previous_rank answers for the current snapshot only, not with at")
	}
	// One load per call, so the page and its metadata come from the same snapshot.
	snap := s.src.Snapshot()
	if snap == nil {
		return nil, errNoSnapshot()
	}
	cat := *m.CategoryId
	r := snap.Ranking(cat)
	if r == nil {
		return nil, unknownCategory(cat)
	}
	id, win, entries := snap.ID, snap.Window, r.Entries
	if m.At != nil {
		if id, win, entries, err = s.history.TopListAt(ctx, snap, cat, at); err != nil {
			return nil, s.historyError(ctx, err)
		}
	}
	lo, hi := salesrank.PageBounds(len(entries), m.Offset, limit)
	page := entries[lo:hi]

	out := make([]*salesrankv1.RankedProduct, len(page))
	// One allocation for the page's messages rather than one each.
	rows := make([]salesrankv1.RankedProduct, len(page))
	for j, e := range page {
		r := &rows[j]
		r.Id = e.ID
		r.ProductId = e.ProductID
		r.TotalSold = e.TotalSold
		r.Rank = int64(lo+j) + 1
		if m.WithPreviousRank {
			if rank, ok := snap.Previous.Rank(cat, e.ProductID); ok {
				r.PreviousRank = int64(rank)
			}
		}
		out[j] = r
	}
	return connect.NewResponse(&salesrankv1.GetPopularResponse{
		SnapshotId:  id,
		WindowStart: timestamppb.New(win.Start),
		WindowEnd:   timestamppb.New(win.End),
		Entries:     out,
	}), nil
}

// GetSnapshot describes the snapshot being served.
func (s *Service) GetSnapshot(ctx context.Context, req *connect.Request[salesrankv1.GetSnapshotRequest]) (*connect.Response[salesrankv1.GetSnapshotResponse], error) {
	snap := s.src.Snapshot()
	if snap == nil {
		return nil, errNoSnapshot()
	}
	resp := &salesrankv1.GetSnapshotResponse{
		SnapshotId:    snap.ID,
		WindowStart:   timestamppb.New(snap.Window.Start),
		WindowEnd:     timestamppb.New(snap.Window.End),
		NextRefresh:   timestamppb.New(snap.NextRefresh()),
		CategoryCount: int32(len(snap.Rankings)), // at most 2^31 categories: ids are int32
		Top:           int32(min(snap.Top, math.MaxInt32)),
	}
	if !snap.PublishedAt.IsZero() {
		resp.PublishedAt = timestamppb.New(snap.PublishedAt)
	}
	return connect.NewResponse(resp), nil
}

func unknownCategory(cat int32) error {
	return connect.NewError(connect.CodeNotFound,
		fmt.Errorf("category_id %d is not a category this service knows", cat))
}

func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}
