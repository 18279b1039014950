package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/salesrank/salesrank"
)

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

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
		o.ModTime, o.TakenAt = fromNanos(mod), fromNanos(takenAt)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return out, nil
}

// CommitBatch records b in one transaction: a new batch id, every object's manifest entry,
// every hourly partial, the rejects in the quarantine and the categories named. A crash, a
// lost connection or a cancelled ctx at any point leaves all of it or none of it.
//
// If any object's key is already in the manifest, it commits nothing and returns an error
// wrapping ErrAlreadyTaken that names the key. The check and the inserts run under the
// write lock, so of two rankers committing the same object, exactly one wins; the manifest's
// primary key backs this up (a duplicate that slipped past the check is refused the same way).
//
// b must name at least one object, each key once, and each hour at most once; partial hours
// must start on whole UTC minutes. Only after the commit does it set b.ID and every object's BatchID;
// on error b is unchanged.
func (db *DB) CommitBatch(ctx context.Context, b *salesrank.Batch) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	id, err := db.commitBatch(ctx, b)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == uniqueViolation && pgErr.TableName == "objects" {
		// Only a writer that skipped the write lock can get here. Name the key as the
		// check would have.
		key, kerr := firstTaken(ctx, db.pool, b.Objects)
		if kerr != nil || key == "" {
			return fmt.Errorf("commit batch: %w: %w", ErrAlreadyTaken, err)
		}
		return fmt.Errorf("commit batch: object %q: %w", key, ErrAlreadyTaken)
	}
	if err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	b.ID = id
	for i := range b.Objects {
		b.Objects[i].BatchID = id
	}
	return nil
}

