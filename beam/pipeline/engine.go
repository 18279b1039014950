package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"gocloud.dev/blob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/beam/staging"
	"github.com/salesrank/salesrank/internal/engine"
	"github.com/salesrank/salesrank/internal/objstore"
)

// DefaultStagingTTL is how long the staging output of a run that never finished (its
// launcher was killed) is kept before a later run deletes it. A run deletes its own output
// as soon as it has read it back.
const DefaultStagingTTL = 24 * time.Hour

// Engine counts with a Beam pipeline, and gives the same Result as engine.Local for the
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
func (e *Engine) Count(ctx context.Context, _ *blob.Bucket, objects []engine.Object, spec engine.Spec) (*engine.Result, error) {
	if len(objects) == 0 {
		return &engine.Result{Totals: &engine.Counts{}}, nil
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
	}

	run := staging.NewRun(time.Now())
	keys := make([]string, len(objects))
	for i, o := range objects {
		keys[i] = o.Key
	}
	p, s := beam.NewPipelineWithRoot()
	Build(s, keys, Options{Logs: e.Logs, Staging: e.Staging, Run: run, Spec: spec, Workers: e.Workers, Partitions: e.Partitions})
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
			}
		}()
	}
	if _, err := beam.Run(ctx, e.Runner, p); err != nil {
		return nil, fmt.Errorf("beam pipeline %s on runner %s: %w", run, e.Runner, err)
	}
	log.Debug("beam pipeline done", "run", run, "seconds", time.Since(began).Seconds())
	return collect(ctx, st, run, keys)
}

// collect reads a finished run's staging output into a Result, checking that every shard is
// whole and that it reports every object of keys exactly once.
func collect(ctx context.Context, st *blob.Bucket, run string, keys []string) (*engine.Result, error) {
	m, err := staging.ReadManifest(ctx, st, run)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = false
	}
	res := &engine.Result{Totals: &engine.Counts{}}
	cats := map[int32]struct{}{}
	for _, sh := range m.Shards {
		var read func(rec []byte) error
		switch sh.Kind {
		case kindSums:
			read = func(rec []byte) error {
				b, cat, product, units, err := decodeSum(rec)
				if err != nil {
					return err
				}
				if res.Totals.GetAt(b, cat, product) != 0 {
					return fmt.Errorf("key (%d, %d, %d) staged twice", b, cat, product)
				}
				res.Totals.AddAt(b, cat, product, units)
				return nil
			}
		case kindObjects:
			read = func(rec []byte) error {
				var rep objectReport
				if err := json.Unmarshal(rec, &rep); err != nil {
					return err
				}
				seen, ok := want[rep.Key]
				switch {
				case !ok:
					return fmt.Errorf("report of object %s, which this run was not given", rep.Key)
				case seen:
					return fmt.Errorf("object %s reported twice", rep.Key)
				}
				want[rep.Key] = true
				if rep.Error != "" {
					res.Failed = append(res.Failed, engine.ObjectError{Key: rep.Key, Err: errors.New(rep.Error)})
					return nil
				}
				res.Objects = append(res.Objects, engine.ObjectStats{Key: rep.Key, Stats: rep.Stats})
				res.Stats.Add(&rep.Stats)
				res.Rejects = append(res.Rejects, rep.Rejects...)
				for _, c := range rep.Categories {
					cats[c] = struct{}{}
				}
				return nil
			}
		default:
			return nil, fmt.Errorf("staging run %s: shard %s of unknown kind %q", run, sh.Name, sh.Kind)
		}
		if err := staging.ReadShard(ctx, st, run, sh, read); err != nil {
			return nil, err
		}
	}
	var missing []string
	for k, seen := range want {
		if !seen {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("staging run %s reports nothing of %d of its %d objects (first: %s)", run, len(missing), len(keys), missing[0])
	}
	res.Categories = make([]int32, 0, len(cats))
	for c := range cats {
		res.Categories = append(res.Categories, c)
	}
	slices.Sort(res.Categories)
	slices.SortFunc(res.Rejects, func(a, b salesrank.Reject) int {
		return cmp.Or(strings.Compare(a.Object, b.Object), cmp.Compare(a.Line, b.Line))
	})
	slices.SortFunc(res.Failed, func(a, b engine.ObjectError) int { return strings.Compare(a.Key, b.Key) })
	return res, nil
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
