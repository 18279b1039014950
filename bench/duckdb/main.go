// Command duckrank is the DuckDB baseline for salesrank's ranking: it computes, on one
// tab-separated sales log, each category's top K products by units sold in the week
// [cutoff−7d, cutoff), cutoff = --now truncated to the hour, ordered by units desc then
// product_id asc — the same result as "salesrank rank --once --top K" — and prints a
// one-line JSON summary. With --print it also writes the rows (category, rank, product,
// units) as TSV to stdout before the summary, for checking against salesrank's output.
//
// It lives in its own module so that the main module stays free of cgo.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	file := flag.String("file", "", "the sales log (TSV, 7 columns, no header)")
	nowFlag := flag.String("now", "", "the run's time, RFC 3339; the cutoff is this truncated to the hour")
	top := flag.Int("top", 100, "products kept per category")
	threads := flag.Int("threads", 0, "DuckDB threads (0: DuckDB's default, one per core)")
	print := flag.Bool("print", false, "also print the ranked rows as TSV: category, rank, product, units")
	flag.Parse()
	if err := run(*file, *nowFlag, *top, *threads, *print); err != nil {
		fmt.Fprintln(os.Stderr, "duckrank:", err)
		os.Exit(1)
	}
}

func run(file, nowFlag string, top, threads int, print bool) error {
	if file == "" || nowFlag == "" || top < 1 {
		return fmt.Errorf("usage: duckrank --file F --now RFC3339 --top K")
	}
	now, err := time.Parse(time.RFC3339, nowFlag)
	if err != nil {
		return fmt.Errorf("--now: %w", err)
	}
	cutoff := now.UTC().Truncate(time.Hour)
	start := cutoff.Add(-7 * 24 * time.Hour)

	began := time.Now()
	ctx := context.Background()
	db, err := sql.Open("duckdb", "") // in-memory
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if threads > 0 {
		if _, err := db.ExecContext(ctx, fmt.Sprintf("SET threads = %d", threads)); err != nil {
			return err
		}
	}

	q := `
WITH sales AS (
  SELECT * FROM read_csv(?, delim = '\t', header = false, auto_detect = false,
    columns = {'ts': 'BIGINT', 'product': 'BIGINT', 'category': 'INTEGER', 'quantity': 'INTEGER',
               'price': 'DOUBLE', 'seller': 'BIGINT', 'buyer': 'BIGINT'})
), totals AS (
  SELECT category, product, sum(quantity)::BIGINT AS total
  FROM sales
  WHERE ts >= ? AND ts < ?
  GROUP BY category, product
), ranked AS (
  SELECT category, product, total,
         row_number() OVER (PARTITION BY category ORDER BY total DESC, product ASC) AS rnk
  FROM totals
)
SELECT category, rnk, product, total FROM ranked WHERE rnk <= ? ORDER BY category, rnk`
	rows, err := db.QueryContext(ctx, q, file, start.Unix(), cutoff.Unix(), top)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		n   int64
		out strings.Builder
	)
	for rows.Next() {
		var cat int32
		var rnk, product, total int64
		if err := rows.Scan(&cat, &rnk, &product, &total); err != nil {
			return err
		}
		n++
		if print {
			fmt.Fprintf(&out, "%d\t%d\t%d\t%d\n", cat, rnk, product, total)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	secs := time.Since(began).Seconds()
	os.Stdout.WriteString(out.String())
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"engine": "duckdb", "rows": n, "seconds": float64(int64(secs*1000)) / 1000,
		"cutoff": cutoff.Format(time.RFC3339), "window_start": start.Format(time.RFC3339),
		"top": top, "gomaxprocs": runtime.GOMAXPROCS(0),
	})
}
