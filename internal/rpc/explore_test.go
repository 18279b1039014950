package rpc_test

import (
	"cmp"
	"context"
	"encoding/json"
	"iter"
	"maps"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/httpapi"
	salesrankv1 "github.com/salesrank/salesrank/internal/rpc/gen/salesrank/v1"
	"github.com/salesrank/salesrank/internal/rpc/gen/salesrank/v1/salesrankv1connect"
	"github.com/salesrank/salesrank/internal/sqlite"
)

// A day of hourly publications: hours+1 snapshots, the last one at lastCutoff, so that the
// current one has the full ranks of exactly a day before to compare with; then one a minute
// later without full ranks, as a ranker that refreshes every minute publishes them hourly.
const (
	hours    = 26
	top      = 10
	newcomer = 99 // a product that sells in category 1 only in the last hour, from nowhere
)

var (
	lastCutoff    = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	currentCutoff = lastCutoff.Add(time.Minute)
	known         = []int32{1, 2, 3, 4, 5} // 5 is known but never sells
)

// world is what was published into a real SQLite store, hour by hour, and what the tests
// rank again the slow, obvious way to check the answers against.
type world struct {
	db      *sqlite.DB
	ids     []int64                   // the snapshots published, oldest first
	cutoffs []time.Time               // their cutoffs; the last is the current snapshot's
	totals  []map[salesrank.Key]int64 // units per key in the window ending at cutoffs[i]
	current *salesrank.Snapshot       // as the store loads it: with its full ranks
	holder  *httpapi.Holder           // holding current, reading history from db
	srv     *server                   // both APIs over holder
}

// newWorld publishes hours+1 hourly snapshots of random, evolving sales (ties, products in
// several categories, products falling out and coming back, one entering from nowhere at
// the top) with their full ranks into a SQLite file in a temporary folder, loads the
// current snapshot as a replica does, and serves it.
func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "salesrank.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetRetain(48 * time.Hour)

	w := &world{db: db}
	rng := rand.New(rand.NewPCG(10, 6))
	totals := map[salesrank.Key]int64{}
	for c := int32(1); c <= 4; c++ {
		for p := range int64(30) {
			if rng.IntN(10) < 7 {
				totals[salesrank.Key{CategoryID: c, ProductID: p}] = 1 + rng.Int64N(8)
			}
		}
	}
	for h := range hours + 2 {
		cut := lastCutoff.Add(time.Duration(h-hours) * time.Hour)
		if h == hours+1 {
			cut = currentCutoff
		}
		if 0 < h && h <= hours {
			// In key order, so that the seed alone makes the world: drawn in a map's
			// order, it came out different on every run and, now and then, without
			// what the tests need.
			next := map[salesrank.Key]int64{}
			for _, k := range slices.SortedFunc(maps.Keys(totals), func(a, b salesrank.Key) int {
				return cmp.Or(cmp.Compare(a.CategoryID, b.CategoryID), cmp.Compare(a.ProductID, b.ProductID))
			}) {
				if v := totals[k] + rng.Int64N(5) - 2; v > 0 {
					next[k] = v
				}
			}
			// A few keys come back or appear.
			for range 4 {
				k := salesrank.Key{CategoryID: 1 + rng.Int32N(4), ProductID: rng.Int64N(30)}
				next[k] += 1 + rng.Int64N(3)
			}
			totals = next
		}
		if h == hours {
			totals[salesrank.Key{CategoryID: 1, ProductID: newcomer}] = 1000
		}
		snap := &salesrank.Snapshot{
			Window:      salesrank.WindowEnding(cut),
			Interval:    time.Hour,
			Top:         top,
			PublishedAt: cut.Add(time.Minute),
			Rankings:    salesrank.Rank(maps.All(totals), known, top),
		}
		if h <= hours {
			snap.Standings = salesrank.NewStandings(salesrank.WindowEnding(cut), []iter.Seq2[salesrank.Key, int64]{maps.All(totals)})
		}
		id, err := db.Publish(ctx, snap, known, nil)
		if err != nil {
			t.Fatalf("publish %v: %v", cut, err)
		}
		w.ids = append(w.ids, id)
		w.cutoffs = append(w.cutoffs, cut)
		w.totals = append(w.totals, maps.Clone(totals))
	}
	if w.current, err = db.Current(ctx); err != nil {
		t.Fatal(err)
	}
	if st := w.current.Standings; st == nil || w.current.Previous == nil || st.SnapshotID != w.ids[hours] || w.current.ID != w.ids[hours+1] {
		t.Fatal("the loaded snapshot lacks the last hour's full ranks or those of a day before")
	}
	w.holder = new(httpapi.Holder)
	w.holder.History.Archive = db
	w.holder.Store(w.current)
	w.srv = serve(t, w.holder)
	return w
}

