// Package loggen writes realistic synthetic sales logs in the design.md format, so that the
// ranking pipeline, its benchmarks and the demo have a week of data that looks like a shop's:
// a Zipf-skewed catalog, categories of uneven size, a daily and weekly traffic shape with
// spikes and short-lived hot products, and, on request, a share of deliberately bad lines.
//
// Output is deterministic: the same Config gives byte-identical output whatever the number
// of workers, because every (hour, part) object draws from its own random stream seeded from
// (Seed, hour, part), and every line count is fixed before any worker starts.
package loggen

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/salesrank/salesrank"
)

// Defaults match the source design: 10 M products, 1,000 categories and 1 B sales a month.
const (
	DefaultProducts   = 10_000_000
	DefaultCategories = 1_000
	DefaultSellers    = 200_000
	DefaultBuyers     = 50_000_000
	DefaultRate       = 385.8 // sales a second: 1 B in a 30-day month
	DefaultSeed       = 1
)

// TimeFormat is how a line's timestamp is written.
type TimeFormat string

// The timestamp formats design.md accepts; Mixed varies them line by line (unix seconds,
// RFC 3339 in UTC and RFC 3339 with an offset) to exercise a reader's parser.
const (
	Unix    TimeFormat = "unix"
	RFC3339 TimeFormat = "rfc3339"
	Mixed   TimeFormat = "mixed"
)

// Config says what to generate. Its zero value is not usable: Start and End must be set;
// other zero fields take the defaults above (see WithDefaults). A Config is written as JSON
// into the _SUCCESS marker of a generated folder, so that Complete can recognise it.
type Config struct {
	Start time.Time `json:"start"` // first second of sales, inclusive
	End   time.Time `json:"end"`   // end of sales, exclusive

	// Lines is the total number of lines, bad ones included. When zero it is Rate × the
	// seconds in [Start, End).
	Lines int64   `json:"lines,omitempty"`
	Rate  float64 `json:"rate,omitempty"` // average sales per second

	Products   int64 `json:"products"`   // product ids are 1 … Products
	Categories int32 `json:"categories"` // category ids are 1 … Categories
	Sellers    int64 `json:"sellers"`    // seller ids are 1 … Sellers
	Buyers     int64 `json:"buyers"`     // buyer ids are 1 … Buyers

	Seed       uint64     `json:"seed"`
	BadRate    float64    `json:"bad_rate,omitempty"` // fraction of lines that are deliberately bad
	TimeFormat TimeFormat `json:"time_format"`
	Header     bool       `json:"header,omitempty"` // start each object with a header line

	Parts int  `json:"parts"` // objects per hour in folder output
	Gzip  bool `json:"gzip,omitempty"`
}

// WithDefaults returns c with zero fields set to the defaults and times in UTC, truncated
// to the second (timestamps are whole seconds).
func (c Config) WithDefaults() Config {
	c.Start = c.Start.UTC().Truncate(time.Second)
	c.End = c.End.UTC().Truncate(time.Second)
	if c.Lines == 0 && c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Products == 0 {
		c.Products = DefaultProducts
	}
	if c.Categories == 0 {
		c.Categories = DefaultCategories
	}
	if c.Sellers == 0 {
		c.Sellers = DefaultSellers
	}
	if c.Buyers == 0 {
		c.Buyers = DefaultBuyers
	}
	if c.TimeFormat == "" {
		c.TimeFormat = Unix
	}
	if c.Parts == 0 {
		c.Parts = 1
	}
	return c
}

// FieldError reports a Config field that cannot be generated. Field is the field's JSON
// name (bad_rate), which a command line can map to its flag (--bad-rate).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + " " + e.Msg }

