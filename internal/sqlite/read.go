package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/sharedrows"
)

// currentSQL picks the current snapshot: the latest cutoff, then the latest publication, so
// that a backfill of an older cutoff never replaces a newer snapshot.
const currentSQL = `SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT 1`

// Load reads snapshot id, or the current one if id is 0 (for store.Core's Current and
// Snapshot).
func (db backend) Load(ctx context.Context, id int64) (*salesrank.Snapshot, error) {
	what := "current snapshot"
	if id != 0 {
		what = fmt.Sprintf("snapshot %d", id)
	}
	// One read transaction: in WAL mode it sees the database as of its first SELECT, so the
	// queries below read the same snapshot even if a publish commits in between.
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("%s: begin: %w", what, err)
	}
	defer tx.Rollback()

	if id == 0 {
		err = tx.QueryRowContext(ctx, currentSQL).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%s: %w", what, salesrank.ErrNoSnapshot)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	var (
		s                                 = salesrank.Snapshot{ID: id}
		cutoff, start, interval, pubNanos int64
		nEntries                          int
		latest                            bool
	)
	err = tx.QueryRowContext(ctx, `SELECT cutoff, window_start, interval_seconds, top_k, published_at, entries,
		id = (SELECT max(id) FROM snapshots) FROM snapshots WHERE id = ?`, id).
		Scan(&cutoff, &start, &interval, &s.Top, &pubNanos, &nEntries, &latest)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", what, salesrank.ErrNoSnapshot)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s.Window = salesrank.Window{Start: time.Unix(start, 0).UTC(), End: time.Unix(cutoff, 0).UTC()}
	s.Interval = time.Duration(interval) * time.Second
	s.PublishedAt = time.Unix(0, pubNanos).UTC()

	rows, err := tx.QueryContext(ctx, `SELECT category_id FROM snapshot_categories
		WHERE snapshot_id = ? ORDER BY category_id`, s.ID)
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: categories: %w", s.ID, err)
	}
	var cats []int32
	for rows.Next() {
		var c int32
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return nil, fmt.Errorf("snapshot %d: categories: %w", s.ID, err)
		}
		cats = append(cats, c)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("snapshot %d: categories: %w", s.ID, err)
	}

	// The latest publication's rows are the open ones, in ranking order in the index; an
	// older snapshot's are those whose range holds it, sorted.
	q, arg := `SELECT id, category_id, product_id, total_sold FROM sales_rank
		WHERE last_snapshot_id = ? ORDER BY category_id, total_sold DESC, product_id`, int64(openEnd)
	if !latest {
		q, arg = `SELECT id, category_id, product_id, total_sold FROM sales_rank
		WHERE last_snapshot_id >= ?1 AND first_snapshot_id <= ?1 ORDER BY category_id, total_sold DESC, product_id`, s.ID
	}
	rows, err = tx.QueryContext(ctx, q, arg)
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: sales_rank: %w", s.ID, err)
	}
	defer rows.Close()
	asm := sharedrows.NewAssembler(&s, cats, nEntries)
	for rows.Next() {
		var (
			e salesrank.Entry
			c int32
		)
		if err := rows.Scan(&e.ID, &c, &e.ProductID, &e.TotalSold); err != nil {
			return nil, fmt.Errorf("snapshot %d: sales_rank: %w", s.ID, err)
		}
		if err := asm.Add(c, e); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("snapshot %d: sales_rank: %w", s.ID, err)
	}
	return asm.Done()
}

// CurrentID returns the current snapshot's id with one indexed lookup, for pollers that
// reload only when it changes. It returns an error wrapping salesrank.ErrNoSnapshot if
// nothing was published.
func (db *DB) CurrentID(ctx context.Context) (int64, error) {
	var id int64
	err := db.read.QueryRowContext(ctx, `SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT 1`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("current snapshot id: %w", salesrank.ErrNoSnapshot)
	}
	if err != nil {
		return 0, fmt.Errorf("current snapshot id: %w", err)
	}
	return id, nil
}

// SnapshotIDs returns the ids of the stored snapshots, the current one first, then by
// cutoff and id descending: the order in which they would become current.
func (db *DB) SnapshotIDs(ctx context.Context) ([]int64, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list snapshots: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return ids, nil
}

// Rejects returns at most limit quarantined lines, the most recently recorded first.
func (db *DB) Rejects(ctx context.Context, limit int) ([]salesrank.Reject, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.read.QueryContext(ctx, `SELECT object, line, reason, text FROM rejected_lines
		ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read rejected lines: %w", err)
	}
	defer rows.Close()
	var out []salesrank.Reject
	for rows.Next() {
		var r salesrank.Reject
		// Scanning into *[]byte copies the blob, so r.Text outlives the row.
		if err := rows.Scan(&r.Object, &r.Line, &r.Reason, &r.Text); err != nil {
			return nil, fmt.Errorf("read rejected lines: %w", err)
		}
		if r.Text == nil {
			r.Text = []byte{}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rejected lines: %w", err)
	}
	return out, nil
}
