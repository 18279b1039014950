// Package store is the one flow by which salesrank writes its database: publishing a
// snapshot and committing a batch of taken objects, step by step and in order, whatever the
// database. A backend (package sqlite, package postgres) supplies the steps in its own SQL
// dialect through Tx, one write transaction that holds the database's write lock, and keeps
// what makes it fast (multi-row INSERTs or COPY, arrays, prepared statements); this package
// owns what the steps are, their order, what is kept in memory between writes (the latest
// publication's rows, the products known), and the test hook that aborts a write at each
// step.
//
// Every write is one transaction: a crash, a lost connection or a cancelled context at any
// step leaves all of it or none of it.
//
// The simple reads (the manifest, the partial sums, ids, categories, the quarantine) are
// here too, one statement each in SQL both databases speak, run by the backend's Read; a
// backend keeps only Load, the snapshot read, as one linear transaction in its dialect.
package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/salesrank/salesrank"
	"github.com/salesrank/salesrank/internal/sharedrows"
)

// DefaultKeep is how many snapshots a store keeps: the current one and two before it, so
// that a reader still holding the previous one can finish and an operator can compare.
const DefaultKeep = 3

// PublishSteps are the steps of Publish, in order: the names its test hook is called with.
var PublishSteps = []string{"snapshot", "products", "sales_rank", "standings", "rejects", "commit"}

// BatchSteps are the steps of CommitBatch, in order.
var BatchSteps = []string{"batch:batch", "batch:objects", "batch:partials", "batch:rejects", "batch:commit"}

// Backend begins write transactions in one database's dialect, and loads snapshots.
type Backend interface {
	// Load reads snapshot id, or the current one if id is 0, in one read transaction.
	Load(ctx context.Context, id int64) (*salesrank.Snapshot, error)
	// Read runs one read-only statement (query, with "?" for each of args) and calls row
	// for each row it returns, with a scan that fills dest as rows.Scan does (a *RawBytes
	// gets the driver's buffer, without a copy). An error row returns ends the statement
	// and is returned as it is.
	Read(ctx context.Context, query string, args []any, row func(scan func(dest ...any) error) error) error
	// BeginWrite starts a transaction that holds the database's one write lock: writes
	// run one at a time, so "already taken?" checks, id reservations and pruning are exact.
	BeginWrite(ctx context.Context) (Tx, error)
	// AlreadyTaken returns err as an error wrapping salesrank.ErrAlreadyTaken that names
	// the key if err is the database refusing an object of objs already in the manifest
	// (by its primary key, past the check of FirstTaken); else it returns nil.
	AlreadyTaken(ctx context.Context, err error, objs []salesrank.TakenObject) error
}

