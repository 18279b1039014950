// Package salelog reads sales logs: one sale a line, seven tab-separated fields, as
// design.md specifies. It parses without allocating, so the ranking engine's hot loop can
// call ParseLine for every line of a week of logs, and it says precisely why a line is bad,
// so bad lines can be quarantined and counted rather than silently dropped.
package salelog

import (
	"bytes"
	"strings"

	"github.com/salesrank/salesrank"
)

// Reason says why a line was rejected. The zero value, OK, means the line parsed.
type Reason uint8

// The reasons a line can be rejected, one per field and two for the line's shape.
const (
	OK Reason = iota
	FieldCount
	BadTimestamp
	BadProductID
	BadCategoryID
	BadQuantity
	BadTotalPrice
	BadSellerID
	BadBuyerID
	TooLong
	numReasons
)

// NumReasons is the number of distinct reasons, OK included, for callers that count per reason
// in an array.
const NumReasons = int(numReasons)

var reasonNames = [...]string{
	OK:            "ok",
	FieldCount:    "field_count",
	BadTimestamp:  "bad_timestamp",
	BadProductID:  "bad_product_id",
	BadCategoryID: "bad_category_id",
	BadQuantity:   "bad_quantity",
	BadTotalPrice: "bad_total_price",
	BadSellerID:   "bad_seller_id",
	BadBuyerID:    "bad_buyer_id",
	TooLong:       "line_too_long",
}

var reasonDetails = [...]string{
	OK:            "",
	FieldCount:    "want 7 tab-separated fields",
	BadTimestamp:  "timestamp is neither unix seconds nor RFC 3339",
	BadProductID:  "product_id is not an integer in 0…2^63−1",
	BadCategoryID: "category_id is not an integer in 0…2^31−1",
	BadQuantity:   "quantity is not an integer in 1…2^31−1",
	BadTotalPrice: "total_price is not a non-negative decimal",
	BadSellerID:   "seller_id is not an integer in 0…2^63−1",
	BadBuyerID:    "buyer_id is not an integer in 0…2^63−1",
	TooLong:       "line is longer than the limit",
}

// String returns the reason's stable, snake_case name, used in summaries and the quarantine.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// Detail explains the reason in a sentence fragment an operator can act on.
func (r Reason) Detail() string {
	if int(r) < len(reasonDetails) {
		return reasonDetails[r]
	}
	return ""
}

// MaxLineLength bounds a line, so that one object without newlines cannot make a reader hold
// it all in memory. Real lines are under 200 bytes.
const MaxLineLength = 64 << 10

// Kind sorts a raw line into what a reader does with it.
type Kind uint8

// The kinds of line.
const (
	Sale   Kind = iota // a sale (possibly a bad one: see ParseLine's Reason)
	Blank              // empty or only a carriage return: ignored
	Header             // starts with "timestamp\t": skipped
)

// Classify tells blank lines and headers from sale lines. line has no trailing '\n'.
func Classify(line []byte) Kind {
	if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
		return Blank
	}
	if bytes.HasPrefix(line, headerPrefix) {
		return Header
	}
	return Sale
}

var headerPrefix = []byte("timestamp\t")

// TrimCR removes the '\r' of a CRLF line ending.
func TrimCR(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return line[:n-1]
	}
	return line
}

// ParseLine parses one sale line without its line ending ('\n', or "\r\n" with the '\r'
// still present). It does not allocate. A line it rejects gives the first field at fault.
func ParseLine(line []byte) (salesrank.Sale, Reason) {
	if s, ok := parseFast(line); ok {
		return s, OK
	}
	return parseSlow(line)
}

// parseFast parses a well-formed line in one pass over its bytes, the way nearly every line
// is written: digits and tabs. It gives up (ok false) on anything unusual, leading zeros
// beyond 19 digits included, and parseSlow then decides, so both accept the same lines.
func parseFast(line []byte) (s salesrank.Sale, ok bool) {
	line = TrimCR(line)
	if len(line) > MaxLineLength {
		return s, false
	}
	i := 0
	var v uint64
	if v, i, ok = scanField(line, i, maxUnix); ok {
		s.Time = int64(v)
	} else {
		// Not unix seconds: RFC 3339 up to the first tab.
		t := bytes.IndexByte(line, '\t')
		if t < 0 {
			return s, false
		}
		if s.Time, ok = parseRFC3339(line[:t]); !ok {
			return s, false
		}
		i = t + 1
	}
	if v, i, ok = scanField(line, i, salesrank.MaxProductID); !ok {
		return s, false
	}
	s.ProductID = int64(v)
	if v, i, ok = scanField(line, i, salesrank.MaxCategoryID); !ok {
		return s, false
	}
	s.CategoryID = int32(v)
	if v, i, ok = scanField(line, i, salesrank.MaxQuantity); !ok || v == 0 {
		return s, false
	}
	s.Quantity = int32(v)
	// total_price: digits, optionally '.' and digits.
	j := i
	for j < len(line) && line[j]-'0' <= 9 {
		j++
	}
	if j == i {
		return s, false
	}
	if j < len(line) && line[j] == '.' {
		k := j + 1
		for k < len(line) && line[k]-'0' <= 9 {
			k++
		}
		if k == j+1 {
			return s, false
		}
		j = k
	}
	if j >= len(line) || line[j] != '\t' {
		return s, false
	}
	if v, i, ok = scanField(line, j+1, 1<<63-1); !ok {
		return s, false
	}
	s.SellerID = int64(v)
	if v, i, ok = scanLast(line, i, 1<<63-1); !ok {
		return s, false
	}
	s.BuyerID = int64(v)
	return s, true
}