// ranked is one product of a category ranked by the oracle.
type ranked struct {
	product, total int64
}

// rankAll ranks every product of category in totals: units descending, then product id.
func rankAll(totals map[salesrank.Key]int64, category int32) []ranked {
	var out []ranked
	for k, v := range totals {
		if k.CategoryID == category && v > 0 {
			out = append(out, ranked{k.ProductID, v})
		}
	}
	slices.SortFunc(out, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(b.total, a.total), cmp.Compare(a.product, b.product))
	})
	return out
}

// rankIn returns product's rank (from 1) in the first n of category's ranking, or 0.
func rankIn(totals map[salesrank.Key]int64, category int32, product int64, n int) (int, int64) {
	for i, r := range rankAll(totals, category) {
		if i == n {
			break
		}
		if r.product == product {
			return i + 1, r.total
		}
	}
	return 0, 0
}

const everything = 1 << 30

// now returns the totals of the current snapshot, and dayAgo those of the full ranks of a
// day before.
func (w *world) now() map[salesrank.Key]int64    { return w.totals[hours+1] }
func (w *world) dayAgo() map[salesrank.Key]int64 { return w.totals[hours-24] }

// products returns every product that ever sold, and one that never did.
func products() []int64 {
	var out []int64
	for p := range int64(30) {
		out = append(out, p)
	}
	return append(out, newcomer, 1000)
}

func TestListCategories(t *testing.T) {
	w := newWorld(t)
	var want []*salesrankv1.CategorySummary
	for _, c := range known {
		want = append(want, &salesrankv1.CategorySummary{CategoryId: c, ProductsRanked: int64(len(rankAll(w.now(), c)))})
	}
	if want[4].ProductsRanked != 0 || want[0].ProductsRanked <= top {
		t.Fatalf("the world is not what the test needs: %v", want)
	}
	pages := []struct {
		limit  *int32
		offset int64
		lo, hi int
	}{
		{nil, 0, 0, 5},
		{proto.Int32(2), 0, 0, 2},
		{proto.Int32(2), 3, 3, 5},
		{proto.Int32(10000), 5, 5, 5},
	}
	for _, c := range clientCases() {
		t.Run(c.name, func(t *testing.T) {
			client := w.srv.client(t, c)
			for _, p := range pages {
				resp, err := client.ListCategories(context.Background(), connect.NewRequest(&salesrankv1.ListCategoriesRequest{Limit: p.limit, Offset: p.offset}))
				if err != nil {
					t.Fatalf("limit %v offset %d: %v", p.limit, p.offset, err)
				}
				checkMeta(t, resp.Msg.SnapshotId, resp.Msg.WindowEnd, w.current.ID, w.current.Window.End)
				if got := resp.Msg.Categories; !equalMessages(got, want[p.lo:p.hi]) {
					t.Errorf("limit %v offset %d: %v, want %v", p.limit, p.offset, got, want[p.lo:p.hi])
				}
			}
		})
	}
}

// moversOracle returns category's movers: the products of today's top list ranked higher
// than a day before (one past the day's last when absent then), by the ratio of the ranks,
// then by rank.
func moversOracle(now, before map[salesrank.Key]int64, category int32) []*salesrankv1.Mover {
	absent := len(rankAll(before, category)) + 1
	var out []*salesrankv1.Mover
	for i, r := range rankAll(now, category) {
		if i == top {
			break
		}
		was, _ := rankIn(before, category, r.product, everything)
		shown := was
		if was == 0 {
			was = absent
		}
		if was > i+1 {
			out = append(out, &salesrankv1.Mover{ProductId: r.product, Rank: int64(i + 1), PreviousRank: int64(shown), TotalSold: r.total})
		}
	}
	ratio := func(m *salesrankv1.Mover) float64 {
		return float64(cmp.Or(m.PreviousRank, int64(absent))) / float64(m.Rank)
	}
	slices.SortStableFunc(out, func(a, b *salesrankv1.Mover) int {
		return cmp.Or(cmp.Compare(ratio(b), ratio(a)), cmp.Compare(a.Rank, b.Rank))
	})
	return out
}

