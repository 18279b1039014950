package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/salesrank/salesrank/internal/sharedrows"
)

// Channel is the channel Publish notifies (pg_notify) when it commits: the payload is the id
// of the snapshot that is current after the commit, in decimal. See Watch.
const Channel = "salesrank_snapshots"

// openEnd is the last_snapshot_id of a row valid until a later publication ends it
// (sharedrows.OpenEnd).
const openEnd = sharedrows.OpenEnd

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
