// Package ranks_test checks what issue 10 added to the answers against the brute-force
// oracle (package ranktest): every product's full ranks, the movers against the day
// before, and the history of the top lists, through the real ranker, the real stores
// (SQLite, and PostgreSQL when configured) and the real HTTP handlers.
package ranks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/httpapi"
	"github.com/salesrank/salesrank/internal/postgres"
	"github.com/salesrank/salesrank/internal/ranker"
	"github.com/salesrank/salesrank/internal/replica"
	"github.com/salesrank/salesrank/internal/sqlite"
	"github.com/salesrank/salesrank/internal/testing/pgtest"
	"github.com/salesrank/salesrank/internal/testing/ranktest"
)

// db is what the test needs of a store.
type db interface {
	ranker.Store
	replica.Archive
	Current(ctx context.Context) (*salesrank.Snapshot, error)
	SetRetain(d time.Duration)
	Close() error
}

func TestRanksMoversHistorySQLite(t *testing.T) {
	run(t, func(t *testing.T) db {
		d, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	})
}

func TestRanksMoversHistoryPostgres(t *testing.T) {
	run(t, func(t *testing.T) db {
		dsn, _ := pgtest.Schema(t, "ranks_")
		d, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	})
}

// entry is one product of the oracle's full ranks.
type entry struct {
	product, total int64
}

// oracle returns the full ranks of every category at cutoff over objects, from
// ranktest.Oracle's text.
func oracle(t *testing.T, objects map[string][]byte, cutoff time.Time) map[int32][]entry {
	text, _, _ := ranktest.Oracle(objects, cutoff, math.MaxInt)
	out := map[int32][]entry{}
	for line := range strings.Lines(text) {
		var (
			c        int32
			rank     int
			p, units int64
		)
		if strings.Contains(line, "no sales") {
			continue
		}
		if _, err := fmt.Sscanf(line, "category %d rank %d product %d total_sold %d", &c, &rank, &p, &units); err != nil {
			t.Fatalf("oracle line %q: %v", line, err)
		}
		out[c] = append(out[c], entry{p, units})
	}
	return out
}

func rankOf(ranks []entry, product int64) int {
	for i, e := range ranks {
		if e.product == product {
			return i + 1
		}
	}
	return 0
}

const top = 3 // small, so that ties straddle the top list's edge

