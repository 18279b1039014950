package faults_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
)

// The steps of a run, as the evidence taken while the process is stopped names them:
//
//	list         a folder of the logs is open, or the .attrs file of an object that is not
//	             being counted (the Go CDK file bucket reads every object's while listing)
//	count        a log object is open for reading, no write transaction
//	commit       the process holds the SQLite write lock, has read its objects, and its
//	             batch is not committed: it is inside CommitBatch
//	publish      it holds the write lock and its batch is committed (or it had nothing to
//	             take), and its snapshot is not: it is inside Publish
//	rank         its batch is committed, no lock: moving the window and ranking
//	post-publish its snapshot is committed: deleting expired partial sums, or exiting
//	count-gap    it has read objects, none open now, no lock: between reads, or encoding
//	list-gap     it has listed, read none: between folders, or rebuilding the window
//	startup      none of the above: opening the database, reading the manifest
var mainSteps = []string{"list", "count", "commit", "publish"}

// crashKills is how many runs the test kills, at least.
const crashKills = 54

// TestCrashAtEveryStep kills `rank --once` with SIGKILL at least crashKills times, at
// moments spread over every step of a run, lands new objects (on time and late) and moves
// --now forward between runs, and after every kill checks the file the crash left: sound,
// a whole current snapshot, and a manifest and quarantine that hold each landed object's
// lines exactly once or not at all. After a final clean run the snapshot equals the oracle
// over every landed object, for the default top 100 and for top 10000 (nearly every
// product of every category, so a sale counted twice or lost anywhere in the window shows).
func TestCrashAtEveryStep(t *testing.T) {
	needBinary(t)
	t.Parallel()
	began := time.Now()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FAULTS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (FAULTS_SEED=%d repeats this schedule)", seed, seed)

	c := newCrashRun(t, seed)
	t.Logf("setup: %d objects staged (%d lines) in %.1fs", len(c.objs), c.totalLines(), time.Since(began).Seconds())

	// Phase A: most of the week lands at once; its batch is big, so counting and committing
	// take long enough to be hit several times before one run gets it committed.
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	c.land(c.wave0...)
	now := start.Add(5*24*time.Hour + 17*time.Minute)
	for _, target := range []string{"list", "count", "commit", "count", "list", "commit", "count", "commit", "random", "publish"} {
		c.cycle(target, now)
		now = now.Add(time.Duration(c.rng.IntN(3)) * time.Minute)
	}
	// Phase B: eight hours land per round and --now moves forward (sometimes behind the
	// newest sales). Listing, counting and committing are hit while the round's objects are
	// still new, then publishing (which commits them first); then late objects for hours
	// already published land, for a run killed at random and a clean one.
	for k := 1; len(c.waves) > 0; k++ {
		c.land(c.waves[0]...)
		c.waves = c.waves[1:]
		cutoff := start.Add(5*24*time.Hour + time.Duration(k)*8*time.Hour)
		if k%3 == 1 {
			cutoff = cutoff.Add(-4 * time.Hour) // the newest sales lie after the cutoff
		}
		now = maxTime(now, cutoff.Add(time.Duration(c.rng.IntN(50))*time.Minute))
		targets := []string{"list", "count", "commit"}
		c.rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
		for _, target := range append(targets, "publish", "late", "random", "clean") {
			if target == "late" {
				if n := min(2, len(c.late)); k%2 == 0 && n > 0 {
					c.land(c.late[:n]...)
					c.late = c.late[n:]
				}
				continue
			}
			c.cycle(target, now)
			now = now.Add(time.Duration(c.rng.IntN(4)) * time.Minute)
		}
	}
	for i := 0; c.killed < crashKills && i < 2*crashKills; i++ {
		c.cycle([]string{"random", "list", "count", "publish"}[i%4], now)
	}
	c.land(c.late...)
	c.late = nil

	// The last run is left alone; then the snapshot must be the oracle's. It runs no earlier
	// than the runs before it: the last round's --now can pass 8d+1h (up to 49 minutes after
	// its cutoff, then a few a run), and a run at an earlier cutoff publishes a snapshot that
	// is not the current one.
	final := maxTime(now, start.Add(8*24*time.Hour+30*time.Minute))
	c.cycle("clean", final)
	c.checkFinal(final)

	var b strings.Builder
	for _, s := range slices.Sorted(maps.Keys(c.steps)) {
		fmt.Fprintf(&b, " %s=%d", s, c.steps[s])
	}
	t.Logf("%d kills, %d clean runs, %d objects landed; kills per step:%s; %.1fs (%.1fs of it checking files)",
		c.killed, c.completed, len(c.landed), b.String(), time.Since(began).Seconds(), c.inspectTime.Seconds())
	if c.killed < crashKills {
		t.Errorf("killed %d runs, want at least %d", c.killed, crashKills)
	}
	for _, s := range mainSteps {
		if c.steps[s] == 0 {
			t.Errorf("no run was killed while in step %q (kills per step:%s)", s, b.String())
		}
	}
}

