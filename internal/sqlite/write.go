package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/sharedrows"
	"github.com/salesrank/salesrank/internal/store"
)

// openEnd is the last_snapshot_id of a row valid until a later publication ends it
// (sharedrows.OpenEnd).
const openEnd = sharedrows.OpenEnd

// everyCategory, ANDed before a condition on last_snapshot_id, makes SQLite search
// sales_rank once per category, the first column of its key (migration 0005), instead of
// reading the whole table: there is no index that starts with last_snapshot_id.
const everyCategory = "category_id IN (SELECT id FROM categories)"

// The statements on sales_rank that would read the whole table if SQLite did not search
// it per category; TestQueryPlans checks that none does.
const (
	openRowsSQL = `SELECT id, category_id, product_id, total_sold, last_snapshot_id FROM sales_rank
		WHERE ` + everyCategory + ` AND last_snapshot_id >= ?`
	setLastSQL = `UPDATE sales_rank SET last_snapshot_id = ?
		WHERE category_id = ? AND last_snapshot_id = ? AND product_id IN (SELECT value FROM json_each(?))`
	deleteClosedSQL = `DELETE FROM sales_rank WHERE ` + everyCategory + ` AND last_snapshot_id < ?`
	deleteUnusedSQL = `DELETE FROM sales_rank WHERE ` + everyCategory + ` AND last_snapshot_id >= ? AND last_snapshot_id < ?
		AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.id BETWEEN sales_rank.first_snapshot_id AND sales_rank.last_snapshot_id)`
)

// backend is the DB as package store writes through it: unexported, so that no caller
// opens a write transaction around the store's caches.
type backend struct{ *DB }

// BeginWrite starts an IMMEDIATE transaction on the one write connection: it holds the
// file's write lock from its first statement (see the package comment). Package store
// runs every write through it.
func (db backend) BeginWrite(ctx context.Context) (store.Tx, error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	w := &writeTx{tx: tx, db: db.DB}
	if db.cacheShrunk {
		if err := w.setCache(ctx, cacheKiB); err != nil {
			tx.Rollback()
			return nil, err
		}
	}
	return w, nil
}

// AlreadyTaken returns nil: the check under the write lock is the only way an object is
// refused, and it names the key itself.
func (db backend) AlreadyTaken(context.Context, error, []salesrank.TakenObject) error { return nil }

// writeTx is store.Tx in SQLite's dialect.
type writeTx struct {
	tx *sql.Tx
	db *DB
}

// setCache sets the write connection's page cache to kib KiB.
func (w *writeTx) setCache(ctx context.Context, kib int) error {
	if _, err := w.tx.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = %d", -kib)); err != nil {
		return fmt.Errorf("set the page cache to %d KiB: %w", kib, err)
	}
	w.db.cacheShrunk = kib != cacheKiB
	return nil
}

// Commit commits, then has the WAL's new pages copied into the database file in the
// background (see checkpointer).
func (w *writeTx) Commit(context.Context) error {
	if err := w.tx.Commit(); err != nil {
		return err
	}
	w.db.ckpt.kick()
	return nil
}

func (w *writeTx) Rollback() { w.tx.Rollback() }

func (w *writeTx) LatestSnapshot(ctx context.Context) (int64, error) {
	var id int64
	err := w.tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM snapshots`).Scan(&id)
	return id, err
}

func (w *writeTx) OpenRows(ctx context.Context, prev int64) ([]sharedrows.Row, error) {
	rows, err := w.tx.QueryContext(ctx, openRowsSQL, prev)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var all []sharedrows.Row
	for rows.Next() {
		var r sharedrows.Row
		if err := rows.Scan(&r.ID, &r.Category, &r.ProductID, &r.TotalSold, &r.Last); err != nil {
			return nil, err
		}
		all = append(all, r)
	}
	return all, rows.Err()
}

func (w *writeTx) InsertSnapshot(ctx context.Context, s store.SnapshotRow) (int64, error) {
	res, err := w.tx.ExecContext(ctx, `INSERT INTO snapshots
		(cutoff, window_start, interval_seconds, top_k, published_at, categories, entries)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		s.Cutoff, s.WindowStart, s.IntervalSeconds, s.Top, s.PublishedAt, s.Categories, s.Entries)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (w *writeTx) UpsertCategories(ctx context.Context, cats []int32, at int64) error {
	return execRows(ctx, w.tx, "INSERT INTO categories (id, first_seen_at) VALUES", " ON CONFLICT (id) DO NOTHING",
		2, len(cats), func(args []any, i int) []any { return append(args, cats[i], at) })
}

func (w *writeTx) InsertSnapshotCategories(ctx context.Context, snapshot int64, cats []int32) error {
	return execRows(ctx, w.tx, "INSERT INTO snapshot_categories (snapshot_id, category_id) VALUES", "",
		2, len(cats), func(args []any, i int) []any { return append(args, snapshot, cats[i]) })
}

