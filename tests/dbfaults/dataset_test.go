//go:build unix

package dbfaults_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the "sqlite" driver, to read the reference database
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

// snapRow is one stored snapshot's metadata.
type snapRow struct {
	id, cutoff, publishedAt int64
	categories, entries     int64
}

// withConn runs fn on a connection of its own to dsn, closed afterwards.
func withConn(t *testing.T, dsn string, fn func(ctx context.Context, conn *pgx.Conn) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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
		rows, err := conn.Query(ctx, `SELECT id, cutoff, published_at, categories, entries FROM snapshots
			ORDER BY cutoff DESC, id DESC`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (snapRow, error) {
			var s snapRow
			err := r.Scan(&s.id, &s.cutoff, &s.publishedAt, &s.categories, &s.entries)
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
				FROM (SELECT count(*) AS n FROM sales_rank WHERE last_snapshot_id = 9223372036854775807) o
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

// referenceRows ranks the dataset's logs from scratch (rank --once --full) into a SQLite
// file, at the cutoff that now gives, and returns the snapshot's rows and categories: what
// an undisturbed run publishes.
func (d *dataset) referenceRows(now string) ([]rankRow, []int64) {
	t := d.t
	t.Helper()
	path := filepath.Join(t.TempDir(), "reference.db")
	salesrank(t, "rank", "--once", "--full", "--logs", d.logs, "--db", "sqlite:"+path, "--now", now)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int64
	if err := db.QueryRow(`SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT 1`).Scan(&id); err != nil {
		t.Fatalf("reference: %v", err)
	}
	r, err := db.Query(`SELECT category_id, rank, product_id, total_sold FROM snapshot_sales_rank WHERE snapshot_id = ? ORDER BY category_id, rank`, id)
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	defer r.Close()
	var rows []rankRow
	for r.Next() {
		var x rankRow
		if err := r.Scan(&x.category, &x.rank, &x.product, &x.totalSold); err != nil {
			t.Fatalf("reference: %v", err)
		}
		rows = append(rows, x)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("reference: %v", err)
	}
	c, err := db.Query(`SELECT category_id FROM snapshot_categories WHERE snapshot_id = ? ORDER BY 1`, id)
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	defer c.Close()
	var cats []int64
	for c.Next() {
		var x int64
		if err := c.Scan(&x); err != nil {
			t.Fatalf("reference: %v", err)
		}
		cats = append(cats, x)
	}
	return rows, cats
}

// checkComplete fails t unless the current snapshot on dsn is the one an undisturbed,
// from-scratch run of the same logs at now publishes: no sale lost or counted twice.
func (d *dataset) checkComplete(now string) {
	t := d.t
	t.Helper()
	wantRows, wantCats := d.referenceRows(now)
	id, gotRows, gotCats := currentRows(t, d.dsn)
	if !slices.Equal(gotCats, wantCats) {
		t.Errorf("snapshot %d covers categories %v, want %v (a from-scratch run)", id, gotCats, wantCats)
	}
	if !slices.Equal(gotRows, wantRows) {
		diff := 0
		for i := range min(len(gotRows), len(wantRows)) {
			if gotRows[i] != wantRows[i] {
				diff = i
				break
			}
		}
		t.Errorf("snapshot %d: %d rows, want %d (a from-scratch run); first difference at row %d: got %+v, want %+v",
			id, len(gotRows), len(wantRows), diff, at(gotRows, diff), at(wantRows, diff))
	} else {
		t.Logf("snapshot %d is complete: %d rows in %d categories, equal to a from-scratch run", id, len(gotRows), len(gotCats))
	}
}

func at(rows []rankRow, i int) any {
	if i < len(rows) {
		return rows[i]
	}
	return "none"
}