// Tx is one write transaction: the operations Publish, CommitBatch, ReplacePartials and
// DeletePartialsBefore are made of. The ids, keys and categories it is given are sorted,
// so that inserts go into indexes in order and two writers that ever took the same keys
// would lock them in the same order; new rows come in (category, rank) order, rows to
// end or extend and rejects in no particular order.
type Tx interface {
	Commit(ctx context.Context) error
	Rollback() // after Commit, a no-op

	// Publish's steps.

	// LatestSnapshot returns the id of the latest publication, or 0.
	LatestSnapshot(ctx context.Context) (int64, error)
	// OpenRows reads the rows of the latest publication, prev: those whose last_snapshot_id
	// is at least prev.
	OpenRows(ctx context.Context, prev int64) ([]sharedrows.Row, error)
	// InsertSnapshot inserts the snapshot's row and returns its id.
	InsertSnapshot(ctx context.Context, s SnapshotRow) (int64, error)
	// UpsertCategories records cats, each with first_seen_at at unless already there.
	UpsertCategories(ctx context.Context, cats []int32, at int64) error
	// InsertSnapshotCategories records that snapshot covers cats.
	InsertSnapshotCategories(ctx context.Context, snapshot int64, cats []int32) error
	// UpsertProducts records products, each with first_seen_at at unless already there.
	UpsertProducts(ctx context.Context, products []int64, at int64) error
	// SetLast sets the last_snapshot_id of rows, each stored with its Last, to last.
	SetLast(ctx context.Context, rows []sharedrows.Row, last int64) error
	// ReserveRowIDs reserves n new sales_rank ids, which are base+1 … base+n.
	ReserveRowIDs(ctx context.Context, n int) (base int64, err error)
	// InsertRows inserts rows, numbered, valid from snapshot to last.
	InsertRows(ctx context.Context, rows []sharedrows.Row, snapshot, last int64) error
	// InsertRejects puts rejects in the quarantine, owned by a snapshot or a batch.
	InsertRejects(ctx context.Context, owner Owner, rejects []salesrank.Reject, at int64) error
	// Prunable returns, sorted, the ids of the snapshots beyond the keep latest cutoffs,
	// but never except, nor the latest id of each whole-hour cutoff at most retain
	// seconds before the latest cutoff (none if retain is negative): the history.
	Prunable(ctx context.Context, keep int, retain, except int64) ([]int64, error)
	// InsertStandings stores the full ranks that snapshot carries, ranked at cutoff (unix
	// seconds), one row per category.
	InsertStandings(ctx context.Context, snapshot, cutoff int64, rows []StandingsRow) error
	// ExpireStandings deletes every set of full ranks older than the newest one ranked at
	// least horizon seconds before the latest cutoff: what movers may still compare with
	// stays.
	ExpireStandings(ctx context.Context, horizon int64) error
	// DeleteSnapshots deletes snapshots and what names them.
	DeleteSnapshots(ctx context.Context, ids []int64) error
	// OldestSnapshot returns the smallest snapshot id left.
	OldestSnapshot(ctx context.Context) (int64, error)
	// DeleteRowsClosedBefore deletes the rows whose last snapshot is older than oldest.
	DeleteRowsClosedBefore(ctx context.Context, oldest int64) error
	// DeleteUnusedRows deletes the closed rows, last valid at or after from, that no
	// remaining snapshot uses.
	DeleteUnusedRows(ctx context.Context, from int64) error
	// Published runs last in a publication's transaction (PostgreSQL notifies listeners).
	Published(ctx context.Context) error

	// CommitBatch's steps.

	// FirstTaken returns the smallest key of objs already in the manifest, or "".
	FirstTaken(ctx context.Context, objs []salesrank.TakenObject) (string, error)
	// InsertBatch inserts a batch row and returns its id.
	InsertBatch(ctx context.Context, at int64) (int64, error)
	// InsertObjects puts objs in the manifest as taken by batch.
	InsertObjects(ctx context.Context, batch int64, objs []salesrank.TakenObject) error
	// InsertPartials stores the batch's partial sums.
	InsertPartials(ctx context.Context, batch int64, parts []salesrank.Partial) error

	// Compaction and expiry of partial sums.

	// LastBatchOf returns the highest batch id among the partials of the bucket starting
	// at hour (unix seconds), and false if it has none.
	LastBatchOf(ctx context.Context, hour int64) (int64, bool, error)
	// DeletePartials deletes the partials of the buckets starting in [from, to) (unix
	// seconds) and returns how many rows it deleted.
	DeletePartials(ctx context.Context, from, to int64) (int64, error)
}

// SnapshotRow is the snapshots table's row of a publication.
type SnapshotRow struct {
	Cutoff, WindowStart int64 // unix seconds
	IntervalSeconds     int64
	Top                 int
	PublishedAt         int64 // unix nanoseconds
	Categories, Entries int
}

// StandingsRow is one category's full ranks as stored: salesrank.AppendRanked's encoding.
type StandingsRow struct {
	CategoryID     int32
	ProductsRanked int
	Data           []byte
}

