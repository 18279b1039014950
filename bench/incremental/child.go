package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"gocloud.dev/blob/fileblob"

	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/ranker"
	"github.com/salesrank/salesrank/internal/sqlite"
)

// runRebuildChild runs step 4 in a new process: a fresh Ranker with nothing in memory.
func runRebuildChild(ctx context.Context, c config, logsDir, dbPath string, now time.Time, stderr io.Writer) (*step, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"--child-rebuild", "--child-db", dbPath, "--child-logs", logsDir,
		"--child-now", now.Format(time.RFC3339), "--top", strconv.Itoa(c.top), "--workers", strconv.Itoa(c.workers),
		"--cutoff", c.cutoff.Format(time.RFC3339), "--retain", c.retain.String()}
	if c.fullRanks {
		args = append(args, "--full-ranks")
	}
	if c.cpuProfile != "" {
		args = append(args, "--cpuprofile", c.cpuProfile)
	}
	args = append(args, "--memory-limit="+strconv.FormatBool(c.memoryLimit))
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("rebuild in a fresh process: %w", err)
	}
	var s step
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("rebuild in a fresh process: bad output %q: %w", out, err)
	}
	return &s, nil
}

// runChild is the fresh process of step 4: open the store, run a new Ranker once, report.
func runChild(ctx context.Context, c config, stdout io.Writer) error {
	bucket, err := fileblob.OpenBucket(c.childLog, nil)
	if err != nil {
		return err
	}
	defer bucket.Close()
	db, err := sqlite.Open(ctx, c.childDB)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetRetain(c.retain)
	r := &ranker.Ranker{Logs: bucket, Engine: &counting.Local{Workers: c.workers}, Store: db, Top: c.top, Interval: time.Hour, FullRanks: c.fullRanks}
	stop := startProfile(c.cpuProfile, "rebuild")
	cpu0, t0 := cpuSeconds(), time.Now()
	sum, err := r.Run(ctx, c.childNow)
	secs, cpu := time.Since(t0).Seconds(), cpuSeconds()-cpu0
	stop()
	if err != nil {
		return err
	}
	if err := r.Finish(sum); err != nil { // the process must not exit before its full ranks are published
		return err
	}
	if sum.ObjectsTaken != 0 || !sum.WindowRebuilt {
		return fmt.Errorf("rebuild: took %d objects, window rebuilt %v; want 0 and true", sum.ObjectsTaken, sum.WindowRebuilt)
	}
	return json.NewEncoder(stdout).Encode(step{Name: "rebuild (fresh process)", Seconds: secs, CPU: cpu, Sum: sum, Mem: readMem()})
}
