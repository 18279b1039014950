// Package pipeline counts sales with Apache Beam: the map and combine steps of a ranker run
// (and, for rank --full, the top K per category too) as a Beam pipeline that runs on Prism,
// Flink, Spark or Dataflow. Engine plugs it into the ranker in place of the embedded engine;
// the pipeline's output is a staging artifact (package staging) that the ranker checks and
// then commits through the store exactly as it commits the embedded engine's.
//
// The pipeline is the source design's two MapReduce steps:
//
//	object keys ─► Reshuffle ─► map: count each object ───┬─► P partitions of its sums
//	                 (counting.Local on one object: the     │     ─► GroupByKey(partition)
//	                  same parser, windows, buckets,      │     ─► reduce: sum each key;
//	                  line numbers and quarantine)        │        --full: top K per category
//	                                                      │     ─► one shard "sums" each
//	                                                      └─► one report per object (stats,
//	                                                          bad lines, categories, or why
//	                                                          it could not be read)
//	                                                          ─► shards "objects"
//	shard descriptions of both ─► one group ─► MANIFEST.json
//
// Why partitions of encoded sums rather than one Beam element per key with CombinePerKey: a
// runner pays for every element (encoding, a shuffle entry, a call); at a few million keys an
// hour, elements of one key each made Prism spend 35 µs and 2.5 KB of memory a key.
// An object's sums, already combined by the map, travel as P blobs of varints instead, and
// the reduce sums them in counting.Counts: the same combine, with elements a thousand times
// fewer. For --full the partition is the category's, so each reduce holds whole categories
// and ranks them itself (salesrank.Rank), and only the top K of each comes back.
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
	"gocloud.dev/blob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/beam/staging"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/objstore"
)

// Kinds of staged records.
const (
	kindSums    = "sums"    // key (bucket, category, product) and its units
	kindObjects = "objects" // one objectReport, as JSON
)

// DefaultPartitions is how many reduce tasks sum a run's keys: enough to keep a cluster's
// workers busy, few enough that each map emits a handful of blobs per object.
const DefaultPartitions = 16

func init() {
	register.DoFn4x1[context.Context, objectRef, func(int, []byte), func([]byte), error](&countFn{})
	register.DoFn4x1[context.Context, int, func(*[]byte) bool, func([]byte), error](&reduceFn{})
	register.DoFn3x1[context.Context, []byte, func([]byte), error](&shardFn{})
	register.DoFn3x1[context.Context, int, func(*[]byte) bool, error](&manifestFn{})
	register.Emitter1[[]byte]()
	register.Emitter2[int, []byte]()
	register.Iter1[[]byte]()
	beam.RegisterType(reflect.TypeOf((*objectRef)(nil)).Elem())
}

// Options says what one pipeline counts and where it leaves its output.
type Options struct {
	Logs       string // the log objects' folder or URL, as objstore.Open takes it; workers open it
	Staging    string // the staging folder or URL; workers write it
	Run        string // the run's folder in Staging
	Spec       counting.Spec
	Workers    int // counting goroutines per object; 0 means every core of the worker
	Partitions int // reduce tasks; 0 means DefaultPartitions
}

// objectRef is a log object as the ranker listed it: the map counts it only if it is still
// that version.
type objectRef struct {
	Key  string
	Size int64
	ETag string
}

// Build adds the counting pipeline for objects to s.
func Build(s beam.Scope, objects []counting.Object, o Options) {
	top := 0
	if o.Spec.Bucket == 0 {
		top = o.Spec.Top
	}
	refs := make([]objectRef, len(objects))
	for i, obj := range objects {
		refs[i] = objectRef{Key: obj.Key, Size: obj.Size, ETag: obj.ETag}
	}
	parts, reports := beam.ParDo2(s, &countFn{
		Logs:       o.Logs,
		Start:      o.Spec.Window.Start.Unix(),
		End:        o.Spec.Window.End.Unix(),
		BucketSecs: int64(o.Spec.Bucket / time.Second),
		Workers:    o.Workers,
		Partitions: o.Partitions,
		ByCategory: top > 0,
	}, beam.Reshuffle(s, beam.CreateList(s, refs)))
	sumShards := beam.ParDo(s, &reduceFn{Staging: o.Staging, Run: o.Run, Top: top}, beam.GroupByKey(s, parts))
	objectShards := beam.ParDo(s, &shardFn{Staging: o.Staging, Run: o.Run, Kind: kindObjects}, reports)
	shards := beam.GroupByKey(s, beam.AddFixedKey(s, beam.Flatten(s, sumShards, objectShards)))
	beam.ParDo0(s, &manifestFn{Staging: o.Staging, Run: o.Run}, shards)
}