type crashRun struct {
	t      *testing.T
	rng    *rand.Rand
	dir    string
	stage  string // generated objects, before they land
	logs   string // the bucket the ranker reads
	db     string
	bucket *blob.Bucket
	objs   map[string]*object // every staged object, parsed by the oracle

	wave0  []string   // lands first
	waves  [][]string // then one per round
	late   []string   // held back, land for hours already published
	landed map[string]*object

	state  dbState // of the file as the last run left it
	man    map[string]manifestRow
	steps  map[string]int // kills per step
	killed int
	// completed counts runs that ended by themselves.
	completed   int
	inspectTime time.Duration // spent checking the file after runs
	// What the steps took when last seen, to spread the kill moments within them: counting
	// goes at countRate bytes (as stored) a second; a batch commits in about estCommit.
	countRate                       float64
	estCommit, estPublish, estTotal time.Duration
}

func newCrashRun(t *testing.T, seed uint64) *crashRun {
	dir := t.TempDir()
	c := &crashRun{
		t: t, rng: rand.New(rand.NewPCG(seed, seed>>1|1)), dir: dir,
		stage: filepath.Join(dir, "stage"), logs: filepath.Join(dir, "logs"), db: filepath.Join(dir, "salesrank.db"),
		landed: map[string]*object{}, steps: map[string]int{}, man: map[string]manifestRow{},
		countRate: 50e6, estCommit: 30 * time.Millisecond, estPublish: 300 * time.Millisecond, estTotal: 1500 * time.Millisecond,
	}
	// About 2.4 M lines over 8 days: 768 plain objects (4 an hour) and 384 gzip ones (2 an
	// hour, with headers and RFC 3339 times), bad lines in both, and one truncated gzip.
	start := "2026-11-01T00:00:00Z"
	gen(t, filepath.Join(c.stage, "a"), "--start", start, "--days", "8", "--lines", "1800000", "--parts", "4", "--categories", "300", "--products", "400000",
		"--bad-rate", "0.001", "--seed", "11")
	gen(t, filepath.Join(c.stage, "b"), "--start", start, "--days", "8", "--lines", "600000", "--parts", "2", "--categories", "300", "--products", "400000",
		"--gzip", "--header", "--time-format", "mixed", "--bad-rate", "0.002", "--seed", "12")
	writeTruncatedGzip(t, filepath.Join(c.stage, "c", "2026", "11", "03", "07", "part-0.tsv.gz"))
	var err error
	if c.objs, err = parseTree(c.stage); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.logs, 0o755); err != nil {
		t.Fatal(err)
	}
	if c.bucket, err = fileblob.OpenBucket(c.logs, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.bucket.Close() })

	// Waves: everything before day 5 (less some gzip objects held back to land late), then
	// eight hours at a time up to day 8.
	day5 := time.Date(2026, 11, 6, 0, 0, 0, 0, time.UTC)
	c.waves = make([][]string, 9)
	for _, k := range slices.Sorted(maps.Keys(c.objs)) {
		h := keyHour(t, k)
		switch {
		case h.Before(day5) && strings.HasPrefix(k, "b/") && h.Hour()%7 == 3:
			c.late = append(c.late, k)
		case h.Before(day5):
			c.wave0 = append(c.wave0, k)
		default:
			i := int(h.Sub(day5) / (8 * time.Hour))
			c.waves[i] = append(c.waves[i], k)
		}
	}
	c.rng.Shuffle(len(c.late), func(i, j int) { c.late[i], c.late[j] = c.late[j], c.late[i] })
	return c
}

