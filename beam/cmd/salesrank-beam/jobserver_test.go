package main

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/salesrank/salesrank/beam/internal/beamtest"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/objstore"
	"github.com/salesrank/salesrank/internal/ranker"
	"github.com/salesrank/salesrank/internal/sqlite"
	"github.com/salesrank/salesrank/internal/testing/ranktest"
)

// TestStandaloneJobServer submits rank's pipelines to Prism's job server running as its own
// process, through --runner universal: the path a Flink or Spark job server takes. Two
// incremental runs must leave the same database as the embedded engine's, row for row.
func TestStandaloneJobServer(t *testing.T) {
	needBinaries(t)
	ctx := context.Background()
	endpoint := startPrism(t)

	dir := t.TempDir()
	logs, err := objstore.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	embeddedDB := filepath.Join(t.TempDir(), "embedded.db")
	db, err := sqlite.Open(ctx, embeddedDB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// As rank does by default: the full ranks follow the top lists as a second snapshot.
	embedded := &ranker.Ranker{Logs: logs, Engine: &counting.Local{}, Store: db, Top: 3, FullRanks: true}
	beamDB := filepath.Join(t.TempDir(), "beam.db")
	staging := t.TempDir()

	rng := rand.New(rand.NewPCG(3, 3))
	c0 := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	for i, now := range []time.Time{c0, c0.Add(time.Hour)} {
		beamtest.WriteObjects(t, dir, []string{"a", "b"}[i], ranktest.RandomLogs(rng, now))
		want, err := embedded.Run(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := embedded.Finish(want); err != nil {
			t.Fatal(err)
		}
		got := rankOnce(t, "--logs", dir, "--db", beamDB, "--top", "3", "--now", now.Format(time.RFC3339),
			"--runner", "universal", "--endpoint", endpoint, "--environment_type", "LOOPBACK", "--staging", staging)
		if got.SnapshotID != want.SnapshotID || got.LinesRead != want.LinesRead || got.LinesRejected != want.LinesRejected || got.ObjectsFailed != want.ObjectsFailed {
			t.Fatalf("run %d: summary %+v, the embedded engine's %+v", i, got, *want)
		}
		beamtest.CompareDatabases(t, "run "+string(rune('1'+i)), embeddedDB, beamDB)
	}
}