// objectReport is what counting one object gave, but its sums: its stats, the categories its
// good lines name, its bad lines, and a tally of the entries it sent each partition; or, if
// it could not be read to its end, why. A report whose bad lines would make a record too
// large for a shard takes several records (chunks), the later ones holding only bad lines.
type objectReport struct {
	Key        string             `json:"key"`
	Chunk      int                `json:"chunk,omitempty"`  // this record's place in the report, from 0
	Chunks     int                `json:"chunks,omitempty"` // in chunk 0: how many records the report takes
	Error      string             `json:"error,omitempty"`  // not read to its end: nothing of it counts
	Stats      counting.Stats     `json:"stats"`
	Categories []int32            `json:"categories,omitempty"`
	Parts      []staging.Tally    `json:"parts,omitempty"`
	Rejects    []salesrank.Reject `json:"rejects,omitempty"`
}

// maxChunk bounds the bad lines in one report record (their text, base64 in JSON, and
// what goes with each), well under staging.MaxRecord.
const maxChunk = 16 << 20

// chunks splits rep into records: rep itself with as many of its bad lines as fit, then
// records of the key and more bad lines.
func (rep *objectReport) chunks() []*objectReport {
	rejects := rep.Rejects
	out := []*objectReport{rep}
	start, size := 0, 0
	for i, r := range rejects {
		n := len(r.Text) + len(r.Object) + 64
		if size > 0 && size+n > maxChunk {
			out[len(out)-1].Rejects = rejects[start:i]
			out = append(out, &objectReport{Key: rep.Key, Chunk: len(out)})
			start, size = i, 0
		}
		size += n
	}
	out[len(out)-1].Rejects = rejects[start:]
	rep.Chunks = len(out)
	return out
}

