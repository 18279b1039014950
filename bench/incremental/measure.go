package main

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/salesrank/salesrank/internal/ranker"
)

// step is one measured Ranker.Run.
type step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	// FullRanksAfter is how long after the step its full ranks, published after its top
	// lists (see ranker.Ranker.Wait), were committed: the step ends when its top lists are
	// published, and a scheduler's next run, an interval on, finds them done.
	FullRanksAfter float64          `json:"full_ranks_after_seconds,omitempty"`
	Faults         int64            `json:"minor_faults"` // pages touched for the first time during the step
	CPU            float64          `json:"cpu_seconds"`  // user + system, all threads: on a shared machine, what the step itself cost
	Sum            *ranker.Summary  `json:"summary"`
	Mem            mem              `json:"mem"`
	Extra          map[string]int64 `json:"extra,omitempty"`
}

// mem is the process's memory after a step. HWM is the peak RSS since the last reset (see
// resetPeak), so each step reports its own peak.
type mem struct {
	HWMKiB    int64  `json:"hwm_kib"`
	RSSKiB    int64  `json:"rss_kib"`
	HeapInuse uint64 `json:"heap_inuse"`
	PeakReset bool   `json:"peak_reset"` // false: HWM is the peak since the process started
}

// countRows records in s.Extra how many sales_rank rows its publication inserted and how
// many end at the publication before it (sales_rank rows are shared between snapshots: see
// internal/sharedrows; an hourly publication leaves its rows ending at itself, so the next
// one ends those it replaces without writing them), and
// the bytes of the full ranks it stored (the standings table's encoded rows). It reads the
// file after the step, in a process of its own (runCountChild): read here, through a
// connection that is closed afterwards, the tens of MB of SQLite's pages it frees went to
// the C allocator this process's store shares, which hands memory above a few MiB back to
// the kernel, and the next step faulted it in again (9–10 k page faults a step instead of
// ~3 k, ~0.1 s on a 2-core VM). A ranker in production does not read its file between runs.
func countRows(ctx context.Context, path string, s *step) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	topLists := cmp.Or(s.Sum.TopListsSnapshotID, s.Sum.SnapshotID)
	cmd := exec.CommandContext(ctx, exe, "--child-count", "--child-db", path,
		"--child-snapshot", strconv.FormatInt(s.Sum.SnapshotID, 10), "--child-top-lists", strconv.FormatInt(topLists, 10))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("count rows of snapshot %d in a child process: %w", s.Sum.SnapshotID, err)
	}
	if err := json.Unmarshal(out, &s.Extra); err != nil {
		return fmt.Errorf("count rows of snapshot %d: bad output %q: %w", s.Sum.SnapshotID, out, err)
	}
	return nil
}

// runCountChild is countRows' process: it counts the rows of publication c.countSnapshot
// (its full ranks) and c.countTopLists (its top lists) in c.childDB and prints them as JSON.
func runCountChild(ctx context.Context, c config, stdout io.Writer) error {
	conn, err := sql.Open("sqlite", "file:"+c.childDB+"?mode=ro")
	if err != nil {
		return err
	}
	defer conn.Close()
	id, topLists := c.countSnapshot, c.countTopLists
	var inserted, closed, standings int64
	err = conn.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM sales_rank WHERE first_snapshot_id = ?2),
		(SELECT count(*) FROM sales_rank WHERE last_snapshot_id = (SELECT max(id) FROM snapshots WHERE id < ?2)),
		(SELECT coalesce(sum(length(data)), 0) FROM standings WHERE snapshot_id = ?1)`, id, topLists).Scan(&inserted, &closed, &standings)
	if err != nil {
		return fmt.Errorf("count rows of snapshot %d: %w", id, err)
	}
	return json.NewEncoder(stdout).Encode(map[string]int64{"rows_inserted": inserted, "rows_closed": closed, "standings_bytes": standings})
}

// cpuSeconds returns the user and system CPU time of the process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// minorFaults returns the process's minor page faults so far: each is a page of memory
// touched for the first time since the process got it (or since it gave it back), which
// costs from a fraction of a microsecond to tens of them on a virtual machine whose host
// reclaims idle memory.
func minorFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Minflt
}

// resetPeak resets the process's peak RSS (VmHWM) to its current RSS, so the next readMem
// reports the peak of what happened in between (Linux ≥ 4.0: clear_refs value 5).
func resetPeak() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

var peakResettable = resetPeak()

func readMem() mem {
	var m mem
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			m.HWMKiB = v
		case "VmRSS:":
			m.RSSKiB = v
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.HeapInuse = ms.HeapInuse
	m.PeakReset = peakResettable
	return m
}

// startProfile profiles the CPU into PREFIX-name.pprof until stop is called; with no prefix
// it does nothing. Profiles of the same name (the hourly steps) go to one file per step.
func startProfile(prefix, name string) (stop func()) {
	if prefix == "" {
		return func() {}
	}
	path := fmt.Sprintf("%s-%s.pprof", prefix, name)
	for i := 2; ; i++ {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			break
		}
		path = fmt.Sprintf("%s-%s-%d.pprof", prefix, name, i)
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "incremental: cpuprofile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		fmt.Fprintln(os.Stderr, "incremental: cpuprofile:", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func dbSize(path string) int64 {
	var n int64
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