// Owner is what quarantined lines came with: the snapshot or the batch whose id they carry.
type Owner struct {
	Batch bool // a batch's; else a snapshot's
	ID    int64
}

// Core writes through a backend. A backend's DB holds one and lets it do its Publish and
// CommitBatch. It is safe for concurrent use.
type Core struct {
	// Keep is how many snapshots Publish leaves behind, newest cutoffs first; values below
	// 1 count as 1. Change it before publishing, not during.
	Keep int
	// Retain is how long, back from the latest cutoff, the snapshot of every whole hour is
	// kept besides the Keep latest: the history of the top lists. 0 keeps none.
	Retain time.Duration

	// EndInPlace lets a publication whose rows mostly changed give its rows its own id as
	// last_snapshot_id (sharedrows.Plan.Until), so that the next one, if they change
	// again, has nothing to write to end them. A backend sets it if its reads of the latest
	// snapshot do not rely on open rows ending at sharedrows.OpenEnd.
	EndInPlace bool

	backend Backend
	failAt  func(step string) error // see SetFailAt

	// products remembers the product ids this handle has committed to the products table,
	// which is never pruned, so a publish upserts only products new to it: a refresh every
	// minute re-ranks 100k products of which a handful are new. A database restored from
	// a backup, or a replica promoted after losing the last commits, may lack some of them:
	// the products are forgotten (see forget) whenever the latest publication is not this
	// handle's, and after a failed publication, and the next one upserts every product.
	productsMu sync.Mutex
	products   map[int64]struct{}

	// standings and past remember the full ranks this handle last loaded (see
	// withStandings), and the ranks of a day before: a replica reloads its snapshot every
	// minute, and the full ranks under it change hourly.
	standingsMu sync.Mutex
	standings   *salesrank.Standings
	past        *salesrank.PastRanks

	// encodeBufs are the buffers the last publication's full ranks were encoded in (54 MB
	// an hour at the seed's scale), for the next to encode in: memory already touched
	// costs a fraction of fresh memory's page faults.
	encodeMu   sync.Mutex
	encodeBufs [][]byte

	// open is the rows of this handle's latest publication, which the next one is compared
	// with (see package sharedrows). Publish trusts it only if that publication is still the
	// latest in the database, and reads the open rows back otherwise.
	openMu sync.Mutex
	open   *sharedrows.Open
}

// SetRetain sets Retain.
func (c *Core) SetRetain(d time.Duration) { c.Retain = d }

// New returns a Core that writes through b and keeps DefaultKeep snapshots.
func New(b Backend) *Core {
	return &Core{Keep: DefaultKeep, backend: b}
}

// Publish writes snap in one transaction, which makes it current atomically if its cutoff
// is the latest: readers see the previous snapshot until the commit, then this one.
//
// In the same transaction it records every category in known and every ranked category
// (known ones with no sales come back from Current with empty entries), the ranked
// products, the sales_rank rows that changed since the latest publication (package sharedrows: a
// row whose product and total stay the same is shared, id and all), and rejects in the
// quarantine; then it prunes all but the Keep snapshots with the latest cutoffs. A backfill
// whose cutoff is older than all of those is therefore pruned at once; its rejects stay.
// Only after the commit does it set snap.ID, every Entry.ID (its sales_rank row id) and, if
// zero, snap.PublishedAt. On error nothing is written and snap is unchanged.
func (c *Core) Publish(ctx context.Context, snap *salesrank.Snapshot, known []int32, rejects []salesrank.Reject) (int64, error) {
	return c.PublishRanking(ctx, snap, known, rejects, nil)
}

