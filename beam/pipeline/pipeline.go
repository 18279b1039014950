// Package pipeline counts sales with Apache Beam: the map and combine steps of a ranker run
// (and, for rank --full, the top K per category too) as a Beam pipeline that runs on Prism,
// Flink, Spark or Dataflow. Engine plugs it into the ranker in place of the embedded engine;
// the pipeline's output is a staging artifact (package staging) that the ranker checks and
// then commits through the store exactly as it commits the embedded engine's.
//
// The pipeline:
//
//	object keys ─► Reshuffle ─► count each object ─┬─► units per (bucket, category, product)
//	                 (engine.Local on one object:   │      ─► CombinePerKey(sum)
//	                  the same parser, windows,     │      ─► [--full: top K per category]
//	                  line numbers and quarantine)  │      ─► shards "sums"
//	                                                └─► one report per object (its counts,
//	                                                    bad lines, categories, or why it
//	                                                    could not be read) ─► shards "objects"
//	shard descriptions of both ─► one group ─► MANIFEST.json
//
// An object is the unit of work, as in a Hadoop job over gzip files: it is read whole by one
// worker, and counts only if it was read to its end, so a damaged object is left out whole.
package pipeline

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/top"
	"gocloud.dev/blob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/beam/staging"
	"github.com/salesrank/salesrank/internal/engine"
	"github.com/salesrank/salesrank/internal/objstore"
)

// Kinds of staged records.
const (
	kindSums    = "sums"    // key (bucket, category, product) and its units
	kindObjects = "objects" // one objectReport, as JSON
)

func init() {
	register.DoFn4x1[context.Context, string, func([]byte, int64), func([]byte), error](&countFn{})
	register.DoFn3x1[context.Context, []byte, func([]byte), error](&shardFn{})
	register.DoFn3x1[context.Context, int, func(*[]byte) bool, error](&manifestFn{})
	register.Function2x1(sumUnits)
	register.Function2x1(encodeSum)
	register.Function3x0(byCategory)
	register.Function3x0(encodeTop)
	register.Function2x1(lessRanked)
	register.Emitter1[[]byte]()
	register.Emitter2[[]byte, int64]()
	register.Emitter2[int32, ranked]()
	register.Iter1[[]byte]()
	beam.RegisterType(reflect.TypeOf((*ranked)(nil)).Elem())
}

// Options says what one pipeline counts and where it leaves its output.
type Options struct {
	Logs    string // the log objects' folder or URL, as objstore.Open takes it; workers open it
	Staging string // the staging folder or URL; workers write it
	Run     string // the run's folder in Staging
	Spec    engine.Spec
	Workers int // counting goroutines per object; 0 means every core of the worker
}

// Build adds the counting pipeline for keys (log object keys) to s.
func Build(s beam.Scope, keys []string, o Options) {
	objects := beam.Reshuffle(s, beam.CreateList(s, keys))
	sums, reports := beam.ParDo2(s, &countFn{
		Logs:       o.Logs,
		Start:      o.Spec.Window.Start.Unix(),
		End:        o.Spec.Window.End.Unix(),
		BucketSecs: int64(o.Spec.Bucket / time.Second),
		Workers:    o.Workers,
	}, objects)
	totals := beam.CombinePerKey(s, sumUnits, sums)

	var records beam.PCollection
	if o.Spec.Top > 0 && o.Spec.Bucket == 0 {
		best := top.LargestPerKey(s, beam.ParDo(s, byCategory, totals), o.Spec.Top, lessRanked)
		records = beam.ParDo(s, encodeTop, best)
	} else {
		records = beam.ParDo(s, encodeSum, totals)
	}
	sumShards := beam.ParDo(s, &shardFn{Staging: o.Staging, Run: o.Run, Kind: kindSums}, records)
	objectShards := beam.ParDo(s, &shardFn{Staging: o.Staging, Run: o.Run, Kind: kindObjects}, reports)
	shards := beam.GroupByKey(s, beam.AddFixedKey(s, beam.Flatten(s, sumShards, objectShards)))
	beam.ParDo0(s, &manifestFn{Staging: o.Staging, Run: o.Run}, shards)
}

// objectReport is what counting one object gave, but its sums: its stats, the categories its
// good lines name, its bad lines; or, if it could not be read to its end, why.
type objectReport struct {
	Key        string             `json:"key"`
	Error      string             `json:"error,omitempty"` // not read to its end: nothing of it counts
	Stats      engine.Stats       `json:"stats"`
	Categories []int32            `json:"categories,omitempty"`
	Rejects    []salesrank.Reject `json:"rejects,omitempty"`
}

// countFn counts one log object with the embedded engine's own code (engine.Local on that
// object alone), so that parsing, windows, buckets, line numbers and the quarantine cannot
// drift between the two engines. It emits nothing for an object it could not read to its
// end but a report that says so; a failure of the run itself (the context) fails the bundle,
// whose output the runner then discards and retries.
type countFn struct {
	Logs       string
	Start, End int64 // the window, unix seconds
	BucketSecs int64 // 0: no buckets
	Workers    int

	logs *blob.Bucket
}

func (f *countFn) Setup(ctx context.Context) error {
	b, err := objstore.Open(ctx, f.Logs)
	if err != nil {
		return err
	}
	f.logs = b
	return nil
}

func (f *countFn) Teardown() error {
	if f.logs == nil {
		return nil
	}
	return f.logs.Close()
}

