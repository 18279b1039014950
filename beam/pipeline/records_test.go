package pipeline

import (
	"math"
	"testing"
)

// FuzzEachEntry decodes arbitrary bytes as a shuffled partition blob: it must never panic,
// and an encoded entry must decode to itself.
func FuzzEachEntry(f *testing.F) {
	f.Add(appendEntry(nil, 1, 2, 3, 4), uint32(0), int32(0), int64(0), int64(1))
	f.Add(appendEntry(nil, math.MaxUint32, math.MaxInt32, math.MaxInt64, math.MaxInt64), uint32(7), int32(1), int64(1)<<40, int64(-1))
	f.Add([]byte{0x80}, uint32(0), int32(math.MaxInt32), int64(math.MaxInt64), int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, data []byte, b uint32, cat int32, product int64, units int64) {
		eachEntry(data, func(uint32, int32, int64, int64) {})
		if cat < 0 || product < 0 {
			return // ids are never negative
		}
		var got [4]int64
		n := 0
		err := eachEntry(appendEntry(nil, b, cat, product, units), func(b2 uint32, c2 int32, p2 int64, u2 int64) {
			got, n = [4]int64{int64(b2), int64(c2), p2, u2}, n+1
		})
		if want := [4]int64{int64(b), int64(cat), product, units}; err != nil || n != 1 || got != want {
			t.Fatalf("round trip of %v: %v (%d entries, %v)", want, got, n, err)
		}
	})
}

// FuzzDecodeSum decodes arbitrary bytes as a staged sums record: it must never panic, and
// an encoded record must decode to itself.
func FuzzDecodeSum(f *testing.F) {
	f.Add(encodeSum(nil, 1, 2, 3, 4), uint32(5), int32(6), int64(7), int64(8))
	f.Add(encodeSum(nil, 0, math.MaxInt32, math.MaxInt64, math.MaxInt64), uint32(0), int32(0), int64(0), int64(-5))
	f.Add(make([]byte, 16), uint32(0), int32(0), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, data []byte, b uint32, cat int32, product int64, units int64) {
		decodeSum(data)
		if cat < 0 || product < 0 {
			return
		}
		b2, c2, p2, u2, err := decodeSum(encodeSum(nil, b, cat, product, units))
		if err != nil || b2 != b || c2 != cat || p2 != product || u2 != units {
			t.Fatalf("round trip of (%d, %d, %d, %d): (%d, %d, %d, %d), %v", b, cat, product, units, b2, c2, p2, u2, err)
		}
	})
}
