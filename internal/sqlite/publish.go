package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/delta"
)

// maxParams bounds the parameters of one multi-row INSERT. SQLite allows 32766 since 3.32,
// but from about 100 rows a statement on, the size made no measurable difference to
// BenchmarkPublish: the time goes to b-tree and foreign-key work inside SQLite.
const maxParams = 4096

// Publish writes snap in one IMMEDIATE transaction, which makes it current atomically if its
// cutoff is the latest: readers see the previous snapshot until the commit, then this one.
//
// In the same transaction it records every category in known and every ranked category
// (known ones with no sales come back from Current with empty entries), the ranked products,
// the sales_rank rows that changed since the latest publication (package delta: a row whose
// product and total stay the same is shared, id and all), and rejects in the quarantine;
// then it prunes all but the Keep snapshots with the latest cutoffs. A backfill whose cutoff is older than all of those is therefore pruned at once;
// its rejects stay. Only after the commit does it set snap.ID, every Entry.ID (its sales_rank
// row id) and, if zero, snap.PublishedAt. On error nothing is written and snap is unchanged.
func (db *DB) Publish(ctx context.Context, snap *salesrank.Snapshot, known []int32, rejects []salesrank.Reject) (int64, error) {
	if err := snap.Validate(known); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	publishedAt := snap.PublishedAt
	if publishedAt.IsZero() {
		publishedAt = time.Now().UTC().Round(0) // Round(0) drops the monotonic reading
	}
	at := publishedAt.UnixNano()

	cats := slices.Clone(known)
	nEntries := 0
	for _, r := range snap.Rankings {
		cats = append(cats, r.CategoryID)
		nEntries += len(r.Entries)
	}
	slices.Sort(cats)
	cats = slices.Compact(cats)

	tx, err := db.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE: see the package comment
	if err != nil {
		return 0, fmt.Errorf("publish: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit

	// The rows of the latest publication are what this one is compared with. The write
	// lock is held, so the latest publication cannot change until the commit.
	var prev int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM snapshots`).Scan(&prev); err != nil {
		return 0, fmt.Errorf("publish: latest snapshot: %w", err)
	}
	open, err := db.openRows(ctx, tx, prev)
	if err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	plan := delta.Diff(open, snap)
	// Only new rows can name a product the table lacks; sorted keys insert into its b-tree
	// in order, which is markedly faster.
	products := plan.NewProducts()
	db.productsMu.Lock()
	products = slices.DeleteFunc(products, func(p int64) bool { _, ok := db.products[p]; return ok })
	db.productsMu.Unlock()

	res, err := tx.ExecContext(ctx, `INSERT INTO snapshots
		(cutoff, window_start, interval_seconds, top_k, published_at, categories, entries)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		snap.Window.End.Unix(), snap.Window.Start.Unix(), int64(snap.Interval/time.Second),
		snap.Top, at, len(cats), nEntries)
	if err != nil {
		return 0, fmt.Errorf("publish: insert snapshot: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("publish: insert snapshot: %w", err)
	}
	if err := db.step("snapshot"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}

	err = execRows(ctx, tx, "INSERT INTO categories (id, first_seen_at) VALUES", " ON CONFLICT (id) DO NOTHING",
		2, len(cats), func(args []any, i int) []any { return append(args, cats[i], at) })
	if err != nil {
		return 0, fmt.Errorf("publish: upsert categories: %w", err)
	}
	err = execRows(ctx, tx, "INSERT INTO snapshot_categories (snapshot_id, category_id) VALUES", "",
		2, len(cats), func(args []any, i int) []any { return append(args, id, cats[i]) })
	if err != nil {
		return 0, fmt.Errorf("publish: insert snapshot categories: %w", err)
	}
	err = execRows(ctx, tx, "INSERT INTO products (id, first_seen_at) VALUES", " ON CONFLICT (id) DO NOTHING",
		2, len(products), func(args []any, i int) []any { return append(args, products[i], at) })
	if err != nil {
		return 0, fmt.Errorf("publish: upsert products: %w", err)
	}
	if err := db.step("products"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}

	// Rows that changed or left were last valid in the previous publication. They are
	// found by their key, the table being clustered on it (see migration 0003), one
	// prepared statement a row in key order: at 8k rows a publication, 40% cheaper than
	// IN (VALUES …) lists, whose rows SQLite first sorts into a temporary index.
	if err := closeRows(ctx, tx, plan.Close, prev); err != nil {
		return 0, fmt.Errorf("publish: close sales_rank rows: %w", err)
	}
	// The writer holds the database lock, so it can number the rows itself and hand the ids
	// back without a RETURNING round trip per row; sales_rank_seq keeps the high-water
	// mark, so pruned ids are never handed out again.
	var base int64
	if err := tx.QueryRowContext(ctx, `SELECT last_id FROM sales_rank_seq`).Scan(&base); err != nil {
		return 0, fmt.Errorf("publish: next sales_rank id: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sales_rank_seq SET last_id = ?`, base+int64(len(plan.Insert))); err != nil {
		return 0, fmt.Errorf("publish: next sales_rank id: %w", err)
	}
	plan.Number(base)
	// Rankings are validated to be sorted by category, so new rows go in (category, rank)
	// order: ids ascend with the rank, and the index is appended to in runs.
	err = execRows(ctx, tx,
		"INSERT INTO sales_rank (id, category_id, product_id, total_sold, first_snapshot_id, last_snapshot_id) VALUES", "",
		6, len(plan.Insert), func(args []any, i int) []any {
			r := &plan.Insert[i]
			return append(args, r.ID, r.Category, r.ProductID, r.TotalSold, id, openEnd)
		})
	if err != nil {
		return 0, fmt.Errorf("publish: insert sales_rank: %w", err)
	}
	if err := db.step("sales_rank"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}

	err = execRows(ctx, tx,
		"INSERT INTO rejected_lines (snapshot_id, object, line, reason, text, recorded_at) VALUES", "",
		6, len(rejects), func(args []any, i int) []any {
			r := rejects[i]
			text := r.Text
			if text == nil {
				text = []byte{} // an empty line is a blob, not NULL
			}
			return append(args, id, r.Object, r.Line, r.Reason, text, at)
		})
	if err != nil {
		return 0, fmt.Errorf("publish: insert rejected lines: %w", err)
	}
	if err := db.step("rejects"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}

	if err := db.prune(ctx, tx, id); err != nil {
		return 0, fmt.Errorf("publish: prune snapshots: %w", err)
	}
	if err := db.step("commit"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("publish: commit: %w", err)
	}
	db.productsMu.Lock()
	if db.products == nil {
		db.products = make(map[int64]struct{}, len(products))
	}
	for _, p := range products {
		db.products[p] = struct{}{}
	}
	db.productsMu.Unlock()

	db.openMu.Lock()
	db.open = plan.Done(id) // sets every Entry.ID
	db.openMu.Unlock()
	snap.ID = id
	snap.PublishedAt = publishedAt
	return id, nil
}

// closeRows sets last_snapshot_id to prev on the given open rows, each of which must be
// open: a row that is not means the rows in memory disagree with the file.
func closeRows(ctx context.Context, tx *sql.Tx, rows []delta.Row, prev int64) error {
	if len(rows) == 0 {
		return nil
	}
	byKey := slices.Clone(rows)
	slices.SortFunc(byKey, func(a, b delta.Row) int {
		return cmp.Or(cmp.Compare(a.Category, b.Category), cmp.Compare(b.TotalSold, a.TotalSold), cmp.Compare(a.ProductID, b.ProductID))
	})
	stmt, err := tx.PrepareContext(ctx, `UPDATE sales_rank SET last_snapshot_id = ?
		WHERE last_snapshot_id = ? AND category_id = ? AND total_sold = ? AND product_id = ?`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, r := range byKey {
		res, err := stmt.ExecContext(ctx, prev, openEnd, r.Category, r.TotalSold, r.ProductID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("row %d (category %d, product %d, %d sold) is not open: %d rows affected (%v)", r.ID, r.Category, r.ProductID, r.TotalSold, n, err)
		}
	}
	return nil
}

// openEnd is last_snapshot_id of an open row: one of the latest publication, valid until a
// later one closes it.
const openEnd = math.MaxInt64

// openRows returns the open rows, which belong to snapshot prev (the latest publication):
// from memory if this handle made that publication, else read back from the file.
func (db *DB) openRows(ctx context.Context, tx *sql.Tx, prev int64) (*delta.Open, error) {
	db.openMu.Lock()
	o := db.open
	db.openMu.Unlock()
	if o != nil && o.Snapshot == prev {
		return o, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, category_id, product_id, total_sold FROM sales_rank
		WHERE last_snapshot_id = ?`, openEnd)
	if err != nil {
		return nil, fmt.Errorf("read open sales_rank rows: %w", err)
	}
	defer rows.Close()
	var all []delta.Row
	for rows.Next() {
		var r delta.Row
		if err := rows.Scan(&r.ID, &r.Category, &r.ProductID, &r.TotalSold); err != nil {
			return nil, fmt.Errorf("read open sales_rank rows: %w", err)
		}
		all = append(all, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read open sales_rank rows: %w", err)
	}
	return delta.NewOpen(prev, all), nil
}

// prune deletes all but the Keep snapshots with the latest cutoffs, and the closed rows that
// no remaining snapshot uses. Pruning by cutoff, not by id, keeps the snapshots readers may
// still want: the current one and those just before it. The snapshot just published (id)
// is never pruned, so a backfill of an old cutoff can be read until the next publication.
func (db *DB) prune(ctx context.Context, tx *sql.Tx, id int64) error {
	pruned, err := queryIDs(ctx, tx, `SELECT id FROM (SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT -1 OFFSET ?)
		WHERE id <> ? ORDER BY id`, max(db.Keep, 1), id)
	if err != nil || len(pruned) == 0 {
		return err
	}
	err = execRows(ctx, tx, "DELETE FROM snapshots WHERE id IN (VALUES", ")", 1, len(pruned),
		func(args []any, i int) []any { return append(args, pruned[i]) })
	if err != nil {
		return err
	}
	var oldest int64
	if err := tx.QueryRowContext(ctx, `SELECT min(id) FROM snapshots`).Scan(&oldest); err != nil {
		return err
	}
	// A closed row's last snapshot was the latest publication when it was closed. If that
	// is older than every remaining snapshot, so is the whole row: the common case, one
	// range of the index.
	if _, err := tx.ExecContext(ctx, `DELETE FROM sales_rank WHERE last_snapshot_id < ?`, oldest); err != nil {
		return err
	}
	// A backfill makes cutoffs and ids disagree, and a snapshot may be pruned while older
	// ids stay: then check every closed row newer than the oldest snapshot for one that
	// still uses it.
	if pruned[len(pruned)-1] > oldest {
		_, err = tx.ExecContext(ctx, `DELETE FROM sales_rank WHERE last_snapshot_id >= ? AND last_snapshot_id < ?
			AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.id BETWEEN sales_rank.first_snapshot_id AND sales_rank.last_snapshot_id)`,
			oldest, openEnd)
	}
	return err
}

// step calls the test hook, if any, at a named point of Publish.
func (db *DB) step(name string) error {
	if db.failAt == nil {
		return nil
	}
	return db.failAt(name)
}

// execRows runs head, "(?, …), (?, …)…" and tail over n rows of width parameters each, in
// as few statements as the parameter limit allows: a multi-row INSERT, or an UPDATE or
// DELETE of rows IN (VALUES …). fill appends row i's values to args; lead, if any, come first
// in every statement (as ?1, ?2, … when head numbers them). One statement with many rows
// costs SQLite one parse and the driver one call, which is what makes 100k rows cheap.
func execRows(ctx context.Context, tx *sql.Tx, head, tail string, width, n int, fill func(args []any, i int) []any, lead ...any) error {
	if n == 0 {
		return nil
	}
	per := max(1, (maxParams-len(lead))/width)
	var stmt *sql.Stmt
	stmtRows := 0
	args := make([]any, 0, min(n, per)*width+len(lead))
	for start := 0; start < n; start += per {
		k := min(per, n-start)
		if k != stmtRows { // the full-size statement is prepared once, the remainder once
			if stmt != nil {
				stmt.Close()
			}
			var err error
			stmt, err = tx.PrepareContext(ctx, rowsSQL(head, tail, width, k))
			if err != nil {
				return err
			}
			stmtRows = k
		}
		args = append(args[:0], lead...)
		for i := start; i < start+k; i++ {
			args = fill(args, i)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			stmt.Close()
			return err
		}
	}
	return stmt.Close()
}

func rowsSQL(head, tail string, width, rows int) string {
	var b strings.Builder
	tuple := "(" + strings.Repeat("?, ", width-1) + "?)"
	b.Grow(len(head) + len(tail) + rows*(len(tuple)+2))
	b.WriteString(head)
	for i := range rows {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(" ")
		b.WriteString(tuple)
	}
	b.WriteString(tail)
	return b.String()
}

// queryIDs returns the single integer column of query's rows.
func queryIDs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
