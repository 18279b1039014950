package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/salesrank/salesrank"
)

// currentSQL picks the current snapshot: the latest cutoff, then the latest publication, so
// that a backfill of an older cutoff never replaces a newer snapshot.
const currentSQL = `SELECT id, cutoff, window_start, interval_seconds, top_k, published_at, entries
	FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT 1`

// Current loads the current snapshot: its metadata and every category it covers, sorted by
// category id, entries by rank. A covered category with no sales has empty, non-nil Entries.
// It returns an error wrapping salesrank.ErrNoSnapshot if nothing was published.
func (db *DB) Current(ctx context.Context) (*salesrank.Snapshot, error) {
	// One REPEATABLE READ transaction: under the default READ COMMITTED each statement sees
	// the latest commit, so the rows could come from a newer snapshot than the metadata, or
	// from none once a publish pruned it. A read-only REPEATABLE READ transaction never
	// fails to serialize and sees the database as of its first query.
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("current snapshot: begin: %w", err)
	}
	defer rollback(tx)

	var (
		s                                 salesrank.Snapshot
		cutoff, start, interval, pubNanos int64
		top, nEntries                     int64
	)
	err = tx.QueryRow(ctx, currentSQL).Scan(&s.ID, &cutoff, &start, &interval, &top, &pubNanos, &nEntries)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("current snapshot: %w", salesrank.ErrNoSnapshot)
	}
	if err != nil {
		return nil, fmt.Errorf("current snapshot: %w", err)
	}
	s.Top = int(top)
	s.Window = salesrank.Window{Start: time.Unix(start, 0).UTC(), End: time.Unix(cutoff, 0).UTC()}
	s.Interval = time.Duration(interval) * time.Second
	s.PublishedAt = time.Unix(0, pubNanos).UTC()

	rows, err := tx.Query(ctx, `SELECT category_id FROM snapshot_categories
		WHERE snapshot_id = $1 ORDER BY category_id`, s.ID)
	if err != nil {
		return nil, fmt.Errorf("current snapshot %d: categories: %w", s.ID, err)
	}
	index := map[int32]int{}
	var c int32
	for rows.Next() {
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return nil, fmt.Errorf("current snapshot %d: categories: %w", s.ID, err)
		}
		index[c] = len(s.Rankings)
		s.Rankings = append(s.Rankings, salesrank.Ranking{CategoryID: c})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("current snapshot %d: categories: %w", s.ID, err)
	}

	// Rows come in (category, rank) order, so each category's entries are a contiguous run
	// of one array: one allocation for the whole snapshot instead of one per category.
	all := make([]salesrank.Entry, 0, nEntries)
	bounds := make([]int, len(s.Rankings)+1) // Rankings[i] is all[bounds[i]:bounds[i+1]]
	rows, err = tx.Query(ctx, `SELECT id, category_id, rank, product_id, total_sold FROM sales_rank
		WHERE snapshot_id = $1 ORDER BY category_id, rank`, s.ID)
	if err != nil {
		return nil, fmt.Errorf("current snapshot %d: sales_rank: %w", s.ID, err)
	}
	defer rows.Close()
	prev, prevRank := -1, int32(0)
	var (
		e    salesrank.Entry
		rank int32
	)
	for rows.Next() {
		if err := rows.Scan(&e.ID, &c, &rank, &e.ProductID, &e.TotalSold); err != nil {
			return nil, fmt.Errorf("current snapshot %d: sales_rank: %w", s.ID, err)
		}
		i, ok := index[c]
		if !ok || i < prev {
			return nil, fmt.Errorf("current snapshot %d: sales_rank row %d: category %d is not in the snapshot", s.ID, e.ID, c)
		}
		if i != prev {
			prev, prevRank = i, 0
		}
		if rank != prevRank+1 {
			return nil, fmt.Errorf("current snapshot %d: category %d: rank %d follows rank %d", s.ID, c, rank, prevRank)
		}
		prevRank = rank
		all = append(all, e)
		bounds[i+1] = len(all)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("current snapshot %d: sales_rank: %w", s.ID, err)
	}
	for i := range s.Rankings {
		bounds[i+1] = max(bounds[i+1], bounds[i]) // categories without rows end where they start
		// The full slice expression caps each ranking so that appending to one cannot
		// overwrite the next.
		s.Rankings[i].Entries = all[bounds[i]:bounds[i+1]:bounds[i+1]]
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("current snapshot %d: commit: %w", s.ID, err)
	}
	return &s, nil
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
