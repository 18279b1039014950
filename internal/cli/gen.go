package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/salesrank/salesrank/internal/loggen"
)

const genSynopsis = `
salesrank gen writes realistic synthetic sales logs in the design.md format: one sale a line,
seven tab-separated fields. Product popularity is Zipf-skewed over the catalog, products sit
in 1–3 categories of uneven size, traffic follows a daily and weekly shape with spikes and
hot products that surge for a few hours. The same flags give byte-identical output.

Usage:
  salesrank gen --out DIR      [flags]   # DIR/YYYY/MM/DD/HH/part-N.tsv[.gz] + DIR/_SUCCESS
  salesrank gen --out-file PATH [flags]  # one file, sorted by time

Examples:
  salesrank gen --out ./logs                          # the past 7 days at 1 B sales/month
  salesrank gen --out ./logs --days 1 --rate 50 --bad-rate 0.001 --gzip --parts 4
  salesrank gen --out-file sales.tsv --lines 10000000 --start 2026-11-01T00:00:00Z --days 1

The time range is --start/--end (RFC 3339), or --days ending at the current hour, or --days
from --start or back from --end. The volume is --rate (average sales a second) or --lines.
A final one-line JSON summary goes to stdout; on a terminal, progress goes to stderr.
`

// genJob is what gen was asked to write, checked.
type genJob struct {
	cfg     loggen.Config
	out     string // the folder for hour-partitioned objects, or "" when outFile is set
	outFile string // the one file to write instead
	workers int
}

func runGen(ctx context.Context, e *env, args []string) error {
	job, err := parseGen(e, args)
	if err != nil {
		return err
	}
	var written atomic.Int64
	opts := loggen.Options{Workers: job.workers, Progress: func(n int64) { written.Add(n) }}
	total := job.cfg.TotalLines()
	began := time.Now()
	stopProgress := func() {}
	if isTerminal(e.stderr) {
		stopProgress = genProgress(ctx, e, total, &written, began)
	}
	var st loggen.Stats
	output := job.out
	if job.outFile != "" {
		output = job.outFile
		st, err = loggen.WriteFile(ctx, job.outFile, job.cfg, opts)
	} else {
		st, err = loggen.WriteDir(ctx, job.out, job.cfg, opts)
	}
	stopProgress()
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	return writeGenSummary(e.stdout, st, output, time.Since(began))
}

