package rpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/replica"
	salesrankv1 "github.com/salesrank/salesrank/internal/rpc/gen/salesrank/v1"
)

// historian is a Snapshots that also says where the history is read: httpapi.Holder is
// one. It is asked, rather than passed to NewHandler, so that whatever serves a holder's
// snapshot serves its history too, with the same list of kept snapshots.
type historian interface {
	ReplicaHistory() *replica.History
}

// errStore is what a call that could not read the store's history answers. The cause,
// which may quote SQL, is logged, not sent.
func errStore() error {
	return connect.NewError(connect.CodeUnavailable,
		errors.New("the snapshot store could not be read; the replica keeps serving the snapshot it holds"))
}

// ListCategories returns a page of the current snapshot's categories with how many products
// each ranks.
func (s *Service) ListCategories(ctx context.Context, req *connect.Request[salesrankv1.ListCategoriesRequest]) (*connect.Response[salesrankv1.ListCategoriesResponse], error) {
	m := req.Msg
	limit, err := pageLimit(m.Limit, salesrank.DefaultCategoriesLimit, salesrank.MaxCategoriesLimit)
	if err != nil {
		return nil, err
	}
	if !salesrank.ValidOffset(m.Offset) {
		return nil, invalid("offset must be 0 or more; got %d", m.Offset)
	}
	snap := s.src.Snapshot()
	if snap == nil {
		return nil, errNoSnapshot()
	}
	lo, hi := salesrank.PageBounds(len(snap.Rankings), m.Offset, limit)
	out := make([]*salesrankv1.CategorySummary, hi-lo)
	rows := make([]salesrankv1.CategorySummary, hi-lo)
	for j, r := range snap.Rankings[lo:hi] {
		rows[j].CategoryId = r.CategoryID
		rows[j].ProductsRanked = int64(snap.Standings.ProductsRanked(r.CategoryID))
		out[j] = &rows[j]
	}
	return connect.NewResponse(&salesrankv1.ListCategoriesResponse{
		SnapshotId:  snap.ID,
		WindowStart: timestamppb.New(snap.Window.Start),
		WindowEnd:   timestamppb.New(snap.Window.End),
		Categories:  out,
	}), nil
}

// GetMovers returns a page of the products of a category's top list that climbed most
// since the day before.
func (s *Service) GetMovers(ctx context.Context, req *connect.Request[salesrankv1.GetMoversRequest]) (*connect.Response[salesrankv1.GetMoversResponse], error) {
	m := req.Msg
	if err := checkCategory(m.CategoryId); err != nil {
		return nil, err
	}
	limit, err := pageLimit(m.Limit, salesrank.DefaultMoversLimit, salesrank.MaxMoversLimit)
	if err != nil {
		return nil, err
	}
	if !salesrank.ValidOffset(m.Offset) {
		return nil, invalid("offset must be 0 or more; got %d", m.Offset)
	}
	snap := s.src.Snapshot()
	if snap == nil {
		return nil, errNoSnapshot()
	}
	cat := *m.CategoryId
	r := snap.Ranking(cat)
	if r == nil {
		return nil, unknownCategory(cat)
	}
	// Computed per call, where the REST API renders them with the snapshot: at most a top
	// list's worth of lookups in the day-old full ranks.
	movers := salesrank.Movers(cat, r.Entries, snap.Previous)
	lo, hi := salesrank.PageBounds(len(movers), m.Offset, limit)
	out := make([]*salesrankv1.Mover, hi-lo)
	rows := make([]salesrankv1.Mover, hi-lo)
	for j, mv := range movers[lo:hi] {
		rows[j] = salesrankv1.Mover{
			ProductId:    mv.ProductID,
			Rank:         int64(mv.Rank),
			PreviousRank: int64(mv.PreviousRank),
			TotalSold:    mv.TotalSold,
		}
		out[j] = &rows[j]
	}
	return connect.NewResponse(&salesrankv1.GetMoversResponse{
		SnapshotId:  snap.ID,
		WindowStart: timestamppb.New(snap.Window.Start),
		WindowEnd:   timestamppb.New(snap.Window.End),
		Movers:      out,
	}), nil
}