// run lands random and adversarial objects hour by hour over a day and more, ranks after
// each landing, and compares every answer of the current snapshot with the oracle.
func run(t *testing.T, open func(t *testing.T) db) {
	ctx := context.Background()
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			end := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
			first := end.Add(-26 * time.Hour)
			store := open(t)
			store.SetRetain(30 * 24 * time.Hour)
			logs := memblob.OpenBucket(nil)
			landed := map[string][]byte{}
			land := func(key string, data []byte) {
				if err := logs.WriteAll(ctx, key, data, nil); err != nil {
					t.Fatal(err)
				}
				landed[key] = data
			}
			for k, v := range ranktest.RandomLogs(rng, first) {
				land("start/"+k, v)
			}
			land("start/week.tsv", ranktest.Lines(rng, first.Add(-8*24*time.Hour), 9*24*time.Hour, 3000))
			// Ties: a category whose products all sold the same (the top list's edge falls
			// inside the tie), and a long tail of single units beside a category's leaders.
			var ties strings.Builder
			for p := range 12 {
				fmt.Fprintf(&ties, "%d\t%d\t6\t9\t1.00\t1\t1\n", first.Add(-time.Duration(p+1)*time.Hour).Unix(), 300-p*7)
				fmt.Fprintf(&ties, "%d\t%d\t1\t1\t1.00\t1\t1\n", first.Add(-time.Duration(p+2)*time.Hour).Unix(), 5000-p*3)
			}
			land("start/ties.tsv", []byte(ties.String()))
			rk := &ranker.Ranker{Logs: logs, Engine: &counting.Local{}, Store: store, Top: top, FullRanks: true}

			// What each published cutoff saw: the objects landed by its run.
			seen := map[time.Time]map[string][]byte{}
			for i, at := 0, first; !at.After(end); i, at = i+1, at.Add(time.Hour) {
				switch i % 4 {
				case 1: // on time
					land(fmt.Sprintf("h/%d.tsv", i), ranktest.Lines(rng, at.Add(-time.Hour), time.Hour, 200))
				case 2: // late, into hours already published
					land(fmt.Sprintf("late/%d.tsv", i), ranktest.Lines(rng, at.Add(-30*time.Hour), 20*time.Hour, 100))
				case 3: // a product from nowhere, sold a lot in the last hour
					land(fmt.Sprintf("new/%d.tsv", i), []byte(fmt.Sprintf("%d\t%d\t1\t%d\t1.00\t1\t1\n", at.Add(-time.Minute).Unix(), 1000+i, 5+i)))
				}
				if rng.IntN(5) == 0 {
					rk = &ranker.Ranker{Logs: logs, Engine: &counting.Local{}, Store: store, Top: top, FullRanks: true}
				}
				if _, err := rk.Run(ctx, at); err != nil {
					t.Fatalf("run at %v: %v", at, err)
				}
				if late := rk.Wait(); late == nil || late.Err != nil {
					t.Fatalf("full ranks at %v: %+v", at, late)
				}
				seen[at] = maps.Clone(landed)
			}

			snap, err := store.Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			now, before := oracle(t, seen[end], end), oracle(t, seen[end.Add(-24*time.Hour)], end.Add(-24*time.Hour))
			if snap.Standings == nil || !snap.Standings.Window.End.Equal(end) {
				t.Fatalf("the current snapshot's full ranks: %+v", snap.Standings)
			}
			if snap.Previous == nil || !snap.Previous.Window.End.Equal(end.Add(-24*time.Hour)) {
				t.Fatalf("the full ranks of a day before: %+v", snap.Previous)
			}

			var h httpapi.Holder
			h.History.Archive = store
			h.Store(snap)
			srv := httptest.NewServer(httpapi.NewServer(slog.New(slog.DiscardHandler), &h, nil, func() time.Time { return end }, nil))
			defer srv.Close()

			// Every product's ranks, in every category.
			products := map[int64]bool{424242: true} // and one that never sold
			for _, es := range now {
				for _, e := range es {
					products[e.product] = true
				}
			}
			for p := range products {
				var want []map[string]string
				for _, c := range slices.Sorted(maps.Keys(now)) {
					if r := rankOf(now[c], p); r > 0 {
						want = append(want, map[string]string{"category_id": itoa(c), "product_id": itoa(p), "rank": itoa(r),
							"total_sold": itoa(now[c][r-1].total), "products_ranked": itoa(len(now[c]))})
					}
				}
				got := getJSON(t, srv.URL+"/api/v1/products/"+itoa(p)+"/ranks", snap.Standings.SnapshotID)
				if !equalRows(got, want) {
					t.Fatalf("product %d ranks\n%v\nwant\n%v", p, got, want)
				}
			}

			// Every category's movers.
			for _, r := range snap.Rankings {
				c := r.CategoryID
				type mv struct {
					row  map[string]string
					gain float64
					rank int
				}
				var want []mv
				for i, e := range now[c][:min(top, len(now[c]))] {
					was := rankOf(before[c], e.product)
					prev := ""
					if was > 0 {
						prev = itoa(was)
					} else {
						was = len(before[c]) + 1
					}
					if was > i+1 {
						want = append(want, mv{map[string]string{"product_id": itoa(e.product), "rank": itoa(i + 1),
							"previous_rank": prev, "total_sold": itoa(e.total)}, float64(was) / float64(i+1), i + 1})
					}
				}
				slices.SortStableFunc(want, func(a, b mv) int {
					if a.gain != b.gain {
						if a.gain > b.gain {
							return -1
						}
						return 1
					}
					return a.rank - b.rank
				})
				var wantRows []map[string]string
				for _, m := range want {
					wantRows = append(wantRows, m.row)
				}
				got := getJSON(t, srv.URL+"/api/v1/movers?category_id="+itoa(c)+"&limit=100", snap.ID)
				if !equalRows(got, wantRows) {
					t.Fatalf("category %d movers\n%v\nwant\n%v", c, got, wantRows)
				}
			}

			// A time before every kept snapshot, year 1 included, is kept by none.
			for _, at := range []string{"0001-01-01T00:00:00Z", first.Add(-time.Second).Format(time.RFC3339)} {
				res, err := http.Get(srv.URL + "/api/v1/popular?category_id=1&at=" + at)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusNotFound {
					t.Errorf("popular at %s: %s, want 404", at, res.Status)
				}
			}

			// Each product's history in each category's top lists, and past top lists.
			cutoffs := slices.SortedFunc(maps.Keys(seen), func(a, b time.Time) int { return a.Compare(b) })
			tops := map[time.Time]map[int32][]entry{}
			for _, at := range cutoffs {
				tops[at] = oracle(t, seen[at], at)
			}
			for _, r := range snap.Rankings {
				c := r.CategoryID
				inTop := map[int64]bool{}
				for _, at := range cutoffs {
					for _, e := range tops[at][c][:min(top, len(tops[at][c]))] {
						inTop[e.product] = true
					}
				}
				for p := range inTop {
					var want []map[string]string
					for _, at := range cutoffs {
						row := map[string]string{"cutoff": at.Format(time.RFC3339), "rank": "", "total_sold": ""}
						if rk := rankOf(tops[at][c], p); rk > 0 && rk <= top {
							row["rank"], row["total_sold"] = itoa(rk), itoa(tops[at][c][rk-1].total)
						}
						want = append(want, row)
					}
					got := getJSON(t, srv.URL+"/api/v1/products/"+itoa(p)+"/history?category_id="+itoa(c), snap.ID)
					if !equalRows(got, want) {
						t.Fatalf("category %d product %d history\n%v\nwant\n%v", c, p, got, want)
					}
				}
				at := cutoffs[rng.IntN(len(cutoffs))]
				var want []map[string]string
				for _, e := range tops[at][c][:min(top, len(tops[at][c]))] {
					want = append(want, map[string]string{"category_id": itoa(c), "product_id": itoa(e.product), "total_sold": itoa(e.total)})
				}
				got := getJSON(t, srv.URL+"/api/v1/popular?category_id="+itoa(c)+"&at="+at.Add(59*time.Minute).Format(time.RFC3339), -1)
				for _, g := range got {
					delete(g, "id")
				}
				if !equalRows(got, want) {
					t.Fatalf("category %d top list at %v\n%v\nwant\n%v", c, at, got, want)
				}
			}
		})
	}
}

// getJSON gets url, which must answer 200 from snapshot id (any if -1), as rows of strings.
func getJSON(t *testing.T, url string, id int64) []map[string]string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, res.Status, body)
	}
	if id >= 0 && res.Header.Get("X-Snapshot-Id") != itoa(id) {
		t.Fatalf("GET %s: from snapshot %s, want %d", url, res.Header.Get("X-Snapshot-Id"), id)
	}
	var rows []map[string]string
	if err := json.Unmarshal(body, &rows); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
	return rows
}

func equalRows(got, want []map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			return false
		}
		for k, v := range want[i] {
			if got[i][k] != v {
				return false
			}
		}
	}
	return true
}

func itoa[T int | int32 | int64](n T) string { return strconv.FormatInt(int64(n), 10) }
