// Command naive is the read path salesrank does not take, for bench/serve-mix.sh: an HTTP
// server that answers GET /api/v1/popular?category_id=N (the default page only) with one
// PostgreSQL query per request, through a pgx pool, and encodes the rows as JSON in the
// same bytes "salesrank serve" sends. Comparing the two on the same published snapshot shows
// what holding the snapshot pre-rendered in memory buys.
//
// It is deliberately plain: no cache, no snapshot tracking beyond what the query does, no
// headers but Content-Type. A category with no rows (unknown, or nothing sold in the window)
// gets [] — telling 404 from [] would cost another query, which the benchmark never needs.
//
//	naive --db 'postgres://…?search_path=S&pool_max_conns=16' --addr 127.0.0.1:8090
//	naive --db 'postgres://…' --exec 'CREATE SCHEMA s'   # run one statement, print its rows, exit
//
// The pool's size and every other pgx setting come from the DSN (pool_max_conns, …).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// query is the one query per request: the current snapshot's rows of a category, in rank
// order, the default page. The rows of the latest publication are the open ones
// (last_snapshot_id at its maximum, see internal/sharedrows), in ranking order in the index
// sales_rank_by_last; the latest publication is the current snapshot unless a backfill of an
// older cutoff was published last, which the benchmark never does.
const query = `SELECT id, product_id, total_sold FROM sales_rank
WHERE last_snapshot_id = 9223372036854775807 AND category_id = $1
ORDER BY total_sold DESC, product_id LIMIT 10`

func main() {
	dsn := flag.String("db", "", "postgres:// DSN (required); pgxpool settings such as pool_max_conns go in it")
	addr := flag.String("addr", "127.0.0.1:8090", "HOST:PORT to listen on")
	exec := flag.String("exec", "", "run this one SQL statement on --db, print the rows it returns and exit\n(the benchmark's schema set-up, and finding naive's PostgreSQL backends)")
	flag.Parse()
	if *dsn == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dsn, *addr, *exec); err != nil {
		log.Fatalf("naive: %v", err)
	}
}

func run(ctx context.Context, dsn, addr, exec string) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(cctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	if exec != "" {
		return execute(cctx, pool, exec)
	}
	if err := pool.Ping(cctx); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/popular", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		cat, err := strconv.ParseInt(q.Get("category_id"), 10, 32)
		if len(q) != 1 || len(q["category_id"]) != 1 || err != nil || cat < 0 {
			http.Error(w, "want exactly category_id=0…2147483647", http.StatusBadRequest)
			return
		}
		// Not r.Context(): pgx closes a connection whose query is cancelled, so every
		// client that hangs up mid-request would cost the pool a connection (and
		// PostgreSQL a new backend). A short query is let finish instead.
		qctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		body, err := popular(qctx, pool, cat)
		if err != nil {
			log.Printf("query category %d: %v", cat, err)
			http.Error(w, "database error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 75 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// execute runs one statement and prints the rows it returns, if any, one a line with the
// columns separated by spaces.
func execute(ctx context.Context, pool *pgxpool.Pool, sql string) error {
	rows, err := pool.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return err
		}
		for i, v := range vals {
			if i > 0 {
				fmt.Print(" ")
			}
			fmt.Print(v)
		}
		fmt.Println()
	}
	return rows.Err()
}

// popular runs the query and renders its rows as serve does: every value a JSON string, in
// the order id, category_id, total_sold, product_id.
func popular(ctx context.Context, pool *pgxpool.Pool, cat int64) ([]byte, error) {
	rows, err := pool.Query(ctx, query, cat)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	b := make([]byte, 0, 1024)
	b = append(b, '[')
	var id, product, sold int64
	for n := 0; rows.Next(); n++ {
		if err := rows.Scan(&id, &product, &sold); err != nil {
			return nil, err
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = strconv.AppendInt(b, id, 10)
		b = append(b, `","category_id":"`...)
		b = strconv.AppendInt(b, cat, 10)
		b = append(b, `","total_sold":"`...)
		b = strconv.AppendInt(b, sold, 10)
		b = append(b, `","product_id":"`...)
		b = strconv.AppendInt(b, product, 10)
		b = append(b, `"}`...)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	return append(b, ']'), nil
}
