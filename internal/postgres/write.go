package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/sharedrows"
	"github.com/salesrank/salesrank/internal/store"
)

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// backend is the DB as package store writes through it: unexported, so that no caller
// opens a write transaction around the store's caches.
type backend struct{ *DB }

// BeginWrite starts a transaction holding the write lock (see the package comment).
// Package store runs every write through it: the sales_rank rows, the snapshot's
// categories, the manifest entries, the partials and the rejects go in with COPY;
// categories and products, which may exist already, with one INSERT … ON CONFLICT DO
// NOTHING of an array each (COPY cannot skip existing rows).
func (db backend) BeginWrite(ctx context.Context) (store.Tx, error) {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return nil, err
	}
	return &writeTx{tx: tx}, nil
}

// AlreadyTaken names the key when the manifest's primary key refused an object: only a
// writer that skipped the write lock can get there, and the check would have named it.
func (db backend) AlreadyTaken(ctx context.Context, err error, objs []salesrank.TakenObject) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != uniqueViolation || pgErr.TableName != "objects" {
		return nil
	}
	key, kerr := firstTaken(ctx, db.pool, objs)
	if kerr != nil || key == "" {
		return fmt.Errorf("%w: %w", salesrank.ErrAlreadyTaken, err)
	}
	return fmt.Errorf("object %q: %w", key, salesrank.ErrAlreadyTaken)
}

// writeTx is store.Tx in PostgreSQL's dialect.
type writeTx struct{ tx pgx.Tx }

func (w *writeTx) Commit(ctx context.Context) error { return w.tx.Commit(ctx) }
func (w *writeTx) Rollback()                        { rollback(w.tx) }

func (w *writeTx) LatestSnapshot(ctx context.Context) (int64, error) {
	var id int64
	err := w.tx.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM snapshots`).Scan(&id)
	return id, err
}

func (w *writeTx) OpenRows(ctx context.Context, prev int64) ([]sharedrows.Row, error) {
	rows, err := w.tx.Query(ctx, `SELECT id, category_id, product_id, total_sold, last_snapshot_id FROM sales_rank
		WHERE last_snapshot_id >= $1`, prev)
	if err != nil {
		return nil, err
	}
	var all []sharedrows.Row
	var r sharedrows.Row
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Category, &r.ProductID, &r.TotalSold, &r.Last}, func() error {
		all = append(all, r)
		return nil
	})
	return all, err
}

func (w *writeTx) InsertSnapshot(ctx context.Context, s store.SnapshotRow) (int64, error) {
	var id int64
	err := w.tx.QueryRow(ctx, `INSERT INTO snapshots
		(cutoff, window_start, interval_seconds, top_k, published_at, categories, entries)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		s.Cutoff, s.WindowStart, s.IntervalSeconds, s.Top, s.PublishedAt, s.Categories, s.Entries).Scan(&id)
	return id, err
}

func (w *writeTx) UpsertCategories(ctx context.Context, cats []int32, at int64) error {
	return upsertIDs(ctx, w.tx, "categories", widen(cats), at)
}

func (w *writeTx) InsertSnapshotCategories(ctx context.Context, snapshot int64, cats []int32) error {
	_, err := copyFrom(ctx, w.tx, len(cats), pgx.Identifier{"snapshot_categories"}, []string{"snapshot_id", "category_id"},
		copyRows(len(cats), 2, func(row []any, i int) { row[0], row[1] = snapshot, int64(cats[i]) }))
	return err
}

func (w *writeTx) UpsertProducts(ctx context.Context, products []int64, at int64) error {
	return upsertIDs(ctx, w.tx, "products", products, at)
}

