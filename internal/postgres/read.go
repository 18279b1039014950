package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/sharedrows"
)

// Load reads snapshot id, or the current one if id is 0 (for store.Core's Current and
// Snapshot).
func (db backend) Load(ctx context.Context, id int64) (*salesrank.Snapshot, error) {
	what := "current snapshot"
	if id != 0 {
		what = fmt.Sprintf("snapshot %d", id)
	}
	// One REPEATABLE READ transaction: under the default READ COMMITTED each statement sees
	// the latest commit, so the rows could come from a newer snapshot than the metadata, or
	// from none once a publish pruned it. A read-only REPEATABLE READ transaction never
	// fails to serialize and sees the database as of its first query.
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("%s: begin: %w", what, err)
	}
	defer rollback(tx)

	// The snapshot's row, then, in one round trip (a replica may sit far from its
	// database: every round trip is paid on each new snapshot), its categories and rows.
	var (
		s                                 salesrank.Snapshot
		cutoff, start, interval, pubNanos int64
		top, nEntries                     int64
		latest                            bool
		meta                              pgx.Row
	)
	const metaSQL = `SELECT id, cutoff, window_start, interval_seconds, top_k, published_at, entries,
		id = (SELECT max(id) FROM snapshots) FROM snapshots`
	if id == 0 {
		meta = tx.QueryRow(ctx, metaSQL+` ORDER BY cutoff DESC, id DESC LIMIT 1`)
	} else {
		meta = tx.QueryRow(ctx, metaSQL+` WHERE id = $1`, id)
	}
	err = meta.Scan(&s.ID, &cutoff, &start, &interval, &top, &pubNanos, &nEntries, &latest)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", what, salesrank.ErrNoSnapshot)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s.Top = int(top)
	s.Window = salesrank.Window{Start: time.Unix(start, 0).UTC(), End: time.Unix(cutoff, 0).UTC()}
	s.Interval = time.Duration(interval) * time.Second
	s.PublishedAt = time.Unix(0, pubNanos).UTC()

	batch := &pgx.Batch{}
	batch.Queue(`SELECT category_id FROM snapshot_categories WHERE snapshot_id = $1 ORDER BY category_id`, s.ID)
	// The latest publication's rows are the open ones, in ranking order in the index; an
	// older snapshot's are those whose range holds it, sorted.
	if latest {
		// A plain index scan, never a bitmap scan: every publication closes rows, whose old
		// versions stay in the index's open range until vacuum, and only an index scan
		// marks them dead for the next reader to skip (a bitmap scan visits them all, every
		// time). It also hands the rows out in order, with no sort.
		batch.Queue(`SET LOCAL enable_bitmapscan = off`)
		batch.Queue(`SELECT id, category_id, product_id, total_sold FROM sales_rank
			WHERE last_snapshot_id = $1 ORDER BY category_id, total_sold DESC, product_id`, int64(openEnd))
	} else {
		batch.Queue(`SELECT id, category_id, product_id, total_sold FROM sales_rank
			WHERE last_snapshot_id >= $1 AND first_snapshot_id <= $1 ORDER BY category_id, total_sold DESC, product_id`, s.ID)
	}
	results := tx.SendBatch(ctx, batch)
	defer results.Close()
	rows, err := results.Query()
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: categories: %w", s.ID, err)
	}
	cats, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: categories: %w", s.ID, err)
	}
	if latest {
		if _, err := results.Exec(); err != nil {
			return nil, fmt.Errorf("snapshot %d: %w", s.ID, err)
		}
	}
	rows, err = results.Query()
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: sales_rank: %w", s.ID, err)
	}
	asm := sharedrows.NewAssembler(&s, cats, int(nEntries))
	var (
		e salesrank.Entry
		c int32
	)
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &c, &e.ProductID, &e.TotalSold}, func() error {
		return asm.Add(c, e)
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: sales_rank: %w", s.ID, err)
	}
	if err := results.Close(); err != nil {
		return nil, fmt.Errorf("snapshot %d: %w", s.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("snapshot %d: commit: %w", s.ID, err)
	}
	return asm.Done()
}

// CurrentID returns the current snapshot's id with one indexed lookup, for pollers that
// reload only when it changes. It returns an error wrapping salesrank.ErrNoSnapshot if
// nothing was published.
func (db *DB) CurrentID(ctx context.Context) (int64, error) {
	var id int64
	err := db.pool.QueryRow(ctx, `SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT 1`).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, err := db.pool.Query(ctx, `SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return ids, nil
}

// Rejects returns at most limit quarantined lines, the most recently recorded first.
func (db *DB) Rejects(ctx context.Context, limit int) ([]salesrank.Reject, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT object, line, reason, text FROM rejected_lines
		ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read rejected lines: %w", err)
	}
	defer rows.Close()
	var (
		out    []salesrank.Reject
		object []byte
	)
	for rows.Next() {
		var r salesrank.Reject
		// Scanning into *[]byte copies the value, so r.Text outlives the row.
		if err := rows.Scan(&object, &r.Line, &r.Reason, &r.Text); err != nil {
			return nil, fmt.Errorf("read rejected lines: %w", err)
		}
		r.Object = string(object)
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
