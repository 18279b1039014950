package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"gocloud.dev/blob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/beam/staging"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/objstore"
)

// DefaultStagingTTL is how long the staging output of a run that never finished (its
// launcher was killed) is kept before a later run deletes it. A run deletes its own output
// as soon as it has read it back.
const DefaultStagingTTL = 24 * time.Hour

// Engine counts with a Beam pipeline, and gives the same Result as counting.Local for the
// same objects: it satisfies ranker.Engine.
type Engine struct {
	Logs    string // the logs' folder or URL, as given to --logs; workers open it themselves
	Staging string // the staging folder or URL: the launcher and every worker must reach it
	Runner  string // a registered Beam runner: prism, universal, dataflow, flink, spark
	Workers int    // counting goroutines per object on a worker; 0 means all its cores
	// Partitions is how many reduce tasks sum the keys; 0 means DefaultPartitions.
	Partitions int
	// KeepStaging keeps a run's staging output after it was read (for inspection).
	KeepStaging bool
	Logger      *slog.Logger
}

// Count runs one pipeline over objects, then reads its staging output back and checks it:
// a pipeline that failed, or whose output does not account for every object exactly once,
// gives an error and nothing to commit. The bucket argument is not used: the pipeline's
// workers open e.Logs themselves.
func (e *Engine) Count(ctx context.Context, _ *blob.Bucket, objects []counting.Object, spec counting.Spec) (*counting.Result, error) {
	if len(objects) == 0 {
		if spec.Bucket != 0 {
			return &counting.Result{Sums: &counting.Sums{}}, nil
		}
		return &counting.Result{Totals: &counting.Counts{}}, nil
	}
	log := cmp.Or(e.Logger, slog.New(slog.DiscardHandler))
	st, err := openStaging(ctx, e.Staging)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if old, err := staging.DeleteOlder(ctx, st, time.Now().Add(-DefaultStagingTTL)); err != nil {
		log.Warn("could not delete old staging runs; will retry next run", "err", err)
	} else if len(old) > 0 {
		log.Info("deleted staging runs that never finished", "runs", old)
		if dir, ok := localFolder(e.Staging); ok {
			for _, run := range old {
				os.Remove(filepath.Join(dir, run))
			}
		}
	}

	run := staging.NewRun(time.Now())
	p, s := beam.NewPipelineWithRoot()
	Build(s, objects, Options{Logs: e.Logs, Staging: e.Staging, Run: run, Spec: spec, Workers: e.Workers, Partitions: e.Partitions})
	log.Debug("running beam pipeline", "run", run, "runner", e.Runner, "objects", len(objects))
	began := time.Now()
	if !e.KeepStaging {
		defer func() {
			// The run's folder goes whatever happened: read back, refused or unfinished.
			// A context that was cancelled gets a short one of its own for this.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := staging.Delete(dctx, st, run); err != nil {
				log.Warn("could not delete the run's staging output; a later run will", "run", run, "err", err)
			} else if dir, ok := localFolder(e.Staging); ok {
				os.Remove(filepath.Join(dir, run)) // a folder's store leaves the run's folder, empty
			}
		}()
	}
	if _, err := beam.Run(ctx, e.Runner, p); err != nil {
		return nil, fmt.Errorf("beam pipeline %s on runner %s: %w", run, e.Runner, err)
	}
	log.Debug("beam pipeline done", "run", run, "seconds", time.Since(began).Seconds())
	keys := make([]string, len(objects))
	for i, o := range objects {
		keys[i] = o.Key
	}
	res, err := collect(ctx, st, run, keys)
	if err == nil && spec.Bucket != 0 {
		res.Totals, res.Sums = nil, counting.SumsOf(res.Totals) // as counting.Local gives them
	}
	return res, err
}

// collect reads a finished run's staging output into a Result, checking that every shard is
// whole, that it reports every object of keys exactly once, and that the sums shards hold
// every partition the objects' reports say they sent, once.
func collect(ctx context.Context, st *blob.Bucket, run string, keys []string) (*counting.Result, error) {
	m, err := staging.ReadManifest(ctx, st, run)
	if err != nil {
		return nil, err
	}
	c := newCollector(keys)
	for _, sh := range m.Shards {
		var read func(rec []byte) error
		switch sh.Kind {
		case kindSums:
			if err := c.sumsShard(sh); err != nil {
				return nil, fmt.Errorf("staging run %s: %w", run, err)
			}
			read = c.sum
		case kindObjects:
			read = c.report
		default:
			return nil, fmt.Errorf("staging run %s: shard %s of unknown kind %q", run, sh.Name, sh.Kind)
		}
		if err := staging.ReadShard(ctx, st, run, sh, read); err != nil {
			return nil, err
		}
	}
	if err := c.check(len(keys)); err != nil {
		return nil, fmt.Errorf("staging run %s: %w", run, err)
	}
	return c.result(), nil
}

// collector builds a Result from staged records, and remembers what it needs to check that
// nothing is missing or doubled.
type collector struct {
	res    counting.Result
	cats   map[int32]struct{}
	chunks map[string]int        // chunks of each object's report seen; absent: not given to the run
	seen   map[chunkID]struct{}  // the records of reports read
	want   map[string]int        // chunks each object's report takes, from its chunk 0
	sent   map[int]staging.Tally // per partition, what the objects' reports say they sent
	summed map[int]staging.Tally // per partition, what its sums shard says it was given
}

