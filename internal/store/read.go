package store

import (
	"context"
	"fmt"
	"time"

	"github.com/salesrank/salesrank"
)

// RawBytes is a scan destination for a blob that a backend fills without copying it: it is
// the driver's buffer for the row, valid until the next row is scanned.
type RawBytes []byte

// ScanRaw returns scan made to fill each *RawBytes of its destinations through the driver's
// own type for a blob it does not copy: newRaw returns a destination of that type and a
// function that reads back what was scanned into it.
func ScanRaw(scan func(dest ...any) error, newRaw func() (dest any, get func() []byte)) func(dest ...any) error {
	return func(dest ...any) error {
		type fill struct {
			to  *RawBytes
			get func() []byte
		}
		var fills []fill
		for i, d := range dest {
			if to, ok := d.(*RawBytes); ok {
				raw, get := newRaw()
				dest[i], fills = raw, append(fills, fill{to, get})
			}
		}
		if err := scan(dest...); err != nil {
			return err
		}
		for _, f := range fills {
			*f.to = f.get()
		}
		return nil
	}
}

// The reads below are one statement each, which sees one committed state, in SQL both
// databases speak; "?" marks a parameter, which a backend rewrites to its own syntax.

// CurrentID returns the current snapshot's id with one indexed lookup, for pollers that
// reload only when it changes: the latest cutoff, then the latest publication, so that a
// backfill of an older cutoff never replaces a newer snapshot. It returns an error wrapping
// salesrank.ErrNoSnapshot if nothing was published.
func (c *Core) CurrentID(ctx context.Context) (int64, error) {
	var id int64
	found := false
	err := c.backend.Read(ctx, `SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT 1`, nil,
		func(scan func(...any) error) error { found = true; return scan(&id) })
	switch {
	case err != nil:
		return 0, fmt.Errorf("current snapshot id: %w", err)
	case !found:
		return 0, fmt.Errorf("current snapshot id: %w", salesrank.ErrNoSnapshot)
	}
	return id, nil
}

// SnapshotIDs returns the ids of the stored snapshots, the current one first, then by
// cutoff and id descending: the order in which they would become current.
func (c *Core) SnapshotIDs(ctx context.Context) ([]int64, error) {
	var ids []int64
	err := c.backend.Read(ctx, `SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC`, nil,
		func(scan func(...any) error) error {
			var id int64
			if err := scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return ids, nil
}

// Rejects returns at most limit quarantined lines, the most recently recorded first.
func (c *Core) Rejects(ctx context.Context, limit int) ([]salesrank.Reject, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []salesrank.Reject
	err := c.backend.Read(ctx, `SELECT object, line, reason, text FROM rejected_lines ORDER BY id DESC LIMIT ?`,
		[]any{limit}, func(scan func(...any) error) error {
			var (
				r      salesrank.Reject
				object RawBytes
			)
			// Scanning into *[]byte copies the value, so r.Text outlives the row.
			if err := scan(&object, &r.Line, &r.Reason, &r.Text); err != nil {
				return err
			}
			r.Object = string(object)
			if r.Text == nil {
				r.Text = []byte{}
			}
			out = append(out, r)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read rejected lines: %w", err)
	}
	return out, nil
}

// Manifest returns every taken object, in key order (byte order of the keys).
func (c *Core) Manifest(ctx context.Context) ([]salesrank.TakenObject, error) {
	var out []salesrank.TakenObject
	err := c.backend.Read(ctx, `SELECT key, etag, size, mod_time, batch_id,
		lines_read, lines_rejected, lines_too_late, taken_at FROM objects ORDER BY key`, nil,
		func(scan func(...any) error) error {
			var (
				o            salesrank.TakenObject
				key, etag    RawBytes // copied by the string conversions below
				mod, takenAt *int64
			)
			if err := scan(&key, &etag, &o.Size, &mod, &o.BatchID,
				&o.LinesRead, &o.LinesRejected, &o.LinesTooLate, &takenAt); err != nil {
				return err
			}
			o.Key, o.ETag = string(key), string(etag)
			o.ModTime, o.TakenAt = FromNanos(mod), FromNanos(takenAt)
			out = append(out, o)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return out, nil
}

// KnownCategories returns every category ever named by a good line (by a batch or a
// published snapshot), sorted.
func (c *Core) KnownCategories(ctx context.Context) ([]int32, error) {
	var out []int32
	err := c.backend.Read(ctx, `SELECT id FROM categories ORDER BY id`, nil,
		func(scan func(...any) error) error {
			var id int32
			if err := scan(&id); err != nil {
				return err
			}
			out = append(out, id)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read categories: %w", err)
	}
	return out, nil
}

// Partials calls fn for every stored partial whose bucket starts in [from, to), ordered by
// start then batch id, and returns the first error fn returns, unwrapped. It reads with one
// statement, which sees one consistent state even while batches commit.
//
// data is only valid during the call: it is the driver's buffer for the row (RawBytes), so
// fn must copy what it keeps (decoding it is the usual use). An empty partial may come as
// nil. While fn runs the statement stays open, holding a connection (and, in SQLite, the
// WAL checkpoint back), so fn should not linger.
func (c *Core) Partials(ctx context.Context, from, to time.Time, fn func(start time.Time, data []byte) error) error {
	var fnErr error
	err := c.backend.Read(ctx, `SELECT hour, data FROM partials WHERE hour >= ? AND hour < ? ORDER BY hour, batch_id`,
		[]any{CeilUnix(from), CeilUnix(to)}, func(scan func(...any) error) error {
			var (
				start int64
				data  RawBytes
			)
			if err := scan(&start, &data); err != nil {
				return err
			}
			fnErr = fn(time.Unix(start, 0).UTC(), data)
			return fnErr
		})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("read partials: %w", err)
	}
	return nil
}

// PartialStats returns the number of stored partials, their total size and their range of
// buckets. Both databases read a blob's length without reading the blob: SQLite from its
// record header, PostgreSQL from the TOAST pointer.
func (c *Core) PartialStats(ctx context.Context) (PartialStats, error) {
	var (
		s      PartialStats
		lo, hi *int64
	)
	err := c.backend.Read(ctx, `SELECT count(*), coalesce(sum(length(data)), 0), min(hour), max(hour) FROM partials`, nil,
		func(scan func(...any) error) error { return scan(&s.Rows, &s.Bytes, &lo, &hi) })
	if err != nil {
		return PartialStats{}, fmt.Errorf("partial stats: %w", err)
	}
	if lo != nil {
		s.MinHour, s.MaxHour = time.Unix(*lo, 0).UTC(), time.Unix(*hi, 0).UTC()
	}
	return s, nil
}
