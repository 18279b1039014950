package salesrank

import (
	"errors"
	"fmt"
	"time"
)

// ErrAlreadyTaken is wrapped by a store's CommitBatch error when an object of the batch is
// already in the manifest: nothing of the batch was committed. It is what makes two
// rankers racing on one object safe.
var ErrAlreadyTaken = errors.New("object already taken")

// The rules every store enforces before writing, so that SQLite and PostgreSQL refuse the
// same snapshots and batches with the same words.

// Validate checks what a store's schema cannot express, or would only report after half the
// work, in words an engine's author can act on.
func (snap *Snapshot) Validate(known []int32) error {
	switch {
	case snap == nil:
		return fmt.Errorf("nil snapshot")
	case snap.Window.End.Nanosecond() != 0 || snap.Window.Start.Nanosecond() != 0:
		return fmt.Errorf("window %v: must be whole seconds", snap.Window)
	case !snap.Window.Start.Before(snap.Window.End):
		return fmt.Errorf("window %v: start must be before end", snap.Window)
	case snap.Interval < time.Second || snap.Interval%time.Second != 0:
		return fmt.Errorf("interval %v: must be a whole number of seconds", snap.Interval)
	case snap.Top < 0:
		return fmt.Errorf("top %d: must not be negative", snap.Top)
	}
	for _, c := range known {
		if c < 0 {
			return fmt.Errorf("known category %d: must not be negative", c)
		}
	}
	for i, r := range snap.Rankings {
		if r.CategoryID < 0 {
			return fmt.Errorf("category %d: must not be negative", r.CategoryID)
		}
		if i > 0 && r.CategoryID <= snap.Rankings[i-1].CategoryID {
			return fmt.Errorf("category %d: rankings must be sorted by category id without repeats", r.CategoryID)
		}
		if len(r.Entries) > snap.Top {
			return fmt.Errorf("category %d: %d entries exceed top %d", r.CategoryID, len(r.Entries), snap.Top)
		}
		for j, e := range r.Entries {
			if e.ProductID < 0 || e.TotalSold <= 0 {
				return fmt.Errorf("category %d rank %d: product %d total %d: want product ≥ 0 and total > 0",
					r.CategoryID, j+1, e.ProductID, e.TotalSold)
			}
			if j > 0 && !Less(r.Entries[j-1], e) {
				return fmt.Errorf("category %d rank %d: product %d is out of ranking order", r.CategoryID, j+1, e.ProductID)
			}
		}
	}
	return nil
}

// Validate checks what a store's schema would only report halfway through, in words the
// ranker's author can act on.
func (b *Batch) Validate() error {
	if b == nil {
		return errors.New("nil batch")
	}
	if len(b.Objects) == 0 {
		// A batch without objects would commit partials that no manifest entry accounts for.
		return errors.New("batch names no objects")
	}
	keys := make(map[string]bool, len(b.Objects))
	for _, o := range b.Objects {
		switch {
		case o.Key == "":
			return errors.New("object with an empty key")
		case keys[o.Key]:
			return fmt.Errorf("object %q: named twice in one batch", o.Key)
		case o.LinesRead < 0 || o.LinesRejected < 0 || o.LinesTooLate < 0:
			return fmt.Errorf("object %q: negative line counts", o.Key)
		}
		keys[o.Key] = true
		if err := checkNanos("mod time", o.ModTime); err != nil {
			return fmt.Errorf("object %q: %w", o.Key, err)
		}
		if err := checkNanos("taken at", o.TakenAt); err != nil {
			return fmt.Errorf("object %q: %w", o.Key, err)
		}
	}
	hours := make(map[int64]bool, len(b.Partials))
	for _, p := range b.Partials {
		if err := CheckBucketStart(p.Start); err != nil {
			return fmt.Errorf("partial: %w", err)
		}
		if hours[p.Start.Unix()] {
			return fmt.Errorf("partial of %v: hour named twice in one batch", p.Start.UTC())
		}
		hours[p.Start.Unix()] = true
	}
	for _, c := range b.Categories {
		if c < 0 {
			return fmt.Errorf("category %d: must not be negative", c)
		}
	}
	return nil
}

// CheckBucketStart reports whether t can start a bucket of partial sums: the first second of a
// UTC minute (buckets are an hour, or the refresh interval when that divides an hour).
func CheckBucketStart(t time.Time) error {
	if t.Nanosecond() != 0 || t.Unix()%60 != 0 {
		return fmt.Errorf("bucket %v: must be the first second of a minute", t.UTC())
	}
	return nil
}

// checkNanos reports whether t round-trips through unix nanoseconds (years 1678 to 2262);
// the zero time is stored as NULL and always does.
func checkNanos(what string, t time.Time) error {
	if !t.IsZero() && !time.Unix(0, t.UnixNano()).Equal(t) {
		return fmt.Errorf("%s %v: outside the years 1678 to 2262", what, t)
	}
	return nil
}
