package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/salesrank/salesrank"
)

// Channel is the channel Publish notifies (pg_notify) when it commits: the payload is the id
// of the snapshot that is current after the commit, in decimal. See Watch.
const Channel = "salesrank_snapshots"

// Publish writes snap in one transaction, which makes it current atomically if its cutoff is
// the latest: readers see the previous snapshot until the commit, then this one.
//
// In the same transaction it records every category in known and every ranked category
// (known ones with no sales come back from Current with empty entries), the ranked products,
// and rejects in the quarantine; then it prunes all but the Keep snapshots with the latest
// cutoffs, and notifies Channel. A backfill whose cutoff is older than all of those is
// therefore pruned at once; its rejects stay. Only after the commit does it set snap.ID,
// every Entry.ID (its sales_rank row id) and, if zero, snap.PublishedAt. On error nothing is
// written and snap is unchanged.
//
// The sales_rank rows, the snapshot's categories and the rejects go in with COPY; categories
// and products, which may exist already, with one INSERT … ON CONFLICT DO NOTHING of an
// array each (COPY cannot skip existing rows).
func (db *DB) Publish(ctx context.Context, snap *salesrank.Snapshot, known []int32, rejects []salesrank.Reject) (int64, error) {
	if err := snap.Validate(known); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	publishedAt := snap.PublishedAt
	if publishedAt.IsZero() {
		publishedAt = time.Now().UTC().Round(0) // Round(0) drops the monotonic reading
	}
	at := publishedAt.UnixNano()

	cats := make([]int64, 0, len(known)+len(snap.Rankings))
	for _, c := range known {
		cats = append(cats, int64(c))
	}
	var products []int64
	nEntries := 0
	for _, r := range snap.Rankings {
		cats = append(cats, int64(r.CategoryID))
		for _, e := range r.Entries {
			products = append(products, e.ProductID)
		}
		nEntries += len(r.Entries)
	}
	// Sorted keys insert into the indexes in order, and two writers that ever took the
	// same keys would take their row locks in the same order.
	slices.Sort(cats)
	cats = slices.Compact(cats)
	slices.Sort(products)
	products = slices.Compact(products)

	tx, err := db.beginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("publish: begin: %w", err)
	}
	defer rollback(tx) // a no-op after Commit

	var id int64
	err = tx.QueryRow(ctx, `INSERT INTO snapshots
		(cutoff, window_start, interval_seconds, top_k, published_at, categories, entries)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		snap.Window.End.Unix(), snap.Window.Start.Unix(), int64(snap.Interval/time.Second),
		snap.Top, at, len(cats), nEntries).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("publish: insert snapshot: %w", err)
	}
	if err := db.step("snapshot"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}

	if err := upsertIDs(ctx, tx, "categories", cats, at); err != nil {
		return 0, fmt.Errorf("publish: upsert categories: %w", err)
	}
	_, err = copyFrom(ctx, tx, len(cats), pgx.Identifier{"snapshot_categories"}, []string{"snapshot_id", "category_id"},
		copyRows(len(cats), 2, func(row []any, i int) { row[0], row[1] = id, cats[i] }))
	if err != nil {
		return 0, fmt.Errorf("publish: insert snapshot categories: %w", err)
	}
	if err := upsertIDs(ctx, tx, "products", products, at); err != nil {
		return 0, fmt.Errorf("publish: upsert products: %w", err)
	}
	if err := db.step("products"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}

	// Reserve a block of nEntries ids from the identity's sequence, so that the rows can
	// be COPYed with their ids and the ids handed back without a RETURNING per row. The
	// write lock makes the nextval/setval pair atomic with respect to every other
	// publisher, and nothing else draws from this sequence. A rolled-back publish burns
	// its block: ids are never handed out twice, which is what matters.
	var base int64
	if nEntries > 0 {
		var last int64
		err = tx.QueryRow(ctx, `SELECT setval(pg_get_serial_sequence('sales_rank', 'id'),
			nextval(pg_get_serial_sequence('sales_rank', 'id')) + $1 - 1)`, int64(nEntries)).Scan(&last)
		if err != nil {
			return 0, fmt.Errorf("publish: reserve sales_rank ids: %w", err)
		}
		base = last - int64(nEntries)
	}
	// Rankings are validated to be sorted by category, so rows go in (category, rank)
	// order and the (snapshot_id, category_id, rank) index is appended to.
	next, ri, ei := base, 0, 0
	_, err = copyFrom(ctx, tx, nEntries, pgx.Identifier{"sales_rank"},
		[]string{"id", "snapshot_id", "category_id", "rank", "product_id", "total_sold"},
		copyRows(nEntries, 6, func(row []any, _ int) {
			for ei >= len(snap.Rankings[ri].Entries) {
				ri, ei = ri+1, 0
			}
			r := &snap.Rankings[ri]
			e := r.Entries[ei]
			next, ei = next+1, ei+1
			row[0], row[1], row[2], row[3], row[4], row[5] = next, id, int64(r.CategoryID), int32(ei), e.ProductID, e.TotalSold
		}))
	if err != nil {
		return 0, fmt.Errorf("publish: insert sales_rank: %w", err)
	}
	if err := db.step("sales_rank"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}

	if err := copyRejects(ctx, tx, "snapshot_id", id, rejects, at); err != nil {
		return 0, fmt.Errorf("publish: insert rejected lines: %w", err)
	}
	if err := db.step("rejects"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}

	// Pruning by cutoff, not by id, keeps the snapshots readers may still want: the current
	// one and those just before it. The snapshot just published is never pruned, so a
	// backfill of an old cutoff can be read until the next publication. The rows are deleted
	// explicitly rather than through ON DELETE CASCADE (which stays as a safety net), whose
	// triggers delete row by row.
	const old = `SELECT id FROM (SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC OFFSET $1) o WHERE id <> $2`
	for _, q := range []string{
		`DELETE FROM sales_rank WHERE snapshot_id IN (` + old + `)`,
		`DELETE FROM snapshot_categories WHERE snapshot_id IN (` + old + `)`,
		`DELETE FROM snapshots WHERE id IN (` + old + `)`,
	} {
		if _, err := tx.Exec(ctx, q, max(db.Keep, 1), id); err != nil {
			return 0, fmt.Errorf("publish: prune snapshots: %w", err)
		}
	}
	// Listeners hear of it when, and only if, the transaction commits. The payload is the
	// current id, which a backfill leaves unchanged, so that a listener can compare it with
	// the one it holds.
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, (SELECT id FROM snapshots
		ORDER BY cutoff DESC, id DESC LIMIT 1)::text)`, Channel); err != nil {
		return 0, fmt.Errorf("publish: notify: %w", err)
	}
	if err := db.step("commit"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("publish: commit: %w", err)
	}

	snap.ID = id
	snap.PublishedAt = publishedAt
	next = base
	for _, r := range snap.Rankings {
		for j := range r.Entries {
			next++
			r.Entries[j].ID = next
		}
	}
	return id, nil
}

