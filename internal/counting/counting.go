// Package counting counts sales in log objects on this machine: the map and combine steps of
// the ranking job (parse, validate, sum units per category and product over a window), in
// parallel across objects and within large objects.
//
// An object is read by one goroutine, cut into blocks at line boundaries and handed to a
// pool of workers, so a single 10 GB file keeps every core busy just as a thousand small
// hourly files do. Each worker sums into its own hash table per object (per bucket of sale
// time, it sums each block into one table it reuses and keeps the block's sums as sorted
// runs; see runs); an object's sums are folded into the result only once every block of it
// has been counted and the object was read to its end without error, so an object that
// fails half way (a truncated gzip, an I/O error) is counted whole or not at all.
package counting

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"gocloud.dev/blob"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/salelog"
)

// Object is a log object to count.
type Object struct {
	Key  string
	Size int64 // bytes as stored; for progress only
	// ETag is the version listed (objstore.Object.ETag). An engine that reads objects
	// well after the ranker listed them (on a cluster) checks it, so that it never counts
	// a version other than the one the manifest will record.
	ETag string
}

// Spec says what to count.
type Spec struct {
	// Window is the time range whose sales are summed; good lines before or after it are
	// only counted in Stats (LinesBefore, LinesAfter).
	Window salesrank.Window
	// Bucket, when not zero, sums per bucket of sale (unix seconds / Bucket) too, for
	// hourly (or finer) partial sums, into Result.Sums rather than Result.Totals. It
	// needs a Window that starts after 1970.
	Bucket time.Duration
	// Top, when above 0 and Bucket is 0, lets an engine return in Totals only each
	// category's Top best sellers (most units, then the smaller product id) rather than
	// every product: all that ranking them needs, and far less to bring back from a
	// cluster. Local returns every product.
	Top int
}

// Result is what counting a set of objects gives.
type Result struct {
	Totals     *Counts // units per (category, product); nil with Spec.Bucket
	Sums       *Sums   // with Spec.Bucket: units per (category, product) of each bucket
	Categories []int32 // every category named by a good line, in the window or not; sorted
	Rejects    []salesrank.Reject
	Failed     []ObjectError // objects not counted at all
	Objects    []ObjectStats // objects counted whole, in the order they finished
	Stats      Stats         // the sum of Objects' stats
}

// ObjectStats is what one object counted.
type ObjectStats struct {
	Key   string
	Stats Stats
}

// ObjectError is an object that could not be read to its end; none of its lines count.
type ObjectError struct {
	Key string
	Err error
}

func (e ObjectError) Error() string { return fmt.Sprintf("object %s: %v", e.Key, e.Err) }

// Stats counts what a run saw. Lines of failed objects are not in it.
type Stats struct {
	Objects       int64 // objects counted whole
	Bytes         int64 // bytes of those objects, after decompression
	LinesRead     int64 // non-blank, non-header lines
	LinesRejected int64
	LinesBefore   int64 // good lines older than the window
	LinesAfter    int64 // good lines at or after the cutoff
	Rejected      [salelog.NumReasons]int64
}

// RejectedByReason returns the non-zero rejection counts keyed by reason name.
func (s *Stats) RejectedByReason() map[string]int64 {
	m := map[string]int64{}
	for r, n := range s.Rejected {
		if n > 0 {
			m[salelog.Reason(r).String()] = n
		}
	}
	return m
}

// Add adds o's counts to s.
func (s *Stats) Add(o *Stats) {
	s.Objects += o.Objects
	s.Bytes += o.Bytes
	s.LinesRead += o.LinesRead
	s.LinesRejected += o.LinesRejected
	s.LinesBefore += o.LinesBefore
	s.LinesAfter += o.LinesAfter
	for i := range s.Rejected {
		s.Rejected[i] += o.Rejected[i]
	}
}

// Local counts on this machine's cores. The zero value works: it uses every core.
type Local struct {
	Workers   int // counting goroutines; 0 means GOMAXPROCS
	Readers   int // objects read at once; 0 means 2
	BlockSize int // bytes handed to a worker at once; 0 means 4 MiB

	// Progress, if set, is called from many goroutines with the bytes just counted.
	Progress func(n int64)
}