func (w *writeTx) UpsertProducts(ctx context.Context, products []int64, at int64) error {
	return execRows(ctx, w.tx, "INSERT INTO products (id, first_seen_at) VALUES", " ON CONFLICT (id) DO NOTHING",
		2, len(products), func(args []any, i int) []any { return append(args, products[i], at) })
}

// SetLast moves rows with one statement per category and current last_snapshot_id: SQLite
// walks those rows, one range of the key (migration 0005), and moves the ones whose product
// is in the list a few cells along, to their new range. Against a prepared UPDATE a row,
// this saves a fifth of the time an hourly publication takes to close 70k rows; the products
// go in as a JSON array, which needs one prepared statement whatever the list's length.
func (w *writeTx) SetLast(ctx context.Context, rows []sharedrows.Row, last int64) error {
	if len(rows) == 0 {
		return nil
	}
	// The rows of one statement must lie together. The kept rows an hourly publication
	// extends come so already (in ranking order, all ending at the publication before).
	byKey := rows
	byRange := func(a, b sharedrows.Row) int {
		return cmp.Or(cmp.Compare(a.Category, b.Category), cmp.Compare(a.Last, b.Last))
	}
	if !slices.IsSortedFunc(rows, byRange) {
		byKey = slices.Clone(rows)
		slices.SortFunc(byKey, func(a, b sharedrows.Row) int {
			return cmp.Or(byRange(a, b), cmp.Compare(a.ProductID, b.ProductID))
		})
	}
	stmt, err := w.tx.PrepareContext(ctx, setLastSQL)
	if err != nil {
		return err
	}
	defer stmt.Close()
	var list []byte
	for i := 0; i < len(byKey); {
		c, from := byKey[i].Category, byKey[i].Last
		list = append(list[:0], '[')
		j := i
		for ; j < len(byKey) && byKey[j].Category == c && byKey[j].Last == from; j++ {
			if j > i {
				list = append(list, ',')
			}
			list = strconv.AppendInt(list, byKey[j].ProductID, 10)
		}
		list = append(list, ']')
		res, err := stmt.ExecContext(ctx, last, c, from, string(list))
		if err != nil {
			return err
		}
		// Each row must be where memory says: one that is not means the rows in memory
		// disagree with the file.
		if n, err := res.RowsAffected(); err != nil || n != int64(j-i) {
			return fmt.Errorf("category %d: %d rows to move from last snapshot %d, of which %d are there (%v)", c, j-i, from, n, err)
		}
		i = j
	}
	return nil
}

// ReserveRowIDs takes the ids from sales_rank_seq, which keeps the high-water mark so that
// pruned ids are never handed out again. The writer holds the database lock, so reading
// and moving the mark is atomic.
func (w *writeTx) ReserveRowIDs(ctx context.Context, n int) (int64, error) {
	var base int64
	if err := w.tx.QueryRowContext(ctx, `SELECT last_id FROM sales_rank_seq`).Scan(&base); err != nil {
		return 0, err
	}
	_, err := w.tx.ExecContext(ctx, `UPDATE sales_rank_seq SET last_id = ?`, base+int64(n))
	return base, err
}

func (w *writeTx) InsertRows(ctx context.Context, rows []sharedrows.Row, snapshot, last int64) error {
	return execRows(ctx, w.tx,
		"INSERT INTO sales_rank (id, category_id, product_id, total_sold, first_snapshot_id, last_snapshot_id) VALUES", "",
		6, len(rows), func(args []any, i int) []any {
			r := &rows[i]
			return append(args, r.ID, r.Category, r.ProductID, r.TotalSold, snapshot, last)
		})
}

func (w *writeTx) InsertRejects(ctx context.Context, owner store.Owner, rejects []salesrank.Reject, at int64) error {
	column := "snapshot_id"
	if owner.Batch {
		column = "batch_id"
	}
	return execRows(ctx, w.tx,
		"INSERT INTO rejected_lines ("+column+", object, line, reason, text, recorded_at) VALUES", "",
		6, len(rejects), func(args []any, i int) []any {
			r := &rejects[i]
			return append(args, owner.ID, r.Object, r.Line, r.Reason, store.Blob(r.Text), at)
		})
}

func (w *writeTx) Prunable(ctx context.Context, keep int, retain, except int64) ([]int64, error) {
	return queryIDs(ctx, w.tx, `SELECT id FROM (SELECT id, cutoff FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT -1 OFFSET ?) o
		WHERE id <> ? AND NOT (cutoff >= (SELECT max(cutoff) FROM snapshots) - ? AND cutoff % 3600 = 0
			AND id = (SELECT max(s.id) FROM snapshots s WHERE s.cutoff = o.cutoff))
		ORDER BY id`, keep, except, retain)
}

func (w *writeTx) InsertStandings(ctx context.Context, snapshot, cutoff int64, rows []store.StandingsRow) error {
	return execRows(ctx, w.tx, "INSERT INTO standings (snapshot_id, cutoff, category_id, products_ranked, data) VALUES", "",
		5, len(rows), func(args []any, i int) []any {
			r := &rows[i]
			return append(args, snapshot, cutoff, r.CategoryID, r.ProductsRanked, r.Data)
		})
}

