// Command dbcheck reads a salesrank SQLite file for tests/faults and prints what it finds as
// one JSON value. It is a separate program, built by the tests' TestMain without -race,
// because SQLite translated to Go (modernc.org/sqlite) runs a hundred times slower under the
// race detector: an integrity_check took 15–25 s in the race-built test binary, and the
// crash test runs one after every kill.
//
//	dbcheck state   DB      committed batch and snapshot ids, and the current snapshot
//	dbcheck check   DB      state, every problem found, and the manifest
//	dbcheck ranking DB ID   one snapshot's categories and rows
//	dbcheck cutoffs DB      every stored snapshot's cutoff
//	dbcheck fullranks DB    the stored snapshots that carry full ranks
//
// It opens the file read-write (so that SQLite can recover a WAL left by a killed writer)
// but query_only, and never writes.
package main

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	_ "modernc.org/sqlite"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: dbcheck state|check|ranking|cutoffs|fullranks DB [ID]")
		os.Exit(2)
	}
	out, err := run(os.Args[1], os.Args[2], os.Args[3:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbcheck:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "dbcheck:", err)
		os.Exit(1)
	}
}

func run(cmd, path string, args []string) (any, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), OmitHost: true}
	q := url.Values{"_pragma": {"busy_timeout(3000)", "query_only(1)"}}
	db, err := sql.Open("sqlite", u.String()+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	switch cmd {
	case "state":
		return readState(db)
	case "check":
		st, err := readState(db)
		if err != nil {
			return nil, err
		}
		out := struct {
			State    State      `json:"state"`
			Problems []string   `json:"problems"`
			Manifest []Manifest `json:"manifest"`
		}{State: st}
		if !st.Migrated {
			return out, nil
		}
		out.Problems = append(checkSound(db), checkIntake(db)...)
		out.Manifest, err = manifest(db)
		return out, err
	case "ranking":
		if len(args) != 1 {
			return nil, errors.New("ranking needs a snapshot id")
		}
		id, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			return nil, err
		}
		return ranking(db, id)
	case "cutoffs":
		return cutoffs(db)
	case "fullranks":
		return fullRanks(db)
	}
	return nil, fmt.Errorf("unknown command %q", cmd)
}

// State: the highest batch and snapshot ids ever handed out (both AUTOINCREMENT, so never
// reused or lowered by pruning) and the current snapshot's id (0 if none).
type State struct {
	Migrated bool  `json:"migrated"`
	Batch    int64 `json:"batch"`
	Snapshot int64 `json:"snapshot"`
	Current  int64 `json:"current"`
}