func (c *crashRun) totalLines() (n int64) {
	for _, o := range c.objs {
		n += o.read
	}
	return n
}

// land writes objects into the bucket through the Go CDK, as an uploader would (a temp file
// renamed into place, and an .attrs file with the MD5), with an _SUCCESS marker per folder.
func (c *crashRun) land(keys ...string) {
	ctx := context.Background()
	for _, k := range keys {
		data, err := os.ReadFile(filepath.Join(c.stage, filepath.FromSlash(k)))
		if err != nil {
			c.t.Fatal(err)
		}
		if err := c.bucket.WriteAll(ctx, k, data, &blob.WriterOptions{ContentType: "text/tab-separated-values"}); err != nil {
			c.t.Fatal(err)
		}
		if err := c.bucket.WriteAll(ctx, path.Dir(k)+"/_SUCCESS", nil, &blob.WriterOptions{ContentType: "text/plain"}); err != nil {
			c.t.Fatal(err)
		}
		c.landed[k] = c.objs[k]
	}
}

// evidence is what the stopped process shows.
type evidence struct {
	fds  fdView
	lock bool // holds the SQLite write lock
}

// cycle runs rank --once at now and, unless target is "clean", stops it (SIGSTOP) when it is
// in the target step, reads the evidence, and kills it (SIGKILL). The step recorded is the
// one the evidence shows, whatever the target was. Then it checks the file the run left.
func (c *crashRun) cycle(target string, now time.Time) {
	t := c.t
	base, before := c.state, c.man
	fresh := map[string]bool{}
	var work bool
	var freshRead, freshRejected int64
	var freshTaken, freshFailed int
	var freshBytes int64
	for k, o := range c.landed {
		if _, ok := before[k]; ok {
			continue
		}
		fresh[k] = true
		if o.failed {
			freshFailed++
			continue
		}
		work = true
		freshBytes += o.stored
		freshTaken++
		freshRead += o.read
		freshRejected += o.rejected
	}

	p := startProc(t, "rank --once", "rank", "--once", "--logs", c.logs, "--db", c.db,
		"--now", now.Format(time.RFC3339), "--log-level", "debug")
	pid := p.pid()
	var (
		sawList, sawObject, lockWas bool
		lockKind                    string // the write transaction seen last: commit, publish or post
		firstObj, lockStart         time.Time
		at                          time.Time // not before: spreads kills within a step
		attempts                    int
		ev                          evidence
		killedAt                    time.Duration
		killed                      bool
	)
	if target == "random" {
		at = p.started.Add(randDur(c.rng, c.estTotal))
	}
	listingFD := func(v fdView) bool {
		if v.dirs > 0 {
			return true
		}
		for _, k := range v.attrs {
			if !fresh[k] {
				return true // readers open only the .attrs of objects they count
			}
		}
		return false
	}
	// txKind names the write transaction of the stopped process from what it has
	// committed: its batch (commit), then its snapshot (publish), then the clean-up (post).
	txKind := func() string {
		st, err := c.peekState()
		switch {
		case err != nil:
			return ""
		case st.Snapshot > base.Snapshot:
			return "post"
		case st.Batch > base.Batch || !work:
			return "publish"
		}
		return "commit"
	}
	for !p.exited() {
		v := scanFDs(pid, c.logs)
		lock := writeLockHolder(c.db) == pid
		tNow := time.Now()
		if listingFD(v) && !sawObject {
			sawList = true
		}
		if v.objects > 0 && !sawObject {
			sawObject, firstObj = true, tNow
		}
		if lock && !lockWas && (sawList || sawObject) {
			// A new write transaction: stop the process a moment to see which.
			if freeze(p) {
				if writeLockHolder(c.db) == pid {
					lockKind, lockStart = txKind(), tNow
					if lockKind == "commit" && !firstObj.IsZero() {
						c.countRate = (c.countRate + float64(freshBytes)/tNow.Sub(firstObj).Seconds()) / 2
					}
				}
				thaw(p)
			}
		}
		if !lock && lockWas {
			switch lockKind {
			case "commit":
				c.estCommit = ewma(c.estCommit, tNow.Sub(lockStart))
			case "publish":
				c.estPublish = ewma(c.estPublish, tNow.Sub(lockStart))
			}
		}
		lockWas = lock

		// Move on to the next step when the target one has passed; a miss makes the next
		// try at that step aim earlier.
		switch {
		case target == "list" && (sawObject || lockKind != ""):
			target = "count"
		case target == "count" && lockKind != "":
			target = "commit"
			if work {
				c.countRate *= 1.5
			}
		case target == "commit" && (!work || lockKind == "publish" || lockKind == "post"):
			target = "publish"
			if work {
				c.estCommit /= 2
			}
		case target == "publish" && lockKind == "post":
			target, at = "random", tNow
			c.estPublish /= 2
		}
		want := false
		switch target {
		case "list":
			want = listingFD(v) && v.objects == 0
		case "count":
			if sawObject && at.IsZero() {
				est := time.Duration(float64(freshBytes) / c.countRate * float64(time.Second))
				at = firstObj.Add(randDur(c.rng, est*4/5))
			}
			want = sawObject && !tNow.Before(at) && v.objects > 0 && !lock
		case "commit", "publish":
			if lock && lockKind == target && at.Before(lockStart) {
				est := c.estCommit
				if target == "publish" {
					est = c.estPublish
				}
				at = lockStart.Add(randDur(c.rng, est*4/5))
			}
			want = lock && lockKind == target && !tNow.Before(at)
		case "random":
			want = !tNow.Before(at)
		}
		if want && attempts < 500 {
			attempts++
			if freeze(p) {
				ev = evidence{fds: scanFDs(pid, c.logs), lock: writeLockHolder(c.db) == pid}
				confirmed := true
				switch target {
				case "list":
					confirmed = listingFD(ev.fds) && ev.fds.objects == 0 && !ev.lock
				case "count":
					confirmed = ev.fds.objects > 0 && !ev.lock
				case "commit", "publish":
					confirmed = ev.lock && txKind() == target
				}
				if confirmed {
					killedAt = time.Since(p.started)
					p.kill()
					killed = true
					break
				}
				thaw(p)
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	if !p.wait(30 * time.Second) {
		t.Fatalf("rank --once (pid %d) did not end", pid)
	}
	total := time.Since(p.started)

	inspectStart := time.Now()
	after, man := c.inspect()
	c.inspectTime += time.Since(inspectStart)
	if !killed {
		// It ran to its end: it must have taken exactly the fresh objects, read exactly
		// their lines, and published.
		c.completed++
		c.estTotal = ewma(c.estTotal, total*11/10)
		if p.err != nil {
			t.Fatalf("rank --once --now %s (target %s) failed: %v\nstderr:\n%s", now.Format(time.RFC3339), target, p.err, p.stderr)
		}
		var sum summary
		if err := jsonLine(p.stdout.String(), &sum); err != nil {
			t.Fatal(err)
		}
		if sum.LinesRead != freshRead || sum.LinesRejected != freshRejected || sum.ObjectsTaken != freshTaken || sum.ObjectsFailed != freshFailed {
			t.Errorf("run at %s took %d objects (%d failed), read %d lines (%d rejected); the fresh objects were %d (%d unreadable) with %d lines (%d bad)",
				now.Format(time.RFC3339), sum.ObjectsTaken, sum.ObjectsFailed, sum.LinesRead, sum.LinesRejected, freshTaken, freshFailed, freshRead, freshRejected)
		}
		if after.Current != sum.SnapshotID || after.Snapshot <= base.Snapshot {
			t.Errorf("run at %s published snapshot %d (cutoff %s), but the current one is %d (last id %d, before %d)",
				now.Format(time.RFC3339), sum.SnapshotID, sum.Cutoff.Format(time.RFC3339), after.Current, after.Snapshot, base.Snapshot)
		}
		t.Logf("run %2d: target %-7s → ran to its end in %4.0f ms: took %d objects, %d lines", c.killed+c.completed, target, ms(total), sum.ObjectsTaken, sum.LinesRead)
	} else {
		step := classify(ev, base, after, sawObject, sawList, work)
		c.steps[step]++
		c.killed++
		t.Logf("run %2d: target %-7s → killed at %4.0f ms in %-12s (fds: %d folders, %d .attrs, %d objects; write lock %v; batch %d→%d, snapshot %d→%d)",
			c.killed+c.completed, target, ms(killedAt), step, ev.fds.dirs, len(ev.fds.attrs), ev.fds.objects, ev.lock,
			base.Batch, after.Batch, base.Snapshot, after.Snapshot)
		// A run killed before its batch committed left nothing of it behind.
		if !ev.lock && after.Batch == base.Batch || step == "commit" {
			if len(man) != len(before) {
				t.Errorf("killed in %s: the manifest went from %d to %d objects with no batch committed", step, len(before), len(man))
			}
		}
		if after.Snapshot > base.Snapshot && after.Batch == base.Batch && work {
			t.Errorf("killed in %s: a snapshot was published without the batch of the fresh objects", step)
		}
	}
	// Every object in the manifest was landed and counted whole.
	for k, m := range man {
		o, ok := c.landed[k]
		switch {
		case !ok:
			t.Errorf("manifest holds %q, which never landed", k)
		case o.failed:
			t.Errorf("manifest holds %q, which cannot be read to its end", k)
		case m.Read != o.read || m.Rejected != o.rejected:
			t.Errorf("manifest: %q read %d lines (%d rejected), the object has %d (%d bad)", k, m.Read, m.Rejected, o.read, o.rejected)
		}
		if old, ok := before[k]; ok && old.Batch != m.Batch {
			t.Errorf("manifest: %q moved from batch %d to %d", k, old.Batch, m.Batch)
		}
	}
	if after.Batch < base.Batch || after.Snapshot < base.Snapshot {
		t.Errorf("ids went back: batch %d→%d, snapshot %d→%d", base.Batch, after.Batch, base.Snapshot, after.Snapshot)
	}
	c.state, c.man = after, man
	if t.Failed() {
		t.FailNow()
	}
}

// peekState reads the committed state of the live file.
func (c *crashRun) peekState() (dbState, error) { return readState(c.db) }

// classify names the step from the evidence taken while the process was stopped and from
// what it had committed when it was killed.
func classify(ev evidence, base, after dbState, sawObject, sawList, work bool) string {
	switch {
	case after.Snapshot > base.Snapshot:
		return "post-publish"
	case ev.lock && after.Batch > base.Batch:
		return "publish"
	case ev.lock && work && sawObject:
		return "commit"
	case ev.lock && !work && sawList:
		return "publish"
	case ev.lock:
		return "startup"
	case after.Batch > base.Batch:
		return "rank"
	case ev.fds.objects > 0:
		return "count"
	case ev.fds.dirs > 0 || len(ev.fds.attrs) > 0 && !sawObject:
		return "list"
	case sawObject:
		return "count-gap"
	case sawList:
		return "list-gap"
	}
	return "startup"
}

// inspect copies the database as the run left it (the file, its WAL and its shared
// memory, as a crash leaves them) and checks the copy, so that the next run, not this
// check, is the first to open the crashed file. It returns the copy's state and manifest.
func (c *crashRun) inspect() (dbState, map[string]manifestRow) {
	t := c.t
	if _, err := os.Stat(c.db); err != nil {
		return dbState{}, map[string]manifestRow{} // killed before it created the file
	}
	cp := filepath.Join(c.dir, "check.db")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(cp + suffix)
		data, err := os.ReadFile(c.db + suffix)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cp+suffix, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	chk, man := checkFile(t, cp)
	for _, p := range chk.Problems {
		t.Errorf("the file is not sound after the run: %s", p)
	}
	return chk.State, man
}

// checkFinal compares the file after the last clean run with the oracle over every landed
// object: the manifest holds each readable one once, with its lines, and the snapshot is
// the oracle's ranking, at top 100 and at top 10000.
func (c *crashRun) checkFinal(now time.Time) {
	t := c.t
	cutoff := now.Truncate(time.Hour)
	man := manifest(t, c.db)
	var lines, mlines, readable int64
	for k, o := range c.landed {
		if o.failed {
			if _, ok := man[k]; ok {
				t.Errorf("unreadable %q is in the manifest", k)
			}
			continue
		}
		readable++
		lines += o.read
		if _, ok := man[k]; !ok {
			t.Errorf("landed %q is not in the manifest after a clean run", k)
		}
	}
	for _, m := range man {
		mlines += m.Read
	}
	if int64(len(man)) != readable || mlines != lines {
		t.Errorf("manifest: %d objects, %d lines; landed: %d readable objects, %d lines", len(man), mlines, readable, lines)
	}
	st := stateOf(t, c.db)
	for _, top := range []int{100, 10000} {
		if top != 100 {
			sum := runOnce(t, c.logs, c.db, now, "--top", strconv.Itoa(top))
			if sum.LinesRead != 0 || sum.ObjectsTaken != 0 {
				t.Errorf("a run with nothing new read %d lines from %d objects", sum.LinesRead, sum.ObjectsTaken)
			}
			st = stateOf(t, c.db)
		}
		got := rankingOf(t, c.db, st.Current)
		want := oracleRank(values(c.landed), cutoff, top)
		if d := diffRankings(got, want); d != "" {
			t.Errorf("snapshot %d (top %d) differs from the oracle over the %d landed objects at %s:\n%s", st.Current, top, len(c.landed), cutoff.Format(time.RFC3339), d)
		} else {
			t.Logf("snapshot %d = oracle at %s, top %d: %d categories, %d rows", st.Current, cutoff.Format(time.RFC3339), top, len(got.cats), len(got.rows))
		}
	}
	chk, _ := checkFile(t, c.db)
	for _, p := range chk.Problems {
		t.Errorf("final file: %s", p)
	}
}

// keyHour reads the hour from a key a/YYYY/MM/DD/HH/part-N.tsv.
func keyHour(t *testing.T, key string) time.Time {
	f := strings.Split(key, "/")
	if len(f) != 6 {
		t.Fatalf("unexpected key %q", key)
	}
	h, err := time.Parse("2006/01/02/15", strings.Join(f[1:5], "/"))
	if err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	return h
}

// writeTruncatedGzip writes a gzip object cut short: it cannot be read to its end, so none
// of its lines may ever count.
func writeTruncatedGzip(t *testing.T, path string) {
	var plain bytes.Buffer
	for i := range 5000 {
		fmt.Fprintf(&plain, "%d\t%d\t%d\t%d\t9.99\t1\t1\n", time.Date(2026, 11, 3, 7, 0, i%3600, 0, time.UTC).Unix(), 424242, 1, 1000)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(plain.Bytes())
	zw.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, z.Bytes()[:z.Len()*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
}

func jsonLine(stdout string, v any) error {
	line := lastLine([]byte(stdout))
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("summary %q: %w", stdout, err)
	}
	return nil
}

func randDur(rng *rand.Rand, d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rng.Int64N(int64(d)))
}

func ewma(old, obs time.Duration) time.Duration { return (old + obs) / 2 }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
