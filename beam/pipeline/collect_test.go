package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/beam/internal/beamtest"
	"github.com/salesrank/salesrank/beam/staging"
	"github.com/salesrank/salesrank/internal/counting"
	"github.com/salesrank/salesrank/internal/objstore"
)

// fakeRun writes a run's staging output by hand, as a pipeline would, so that collect can
// be shown every kind of output a broken or duplicating runner could leave.
type fakeRun struct {
	t      *testing.T
	bucket *blob.Bucket
	run    string
	shards []staging.Shard
}

func newFakeRun(t *testing.T) *fakeRun {
	t.Helper()
	b := memblob.OpenBucket(nil)
	t.Cleanup(func() { b.Close() })
	return &fakeRun{t: t, bucket: b, run: staging.NewRun(time.Now())}
}

// shard writes a shard of records; listed says whether the manifest will list it.
func (r *fakeRun) shard(kind string, tally *staging.Tally, listed bool, recs ...[]byte) {
	r.t.Helper()
	w, err := staging.NewWriter(context.Background(), r.bucket, r.run, kind)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			r.t.Fatal(err)
		}
	}
	sh, err := w.Close()
	if err != nil {
		r.t.Fatal(err)
	}
	sh.Tally = tally
	if listed {
		r.shards = append(r.shards, sh)
	}
}

// sums writes a sums shard of partition p holding entries, each {bucket, category,
// product, units}, with the tally that a reduce given exactly those entries would write.
func (r *fakeRun) sums(p int, entries ...[4]int64) {
	r.t.Helper()
	tally := &staging.Tally{Partition: p}
	var recs [][]byte
	for _, e := range entries {
		recs = append(recs, encodeSum(nil, uint32(e[0]), int32(e[1]), e[2], e[3]))
		tally.Entries++
		tally.Units += uint64(e[3])
	}
	r.shard(kindSums, tally, true, recs...)
}

// reports writes one objects shard holding reps.
func (r *fakeRun) reports(reps ...*objectReport) {
	r.t.Helper()
	var recs [][]byte
	for _, rep := range reps {
		b, err := json.Marshal(rep)
		if err != nil {
			r.t.Fatal(err)
		}
		recs = append(recs, b)
	}
	r.shard(kindObjects, nil, true, recs...)
}

func (r *fakeRun) collect(keys ...string) (*counting.Result, error) {
	r.t.Helper()
	m := &staging.Manifest{Version: 1, Run: r.run, Written: time.Now(), Shards: r.shards}
	if err := staging.WriteManifest(context.Background(), r.bucket, m); err != nil {
		r.t.Fatal(err)
	}
	return collect(context.Background(), r.bucket, r.run, keys)
}

// sent is the report of an object that sent partition p the entries of a sums shard.
func sent(key string, p int, entries ...[4]int64) *objectReport {
	t := staging.Tally{Partition: p}
	for _, e := range entries {
		t.Entries++
		t.Units += uint64(e[3])
	}
	return &objectReport{Key: key, Stats: counting.Stats{Objects: 1, LinesRead: t.Entries}, Categories: []int32{7}, Parts: []staging.Tally{t}}
}

var (
	e1 = [4]int64{1, 7, 42, 3}
	e2 = [4]int64{1, 7, 43, 1 << 62}
)

func TestCollectWholeRun(t *testing.T) {
	r := newFakeRun(t)
	r.sums(3, e1, e2)
	r.reports(sent("a.tsv", 3, e1), sent("b.tsv", 3, e2), &objectReport{Key: "c.tsv", Error: "gzip: truncated"})
	r.shard(kindSums, &staging.Tally{Partition: 3}, false, encodeSum(nil, 1, 7, 42, 1000)) // a retried bundle's leftover
	res, err := r.collect("a.tsv", "b.tsv", "c.tsv")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Totals.GetAt(1, 7, 42), int64(3); got != want {
		t.Errorf("units of (1, 7, 42) = %d, want %d: the shard no manifest lists must not count", got, want)
	}
	if got, want := res.Totals.GetAt(1, 7, 43), int64(1<<62); got != want {
		t.Errorf("units of (1, 7, 43) = %d, want %d", got, want)
	}
	if len(res.Objects) != 2 || len(res.Failed) != 1 || res.Failed[0].Key != "c.tsv" {
		t.Errorf("objects %v, failed %v; want a.tsv and b.tsv counted, c.tsv failed", res.Objects, res.Failed)
	}
	if res.Stats.Objects != 2 || len(res.Categories) != 1 {
		t.Errorf("stats %+v, categories %v", res.Stats, res.Categories)
	}
}