func (w *writeTx) ExpireStandings(ctx context.Context, horizon int64) error {
	_, err := w.tx.ExecContext(ctx, `DELETE FROM standings WHERE cutoff < (SELECT max(cutoff) FROM standings
		WHERE cutoff <= (SELECT max(cutoff) FROM snapshots) - ?)`, horizon)
	return err
}

// DeleteSnapshots lets snapshot_categories go by ON DELETE CASCADE.
func (w *writeTx) DeleteSnapshots(ctx context.Context, ids []int64) error {
	return execRows(ctx, w.tx, "DELETE FROM snapshots WHERE id IN (VALUES", ")", 1, len(ids),
		func(args []any, i int) []any { return append(args, ids[i]) })
}

func (w *writeTx) OldestSnapshot(ctx context.Context) (int64, error) {
	var id int64
	err := w.tx.QueryRowContext(ctx, `SELECT min(id) FROM snapshots`).Scan(&id)
	return id, err
}

func (w *writeTx) DeleteRowsClosedBefore(ctx context.Context, oldest int64) error {
	_, err := w.tx.ExecContext(ctx, deleteClosedSQL, oldest)
	return err
}

func (w *writeTx) DeleteUnusedRows(ctx context.Context, from int64) error {
	_, err := w.tx.ExecContext(ctx, deleteUnusedSQL, from, openEnd)
	return err
}

// Published does nothing: SQLite readers poll CurrentID.
func (w *writeTx) Published(context.Context) error { return nil }

func (w *writeTx) FirstTaken(ctx context.Context, objs []salesrank.TakenObject) (string, error) {
	per := maxParams
	args := make([]any, 0, min(per, len(objs)))
	for start := 0; start < len(objs); start += per {
		chunk := objs[start:min(start+per, len(objs))]
		args = args[:0]
		for _, o := range chunk {
			args = append(args, o.Key)
		}
		var key string
		err := w.tx.QueryRowContext(ctx, `SELECT key FROM objects WHERE key IN (?`+strings.Repeat(", ?", len(chunk)-1)+
			`) ORDER BY key LIMIT 1`, args...).Scan(&key)
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", err
		}
	}
	return "", nil
}

func (w *writeTx) InsertBatch(ctx context.Context, at int64) (int64, error) {
	res, err := w.tx.ExecContext(ctx, `INSERT INTO batches (committed_at) VALUES (?)`, at)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (w *writeTx) InsertObjects(ctx context.Context, batch int64, objs []salesrank.TakenObject) error {
	return execRows(ctx, w.tx, `INSERT INTO objects (key, etag, size, mod_time, batch_id,
		lines_read, lines_rejected, lines_too_late, taken_at) VALUES`, "",
		9, len(objs), func(args []any, i int) []any {
			o := &objs[i]
			return append(args, o.Key, o.ETag, o.Size, store.Nanos(o.ModTime), batch,
				o.LinesRead, o.LinesRejected, o.LinesTooLate, store.Nanos(o.TakenAt))
		})
}

// InsertPartials inserts one row per statement: a partial can be tens of megabytes, and the
// driver copies every bound blob to C memory before the statement runs, so a multi-row
// INSERT would hold all of them at once. Per-row overhead is nothing next to writing a
// megabyte.
func (w *writeTx) InsertPartials(ctx context.Context, batch int64, parts []salesrank.Partial) error {
	if len(parts) == 0 {
		return nil
	}
	// A large batch (a first run over a week: 45 MB of partials from a 10 M-line log) is
	// written through a small page cache, which SQLite spills to the WAL as it fills: held
	// whole in the 64 MiB cache, its pages took as much new memory, page by page, and the
	// run 10–14% longer. The cache is restored before the commit, keeping the pages the
	// publications read; if this transaction fails first, the next one restores it.
	var size int
	for _, p := range parts {
		size += len(p.Data)
	}
	if size > batchCacheAbove {
		if err := w.setCache(ctx, batchCacheKiB); err != nil {
			return err
		}
	}
	stmt, err := w.tx.PrepareContext(ctx, `INSERT INTO partials (hour, batch_id, data) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, p := range parts {
		if _, err := stmt.ExecContext(ctx, p.Start.Unix(), batch, store.Blob(p.Data)); err != nil {
			return fmt.Errorf("partial of %v: %w", p.Start.UTC(), err)
		}
	}
	if w.db.cacheShrunk {
		return w.setCache(ctx, cacheKiB)
	}
	return nil
}

func (w *writeTx) LastBatchOf(ctx context.Context, hour int64) (int64, bool, error) {
	var last *int64
	if err := w.tx.QueryRowContext(ctx, `SELECT max(batch_id) FROM partials WHERE hour = ?`, hour).Scan(&last); err != nil || last == nil {
		return 0, false, err
	}
	return *last, true, nil
}

func (w *writeTx) DeletePartials(ctx context.Context, from, to int64) (int64, error) {
	res, err := w.tx.ExecContext(ctx, `DELETE FROM partials WHERE hour >= ? AND hour < ?`, from, to)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