func (f *countFn) ProcessElement(ctx context.Context, key string, emitSum func([]byte, int64), emitReport func([]byte)) error {
	spec := engine.Spec{
		Window: salesrank.Window{Start: time.Unix(f.Start, 0), End: time.Unix(f.End, 0)},
		Bucket: time.Duration(f.BucketSecs) * time.Second,
	}
	eng := &engine.Local{Workers: f.Workers, Readers: 1}
	res, err := eng.Count(ctx, f.logs, []engine.Object{{Key: key}}, spec)
	if err != nil {
		return fmt.Errorf("count %s: %w", key, err)
	}
	rep := objectReport{Key: key}
	switch {
	case len(res.Failed) > 0:
		rep.Error = res.Failed[0].Err.Error()
	case len(res.Objects) == 1:
		rep.Stats, rep.Categories, rep.Rejects = res.Stats, res.Categories, res.Rejects
		res.Totals.Each(func(b uint32, cat int32, product int64, units int64) {
			emitSum(sumKey(b, cat, product), units)
		})
	default:
		return fmt.Errorf("count %s: the engine reported neither the object nor its failure", key)
	}
	b, err := json.Marshal(&rep)
	if err != nil {
		return err
	}
	emitReport(b)
	return nil
}

// sumKey is a (bucket, category, product) key: 16 bytes, big-endian, so keys sort as tuples.
func sumKey(b uint32, cat int32, product int64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint32(k, b)
	binary.BigEndian.PutUint32(k[4:], uint32(cat))
	binary.BigEndian.PutUint64(k[8:], uint64(product))
	return k
}

func sumUnits(a, b int64) int64 { return a + b }

// encodeSum is a staged sums record: the 16-byte key, then the units as a uvarint.
func encodeSum(key []byte, units int64) []byte {
	return binary.AppendUvarint(append(make([]byte, 0, 16+binary.MaxVarintLen64), key...), uint64(units))
}

// decodeSum reads a record that encodeSum wrote.
func decodeSum(rec []byte) (b uint32, cat int32, product int64, units int64, err error) {
	if len(rec) < 17 {
		return 0, 0, 0, 0, fmt.Errorf("sums record of %d bytes", len(rec))
	}
	u, n := binary.Uvarint(rec[16:])
	if n <= 0 || 16+n != len(rec) {
		return 0, 0, 0, 0, fmt.Errorf("sums record with bad units")
	}
	return binary.BigEndian.Uint32(rec), int32(binary.BigEndian.Uint32(rec[4:])), int64(binary.BigEndian.Uint64(rec[8:])), int64(u), nil
}

// ranked is a product's total in one category, for the top K.
type ranked struct {
	Product int64
	Units   int64
}

// lessRanked orders products from worst to best: fewer units, then the larger id.
func lessRanked(a, b ranked) bool {
	if a.Units != b.Units {
		return a.Units < b.Units
	}
	return a.Product > b.Product
}

func byCategory(key []byte, units int64, emit func(int32, ranked)) {
	emit(int32(binary.BigEndian.Uint32(key[4:])), ranked{Product: int64(binary.BigEndian.Uint64(key[8:])), Units: units})
}

func encodeTop(cat int32, best []ranked, emit func([]byte)) {
	for _, r := range best {
		emit(encodeSum(sumKey(0, cat, r.Product), r.Units))
	}
}

// shardFn writes the records of a bundle to one shard and emits the shard's description
// when the bundle ends. A retried bundle writes a new shard; the one whose description the
// runner committed is the one the manifest lists.
type shardFn struct {
	Staging string
	Run     string
	Kind    string

	staging *blob.Bucket
	w       *staging.Writer
}

func (f *shardFn) Setup(ctx context.Context) error {
	b, err := openStaging(ctx, f.Staging)
	if err != nil {
		return err
	}
	f.staging = b
	return nil
}

func (f *shardFn) Teardown() error {
	if f.staging == nil {
		return nil
	}
	return f.staging.Close()
}

func (f *shardFn) StartBundle(_ context.Context, _ func([]byte)) {
	f.w = nil
}

// ProcessElement emits nothing itself; the emitter is there (and in StartBundle) because
// Beam's registration infers FinishBundle's emitter from ProcessElement's, and Beam wants
// the same emitters in all three.
func (f *shardFn) ProcessElement(ctx context.Context, rec []byte, _ func([]byte)) error {
	if f.w == nil {
		w, err := staging.NewWriter(ctx, f.staging, f.Run, f.Kind)
		if err != nil {
			return err
		}
		f.w = w
	}
	return f.w.Write(rec)
}

func (f *shardFn) FinishBundle(ctx context.Context, emit func([]byte)) error {
	if f.w == nil {
		return nil
	}
	sh, err := f.w.Close()
	f.w = nil
	if err != nil {
		return err
	}
	b, err := json.Marshal(sh)
	if err != nil {
		return err
	}
	emit(b)
	return nil
}

// manifestFn writes the run's manifest from every shard description: the last step, so a
// manifest exists only once every shard it lists has been written and committed.
type manifestFn struct {
	Staging string
	Run     string
}

func (f *manifestFn) ProcessElement(ctx context.Context, _ int, shards func(*[]byte) bool) error {
	b, err := openStaging(ctx, f.Staging)
	if err != nil {
		return err
	}
	defer b.Close()
	m := &staging.Manifest{Version: 1, Run: f.Run, Written: time.Now().UTC()}
	var desc []byte
	for shards(&desc) {
		var sh staging.Shard
		if err := json.Unmarshal(desc, &sh); err != nil {
			return fmt.Errorf("shard description: %w", err)
		}
		m.Shards = append(m.Shards, sh)
	}
	slices.SortFunc(m.Shards, func(a, b staging.Shard) int { return strings.Compare(a.Name, b.Name) })
	return staging.WriteManifest(ctx, b, m)
}
