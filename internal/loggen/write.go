package loggen

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// MarkerName is the file written in the output folder once every object is in place. Its
// name starts with "_" so readers do not take it for a log.
const MarkerName = "_SUCCESS"

// marker is the content of the _SUCCESS file.
type marker struct {
	Version int    `json:"version"`
	Config  Config `json:"config"`
	Stats   Stats  `json:"stats"`
}

// ObjectPath returns the path, relative to the output folder, of part p of the hour that
// starts at hour: YYYY/MM/DD/HH/part-N.tsv, or .tsv.gz when gzipped.
func ObjectPath(hour time.Time, p int, gz bool) string {
	name := "part-" + strconv.Itoa(p) + ".tsv"
	if gz {
		name += ".gz"
	}
	return filepath.Join(hour.UTC().Format("2006/01/02/15"), name)
}

// Complete reports whether dir holds the finished output of exactly cfg: its _SUCCESS
// marker was written by this version of the generator for the same config. A folder being
// written, or written for another config, is not complete.
func Complete(dir string, cfg Config) bool {
	b, err := os.ReadFile(filepath.Join(dir, MarkerName))
	if err != nil {
		return false
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil || m.Version != formatVersion {
		return false
	}
	return bytes.Equal(m.Config.key(), cfg.key())
}

// WriteDir writes cfg's sales under dir as hour-partitioned objects, Parts to an hour,
// then the _SUCCESS marker. Each object is written under a temporary name starting with
// "." and renamed into place, so a reader listing dir concurrently never sees half an
// object. An existing object of the same name is replaced; a _SUCCESS marker for another
// config is an error, because its objects would mix with these.
func WriteDir(ctx context.Context, dir string, cfg Config, opts Options) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	cfg = cfg.WithDefaults()
	mpath := filepath.Join(dir, MarkerName)
	if b, err := os.ReadFile(mpath); err == nil {
		var m marker
		if json.Unmarshal(b, &m) == nil && !bytes.Equal(m.Config.key(), cfg.key()) {
			return Stats{}, fmt.Errorf("%s already holds logs generated with another config (see %s); remove the folder or choose another one", dir, mpath)
		}
	}
	// Whatever happens next, the folder is incomplete until the marker is written again.
	if err := os.Remove(mpath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Stats{}, fmt.Errorf("remove old marker: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Stats{}, fmt.Errorf("create output folder: %w", err)
	}

	bs := plan(cfg)
	cat := NewCatalog(cfg)
	type unit struct {
		b    *bucket
		part int
	}
	units := make([]unit, 0, len(bs)*cfg.Parts)
	for i := range bs {
		for p := range cfg.Parts {
			units = append(units, unit{&bs[i], p})
		}
	}

	var total Stats
	var mu sync.Mutex
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range workers(opts, len(units)) {
		g.Go(func() error {
			gen := newGenerator(cfg, cat)
			buf := make([]byte, 0, blockSize)
			var st Stats
			for {
				i := int(next.Add(1)) - 1
				if i >= len(units) {
					break
				}
				u := units[i]
				path := filepath.Join(dir, ObjectPath(time.Unix(u.b.hour, 0), u.part, cfg.Gzip))
				n, err := writeObject(gctx, path, cfg.Gzip, func(w io.Writer) error {
					return gen.object(gctx, u.b, u.part, buf, w, opts.Progress)
				})
				if err != nil {
					return err
				}
				st.Objects++
				st.Bytes += n
			}
			st.Lines, st.BadLines = gen.lines, gen.bad
			mu.Lock()
			total.Lines += st.Lines
			total.BadLines += st.BadLines
			total.Objects += st.Objects
			total.Bytes += st.Bytes
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return total, err
	}
	m, _ := json.MarshalIndent(marker{formatVersion, cfg, total}, "", "  ")
	if _, err := writeObject(ctx, mpath, false, func(w io.Writer) error {
		_, err := w.Write(append(m, '\n'))
		return err
	}); err != nil {
		return total, fmt.Errorf("write marker: %w", err)
	}
	return total, nil
}

// workers returns how many goroutines to generate with: never more than there are units.
func workers(opts Options, units int) int {
	n := opts.Workers
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return max(1, min(n, units))
}

// object writes part p of bucket b to w, through buf.
func (g *generator) object(ctx context.Context, b *bucket, p int, buf []byte, w io.Writer, progress func(int64)) error {
	buf = buf[:0]
	if g.cfg.Header {
		buf = append(buf, Header...)
	}
	lines := g.lines
	flush := func(buf []byte) ([]byte, error) {
		if _, err := w.Write(buf); err != nil {
			return buf, err
		}
		if progress != nil {
			progress(g.lines - lines)
		}
		lines = g.lines
		return buf[:0], ctx.Err()
	}
	var err error
	for _, s := range partSlices(b, g.cfg.Parts, p) {
		if buf, err = g.slice(&s, buf, flush); err != nil {
			return err
		}
	}
	_, err = flush(buf)
	return err
}

// writeObject writes path atomically: fill writes a temporary file beside it, gzipped if
// gz, which is renamed into place only when complete. It returns the bytes stored.
func writeObject(ctx context.Context, path string, gz bool, fill func(io.Writer) error) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	dir, name := filepath.Split(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("create folder for %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	cw := &countingWriter{w: f}
	err = fillMaybeGzip(cw, gz, fill)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	// No fsync: a crash can leave an empty object behind, but never a _SUCCESS marker
	// before it, and syncing hundreds of objects would cost more than regenerating them.
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	return cw.n, nil
}

func fillMaybeGzip(w io.Writer, gz bool, fill func(io.Writer) error) error {
	if !gz {
		return fill(w)
	}
	// BestSpeed: at the default level compression, not generation, would set the pace.
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err := fill(zw); err != nil {
		return err
	}
	return zw.Close()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteFile writes all of cfg's sales into one file at path, sorted by time, gzipped if
// cfg.Gzip. Parts does not apply: the file holds every part. The file is written under a
// temporary name and renamed into place.
func WriteFile(ctx context.Context, path string, cfg Config, opts Options) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	var st Stats
	n, err := writeObject(ctx, path, cfg.Gzip, func(w io.Writer) error {
		var err error
		c := cfg
		c.Gzip = false
		st, err = Write(ctx, w, c, opts)
		return err
	})
	st.Bytes = n
	return st, err
}

// Write writes all of cfg's sales to w as one stream sorted by time, uncompressed, with
// at most one header line. Minutes are generated in parallel and written in order; at most
// a few minutes per worker are held in memory.
func Write(ctx context.Context, w io.Writer, cfg Config, opts Options) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	cfg = cfg.WithDefaults()
	cfg.Parts = 1
	bs := plan(cfg)
	cat := NewCatalog(cfg)
	var ss []slice
	for i := range bs {
		ss = append(ss, partSlices(&bs[i], 1, 0)...)
	}

	// Each slice's blocks travel through its own channel; the writer drains the channels in
	// slice order. A worker runs ahead of the writer by at most its channel's capacity, which
	// bounds memory at about workers × (queued+1) blocks.
	const queued = 16
	outs := make([]chan []byte, len(ss))
	for i := range outs {
		outs[i] = make(chan []byte, queued)
	}
	nw := workers(opts, len(ss))
	// Written blocks go back to the workers through free rather than a sync.Pool, which the
	// garbage collector empties: the blocks in flight are all the memory this takes.
	free := make(chan []byte, nw*(queued+2))
	getBlock := func() []byte {
		select {
		case b := <-free:
			return b[:0]
		default:
			return make([]byte, 0, blockSize)
		}
	}

	var st Stats
	var mu sync.Mutex
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range nw {
		g.Go(func() error {
			gen := newGenerator(cfg, cat)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ss) {
					break
				}
				out := outs[i]
				send := func(buf []byte) ([]byte, error) {
					if len(buf) == 0 {
						return buf, nil
					}
					select {
					case out <- buf:
						return getBlock(), nil
					case <-gctx.Done():
						return buf, gctx.Err()
					}
				}
				buf := getBlock()
				if i == 0 && cfg.Header {
					buf = append(buf, Header...)
				}
				buf, err := gen.slice(&ss[i], buf, send)
				if err == nil {
					_, err = send(buf)
				}
				if err != nil {
					return err
				}
				close(out)
			}
			mu.Lock()
			st.Lines += gen.lines
			st.BadLines += gen.bad
			mu.Unlock()
			return nil
		})
	}
	var written int64
	g.Go(func() error {
		for i, out := range outs {
			for {
				var buf []byte
				var ok bool
				select {
				case buf, ok = <-out:
				case <-gctx.Done():
					return gctx.Err()
				}
				if !ok {
					break
				}
				n, err := w.Write(buf)
				written += int64(n)
				if err != nil {
					return fmt.Errorf("write: %w", err)
				}
				select {
				case free <- buf:
				default:
				}
			}
			if opts.Progress != nil {
				opts.Progress(ss[i].lines)
			}
		}
		return nil
	})
	err := g.Wait()
	st.Objects, st.Bytes = 1, written
	return st, err
}