// parseGen reads gen's flags, from the command line and the environment, and checks them.
func parseGen(e *env, args []string) (genJob, error) {
	fs := newFlagSet(e, "gen", genSynopsis)
	out := fs.String("out", "", "output `folder` for hour-partitioned objects")
	outFile := fs.String("out-file", "", "write every line into this one `file`, sorted by time, instead of --out")
	start := fs.String("start", "", "first sale `time`, RFC 3339 (2026-11-20T00:00:00Z)")
	end := fs.String("end", "", "end `time` (exclusive), RFC 3339")
	days := fs.Float64("days", 7, "length of the time range in `days` when --start or --end is missing")
	rate := fs.Float64("rate", loggen.DefaultRate, "average `sales` a second (the default is 1 B a 30-day month)")
	lines := fs.Int64("lines", 0, "total `lines` to write, instead of --rate")
	products := fs.Int64("products", loggen.DefaultProducts, "`number` of products in the catalog (ids 1…N)")
	categories := fs.Int("categories", loggen.DefaultCategories, "`number` of categories (ids 1…N), of uneven size")
	sellers := fs.Int64("sellers", loggen.DefaultSellers, "`number` of sellers (ids 1…N)")
	buyers := fs.Int64("buyers", loggen.DefaultBuyers, "`number` of buyers (ids 1…N)")
	parts := fs.Int("parts", 1, "`objects` per hour with --out, as if written by that many API hosts")
	gz := fs.Bool("gzip", false, "gzip the output (.tsv.gz)")
	seed := fs.Uint64("seed", loggen.DefaultSeed, "random `seed`; the same flags and seed give the same bytes")
	badRate := fs.Float64("bad-rate", 0, "`fraction` of deliberately bad lines (wrong field count, non-numeric id,\nzero quantity, negative price, bad timestamp), to exercise the quarantine")
	timeFormat := fs.String("time-format", string(loggen.Unix), "timestamp `format`: unix, rfc3339 or mixed")
	header := fs.Bool("header", false, "start each object with a header line")
	workers := fs.Int("workers", 0, "`goroutines` generating at once, 0 for one per core; never changes the output")
	cmdline, err := parseFlagSources(e, fs, args)
	if err != nil {
		return genJob{}, err
	}
	set := resolveGenExclusions(fs, cmdline)

	job := genJob{out: *out, outFile: *outFile, workers: *workers, cfg: loggen.Config{
		Products:   *products,
		Categories: int32(*categories),
		Sellers:    *sellers,
		Buyers:     *buyers,
		Seed:       *seed,
		BadRate:    *badRate,
		TimeFormat: loggen.TimeFormat(*timeFormat),
		Header:     *header,
		Parts:      *parts,
		Gzip:       *gz,
	}}
	if job.cfg.Start, job.cfg.End, err = genRange(e.now(), *start, *end, *days, set["days"]); err != nil {
		return genJob{}, fmt.Errorf("gen: %w", err)
	}
	if job.cfg.Lines, job.cfg.Rate, err = genVolume(*lines, *rate, set["lines"], set["rate"]); err != nil {
		return genJob{}, err
	}
	if err := checkGenSizes(*products, *sellers, *buyers, *parts, *categories); err != nil {
		return genJob{}, err
	}
	switch {
	case *out == "" && *outFile == "":
		return genJob{}, errors.New("gen: no output: set --out DIR for hour-partitioned objects or --out-file PATH for one file")
	case *out != "" && *outFile != "":
		return genJob{}, errors.New("gen: --out and --out-file both set; choose one")
	case *outFile != "" && set["parts"]:
		return genJob{}, errors.New("gen: --parts applies to --out only; --out-file writes one file")
	case *workers < 0:
		return genJob{}, fmt.Errorf("gen: --workers must be ≥ 0; got %d", *workers)
	}
	if err := job.cfg.Validate(); err != nil {
		return genJob{}, fmt.Errorf("gen: %w (see salesrank gen --help)", genFlagError(err))
	}
	return job, nil
}

// resolveGenExclusions returns the set of flags given, on the command line or in the
// environment, after dropping those that the command line overrides: of flags that exclude
// each other, one given on the command line wins over the other coming from the environment
// (SALESRANK_DAYS=7 with --start and --end, say), which goes back to its default.
func resolveGenExclusions(fs *flag.FlagSet, cmdline map[string]bool) (set map[string]bool) {
	set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, group := range [][]string{{"days", "start", "end"}, {"lines", "rate"}, {"out", "out-file"}, {"parts", "out-file"}} {
		onCmdline := false
		for _, name := range group {
			onCmdline = onCmdline || cmdline[name]
		}
		for _, name := range group {
			if onCmdline && set[name] && !cmdline[name] {
				f := fs.Lookup(name)
				f.Value.Set(f.DefValue)
				set[name] = false
			}
		}
	}
	return set
}

// genVolume resolves how much to write: a total of lines, or a rate of sales a second.
// Exactly one of the two results is set.
func genVolume(lines int64, rate float64, linesSet, rateSet bool) (int64, float64, error) {
	switch {
	case linesSet && rateSet:
		return 0, 0, errors.New("gen: --lines and --rate both set; choose one (--lines is a total, --rate sales a second)")
	case lines < 0:
		return 0, 0, fmt.Errorf("gen: --lines must be ≥ 1; got %d", lines)
	case linesSet && lines == 0:
		return 0, 0, errors.New("gen: --lines must be ≥ 1; got 0")
	case lines > 0:
		return lines, 0, nil
	case !(rate > 0) || math.IsInf(rate, 0):
		return 0, 0, fmt.Errorf("gen: --rate must be a positive number of sales a second; got %v", rate)
	default:
		return 0, rate, nil
	}
}