func readState(db *sql.DB) (State, error) {
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name IN ('batches', 'snapshots')`).Scan(&n); err != nil || n < 2 {
		return State{}, err // not migrated yet: a run killed while creating the file
	}
	s := State{Migrated: true}
	err := db.QueryRow(`SELECT
		coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'batches'), 0),
		coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'snapshots'), 0),
		coalesce((SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT 1), 0)`).Scan(&s.Batch, &s.Snapshot, &s.Current)
	return s, err
}

// checkSound: integrity_check says ok, no foreign key is broken, no sales_rank row outlives
// every snapshot that uses it, the open rows are the latest publication's, and the current snapshot is whole: exactly the rows and
// categories its snapshots row says, at most top × categories rows, none of a category it
// does not cover, and every category's ranks run 1..n in order of units (then product id).
func checkSound(db *sql.DB) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	rows, err := db.Query(`PRAGMA integrity_check`)
	if err != nil {
		return []string{"integrity_check: " + err.Error()}
	}
	var msgs []string
	for rows.Next() {
		var m string
		rows.Scan(&m)
		msgs = append(msgs, m)
	}
	rows.Close()
	if len(msgs) != 1 || msgs[0] != "ok" {
		bad("integrity_check: %q", msgs)
	}
	count := func(what string, want int64, query string, args ...any) {
		var n int64
		if err := db.QueryRow(query, args...).Scan(&n); err != nil {
			bad("%s: %v", what, err)
		} else if n != want {
			bad("%s: %d", what, n)
		}
	}
	count("foreign_key_check rows", 0, `SELECT count(*) FROM pragma_foreign_key_check`)
	count("sales_rank rows that no stored snapshot uses", 0, `SELECT count(*) FROM sales_rank r WHERE NOT EXISTS
		(SELECT 1 FROM snapshots s WHERE s.id BETWEEN r.first_snapshot_id AND r.last_snapshot_id)`)
	// The latest publication's rows end at it or later (at 2^63-1 while open).
	count("open sales_rank rows that are not the latest publication's", 0, `SELECT abs(
		(SELECT count(*) FROM sales_rank WHERE last_snapshot_id >= (SELECT max(id) FROM snapshots)) -
		coalesce((SELECT entries FROM snapshots ORDER BY id DESC LIMIT 1), 0))`)

	var id, topK, nCats, nEntries int64
	err = db.QueryRow(`SELECT id, top_k, categories, entries FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT 1`).Scan(&id, &topK, &nCats, &nEntries)
	if errors.Is(err, sql.ErrNoRows) {
		return problems
	}
	if err != nil {
		return append(problems, "current snapshot: "+err.Error())
	}
	count(fmt.Sprintf("snapshot %d: categories (its row says %d)", id, nCats), nCats,
		`SELECT count(*) FROM snapshot_categories WHERE snapshot_id = ?`, id)
	count(fmt.Sprintf("snapshot %d: sales_rank rows (its row says %d)", id, nEntries), nEntries,
		`SELECT count(*) FROM snapshot_sales_rank WHERE snapshot_id = ?`, id)
	count(fmt.Sprintf("snapshot %d: rows beyond top %d × categories", id, topK), 0,
		`SELECT max(0, (SELECT count(*) FROM snapshot_sales_rank WHERE snapshot_id = ?1) - ?2 * (SELECT count(*) FROM snapshot_categories WHERE snapshot_id = ?1))`, id, topK)
	count(fmt.Sprintf("snapshot %d: rows of categories it does not cover", id), 0,
		`SELECT count(*) FROM snapshot_sales_rank WHERE snapshot_id = ?1 AND category_id NOT IN
			(SELECT category_id FROM snapshot_categories WHERE snapshot_id = ?1)`, id)
	count(fmt.Sprintf("snapshot %d: rows out of rank order, after a gap, or beyond top %d", id, topK), 0,
		`SELECT count(*) FROM (
			SELECT rank, total_sold, product_id,
				lag(rank) OVER w AS prev_rank, lag(total_sold) OVER w AS prev_total, lag(product_id) OVER w AS prev_product
			FROM snapshot_sales_rank WHERE snapshot_id = ?1
			WINDOW w AS (PARTITION BY category_id ORDER BY rank))
		WHERE rank > ?2 OR (prev_rank IS NULL AND rank != 1) OR (prev_rank IS NOT NULL AND (rank != prev_rank + 1
			OR total_sold > prev_total OR (total_sold = prev_total AND product_id <= prev_product)))`, id, topK)
	return problems
}

// checkIntake: the manifest, the partial sums and the quarantine were committed together.
// Every batch has objects, every partial sum belongs to a batch with objects, and the
// quarantine holds each taken object's bad lines once, under the batch that took it.
func checkIntake(db *sql.DB) []string {
	var problems []string
	count := func(what, query string) {
		var n int64
		if err := db.QueryRow(query).Scan(&n); err != nil {
			problems = append(problems, what+": "+err.Error())
		} else if n != 0 {
			problems = append(problems, fmt.Sprintf("%s: %d", what, n))
		}
	}
	count("batches without objects", `SELECT count(*) FROM batches WHERE id NOT IN (SELECT batch_id FROM objects)`)
	count("partial sums of no taken object", `SELECT count(*) FROM partials WHERE batch_id NOT IN (SELECT batch_id FROM objects)`)
	count("bad lines quarantined twice", `SELECT count(*) FROM (SELECT object, line FROM rejected_lines
		WHERE batch_id IS NOT NULL GROUP BY object, line HAVING count(*) > 1)`)
	count("quarantined lines minus the manifest's rejected lines", `SELECT
		(SELECT count(*) FROM rejected_lines WHERE batch_id IS NOT NULL) - (SELECT coalesce(sum(lines_rejected), 0) FROM objects)`)
	count("quarantined lines of objects not taken in their batch", `SELECT count(*) FROM rejected_lines r WHERE batch_id IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.key = r.object AND o.batch_id = r.batch_id)`)
	return problems
}

// Manifest is one row of table objects.
type Manifest struct {
	Key      string `json:"key"`
	Size     int64  `json:"size"`
	Batch    int64  `json:"batch"`
	Read     int64  `json:"read"`
	Rejected int64  `json:"rejected"`
	TooLate  int64  `json:"too_late"`
}

func manifest(db *sql.DB) ([]Manifest, error) {
	rows, err := db.Query(`SELECT key, size, batch_id, lines_read, lines_rejected, lines_too_late FROM objects ORDER BY key`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Manifest{}
	for rows.Next() {
		var m Manifest
		if err := rows.Scan(&m.Key, &m.Size, &m.Batch, &m.Read, &m.Rejected, &m.TooLate); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Ranking is one snapshot: its categories, and its rows as [category, rank, product, units]
// in (category, rank) order.
type Ranking struct {
	Cats []int32    `json:"cats"`
	Rows [][4]int64 `json:"rows"`
}

func ranking(db *sql.DB, id int64) (Ranking, error) {
	r := Ranking{Cats: []int32{}, Rows: [][4]int64{}}
	rows, err := db.Query(`SELECT category_id FROM snapshot_categories WHERE snapshot_id = ? ORDER BY category_id`, id)
	if err != nil {
		return r, err
	}
	for rows.Next() {
		var c int32
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return r, err
		}
		r.Cats = append(r.Cats, c)
	}
	rows.Close()
	rows, err = db.Query(`SELECT category_id, rank, product_id, total_sold FROM snapshot_sales_rank WHERE snapshot_id = ? ORDER BY category_id, rank`, id)
	if err != nil {
		return r, err
	}
	defer rows.Close()
	for rows.Next() {
		var row [4]int64
		if err := rows.Scan(&row[0], &row[1], &row[2], &row[3]); err != nil {
			return r, err
		}
		r.Rows = append(r.Rows, row)
	}
	return r, rows.Err()
}

// cutoffs returns every stored snapshot's cutoff, by id.
func cutoffs(db *sql.DB) (map[string]int64, error) {
	out := map[string]int64{}
	err := eachRow(db, `SELECT id, cutoff FROM snapshots`, func(scan func(...any) error) error {
		var id, c int64
		err := scan(&id, &c)
		out[strconv.FormatInt(id, 10)] = c
		return err
	})
	return out, err
}

// fullRanks returns the ids of the stored snapshots that carry full ranks.
func fullRanks(db *sql.DB) ([]int64, error) {
	out := []int64{}
	err := eachRow(db, `SELECT DISTINCT snapshot_id FROM standings WHERE snapshot_id IN (SELECT id FROM snapshots) ORDER BY 1`,
		func(scan func(...any) error) error {
			var id int64
			err := scan(&id)
			out = append(out, id)
			return err
		})
	return out, err
}

// eachRow calls fn with each row of query; a file not migrated that far has none.
func eachRow(db *sql.DB, query string, fn func(scan func(...any) error) error) error {
	rows, err := db.Query(query)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil
		}
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}
