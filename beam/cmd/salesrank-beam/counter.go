package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dataflow"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/flink"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/spark"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal"

	"github.com/salesrank/salesrank/beam/pipeline"
	"github.com/salesrank/salesrank/internal/ranker"
)

// runners are the --runner values, each a Beam runner this binary links.
var runners = []string{"prism", "universal", "flink", "spark", "dataflow"}

// beamFlags are Beam's own pipeline options that rank lists in its help; they are the
// flags Beam's documentation names, set on Beam's flag set. --beam-opt sets any other.
var beamFlags = []string{
	"endpoint", "environment_type", "environment_config", "job_name", "worker_binary", "parallelism",
	"project", "region", "staging_location", "temp_location", "num_workers", "max_num_workers", "worker_machine_type",
}

// counter makes rank's engine a Beam pipeline.
type counter struct {
	runner      *string
	staging     *string
	keepStaging *bool
	workers     *int
	partitions  *int
}

func (c *counter) Flags(fs *flag.FlagSet) {
	c.runner = fs.String("runner", "prism", "the Beam runner: "+strings.Join(runners, ", ")+"\n(prism: in this process; universal: any portable job server at --endpoint)")
	c.staging = fs.String("staging", "", "`folder or URL` where pipelines leave their output for the ranker to check and commit;\nthe launcher and every worker must reach it (default, for workers in this process only\n(prism, LOOPBACK): a new folder in the system's temp dir, removed on exit)")
	c.keepStaging = fs.Bool("keep-staging", false, "keep each run's staging output after it was committed, to inspect it")
	c.workers = fs.Int("workers", 0, "counting goroutines per log object on each Beam worker (default: all its cores)")
	c.partitions = fs.Int("partitions", pipeline.DefaultPartitions, "reduce tasks that sum the keys (at least the cluster's workers)")
	for _, name := range beamFlags {
		if f := flag.CommandLine.Lookup(name); f != nil {
			fs.Var(beamOption{f}, name, "Beam's option: "+f.Usage)
		}
	}
	fs.Func("beam-opt", "`NAME=VALUE`: set any other Beam pipeline option (repeatable; e.g. disk_size_gb=50)", func(s string) error {
		name, value, ok := strings.Cut(s, "=")
		if !ok {
			return errors.New("want NAME=VALUE")
		}
		if flag.CommandLine.Lookup(name) == nil {
			return fmt.Errorf("no Beam option %q", name)
		}
		if name == "async" {
			return errors.New("async: rank must wait for the pipeline, to check and commit its output")
		}
		return flag.CommandLine.Set(name, value)
	})
}

// beamOption is one of Beam's flags offered on rank's flag set. Setting it sets Beam's
// flag through flag.CommandLine, which is where Beam reads it and also how Beam learns
// which options were set (flag.Visit) to pass them on to the runner and its workers.
type beamOption struct{ f *flag.Flag }

func (o beamOption) String() string {
	if o.f == nil {
		return ""
	}
	return o.f.Value.String()
}

func (o beamOption) Set(s string) error { return flag.CommandLine.Set(o.f.Name, s) }

