package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/sharedrows"
	"github.com/salesrank/salesrank/internal/store"
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

// Read runs one read-only statement for package store's reads, on the pool; each "?" of
// the query becomes $1, $2, …
func (db backend) Read(ctx context.Context, query string, args []any, row func(scan func(...any) error) error) error {
	rows, err := db.pool.Query(ctx, numbered(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	// DriverBytes points into the driver's read buffer instead of copying a blob of
	// megabytes once more.
	scan := store.ScanRaw(rows.Scan, func() (any, func() []byte) {
		b := new(pgtype.DriverBytes)
		return b, func() []byte { return *b }
	})
	for rows.Next() {
		if err := row(scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// numbered rewrites each "?" of query as PostgreSQL's $1, $2, … (the store's queries hold
// no "?" of their own).
func numbered(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