func (w *writeTx) SetLast(ctx context.Context, rows []sharedrows.Row, last int64) error {
	if len(rows) == 0 {
		return nil
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	slices.Sort(ids) // row locks in one order, whoever takes them
	_, err := w.tx.Exec(ctx, `UPDATE sales_rank SET last_snapshot_id = $1 WHERE id = ANY($2)`, last, ids)
	return err
}

// ReserveRowIDs takes a block of ids from the identity's sequence. The write lock makes the
// nextval/setval pair atomic with respect to every other publisher, and nothing else draws
// from this sequence. A rolled-back publish burns its block: ids are never handed out
// twice, which is what matters.
func (w *writeTx) ReserveRowIDs(ctx context.Context, n int) (int64, error) {
	var last int64
	err := w.tx.QueryRow(ctx, `SELECT setval(pg_get_serial_sequence('sales_rank', 'id'),
		nextval(pg_get_serial_sequence('sales_rank', 'id')) + $1 - 1)`, int64(n)).Scan(&last)
	return last - int64(n), err
}

func (w *writeTx) InsertRows(ctx context.Context, rows []sharedrows.Row, snapshot, last int64) error {
	_, err := copyFrom(ctx, w.tx, len(rows), pgx.Identifier{"sales_rank"},
		[]string{"id", "category_id", "product_id", "total_sold", "first_snapshot_id", "last_snapshot_id"},
		copyRows(len(rows), 6, func(row []any, i int) {
			r := &rows[i]
			row[0], row[1], row[2], row[3], row[4], row[5] = r.ID, int64(r.Category), r.ProductID, r.TotalSold, snapshot, last
		}))
	return err
}

func (w *writeTx) InsertRejects(ctx context.Context, owner store.Owner, rejects []salesrank.Reject, at int64) error {
	column := "snapshot_id"
	if owner.Batch {
		column = "batch_id"
	}
	_, err := copyFrom(ctx, w.tx, len(rejects), pgx.Identifier{"rejected_lines"},
		[]string{column, "object", "line", "reason", "text", "recorded_at"},
		copyRows(len(rejects), 6, func(row []any, i int) {
			r := &rejects[i]
			row[0], row[1], row[2], row[3], row[4], row[5] = owner.ID, []byte(r.Object), r.Line, r.Reason, store.Blob(r.Text), at
		}))
	return err
}

func (w *writeTx) Prunable(ctx context.Context, keep int, retain, except int64) ([]int64, error) {
	rows, err := w.tx.Query(ctx, `SELECT id FROM (SELECT id, cutoff FROM snapshots ORDER BY cutoff DESC, id DESC OFFSET $1) o
		WHERE id <> $2 AND NOT (cutoff >= (SELECT max(cutoff) FROM snapshots) - $3 AND cutoff % 3600 = 0
			AND id = (SELECT max(s.id) FROM snapshots s WHERE s.cutoff = o.cutoff))
		ORDER BY id`, keep, except, retain)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// InsertStandings COPYs the rows: a publication of full ranks at the seed's scale is some
// 50 MB of blobs.
func (w *writeTx) InsertStandings(ctx context.Context, snapshot, cutoff int64, rows []store.StandingsRow) error {
	_, err := copyFrom(ctx, w.tx, len(rows), pgx.Identifier{"standings"},
		[]string{"snapshot_id", "cutoff", "category_id", "products_ranked", "data"},
		copyRows(len(rows), 5, func(row []any, i int) {
			r := &rows[i]
			row[0], row[1], row[2], row[3], row[4] = snapshot, cutoff, r.CategoryID, r.ProductsRanked, r.Data
		}))
	return err
}

func (w *writeTx) ExpireStandings(ctx context.Context, horizon int64) error {
	_, err := w.tx.Exec(ctx, `DELETE FROM standings WHERE cutoff < (SELECT max(cutoff) FROM standings
		WHERE cutoff <= (SELECT max(cutoff) FROM snapshots) - $1)`, horizon)
	return err
}

// DeleteSnapshots deletes their snapshot_categories explicitly rather than through ON
// DELETE CASCADE (which stays as a safety net), whose triggers delete row by row.
func (w *writeTx) DeleteSnapshots(ctx context.Context, ids []int64) error {
	for _, q := range []string{
		`DELETE FROM snapshot_categories WHERE snapshot_id = ANY($1)`,
		`DELETE FROM snapshots WHERE id = ANY($1)`,
	} {
		if _, err := w.tx.Exec(ctx, q, ids); err != nil {
			return err
		}
	}
	return nil
}

func (w *writeTx) OldestSnapshot(ctx context.Context) (int64, error) {
	var id int64
	err := w.tx.QueryRow(ctx, `SELECT min(id) FROM snapshots`).Scan(&id)
	return id, err
}

func (w *writeTx) DeleteRowsClosedBefore(ctx context.Context, oldest int64) error {
	_, err := w.tx.Exec(ctx, `DELETE FROM sales_rank WHERE last_snapshot_id < $1`, oldest)
	return err
}

func (w *writeTx) DeleteUnusedRows(ctx context.Context, from int64) error {
	_, err := w.tx.Exec(ctx, `DELETE FROM sales_rank r WHERE last_snapshot_id >= $1 AND last_snapshot_id < $2
		AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.id BETWEEN r.first_snapshot_id AND r.last_snapshot_id)`,
		from, int64(openEnd))
	return err
}

// Published notifies Channel: listeners hear of it when, and only if, the transaction
// commits. The payload is the current id, which a backfill leaves unchanged, so that a
// listener can compare it with the one it holds.
func (w *writeTx) Published(ctx context.Context) error {
	_, err := w.tx.Exec(ctx, `SELECT pg_notify($1, (SELECT id FROM snapshots
		ORDER BY cutoff DESC, id DESC LIMIT 1)::text)`, Channel)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

func (w *writeTx) FirstTaken(ctx context.Context, objs []salesrank.TakenObject) (string, error) {
	return firstTaken(ctx, w.tx, objs)
}

func (w *writeTx) InsertBatch(ctx context.Context, at int64) (int64, error) {
	var id int64
	err := w.tx.QueryRow(ctx, `INSERT INTO batches (committed_at) VALUES ($1) RETURNING id`, at).Scan(&id)
	return id, err
}

func (w *writeTx) InsertObjects(ctx context.Context, batch int64, objs []salesrank.TakenObject) error {
	_, err := copyFrom(ctx, w.tx, len(objs), pgx.Identifier{"objects"}, []string{"key", "etag", "size", "mod_time", "batch_id",
		"lines_read", "lines_rejected", "lines_too_late", "taken_at"},
		copyRows(len(objs), 9, func(row []any, i int) {
			o := &objs[i]
			row[0], row[1], row[2], row[3], row[4] = []byte(o.Key), []byte(o.ETag), o.Size, store.Nanos(o.ModTime), batch
			row[5], row[6], row[7], row[8] = o.LinesRead, o.LinesRejected, o.LinesTooLate, store.Nanos(o.TakenAt)
		}))
	return err
}

// InsertPartials COPYs the partials: COPY sends rows in chunks as it encodes them, so a
// batch of large partials is never held encoded all at once.
func (w *writeTx) InsertPartials(ctx context.Context, batch int64, parts []salesrank.Partial) error {
	_, err := copyFrom(ctx, w.tx, len(parts), pgx.Identifier{"partials"}, []string{"hour", "batch_id", "data"},
		copyRows(len(parts), 3, func(row []any, i int) {
			row[0], row[1], row[2] = parts[i].Start.Unix(), batch, store.Blob(parts[i].Data)
		}))
	return err
}

// widen returns ids as PostgreSQL's bigint array wants them.
func widen(ids []int32) []int64 {
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

// querier is what firstTaken needs: a transaction or the pool.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// firstTaken returns the smallest key of objs already in the manifest, or "".
func firstTaken(ctx context.Context, q querier, objs []salesrank.TakenObject) (string, error) {
	keys := make([][]byte, len(objs))
	for i, o := range objs {
		keys[i] = []byte(o.Key)
	}
	var key []byte
	err := q.QueryRow(ctx, `SELECT key FROM objects WHERE key = ANY($1::bytea[]) ORDER BY key LIMIT 1`, keys).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(key), nil
}

func (w *writeTx) LastBatchOf(ctx context.Context, hour int64) (int64, bool, error) {
	var last *int64
	if err := w.tx.QueryRow(ctx, `SELECT max(batch_id) FROM partials WHERE hour = $1`, hour).Scan(&last); err != nil || last == nil {
		return 0, false, err
	}
	return *last, true, nil
}

func (w *writeTx) DeletePartials(ctx context.Context, from, to int64) (int64, error) {
	tag, err := w.tx.Exec(ctx, `DELETE FROM partials WHERE hour >= $1 AND hour < $2`, from, to)
	return tag.RowsAffected(), err
}
