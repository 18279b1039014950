package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/sharedrows"
	"github.com/salesrank/salesrank/internal/store"
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
	)
	err = tx.QueryRowContext(ctx, `SELECT cutoff, window_start, interval_seconds, top_k, published_at, entries
		FROM snapshots WHERE id = ?`, id).
		Scan(&cutoff, &start, &interval, &s.Top, &pubNanos, &nEntries)
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

	// A snapshot's rows are those whose range holds it, read category by category (see
	// everyCategory): even the latest publication's rows may end at its own id or at
	// sharedrows.OpenEnd (see store.Core.EndInPlace), two ranges of the key.
	rows, err = tx.QueryContext(ctx, snapshotRowsSQL, s.ID)
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: sales_rank: %w", s.ID, err)
	}
	defer rows.Close()
	asm := sharedrows.NewAssembler(&s, cats, nEntries)
	// A category's rows come as one run per last_snapshot_id, each in ranking order (the
	// key's order, which SQLite then need not sort); they are merged here.
	var (
		ranked []salesrank.Entry
		cat    int32
	)
	flush := func() error {
		slices.SortFunc(ranked, salesrank.CompareEntries)
		for _, e := range ranked {
			if err := asm.Add(cat, e); err != nil {
				return err
			}
		}
		ranked = ranked[:0]
		return nil
	}
	for rows.Next() {
		var (
			e salesrank.Entry
			c int32
		)
		if err := rows.Scan(&e.ID, &c, &e.ProductID, &e.TotalSold); err != nil {
			return nil, fmt.Errorf("snapshot %d: sales_rank: %w", s.ID, err)
		}
		if c != cat && len(ranked) > 0 {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		cat = c
		ranked = append(ranked, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("snapshot %d: sales_rank: %w", s.ID, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return asm.Done()
}

// snapshotRowsSQL reads the rows of a snapshot, by category, then in key order: a run in
// ranking order for each last_snapshot_id, which Load merges. CROSS JOIN makes SQLite
// loop over the categories and search sales_rank in each (see everyCategory); left to
// itself, it may read the whole table instead. TestQueryPlans holds it to that.
const snapshotRowsSQL = `SELECT r.id, r.category_id, r.product_id, r.total_sold FROM categories c
		CROSS JOIN sales_rank r ON r.category_id = c.id AND r.last_snapshot_id >= ?1 AND r.first_snapshot_id <= ?1
		ORDER BY c.id, r.last_snapshot_id, r.total_sold DESC, r.product_id`

// Read runs one read-only statement for package store's reads, on the read pool.
func (db backend) Read(ctx context.Context, query string, args []any, row func(scan func(...any) error) error) error {
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	// RawBytes points at the driver's copy of a blob instead of copying it once more: the
	// driver already copies it out of SQLite's memory into a fresh slice per row.
	scan := store.ScanRaw(rows.Scan, func() (any, func() []byte) {
		b := new(sql.RawBytes)
		return b, func() []byte { return *b }
	})
	for rows.Next() {
		if err := row(scan); err != nil {
			return err
		}
	}
	return rows.Err()
}
