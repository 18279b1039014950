package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/salesrank/salesrank"
)

// Intake is the incremental side of a store: the manifest of objects taken, the batches that
// take them exactly once, and the hourly partial sums the window is kept from. Rejects is
// here too so that a batch's quarantined lines can be observed.
type Intake interface {
	Manifest(ctx context.Context) ([]salesrank.TakenObject, error)
	CommitBatch(ctx context.Context, b *salesrank.Batch) error
	Partials(ctx context.Context, from, to time.Time, fn func(hour time.Time, data []byte) error) error
	ReplacePartials(ctx context.Context, hour time.Time, data []byte) error
	DeletePartialsBefore(ctx context.Context, t time.Time) (int64, error)
	KnownCategories(ctx context.Context) ([]int32, error)
	Rejects(ctx context.Context, limit int) ([]salesrank.Reject, error)
}

// RunIntake runs the intake contract suite, separate from Run so that a backend can adopt
// it on its own. open must return a new, empty store per subtest, as for Run.
func RunIntake(t *testing.T, open func(t *testing.T) Intake) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Intake)
	}{
		{"Empty", testIntakeEmpty},
		{"CommitRoundTrip", testCommitRoundTrip},
		{"AlreadyTaken", testAlreadyTaken},
		{"ConcurrentTake", testConcurrentTake},
		{"InvalidBatch", testInvalidBatch},
		{"PartialsRange", testPartialsRange},
		{"ReplacePartials", testReplacePartials},
		{"DeletePartialsBefore", testDeletePartialsBefore},
		{"CancelledCommit", testCancelledCommit},
		{"BigPartial", testBigPartial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// hour returns the hour i hours after base.
func hour(i int) time.Time { return base.Add(time.Duration(i) * time.Hour) }

// Wide enough for every hour the suite stores.
var (
	beginning = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	end       = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
)

type partialRow struct {
	Hour time.Time
	Data []byte
}

func partials(t *testing.T, s Intake, from, to time.Time) []partialRow {
	t.Helper()
	var out []partialRow
	err := s.Partials(context.Background(), from, to, func(h time.Time, data []byte) error {
		out = append(out, partialRow{h, bytes.Clone(data)}) // data is only valid during the call
		return nil
	})
	if err != nil {
		t.Fatalf("Partials(%v, %v): %v", from, to, err)
	}
	return out
}

// describe renders partial rows as "hour-offset:data" for comparisons in failure messages.
func describe(rows []partialRow) string {
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%d:%s", int(r.Hour.Sub(base)/time.Hour), r.Data))
	}
	return strings.Join(parts, " ")
}

func commit(t *testing.T, s Intake, b *salesrank.Batch) {
	t.Helper()
	if err := s.CommitBatch(context.Background(), b); err != nil {
		t.Fatalf("CommitBatch: %v", err)
	}
	if b.ID <= 0 {
		t.Fatalf("CommitBatch set b.ID to %d, want a positive id", b.ID)
	}
	for _, o := range b.Objects {
		if o.BatchID != b.ID {
			t.Fatalf("CommitBatch set object %q's BatchID to %d, want %d", o.Key, o.BatchID, b.ID)
		}
	}
}

// readManifest returns s's manifest, failing t if it cannot be read: a read error must not
// pass for an empty manifest.
func readManifest(t *testing.T, s Intake) []salesrank.TakenObject {
	t.Helper()
	m, err := s.Manifest(context.Background())
	if err != nil {
		t.Fatalf("Manifest: %v", err)
	}
	return m
}

// readKnown returns s's known categories, failing t if they cannot be read.
func readKnown(t *testing.T, s Intake) []int32 {
	t.Helper()
	cats, err := s.KnownCategories(context.Background())
	if err != nil {
		t.Fatalf("KnownCategories: %v", err)
	}
	return cats
}

// rejecter is the part of Intake and Store that reads the quarantine.
type rejecter interface {
	Rejects(ctx context.Context, limit int) ([]salesrank.Reject, error)
}

// readRejects returns up to limit quarantined lines of s, failing t if they cannot be read.
func readRejects(t *testing.T, s rejecter, limit int) []salesrank.Reject {
	t.Helper()
	rs, err := s.Rejects(context.Background(), limit)
	if err != nil {
		t.Fatalf("Rejects(%d): %v", limit, err)
	}
	return rs
}

// state renders everything the intake holds, so that "nothing changed" is one comparison.
func state(t *testing.T, s Intake) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "manifest %+v\n", readManifest(t, s))
	for _, p := range partials(t, s, beginning, end) {
		fmt.Fprintf(&b, "partial %v %x\n", p.Hour, sha256.Sum256(p.Data))
	}
	fmt.Fprintf(&b, "categories %v\n", readKnown(t, s))
	fmt.Fprintf(&b, "rejects %+v\n", readRejects(t, s, 1<<30))
	return b.String()
}

