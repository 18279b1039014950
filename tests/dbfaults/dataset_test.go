//go:build unix

package dbfaults_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	domain "github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/testing/ranktest"
)

// The dataset: a week of synthetic sales ending at the current hour, in a few categories, so
// that a snapshot ranked now is fresh (answers are not stale by the clock, only when the
// database is unreachable). Each addLogs adds new objects under a new prefix, as API hosts
// would, so that every run has something to take and commit.
const (
	numCategories = 20
	numProducts   = 5000
	weekLines     = 100_000
	moreLines     = 20_000
)

// dataset is a folder of logs and the database they are ranked into.
type dataset struct {
	t     *testing.T
	dir   string
	logs  string
	dsn   string // direct to PostgreSQL
	parts int    // log prefixes written so far
}

// newDataset generates a week of logs in a temporary folder for the database dsn.
func newDataset(t *testing.T, dsn string) *dataset {
	t.Helper()
	dir := t.TempDir()
	d := &dataset{t: t, dir: dir, logs: filepath.Join(dir, "logs"), dsn: dsn}
	d.gen(weekLines, 7)
	return d
}

// gen writes lines sales over the days before the current hour under a new prefix of the
// logs folder (gen refuses a folder generated with other flags, so each call has its own).
func (d *dataset) gen(lines, days int) {
	d.t.Helper()
	d.parts++
	salesrank(d.t, "gen", "--out", filepath.Join(d.logs, fmt.Sprintf("host%02d", d.parts)), "--days", strconv.Itoa(days),
		"--lines", strconv.Itoa(lines), "--products", strconv.Itoa(numProducts), "--categories", strconv.Itoa(numCategories),
		"--seed", strconv.Itoa(d.parts))
}

// addLogs writes a day of new sales under a new prefix.
func (d *dataset) addLogs() { d.t.Helper(); d.gen(moreLines, 1) }

// rank runs rank --once on the database directly and returns its summary.
func (d *dataset) rank(args ...string) rankSummary {
	d.t.Helper()
	out := salesrank(d.t, append([]string{"rank", "--once", "--logs", d.logs, "--db", d.dsn}, args...)...)
	s, err := decodeSummary(out)
	if err != nil {
		d.t.Fatal(err)
	}
	return s
}

// checkBound bounds a check's queries, so that a hung server fails the test instead of
// stalling it. It is not a speed check: the consistency queries (self-joins over every
// stored snapshot's rows) ran past an earlier 30 s bound in CI, where other packages'
// tests load the same server and both cores.
const checkBound = 2 * time.Minute

// snapRow is one stored snapshot's metadata.
type snapRow struct {
	id, cutoff, publishedAt int64
	categories, entries     int64
	fullRanks               bool // it carries every product's rank
}

// withConn runs fn on a connection of its own to dsn, closed afterwards, within
// checkBound.
func withConn(t *testing.T, dsn string, fn func(ctx context.Context, conn *pgx.Conn) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), checkBound)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return fn(ctx, conn)
}

