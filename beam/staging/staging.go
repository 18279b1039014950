// Package staging is what a Beam pipeline run leaves for the ranker to read: shard files of
// records, and, written last, a manifest that lists every shard the run's output is made of
// with its record count, size and SHA-256.
//
// The staging output is never the truth. The ranker reads it back, checks every shard
// against the manifest, and only then commits what it holds through the store, in the same
// transaction as the embedded engine's output (manifest entries, partial sums, quarantine).
// So:
//
//   - a pipeline that dies half-way has written no manifest, and nothing is read or
//     committed;
//   - a bundle that a runner retries writes a second shard under a new name; only the
//     attempt whose output the runner committed reaches the manifest, and the other shard
//     is never read;
//   - a shard that was damaged, truncated or overwritten after it was listed fails its
//     checksum, and the whole run is refused.
//
// Layout, under the staging location (a folder or a bucket URL the workers can write):
//
//	RUN/MANIFEST.json            written last, atomically (a blob appears whole on Close)
//	RUN/KIND-RANDOM.rec          one shard per bundle per kind of record
//
// RUN is "run-" followed by the UTC start time (20261204T051500Z) and 8 random bytes in
// hex, so names never repeat and sort by age. A shard is the magic line "salesrank staging
// 1\n" followed by records, each a uvarint length and that many bytes.
package staging

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ManifestName is the name of a run's manifest inside its folder.
const ManifestName = "MANIFEST.json"

// magic starts every shard file, so that a file of another kind is refused at once.
const magic = "salesrank staging 1\n"

// MaxRecord bounds one record, so that a damaged length cannot make a reader allocate
// without limit: a writer refuses a longer record, and a reader a longer length.
const MaxRecord = 64 << 20

// Shard describes one shard file of a run.
type Shard struct {
	Name    string `json:"name"` // relative to the run's folder
	Kind    string `json:"kind"`
	Records int64  `json:"records"`
	Bytes   int64  `json:"bytes"`
	SHA256  string `json:"sha256"`
	// Tally, when the step that wrote the shard gives one, says what that step was
	// given, so that a reader can check it against what the steps before it sent: a
	// shard lost between the two would otherwise go unseen.
	Tally *Tally `json:"tally,omitempty"`
}

// Tally is what one partition of a shuffle held: how many entries, and their units
// summed modulo 2^64 (a checksum, not a total).
type Tally struct {
	Partition int    `json:"partition"`
	Entries   int64  `json:"entries"`
	Units     uint64 `json:"units"`
}

// Manifest lists the shards a run's output is made of.
type Manifest struct {
	Version int       `json:"version"`
	Run     string    `json:"run"`
	Written time.Time `json:"written"`
	Shards  []Shard   `json:"shards"`
}

