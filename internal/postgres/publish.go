package postgres

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/delta"
)

// Channel is the channel Publish notifies (pg_notify) when it commits: the payload is the id
// of the snapshot that is current after the commit, in decimal. See Watch.
const Channel = "salesrank_snapshots"

// Publish writes snap in one transaction, which makes it current atomically if its cutoff is
// the latest: readers see the previous snapshot until the commit, then this one.
//
// In the same transaction it records every category in known and every ranked category
// (known ones with no sales come back from Current with empty entries), the ranked products,
// the sales_rank rows that changed since the latest publication (package delta: a row whose
// product and total stay the same is shared, id and all), and rejects in the quarantine;
// then it prunes all but the Keep snapshots with the latest cutoffs, and notifies Channel. A backfill whose cutoff is older than all of those is
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
	nEntries := 0
	for _, r := range snap.Rankings {
		cats = append(cats, int64(r.CategoryID))
		nEntries += len(r.Entries)
	}
	// Sorted keys insert into the indexes in order, and two writers that ever took the
	// same keys would take their row locks in the same order.
	slices.Sort(cats)
	cats = slices.Compact(cats)

	tx, err := db.beginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("publish: begin: %w", err)
	}
	defer rollback(tx) // a no-op after Commit

	// The rows of the latest publication are what this one is compared with. The write
	// lock is held, so the latest publication cannot change until the commit.
	var prev int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM snapshots`).Scan(&prev); err != nil {
		return 0, fmt.Errorf("publish: latest snapshot: %w", err)
	}
	open, err := db.openRows(ctx, tx, prev)
	if err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	plan := delta.Diff(open, snap)
	// Only new rows can name a product the table lacks. Sorted, so that two writers that
	// ever took the same keys would take their row locks in the same order.
	products := plan.NewProducts()

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

	// Rows that changed or left were last valid in the previous publication.
	if len(plan.Close) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE sales_rank SET last_snapshot_id = $1 WHERE id = ANY($2)`, prev, plan.CloseIDs()); err != nil {
			return 0, fmt.Errorf("publish: close sales_rank rows: %w", err)
		}
	}
	// Reserve a block of ids from the identity's sequence, one per new row, so that the rows
	// can be COPYed with their ids and the ids handed back without a RETURNING per row. The
	// write lock makes the nextval/setval pair atomic with respect to every other
	// publisher, and nothing else draws from this sequence. A rolled-back publish burns
	// its block: ids are never handed out twice, which is what matters.
	var base int64
	if n := int64(len(plan.Insert)); n > 0 {
		var last int64
		err = tx.QueryRow(ctx, `SELECT setval(pg_get_serial_sequence('sales_rank', 'id'),
			nextval(pg_get_serial_sequence('sales_rank', 'id')) + $1 - 1)`, n).Scan(&last)
		if err != nil {
			return 0, fmt.Errorf("publish: reserve sales_rank ids: %w", err)
		}
		base = last - n
	}
	plan.Number(base)
	_, err = copyFrom(ctx, tx, len(plan.Insert), pgx.Identifier{"sales_rank"},
		[]string{"id", "category_id", "product_id", "total_sold", "first_snapshot_id", "last_snapshot_id"},
		copyRows(len(plan.Insert), 6, func(row []any, i int) {
			r := &plan.Insert[i]
			row[0], row[1], row[2], row[3], row[4], row[5] = r.ID, int64(r.Category), r.ProductID, r.TotalSold, id, int64(openEnd)
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

	if err := db.prune(ctx, tx, id); err != nil {
		return 0, fmt.Errorf("publish: prune snapshots: %w", err)
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

	db.openMu.Lock()
	db.open = plan.Done(id) // sets every Entry.ID
	db.openMu.Unlock()
	snap.ID = id
	snap.PublishedAt = publishedAt
	return id, nil
}

// openEnd is last_snapshot_id of an open row: one of the latest publication, valid until a
// later one closes it.
const openEnd = math.MaxInt64

// openRows returns the open rows, which belong to snapshot prev (the latest publication):
// from memory if this handle made that publication, else read back from the database.
func (db *DB) openRows(ctx context.Context, tx pgx.Tx, prev int64) (*delta.Open, error) {
	db.openMu.Lock()
	o := db.open
	db.openMu.Unlock()
	if o != nil && o.Snapshot == prev {
		return o, nil
	}
	rows, err := tx.Query(ctx, `SELECT id, category_id, product_id, total_sold FROM sales_rank
		WHERE last_snapshot_id = $1`, int64(openEnd))
	if err != nil {
		return nil, fmt.Errorf("read open sales_rank rows: %w", err)
	}
	var all []delta.Row
	var r delta.Row
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Category, &r.ProductID, &r.TotalSold}, func() error {
		all = append(all, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read open sales_rank rows: %w", err)
	}
	return delta.NewOpen(prev, all), nil
}

// prune deletes all but the Keep snapshots with the latest cutoffs, and the closed rows that
// no remaining snapshot uses. Pruning by cutoff, not by id, keeps the snapshots readers may
// still want: the current one and those just before it. The snapshot just published (id)
// is never pruned, so a backfill of an old cutoff can be read until the next publication.
// Rows are deleted explicitly rather than through ON DELETE CASCADE (which stays as a
// safety net for snapshot_categories), whose triggers delete row by row.
func (db *DB) prune(ctx context.Context, tx pgx.Tx, id int64) error {
	rows, err := tx.Query(ctx, `SELECT id FROM (SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC OFFSET $1) o
		WHERE id <> $2 ORDER BY id`, max(db.Keep, 1), id)
	if err != nil {
		return err
	}
	pruned, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(pruned) == 0 {
		return err
	}
	for _, q := range []string{
		`DELETE FROM snapshot_categories WHERE snapshot_id = ANY($1)`,
		`DELETE FROM snapshots WHERE id = ANY($1)`,
	} {
		if _, err := tx.Exec(ctx, q, pruned); err != nil {
			return err
		}
	}
	var oldest int64
	if err := tx.QueryRow(ctx, `SELECT min(id) FROM snapshots`).Scan(&oldest); err != nil {
		return err
	}
	// A closed row's last snapshot was the latest publication when it was closed. If that
	// is older than every remaining snapshot, so is the whole row: the common case, one
	// range of the index.
	if _, err := tx.Exec(ctx, `DELETE FROM sales_rank WHERE last_snapshot_id < $1`, oldest); err != nil {
		return err
	}
	// A backfill makes cutoffs and ids disagree, and a snapshot may be pruned while older
	// ids stay: then check every closed row newer than the oldest snapshot for one that
	// still uses it.
	if pruned[len(pruned)-1] > oldest {
		_, err = tx.Exec(ctx, `DELETE FROM sales_rank r WHERE last_snapshot_id >= $1 AND last_snapshot_id < $2
			AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.id BETWEEN r.first_snapshot_id AND r.last_snapshot_id)`,
			oldest, int64(openEnd))
	}
	return err
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