func TestGetMovers(t *testing.T) {
	w := newWorld(t)
	all := map[int32][]*salesrankv1.Mover{}
	for _, c := range known {
		all[c] = moversOracle(w.now(), w.dayAgo(), c)
	}
	if len(all[1]) < 3 || all[1][0].ProductId != newcomer || all[1][0].PreviousRank != 0 {
		t.Fatalf("the world is not what the test needs: category 1's movers are %v", all[1])
	}
	for _, c := range clientCases() {
		t.Run(c.name, func(t *testing.T) {
			client := w.srv.client(t, c)
			for _, cat := range known {
				for _, p := range []struct {
					limit  *int32
					offset int64
				}{{nil, 0}, {proto.Int32(1), 0}, {proto.Int32(2), 1}, {proto.Int32(100), 0}, {nil, 100}} {
					resp, err := client.GetMovers(context.Background(), connect.NewRequest(&salesrankv1.GetMoversRequest{CategoryId: proto.Int32(cat), Limit: p.limit, Offset: p.offset}))
					if err != nil {
						t.Fatalf("category %d: %v", cat, err)
					}
					checkMeta(t, resp.Msg.SnapshotId, resp.Msg.WindowEnd, w.current.ID, w.current.Window.End)
					limit := int64(10)
					if p.limit != nil {
						limit = int64(*p.limit)
					}
					lo, hi := salesrank.PageBounds(len(all[cat]), p.offset, limit)
					if got, want := resp.Msg.Movers, all[cat][lo:hi]; !equalMessages(got, want) {
						t.Errorf("category %d limit %v offset %d: %v, want %v", cat, p.limit, p.offset, got, want)
					}
				}
			}
		})
	}
}

func TestGetProductRanks(t *testing.T) {
	w := newWorld(t)
	client := w.srv.client(t, clientCases()[0])
	for _, product := range products() {
		var want []*salesrankv1.ProductRank
		for _, c := range known {
			all := rankAll(w.now(), c)
			for i, r := range all {
				if r.product == product {
					want = append(want, &salesrankv1.ProductRank{CategoryId: c, ProductId: product, Rank: int64(i + 1), TotalSold: r.total, ProductsRanked: int64(len(all))})
				}
			}
		}
		resp, err := client.GetProductRanks(context.Background(), connect.NewRequest(&salesrankv1.GetProductRanksRequest{ProductId: proto.Int64(product)}))
		if err != nil {
			t.Fatalf("product %d: %v", product, err)
		}
		// From the last hour's full ranks, not the current snapshot.
		checkMeta(t, resp.Msg.SnapshotId, resp.Msg.WindowEnd, w.ids[hours], lastCutoff)
		if got := resp.Msg.Ranks; !equalMessages(got, want) {
			t.Errorf("product %d: %v, want %v", product, got, want)
		}
	}
}

func TestGetProductHistory(t *testing.T) {
	w := newWorld(t)
	for _, c := range clientCases() {
		t.Run(c.name, func(t *testing.T) {
			client := w.srv.client(t, c)
			for _, tt := range []struct {
				category int32
				product  int64
				since    *timestamppb.Timestamp
			}{
				{1, 3, nil},
				{1, newcomer, nil},
				{2, 7, timestamppb.New(lastCutoff.Add(-5*time.Hour - time.Second))},
				{3, 11, timestamppb.New(lastCutoff.Add(-5 * time.Hour))},
				{4, 1000, nil}, // never sold
				{5, 3, nil},    // known, never sold
				{1, 3, timestamppb.New(currentCutoff.Add(time.Second))}, // after every cutoff
			} {
				var since time.Time
				if tt.since != nil {
					since = tt.since.AsTime()
				}
				var want []*salesrankv1.HistoryPoint
				for i, cut := range w.cutoffs {
					if cut.Before(since) {
						continue
					}
					rank, total := rankIn(w.totals[i], tt.category, tt.product, top)
					want = append(want, &salesrankv1.HistoryPoint{Cutoff: timestamppb.New(cut), Rank: int64(rank), TotalSold: total})
				}
				resp, err := client.GetProductHistory(context.Background(), connect.NewRequest(&salesrankv1.GetProductHistoryRequest{
					ProductId: proto.Int64(tt.product), CategoryId: proto.Int32(tt.category), Since: tt.since,
				}))
				if err != nil {
					t.Fatalf("%+v: %v", tt, err)
				}
				checkMeta(t, resp.Msg.SnapshotId, resp.Msg.WindowEnd, w.current.ID, w.current.Window.End)
				if got := resp.Msg.Points; !equalMessages(got, want) {
					t.Errorf("category %d product %d since %v:\n got %v\nwant %v", tt.category, tt.product, since, got, want)
				}
			}
		})
	}
}