// scanField parses 1 to 19 digits at line[i:] ending in a tab, whose value is at most max,
// and returns the value and the index after the tab. Nineteen digits cannot overflow uint64.
func scanField(line []byte, i int, max uint64) (uint64, int, bool) {
	var v uint64
	start := i
	for i < len(line) {
		c := line[i]
		if c == '\t' {
			n := i - start
			return v, i + 1, n > 0 && n <= 19 && v <= max
		}
		if c-'0' > 9 {
			return 0, 0, false
		}
		v = v*10 + uint64(c-'0')
		i++
	}
	return 0, 0, false
}

// scanLast is scanField for the last field, which ends the line instead of a tab.
func scanLast(line []byte, i int, max uint64) (uint64, int, bool) {
	n := len(line) - i
	if n <= 0 || n > 19 {
		return 0, 0, false
	}
	var v uint64
	for _, c := range line[i:] {
		if c-'0' > 9 {
			return 0, 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, len(line), v <= max
}

// parseSlow parses any line field by field and names the first field at fault.
func parseSlow(line []byte) (salesrank.Sale, Reason) {
	var s salesrank.Sale
	line = TrimCR(line)
	if len(line) > MaxLineLength {
		return s, TooLong
	}
	var f [7][]byte
	n := 0
	for n < 6 {
		i := bytes.IndexByte(line, '\t')
		if i < 0 {
			return s, FieldCount
		}
		f[n] = line[:i]
		line = line[i+1:]
		n++
	}
	if bytes.IndexByte(line, '\t') >= 0 {
		return s, FieldCount
	}
	f[6] = line

	var ok bool
	if s.Time, ok = parseTimestamp(f[0]); !ok {
		return s, BadTimestamp
	}
	var v uint64
	if v, ok = parseUint(f[1], salesrank.MaxProductID); !ok {
		return s, BadProductID
	}
	s.ProductID = int64(v)
	if v, ok = parseUint(f[2], salesrank.MaxCategoryID); !ok {
		return s, BadCategoryID
	}
	s.CategoryID = int32(v)
	if v, ok = parseUint(f[3], salesrank.MaxQuantity); !ok || v == 0 {
		return s, BadQuantity
	}
	s.Quantity = int32(v)
	if !validDecimal(f[4]) {
		return s, BadTotalPrice
	}
	if v, ok = parseUint(f[5], 1<<63-1); !ok {
		return s, BadSellerID
	}
	s.SellerID = int64(v)
	if v, ok = parseUint(f[6], 1<<63-1); !ok {
		return s, BadBuyerID
	}
	s.BuyerID = int64(v)
	return s, OK
}

// parseUint parses a non-empty run of decimal digits (leading zeros allowed, no sign) whose
// value is at most max.
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		d := uint64(c - '0')
		if d > 9 {
			return 0, false
		}
		// v*10+d > max, written so it cannot overflow: max ≤ 2^63−1 leaves headroom.
		if v > (max-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// validDecimal accepts digits, optionally followed by '.' and more digits: "20.00", "7", "0.5".
func validDecimal(b []byte) bool {
	i := 0
	for i < len(b) && b[i]-'0' <= 9 {
		i++
	}
	if i == 0 {
		return false
	}
	if i == len(b) {
		return true
	}
	if b[i] != '.' || i+1 == len(b) {
		return false
	}
	return allDigits(b[i+1:])
}

// Timestamps are accepted from year 0001 to 9999, the range RFC 3339 can spell; unix seconds
// are held to the same range so both forms mean the same set of instants.
const (
	minUnix = -62135596800 // 0001-01-01T00:00:00Z
	maxUnix = 253402300799 // 9999-12-31T23:59:59Z
)

// parseTimestamp accepts unix seconds (digits only) or RFC 3339 with an optional fraction,
// which is dropped: a sale at 12:59:59.9 belongs to the second 12:59:59.
func parseTimestamp(b []byte) (int64, bool) {
	if allDigits(b) {
		v, ok := parseUint(b, maxUnix)
		return int64(v), ok
	}
	return parseRFC3339(b)
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c-'0' > 9 {
			return false
		}
	}
	return len(b) > 0
}

// parseRFC3339 parses YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM) by hand: time.Parse would need a
// string, and converting each line's field costs an allocation.
func parseRFC3339(b []byte) (int64, bool) {
	// Shortest form: 2006-01-02T15:04:05Z (20 bytes).
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	min, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 0, false
	}
	if year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || min > 59 || sec > 59 {
		return 0, false
	}
	rest := b[19:]
	if rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i]-'0' <= 9 {
			i++
		}
		if i == 1 || i > 10 { // one to nine fractional digits, as time.RFC3339Nano
			return 0, false
		}
		rest = rest[i:]
	}
	var offset int64
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := digits(rest[1:3])
		om, okm := digits(rest[4:6])
		if !okh || !okm || oh > 23 || om > 59 {
			return 0, false
		}
		offset = int64(oh*3600 + om*60)
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	t := daysFromCivil(year, month, day)*86400 + int64(hour*3600+min*60+sec) - offset
	if t < minUnix || t > maxUnix {
		return 0, false
	}
	return t, true
}

func digits(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if c-'0' > 9 {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days from 1970-01-01 to y-m-d in the proleptic Gregorian
// calendar (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// IsLogObject reports whether an object key names a log: markers such as "_SUCCESS" and
// temporary or hidden files (a name starting with '.' or '_') are not logs.
func IsLogObject(key string) bool {
	name := key[strings.LastIndexByte(key, '/')+1:]
	return name != "" && name[0] != '.' && name[0] != '_'
}

// IsGzip reports whether an object is gzip-compressed, which design.md decides by its name.
func IsGzip(key string) bool { return strings.HasSuffix(key, ".gz") }
