package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/ranker"
	"github.com/salesrank/salesrank/internal/sqlite"
)

// session is what the steps of one benchmark run share: the run folder, the logs the
// rankers read, the engine, and the warnings for the report.
type session struct {
	c        config
	stderr   io.Writer
	check    bool   // compare snapshots with a from-scratch count
	tmp      string // the run folder
	logsDir  string // the logs' folder, into which each step lands its objects
	logs     *blob.Bucket
	eng      *counting.Local
	slogger  *slog.Logger
	warnings []string
}

func bench(ctx context.Context, c config, stdout, stderr io.Writer) error {
	s := &session{c: c, stderr: stderr, check: c.check == "on" || (c.check == "auto" && c.fraction <= 0.1)}
	T := c.cutoff
	C := T.Add(time.Duration(c.hours) * time.Hour) // the cutoff after the hourly steps

	// The data: the week, the hours after it, and each minute after those, generated once.
	data, err := generate(ctx, c, s.log)
	if err != nil {
		return err
	}
	if !c.keepData {
		defer data.remove()
	}

	// The run folder: the logs the ranker reads, and the database.
	s.tmp, err = os.MkdirTemp(cmp.Or(c.tmp, c.out), "run-")
	if err != nil {
		return err
	}
	if c.keepRun {
		defer s.log("kept the run folder (bucket logs/, databases salesrank.db and minute.db): %s", s.tmp)
	} else {
		defer os.RemoveAll(s.tmp)
	}
	s.logsDir = filepath.Join(s.tmp, "logs")
	dbPath := filepath.Join(s.tmp, "salesrank.db")
	if err := os.MkdirAll(s.logsDir, 0o755); err != nil {
		return err
	}
	if s.logs, err = fileblob.OpenBucket(s.logsDir, nil); err != nil {
		return err
	}
	defer s.logs.Close()
	db, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetRetain(c.retain)
	s.eng = &counting.Local{Workers: c.workers}
	s.slogger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))

	d := reportData{load0: loadavg(), checked: s.check}
	hourSnap, err := s.hourly(ctx, db, dbPath, data, &d)
	if err != nil {
		return err
	}
	// The hourly ranker's window is dropped with it, so later steps measure their own memory.
	runtime.GC()
	debug.FreeOSMemory()
	if err := s.rebuild(ctx, db, dbPath, C, hourSnap, &d); err != nil {
		return err
	}
	if err := s.minutely(ctx, data, C, &d); err != nil {
		return err
	}
	d.load1 = loadavg()
	d.warnings = s.warnings
	report(stdout, c, d)
	return nil
}

// hourly runs steps 1 and 2 with one Ranker, as the daemon runs them: the first run over the
// week from an empty db, then the hourly steps that each land the next hour and move the
// window. It returns the snapshot after the last hourly step.
func (s *session) hourly(ctx context.Context, db *sqlite.DB, dbPath string, data dataset, d *reportData) (*salesrank.Snapshot, error) {
	T := s.c.cutoff
	C := T.Add(time.Duration(s.c.hours) * time.Hour)

	// Step 1: the first run over the week.
	if _, err := linkTree(data.week, s.logsDir, nil); err != nil {
		return nil, err
	}
	r := &ranker.Ranker{Logs: s.logs, Engine: s.eng, Store: db, Top: s.c.top, Interval: time.Hour, FullRanks: s.c.fullRanks, Logger: s.slogger}
	first, err := s.timed(ctx, "first run (week)", "first", r, T)
	if err != nil {
		return nil, err
	}
	d.first, d.weekLines = first, first.Sum.LinesRead
	if d.firstParts, err = db.PartialStats(ctx); err != nil {
		return nil, err
	}
	err = s.verify(ctx, db, time.Hour, T, "check OK: first run equals a from-scratch count", func(diff string) {
		s.warn("first run at %s differs from a from-scratch count: %s", T.Format(time.RFC3339), diff)
	})
	if err != nil {
		return nil, err
	}

	// Step 2: hourly steps with the same Ranker.
	for h := range s.c.hours {
		hour := T.Add(time.Duration(h) * time.Hour)
		prefix := hour.Format("2006/01/02/15") + "/"
		if _, err := linkTree(data.hours, s.logsDir, func(rel string) (string, bool) {
			return rel, strings.HasPrefix(rel, prefix)
		}); err != nil {
			return nil, err
		}
		size := dbSize(dbPath)
		st, err := s.timed(ctx, fmt.Sprintf("hour %d", h+1), "hour", r, hour.Add(time.Hour))
		if err != nil {
			return nil, err
		}
		if err := countRows(ctx, dbPath, st); err != nil {
			return nil, err
		}
		st.Extra["db_growth"] = dbSize(dbPath) - size
		d.hourly = append(d.hourly, st)
	}
	if d.hourParts, err = db.PartialStats(ctx); err != nil {
		return nil, err
	}
	d.dbBytes = dbSize(dbPath)
	hourSnap, err := db.Current(ctx)
	if err != nil {
		return nil, err
	}
	ok := fmt.Sprintf("check OK: after %d hourly steps, the snapshot equals a from-scratch count", s.c.hours)
	err = s.verify(ctx, db, time.Hour, C, ok, func(diff string) {
		s.warn("hourly step at %s differs from a from-scratch count: %s", C.Format(time.RFC3339), diff)
	})
	return hourSnap, err
}