// denseBuckets is the span of buckets a flush tells apart by a counting sort: enough for
// the minute buckets of a week.
const denseBuckets = 1 << 16

// A line longer than a whole block (no newline in BlockSize bytes) is quarantined by its
// first salelog.MaxLineLength+1 bytes and the rest of it is dropped: enough to see what it
// was without holding an unbounded line in memory. Shorter lines are kept whole.

// Count counts every object as spec says. It fails only for reasons that concern the whole
// run (the context); an object that cannot be read is left out whole and reported in
// Result.Failed.
func (l *Local) Count(ctx context.Context, logs *blob.Bucket, objects []Object, spec Spec) (*Result, error) {
	workers := cmp.Or(l.Workers, runtime.GOMAXPROCS(0))
	readers := min(cmp.Or(l.Readers, 2), max(len(objects), 1))
	blockSize := max(cmp.Or(l.BlockSize, 4<<20), 2*salelog.MaxLineLength)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	r := &run{
		logs:      logs,
		window:    [2]int64{spec.Window.Start.Unix(), spec.Window.End.Unix()},
		bucketLen: int64(spec.Bucket / time.Second),
		blocks:    make(chan *block, 2*workers),
		free:      make(chan []byte, 3*workers+readers),
		done:      make(chan *object, readers),
		blockSize: blockSize,
		progress:  l.Progress,
		workers:   workers,
	}
	// A count of more bytes than its buffers hold writes them all over: huge pages take
	// them in 16 faults rather than 8 k (see hugeSlice). A smaller one (a minute's object,
	// a test's) touches the start of a few, where a huge page would zero 2 MiB for each.
	var size int64
	for _, o := range objects {
		size += o.Size
	}
	var bufs []byte
	if size >= int64(cap(r.free)*blockSize) {
		bufs = hugeSlice[byte](cap(r.free) * blockSize)
	}
	for i := range cap(r.free) {
		if bufs == nil {
			r.free <- make([]byte, blockSize)
		} else {
			r.free <- bufs[i*blockSize : (i+1)*blockSize : (i+1)*blockSize]
		}
	}

	var wg sync.WaitGroup // workers
	for id := range workers {
		wg.Add(1)
		go func() { defer wg.Done(); r.work(id) }()
	}

	// Readers take objects from a shared queue; each finished object goes to the collector
	// below. finishers waits for the goroutines that wait on an object's blocks.
	queue := make(chan Object)
	var readersWG, finishers sync.WaitGroup
	for range readers {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			for o := range queue {
				obj := r.read(ctx, o)
				finishers.Add(1)
				go func() {
					defer finishers.Done()
					obj.pending.Wait()
					r.done <- obj
				}()
			}
		}()
	}
	go func() {
		defer close(queue)
		for _, o := range objects {
			select {
			case queue <- o:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		readersWG.Wait()
		finishers.Wait()
		close(r.done)
		close(r.blocks)
	}()

	res := &Result{Totals: &Counts{}}
	cats := map[int32]struct{}{}
	sums := runs{}
	for obj := range r.done {
		r.collect(res, cats, sums, obj)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("count: %w", err)
	}
	if r.bucketLen != 0 {
		res.Totals, res.Sums = nil, sums.sums()
		for i := range res.Sums.Buckets() {
			for _, run := range res.Sums.Runs(i) {
				for j, e := range run { // sorted by category
					if j == 0 || e.CategoryID != run[j-1].CategoryID {
						cats[e.CategoryID] = struct{}{}
					}
				}
			}
		}
	} else {
		for k := range res.Totals.All() {
			cats[k.CategoryID] = struct{}{}
		}
	}
	res.Categories = make([]int32, 0, len(cats))
	for c := range cats {
		res.Categories = append(res.Categories, c)
	}
	slices.Sort(res.Categories)
	slices.SortFunc(res.Rejects, func(a, b salesrank.Reject) int {
		return cmp.Or(cmp.Compare(a.Object, b.Object), cmp.Compare(a.Line, b.Line))
	})
	slices.SortFunc(res.Failed, func(a, b ObjectError) int { return cmp.Compare(a.Key, b.Key) })
	return res, nil
}

// run is the state shared by one Count call's goroutines.
type run struct {
	logs      *blob.Bucket
	window    [2]int64 // [start, end) in unix seconds
	bucketLen int64    // seconds; 0: no bucketing
	blocks    chan *block
	free      chan []byte // block buffers, recycled so a run allocates them once
	done      chan *object
	blockSize int
	workers   int
	progress  func(int64)
}

// object is one object in flight: its blocks, and each worker's partial counts of it.
type object struct {
	key     string
	err     error          // set by the reader before pending can reach zero
	pending sync.WaitGroup // blocks not yet counted
	blocks  []*block       // in file order; appended by the reader only
	parts   []*part        // one per worker, written by that worker only
}

// block is a run of whole lines of one object.
type block struct {
	obj   *object
	buf   []byte // owned by the worker until it returns it to run.free
	lines int64  // lines in the block, counted by the worker
	first int64  // line number of its first line, set when the object is collected
}

// part is one worker's counts of one object.
type part struct {
	totals  Counts             // without buckets
	runs    runs               // with buckets: the object's blocks' counts; see runs
	pending batch              // sales parsed but not yet added to a table
	cats    map[int32]struct{} // categories of good lines outside the window
	stats   Stats
	rejects []pendingReject
}

// pendingReject is a rejected line whose line number is known only relative to its block
// until every block before it has been counted.
type pendingReject struct {
	blk    *block
	line   int64 // 0-based within the block
	reason salelog.Reason
	text   []byte
}

// read reads one object into blocks for the workers. It returns once every block is queued;
// obj.pending reaches zero when they are all counted.
func (r *run) read(ctx context.Context, o Object) *object {
	obj := &object{key: o.Key, parts: make([]*part, r.workers)}
	obj.err = r.readInto(ctx, obj)
	return obj
}

func (r *run) readInto(ctx context.Context, obj *object) (err error) {
	br, err := r.logs.NewReader(ctx, obj.key, nil)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer br.Close()
	var src io.Reader = br
	if salelog.IsGzip(obj.key) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		src = zr
	}

	var carry []byte // the start of a line cut by the end of the previous block
	skipping := false
	for {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-ctx.Done():
			return ctx.Err()
		}
		n := copy(buf, carry)
		m, rerr := fill(src, buf[n:])
		n += m
		eof := rerr == io.EOF
		if rerr != nil && !eof {
			r.free <- buf
			return fmt.Errorf("read: %w", rerr)
		}
		data := buf[:n]
		carry = carry[:0]
		if skipping {
			// The tail of an over-long line already reported: drop it up to its newline.
			i := bytes.IndexByte(data, '\n')
			if i < 0 && !eof {
				r.free <- buf
				continue
			}
			skipping = false
			data = data[i+1:]
			if i < 0 {
				data = nil
			}
			// Keep the line count right: the dropped tail ends the over-long line, which
			// was already counted as one line.
			copy(buf, data)
			data = buf[:len(data)]
		}
		if !eof {
			i := bytes.LastIndexByte(data, '\n')
			if i < 0 {
				// A whole block without a newline: one line longer than any good line.
				// Send its start as a line of its own, to be rejected as too long, and drop
				// the rest of it.
				data = append(data[:salelog.MaxLineLength+1], '\n')
				skipping = true
			} else {
				carry = append(carry, data[i+1:]...)
				data = data[:i+1]
			}
		}
		if len(data) > 0 {
			b := &block{obj: obj, buf: data}
			obj.blocks = append(obj.blocks, b)
			obj.pending.Add(1)
			select {
			case r.blocks <- b:
			case <-ctx.Done():
				obj.pending.Done()
				return ctx.Err()
			}
		} else {
			r.free <- buf
		}
		if eof {
			return nil
		}
	}
}

