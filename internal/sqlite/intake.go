package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/salesrank/salesrank"
)

// ErrAlreadyTaken is salesrank.ErrAlreadyTaken, which CommitBatch wraps when an object of
// the batch is already in the manifest.
var ErrAlreadyTaken = salesrank.ErrAlreadyTaken

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
			mod, takenAt sql.NullInt64
		)
		if err := rows.Scan(&o.Key, &o.ETag, &o.Size, &mod, &o.BatchID,
			&o.LinesRead, &o.LinesRejected, &o.LinesTooLate, &takenAt); err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		o.ModTime, o.TakenAt = fromNanos(mod), fromNanos(takenAt)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return out, nil
}

// CommitBatch records b in one IMMEDIATE transaction: a new batch id, every object's manifest
// entry, every hourly partial, the rejects in the quarantine and the categories named. A crash
// or a cancelled ctx at any point leaves all of it or none of it.
//
// If any object's key is already in the manifest, it commits nothing and returns an error
// wrapping ErrAlreadyTaken that names the key. The check and the inserts happen under the
// database's one write lock, so of two rankers committing the same object, exactly one wins.
//
// b must name at least one object, each key once, and each hour at most once; partial hours
// must start on whole UTC minutes. Only after the commit does it set b.ID and every object's BatchID;
// on error b is unchanged.
func (db *DB) CommitBatch(ctx context.Context, b *salesrank.Batch) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	committedAt := time.Now().UnixNano()

	// Sorted keys probe and insert into the manifest's b-tree in order.
	objs := slices.Clone(b.Objects)
	slices.SortFunc(objs, func(x, y salesrank.TakenObject) int { return strings.Compare(x.Key, y.Key) })
	parts := slices.Clone(b.Partials)
	slices.SortFunc(parts, func(x, y salesrank.HourPartial) int { return x.Hour.Compare(y.Hour) })
	cats := slices.Clone(b.Categories)
	slices.Sort(cats)
	cats = slices.Compact(cats)

	tx, err := db.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE: see the package comment
	if err != nil {
		return fmt.Errorf("commit batch: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit

	if key, err := firstTaken(ctx, tx, objs); err != nil {
		return fmt.Errorf("commit batch: read manifest: %w", err)
	} else if key != "" {
		return fmt.Errorf("commit batch: object %q: %w", key, ErrAlreadyTaken)
	}

	res, err := tx.ExecContext(ctx, `INSERT INTO batches (committed_at) VALUES (?)`, committedAt)
	if err != nil {
		return fmt.Errorf("commit batch: insert batch: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("commit batch: insert batch: %w", err)
	}
	if err := db.step("batch:batch"); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}

	err = execRows(ctx, tx, `INSERT INTO objects (key, etag, size, mod_time, batch_id,
		lines_read, lines_rejected, lines_too_late, taken_at) VALUES`, "",
		9, len(objs), func(args []any, i int) []any {
			o := objs[i]
			return append(args, o.Key, o.ETag, o.Size, nanos(o.ModTime), id,
				o.LinesRead, o.LinesRejected, o.LinesTooLate, nanos(o.TakenAt))
		})
	if err != nil {
		return fmt.Errorf("commit batch: insert objects: %w", err)
	}
	if err := db.step("batch:objects"); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}

	// One row per statement: a partial can be tens of megabytes, and the driver copies every
	// bound blob to C memory before the statement runs, so a multi-row INSERT would hold all
	// of them at once. Per-row overhead is nothing next to writing a megabyte.
	if len(parts) > 0 {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO partials (hour, batch_id, data) VALUES (?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("commit batch: insert partials: %w", err)
		}
		defer stmt.Close()
		for _, p := range parts {
			if _, err := stmt.ExecContext(ctx, p.Hour.Unix(), id, blob(p.Data)); err != nil {
				return fmt.Errorf("commit batch: insert partial of %v: %w", p.Hour.UTC(), err)
			}
		}
	}
	if err := db.step("batch:partials"); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}

	err = execRows(ctx, tx,
		"INSERT INTO rejected_lines (batch_id, object, line, reason, text, recorded_at) VALUES", "",
		6, len(b.Rejects), func(args []any, i int) []any {
			r := b.Rejects[i]
			return append(args, id, r.Object, r.Line, r.Reason, blob(r.Text), committedAt)
		})
	if err != nil {
		return fmt.Errorf("commit batch: insert rejected lines: %w", err)
	}
	if err := db.step("batch:rejects"); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}

	err = execRows(ctx, tx, "INSERT INTO categories (id, first_seen_at) VALUES", " ON CONFLICT (id) DO NOTHING",
		2, len(cats), func(args []any, i int) []any { return append(args, cats[i], committedAt) })
	if err != nil {
		return fmt.Errorf("commit batch: upsert categories: %w", err)
	}
	if err := db.step("batch:commit"); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit batch: commit: %w", err)
	}

	b.ID = id
	for i := range b.Objects {
		b.Objects[i].BatchID = id
	}
	return nil
}