// TestCollectRefuses shows every way a run's output can be short or doubled, and that
// collect refuses each rather than commit it.
func TestCollectRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(r *fakeRun)
		want  string
	}{
		{"report twice", func(r *fakeRun) {
			r.sums(3, e1)
			r.reports(sent("a.tsv", 3, e1))
			r.reports(sent("a.tsv", 3, e1))
		}, "reported twice"},
		{"unknown object", func(r *fakeRun) {
			r.sums(3, e1)
			r.reports(sent("a.tsv", 3, e1), sent("z.tsv", 3))
		}, "was not given"},
		{"object unreported", func(r *fakeRun) {
			r.sums(3, e1)
			r.reports(sent("a.tsv", 3, e1))
		}, "reports nothing of 1 of its 2 objects (first: b.tsv)"},
		{"key staged twice", func(r *fakeRun) {
			r.sums(3, e1)
			r.sums(4, e1)
			r.reports(sent("a.tsv", 3, e1), sent("b.tsv", 4, e1))
		}, "staged twice"},
		{"partition summed twice", func(r *fakeRun) {
			r.sums(3, e1)
			r.sums(3, e2)
			r.reports(sent("a.tsv", 3, e1), sent("b.tsv", 3, e2))
		}, "partition 3 summed twice"},
		{"sums shard missing", func(r *fakeRun) {
			r.sums(3, e1)
			r.reports(sent("a.tsv", 3, e1), sent("b.tsv", 5, e2))
		}, "partition 5: the objects sent 1 entries"},
		{"sums shard short", func(r *fakeRun) {
			r.sums(3, e1)
			r.reports(sent("a.tsv", 3, e1), sent("b.tsv", 3, e2))
		}, "partition 3: the objects sent 2 entries"},
		{"sums shard nobody sent", func(r *fakeRun) {
			r.sums(3, e1)
			r.sums(4, e2)
			r.reports(sent("a.tsv", 3, e1), &objectReport{Key: "b.tsv"})
		}, "partition 4 has a sums shard, but no object sent it anything"},
		{"sums shard without tally", func(r *fakeRun) {
			r.shard(kindSums, nil, true, encodeSum(nil, 1, 7, 42, 3))
			r.reports(sent("a.tsv", 3, e1), &objectReport{Key: "b.tsv"})
		}, "has no tally"},
		{"report chunk missing", func(r *fakeRun) {
			rep := sent("a.tsv", 3, e1)
			rep.Chunks = 2
			r.sums(3, e1)
			r.reports(rep, &objectReport{Key: "b.tsv"})
		}, "object a.tsv: 1 records of a report of 2"},
		{"report chunk twice", func(r *fakeRun) {
			rep := sent("a.tsv", 3, e1)
			rep.Chunks = 2
			r.sums(3, e1)
			r.reports(rep, &objectReport{Key: "a.tsv", Chunk: 1}, &objectReport{Key: "a.tsv", Chunk: 1}, &objectReport{Key: "b.tsv"})
		}, "object a.tsv reported twice (record 1"},
		{"unknown kind", func(r *fakeRun) {
			r.sums(3, e1)
			r.reports(sent("a.tsv", 3, e1), &objectReport{Key: "b.tsv"})
			r.shard("counts", nil, true, []byte("x"))
		}, `unknown kind "counts"`},
		{"bad sums record", func(r *fakeRun) {
			r.shard(kindSums, &staging.Tally{Partition: 3, Entries: 1, Units: 3}, true, []byte("short"))
			r.reports(sent("a.tsv", 3, e1), &objectReport{Key: "b.tsv"})
		}, "sums record of 5 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFakeRun(t)
			tc.write(r)
			res, err := r.collect("a.tsv", "b.tsv")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("collect = %v, %v; want an error containing %q", res, err, tc.want)
			}
		})
	}
}