// checkGenSizes checks the sizes of the catalog and the parts per hour. Zero means "the default"
// in a loggen.Config, so an explicit zero is caught here.
func checkGenSizes(products, sellers, buyers int64, parts, categories int) error {
	for _, c := range []struct {
		flag string
		v    int64
	}{{"products", products}, {"sellers", sellers}, {"buyers", buyers}, {"parts", int64(parts)}} {
		if c.v < 1 {
			return fmt.Errorf("gen: --%s must be ≥ 1; got %d", c.flag, c.v)
		}
	}
	if categories < 1 || categories > math.MaxInt32 {
		return fmt.Errorf("gen: --categories must be 1 … %d; got %d", math.MaxInt32, categories)
	}
	return nil
}

// writeGenSummary writes gen's one-line JSON summary of what it wrote in elapsed.
func writeGenSummary(w io.Writer, st loggen.Stats, output string, elapsed time.Duration) error {
	secs := elapsed.Seconds()
	return json.NewEncoder(w).Encode(struct {
		Lines       int64   `json:"lines"`
		BadLines    int64   `json:"bad_lines"`
		Objects     int64   `json:"objects"`
		Bytes       int64   `json:"bytes"`
		Seconds     float64 `json:"seconds"`
		LinesPerSec float64 `json:"lines_per_sec"`
		Output      string  `json:"output"`
	}{st.Lines, st.BadLines, st.Objects, st.Bytes, round3(secs), math.Round(float64(st.Lines) / max(secs, 1e-9)), output})
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// genRange resolves the time range: --start and --end when both are given, otherwise
// --days from --start, back from --end, or back from the current hour.
func genRange(now time.Time, start, end string, days float64, daysSet bool) (time.Time, time.Time, error) {
	parse := func(flag, v string) (time.Time, error) {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return t, fmt.Errorf("--%s %q is not an RFC 3339 time; write it like 2026-11-20T00:00:00Z", flag, v)
		}
		return t.UTC(), nil
	}
	if !(days > 0) || days > 3660 {
		return time.Time{}, time.Time{}, fmt.Errorf("--days must be more than 0 and at most 3660; got %v", days)
	}
	span := time.Duration(days * float64(24*time.Hour)).Round(time.Second)
	var s, en time.Time
	var err error
	switch {
	case start != "" && end != "":
		if daysSet {
			return s, en, errors.New("--start, --end and --days all set; give two of them at most")
		}
		if s, err = parse("start", start); err == nil {
			en, err = parse("end", end)
		}
		if err == nil && !en.After(s) {
			err = fmt.Errorf("--end %s must be after --start %s", end, start)
		}
	case start != "":
		s, err = parse("start", start)
		en = s.Add(span)
	case end != "":
		en, err = parse("end", end)
		s = en.Add(-span)
	default:
		en = now.UTC().Truncate(time.Hour)
		s = en.Add(-span)
	}
	return s, en, err
}

// genFlagError names the flag behind a config field in a validation error: bad_rate is
// --bad-rate.
func genFlagError(err error) error {
	var fe *loggen.FieldError
	if errors.As(err, &fe) {
		return fmt.Errorf("--%s %s", strings.ReplaceAll(fe.Field, "_", "-"), fe.Msg)
	}
	return err
}

// genProgress prints a progress line to the terminal about once a second until the
// returned stop function is called; stop waits for the printer to finish.
func genProgress(ctx context.Context, e *env, total int64, written *atomic.Int64, began time.Time) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				fmt.Fprint(e.stderr, "\r\033[K")
				return
			case <-t.C:
				n := written.Load()
				secs := time.Since(began).Seconds()
				fmt.Fprintf(e.stderr, "\r\033[Kgen: %d of %d lines (%.1f%%), %.0f lines/s", n, total, 100*float64(n)/float64(max(total, 1)), float64(n)/secs)
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