// snapshots returns the stored snapshots, current first.
func snapshots(t *testing.T, dsn string) ([]snapRow, error) {
	var out []snapRow
	err := withConn(t, dsn, func(ctx context.Context, conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT id, cutoff, published_at, categories, entries,
			EXISTS (SELECT 1 FROM standings WHERE snapshot_id = s.id) FROM snapshots s
			ORDER BY cutoff DESC, id DESC`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (snapRow, error) {
			var s snapRow
			err := r.Scan(&s.id, &s.cutoff, &s.publishedAt, &s.categories, &s.entries, &s.fullRanks)
			return s, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return out, nil
}

// checkConsistent fails t unless every stored snapshot is whole: its sales_rank rows and
// categories are as many as its snapshots row says, every row belongs to a category the
// snapshot covers, and each category's ranks are 1..n in ranking order (units descending,
// then product id ascending), n at most top_k. It returns the number of snapshots.
func checkConsistent(t *testing.T, dsn string) int {
	t.Helper()
	var problems []string
	n := 0
	err := withConn(t, dsn, func(ctx context.Context, conn *pgx.Conn) error {
		// Migrations may not have run yet if every run so far failed at the start.
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass('snapshots') IS NOT NULL`).Scan(&exists); err != nil || !exists {
			return err
		}
		// One REPEATABLE READ transaction: a consistent view even if a publish commits.
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer tx.Rollback(context.Background())
		query := func(sql string) []string {
			rows, err := tx.Query(ctx, sql)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", sql, err))
				return nil
			}
			out, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", sql, err))
			}
			return out
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM snapshots`).Scan(&n); err != nil {
			return err
		}
		for _, c := range []struct{ what, sql string }{
			{"snapshots whose sales_rank rows differ from entries", `SELECT format('snapshot %s: %s rows, entries says %s', s.id, count(r.id), s.entries)
				FROM snapshots s LEFT JOIN snapshot_sales_rank r ON r.snapshot_id = s.id GROUP BY s.id, s.entries HAVING count(r.id) <> s.entries`},
			{"snapshots whose categories differ from categories", `SELECT format('snapshot %s: %s categories, snapshots says %s', s.id, count(c.category_id), s.categories)
				FROM snapshots s LEFT JOIN snapshot_categories c ON c.snapshot_id = s.id GROUP BY s.id, s.categories HAVING count(c.category_id) <> s.categories`},
			{"sales_rank rows that no stored snapshot uses", `SELECT format('row %s: snapshots %s..%s', r.id, r.first_snapshot_id, r.last_snapshot_id) FROM sales_rank r
				WHERE NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.id BETWEEN r.first_snapshot_id AND r.last_snapshot_id) LIMIT 5`},
			{"open sales_rank rows that are not the latest publication's", `SELECT format('%s open rows, the latest publication has %s', o.n, s.entries)
				FROM (SELECT count(*) AS n FROM sales_rank WHERE last_snapshot_id >= (SELECT max(id) FROM snapshots)) o
				JOIN (SELECT coalesce(max(entries), 0) AS entries FROM snapshots WHERE id = (SELECT max(id) FROM snapshots)) s ON o.n <> s.entries`},
			{"snapshot_categories of no stored snapshot", `SELECT format('snapshot %s category %s', c.snapshot_id, c.category_id) FROM snapshot_categories c
				WHERE NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.id = c.snapshot_id) LIMIT 5`},
			{"sales_rank rows of a category the snapshot does not cover", `SELECT format('row %s: snapshot %s category %s', r.id, r.snapshot_id, r.category_id) FROM snapshot_sales_rank r
				WHERE NOT EXISTS (SELECT 1 FROM snapshot_categories c WHERE c.snapshot_id = r.snapshot_id AND c.category_id = r.category_id) LIMIT 5`},
			{"categories whose ranks are not 1..n within top_k", `SELECT format('snapshot %s category %s: %s rows, ranks %s..%s, top %s', r.snapshot_id, r.category_id, count(*), min(r.rank), max(r.rank), s.top_k)
				FROM snapshot_sales_rank r JOIN snapshots s ON s.id = r.snapshot_id GROUP BY r.snapshot_id, r.category_id, s.top_k
				HAVING min(r.rank) <> 1 OR max(r.rank) <> count(*) OR count(*) > s.top_k LIMIT 5`},
			{"rows out of ranking order", `SELECT format('snapshot %s category %s rank %s: product %s (%s) after product %s (%s)', r.snapshot_id, r.category_id, r.rank, r.product_id, r.total_sold, p.product_id, p.total_sold)
				FROM snapshot_sales_rank r JOIN snapshot_sales_rank p ON p.snapshot_id = r.snapshot_id AND p.category_id = r.category_id AND p.rank = r.rank - 1
				WHERE p.total_sold < r.total_sold OR (p.total_sold = r.total_sold AND p.product_id >= r.product_id) LIMIT 5`},
		} {
			for _, p := range query(c.sql) {
				problems = append(problems, c.what+": "+p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("check the stored snapshots: %v", err)
	}
	for _, p := range problems {
		t.Errorf("inconsistent database: %s", p)
	}
	return n
}

// rankRow is one sales_rank row, without its id (which differs between databases).
type rankRow struct {
	category, rank     int64
	product, totalSold int64
}

// currentRows returns the current snapshot's id, rows and covered categories on PostgreSQL.
func currentRows(t *testing.T, dsn string) (int64, []rankRow, []int64) {
	t.Helper()
	var (
		id   int64
		rows []rankRow
		cats []int64
	)
	err := withConn(t, dsn, func(ctx context.Context, conn *pgx.Conn) error {
		if err := conn.QueryRow(ctx, `SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT 1`).Scan(&id); err != nil {
			return err
		}
		r, err := conn.Query(ctx, `SELECT category_id, rank, product_id, total_sold FROM snapshot_sales_rank
			WHERE snapshot_id = $1 ORDER BY category_id, rank`, id)
		if err != nil {
			return err
		}
		if rows, err = pgx.CollectRows(r, func(r pgx.CollectableRow) (rankRow, error) {
			var x rankRow
			return x, r.Scan(&x.category, &x.rank, &x.product, &x.totalSold)
		}); err != nil {
			return err
		}
		r, err = conn.Query(ctx, `SELECT category_id FROM snapshot_categories WHERE snapshot_id = $1 ORDER BY 1`, id)
		if err != nil {
			return err
		}
		cats, err = pgx.CollectRows(r, pgx.RowTo[int64])
		return err
	})
	if err != nil {
		t.Fatalf("read the current snapshot: %v", err)
	}
	return id, rows, cats
}

// allTop is the --top of the runs checked against the oracle: above the dataset's number
// of products, so that every product sold in a category is in its ranking and the
// comparison covers every product's total, not only the best sellers'.
const allTop = numProducts + 1

// objects reads every log object of the dataset, keyed by its path under the logs folder;
// names starting with _ or . (gen's _SUCCESS markers) are not logs.
func (d *dataset) objects() map[string][]byte {
	t := d.t
	t.Helper()
	objs := map[string][]byte{}
	err := filepath.WalkDir(d.logs, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.HasPrefix(e.Name(), "_") || strings.HasPrefix(e.Name(), ".") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		key, err := filepath.Rel(d.logs, path)
		objs[filepath.ToSlash(key)] = b
		return err
	})
	if err != nil {
		t.Fatalf("read the logs: %v", err)
	}
	if len(objs) == 0 {
		t.Fatalf("no log objects under %s", d.logs)
	}
	return objs
}

// checkComplete fails t unless the current snapshot on dsn is what the brute-force oracle
// (internal/ranktest: the standard library's parsers, a map and a sort, sharing no code
// with the ranker) makes of every log object at now's cutoff, product by product, and the
// manifest holds every object once with the oracle's line counts: no sale lost, none
// counted twice. The snapshot must have been ranked with --top allTop.
func (d *dataset) checkComplete(now string) {
	t := d.t
	t.Helper()
	at, err := time.Parse(time.RFC3339, now)
	if err != nil {
		t.Fatal(err)
	}
	cutoff, err := domain.Cutoff(at, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	objs := d.objects()
	want, read, rejected := ranktest.Oracle(objs, cutoff, allTop)
	id, rows, cats := currentRows(t, d.dsn)
	got := ranktest.Format(toRankings(rows, cats))
	if got != want {
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		i := 0
		for i < min(len(gl), len(wl)) && gl[i] == wl[i] {
			i++
		}
		t.Errorf("snapshot %d differs from the oracle over %d objects at cutoff %s: %d lines, want %d; first difference at line %d: got %q, want %q",
			id, len(objs), cutoff.Format(time.RFC3339), len(gl), len(wl), i+1, line(gl, i), line(wl, i))
	} else {
		t.Logf("snapshot %d equals the oracle: %d products' totals in %d categories, from %d objects", id, len(rows), len(cats), len(objs))
	}
	perCat := map[int64]int{}
	for _, r := range rows {
		if perCat[r.category]++; perCat[r.category] >= allTop {
			t.Fatalf("snapshot %d ranks %d products in category %d: --top %d may have cut it, and the check would miss products", id, perCat[r.category], r.category, allTop)
		}
	}

	var nObjs, nRead, nRejected int64
	err = withConn(t, d.dsn, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT count(*), coalesce(sum(lines_read), 0), coalesce(sum(lines_rejected), 0) FROM objects`).Scan(&nObjs, &nRead, &nRejected)
	})
	if err != nil {
		t.Fatalf("read the manifest: %v", err)
	}
	if nObjs != int64(len(objs)) || nRead != read || nRejected != rejected {
		t.Errorf("manifest: %d objects, %d lines read, %d rejected; the logs have %d objects, %d lines, %d bad (the oracle)",
			nObjs, nRead, nRejected, len(objs), read, rejected)
	}
}

// toRankings turns a snapshot's rows (in category, rank order) and categories into the
// domain's rankings, a category without rows having none.
func toRankings(rows []rankRow, cats []int64) []domain.Ranking {
	byCat := map[int64][]domain.Entry{}
	for _, r := range rows {
		byCat[r.category] = append(byCat[r.category], domain.Entry{ProductID: r.product, TotalSold: r.totalSold})
	}
	out := make([]domain.Ranking, 0, len(cats))
	for _, c := range cats {
		out = append(out, domain.Ranking{CategoryID: int32(c), Entries: byCat[c]})
	}
	return out
}

func line(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(none)"
}