// work counts blocks until the run ends. id picks the worker's part of each object.
func (r *run) work(id int) {
	var hot Counts // with buckets: this worker's table, flushed into runs after each block
	var mem slab   // with buckets: the memory of this worker's runs
	for b := range r.blocks {
		p := b.obj.parts[id]
		if p == nil {
			p = &part{cats: map[int32]struct{}{}, runs: runs{}}
			b.obj.parts[id] = p
		}
		if r.bucketLen != 0 {
			r.count(p, b, &hot)
			p.runs.flush(&hot, denseBuckets, &mem)
		} else {
			r.count(p, b, &p.totals)
		}
		if r.progress != nil {
			r.progress(int64(len(b.buf)))
		}
		r.free <- b.buf[:cap(b.buf)]
		b.buf = nil
		b.obj.pending.Done()
	}
}

// count is the hot loop: one call per block, no allocation per line.
// Good lines in the window are added to into: the part's totals, or with buckets the
// worker's table.
func (r *run) count(p *part, b *block, into *Counts) {
	start, end := r.window[0], r.window[1]
	bucketLen := r.bucketLen
	data := b.buf
	st := &p.stats
	st.Bytes += int64(len(data))
	var n int64
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		n++
		if salelog.Classify(line) != salelog.Sale {
			continue
		}
		st.LinesRead++
		s, why := salelog.ParseLine(line)
		if why != salelog.OK {
			st.LinesRejected++
			st.Rejected[why]++
			p.rejects = append(p.rejects, pendingReject{blk: b, line: n - 1, reason: why, text: bytes.Clone(line)})
			continue
		}
		switch {
		case s.Time < start:
			st.LinesBefore++
			p.cats[s.CategoryID] = struct{}{}
		case s.Time >= end:
			st.LinesAfter++
			p.cats[s.CategoryID] = struct{}{}
		default:
			q := &p.pending
			q.cats[q.n], q.products[q.n], q.units[q.n] = s.CategoryID, s.ProductID, int64(s.Quantity)
			q.hours[q.n] = 0
			if bucketLen != 0 {
				q.hours[q.n] = uint32(s.Time / bucketLen) // s.Time ≥ start ≥ 0 when bucketing
			}
			if q.n++; q.n == batchSize {
				into.AddBatch(q)
			}
		}
	}
	into.AddBatch(&p.pending)
	b.lines = n
}

