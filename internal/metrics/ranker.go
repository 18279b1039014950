package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/salesrank/salesrank/internal/ranker"
)

// Ranker reports the ranker daemon's runs. Counters add each run's figures, so rate() over
// them is the daemon's throughput; the summary of one run is in its log line.
type Ranker struct {
	now func() time.Time

	runs          *prometheus.CounterVec
	duration      prometheus.Histogram
	fullRanks     prometheus.Histogram
	objects       *prometheus.CounterVec
	linesRead     prometheus.Counter
	linesRejected *prometheus.CounterVec
	linesTooLate  prometheus.Counter
	lastSuccess   prometheus.Gauge
	lastSnapshot  prometheus.Gauge

	runsOK, runsFailed                          prometheus.Counter
	objTaken, objSkipped, objRefused, objFailed prometheus.Counter
}

// NewRanker returns the ranker's metrics, registered with reg; now is the clock of the last
// successful run's time (time.Now if nil).
func NewRanker(reg prometheus.Registerer, now func() time.Time) *Ranker {
	if now == nil {
		now = time.Now
	}
	m := &Ranker{
		now: now,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "rank", Name: "runs_total",
			Help: "Ranker runs, by result: ok (the snapshot, and the full ranks when due, were published) or error.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "rank", Name: "run_duration_seconds",
			Help: "Duration of successful runs: take new objects, move the window, rank, publish.",
			// From an incremental run with little new data to a first run over a week of logs.
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600},
		}),
		fullRanks: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "rank", Name: "full_ranks_seconds",
			Help: "For runs that published full ranks: how long after the run's top lists they were committed " +
				"(ranking every product and storing them, as a second snapshot of the cutoff).",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "rank", Name: "objects_total",
			Help: "Log objects seen by runs, by outcome: taken (counted now), skipped (taken by an earlier run), " +
				"refused (changed after being taken), failed (unreadable; left out whole and tried again).",
		}, []string{"outcome"}),
		linesRead: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "rank", Name: "lines_read_total",
			Help: "Non-blank, non-header log lines read from the objects taken.",
		}),
		linesRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "rank", Name: "lines_rejected_total",
			Help: "Bad log lines quarantined (table rejected_lines), by reason.",
		}, []string{"reason"}),
		linesTooLate: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "rank", Name: "lines_too_late_total",
			Help: "Sales older than the window and its grace: reported, not counted.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "rank", Name: "last_success_timestamp_seconds",
			Help: "When the last successful run ended, in Unix seconds; alert on time() minus this.",
		}),
		lastSnapshot: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "rank", Name: "last_snapshot_id",
			Help: "Id of the snapshot the last successful run published.",
		}),
	}
	reg.MustRegister(m.runs, m.duration, m.fullRanks, m.objects, m.linesRead, m.linesRejected, m.linesTooLate,
		m.lastSuccess, m.lastSnapshot)
	// Resolved now, so every series exists from the first scrape and rate() sees the first run.
	m.runsOK, m.runsFailed = m.runs.WithLabelValues("ok"), m.runs.WithLabelValues("error")
	m.objTaken, m.objSkipped = m.objects.WithLabelValues("taken"), m.objects.WithLabelValues("skipped")
	m.objRefused, m.objFailed = m.objects.WithLabelValues("refused"), m.objects.WithLabelValues("failed")
	return m
}

// Observe records one run: its summary, or the error it failed with. Its signature is that of
// ranker.Scheduler.OnRun.
func (m *Ranker) Observe(sum *ranker.Summary, err error) {
	if m == nil {
		return
	}
	if err != nil || sum == nil {
		m.runsFailed.Inc()
		return
	}
	m.runsOK.Inc()
	m.duration.Observe(sum.Seconds)
	if sum.TopListsSnapshotID != 0 { // its full ranks followed as a second snapshot
		m.fullRanks.Observe(sum.FullRanksSeconds)
	}
	m.objTaken.Add(float64(sum.ObjectsTaken))
	m.objSkipped.Add(float64(sum.ObjectsSkipped))
	m.objRefused.Add(float64(sum.ObjectsRefused))
	m.objFailed.Add(float64(sum.ObjectsFailed))
	m.linesRead.Add(float64(sum.LinesRead))
	for reason, n := range sum.RejectedByReason {
		m.linesRejected.WithLabelValues(reason).Add(float64(n))
	}
	m.linesTooLate.Add(float64(sum.LinesTooLate))
	m.lastSuccess.Set(float64(m.now().UnixNano()) / 1e9)
	m.lastSnapshot.Set(float64(sum.SnapshotID))
}