func TestCollectUnfinishedRun(t *testing.T) {
	r := newFakeRun(t)
	r.sums(3, e1)
	r.reports(sent("a.tsv", 3, e1))
	// no manifest: the pipeline died before its last step
	_, err := collect(context.Background(), r.bucket, r.run, []string{"a.tsv"})
	if !errors.Is(err, staging.ErrNoManifest) {
		t.Fatalf("collect of a run without a manifest = %v, want ErrNoManifest", err)
	}
}

// TestLargeReportInChunks shows that an object with more bad lines than one staged record
// holds is reported in several records, read back whole and in line order.
func TestLargeReportInChunks(t *testing.T) {
	const lines = 3 * maxChunk / (64 << 10)
	text := bytes.Repeat([]byte("x"), 64<<10)
	rep := &objectReport{Key: "bad.tsv", Stats: counting.Stats{Objects: 1, LinesRead: lines, LinesRejected: lines}}
	for i := range lines {
		rep.Rejects = append(rep.Rejects, salesrank.Reject{Object: "bad.tsv", Line: int64(i + 1), Reason: "too_long", Text: text})
	}
	chunks := rep.chunks()
	if len(chunks) < 3 {
		t.Fatalf("%d bad lines of 64 KiB in %d records; want at least 3", lines, len(chunks))
	}
	r := newFakeRun(t)
	var recs [][]byte
	for i, c := range chunks {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > staging.MaxRecord {
			t.Fatalf("record %d is %d bytes, over staging.MaxRecord", i, len(b))
		}
		recs = append(recs, b)
	}
	recs[0], recs[len(recs)-1] = recs[len(recs)-1], recs[0] // any order
	r.shard(kindObjects, nil, true, recs...)
	res, err := r.collect("bad.tsv")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejects) != lines {
		t.Fatalf("%d bad lines read back, want %d", len(res.Rejects), lines)
	}
	for i, rj := range res.Rejects {
		if rj.Line != int64(i+1) || !bytes.Equal(rj.Text, text) {
			t.Fatalf("bad line %d read back as line %d of %d bytes", i+1, rj.Line, len(rj.Text))
		}
	}
}

// TestObjectChangedSinceListed rewrites an object after the ranker listed it and before the
// pipeline reads it: the pipeline must leave it out as failed (the next run takes its new
// version), not count a version the manifest will not record.
func TestObjectChangedSinceListed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cutoff := time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC)
	// sale is one log line: a sale in category 7, three hours before the cutoff.
	sale := func(product, units int) string {
		return fmt.Sprintf("%d\t%d\t7\t%d\t1.00\t1\t1\n", cutoff.Add(-3*time.Hour).Unix(), product, units)
	}
	beamtest.WriteObjects(t, dir, "", map[string][]byte{
		"a.tsv": []byte(sale(42, 3)),
		"b.tsv": []byte(sale(43, 1)),
	})
	logs, err := objstore.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	listed, err := objstore.ListObjects(ctx, logs)
	if err != nil {
		t.Fatal(err)
	}
	objects := make([]counting.Object, len(listed))
	for i, o := range listed {
		objects[i] = counting.Object{Key: o.Key, Size: o.Size, ETag: o.ETag}
	}
	beamtest.WriteObjects(t, dir, "", map[string][]byte{"b.tsv": []byte(sale(43, 1000))})

	stagingDir := t.TempDir()
	eng := &Engine{Logs: dir, Staging: stagingDir, Runner: "prism"}
	spec := counting.Spec{Window: salesrank.Window{Start: cutoff.Add(-7 * 24 * time.Hour), End: cutoff}, Bucket: time.Hour}
	res, err := eng.Count(ctx, logs, objects, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) != 1 || res.Failed[0].Key != "b.tsv" || !strings.Contains(res.Failed[0].Err.Error(), "changed since the ranker listed it") {
		t.Fatalf("failed objects %v, want b.tsv as changed since listed", res.Failed)
	}
	if len(res.Objects) != 1 || res.Objects[0].Key != "a.tsv" || len(res.Sums.Buckets()) != 1 || len(res.Sums.Entries(nil, 0)) != 1 {
		t.Fatalf("counted %v with %d buckets, want a.tsv alone with 1 key", res.Objects, len(res.Sums.Buckets()))
	}
	if left, err := os.ReadDir(stagingDir); err != nil || len(left) > 0 {
		t.Fatalf("the staging folder holds %v (%v) after the run, want nothing", left, err)
	}
}