// collect folds a finished object into the result, or records why it was left out.
func (r *run) collect(res *Result, cats map[int32]struct{}, sums runs, obj *object) {
	if obj.err != nil {
		if !errors.Is(obj.err, context.Canceled) {
			res.Failed = append(res.Failed, ObjectError{Key: obj.key, Err: obj.err})
		}
		return
	}
	var line int64 = 1
	for _, b := range obj.blocks {
		b.first = line
		line += b.lines
	}
	var st Stats
	st.Objects = 1
	for _, p := range obj.parts {
		if p == nil {
			continue
		}
		if r.bucketLen != 0 {
			sums.add(p.runs)
		} else {
			// The first part of the first object becomes the result's table: no copy
			// for the common case of one big object.
			if res.Totals.Len() == 0 {
				*res.Totals, p.totals = p.totals, *res.Totals
			}
			res.Totals.Merge(&p.totals)
		}
		for c := range p.cats {
			cats[c] = struct{}{}
		}
		st.Add(&p.stats)
		for _, pr := range p.rejects {
			res.Rejects = append(res.Rejects, salesrank.Reject{
				Object: obj.key,
				Line:   pr.blk.first + pr.line,
				Reason: pr.reason.String(),
				Text:   pr.text,
			})
		}
	}
	res.Stats.Add(&st)
	res.Objects = append(res.Objects, ObjectStats{Key: obj.key, Stats: st})
}

// fill reads until buf is full or the reader ends. Unlike io.ReadFull it passes io.EOF
// through untouched and reports io.ErrUnexpectedEOF only when the reader itself does (a
// truncated gzip stream), so a short last block is not taken for a damaged object.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