// rebuild runs step 4: a fresh process rebuilds the window from the stored partials at
// cutoff C, and must rank as the hourly ranker did (hourSnap).
func (s *session) rebuild(ctx context.Context, db *sqlite.DB, dbPath string, C time.Time, hourSnap *salesrank.Snapshot, d *reportData) error {
	rebuild, err := runRebuildChild(ctx, s.c, s.logsDir, dbPath, C, s.stderr)
	if err != nil {
		return err
	}
	d.rebuild = rebuild
	s.log("rebuild (fresh process, cutoff %s): %.3f s (%.3f CPU s), %d partials read, window %d keys, peak RSS %d MiB",
		C.Format(time.RFC3339), rebuild.Seconds, rebuild.CPU, rebuild.Sum.PartialsRead, rebuild.Sum.WindowKeys, rebuild.Mem.HWMKiB>>10)
	if snap, err := db.Current(ctx); err != nil {
		return err
	} else if diff := diffRankings(hourSnap.Rankings, snap.Rankings); diff != "" {
		s.warn("the fresh process's rebuild at %s differs from the hourly ranker's snapshot: %s", C.Format(time.RFC3339), diff)
	} else {
		s.log("check OK: the rebuilt window ranks as the hourly ranker did")
	}
	return nil
}

// minutely runs step 3: a ranker refreshed every minute. It keeps minute buckets of partial
// sums (so that each window is a union of whole buckets), which hourly ones cannot stand in
// for: it gets its own database, and its first run takes the week and the hours again. Then
// each minute's objects land and the next minute's cutoff runs.
func (s *session) minutely(ctx context.Context, data dataset, C time.Time, d *reportData) error {
	db2Path := filepath.Join(s.tmp, "minute.db")
	db2, err := sqlite.Open(ctx, db2Path)
	if err != nil {
		return err
	}
	defer db2.Close()
	db2.SetRetain(s.c.retain)
	resetPeak()
	mr := &ranker.Ranker{Logs: s.logs, Engine: s.eng, Store: db2, Top: s.c.top, Interval: time.Minute, FullRanks: s.c.fullRanks, Logger: s.slogger}
	if d.mrFirst, err = s.timed(ctx, "1m ranker: first run (week + hours)", "first-1m", mr, C); err != nil {
		return err
	}
	if d.minuteParts, err = db2.PartialStats(ctx); err != nil {
		return err
	}
	for k, dir := range data.minutes {
		at := C.Add(time.Duration(k) * time.Minute)
		prefix := at.Format("2006/01/02/15") + "/"
		tagName := "min-" + at.Format("04") + "-"
		if _, err := linkTree(dir, s.logsDir, func(rel string) (string, bool) {
			if !strings.HasPrefix(rel, prefix) {
				return "", false
			}
			return prefix + tagName + strings.TrimPrefix(rel, prefix), true
		}); err != nil {
			return err
		}
		size := dbSize(db2Path)
		st, err := s.timed(ctx, fmt.Sprintf("minute %d", k+1), "minute", mr, at.Add(time.Minute))
		if err != nil {
			return err
		}
		if err := countRows(ctx, db2Path, st); err != nil {
			return err
		}
		st.Extra["db_growth"] = dbSize(db2Path) - size
		d.minutely = append(d.minutely, st)
	}
	end := C.Add(time.Duration(s.c.minutes) * time.Minute)
	ok := fmt.Sprintf("check OK: after %d minute steps, the snapshot equals a from-scratch count", s.c.minutes)
	err = s.verify(ctx, db2, time.Minute, end, ok, func(diff string) {
		s.warn("1-minute refresh at %s differs from a from-scratch count over the exact window [%s, %s): %s",
			end.Format(time.RFC3339), end.Add(-salesrank.WindowLength).Format(time.RFC3339), end.Format(time.RFC3339), diff)
	})
	if err != nil {
		return err
	}
	if d.finalParts, err = db2.PartialStats(ctx); err != nil {
		return err
	}
	d.minuteDB = dbSize(db2Path)
	return nil
}

