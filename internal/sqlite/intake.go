package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/store"
)

// Manifest returns every taken object, in key order (byte order of the keys).
func (db *DB) Manifest(ctx context.Context) ([]salesrank.TakenObject, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT key, etag, size, mod_time, batch_id,
		lines_read, lines_rejected, lines_too_late, taken_at FROM objects ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer rows.Close()
	var out []salesrank.TakenObject
	for rows.Next() {
		var (
			o            salesrank.TakenObject
			mod, takenAt *int64
		)
		if err := rows.Scan(&o.Key, &o.ETag, &o.Size, &mod, &o.BatchID,
			&o.LinesRead, &o.LinesRejected, &o.LinesTooLate, &takenAt); err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		o.ModTime, o.TakenAt = store.FromNanos(mod), store.FromNanos(takenAt)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return out, nil
}

// Partials calls fn for every stored partial whose hour is in [from, to), ordered by hour then
// batch id, and returns the first error fn returns, unwrapped. It reads in one read
// transaction, so fn sees one consistent state even while batches commit.
//
// data is only valid during the call: it is the driver's buffer for the row, and the next row
// reuses or replaces it, so fn must copy what it keeps (decoding it is the usual use). An
// empty partial may come as nil. While fn runs a read transaction stays open, which holds
// back the WAL checkpoint, so fn should not linger.
func (db *DB) Partials(ctx context.Context, from, to time.Time, fn func(hour time.Time, data []byte) error) error {
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("read partials: begin: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT hour, data FROM partials
		WHERE hour >= ? AND hour < ? ORDER BY hour, batch_id`, store.CeilUnix(from), store.CeilUnix(to))
	if err != nil {
		return fmt.Errorf("read partials: %w", err)
	}
	defer rows.Close()
	var (
		hour int64
		// RawBytes points at the driver's copy of the blob instead of copying it once more:
		// the driver already copies it out of SQLite's memory into a fresh slice per row.
		data sql.RawBytes
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
	rows, err := db.read.QueryContext(ctx, `SELECT id FROM categories ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read categories: %w", err)
	}
	defer rows.Close()
	var out []int32
	for rows.Next() {
		var c int32
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("read categories: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read categories: %w", err)
	}
	return out, nil
}

// PartialStats is store.PartialStats.
type PartialStats = store.PartialStats

// PartialStats returns the number of stored partials, their total size and their hour range.
// It reads only the b-tree: SQLite gets a blob's length from its record header.
func (db *DB) PartialStats(ctx context.Context) (store.PartialStats, error) {
	var (
		s      store.PartialStats
		lo, hi sql.NullInt64
	)
	err := db.read.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(length(data)), 0), min(hour), max(hour)
		FROM partials`).Scan(&s.Rows, &s.Bytes, &lo, &hi)
	if err != nil {
		return store.PartialStats{}, fmt.Errorf("partial stats: %w", err)
	}
	if lo.Valid {
		s.MinHour, s.MaxHour = time.Unix(lo.Int64, 0).UTC(), time.Unix(hi.Int64, 0).UTC()
	}
	return s, nil
}