// NewRun returns a new run name for a run that starts at now.
func NewRun(now time.Time) string {
	var b [8]byte
	rand.Read(b[:])
	return "run-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// RunTime returns when a run named by NewRun started.
func RunTime(run string) (time.Time, bool) {
	s, ok := strings.CutPrefix(run, "run-")
	if !ok || len(s) < 16 {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102T150405Z", s[:16])
	return t, err == nil
}

// Writer writes one shard.
type Writer struct {
	w      *blob.Writer
	cancel context.CancelFunc // aborts w
	sum    hash.Hash
	shard  Shard
	lenb   [binary.MaxVarintLen64]byte
}

// NewWriter starts a shard of kind in run's folder of bucket, under a new random name.
func NewWriter(ctx context.Context, bucket *blob.Bucket, run, kind string) (*Writer, error) {
	var b [8]byte
	rand.Read(b[:])
	name := kind + "-" + hex.EncodeToString(b[:]) + ".rec"
	// A blob write whose context is cancelled before Close is discarded: that is Abort.
	wctx, cancel := context.WithCancel(ctx)
	w, err := bucket.NewWriter(wctx, run+"/"+name, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("staging: create shard %s/%s: %w", run, name, err)
	}
	sw := &Writer{w: w, cancel: cancel, sum: sha256.New(), shard: Shard{Name: name, Kind: kind}}
	if err := sw.write([]byte(magic)); err != nil {
		sw.Abort()
		return nil, err
	}
	return sw, nil
}

// Abort discards a shard that is being written: it never appears (on stores that write
// files in place, at most as a partial file that no manifest lists).
func (w *Writer) Abort() {
	w.cancel()
	w.w.Close()
}

func (w *Writer) write(p []byte) error {
	w.sum.Write(p)
	w.shard.Bytes += int64(len(p))
	if _, err := w.w.Write(p); err != nil {
		return fmt.Errorf("staging: write shard %s: %w", w.shard.Name, err)
	}
	return nil
}

// Write appends one record of at most MaxRecord bytes.
func (w *Writer) Write(rec []byte) error {
	if len(rec) > MaxRecord {
		return fmt.Errorf("staging: shard %s: a record of %d bytes, over the limit of %d", w.shard.Name, len(rec), MaxRecord)
	}
	n := binary.PutUvarint(w.lenb[:], uint64(len(rec)))
	if err := w.write(w.lenb[:n]); err != nil {
		return err
	}
	w.shard.Records++
	return w.write(rec)
}

// Close finishes the shard and describes it for the manifest. The shard exists only once
// Close has returned without error.
func (w *Writer) Close() (Shard, error) {
	defer w.cancel()
	if err := w.w.Close(); err != nil {
		return Shard{}, fmt.Errorf("staging: close shard %s: %w", w.shard.Name, err)
	}
	w.shard.SHA256 = hex.EncodeToString(w.sum.Sum(nil))
	return w.shard, nil
}

// WriteManifest writes run's manifest, which makes its output readable.
func WriteManifest(ctx context.Context, bucket *blob.Bucket, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := bucket.WriteAll(ctx, m.Run+"/"+ManifestName, b, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("staging: write manifest of %s: %w", m.Run, err)
	}
	return nil
}

// ErrNoManifest reports a run that has not finished (or never will): its output must not
// be read.
var ErrNoManifest = errors.New("staging: the run has no manifest: it did not finish")

// ReadManifest reads run's manifest.
func ReadManifest(ctx context.Context, bucket *blob.Bucket, run string) (*Manifest, error) {
	b, err := bucket.ReadAll(ctx, run+"/"+ManifestName)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, ErrNoManifest
	}
	if err != nil {
		return nil, fmt.Errorf("staging: read manifest of %s: %w", run, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("staging: manifest of %s: %w", run, err)
	}
	if m.Version != 1 || m.Run != run {
		return nil, fmt.Errorf("staging: manifest of %s is version %d of run %q, want version 1 of this run", run, m.Version, m.Run)
	}
	return &m, nil
}

// ReadShard calls fn with every record of one shard of run, then checks the shard against
// its description: record count, size and SHA-256. fn sees records of a shard that may
// still turn out damaged; the caller must discard what it built if ReadShard fails.
func ReadShard(ctx context.Context, bucket *blob.Bucket, run string, sh Shard, fn func(rec []byte) error) error {
	r, err := bucket.NewReader(ctx, run+"/"+sh.Name, nil)
	if err != nil {
		return fmt.Errorf("staging: open shard %s/%s: %w", run, sh.Name, err)
	}
	defer r.Close()
	sum := sha256.New()
	cr := &countingReader{r: io.TeeReader(r, sum)}
	br := bufio.NewReaderSize(cr, 1<<20)
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(br, head); err != nil || string(head) != magic {
		return fmt.Errorf("staging: shard %s/%s is not a staging shard", run, sh.Name)
	}
	var records int64
	var buf []byte
	for {
		n, err := binary.ReadUvarint(br)
		if err == io.EOF {
			break
		}
		if err != nil || n > MaxRecord {
			return fmt.Errorf("staging: shard %s/%s: bad record length after %d records", run, sh.Name, records)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		rec := buf[:n]
		if _, err := io.ReadFull(br, rec); err != nil {
			return fmt.Errorf("staging: shard %s/%s: truncated after %d records", run, sh.Name, records)
		}
		records++
		if err := fn(rec); err != nil {
			return fmt.Errorf("staging: shard %s/%s, record %d: %w", run, sh.Name, records, err)
		}
	}
	got := hex.EncodeToString(sum.Sum(nil))
	if records != sh.Records || cr.n != sh.Bytes || got != sh.SHA256 {
		return fmt.Errorf("staging: shard %s/%s holds %d records, %d bytes, SHA-256 %s; the manifest says %d, %d, %s",
			run, sh.Name, records, cr.n, got, sh.Records, sh.Bytes, sh.SHA256)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Delete removes everything in run's folder: its shards, the ones no manifest lists, and
// the manifest.
func Delete(ctx context.Context, bucket *blob.Bucket, run string) error {
	it := bucket.List(&blob.ListOptions{Prefix: run + "/"})
	var errs []error
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("staging: list %s: %w", run, err)
		}
		if err := bucket.Delete(ctx, o.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DeleteOlder removes every run that started before t, finished or not: what a crashed
// ranker left behind. It returns the runs it removed.
func DeleteOlder(ctx context.Context, bucket *blob.Bucket, t time.Time) ([]string, error) {
	it := bucket.List(&blob.ListOptions{Delimiter: "/"})
	var old []string
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("staging: list runs: %w", err)
		}
		run := strings.TrimSuffix(o.Key, "/")
		if at, ok := RunTime(run); o.IsDir && ok && at.Before(t) {
			old = append(old, run)
		}
	}
	var errs []error
	for _, run := range old {
		errs = append(errs, Delete(ctx, bucket, run))
	}
	return old, errors.Join(errs...)
}