// GetProductRanks returns where a product stands in every category it sold in.
func (s *Service) GetProductRanks(ctx context.Context, req *connect.Request[salesrankv1.GetProductRanksRequest]) (*connect.Response[salesrankv1.GetProductRanksResponse], error) {
	m := req.Msg
	if err := checkProduct(m.ProductId); err != nil {
		return nil, err
	}
	snap := s.src.Snapshot()
	if snap == nil {
		return nil, errNoSnapshot()
	}
	st := snap.Standings
	if st == nil {
		return nil, connect.NewError(connect.CodeUnavailable,
			errors.New("the database holds no full ranks: run the ranker with --full-ranks (the default)"))
	}
	product := *m.ProductId
	standings := st.Product(product)
	out := make([]*salesrankv1.ProductRank, len(standings))
	rows := make([]salesrankv1.ProductRank, len(standings))
	for j, p := range standings {
		rows[j] = salesrankv1.ProductRank{
			CategoryId:     p.CategoryID,
			ProductId:      product,
			Rank:           int64(p.Rank),
			TotalSold:      p.TotalSold,
			ProductsRanked: int64(p.ProductsRanked),
		}
		out[j] = &rows[j]
	}
	// The full ranks' own snapshot and window: they may be older than the top lists'.
	return connect.NewResponse(&salesrankv1.GetProductRanksResponse{
		SnapshotId:  st.SnapshotID,
		WindowStart: timestamppb.New(st.Window.Start),
		WindowEnd:   timestamppb.New(st.Window.End),
		Ranks:       out,
	}), nil
}

// GetProductHistory returns where a product stood in a category's top list in every kept
// snapshot.
func (s *Service) GetProductHistory(ctx context.Context, req *connect.Request[salesrankv1.GetProductHistoryRequest]) (*connect.Response[salesrankv1.GetProductHistoryResponse], error) {
	m := req.Msg
	if err := checkProduct(m.ProductId); err != nil {
		return nil, err
	}
	if err := checkCategory(m.CategoryId); err != nil {
		return nil, err
	}
	since, err := timestamp("since", m.Since)
	if err != nil {
		return nil, err
	}
	snap := s.src.Snapshot()
	if snap == nil {
		return nil, errNoSnapshot()
	}
	cat, product := *m.CategoryId, *m.ProductId
	if snap.Ranking(cat) == nil {
		return nil, unknownCategory(cat)
	}
	points, err := s.history.ProductHistory(ctx, snap, cat, product, since)
	if err != nil {
		return nil, s.historyError(ctx, err)
	}
	out := make([]*salesrankv1.HistoryPoint, len(points))
	rows := make([]salesrankv1.HistoryPoint, len(points))
	for j, p := range points {
		rows[j].Cutoff = timestamppb.New(p.Cutoff)
		if p.Rank > 0 {
			rows[j].Rank, rows[j].TotalSold = int64(p.Rank), p.TotalSold
		}
		out[j] = &rows[j]
	}
	return connect.NewResponse(&salesrankv1.GetProductHistoryResponse{
		SnapshotId:  snap.ID,
		WindowStart: timestamppb.New(snap.Window.Start),
		WindowEnd:   timestamppb.New(snap.Window.End),
		Points:      out,
	}), nil
}

// historyError is what a failed read of the history answers: NotFound for a time before
// the history, Unavailable for the store failing (logged, not sent).
func (s *Service) historyError(ctx context.Context, err error) error {
	if errors.Is(err, replica.ErrNotKept) {
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("%w; the history goes back as far as the ranker's --retain", err))
	}
	s.logger.ErrorContext(ctx, "read history", "err", err)
	return errStore()
}

// checkCategory checks a required category_id.
func checkCategory(c *int32) error {
	switch {
	case c == nil:
		return invalid("category_id is required: an integer from 0 to %d", salesrank.MaxCategoryID)
	case *c < 0:
		return invalid("category_id must be an integer from 0 to %d; got %d", salesrank.MaxCategoryID, *c)
	}
	return nil
}

// checkProduct checks a required product_id.
func checkProduct(p *int64) error {
	switch {
	case p == nil:
		return invalid("product_id is required: an integer from 0 to %d", int64(salesrank.MaxProductID))
	case *p < 0:
		return invalid("product_id must be an integer from 0 to %d; got %d", int64(salesrank.MaxProductID), *p)
	}
	return nil
}

// pageLimit returns limit, def when unset, checked to be 1 … max.
func pageLimit(limit *int32, def, max int64) (int64, error) {
	if limit == nil {
		return def, nil
	}
	if n := int64(*limit); n < 1 || n > max {
		return 0, invalid("limit must be an integer from 1 to %d (default %d); got %d", max, def, n)
	}
	return int64(*limit), nil
}

// timestamp returns the time of an optional timestamp field, zero when unset.
func timestamp(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, invalid("%s must be a valid timestamp, from year 1 to 9999; got %d s %d ns", field, ts.GetSeconds(), ts.GetNanos())
	}
	return ts.AsTime(), nil
}