// TestGetPopularAtAndPreviousRank checks GetPopular's past snapshots against the oracle's
// top list of each hour, and the previous ranks against the oracle's full ranks of a day
// before.
func TestGetPopularAtAndPreviousRank(t *testing.T) {
	w := newWorld(t)
	for _, c := range clientCases() {
		t.Run(c.name, func(t *testing.T) {
			client := w.srv.client(t, c)
			for _, cat := range known {
				for i, cut := range w.cutoffs {
					// At a cutoff, and just before the next: both the same snapshot.
					next := cut.Add(time.Hour)
					if i+1 < len(w.cutoffs) {
						next = w.cutoffs[i+1]
					}
					for _, at := range []time.Time{cut, next.Add(-time.Second)} {
						resp, err := client.GetPopular(context.Background(), connect.NewRequest(&salesrankv1.GetPopularRequest{
							CategoryId: proto.Int32(cat), Limit: proto.Int32(1000), At: timestamppb.New(at),
						}))
						if err != nil {
							t.Fatalf("category %d at %v: %v", cat, at, err)
						}
						checkMeta(t, resp.Msg.SnapshotId, resp.Msg.WindowEnd, w.ids[i], cut)
						var want []ranked
						for j, r := range rankAll(w.totals[i], cat) {
							if j < top {
								want = append(want, r)
							}
						}
						got := resp.Msg.Entries
						if len(got) != len(want) {
							t.Fatalf("category %d at %v: %d entries, want %d", cat, at, len(got), len(want))
						}
						for j := range want {
							if got[j].ProductId != want[j].product || got[j].TotalSold != want[j].total || got[j].Rank != int64(j+1) || got[j].PreviousRank != 0 {
								t.Errorf("category %d at %v: entry %d = %v, want %+v at rank %d", cat, at, j, got[j], want[j], j+1)
							}
						}
					}
				}
				resp, err := client.GetPopular(context.Background(), connect.NewRequest(&salesrankv1.GetPopularRequest{
					CategoryId: proto.Int32(cat), WithPreviousRank: true,
				}))
				if err != nil {
					t.Fatalf("category %d with previous rank: %v", cat, err)
				}
				checkMeta(t, resp.Msg.SnapshotId, resp.Msg.WindowEnd, w.current.ID, w.current.Window.End)
				for _, e := range resp.Msg.Entries {
					want, _ := rankIn(w.dayAgo(), cat, e.ProductId, everything)
					if e.PreviousRank != int64(want) {
						t.Errorf("category %d product %d: previous_rank %d, want %d", cat, e.ProductId, e.PreviousRank, want)
					}
				}
			}
			// A time after the current cutoff is the current snapshot.
			resp, err := client.GetPopular(context.Background(), connect.NewRequest(&salesrankv1.GetPopularRequest{
				CategoryId: proto.Int32(1), At: timestamppb.New(lastCutoff.Add(24 * time.Hour)),
			}))
			if err != nil {
				t.Fatal(err)
			}
			checkMeta(t, resp.Msg.SnapshotId, resp.Msg.WindowEnd, w.current.ID, w.current.Window.End)
		})
	}
}

// checkMeta checks the snapshot id and cutoff an answer says it comes from.
func checkMeta(t *testing.T, id int64, end *timestamppb.Timestamp, wantID int64, wantEnd time.Time) {
	t.Helper()
	if id != wantID || !end.AsTime().Equal(wantEnd) {
		t.Errorf("answer from snapshot %d ending %v, want %d ending %v", id, end.AsTime(), wantID, wantEnd)
	}
}

func equalMessages[M proto.Message](got, want []M) bool {
	return slices.EqualFunc(got, want, func(a, b M) bool { return proto.Equal(a, b) })
}