// PublishRanking is Publish for a snapshot whose full ranks are still to be made: unless
// rankAll is nil, it returns them (in place of snap.Standings), and runs while the database
// writes the top lists, so that ranking every product adds little to a publication's
// time. snap.Standings is set to them once they are published.
func (c *Core) PublishRanking(ctx context.Context, snap *salesrank.Snapshot, known []int32, rejects []salesrank.Reject, rankAll func() *salesrank.Standings) (int64, error) {
	if err := snap.Validate(known); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	if rankAll == nil {
		rankAll = func() *salesrank.Standings { return snap.Standings } // checked in publish, as made ones are
	}
	id, err := c.publish(ctx, snap, known, rejects, rankAll)
	if err != nil {
		c.forget()
		return 0, err
	}
	return id, nil
}

// checkStandings checks that st, the full ranks of snap if not nil, rank at its cutoff and
// begin with its top lists: the two answers a replica gives must never disagree.
func checkStandings(snap *salesrank.Snapshot, st *salesrank.Standings) error {
	if st == nil {
		return nil
	}
	if !st.Window.End.Equal(snap.Window.End) {
		return fmt.Errorf("the full ranks are of the window ending %v, the snapshot's ends %v", st.Window.End.UTC(), snap.Window.End.UTC())
	}
	for _, r := range snap.Rankings {
		full := st.Ranked(r.CategoryID)
		if len(r.Entries) != min(snap.Top, len(full)) {
			return fmt.Errorf("category %d: the top list holds %d products, the full ranks %d (top %d)", r.CategoryID, len(r.Entries), len(full), snap.Top)
		}
		for i, e := range r.Entries {
			if full[i].ProductID != e.ProductID || full[i].TotalSold != e.TotalSold {
				return fmt.Errorf("category %d: rank %d is product %d (%d sold) in the top list, %d (%d sold) in the full ranks",
					r.CategoryID, i+1, e.ProductID, e.TotalSold, full[i].ProductID, full[i].TotalSold)
			}
		}
	}
	if n := len(st.Categories()); n > len(snap.Rankings) {
		return fmt.Errorf("the full ranks hold %d categories, the snapshot %d", n, len(snap.Rankings))
	}
	return nil
}

// forget drops what the handle remembers of the database, to be read again: after a
// failed write, the database may not be what the handle believes it is.
func (c *Core) forget() {
	c.productsMu.Lock()
	c.products = nil
	c.productsMu.Unlock()
	c.openMu.Lock()
	c.open = nil
	c.openMu.Unlock()
}