func (db *DB) commitBatch(ctx context.Context, b *salesrank.Batch) (int64, error) {
	committedAt := time.Now().UnixNano()

	// Sorted keys probe and insert into the manifest's index in order.
	objs := slices.Clone(b.Objects)
	slices.SortFunc(objs, func(x, y salesrank.TakenObject) int { return strings.Compare(x.Key, y.Key) })
	parts := slices.Clone(b.Partials)
	slices.SortFunc(parts, func(x, y salesrank.HourPartial) int { return x.Hour.Compare(y.Hour) })
	cats := make([]int64, 0, len(b.Categories))
	for _, c := range b.Categories {
		cats = append(cats, int64(c))
	}
	slices.Sort(cats)
	cats = slices.Compact(cats)

	tx, err := db.beginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer rollback(tx) // a no-op after Commit

	if key, err := firstTaken(ctx, tx, objs); err != nil {
		return 0, fmt.Errorf("read manifest: %w", err)
	} else if key != "" {
		return 0, fmt.Errorf("object %q: %w", key, ErrAlreadyTaken)
	}

	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO batches (committed_at) VALUES ($1) RETURNING id`, committedAt).Scan(&id); err != nil {
		return 0, fmt.Errorf("insert batch: %w", err)
	}
	if err := db.step("batch:batch"); err != nil {
		return 0, err
	}

	_, err = copyFrom(ctx, tx, len(objs), pgx.Identifier{"objects"}, []string{"key", "etag", "size", "mod_time", "batch_id",
		"lines_read", "lines_rejected", "lines_too_late", "taken_at"},
		copyRows(len(objs), 9, func(row []any, i int) {
			o := &objs[i]
			row[0], row[1], row[2], row[3], row[4] = []byte(o.Key), []byte(o.ETag), o.Size, nanos(o.ModTime), id
			row[5], row[6], row[7], row[8] = o.LinesRead, o.LinesRejected, o.LinesTooLate, nanos(o.TakenAt)
		}))
	if err != nil {
		return 0, fmt.Errorf("insert objects: %w", err)
	}
	if err := db.step("batch:objects"); err != nil {
		return 0, err
	}

	// COPY sends rows in chunks as it encodes them, so a batch of large partials is never
	// held encoded all at once.
	_, err = copyFrom(ctx, tx, len(parts), pgx.Identifier{"partials"}, []string{"hour", "batch_id", "data"},
		copyRows(len(parts), 3, func(row []any, i int) {
			row[0], row[1], row[2] = parts[i].Hour.Unix(), id, blob(parts[i].Data)
		}))
	if err != nil {
		return 0, fmt.Errorf("insert partials: %w", err)
	}
	if err := db.step("batch:partials"); err != nil {
		return 0, err
	}

	if err := copyRejects(ctx, tx, "batch_id", id, b.Rejects, committedAt); err != nil {
		return 0, fmt.Errorf("insert rejected lines: %w", err)
	}
	if err := db.step("batch:rejects"); err != nil {
		return 0, err
	}

	if err := upsertIDs(ctx, tx, "categories", cats, committedAt); err != nil {
		return 0, fmt.Errorf("upsert categories: %w", err)
	}
	if err := db.step("batch:commit"); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return id, nil
}

// querier is what firstTaken needs: a transaction or the pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
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

// Partials calls fn for every stored partial whose hour is in [from, to), ordered by hour then
// batch id, and returns the first error fn returns, unwrapped. It reads with one statement,
// which sees one consistent state even while batches commit.
//
// data is only valid during the call: it is the driver's buffer for the row, which the next
// row reuses, so fn must copy what it keeps (decoding it is the usual use). An empty partial
// may come as nil. While fn runs the statement stays open and holds a pooled connection.
func (db *DB) Partials(ctx context.Context, from, to time.Time, fn func(hour time.Time, data []byte) error) error {
	rows, err := db.pool.Query(ctx, `SELECT hour, data FROM partials
		WHERE hour >= $1 AND hour < $2 ORDER BY hour, batch_id`, ceilUnix(from), ceilUnix(to))
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

// ReplacePartials replaces every stored partial of hour by one row holding data, the merge of
// them all (compaction). The row keeps the highest batch id it replaces, so it still sorts
// after nothing newer. It fails if hour has no partials.
//
// It replaces the rows the hour holds when it runs, including any committed after the caller
// read them to merge: only the one active ranker may compact, between its own commits.
func (db *DB) ReplacePartials(ctx context.Context, hour time.Time, data []byte) error {
	if err := salesrank.CheckBucketStart(hour); err != nil {
		return fmt.Errorf("replace partials: %w", err)
	}
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("replace partials of %v: begin: %w", hour.UTC(), err)
	}
	defer rollback(tx)
	var top *int64
	if err := tx.QueryRow(ctx, `SELECT max(batch_id) FROM partials WHERE hour = $1`, hour.Unix()).Scan(&top); err != nil {
		return fmt.Errorf("replace partials of %v: %w", hour.UTC(), err)
	}
	if top == nil {
		return fmt.Errorf("replace partials of %v: the hour has no partials", hour.UTC())
	}
	if _, err := tx.Exec(ctx, `DELETE FROM partials WHERE hour = $1`, hour.Unix()); err != nil {
		return fmt.Errorf("replace partials of %v: delete: %w", hour.UTC(), err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO partials (hour, batch_id, data) VALUES ($1, $2, $3)`,
		hour.Unix(), *top, blob(data)); err != nil {
		return fmt.Errorf("replace partials of %v: insert: %w", hour.UTC(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("replace partials of %v: commit: %w", hour.UTC(), err)
	}
	return nil
}

// DeletePartialsBefore deletes the partials of every hour before t, which have left the window
// and its grace period, and returns how many rows it deleted. The manifest keeps their
// objects: they stay taken.
func (db *DB) DeletePartialsBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM partials WHERE hour < $1`, ceilUnix(t))
	if err != nil {
		return 0, fmt.Errorf("delete partials before %v: %w", t, err)
	}
	return tag.RowsAffected(), nil
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

// PartialStats describes the stored partials, for reports and tests.
type PartialStats struct {
	Rows             int64
	Bytes            int64     // total size of the blobs
	MinHour, MaxHour time.Time // zero when there are no rows
}

// PartialStats returns the number of stored partials, their total size and their hour range.
// octet_length reads a TOASTed blob's size from its pointer, without fetching the blob.
func (db *DB) PartialStats(ctx context.Context) (PartialStats, error) {
	var (
		s      PartialStats
		lo, hi *int64
	)
	err := db.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(octet_length(data)), 0)::bigint, min(hour), max(hour)
		FROM partials`).Scan(&s.Rows, &s.Bytes, &lo, &hi)
	if err != nil {
		return PartialStats{}, fmt.Errorf("partial stats: %w", err)
	}
	if lo != nil {
		s.MinHour, s.MaxHour = time.Unix(*lo, 0).UTC(), time.Unix(*hi, 0).UTC()
	}
	return s, nil
}

// nanos is t as a column value: unix nanoseconds, or NULL for the zero time.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// blob binds b as a BYTEA: the driver would bind a nil slice as NULL.
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
