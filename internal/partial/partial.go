// Package partial encodes the partial sums of one bucket of sales time (an hour, or a few
// minutes) — units per (category, product) — into the compact blob the store keeps for each
// bucket and batch, and decodes them back. The incremental ranker adds a bucket's blobs to
// its window when the bucket enters it and subtracts them when it leaves, so a blob must
// decode to exactly what was encoded, and a damaged one must be refused whole rather than
// half applied.
//
// The format (version 2) is
//
//	"SRP2" | uvarint bucket seconds | uvarint n |
//	n × (uvarint Δcategory, uvarint product or Δproduct, uvarint units) | crc32c
//
// The bucket length travels with the data so that a ranker whose window needs finer buckets
// than the stored ones (a 1-minute refresh over hourly sums) notices, rather than silently
// counting parts of an hour outside its window.
// with entries sorted by category then product: Δcategory is the step from the previous
// entry's category; within a category the product is stored as the step from the previous
// product (the first product of a category is stored whole). Steps are small in sorted
// data, so most entries take 3 to 5 bytes. The trailing CRC-32C (Castagnoli) covers every
// byte before it.
package partial

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/salesrank/salesrank"
)

// Entry is the units one product sold in one category during the hour.
type Entry struct {
	CategoryID int32
	ProductID  int64
	Units      int64
}

var magic = []byte("SRP2")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by every error Decode returns for data it did not write.
var ErrCorrupt = errors.New("corrupt partial sums")

// Encode appends the encoding of one bucket's entries to dst and returns the extended
// slice. It sorts entries in place. Every key must appear once and every Units must be
// positive: entries are sums, and a key with nothing sold has no entry.
func Encode(dst []byte, bucket time.Duration, entries []Entry) ([]byte, error) {
	Sort(entries, nil)
	var enc Encoder
	enc.Reset(bucket, make([]byte, 0, 5*len(entries)))
	for _, e := range entries {
		enc.Add(e)
	}
	return enc.AppendTo(dst)
}

// An Encoder encodes one bucket's entries as they come, in order, into what Encode writes
// for them, without holding them: the entries may be merged from several runs as they are
// read (counting.Sums.All). Its zero value is ready for Reset.
type Encoder struct {
	bucket               time.Duration
	body                 []byte // the entries, encoded
	n                    int    // entries added
	prevCat, prevProduct int64
	err                  error // the first entry refused, or a bad bucket
}

// Reset starts the encoding of a bucket of length bucket, with body (its length is
// ignored) as the memory for the encoded entries until AppendTo.
func (e *Encoder) Reset(bucket time.Duration, body []byte) {
	*e = Encoder{bucket: bucket, body: body[:0], prevProduct: -1}
	if bucket < time.Second || bucket%time.Second != 0 {
		e.err = fmt.Errorf("encode partial sums: bucket %v is not a whole number of seconds", bucket)
	}
}

// Add adds the next entry, which must come after the last one in the order of Sort and have
// positive units. The first entry that does not is reported by AppendTo.
func (e *Encoder) Add(x Entry) {
	if e.err != nil {
		return
	}
	i := e.n
	switch {
	case x.Units <= 0:
		e.err = fmt.Errorf("encode partial sums: entry %d (category %d, product %d) has %d units, want > 0", i, x.CategoryID, x.ProductID, x.Units)
		return
	case x.CategoryID < 0 || x.ProductID < 0:
		e.err = fmt.Errorf("encode partial sums: entry %d has a negative id", i)
		return
	case int64(x.CategoryID) == e.prevCat && x.ProductID == e.prevProduct:
		e.err = fmt.Errorf("encode partial sums: category %d, product %d appears twice", x.CategoryID, x.ProductID)
		return
	case i > 0 && (int64(x.CategoryID) < e.prevCat || int64(x.CategoryID) == e.prevCat && x.ProductID < e.prevProduct):
		e.err = fmt.Errorf("encode partial sums: entry %d (category %d, product %d) comes before the one added ahead of it", i, x.CategoryID, x.ProductID)
		return
	}
	dCat := int64(x.CategoryID) - e.prevCat
	e.body = binary.AppendUvarint(e.body, uint64(dCat))
	if dCat > 0 || i == 0 {
		e.body = binary.AppendUvarint(e.body, uint64(x.ProductID))
	} else {
		e.body = binary.AppendUvarint(e.body, uint64(x.ProductID-e.prevProduct))
	}
	e.body = binary.AppendUvarint(e.body, uint64(x.Units))
	e.prevCat, e.prevProduct = int64(x.CategoryID), x.ProductID
	e.n++
}

// Body returns the memory of the encoded entries, for the next Reset to reuse once
// AppendTo has copied them.
func (e *Encoder) Body() []byte { return e.body }

// Len returns the bytes AppendTo appends at the most, to size dst.
func (e *Encoder) Len() int { return len(magic) + 2*binary.MaxVarintLen64 + len(e.body) + 4 }

// AppendTo appends the encoding of the entries added since Reset to dst and returns the
// extended slice, or the first error of Reset or Add.
func (e *Encoder) AppendTo(dst []byte) ([]byte, error) {
	if e.err != nil {
		return nil, e.err
	}
	start := len(dst)
	dst = append(dst, magic...)
	dst = binary.AppendUvarint(dst, uint64(e.bucket/time.Second))
	dst = binary.AppendUvarint(dst, uint64(e.n))
	dst = append(dst, e.body...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli)), nil
}

// Compare orders entries by category, then product: the order Sort gives, Encode writes
// and an Encoder takes.
func Compare(a, b Entry) int {
	switch {
	case a.CategoryID < b.CategoryID || a.CategoryID == b.CategoryID && a.ProductID < b.ProductID:
		return -1
	case a.CategoryID == b.CategoryID && a.ProductID == b.ProductID:
		return 0
	}
	return 1
}