// Validate reports the first field of c (after WithDefaults) that cannot be generated as a
// *FieldError naming the field and the accepted range.
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case c.Start.IsZero():
		return bad("start", "must be set")
	case c.End.IsZero():
		return bad("end", "must be set")
	case !c.End.After(c.Start):
		return bad("end", "(%s) must be after start (%s)", c.End.Format(time.RFC3339), c.Start.Format(time.RFC3339))
	case c.Start.Unix() < 0:
		return bad("start", "(%s) must not be before 1970", c.Start.Format(time.RFC3339))
	case c.End.Sub(c.Start) > 10*366*24*time.Hour:
		return bad("end", "is %v after start; at most 10 years", c.End.Sub(c.Start))
	case c.Lines < 0:
		return bad("lines", "must be ≥ 0; got %d", c.Lines)
	case c.Lines == 0 && (c.Rate <= 0 || math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate)):
		return bad("rate", "must be a positive number of sales a second; got %v", c.Rate)
	case c.Products < 1 || c.Products > salesrank.MaxProductID:
		return bad("products", "must be 1 … %d; got %d", int64(salesrank.MaxProductID), c.Products)
	case c.Categories < 1:
		return bad("categories", "must be 1 … %d; got %d", salesrank.MaxCategoryID, c.Categories)
	case c.Categories > 10_000_000:
		// The catalog keeps an alias table entry per category.
		return bad("categories", "must be at most 10000000; got %d", c.Categories)
	case c.Sellers < 1:
		return bad("sellers", "must be ≥ 1; got %d", c.Sellers)
	case c.Buyers < 1:
		return bad("buyers", "must be ≥ 1; got %d", c.Buyers)
	case !(c.BadRate >= 0 && c.BadRate <= 1):
		return bad("bad_rate", "must be a fraction in 0 … 1; got %v", c.BadRate)
	case c.TimeFormat != Unix && c.TimeFormat != RFC3339 && c.TimeFormat != Mixed:
		return bad("time_format", "must be unix, rfc3339 or mixed; got %q", c.TimeFormat)
	case c.Parts < 1 || c.Parts > 10_000:
		return bad("parts", "must be 1 … 10000; got %d", c.Parts)
	}
	// Computed in float64: rate × seconds can exceed an int64 (1e15/s for a day), and a
	// wrapped count would pass this check and make the generator spin for ever.
	if n := c.totalLines(); n > 1<<40 {
		field := "rate"
		if c.Lines > 0 {
			field = "lines"
		}
		return bad(field, "gives %.0f lines, more than this generator writes (2^40); lower it or shorten the time range", n)
	}
	return nil
}

// TotalLines returns how many lines c generates, bad ones included. It is meaningful for a
// valid Config only.
func (c Config) TotalLines() int64 {
	return int64(min(c.totalLines(), math.MaxInt64))
}

func (c Config) totalLines() float64 {
	c = c.WithDefaults()
	if c.Lines > 0 {
		return float64(c.Lines)
	}
	secs := c.End.Sub(c.Start).Seconds()
	if secs <= 0 {
		return 0
	}
	return math.Round(c.Rate * secs)
}

// Stats counts what a generation wrote.
type Stats struct {
	Lines    int64 `json:"lines"` // bad lines included, header lines not
	BadLines int64 `json:"bad_lines"`
	Objects  int64 `json:"objects"`
	Bytes    int64 `json:"bytes"` // as stored: compressed when gzipped
}

// Options tune how, not what, a generation writes; they never change the output.
type Options struct {
	// Workers is how many hours are generated at once; zero means GOMAXPROCS.
	Workers int
	// Progress, if set, is called with the number of lines just written. It is called from
	// several goroutines at once and must be safe for that.
	Progress func(lines int64)
}

// formatVersion is stored in the _SUCCESS marker. Bump it whenever a Config's output
// changes, so that Complete stops reusing folders written by an older generator.
const formatVersion = 1

// key is the part of a config that decides the output: the rate only matters through the
// line count it gives.
func (c Config) key() []byte {
	c = c.WithDefaults()
	c.Lines = c.TotalLines()
	c.Rate = 0
	b, _ := json.Marshal(struct {
		Version int    `json:"version"`
		Config  Config `json:"config"`
	}{formatVersion, c})
	return b
}
