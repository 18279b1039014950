package memlimit

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestLimits(t *testing.T) {
	for _, c := range []struct {
		name       string
		limit      func(uint64) int64
		live, want uint64
	}{
		{"serve, top lists", Serve, 16 << 20, 144 << 20}, // 128 MiB more
		{"serve, full ranks", Serve, 450 << 20, 675 << 20},
		{"rank, small", Rank, 100 << 20, 228 << 20},
		{"rank, the seed's window", Rank, 800 << 20, 1000 << 20},
	} {
		if got := c.limit(c.live); got != int64(c.want) {
			t.Errorf("%s: limit for %d MiB live = %d MiB, want %d MiB", c.name, c.live>>20, got>>20, c.want>>20)
		}
	}
}

func TestUnset(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, true},
		{map[string]string{"GOGC": "100"}, false},
		{map[string]string{"GOGC": "off", "GOMEMLIMIT": "1GiB"}, false},
		{map[string]string{"GOMEMLIMIT": "512MiB"}, false},
	} {
		if got := Unset(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("environment %v: Unset = %v, want %v", c.env, got, c.want)
		}
	}
}

// TestStartSetsAndRestores checks that the limit follows the live heap while Start runs
// and is given back when it stops.
func TestStartSetsAndRestores(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	const want = 3 << 30
	stop := Start(context.Background(), func(uint64) int64 { return want })
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) != want {
		if time.Now().After(deadline) {
			t.Fatalf("the limit is %d, want %d", debug.SetMemoryLimit(-1), want)
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("after stop, the limit is %d, want %d as before", got, before)
	}
}

// TestLimitFollowsEachCollection grows the live heap in chunks well past the margin, faster
// than any timer would move the limit, and counts the collections: the limit must move
// after each one, so that the heap gets its margin above what is live again. A limit that
// stayed behind would have the runtime collect at nearly every chunk, finding nothing to
// free.
func TestLimitFollowsEachCollection(t *testing.T) {
	const (
		margin = 32 << 20
		chunk  = 2 << 20
		live   = 256 << 20 // 128 chunks
	)
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // collections come from the limit alone
	stop := Start(context.Background(), func(live uint64) int64 { return int64(live + margin) })
	defer stop()
	runtime.GC()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	held := make([][]byte, 0, live/chunk)
	for range live / chunk {
		b := make([]byte, chunk)
		b[0] = 1 // touched, as a table is
		held = append(held, b)
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(held)

	// With the limit moved after every collection the heap grows by the margin, 16
	// chunks, between collections: 13 here. Moved on a one-second timer instead, it took 50.
	if n := after.NumGC - before.NumGC; n > 40 {
		t.Errorf("%d collections while the live heap grew by %d MiB in %d MiB chunks with a margin of %d MiB: the limit did not follow the collections",
			n, live>>20, chunk>>20, margin>>20)
	} else {
		t.Logf("%d collections", n)
	}
}
