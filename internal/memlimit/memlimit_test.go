package memlimit

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync/atomic"
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

// TestLimitMovesAfterEachCollection forces collections and counts how often the limit is
// computed: after each one, here where each has the time to run its cleanup (see
// follower). A limit moved on a one-second timer instead, as before, moved 3 times in the
// 200 collections the test allows (up to 5 ms apart). A heap that outgrows its margin
// between two moves makes the runtime collect back to back with nothing to free.
func TestLimitMovesAfterEachCollection(t *testing.T) {
	var moves atomic.Int64
	stop := Start(context.Background(), func(live uint64) int64 { moves.Add(1); return int64(live + minMargin) })
	defer stop()
	const want = 10
	start, collections := moves.Load(), 0
	for moves.Load() < start+want && collections < 200 {
		before := moves.Load()
		runtime.GC()
		collections++
		// The move runs on the cleanup goroutine just after the collection; give it up to
		// 5 ms to run before the next one.
		for t0 := time.Now(); moves.Load() == before && time.Since(t0) < 5*time.Millisecond; {
			runtime.Gosched()
		}
	}
	t.Logf("%d moves in %d collections", moves.Load()-start, collections)
	if got := moves.Load() - start; got < want {
		t.Fatalf("the limit moved %d times in %d collections, want %d: it does not follow the collections", got, collections, want)
	}
}