// radixMin is the number of entries from which Sort sorts by radix: below it, the
// 12 histograms cost more than comparing.
const radixMin = 512

// Sort sorts entries by category, then product, the order Encode writes them in; it
// returns at once if they are sorted already. A first run over a week encodes
// millions of entries an hour into 168 partials, and a comparison sort of them was a
// quarter of that run's CPU time. So large inputs are sorted by radix, least significant
// byte first over the 12 bytes of the key (product, then category), skipping the bytes
// that every key shares (most of them: ids are small next to their 63 and 31 bits). The
// sign bit of each id is flipped so that negative ids (which Encode then refuses) sort
// first, as a comparison would put them.
//
// The radix sort needs a second buffer as long as entries: Sort keeps it in *scratch,
// growing it if need be, so that a caller sorting many runs (a counting goroutine, a
// block's keys at a time) gives it the same memory each time. With scratch nil Sort takes
// one from a pool.
func Sort(entries []Entry, scratch *[]Entry) {
	if slices.IsSortedFunc(entries, Compare) {
		return
	}
	if len(entries) < radixMin {
		slices.SortFunc(entries, Compare)
		return
	}
	var counts [12][256]int
	for i := range entries {
		p, c := radixKey(&entries[i])
		for d := range 8 {
			counts[d][byte(p>>(8*d))]++
		}
		for d := range 4 {
			counts[8+d][byte(c>>(8*d))]++
		}
	}
	if scratch == nil {
		scratch = scratchPool.Get().(*[]Entry)
		defer scratchPool.Put(scratch)
	}
	if cap(*scratch) < len(entries) {
		// Doubling: runs of a few sizes around one length must not each take new memory.
		*scratch = make([]Entry, max(len(entries), 2*cap(*scratch)))
	}
	src, dst := entries, (*scratch)[:len(entries)]
	for d := range 12 {
		if counts[d][digit(&src[0], d)] == len(src) {
			continue // every key has this byte: the order stays as it is
		}
		var next [256]int // where the next entry with each byte value goes
		sum := 0
		for b, n := range counts[d] {
			next[b] = sum
			sum += n
		}
		for i := range src {
			b := digit(&src[i], d)
			dst[next[b]] = src[i]
			next[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &entries[0] {
		copy(entries, src)
	}
}

// scratchPool holds the second buffers of the calls to Sort that bring none.
var scratchPool = sync.Pool{New: func() any { return new([]Entry) }}

// radixKey returns an entry's product and category with their sign bits flipped, the
// unsigned keys Sort orders by.
func radixKey(e *Entry) (product uint64, category uint32) {
	return uint64(e.ProductID) ^ 1<<63, uint32(e.CategoryID) ^ 1<<31
}

// digit returns byte d of an entry's radix key: bytes 0–7 are the product's, least
// significant first, and 8–11 the category's.
func digit(e *Entry, d int) byte {
	p, c := radixKey(e)
	if d < 8 {
		return byte(p >> (8 * d))
	}
	return byte(c >> (8 * (d - 8)))
}

// Decode checks data whole, then calls fn for each entry in order, and returns the length
// of the bucket the entries cover. If data is damaged it returns an error wrapping
// ErrCorrupt before calling fn at all, so a caller never applies half a blob.
func Decode(data []byte, fn func(Entry)) (bucket time.Duration, err error) {
	if _, _, err := walk(data, nil); err != nil {
		return 0, err
	}
	_, bucket, err = walk(data, fn)
	return bucket, err
}

// Len returns the number of entries in data and their bucket's length, checking it whole.
func Len(data []byte) (int, time.Duration, error) { return walk(data, nil) }

// walk validates data and, when fn is not nil, yields its entries.
func walk(data []byte, fn func(Entry)) (int, time.Duration, error) {
	corrupt := func(format string, args ...any) (int, time.Duration, error) {
		return 0, 0, fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	if len(data) < len(magic)+2+4 || string(data[:len(magic)]) != string(magic) {
		return corrupt("not a partial-sums blob (%d bytes)", len(data))
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return corrupt("checksum mismatch")
	}
	p := body[len(magic):]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	secs, ok := next()
	if !ok || secs == 0 || secs > 1<<32 {
		return corrupt("bad bucket length")
	}
	n, ok := next()
	if !ok || n > uint64(len(p)) { // each entry takes at least 3 bytes
		return corrupt("bad entry count")
	}
	var cat, product int64 = 0, -1
	for i := range n {
		dCat, ok1 := next()
		prod, ok2 := next()
		units, ok3 := next()
		if !ok1 || !ok2 || !ok3 {
			return corrupt("entry %d is cut short", i)
		}
		if dCat > salesrank.MaxCategoryID || units == 0 || units > math.MaxInt64 {
			return corrupt("entry %d is out of range", i)
		}
		if dCat > 0 || i == 0 {
			cat += int64(dCat)
			if prod > salesrank.MaxProductID {
				return corrupt("entry %d: product out of range", i)
			}
			product = int64(prod)
		} else {
			if prod == 0 || prod > uint64(salesrank.MaxProductID-product) {
				return corrupt("entry %d: products out of order", i)
			}
			product += int64(prod)
		}
		if cat > salesrank.MaxCategoryID {
			return corrupt("entry %d: category out of range", i)
		}
		if fn != nil {
			fn(Entry{CategoryID: int32(cat), ProductID: product, Units: int64(units)})
		}
	}
	if len(p) != 0 {
		return corrupt("%d bytes after the last entry", len(p))
	}
	return int(n), time.Duration(secs) * time.Second, nil
}