// timed runs r at now as the step called name, profiled into the profile of that name, and
// measures it. A step that fails, refuses or rejects anything is an error: the generated
// logs hold none of that.
func (s *session) timed(ctx context.Context, name, profile string, r *ranker.Ranker, now time.Time) (*step, error) {
	resetPeak()
	stop := startProfile(s.c.cpuProfile, profile)
	cpu0, faults0, t0 := cpuSeconds(), minorFaults(), time.Now()
	sum, err := r.Run(ctx, now)
	secs, cpu, faults := time.Since(t0).Seconds(), cpuSeconds()-cpu0, minorFaults()-faults0
	stop()
	if err != nil {
		return nil, fmt.Errorf("%s: run at %s: %w", name, now.Format(time.RFC3339), err)
	}
	// Full ranks published after the step are waited for here, not by the next step: the
	// steps run back to back, a scheduler's runs an interval apart.
	t1 := time.Now()
	err = r.Finish(sum)
	after := time.Since(t1).Seconds()
	if err != nil {
		return nil, fmt.Errorf("%s: run at %s: %w", name, now.Format(time.RFC3339), err)
	}
	if sum.ObjectsFailed > 0 || sum.ObjectsRefused > 0 || sum.LinesRejected > 0 {
		return nil, fmt.Errorf("%s: %d objects failed, %d refused, %d lines rejected; want none", name, sum.ObjectsFailed, sum.ObjectsRefused, sum.LinesRejected)
	}
	st := &step{Name: name, Seconds: secs, CPU: cpu, Faults: faults, Sum: sum, Mem: readMem()}
	if after >= 0.001 {
		st.FullRanksAfter = after
	}
	ranked := fmt.Sprintf("from %d changed keys", sum.ChangedKeys)
	if sum.RankedFromScratch {
		ranked = "from scratch"
	}
	s.log("%s (cutoff %s): %.3f s (%.3f CPU s), %d lines read, %d partials read, window %d keys, ranked %s in %.3f s, peak RSS %d MiB, RSS after %d MiB, heap in use %d MiB, %d minor page faults, %d full ranks published %.3f s after",
		name, sum.Cutoff.Format(time.RFC3339), secs, cpu, sum.LinesRead, sum.PartialsRead, sum.WindowKeys, ranked, sum.RankSeconds, st.Mem.HWMKiB>>10, st.Mem.RSSKiB>>10, st.Mem.HeapInuse>>20, st.Faults, sum.FullRanks, st.FullRanksAfter)
	return st, nil
}

// verify, when the session checks, compares db's current snapshot with a from-scratch count
// at now, and logs ok or calls differs with how they differ.
func (s *session) verify(ctx context.Context, db *sqlite.DB, interval time.Duration, now time.Time, ok string, differs func(diff string)) error {
	if !s.check {
		return nil
	}
	diff, err := compare(ctx, db, s.logs, s.eng, s.c.top, interval, now)
	switch {
	case err != nil:
		return err
	case diff != "":
		differs(diff)
	default:
		s.log("%s", ok)
	}
	return nil
}

func (s *session) log(format string, args ...any) {
	fmt.Fprintf(s.stderr, "incremental: "+format+"\n", args...)
}

// warn logs a failed check and keeps it for the report.
func (s *session) warn(format string, args ...any) {
	s.warnings = append(s.warnings, fmt.Sprintf(format, args...))
	s.log("WARNING: "+format, args...)
}
