package sqlite

import (
	"context"
	"database/sql"
	"strings"
)

// maxParams bounds the parameters of one multi-row INSERT. SQLite allows 32766 since 3.32,
// but from about 100 rows a statement on, the size made no measurable difference to
// BenchmarkPublish: the time goes to b-tree and foreign-key work inside SQLite.
const maxParams = 4096

// execRows runs head, "(?, …), (?, …)…" and tail over n rows of width parameters each, in
// as few statements as the parameter limit allows: a multi-row INSERT, or an UPDATE or
// DELETE of rows IN (VALUES …). fill appends row i's values to args; lead, if any, come first
// in every statement (as ?1, ?2, … when head numbers them). One statement with many rows
// costs SQLite one parse and the driver one call, which is what makes 100k rows cheap.
func execRows(ctx context.Context, tx *sql.Tx, head, tail string, width, n int, fill func(args []any, i int) []any, lead ...any) error {
	if n == 0 {
		return nil
	}
	per := max(1, (maxParams-len(lead))/width)
	var stmt *sql.Stmt
	stmtRows := 0
	args := make([]any, 0, min(n, per)*width+len(lead))
	for start := 0; start < n; start += per {
		k := min(per, n-start)
		if k != stmtRows { // the full-size statement is prepared once, the remainder once
			if stmt != nil {
				stmt.Close()
			}
			var err error
			stmt, err = tx.PrepareContext(ctx, rowsSQL(head, tail, width, k))
			if err != nil {
				return err
			}
			stmtRows = k
		}
		args = append(args[:0], lead...)
		for i := start; i < start+k; i++ {
			args = fill(args, i)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			stmt.Close()
			return err
		}
	}
	return stmt.Close()
}

func rowsSQL(head, tail string, width, rows int) string {
	var b strings.Builder
	tuple := "(" + strings.Repeat("?, ", width-1) + "?)"
	b.Grow(len(head) + len(tail) + rows*(len(tuple)+2))
	b.WriteString(head)
	for i := range rows {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(" ")
		b.WriteString(tuple)
	}
	b.WriteString(tail)
	return b.String()
}

// queryIDs returns the single integer column of query's rows.
func queryIDs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
