// Package metrics is what salesrank's processes report to Prometheus: the read API's
// requests, the snapshot a replica serves, its polls of the store, and the ranker's runs.
//
// Every process builds its own registry with NewRegistry and passes it to the constructors
// here, so nothing is registered globally and each test starts from zero. Metric types are
// safe for concurrent use, and their methods do nothing on a nil receiver, so a component
// built without metrics needs no special case.
package metrics

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric of ours; the Go runtime's and the process's keep their
// standard go_ and process_ names, which dashboards expect.
const namespace = "salesrank"

// NewRegistry returns a registry holding the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves reg in the Prometheus exposition formats. A metric that fails to collect is
// logged (to nowhere if logger is nil) and left out rather than failing the whole scrape.
func Handler(reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg, // promhttp_metric_handler_errors_total
		// A scrape is cheap, but a stuck one must not pile up.
		MaxRequestsInFlight: 4,
	})
}