func (c *Core) publish(ctx context.Context, snap *salesrank.Snapshot, known []int32, rejects []salesrank.Reject, rankAll func() *salesrank.Standings) (int64, error) {
	publishedAt := snap.PublishedAt
	if publishedAt.IsZero() {
		publishedAt = time.Now().UTC().Round(0) // Round(0) drops the monotonic reading
	}
	at := publishedAt.UnixNano()

	cats := slices.Clone(known)
	nEntries := 0
	for _, r := range snap.Rankings {
		cats = append(cats, r.CategoryID)
		nEntries += len(r.Entries)
	}
	slices.Sort(cats)
	cats = slices.Compact(cats)
	// The full ranks are made, checked and encoded while the database does the steps
	// before them (on a core of its own for SQLite, on the server for PostgreSQL).
	type fullRanks struct {
		st   *salesrank.Standings
		rows []StandingsRow
		bufs [][]byte // under rows (see encodeStandings)
		err  error
	}
	encoded := make(chan fullRanks, 1)
	go func() {
		st := rankAll()
		if err := checkStandings(snap, st); err != nil {
			encoded <- fullRanks{err: err}
			return
		}
		rows, bufs := c.encodeStandings(st)
		encoded <- fullRanks{st: st, rows: rows, bufs: bufs}
	}()
	var full fullRanks
	defer func() {
		if encoded != nil {
			<-encoded // never leave the encoder running past the call
		}
	}()

	tx, err := c.backend.BeginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("publish: begin: %w", err)
	}
	defer tx.Rollback()

	// The rows of the latest publication are what this one is compared with. The write
	// lock is held, so the latest publication cannot change until the commit.
	prev, err := tx.LatestSnapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("publish: latest snapshot: %w", err)
	}
	open, remembered, err := c.openRows(ctx, tx, prev)
	if err != nil {
		return 0, fmt.Errorf("publish: read open sales_rank rows: %w", err)
	}
	if !remembered {
		// Another process published since this handle last did, or the database was
		// restored: what the handle remembers of its products may not hold either.
		c.forget()
	}
	plan := sharedrows.Diff(open, snap)
	// Only new rows can name a product the table lacks.
	products := plan.NewProducts()
	c.productsMu.Lock()
	products = slices.DeleteFunc(products, func(p int64) bool { _, ok := c.products[p]; return ok })
	c.productsMu.Unlock()

	id, err := tx.InsertSnapshot(ctx, SnapshotRow{
		Cutoff: snap.Window.End.Unix(), WindowStart: snap.Window.Start.Unix(),
		IntervalSeconds: int64(snap.Interval / time.Second), Top: snap.Top,
		PublishedAt: at, Categories: len(cats), Entries: nEntries,
	})
	if err != nil {
		return 0, fmt.Errorf("publish: insert snapshot: %w", err)
	}
	if err := c.step("snapshot"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	if err := tx.UpsertCategories(ctx, cats, at); err != nil {
		return 0, fmt.Errorf("publish: upsert categories: %w", err)
	}
	if err := tx.InsertSnapshotCategories(ctx, id, cats); err != nil {
		return 0, fmt.Errorf("publish: insert snapshot categories: %w", err)
	}
	if err := tx.UpsertProducts(ctx, products, at); err != nil {
		return 0, fmt.Errorf("publish: upsert products: %w", err)
	}
	if err := c.step("products"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}

	// Rows that changed or left were last valid in the previous publication; the kept ones
	// are valid in this one.
	plan.Until = c.until(open, plan, id)
	end, extend := plan.Writes(id)
	if err := tx.SetLast(ctx, end, prev); err != nil {
		return 0, fmt.Errorf("publish: end sales_rank rows: %w", err)
	}
	if err := tx.SetLast(ctx, extend, plan.Until); err != nil {
		return 0, fmt.Errorf("publish: extend sales_rank rows: %w", err)
	}
	// The writer numbers the new rows itself and hands the ids back without a round trip
	// per row; the ids come from a reservation that never hands out an id twice, even one
	// a pruned row had.
	var base int64
	if n := len(plan.Insert); n > 0 {
		if base, err = tx.ReserveRowIDs(ctx, n); err != nil {
			return 0, fmt.Errorf("publish: reserve sales_rank ids: %w", err)
		}
	}
	plan.Number(base)
	// Rankings are validated to be sorted by category, so new rows go in (category, rank)
	// order: ids ascend with the rank, and the index is appended to in runs.
	if err := tx.InsertRows(ctx, plan.Insert, id, plan.Until); err != nil {
		return 0, fmt.Errorf("publish: insert sales_rank: %w", err)
	}
	if err := c.step("sales_rank"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	full, encoded = <-encoded, nil
	if full.err != nil {
		return 0, fmt.Errorf("publish: %w", full.err)
	}
	if full.st != nil {
		err := tx.InsertStandings(ctx, id, snap.Window.End.Unix(), full.rows)
		c.keepEncoding(full.bufs)
		if err != nil {
			return 0, fmt.Errorf("publish: insert full ranks: %w", err)
		}
	}
	if err := tx.ExpireStandings(ctx, int64(StandingsHorizon/time.Second)); err != nil {
		return 0, fmt.Errorf("publish: expire full ranks: %w", err)
	}
	if err := c.step("standings"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	if err := tx.InsertRejects(ctx, Owner{ID: id}, rejects, at); err != nil {
		return 0, fmt.Errorf("publish: insert rejected lines: %w", err)
	}
	if err := c.step("rejects"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	if err := c.prune(ctx, tx, id); err != nil {
		return 0, fmt.Errorf("publish: prune snapshots: %w", err)
	}
	if err := tx.Published(ctx); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	if err := c.step("commit"); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("publish: commit: %w", err)
	}

	c.productsMu.Lock()
	if c.products == nil {
		c.products = make(map[int64]struct{}, len(products))
	}
	for _, p := range products {
		c.products[p] = struct{}{}
	}
	c.productsMu.Unlock()
	c.openMu.Lock()
	c.open = plan.Done(id) // sets every Entry.ID
	c.openMu.Unlock()
	if full.st != nil {
		full.st.SnapshotID = id
		snap.Standings = full.st
	}
	snap.ID = id
	snap.PublishedAt = publishedAt
	return id, nil
}

// until chooses the last_snapshot_id of the rows publication id inserts or extends (see
// EndInPlace and package sharedrows). A publication that replaces most of the rows before
// it (an hourly refresh) leaves its rows ending at itself, where the next one finds them
// already ended if they change again; one that repeats the lists before it (the full ranks
// after the top lists) extends those that ended in place to itself, so that the next hour
// finds them ended too, and leaves open ones open; the others, and the first one, leave
// their rows open, to be ended only if they change.
//
// Never later than id: a ranker of a version before EndInPlace reads the rows ending at
// OpenEnd as the latest publication's, and one that published id+1 over rows ending there
// would leave them in its snapshot beside its own.
func (c *Core) until(open *sharedrows.Open, plan *sharedrows.Plan, id int64) int64 {
	switch {
	case !c.EndInPlace || open.Len() == 0:
		return sharedrows.OpenEnd
	case 2*len(plan.Insert) > plan.Entries(), len(plan.Insert) == 0 && len(plan.Close) == 0:
		return id
	}
	return sharedrows.OpenEnd
}

// openRows returns the open rows, which belong to snapshot prev (the latest publication):
// from memory if this handle made that publication (remembered), else read back from the
// database.
func (c *Core) openRows(ctx context.Context, tx Tx, prev int64) (o *sharedrows.Open, remembered bool, err error) {
	c.openMu.Lock()
	o = c.open
	c.openMu.Unlock()
	if o != nil && o.Snapshot == prev {
		return o, true, nil
	}
	rows, err := tx.OpenRows(ctx, prev)
	if err != nil {
		return nil, false, err
	}
	return sharedrows.NewOpen(prev, rows), false, nil
}

// prune deletes all but the Keep snapshots with the latest cutoffs, and the closed rows that
// no remaining snapshot uses. Pruning by cutoff, not by id, keeps the snapshots readers may
// still want: the current one and those just before it. The snapshot just published (id)
// is never pruned, so a backfill of an old cutoff can be read until the next publication.
func (c *Core) prune(ctx context.Context, tx Tx, id int64) error {
	retain := int64(-1) // none
	if c.Retain > 0 {
		retain = int64(c.Retain / time.Second)
	}
	pruned, err := tx.Prunable(ctx, max(c.Keep, 1), retain, id)
	if err != nil || len(pruned) == 0 {
		return err
	}
	if err := tx.DeleteSnapshots(ctx, pruned); err != nil {
		return err
	}
	oldest, err := tx.OldestSnapshot(ctx)
	if err != nil {
		return err
	}
	// An ended row's last snapshot was the latest publication when it was ended (or its
	// own, for a row ended in place). If that is older than every remaining snapshot, so is
	// the whole row: the common case, one range of the index.
	if err := tx.DeleteRowsClosedBefore(ctx, oldest); err != nil {
		return err
	}
	// The history keeps hourly snapshots and prunes those between them, and a backfill
	// makes cutoffs and ids disagree: a snapshot may be pruned while older ids stay. Then
	// check every closed row that could have been in a pruned snapshot for one that still
	// uses it: those last valid at or after the first pruned.
	if pruned[len(pruned)-1] > oldest {
		return tx.DeleteUnusedRows(ctx, max(oldest, pruned[0]))
	}
	return nil
}

// CommitBatch records b in one transaction: a new batch id, every object's manifest entry,
// every bucket's partial sums, the rejects in the quarantine and the categories named.
//
// If any object's key is already in the manifest, it commits nothing and returns an error
// wrapping salesrank.ErrAlreadyTaken that names the key. The check and the inserts happen
// under the write lock, so of two rankers committing the same object, exactly one wins.
//
// b must name at least one object, each key once, and each hour at most once; partial hours
// must start on whole UTC minutes. Only after the commit does it set b.ID and every
// object's BatchID; on error b is unchanged.
func (c *Core) CommitBatch(ctx context.Context, b *salesrank.Batch) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	// Sorted keys probe and insert into the manifest's index in order.
	objs := slices.Clone(b.Objects)
	slices.SortFunc(objs, func(x, y salesrank.TakenObject) int { return strings.Compare(x.Key, y.Key) })
	id, err := c.commitBatch(ctx, b, objs)
	if err != nil {
		if taken := c.backend.AlreadyTaken(ctx, err, objs); taken != nil {
			err = taken
		}
		return fmt.Errorf("commit batch: %w", err)
	}
	b.ID = id
	for i := range b.Objects {
		b.Objects[i].BatchID = id
	}
	return nil
}

func (c *Core) commitBatch(ctx context.Context, b *salesrank.Batch, objs []salesrank.TakenObject) (int64, error) {
	committedAt := time.Now().UnixNano()
	parts := slices.Clone(b.Partials)
	slices.SortFunc(parts, func(x, y salesrank.Partial) int { return x.Start.Compare(y.Start) })
	cats := slices.Clone(b.Categories)
	slices.Sort(cats)
	cats = slices.Compact(cats)

	tx, err := c.backend.BeginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()

	if key, err := tx.FirstTaken(ctx, objs); err != nil {
		return 0, fmt.Errorf("read manifest: %w", err)
	} else if key != "" {
		return 0, fmt.Errorf("object %q: %w", key, salesrank.ErrAlreadyTaken)
	}
	id, err := tx.InsertBatch(ctx, committedAt)
	if err != nil {
		return 0, fmt.Errorf("insert batch: %w", err)
	}
	if err := c.step("batch:batch"); err != nil {
		return 0, err
	}
	if err := tx.InsertObjects(ctx, id, objs); err != nil {
		return 0, fmt.Errorf("insert objects: %w", err)
	}
	if err := c.step("batch:objects"); err != nil {
		return 0, err
	}
	if err := tx.InsertPartials(ctx, id, parts); err != nil {
		return 0, fmt.Errorf("insert partials: %w", err)
	}
	if err := c.step("batch:partials"); err != nil {
		return 0, err
	}
	if err := tx.InsertRejects(ctx, Owner{Batch: true, ID: id}, b.Rejects, committedAt); err != nil {
		return 0, fmt.Errorf("insert rejected lines: %w", err)
	}
	if err := c.step("batch:rejects"); err != nil {
		return 0, err
	}
	if err := tx.UpsertCategories(ctx, cats, committedAt); err != nil {
		return 0, fmt.Errorf("upsert categories: %w", err)
	}
	if err := c.step("batch:commit"); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return id, nil
}

// ReplacePartials replaces every stored partial of hour by one row holding data, the merge
// of them all (compaction: the sixty batches of an hour refreshed every minute become one
// row). The row keeps the highest batch id it replaces, so it still sorts after nothing
// newer. It fails if hour has no partials.
//
// It replaces the rows the hour holds when it runs, including any committed after the
// caller read them to merge: only the one active ranker may compact, between its own
// commits.
func (c *Core) ReplacePartials(ctx context.Context, hour time.Time, data []byte) error {
	if err := salesrank.CheckBucketStart(hour); err != nil {
		return fmt.Errorf("replace partials: %w", err)
	}
	if err := c.replacePartials(ctx, hour, data); err != nil {
		return fmt.Errorf("replace partials of %v: %w", hour.UTC(), err)
	}
	return nil
}

func (c *Core) replacePartials(ctx context.Context, hour time.Time, data []byte) error {
	tx, err := c.backend.BeginWrite(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	h := hour.Unix()
	last, ok, err := tx.LastBatchOf(ctx, h)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("the hour has no partials")
	}
	if _, err := tx.DeletePartials(ctx, h, h+1); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := tx.InsertPartials(ctx, last, []salesrank.Partial{{Start: hour, Data: data}}); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// DeletePartialsBefore deletes the partials of every hour before t, which have left the
// window and its grace period, and returns how many rows it deleted. The manifest keeps
// their objects: they stay taken.
func (c *Core) DeletePartialsBefore(ctx context.Context, t time.Time) (int64, error) {
	tx, err := c.backend.BeginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete partials before %v: begin: %w", t, err)
	}
	defer tx.Rollback()
	n, err := tx.DeletePartials(ctx, math.MinInt64, CeilUnix(t))
	if err != nil {
		return 0, fmt.Errorf("delete partials before %v: %w", t, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("delete partials before %v: commit: %w", t, err)
	}
	return n, nil
}

// Current loads the current snapshot: its metadata and every category it covers, sorted by
// category id, entries by rank. A covered category with no sales has empty, non-nil
// Entries. It returns an error wrapping salesrank.ErrNoSnapshot if nothing was published.
func (c *Core) Current(ctx context.Context) (*salesrank.Snapshot, error) {
	return c.load(ctx, 0)
}

// load loads snapshot id (the current one if 0) with its full ranks.
func (c *Core) load(ctx context.Context, id int64) (*salesrank.Snapshot, error) {
	snap, err := c.backend.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	return c.withStandings(ctx, snap)
}

// Snapshot loads the stored snapshot with the given id, as Current does. It returns an
// error wrapping salesrank.ErrNoSnapshot if there is none (never published, or pruned).
func (c *Core) Snapshot(ctx context.Context, id int64) (*salesrank.Snapshot, error) {
	if id <= 0 {
		return nil, fmt.Errorf("snapshot %d: %w", id, salesrank.ErrNoSnapshot)
	}
	return c.load(ctx, id)
}

// PartialStats describes the stored partials, for reports and tests.
type PartialStats struct {
	Rows             int64
	Bytes            int64     // total size of the blobs
	MinHour, MaxHour time.Time // zero when there are no rows
}

// SetFailAt makes fn, if not nil, be called at each step of Publish and CommitBatch
// (PublishSteps, BatchSteps): an error it returns aborts the write there, as a crash or a
// full disk would. It is for tests; call it only while no write runs.
func (c *Core) SetFailAt(fn func(step string) error) { c.failAt = fn }

// step calls the test hook, if any, at a named point of a write.
func (c *Core) step(name string) error {
	if c.failAt == nil {
		return nil
	}
	return c.failAt(name)
}

// Nanos is t as a column value: unix nanoseconds, or NULL for the zero time.
func Nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// FromNanos is the time a nullable column of unix nanoseconds holds; NULL is the zero time.
func FromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// Blob binds b as a BLOB or BYTEA: the drivers bind a nil slice as NULL.
func Blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// CeilUnix returns the smallest whole unix second not before t. Buckets start on whole
// seconds, so "hour >= t" is "hour >= CeilUnix(t)" and "hour < t" is "hour < CeilUnix(t)".
func CeilUnix(t time.Time) int64 {
	s := t.Unix() // floors: Nanosecond is always in [0, 1e9)
	if t.Nanosecond() != 0 {
		s++
	}
	return s
}