type chunkID struct {
	key   string
	chunk int
}

func newCollector(keys []string) *collector {
	c := &collector{
		res:    counting.Result{Totals: &counting.Counts{}},
		cats:   map[int32]struct{}{},
		chunks: make(map[string]int, len(keys)),
		seen:   make(map[chunkID]struct{}, len(keys)),
		want:   make(map[string]int, len(keys)),
		sent:   map[int]staging.Tally{},
		summed: map[int]staging.Tally{},
	}
	for _, k := range keys {
		c.chunks[k] = 0
	}
	return c
}

// sumsShard takes note of a sums shard's tally before its records are read.
func (c *collector) sumsShard(sh staging.Shard) error {
	if sh.Tally == nil {
		return fmt.Errorf("sums shard %s has no tally", sh.Name)
	}
	if _, dup := c.summed[sh.Tally.Partition]; dup {
		return fmt.Errorf("partition %d summed twice (shard %s)", sh.Tally.Partition, sh.Name)
	}
	c.summed[sh.Tally.Partition] = *sh.Tally
	return nil
}

// sum reads one sums record.
func (c *collector) sum(rec []byte) error {
	b, cat, product, units, err := decodeSum(rec)
	if err != nil {
		return err
	}
	if c.res.Totals.GetAt(b, cat, product) != 0 {
		return fmt.Errorf("key (%d, %d, %d) staged twice", b, cat, product)
	}
	c.res.Totals.AddAt(b, cat, product, units)
	return nil
}

// report reads one record of an object's report.
func (c *collector) report(rec []byte) error {
	var rep objectReport
	if err := json.Unmarshal(rec, &rep); err != nil {
		return err
	}
	seen, ok := c.chunks[rep.Key]
	if !ok {
		return fmt.Errorf("report of object %s, which this run was not given", rep.Key)
	}
	id := chunkID{rep.Key, rep.Chunk}
	if _, dup := c.seen[id]; dup {
		return fmt.Errorf("object %s reported twice (record %d of its report)", rep.Key, rep.Chunk)
	}
	c.seen[id] = struct{}{}
	c.chunks[rep.Key] = seen + 1
	c.res.Rejects = append(c.res.Rejects, rep.Rejects...)
	if rep.Chunk != 0 {
		return nil
	}
	c.want[rep.Key] = rep.Chunks
	if rep.Error != "" {
		c.res.Failed = append(c.res.Failed, counting.ObjectError{Key: rep.Key, Err: errors.New(rep.Error)})
		return nil
	}
	c.res.Objects = append(c.res.Objects, counting.ObjectStats{Key: rep.Key, Stats: rep.Stats})
	c.res.Stats.Add(&rep.Stats)
	for _, cat := range rep.Categories {
		c.cats[cat] = struct{}{}
	}
	for _, t := range rep.Parts {
		s := c.sent[t.Partition]
		s.Partition = t.Partition
		s.Entries += t.Entries
		s.Units += t.Units
		c.sent[t.Partition] = s
	}
	return nil
}

// check says what is missing or doubled once every shard has been read.
func (c *collector) check(objects int) error {
	var missing []string
	for k, seen := range c.chunks {
		want, reported := c.want[k]
		switch {
		case !reported:
			missing = append(missing, k)
		case seen != max(want, 1):
			return fmt.Errorf("object %s: %d records of a report of %d", k, seen, want)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("reports nothing of %d of its %d objects (first: %s)", len(missing), objects, missing[0])
	}
	for p, s := range c.sent {
		if got, ok := c.summed[p]; !ok || got != s {
			return fmt.Errorf("partition %d: the objects sent %d entries (units checksum %d), its sums shard was given %d (%d)", p, s.Entries, s.Units, got.Entries, got.Units)
		}
	}
	for p := range c.summed {
		if _, ok := c.sent[p]; !ok {
			return fmt.Errorf("partition %d has a sums shard, but no object sent it anything", p)
		}
	}
	return nil
}

// result returns what was read, in the order counting.Local gives it.
func (c *collector) result() *counting.Result {
	res := &c.res
	res.Categories = make([]int32, 0, len(c.cats))
	for cat := range c.cats {
		res.Categories = append(res.Categories, cat)
	}
	slices.Sort(res.Categories)
	slices.SortFunc(res.Rejects, func(a, b salesrank.Reject) int {
		return cmp.Or(strings.Compare(a.Object, b.Object), cmp.Compare(a.Line, b.Line))
	})
	slices.SortFunc(res.Failed, func(a, b counting.ObjectError) int { return strings.Compare(a.Key, b.Key) })
	return res
}

// localFolder returns the folder that a staging location names, if it is one: a path, or
// a file:// URL.
func localFolder(loc string) (string, bool) {
	if !strings.Contains(loc, "://") {
		return loc, true
	}
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "file" {
		return "", false
	}
	return filepath.FromSlash(u.Path), true
}

// openStaging opens the staging location, creating it first if it is a local folder.
func openStaging(ctx context.Context, loc string) (*blob.Bucket, error) {
	if loc == "" {
		return nil, errors.New("no staging location: set --staging to a folder or URL that the launcher and every worker can write")
	}
	if !strings.Contains(loc, "://") {
		if err := os.MkdirAll(loc, 0o755); err != nil {
			return nil, fmt.Errorf("staging: %w", err)
		}
	}
	b, err := objstore.Open(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	return b, nil
}
