package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTP counts the read API's requests and the ranking entries it returns.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	rows     prometheus.Counter
}

// latencyBuckets span what a replica answering from memory takes (a few microseconds) to
// what only a stalled machine takes; the request's time on the network is not in them.
var latencyBuckets = []float64{
	.000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1,
}

// NewHTTP returns the read API's metrics, registered with reg.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	m := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time from the request's headers being read to the handler returning, by route pattern and status code.",
			Buckets: latencyBuckets,
		}, []string{"route", "code"}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "rows_served_total",
			Help: "Ranking entries returned in response bodies of the popular endpoint.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.rows)
	return m
}

// RowsServed counts n ranking entries returned to a client.
func (m *HTTP) RowsServed(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.rows.Add(float64(n))
}

// Route returns the metrics of one route, named by its pattern (never by the raw URL, which
// a client chooses and would make the label set unbounded).
func (m *HTTP) Route(pattern string) *Route {
	if m == nil {
		return nil
	}
	return &Route{m: m, pattern: pattern}
}

// Route holds one route's metrics. Each status code's children are resolved the first time
// the code is seen and kept, so observing a request looks up no labels and allocates
// nothing; codes that never occur add no series.
type Route struct {
	m        *HTTP
	pattern  string
	children [600 - 100]atomic.Pointer[child] // by status code − 100
}

type child struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// Observe counts one request answered with status code in d.
func (r *Route) Observe(code int, d time.Duration) {
	if r == nil {
		return
	}
	c := r.child(code)
	c.requests.Inc()
	c.duration.Observe(d.Seconds())
}

func (r *Route) child(code int) *child {
	i := code - 100
	if i < 0 || i >= len(r.children) {
		return r.resolve(code) // not a valid status; net/http would have refused it anyway
	}
	if c := r.children[i].Load(); c != nil {
		return c
	}
	// Two requests may resolve the same code at once; WithLabelValues returns the same
	// children to both, so either store is right.
	c := r.resolve(code)
	r.children[i].Store(c)
	return c
}

func (r *Route) resolve(code int) *child {
	s := strconv.Itoa(code)
	return &child{
		requests: r.m.requests.WithLabelValues(r.pattern, s),
		duration: r.m.duration.WithLabelValues(r.pattern, s),
	}
}
