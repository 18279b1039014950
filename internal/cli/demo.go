package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/loggen"
	"github.com/salesrank/salesrank/internal/objstore"
	"github.com/salesrank/salesrank/internal/ranker"
)

const demoSynopsis = `Usage: salesrank demo [--dir DIR] [--addr HOST:PORT]

Runs the whole system on the embedded default, on this machine, in one command:
  1. generates eight days of realistic sales logs (5 M sales, 1 M products, 1,000
     categories, a few deliberately bad lines) under DIR/sample-DATE/logs, or reuses
     them: the sample ends at today's midnight (UTC), so a new one is made once a day
     and older ones are removed;
  2. ranks the past week into the SQLite database DIR/sample-DATE/salesrank.db (a rerun
     takes no object twice: it finds them all in the manifest);
  3. serves it on --addr until Ctrl-C, and prints a few curl lines to try.

The same steps by hand:
  salesrank gen   --out DIR/logs --days 8 --lines 5000000
  salesrank rank  --logs DIR/logs --db DIR/salesrank.db --once
  salesrank serve --db DIR/salesrank.db
`

// The demo's sample: small enough to generate and rank in seconds on two cores, large
// enough that every category has a real ranking.
const (
	demoLines    = 5_000_000
	demoHistory  = 24 * time.Hour // how far back the demo's history of snapshots goes
	demoStep     = 4 * time.Hour  // and how far apart its snapshots are
	demoProducts = 1_000_000
	demoBadRate  = 0.0001
)

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "demo", demoSynopsis)
	dir := fs.String("dir", "data", "folder for the sample logs and the database")
	addr := fs.String("addr", "127.0.0.1:8080", "`HOST:PORT` to serve on")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	began := time.Now()
	now := e.now().UTC()
	// Eight days that end at today's midnight (UTC): the window of a run now is covered,
	// no sale lies in the future, and the sample is reused for the rest of the day.
	end := now.Truncate(24 * time.Hour)
	sample := filepath.Join(*dir, "sample-"+end.Format(time.DateOnly))
	logsDir := filepath.Join(sample, "logs")
	dbPath := filepath.Join(sample, "salesrank.db")
	if err := removeOldSamples(*dir, sample); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	cfg := loggen.Config{
		Start:    end.Add(-8 * 24 * time.Hour),
		End:      end,
		Lines:    demoLines,
		Products: demoProducts,
		BadRate:  demoBadRate,
		Seed:     loggen.DefaultSeed,
	}
	if loggen.Complete(logsDir, cfg) {
		fmt.Fprintf(e.stderr, "1/3 reusing the sample logs in %s\n", logsDir)
	} else {
		fmt.Fprintf(e.stderr, "1/3 generating %d sales over %s … %s into %s\n", demoLines,
			cfg.Start.Format(time.DateOnly), cfg.End.Format(time.DateOnly), logsDir)
		st, err := loggen.WriteDir(ctx, logsDir, cfg, loggen.Options{})
		if err != nil {
			return fmt.Errorf("demo: generate logs: %w", err)
		}
		fmt.Fprintf(e.stderr, "    %d lines in %d objects, %.1fs\n", st.Lines, st.Objects, time.Since(began).Seconds())
	}

	fmt.Fprintf(e.stderr, "2/3 ranking the week before %s into %s\n", now.Truncate(time.Hour).Format(time.RFC3339), dbPath)
	logs, err := objstore.Open(ctx, logsDir)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer logs.Close()
	db, err := openDB(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// A day of hourly snapshots before the current one, so the page has movers and history.
	db.SetRetain(DefaultRetain)
	// Full ranks take a second or two at the demo's size: publish them where the page
	// needs them, a day apart.
	rk := &ranker.Ranker{Logs: logs, Engine: &counting.Local{}, Store: db, Top: salesrank.DefaultTop}
	var (
		sum                          *ranker.Summary
		snapshots                    int
		taken, read, rejected, spent = 0, int64(0), int64(0), 0.0
	)
	first := now.Add(-demoHistory)
	for at := first; !at.After(now); at = at.Add(demoStep) {
		rk.FullRanks = at.Equal(first) || at.Add(demoStep).After(now)
		if sum, err = rk.Run(ctx, at); err != nil {
			break
		}
		if err = rk.Finish(sum); err != nil { // the full ranks follow the top lists
			break
		}
		snapshots++
		taken, read, rejected, spent = taken+sum.ObjectsTaken, read+sum.LinesRead, rejected+sum.LinesRejected, spent+sum.Seconds
	}
	db.Close()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(e.stderr, "    %d snapshots, %v apart, the last %d: %d objects, %d lines read, %d quarantined, %d categories, %.1fs\n",
		snapshots, demoStep, sum.SnapshotID, taken, read, rejected, sum.Categories, spent)

	base := "http://" + *addr
	// The server listens before it has loaded the snapshot, and answers 503 until then:
	// the invitation to try it waits until it is ready.
	serving, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		if waitReady(serving, readyURL(*addr)) {
			fmt.Fprintf(e.stderr, demoReady, base, time.Since(began).Seconds(), base, base, base, base, base, base, base, dbPath)
		}
	}()
	return runServe(ctx, e, []string{"--db", dbPath, "--addr", *addr, "--drain", "0s"})
}

// readyURL returns the address of the readiness check of a server listening on addr, on
// the loopback interface if addr names every interface.
func readyURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/readyz"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz"
}

// demoReady is what the demo prints once it serves: where, and what to try.
const demoReady = `3/3 serving on %s (ready %.1fs after start); Ctrl-C stops it. Try:
    curl -i '%s/api/v1/popular?category_id=1'
    curl '%s/api/v1/popular?category_id=2&limit=3&offset=1'
    curl -i '%s/api/v1/popular?category_id=999999'       # 404: never seen
    curl -i '%s/api/v1/popular?category_id=abc'          # 400
    curl '%s/api/v1/movers?category_id=1&limit=3'        # what climbed since a day before
    curl '%s/api/v1/products/1/ranks'                   # where product 1 stands
    open %s/ in a browser
    sqlite3 %s 'select object, line, reason from rejected_lines limit 5'

`

// waitReady polls url until it answers 200, and reports whether it did before ctx ended.
func waitReady(ctx context.Context, url string) bool {
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		if res, err := client.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// removeOldSamples deletes the demo's samples of earlier days under dir, keeping keep.
func removeOldSamples(dir, keep string) error {
	old, err := filepath.Glob(filepath.Join(dir, "sample-*"))
	if err != nil {
		return err
	}
	for _, o := range old {
		if o != keep {
			if err := os.RemoveAll(o); err != nil {
				return err
			}
		}
	}
	return nil
}
