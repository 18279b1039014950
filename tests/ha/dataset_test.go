//go:build unix

package ha_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/salesrank/salesrank/internal/testing/pgtest"
)

// The dataset: a week of synthetic sales in a few categories, ranked at cutoffA. publish
// adds the two hours after it and ranks at cutoffB, so the second snapshot differs from the
// first in its window, its totals and its row ids.
const (
	weekStart     = "2026-11-20T00:00:00Z"
	cutoffA       = "2026-11-27T00:00:00Z"
	cutoffB       = "2026-11-27T02:00:00Z"
	numCategories = 20
	numProducts   = 5000
)

// dataset is a folder of logs and the database they are ranked into.
type dataset struct {
	dir  string
	logs string
	dsn  string
}

// newDataset generates a week of logs in dir and publishes its first snapshot into the
// database dsn (a SQLite file in dir when dsn is "").
func newDataset(t *testing.T, dir, dsn string) (*dataset, rankSummary) {
	t.Helper()
	return newDatasetAt(t, dir, dsn, weekStart, cutoffA)
}

// newFreshDataset is newDataset for the week that ends at the current hour. A replica marks
// every answer of a snapshot whose successor is a whole interval overdue X-Snapshot-Stale,
// as it does every answer of the fixed week; this one's answers are not marked for an hour,
// so a mark on them comes from elsewhere (nginx). addHours and publish are for the fixed
// week only.
func newFreshDataset(t *testing.T, dir, dsn string) (*dataset, rankSummary) {
	t.Helper()
	cutoff := time.Now().UTC().Truncate(time.Hour)
	return newDatasetAt(t, dir, dsn, cutoff.AddDate(0, 0, -7).Format(time.RFC3339), cutoff.Format(time.RFC3339))
}

// newDatasetAt generates the logs of [start, cutoff) and ranks them at cutoff.
func newDatasetAt(t *testing.T, dir, dsn, start, cutoff string) (*dataset, rankSummary) {
	t.Helper()
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(dir, "salesrank.db")
	}
	d := &dataset{dir: dir, logs: filepath.Join(dir, "logs"), dsn: dsn}
	d.gen(t, d.logs, start, cutoff, 100_000, 7)
	sum := decodeSummary(t, salesrank(t, "rank", "--once", "--logs", d.logs, "--db", d.dsn, "--now", cutoff))
	if sum.Categories < numCategories/2 {
		t.Fatalf("rank: got %d categories, want about %d", sum.Categories, numCategories)
	}
	return d, sum
}

func (d *dataset) gen(t *testing.T, out, start, end string, lines, seed int) {
	t.Helper()
	salesrank(t, "gen", "--out", out, "--start", start, "--end", end, "--lines", strconv.Itoa(lines),
		"--products", strconv.Itoa(numProducts), "--categories", strconv.Itoa(numCategories),
		"--seed", strconv.Itoa(seed))
}

// addHours writes new log objects for [cutoffA, cutoffB) into the logs folder, as API hosts
// would: gen refuses a folder generated with other flags, so they are generated beside it
// and copied in.
func (d *dataset) addHours(t *testing.T) {
	t.Helper()
	next := filepath.Join(d.dir, "next")
	d.gen(t, next, cutoffA, cutoffB, 30_000, 8)
	err := filepath.WalkDir(next, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.HasPrefix(e.Name(), "_") || strings.HasPrefix(e.Name(), ".") {
			return err
		}
		rel, err := filepath.Rel(next, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(d.logs, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy new log objects: %v", err)
	}
}

// addCategory writes a log object with one sale in category cat within [cutoffA, cutoffB),
// so that the next publication knows a category the first did not.
func (d *dataset) addCategory(t *testing.T, cat int32) {
	t.Helper()
	line := fmt.Sprintf("2026-11-27T01:00:00Z\t424242\t%d\t1\t9.99\t1\t1\n", cat)
	if err := os.WriteFile(filepath.Join(d.logs, fmt.Sprintf("new-category-%d.tsv", cat)), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
}

// publish ranks at cutoffB: one rank --once, as the hourly scheduler would run it.
func (d *dataset) publish(t *testing.T) rankSummary {
	t.Helper()
	return decodeSummary(t, salesrank(t, "rank", "--once", "--logs", d.logs, "--db", d.dsn, "--now", cutoffB))
}

// backend is a database the replicas can run on: dsn returns a fresh, empty database for
// one test ("" for a SQLite file in the test's folder), or skips the test.
type backend struct {
	name string
	dsn  func(t *testing.T) string
}

var backends = []backend{
	{"sqlite", func(*testing.T) string { return "" }},
	{"postgres", postgresDSN},
}

// forEachBackend runs test once per backend, as a subtest named after it.
func forEachBackend(t *testing.T, test func(t *testing.T, dsn string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			needProcesses(t)
			test(t, b.dsn(t))
		})
	}
}

// postgresDSN returns the DSN of a fresh schema, dropped when t ends after the processes
// using it (see pgtest.Schema).
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn, _ := pgtest.Schema(t, "salesrank_ha_")
	return dsn
}