// TestExploreErrors checks the code of every error of the new calls, over every protocol,
// and that a message names the field at fault.
func TestExploreErrors(t *testing.T) {
	w := newWorld(t)
	loaded := newServer(t, testSnapshot()) // no full ranks, no archive
	empty := newServer(t, nil)
	broken := brokenArchive(t, w)
	ctx := context.Background()
	type call func(salesrankv1connect.RankingServiceClient) error
	cats := func(limit *int32, offset int64) call {
		return func(c salesrankv1connect.RankingServiceClient) error {
			_, err := c.ListCategories(ctx, connect.NewRequest(&salesrankv1.ListCategoriesRequest{Limit: limit, Offset: offset}))
			return err
		}
	}
	movers := func(cat *int32, limit *int32, offset int64) call {
		return func(c salesrankv1connect.RankingServiceClient) error {
			_, err := c.GetMovers(ctx, connect.NewRequest(&salesrankv1.GetMoversRequest{CategoryId: cat, Limit: limit, Offset: offset}))
			return err
		}
	}
	ranks := func(product *int64) call {
		return func(c salesrankv1connect.RankingServiceClient) error {
			_, err := c.GetProductRanks(ctx, connect.NewRequest(&salesrankv1.GetProductRanksRequest{ProductId: product}))
			return err
		}
	}
	history := func(product *int64, cat *int32, since *timestamppb.Timestamp) call {
		return func(c salesrankv1connect.RankingServiceClient) error {
			_, err := c.GetProductHistory(ctx, connect.NewRequest(&salesrankv1.GetProductHistoryRequest{ProductId: product, CategoryId: cat, Since: since}))
			return err
		}
	}
	popularAt := func(cat int32, at *timestamppb.Timestamp, previous bool) call {
		return func(c salesrankv1connect.RankingServiceClient) error {
			_, err := c.GetPopular(ctx, connect.NewRequest(&salesrankv1.GetPopularRequest{CategoryId: proto.Int32(cat), At: at, WithPreviousRank: previous}))
			return err
		}
	}
	past := timestamppb.New(lastCutoff.Add(-time.Hour))
	tests := []struct {
		name   string
		srv    *server
		call   call
		code   connect.Code
		inText string
	}{
		{"categories limit 0", w.srv, cats(proto.Int32(0), 0), connect.CodeInvalidArgument, "limit"},
		{"categories limit 10001", w.srv, cats(proto.Int32(10001), 0), connect.CodeInvalidArgument, "limit"},
		{"categories offset negative", w.srv, cats(nil, -1), connect.CodeInvalidArgument, "offset"},
		{"categories with no snapshot", empty, cats(nil, 0), connect.CodeUnavailable, "retry"},
		{"movers no category", w.srv, movers(nil, nil, 0), connect.CodeInvalidArgument, "category_id"},
		{"movers negative category", w.srv, movers(proto.Int32(-1), nil, 0), connect.CodeInvalidArgument, "category_id"},
		{"movers limit 0", w.srv, movers(proto.Int32(1), proto.Int32(0), 0), connect.CodeInvalidArgument, "limit"},
		{"movers limit 101", w.srv, movers(proto.Int32(1), proto.Int32(101), 0), connect.CodeInvalidArgument, "limit"},
		{"movers offset negative", w.srv, movers(proto.Int32(1), nil, -1), connect.CodeInvalidArgument, "offset"},
		{"movers unknown category", w.srv, movers(proto.Int32(6), nil, 0), connect.CodeNotFound, "category_id 6"},
		{"movers with no snapshot", empty, movers(proto.Int32(1), nil, 0), connect.CodeUnavailable, "retry"},
		{"ranks no product", w.srv, ranks(nil), connect.CodeInvalidArgument, "product_id"},
		{"ranks negative product", w.srv, ranks(proto.Int64(-1)), connect.CodeInvalidArgument, "product_id"},
		{"ranks with no snapshot", empty, ranks(proto.Int64(1)), connect.CodeUnavailable, "retry"},
		{"ranks with no full ranks", loaded, ranks(proto.Int64(1)), connect.CodeUnavailable, "full ranks"},
		{"history no product", w.srv, history(nil, proto.Int32(1), nil), connect.CodeInvalidArgument, "product_id"},
		{"history no category", w.srv, history(proto.Int64(1), nil, nil), connect.CodeInvalidArgument, "category_id"},
		{"invalid timestamp: since", w.srv, history(proto.Int64(1), proto.Int32(1), &timestamppb.Timestamp{Nanos: -1}), connect.CodeInvalidArgument, "since"},
		{"history unknown category", w.srv, history(proto.Int64(1), proto.Int32(6), nil), connect.CodeNotFound, "category_id 6"},
		{"history with no snapshot", empty, history(proto.Int64(1), proto.Int32(1), nil), connect.CodeUnavailable, "retry"},
		{"history with no archive", loaded, history(proto.Int64(1), proto.Int32(1), nil), connect.CodeUnavailable, "store"},
		{"history with a broken store", broken, history(proto.Int64(1), proto.Int32(1), nil), connect.CodeUnavailable, "store"},
		{"popular at and previous", w.srv, popularAt(1, past, true), connect.CodeInvalidArgument, "with_previous_rank"},
		{"invalid timestamp: at", w.srv, popularAt(1, &timestamppb.Timestamp{Seconds: 1 << 40}, false), connect.CodeInvalidArgument, "at"},
		{"popular at before the history", w.srv, popularAt(1, timestamppb.New(w.cutoffs[0].Add(-time.Second)), false), connect.CodeNotFound, "no snapshot kept"},
		{"popular at unknown category", w.srv, popularAt(6, past, false), connect.CodeNotFound, "category_id 6"},
		{"popular at with no archive", loaded, popularAt(1, timestamppb.New(cutoff.Add(-time.Hour)), false), connect.CodeUnavailable, "store"},
		{"popular at with a broken store", broken, popularAt(1, past, false), connect.CodeUnavailable, "store"},
	}
	for _, c := range clientCases() {
		t.Run(c.name, func(t *testing.T) {
			for _, tt := range tests {
				if strings.HasPrefix(tt.name, "invalid timestamp") && c.name == "connect-json/http1" {
					continue // the JSON encoding cannot carry it: the client refuses to send it
				}
				err := tt.call(tt.srv.client(t, c))
				checkCode(t, tt.name, err, tt.code, tt.inText)
				if err != nil && strings.Contains(strings.ToLower(err.Error()), "sql") {
					t.Errorf("%s: the message quotes the database: %v", tt.name, err)
				}
			}
		})
	}
}