// upsertIDs inserts each of ids (sorted) into table (categories or products) with
// first_seen_at at, unless it is there already.
func upsertIDs(ctx context.Context, tx pgx.Tx, table string, ids []int64, at int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+table+` (id, first_seen_at)
		SELECT id, $2 FROM unnest($1::bigint[]) AS u (id) ON CONFLICT (id) DO NOTHING`, ids, at)
	return err
}

// copyRejects COPYs rejects into the quarantine, naming the snapshot or batch (column) they
// came with.
func copyRejects(ctx context.Context, tx pgx.Tx, column string, id int64, rejects []salesrank.Reject, at int64) error {
	_, err := copyFrom(ctx, tx, len(rejects), pgx.Identifier{"rejected_lines"},
		[]string{column, "object", "line", "reason", "text", "recorded_at"},
		copyRows(len(rejects), 6, func(row []any, i int) {
			r := &rejects[i]
			row[0], row[1], row[2], row[3], row[4], row[5] = id, []byte(r.Object), r.Line, r.Reason, blob(r.Text), at
		}))
	return err
}

// copyFrom COPYs n rows into table, skipping the round trip when there are none.
func copyFrom(ctx context.Context, tx pgx.Tx, n int, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	if n == 0 {
		return 0, nil
	}
	return tx.CopyFrom(ctx, table, columns, rows)
}

// rowSource is a pgx.CopyFromSource of n rows that fill writes into one reused slice: COPY
// encodes each row before asking for the next, so one slice serves them all.
type rowSource struct {
	n, i int
	row  []any
	fill func(row []any, i int)
}

func copyRows(n, width int, fill func(row []any, i int)) *rowSource {
	return &rowSource{n: n, i: -1, row: make([]any, width), fill: fill}
}

func (s *rowSource) Next() bool {
	s.i++
	return s.i < s.n
}

func (s *rowSource) Values() ([]any, error) {
	s.fill(s.row, s.i)
	return s.row, nil
}

func (s *rowSource) Err() error { return nil }