// batch builds a batch of the named objects with one partial per hour offset, each holding
// "tag@hour", a reject per object and the given categories.
func batch(tag string, keys []string, hours []int, cats ...int32) *salesrank.Batch {
	b := &salesrank.Batch{Categories: cats}
	for _, k := range keys {
		b.Objects = append(b.Objects, salesrank.TakenObject{Key: k, Size: 100, LinesRead: 10, LinesRejected: 1})
		b.Rejects = append(b.Rejects, salesrank.Reject{Object: k, Line: 3, Reason: "bad", Text: []byte(tag)})
	}
	for _, h := range hours {
		b.Partials = append(b.Partials, salesrank.Partial{Start: hour(h), Data: fmt.Appendf(nil, "%s@%d", tag, h)})
	}
	return b
}

func testIntakeEmpty(t *testing.T, s Intake) {
	ctx := context.Background()
	if m, err := s.Manifest(ctx); err != nil || len(m) != 0 {
		t.Errorf("Manifest on an empty store = %v, %v; want none", m, err)
	}
	if c, err := s.KnownCategories(ctx); err != nil || len(c) != 0 {
		t.Errorf("KnownCategories on an empty store = %v, %v; want none", c, err)
	}
	if p := partials(t, s, beginning, end); len(p) != 0 {
		t.Errorf("Partials on an empty store = %s, want none", describe(p))
	}
	if n, err := s.DeletePartialsBefore(ctx, end); err != nil || n != 0 {
		t.Errorf("DeletePartialsBefore on an empty store = %d, %v; want 0", n, err)
	}
	if err := s.ReplacePartials(ctx, hour(0), []byte("x")); err == nil {
		t.Errorf("ReplacePartials of an hour without partials succeeded, want an error")
	}
}