// brokenArchive serves w's current snapshot with an archive whose database is closed: every
// history read fails, as when the store cannot be reached.
func brokenArchive(t *testing.T, w *world) *server {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "closed.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	h := new(httpapi.Holder)
	h.History.Archive = db
	h.Store(w.current)
	return serve(t, h)
}

// answer is a call's answer in the REST API's terms: its JSON array, every value a string,
// and the snapshot headers.
type answer struct {
	status int
	rows   []map[string]string
	id     string
	start  string
	end    string
}

// restAnswer calls the REST API at target.
func (s *server) restAnswer(tb testing.TB, target string) answer {
	tb.Helper()
	resp, err := http.Get(s.url + target)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		return a
	}
	if err := json.NewDecoder(resp.Body).Decode(&a.rows); err != nil {
		tb.Fatalf("GET %s: %v", target, err)
	}
	a.id = resp.Header.Get("X-Snapshot-Id")
	a.start = resp.Header.Get("X-Window-Start")
	a.end = resp.Header.Get("X-Window-End")
	return a
}

// statusOf is the REST status that answers what code answers over RPC.
var statusOf = map[connect.Code]int{
	connect.CodeInvalidArgument: http.StatusBadRequest,
	connect.CodeNotFound:        http.StatusNotFound,
	connect.CodeUnavailable:     http.StatusServiceUnavailable,
}

// rpcAnswer turns an RPC answer into the REST API's terms.
func rpcAnswer(tb testing.TB, err error, id int64, start, end *timestamppb.Timestamp, rows []map[string]string) answer {
	tb.Helper()
	if err != nil {
		status, ok := statusOf[connect.CodeOf(err)]
		if !ok {
			tb.Fatalf("unexpected error: %v", err)
		}
		return answer{status: status}
	}
	if rows == nil {
		rows = []map[string]string{}
	}
	return answer{
		status: http.StatusOK,
		rows:   rows,
		id:     strconv.FormatInt(id, 10),
		start:  start.AsTime().Format(time.RFC3339),
		end:    end.AsTime().Format(time.RFC3339),
	}
}

