package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/store"
)

// Manifest returns every taken object, in key order (byte order of the keys).
func (db *DB) Manifest(ctx context.Context) ([]salesrank.TakenObject, error) {
	rows, err := db.pool.Query(ctx, `SELECT key, etag, size, mod_time, batch_id,
		lines_read, lines_rejected, lines_too_late, taken_at FROM objects ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer rows.Close()
	var (
		out          []salesrank.TakenObject
		key, etag    pgtype.DriverBytes // copied by the string conversions below
		mod, takenAt *int64
	)
	for rows.Next() {
		var o salesrank.TakenObject
		if err := rows.Scan(&key, &etag, &o.Size, &mod, &o.BatchID,
			&o.LinesRead, &o.LinesRejected, &o.LinesTooLate, &takenAt); err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		o.Key, o.ETag = string(key), string(etag)
		o.ModTime, o.TakenAt = store.FromNanos(mod), store.FromNanos(takenAt)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return out, nil
}

// Partials calls fn for every stored partial whose hour is in [from, to), ordered by hour then
// batch id, and returns the first error fn returns, unwrapped. It reads with one statement,
// which sees one consistent state even while batches commit.
//
// data is only valid during the call: it is the driver's buffer for the row, which the next
// row reuses, so fn must copy what it keeps (decoding it is the usual use). An empty partial
// may come as nil. While fn runs the statement stays open and holds a pooled connection.
func (db *DB) Partials(ctx context.Context, from, to time.Time, fn func(hour time.Time, data []byte) error) error {
	rows, err := db.pool.Query(ctx, `SELECT hour, data FROM partials
		WHERE hour >= $1 AND hour < $2 ORDER BY hour, batch_id`, store.CeilUnix(from), store.CeilUnix(to))
	if err != nil {
		return fmt.Errorf("read partials: %w", err)
	}
	defer rows.Close()
	var (
		hour int64
		// DriverBytes points into the driver's read buffer instead of copying a blob of
		// megabytes once more.
		data pgtype.DriverBytes
	)
	for rows.Next() {
		if err := rows.Scan(&hour, &data); err != nil {
			return fmt.Errorf("read partials: %w", err)
		}
		if err := fn(time.Unix(hour, 0).UTC(), data); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read partials: %w", err)
	}
	return nil
}

// KnownCategories returns every category ever named by a good line (by a batch or a
// published snapshot), sorted.
func (db *DB) KnownCategories(ctx context.Context) ([]int32, error) {
	rows, err := db.pool.Query(ctx, `SELECT id FROM categories ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read categories: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("read categories: %w", err)
	}
	return out, nil
}

// PartialStats returns the number of stored partials, their total size and their hour range.
// octet_length reads a TOASTed blob's size from its pointer, without fetching the blob.
func (db *DB) PartialStats(ctx context.Context) (store.PartialStats, error) {
	var (
		s      store.PartialStats
		lo, hi *int64
	)
	err := db.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(octet_length(data)), 0)::bigint, min(hour), max(hour)
		FROM partials`).Scan(&s.Rows, &s.Bytes, &lo, &hi)
	if err != nil {
		return store.PartialStats{}, fmt.Errorf("partial stats: %w", err)
	}
	if lo != nil {
		s.MinHour, s.MaxHour = time.Unix(*lo, 0).UTC(), time.Unix(*hi, 0).UTC()
	}
	return s, nil
}