func testCommitRoundTrip(t *testing.T, s Intake) {
	ctx := context.Background()
	paris := time.FixedZone("CET", 3600)
	objs := []salesrank.TakenObject{
		{Key: "2026/11/20/host-b.log.gz", ETag: `"9f3a"`, Size: 1 << 40,
			ModTime: time.Date(2026, 11, 20, 14, 0, 1, 123456789, paris), TakenAt: time.Date(2026, 11, 20, 13, 5, 0, 1, time.UTC),
			LinesRead: 1 << 33, LinesRejected: 2, LinesTooLate: 3},
		{Key: "2026/11/20/host-a.log", Size: 0}, // no ETag, no times: all zero values round-trip
		{Key: "weird\tname\xff", ETag: "e", Size: 7, LinesRead: 1},
	}
	rejects := []salesrank.Reject{
		{Object: objs[0].Key, Line: 1 << 40, Reason: "invalid UTF-8", Text: []byte{0xff, 0xfe, 0, '\t', 0x80, '\r'}},
		{Object: objs[0].Key, Line: 2, Reason: "empty", Text: []byte{}},
	}
	b := &salesrank.Batch{
		Objects: slices.Clone(objs),
		Partials: []salesrank.Partial{
			{Start: hour(1), Data: []byte("one")},
			{Start: hour(-167).In(paris), Data: []byte{0, 1, 2, 0xff}}, // any zone: hours are instants
			{Start: hour(2), Data: nil},
		},
		Rejects:    rejects,
		Categories: []int32{7, 0, salesrank.MaxCategoryID, 7},
	}
	commit(t, s, b)

	got, err := s.Manifest(ctx)
	if err != nil {
		t.Fatalf("Manifest: %v", err)
	}
	want := slices.Clone(objs)
	slices.SortFunc(want, func(a, b salesrank.TakenObject) int { return strings.Compare(a.Key, b.Key) })
	if len(got) != len(want) {
		t.Fatalf("Manifest has %d objects, want %d: %+v", len(got), len(want), got)
	}
	for i, g := range got {
		w := want[i]
		w.BatchID = b.ID
		if g.Key != w.Key || g.ETag != w.ETag || g.Size != w.Size || g.BatchID != w.BatchID ||
			g.LinesRead != w.LinesRead || g.LinesRejected != w.LinesRejected || g.LinesTooLate != w.LinesTooLate ||
			!g.ModTime.Equal(w.ModTime) || !g.TakenAt.Equal(w.TakenAt) {
			t.Errorf("Manifest[%d] = %+v\nwant %+v", i, g, w)
		}
		if g.ModTime.Location() != time.UTC || g.TakenAt.Location() != time.UTC {
			t.Errorf("Manifest[%d] times are in %v and %v, want UTC", i, g.ModTime.Location(), g.TakenAt.Location())
		}
	}

	ps := partials(t, s, beginning, end)
	wantPs := []partialRow{{hour(-167), []byte{0, 1, 2, 0xff}}, {hour(1), []byte("one")}, {hour(2), nil}}
	if len(ps) != len(wantPs) {
		t.Fatalf("Partials = %s, want 3 rows", describe(ps))
	}
	for i, p := range ps {
		if !p.Hour.Equal(wantPs[i].Hour) || p.Hour.Location() != time.UTC || !bytes.Equal(p.Data, wantPs[i].Data) {
			t.Errorf("Partials[%d] = %v %q, want %v %q in UTC", i, p.Hour, p.Data, wantPs[i].Hour, wantPs[i].Data)
		}
	}

	if cats, err := s.KnownCategories(ctx); err != nil || !slices.Equal(cats, []int32{0, 7, salesrank.MaxCategoryID}) {
		t.Errorf("KnownCategories = %v, %v; want [0 7 %d]", cats, err, salesrank.MaxCategoryID)
	}
	rs, err := s.Rejects(ctx, 10)
	if err != nil {
		t.Fatalf("Rejects: %v", err)
	}
	slices.Reverse(rs) // newest first
	if len(rs) != len(rejects) {
		t.Fatalf("Rejects = %+v, want %d lines", rs, len(rejects))
	}
	for i, r := range rs {
		w := rejects[i]
		if r.Object != w.Object || r.Line != w.Line || r.Reason != w.Reason || !bytes.Equal(r.Text, w.Text) {
			t.Errorf("Rejects[%d] = %+v, want %+v", i, r, w)
		}
	}

	// A second batch gets a larger id and adds to what is there.
	b2 := batch("b2", []string{"2026/11/20/host-c.log"}, []int{1}, 8)
	commit(t, s, b2)
	if b2.ID <= b.ID {
		t.Errorf("second batch id %d, want above %d", b2.ID, b.ID)
	}
	if m := readManifest(t, s); len(m) != 4 {
		t.Errorf("after a second batch, Manifest has %d objects, want 4", len(m))
	}
	if got := describe(partials(t, s, hour(1), hour(2))); got != "1:one 1:b2@1" {
		t.Errorf("hour 1 partials = %q, want the first batch's then the second's", got)
	}
	if cats := readKnown(t, s); !slices.Equal(cats, []int32{0, 7, 8, salesrank.MaxCategoryID}) {
		t.Errorf("KnownCategories = %v, want [0 7 8 %d]", cats, salesrank.MaxCategoryID)
	}
}

func testAlreadyTaken(t *testing.T, s Intake) {
	ctx := context.Background()
	commit(t, s, batch("first", []string{"a", "b"}, []int{0, 1}, 1, 2))
	before := state(t, s)

	again := batch("again", []string{"c", "b", "d"}, []int{1, 2}, 3)
	err := s.CommitBatch(ctx, again)
	if !errors.Is(err, salesrank.ErrAlreadyTaken) {
		t.Fatalf("CommitBatch of a taken object: err = %v, want %v", err, salesrank.ErrAlreadyTaken)
	}
	if !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("error %q does not name the taken key %q", err, "b")
	}
	if again.ID != 0 || slices.ContainsFunc(again.Objects, func(o salesrank.TakenObject) bool { return o.BatchID != 0 }) {
		t.Errorf("a refused batch was given ids: %+v", again)
	}
	if after := state(t, s); after != before {
		t.Errorf("a refused batch left something behind:\nbefore %s\nafter  %s", before, after)
	}

	// The objects that were not taken still can be.
	commit(t, s, batch("rest", []string{"c", "d"}, []int{2}, 3))
	if cats := readKnown(t, s); !slices.Equal(cats, []int32{1, 2, 3}) {
		t.Errorf("KnownCategories = %v, want [1 2 3]", cats)
	}
}