// IsBoolFlag lets a boolean option of Beam's be given without a value.
func (o beamOption) IsBoolFlag() bool {
	b, ok := o.f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func (c *counter) Help() string {
	return `Counting with Apache Beam. Every run (every batch of new objects, or the whole --full
job) is one Beam pipeline: each log object is read and parsed by a worker with salesrank's
own parser and sums its units per (hour of sale, category, product); the sums of every
object are shuffled in --partitions parts and summed across objects (and for --full,
ranked per category, so only the top K come back), and the result is left in
--staging with a manifest of SHA-256-checked shards. The ranker then checks it and commits
it with the objects' manifest entries in one transaction, as the embedded engine's: a
pipeline that fails, is retried or dies half-way never counts an object twice or loses one.

Runners:
  --runner prism (default)      Prism, in this process; nothing to install
  --runner universal --endpoint HOST:8073 --environment_type LOOPBACK|DOCKER|PROCESS
                                any portable job server: Prism's, Flink's, Spark's
  --runner dataflow --project P --region R --staging_location gs://B/binaries
                    --staging gs://B/staging
--logs and --staging must be URLs the workers can reach (s3://, gs://) on any runner but
prism and LOOPBACK, which run the workers in this process.
`
}

func (c *counter) Engine(ctx context.Context, logsURL string, log *slog.Logger) (ranker.Engine, func(), error) {
	if !slices.Contains(runners, *c.runner) {
		return nil, nil, fmt.Errorf("--runner %q: want one of %s", *c.runner, strings.Join(runners, ", "))
	}
	if *c.partitions < 1 || *c.partitions > 1<<16 {
		return nil, nil, fmt.Errorf("--partitions must be between 1 and 65536, got %d", *c.partitions)
	}
	if *c.workers < 0 {
		return nil, nil, fmt.Errorf("--workers must not be negative, got %d", *c.workers)
	}
	if strings.HasPrefix(logsURL, "mem://") {
		return nil, nil, errors.New("--logs mem:// is a bucket in one process's memory, which Beam workers cannot open; use a folder or an s3:// or gs:// URL")
	}
	local := inProcessWorkers(*c.runner)
	if !local {
		if !strings.Contains(logsURL, "://") || strings.HasPrefix(logsURL, "file://") {
			return nil, nil, fmt.Errorf("--runner %s runs workers on other machines: --logs %q must be a URL they can read, such as s3://BUCKET/logs or gs://BUCKET/logs", *c.runner, logsURL)
		}
		if !strings.Contains(*c.staging, "://") || strings.HasPrefix(*c.staging, "file://") {
			return nil, nil, fmt.Errorf("--runner %s runs workers on other machines: set --staging to a URL that this process and every worker can write, such as gs://BUCKET/salesrank-staging", *c.runner)
		}
		if err := defaultWorkerBinary(); err != nil {
			return nil, nil, err
		}
	}
	logs, err := absFolder(logsURL)
	if err != nil {
		return nil, nil, err
	}
	staging, cleanup := *c.staging, func() {}
	if staging == "" {
		// Workers in this process: a folder of this process's own, gone with it.
		dir, err := os.MkdirTemp("", "salesrank-beam-staging-")
		if err != nil {
			return nil, nil, fmt.Errorf("staging folder: %w", err)
		}
		staging, cleanup = dir, func() { os.RemoveAll(dir) }
	}
	if staging, err = absFolder(staging); err != nil {
		return nil, nil, err
	}
	// Beam's runners log through the default slog logger: this process runs one rank
	// command, so make that rank's logger, tagged, and keep the runners' chatter below
	// warnings out of it. (It is not restored: a logger set back with slog.SetDefault
	// would no longer carry the log package's output.)
	slog.SetDefault(slog.New(minLevel{log.With("component", "beam").Handler(), slog.LevelWarn}))
	eng := &pipeline.Engine{Logs: logs, Staging: staging, Runner: *c.runner, Workers: *c.workers, Partitions: *c.partitions, KeepStaging: *c.keepStaging, Logger: log}
	return eng, cleanup, nil
}

// inProcessWorkers reports whether runner, with Beam's options as set, runs the pipeline's
// workers in this process (LOOPBACK), where they read local folders as this process does.
// Prism without --endpoint runs in this process and defaults to LOOPBACK.
func inProcessWorkers(runner string) bool {
	env := strings.ToLower(*jobopts.EnvironmentType)
	if runner == "prism" && *jobopts.Endpoint == "" && env == "" {
		return true
	}
	return env == "loopback"
}

// defaultWorkerBinary makes this binary the pipeline's worker when --worker_binary is not
// set. Beam's workers are linux/amd64 (a Flink or Spark task manager's PROCESS or DOCKER
// environment, a Dataflow VM); left unset, Beam would try to compile the pipeline from
// source, which a built binary does not have.
func defaultWorkerBinary() error {
	if *jobopts.WorkerBinary != "" {
		return nil
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return fmt.Errorf("this binary is %s/%s and Beam's workers run linux/amd64: build one with "+
			"GOOS=linux GOARCH=amd64 go build -C beam -o salesrank-beam-linux ./cmd/salesrank-beam and pass --worker_binary salesrank-beam-linux", runtime.GOOS, runtime.GOARCH)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary for --worker_binary: %w", err)
	}
	return flag.CommandLine.Set("worker_binary", exe)
}

// absFolder makes a folder (a location without a scheme) absolute, so that workers started
// in another working directory find it; URLs are returned as they are.
func absFolder(loc string) (string, error) {
	if loc == "" || strings.Contains(loc, "://") {
		return loc, nil
	}
	return filepath.Abs(loc)
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