// countFn is the map: it counts one log object with the embedded engine's own code
// (counting.Local on that object alone), so that parsing, windows, buckets, line numbers and
// the quarantine cannot drift between the two engines, and emits its sums split into
// partitions. For an object it could not read to its end it emits only a report that says
// so. A failure of the run itself (the context) fails the bundle, whose output the runner
// then discards and retries.
type countFn struct {
	Logs       string
	Start, End int64 // the window, unix seconds
	BucketSecs int64 // 0: no buckets
	Workers    int
	Partitions int
	ByCategory bool // partition by category alone (for ranking), not by the whole key

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

func (f *countFn) ProcessElement(ctx context.Context, obj objectRef, emitPart func(int, []byte), emitReport func([]byte)) error {
	rep, err := f.count(ctx, obj, emitPart)
	if err != nil {
		return err
	}
	for _, chunk := range rep.chunks() {
		b, err := json.Marshal(chunk)
		if err != nil {
			return err
		}
		emitReport(b)
	}
	return nil
}

// count counts one object, emits its sums and returns its report.
func (f *countFn) count(ctx context.Context, obj objectRef, emitPart func(int, []byte)) (*objectReport, error) {
	rep := &objectReport{Key: obj.Key}
	// A worker may read an object minutes after the ranker listed it. An object rewritten
	// since is left out (and taken as its new version by the next run): the manifest
	// records the listed version, so that is the only one that may count.
	now, err := objstore.Stat(ctx, f.logs, obj.Key)
	switch {
	case err != nil:
		rep.Error = err.Error()
		return rep, nil
	case now.ETag != obj.ETag || now.Size != obj.Size:
		rep.Error = fmt.Sprintf("changed since the ranker listed it (ETag %s, %d bytes; now %s, %d bytes)", obj.ETag, obj.Size, now.ETag, now.Size)
		return rep, nil
	}

	spec := counting.Spec{
		Window: salesrank.Window{Start: time.Unix(f.Start, 0), End: time.Unix(f.End, 0)},
		Bucket: time.Duration(f.BucketSecs) * time.Second,
	}
	eng := &counting.Local{Workers: f.Workers, Readers: 1}
	res, err := eng.Count(ctx, f.logs, []counting.Object{{Key: obj.Key, Size: obj.Size}}, spec)
	if err != nil {
		return nil, fmt.Errorf("count %s: %w", obj.Key, err)
	}
	switch {
	case len(res.Failed) > 0:
		rep.Error = res.Failed[0].Err.Error()
		return rep, nil
	case len(res.Objects) != 1:
		return nil, fmt.Errorf("count %s: the engine reported neither the object nor its failure", obj.Key)
	}
	rep.Stats, rep.Categories, rep.Rejects = res.Stats, res.Categories, res.Rejects

	n := f.Partitions
	if n <= 0 {
		n = DefaultPartitions
	}
	blobs := make([][]byte, n)
	tallies := make([]staging.Tally, n)
	add := func(b uint32, cat int32, product int64, units int64) {
		p := partition(cat, product, n, f.ByCategory)
		blobs[p] = appendEntry(blobs[p], b, cat, product, units)
		tallies[p].Entries++
		tallies[p].Units += uint64(units)
	}
	if res.Sums != nil { // counted per bucket; the reduce sums a key sent more than once
		for i, b := range res.Sums.Buckets() {
			for _, run := range res.Sums.Runs(i) {
				for _, e := range run {
					add(b, e.CategoryID, e.ProductID, e.Units)
				}
			}
		}
	} else {
		res.Totals.Each(add)
	}
	for p, blob := range blobs {
		if len(blob) > 0 {
			emitPart(p, blob)
			tallies[p].Partition = p
			rep.Parts = append(rep.Parts, tallies[p])
		}
	}
	return rep, nil
}

// partition spreads keys over n partitions: by the whole key, or by category alone.
func partition(cat int32, product int64, n int, byCategory bool) int {
	h := uint64(uint32(cat)) * 0x9e3779b97f4a7c15
	if !byCategory {
		h ^= uint64(product)
		h *= 0xbf58476d1ce4e5b9
	}
	return int((h >> 32) % uint64(n))
}

// appendEntry encodes one sum for the shuffle: four uvarints.
func appendEntry(buf []byte, b uint32, cat int32, product int64, units int64) []byte {
	buf = binary.AppendUvarint(buf, uint64(b))
	buf = binary.AppendUvarint(buf, uint64(uint32(cat)))
	buf = binary.AppendUvarint(buf, uint64(product))
	return binary.AppendUvarint(buf, uint64(units))
}

// eachEntry decodes what appendEntry wrote.
func eachEntry(buf []byte, fn func(b uint32, cat int32, product int64, units int64)) error {
	for len(buf) > 0 {
		var v [4]uint64
		for i := range v {
			x, n := binary.Uvarint(buf)
			if n <= 0 {
				return fmt.Errorf("bad entry in a partition blob")
			}
			v[i], buf = x, buf[n:]
		}
		fn(uint32(v[0]), int32(uint32(v[1])), int64(v[2]), int64(v[3]))
	}
	return nil
}

// reduceFn sums one partition's blobs from every object and writes the totals to one shard
// (for --full, only each category's top K), then emits the shard's description. A retried
// reduce writes a new shard; the manifest lists the one whose description the runner
// committed.
type reduceFn struct {
	Staging string
	Run     string
	Top     int // above 0: keep each category's top Top only

	staging *blob.Bucket
}

func (f *reduceFn) Setup(ctx context.Context) error {
	b, err := openStaging(ctx, f.Staging)
	if err != nil {
		return err
	}
	f.staging = b
	return nil
}

func (f *reduceFn) Teardown() error {
	if f.staging == nil {
		return nil
	}
	return f.staging.Close()
}

func (f *reduceFn) ProcessElement(ctx context.Context, part int, blobs func(*[]byte) bool, emit func([]byte)) error {
	var totals counting.Counts
	var batch counting.Batch
	var buf []byte
	given := staging.Tally{Partition: part}
	for blobs(&buf) {
		err := eachEntry(buf, func(b uint32, cat int32, product int64, units int64) {
			totals.Push(&batch, b, cat, product, units)
			given.Entries++
			given.Units += uint64(units)
		})
		if err != nil {
			return fmt.Errorf("partition %d: %w", part, err)
		}
	}
	totals.AddBatch(&batch)

	w, err := staging.NewWriter(ctx, f.staging, f.Run, kindSums)
	if err != nil {
		return err
	}
	if err := f.write(w, &totals); err != nil {
		w.Abort()
		return err
	}
	sh, err := w.Close()
	if err != nil {
		return err
	}
	sh.Tally = &given
	desc, err := json.Marshal(sh)
	if err != nil {
		return err
	}
	emit(desc)
	return nil
}

// write writes the partition's totals to w: all of them, or each category's top f.Top.
func (f *reduceFn) write(w *staging.Writer, totals *counting.Counts) error {
	var rec []byte
	if f.Top > 0 {
		for _, r := range salesrank.Rank(totals.All(), nil, f.Top) {
			for _, e := range r.Entries {
				rec = encodeSum(rec[:0], 0, r.CategoryID, e.ProductID, e.TotalSold)
				if err := w.Write(rec); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var err error
	totals.Each(func(b uint32, cat int32, product int64, units int64) {
		if err == nil {
			rec = encodeSum(rec[:0], b, cat, product, units)
			err = w.Write(rec)
		}
	})
	return err
}

// encodeSum appends a staged sums record: (bucket, category, product) as 16 bytes,
// big-endian, then the units as a uvarint.
func encodeSum(buf []byte, b uint32, cat int32, product int64, units int64) []byte {
	buf = binary.BigEndian.AppendUint32(buf, b)
	buf = binary.BigEndian.AppendUint32(buf, uint32(cat))
	buf = binary.BigEndian.AppendUint64(buf, uint64(product))
	return binary.AppendUvarint(buf, uint64(units))
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
	f.abort()
	if f.staging == nil {
		return nil
	}
	return f.staging.Close()
}

// StartBundle discards the shard of a bundle that failed before FinishBundle.
func (f *shardFn) StartBundle(_ context.Context, _ func([]byte)) {
	f.abort()
}

func (f *shardFn) abort() {
	if f.w != nil {
		f.w.Abort()
		f.w = nil
	}
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