// testConcurrentTake has rankers race to take the same object: exactly one batch commits.
func testConcurrentTake(t *testing.T, s Intake) {
	const (
		rounds  = 5
		rankers = 6
	)
	ctx := context.Background()
	for r := range rounds {
		shared := fmt.Sprintf("round-%d/shared.log", r)
		errs := make([]error, rankers)
		var wg sync.WaitGroup
		for i := range rankers {
			wg.Go(func() {
				b := batch(fmt.Sprintf("r%d-%d", r, i), []string{shared, fmt.Sprintf("round-%d/own-%d.log", r, i)},
					[]int{r}, int32(1000*r+i))
				errs[i] = s.CommitBatch(ctx, b)
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: rankers %d and %d both committed object %q", r, winner, i, shared)
			case err == nil:
				winner = i
			case !errors.Is(err, salesrank.ErrAlreadyTaken):
				t.Fatalf("round %d: ranker %d: err = %v, want %v", r, i, err, salesrank.ErrAlreadyTaken)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no ranker committed: %v", r, errs)
		}
		m, err := s.Manifest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range m {
			if strings.HasPrefix(o.Key, fmt.Sprintf("round-%d/", r)) {
				keys = append(keys, o.Key)
			}
		}
		if want := []string{fmt.Sprintf("round-%d/own-%d.log", r, winner), shared}; !slices.Equal(keys, want) {
			t.Errorf("round %d: manifest holds %q, want %q", r, keys, want)
		}
		if got, want := describe(partials(t, s, hour(r), hour(r+1))), fmt.Sprintf("%d:r%d-%d@%d", r, r, winner, r); got != want {
			t.Errorf("round %d: partials %q, want only the winner's %q", r, got, want)
		}
	}
	cats := readKnown(t, s)
	if len(cats) != rounds {
		t.Errorf("KnownCategories = %v, want one per round: the winners'", cats)
	}
}

func testInvalidBatch(t *testing.T, s Intake) {
	ctx := context.Background()
	commit(t, s, batch("ok", []string{"a"}, []int{0}, 1))
	before := state(t, s)
	bad := map[string]func(b *salesrank.Batch){
		"no objects":             func(b *salesrank.Batch) { b.Objects = nil },
		"empty key":              func(b *salesrank.Batch) { b.Objects[0].Key = "" },
		"repeated key":           func(b *salesrank.Batch) { b.Objects = append(b.Objects, b.Objects[0]) },
		"bucket not on a minute": func(b *salesrank.Batch) { b.Partials[0].Start = b.Partials[0].Start.Add(time.Second) },
		"hour with ns":           func(b *salesrank.Batch) { b.Partials[0].Start = b.Partials[0].Start.Add(1) },
		"repeated hour":          func(b *salesrank.Batch) { b.Partials = append(b.Partials, b.Partials[0]) },
		"negative cat":           func(b *salesrank.Batch) { b.Categories = append(b.Categories, -1) },
		"negative lines":         func(b *salesrank.Batch) { b.Objects[0].LinesRead = -1 },
	}
	for name, spoil := range bad {
		b := batch(name, []string{"x", "y"}, []int{1, 2}, 5)
		spoil(b)
		if err := s.CommitBatch(ctx, b); err == nil {
			t.Errorf("CommitBatch with %s succeeded, want an error", name)
		}
		if b.ID != 0 {
			t.Errorf("a failed CommitBatch (%s) set b.ID to %d", name, b.ID)
		}
	}
	if err := s.CommitBatch(ctx, nil); err == nil {
		t.Errorf("CommitBatch(nil) succeeded, want an error")
	}
	if after := state(t, s); after != before {
		t.Errorf("invalid batches left something behind:\nbefore %s\nafter  %s", before, after)
	}
}

func testPartialsRange(t *testing.T, s Intake) {
	ctx := context.Background()
	// Committed out of hour order: reads come back by hour, then batch.
	commit(t, s, batch("b1", []string{"1"}, []int{3, 1}))
	commit(t, s, batch("b2", []string{"2"}, []int{2, 1}))
	commit(t, s, batch("b3", []string{"3"}, []int{1}))
	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     string
	}{
		{"all", beginning, end, "1:b1@1 1:b2@1 1:b3@1 2:b2@2 3:b1@3"},
		{"half-open", hour(1), hour(3), "1:b1@1 1:b2@1 1:b3@1 2:b2@2"},
		{"from just after an hour", hour(1).Add(time.Nanosecond), hour(3), "2:b2@2"},
		{"to just after an hour", hour(2), hour(3).Add(time.Nanosecond), "2:b2@2 3:b1@3"},
		{"one hour", hour(3), hour(4), "3:b1@3"},
		{"empty", hour(2), hour(2), ""},
		{"reversed", hour(3), hour(1), ""},
		{"outside", hour(4), end, ""},
	} {
		if got := describe(partials(t, s, tc.from, tc.to)); got != tc.want {
			t.Errorf("%s: Partials = %q, want %q", tc.name, got, tc.want)
		}
	}
	// An error from fn stops the walk and comes back as it is.
	stop := errors.New("stop")
	calls := 0
	err := s.Partials(ctx, beginning, end, func(time.Time, []byte) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("Partials with fn failing: err = %v after %d calls, want stop after 1", err, calls)
	}
}

func testReplacePartials(t *testing.T, s Intake) {
	ctx := context.Background()
	commit(t, s, batch("b1", []string{"1"}, []int{0, 1}))
	commit(t, s, batch("b2", []string{"2"}, []int{1}))
	commit(t, s, batch("b3", []string{"3"}, []int{1, 2}))
	manifest := state(t, s)
	if err := s.ReplacePartials(ctx, hour(1), []byte("merged")); err != nil {
		t.Fatalf("ReplacePartials: %v", err)
	}
	if got, want := describe(partials(t, s, beginning, end)), "0:b1@0 1:merged 2:b3@2"; got != want {
		t.Errorf("after ReplacePartials, Partials = %q, want %q", got, want)
	}
	// The merged row keeps the highest batch id it replaced: a later batch sorts after it.
	commit(t, s, batch("b4", []string{"4"}, []int{1}))
	if got, want := describe(partials(t, s, hour(1), hour(2))), "1:merged 1:b4@1"; got != want {
		t.Errorf("after a later batch, hour 1 = %q, want %q", got, want)
	}
	// Replacing one row works too, and so does an empty merge.
	if err := s.ReplacePartials(ctx, hour(0), nil); err != nil {
		t.Fatalf("ReplacePartials with empty data: %v", err)
	}
	if got := partials(t, s, hour(0), hour(1)); len(got) != 1 || len(got[0].Data) != 0 {
		t.Errorf("hour 0 after an empty merge = %s, want one empty row", describe(got))
	}
	for name, h := range map[string]time.Time{"no partials": hour(9), "not an hour": hour(1).Add(time.Second)} {
		if err := s.ReplacePartials(ctx, h, []byte("x")); err == nil {
			t.Errorf("ReplacePartials of an hour with %s succeeded, want an error", name)
		}
	}
	if m := readManifest(t, s); len(m) != 4 {
		t.Errorf("Manifest has %d objects after compaction, want 4 (%s)", len(m), manifest)
	}
}

func testDeletePartialsBefore(t *testing.T, s Intake) {
	ctx := context.Background()
	commit(t, s, batch("b1", []string{"1"}, []int{-200, 0, 1, 2}))
	commit(t, s, batch("b2", []string{"2"}, []int{0, 2}))
	for _, tc := range []struct {
		before time.Time
		n      int64
		left   string
	}{
		{hour(-200), 0, "-200:b1@-200 0:b1@0 0:b2@0 1:b1@1 2:b1@2 2:b2@2"},
		{hour(1), 3, "1:b1@1 2:b1@2 2:b2@2"},
		{hour(1).Add(time.Nanosecond), 1, "2:b1@2 2:b2@2"}, // hour 1 began before t
		{hour(2), 0, "2:b1@2 2:b2@2"},
		{end, 2, ""},
	} {
		n, err := s.DeletePartialsBefore(ctx, tc.before)
		if err != nil || n != tc.n {
			t.Errorf("DeletePartialsBefore(%v) = %d, %v; want %d", tc.before, n, err, tc.n)
		}
		if got := describe(partials(t, s, beginning, end)); got != tc.left {
			t.Errorf("after DeletePartialsBefore(%v): %q, want %q", tc.before, got, tc.left)
		}
	}
	if m := readManifest(t, s); len(m) != 2 {
		t.Errorf("Manifest has %d objects, want 2: deleting partials does not untake objects", len(m))
	}
}

func testCancelledCommit(t *testing.T, s Intake) {
	commit(t, s, batch("ok", []string{"a"}, []int{0}, 1))
	before := state(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := batch("cancelled", []string{"b"}, []int{1}, 2)
	if err := s.CommitBatch(ctx, b); err == nil {
		t.Fatal("CommitBatch with a cancelled context succeeded, want an error")
	}
	if b.ID != 0 {
		t.Errorf("a cancelled CommitBatch set b.ID to %d", b.ID)
	}
	if after := state(t, s); after != before {
		t.Fatalf("a cancelled commit left something behind:\nbefore %s\nafter  %s", before, after)
	}

	// Cancel at assorted moments during a large commit: whatever the moment, the batch is in
	// whole or not at all. The moments are fractions of how long an uncancelled commit takes,
	// so that some land midway on any machine.
	big := func(tag string) *salesrank.Batch {
		keys := make([]string, 2000)
		for i := range keys {
			keys[i] = fmt.Sprintf("%s/%05d.log", tag, i)
		}
		hours := make([]int, 24)
		for i := range hours {
			hours[i] = -i
		}
		b := batch(tag, keys, hours)
		for i := range b.Partials {
			b.Partials[i].Data = append(b.Partials[i].Data, make([]byte, 256<<10)...)
		}
		for i := range 500 {
			b.Categories = append(b.Categories, int32(10_000+i))
		}
		return b
	}
	start := time.Now()
	commit(t, s, big("timing"))
	took := time.Since(start)
	var outcomes []string
	for i := range 8 {
		tag := fmt.Sprintf("cancel-%d", i)
		b := big(tag)
		after := took * time.Duration(i) / 6
		ctx, cancel := context.WithTimeout(context.Background(), after)
		err := s.CommitBatch(ctx, b)
		cancel()
		objs, parts, rejects := 0, 0, 0
		m := readManifest(t, s)
		for _, o := range m {
			if strings.HasPrefix(o.Key, tag+"/") {
				objs++
			}
		}
		for _, p := range partials(t, s, beginning, end) {
			if bytes.HasPrefix(p.Data, []byte(tag+"@")) {
				parts++
			}
		}
		rs := readRejects(t, s, 1<<30)
		for _, r := range rs {
			if strings.HasPrefix(r.Object, tag+"/") {
				rejects++
			}
		}
		got := fmt.Sprintf("%d objects, %d partials, %d rejects", objs, parts, rejects)
		if err == nil {
			outcomes = append(outcomes, "committed")
			if want := "2000 objects, 24 partials, 2000 rejects"; got != want || b.ID == 0 {
				t.Errorf("commit with %v to spare succeeded with %s and id %d, want %s", after, got, b.ID, want)
			}
		} else {
			// A deadline that strikes while the database is committing leaves the outcome
			// unknown to the caller (the ranker then forgets what it knew and re-reads the
			// manifest): the batch may be in, but only whole.
			outcomes = append(outcomes, "failed")
			if none, whole := "0 objects, 0 partials, 0 rejects", "2000 objects, 24 partials, 2000 rejects"; (got != none && got != whole) || b.ID != 0 {
				t.Errorf("commit cancelled after %v (%v) left %s and id %d, want %s (or, if the deadline struck as it committed, %s) and id 0", after, err, got, b.ID, none, whole)
			}
		}
	}
	t.Logf("commits cancelled after 0/6 … 7/6 of %v: %v", took, outcomes)
}

// testBigPartial stores a 20 MB partial: a week of a large catalogue's sums in one hour.
func testBigPartial(t *testing.T, s Intake) {
	data := make([]byte, 20<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(data); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	b := &salesrank.Batch{
		Objects:  []salesrank.TakenObject{{Key: "big.log.gz"}},
		Partials: []salesrank.Partial{{Start: hour(0), Data: data}},
	}
	start := time.Now()
	commit(t, s, b)
	wrote := time.Since(start)
	start = time.Now()
	got := partials(t, s, hour(0), hour(1))
	read := time.Since(start)
	if len(got) != 1 || !bytes.Equal(got[0].Data, data) {
		n := -1
		if len(got) == 1 {
			n = len(got[0].Data)
		}
		t.Fatalf("a 20 MB partial came back as %d rows (first %d bytes), not byte for byte", len(got), n)
	}
	t.Logf("20 MB partial: committed in %v, read in %v", wrote, read)
}