// firstTaken returns the smallest key of objs (sorted by key) already in the manifest, or "".
func firstTaken(ctx context.Context, tx *sql.Tx, objs []salesrank.TakenObject) (string, error) {
	per := maxParams
	args := make([]any, 0, min(per, len(objs)))
	for start := 0; start < len(objs); start += per {
		chunk := objs[start:min(start+per, len(objs))]
		args = args[:0]
		for _, o := range chunk {
			args = append(args, o.Key)
		}
		var key string
		err := tx.QueryRowContext(ctx, `SELECT key FROM objects WHERE key IN (?`+strings.Repeat(", ?", len(chunk)-1)+
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

// nanos is t as a column value: unix nanoseconds, or NULL for the zero time.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// blob binds b as a BLOB: the driver would bind a nil slice as NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ceilUnix returns the smallest whole unix second not before t. Hours are whole seconds, so
// "hour >= t" is "hour >= ceilUnix(t)" and "hour < t" is "hour < ceilUnix(t)".
func ceilUnix(t time.Time) int64 {
	s := t.Unix() // floors: Nanosecond is always in [0, 1e9)
	if t.Nanosecond() != 0 {
		s++
	}
	return s
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
		WHERE hour >= ? AND hour < ? ORDER BY hour, batch_id`, ceilUnix(from), ceilUnix(to))
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

// ReplacePartials replaces every stored partial of hour by one row holding data, the merge of
// them all (compaction: the sixty batches of an hour refreshed every minute become one row).
// The row keeps the highest batch id it replaces, so it still sorts after nothing newer.
// It fails if hour has no partials.
//
// It replaces the rows the hour holds when it runs, including any committed after the caller
// read them to merge: only the one active ranker may compact, between its own commits.
func (db *DB) ReplacePartials(ctx context.Context, hour time.Time, data []byte) error {
	if err := salesrank.CheckBucketStart(hour); err != nil {
		return fmt.Errorf("replace partials: %w", err)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("replace partials of %v: begin: %w", hour.UTC(), err)
	}
	defer tx.Rollback()
	var top sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(batch_id) FROM partials WHERE hour = ?`, hour.Unix()).Scan(&top); err != nil {
		return fmt.Errorf("replace partials of %v: %w", hour.UTC(), err)
	}
	if !top.Valid {
		return fmt.Errorf("replace partials of %v: the hour has no partials", hour.UTC())
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM partials WHERE hour = ?`, hour.Unix()); err != nil {
		return fmt.Errorf("replace partials of %v: delete: %w", hour.UTC(), err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO partials (hour, batch_id, data) VALUES (?, ?, ?)`,
		hour.Unix(), top.Int64, blob(data)); err != nil {
		return fmt.Errorf("replace partials of %v: insert: %w", hour.UTC(), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("replace partials of %v: commit: %w", hour.UTC(), err)
	}
	return nil
}

// DeletePartialsBefore deletes the partials of every hour before t, which have left the window
// and its grace period, and returns how many rows it deleted. The manifest keeps their
// objects: they stay taken.
func (db *DB) DeletePartialsBefore(ctx context.Context, t time.Time) (int64, error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("delete partials before %v: begin: %w", t, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM partials WHERE hour < ?`, ceilUnix(t))
	if err != nil {
		return 0, fmt.Errorf("delete partials before %v: %w", t, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete partials before %v: %w", t, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("delete partials before %v: commit: %w", t, err)
	}
	return n, nil
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

// PartialStats describes the stored partials, for reports and tests.
type PartialStats struct {
	Rows             int64
	Bytes            int64     // total size of the blobs
	MinHour, MaxHour time.Time // zero when there are no rows
}

// PartialStats returns the number of stored partials, their total size and their hour range.
// It reads only the b-tree: SQLite gets a blob's length from its record header.
func (db *DB) PartialStats(ctx context.Context) (PartialStats, error) {
	var (
		s      PartialStats
		lo, hi sql.NullInt64
	)
	err := db.read.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(length(data)), 0), min(hour), max(hour)
		FROM partials`).Scan(&s.Rows, &s.Bytes, &lo, &hi)
	if err != nil {
		return PartialStats{}, fmt.Errorf("partial stats: %w", err)
	}
	if lo.Valid {
		s.MinHour, s.MaxHour = time.Unix(lo.Int64, 0).UTC(), time.Unix(hi.Int64, 0).UTC()
	}
	return s, nil
}