// rankOrEmpty writes a rank as the REST API does: "" for none.
func rankOrEmpty(r int64) string {
	if r == 0 {
		return ""
	}
	return strconv.FormatInt(r, 10)
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

// TestExploreMatchesREST checks that, for the same snapshot and store, every new call and
// GetPopular's at and with_previous_rank answer over every protocol exactly what the REST
// API answers: the same elements, values and snapshot, or the same kind of refusal.
func TestExploreMatchesREST(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	type call func(salesrankv1connect.RankingServiceClient) answer
	cats := func(limit *int32, offset int64) call {
		return func(c salesrankv1connect.RankingServiceClient) answer {
			resp, err := c.ListCategories(ctx, connect.NewRequest(&salesrankv1.ListCategoriesRequest{Limit: limit, Offset: offset}))
			if err != nil {
				return rpcAnswer(t, err, 0, nil, nil, nil)
			}
			var rows []map[string]string
			for _, c := range resp.Msg.Categories {
				rows = append(rows, map[string]string{"category_id": i64(int64(c.CategoryId)), "products_ranked": i64(c.ProductsRanked)})
			}
			return rpcAnswer(t, nil, resp.Msg.SnapshotId, resp.Msg.WindowStart, resp.Msg.WindowEnd, rows)
		}
	}
	movers := func(cat int32, limit *int32, offset int64) call {
		return func(c salesrankv1connect.RankingServiceClient) answer {
			resp, err := c.GetMovers(ctx, connect.NewRequest(&salesrankv1.GetMoversRequest{CategoryId: proto.Int32(cat), Limit: limit, Offset: offset}))
			if err != nil {
				return rpcAnswer(t, err, 0, nil, nil, nil)
			}
			var rows []map[string]string
			for _, m := range resp.Msg.Movers {
				rows = append(rows, map[string]string{"product_id": i64(m.ProductId), "rank": i64(m.Rank),
					"previous_rank": rankOrEmpty(m.PreviousRank), "total_sold": i64(m.TotalSold)})
			}
			return rpcAnswer(t, nil, resp.Msg.SnapshotId, resp.Msg.WindowStart, resp.Msg.WindowEnd, rows)
		}
	}
	ranks := func(product int64) call {
		return func(c salesrankv1connect.RankingServiceClient) answer {
			resp, err := c.GetProductRanks(ctx, connect.NewRequest(&salesrankv1.GetProductRanksRequest{ProductId: proto.Int64(product)}))
			if err != nil {
				return rpcAnswer(t, err, 0, nil, nil, nil)
			}
			var rows []map[string]string
			for _, r := range resp.Msg.Ranks {
				rows = append(rows, map[string]string{"category_id": i64(int64(r.CategoryId)), "product_id": i64(r.ProductId),
					"rank": i64(r.Rank), "total_sold": i64(r.TotalSold), "products_ranked": i64(r.ProductsRanked)})
			}
			return rpcAnswer(t, nil, resp.Msg.SnapshotId, resp.Msg.WindowStart, resp.Msg.WindowEnd, rows)
		}
	}
	history := func(product int64, cat int32, since *timestamppb.Timestamp) call {
		return func(c salesrankv1connect.RankingServiceClient) answer {
			resp, err := c.GetProductHistory(ctx, connect.NewRequest(&salesrankv1.GetProductHistoryRequest{
				ProductId: proto.Int64(product), CategoryId: proto.Int32(cat), Since: since}))
			if err != nil {
				return rpcAnswer(t, err, 0, nil, nil, nil)
			}
			var rows []map[string]string
			for _, p := range resp.Msg.Points {
				total := ""
				if p.Rank > 0 {
					total = i64(p.TotalSold)
				}
				rows = append(rows, map[string]string{"cutoff": p.Cutoff.AsTime().Format(time.RFC3339), "rank": rankOrEmpty(p.Rank), "total_sold": total})
			}
			return rpcAnswer(t, nil, resp.Msg.SnapshotId, resp.Msg.WindowStart, resp.Msg.WindowEnd, rows)
		}
	}
	popular := func(cat int32, limit *int32, offset int64, at *timestamppb.Timestamp, previous bool) call {
		return func(c salesrankv1connect.RankingServiceClient) answer {
			resp, err := c.GetPopular(ctx, connect.NewRequest(&salesrankv1.GetPopularRequest{
				CategoryId: proto.Int32(cat), Limit: limit, Offset: offset, At: at, WithPreviousRank: previous}))
			if err != nil {
				return rpcAnswer(t, err, 0, nil, nil, nil)
			}
			var rows []map[string]string
			for _, e := range resp.Msg.Entries {
				row := map[string]string{"id": i64(e.Id), "category_id": i64(int64(cat)), "total_sold": i64(e.TotalSold), "product_id": i64(e.ProductId)}
				if previous {
					row["previous_rank"] = rankOrEmpty(e.PreviousRank)
				}
				rows = append(rows, row)
			}
			return rpcAnswer(t, nil, resp.Msg.SnapshotId, resp.Msg.WindowStart, resp.Msg.WindowEnd, rows)
		}
	}
	at := func(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
	rfc := func(t time.Time) string { return t.Format(time.RFC3339) }
	cases := []struct {
		rest string
		rpc  call
	}{
		{"/api/v1/categories", cats(nil, 0)},
		{"/api/v1/categories?limit=2&offset=1", cats(proto.Int32(2), 1)},
		{"/api/v1/categories?limit=10000&offset=4", cats(proto.Int32(10000), 4)},
		{"/api/v1/categories?offset=9", cats(nil, 9)},
		{"/api/v1/categories?limit=0", cats(proto.Int32(0), 0)},
		{"/api/v1/categories?limit=10001", cats(proto.Int32(10001), 0)},
		{"/api/v1/movers?category_id=1", movers(1, nil, 0)},
		{"/api/v1/movers?category_id=1&limit=2&offset=1", movers(1, proto.Int32(2), 1)},
		{"/api/v1/movers?category_id=2&limit=100", movers(2, proto.Int32(100), 0)},
		{"/api/v1/movers?category_id=3", movers(3, nil, 0)},
		{"/api/v1/movers?category_id=4", movers(4, nil, 0)},
		{"/api/v1/movers?category_id=5", movers(5, nil, 0)},
		{"/api/v1/movers?category_id=6", movers(6, nil, 0)},
		{"/api/v1/movers?category_id=1&limit=101", movers(1, proto.Int32(101), 0)},
		{"/api/v1/movers?category_id=1&limit=0", movers(1, proto.Int32(0), 0)},
		{"/api/v1/products/1000/ranks", ranks(1000)},
		{"/api/v1/products/" + i64(newcomer) + "/ranks", ranks(newcomer)},
		{"/api/v1/products/" + i64(salesrank.MaxProductID) + "/ranks", ranks(salesrank.MaxProductID)},
		{"/api/v1/products/1/history?category_id=1", history(1, 1, nil)},
		{"/api/v1/products/" + i64(newcomer) + "/history?category_id=1", history(newcomer, 1, nil)},
		{"/api/v1/products/4/history?category_id=2&since=" + rfc(lastCutoff.Add(-3*time.Hour)), history(4, 2, at(lastCutoff.Add(-3*time.Hour)))},
		{"/api/v1/products/4/history?category_id=5", history(4, 5, nil)},
		{"/api/v1/products/4/history?category_id=6", history(4, 6, nil)},
		{"/api/v1/popular?category_id=1&with=previous_rank", popular(1, nil, 0, nil, true)},
		{"/api/v1/popular?category_id=2&limit=3&offset=2&with=previous_rank", popular(2, proto.Int32(3), 2, nil, true)},
		{"/api/v1/popular?category_id=5&with=previous_rank", popular(5, nil, 0, nil, true)},
		{"/api/v1/popular?category_id=1&at=" + rfc(lastCutoff), popular(1, nil, 0, at(lastCutoff), false)},
		{"/api/v1/popular?category_id=1&at=" + rfc(lastCutoff.Add(time.Hour)), popular(1, nil, 0, at(lastCutoff.Add(time.Hour)), false)},
		{"/api/v1/popular?category_id=3&limit=4&offset=1&at=" + rfc(lastCutoff.Add(-90*time.Minute)), popular(3, proto.Int32(4), 1, at(lastCutoff.Add(-90*time.Minute)), false)},
		{"/api/v1/popular?category_id=1&at=" + rfc(w.cutoffs[0]), popular(1, nil, 0, at(w.cutoffs[0]), false)},
		{"/api/v1/popular?category_id=1&at=" + rfc(w.cutoffs[0].Add(-time.Second)), popular(1, nil, 0, at(w.cutoffs[0].Add(-time.Second)), false)},
		{"/api/v1/popular?category_id=6&at=" + rfc(w.cutoffs[0]), popular(6, nil, 0, at(w.cutoffs[0]), false)},
		{"/api/v1/popular?category_id=1&with=previous_rank&at=" + rfc(w.cutoffs[0]), popular(1, nil, 0, at(w.cutoffs[0]), true)},
	}
	// Every status is covered, so that a mapping that answered 200 for all could not pass.
	seen := map[int]bool{}
	for _, c := range clientCases() {
		t.Run(c.name, func(t *testing.T) {
			client := w.srv.client(t, c)
			for _, tt := range cases {
				want := w.srv.restAnswer(t, tt.rest)
				seen[want.status] = true
				got := tt.rpc(client)
				if got.status != want.status || got.id != want.id || got.start != want.start || got.end != want.end {
					t.Errorf("%s: RPC answers %d from snapshot %s [%s, %s), REST %d from %s [%s, %s)", tt.rest,
						got.status, got.id, got.start, got.end, want.status, want.id, want.start, want.end)
					continue
				}
				if !slices.EqualFunc(got.rows, want.rows, maps.Equal) {
					t.Errorf("%s:\n RPC %v\nREST %v", tt.rest, got.rows, want.rows)
				}
			}
		})
	}
	for _, status := range []int{http.StatusOK, http.StatusBadRequest, http.StatusNotFound} {
		if !seen[status] {
			t.Errorf("no case answered %d", status)
		}
	}
}
