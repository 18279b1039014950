package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/salesrank/salesrank"
)

// Snapshot reports, at each scrape, the snapshot a replica serves: its id, its age and the
// end of its window. Computing them at scrape time keeps them off the request path and
// makes the age exact, not as old as the last request.
type Snapshot struct {
	current func() *salesrank.Snapshot
	now     func() time.Time

	loaded, id, age, windowEnd *prometheus.Desc
}

// NewSnapshot registers with reg a collector of the snapshot that current returns (nil while
// none is loaded); now is the clock the age is measured with (time.Now if nil).
func NewSnapshot(reg prometheus.Registerer, current func() *salesrank.Snapshot, now func() time.Time) *Snapshot {
	if now == nil {
		now = time.Now
	}
	name := func(n string) string { return prometheus.BuildFQName(namespace, "snapshot", n) }
	s := &Snapshot{
		current: current,
		now:     now,
		loaded: prometheus.NewDesc(name("loaded"),
			"1 while the replica holds a snapshot, 0 before the first one is loaded.", nil, nil),
		id: prometheus.NewDesc(name("id"),
			"Id of the snapshot being served.", nil, nil),
		age: prometheus.NewDesc(name("age_seconds"),
			"Seconds since the snapshot being served was published; alert when it exceeds the refresh interval by much.", nil, nil),
		windowEnd: prometheus.NewDesc(name("window_end_timestamp_seconds"),
			"End (the cutoff, excluded) of the window the served snapshot counts, in Unix seconds.", nil, nil),
	}
	reg.MustRegister(s)
	return s
}

// Describe implements prometheus.Collector.
func (s *Snapshot) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.loaded
	ch <- s.id
	ch <- s.age
	ch <- s.windowEnd
}

// Collect implements prometheus.Collector. Before the first snapshot only "loaded" is
// reported: an id or an age of 0 would read as a real value.
func (s *Snapshot) Collect(ch chan<- prometheus.Metric) {
	snap := s.current()
	if snap == nil {
		ch <- prometheus.MustNewConstMetric(s.loaded, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(s.loaded, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(s.id, prometheus.GaugeValue, float64(snap.ID))
	if !snap.PublishedAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(s.age, prometheus.GaugeValue, s.now().Sub(snap.PublishedAt).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(s.windowEnd, prometheus.GaugeValue, float64(snap.Window.End.Unix()))
}

// Watcher counts a replica's polls of the store for a new snapshot.
type Watcher struct {
	pollErrors prometheus.Counter
	loads      prometheus.Counter
}

// NewWatcher returns the snapshot watcher's metrics, registered with reg.
func NewWatcher(reg prometheus.Registerer) *Watcher {
	m := &Watcher{
		pollErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "snapshot", Name: "poll_errors_total",
			Help: "Polls of the database for the current snapshot that failed; the replica kept serving the snapshot it held.",
		}),
		loads: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "snapshot", Name: "loads_total",
			Help: "Snapshots loaded from the database and swapped in.",
		}),
	}
	reg.MustRegister(m.pollErrors, m.loads)
	return m
}

// PollFailed counts one failed poll.
func (m *Watcher) PollFailed() {
	if m != nil {
		m.pollErrors.Inc()
	}
}

// Loaded counts one snapshot loaded.
func (m *Watcher) Loaded() {
	if m != nil {
		m.loads.Inc()
	}
}
