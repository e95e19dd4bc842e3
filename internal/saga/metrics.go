package saga

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/metrics"
)

// metricsSet holds the saga metrics, named as in the original system so
// its dashboards keep working.
type metricsSet struct {
	requests      *prometheus.CounterVec
	duration      prometheus.Histogram
	active        prometheus.Gauge
	steps         *prometheus.CounterVec
	compensations *prometheus.CounterVec
	errors        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metricsSet {
	return &metricsSet{
		requests: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "saga_requests_total",
			Help: "Checkout and cancellation requests by outcome: COMPLETED, FAILED, RUNNING (answered 202) or REJECTED (refused before any saga started).",
		}, []string{"status"})),
		duration: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "saga_duration_seconds",
			Help:    "Time from a saga's creation to its final state.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		})),
		active: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "saga_active_count",
			Help: "Sagas this process is driving right now.",
		})),
		steps: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "saga_steps_total",
			Help: "Step attempts by step and outcome (succeeded, failed for good, retried).",
		}, []string{"step_type", "status"})),
		compensations: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "saga_compensation_total",
			Help: "Compensating steps completed, by step.",
		}, []string{"step_type"})),
		errors: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "saga_errors_total",
			Help: "Errors met by steps (the errs kind, or reservation_expired, lease_lost, persistence).",
		}, []string{"step_type", "error_type"})),
	}
}

func (m *metricsSet) finished(row sagaRow) {
	if row.FinishedAt != nil {
		m.duration.Observe(row.FinishedAt.Sub(row.CreatedAt).Seconds())
	}
}

func (m *metricsSet) request(status string) { m.requests.WithLabelValues(status).Inc() }

func (m *metricsSet) step(step, status string) { m.steps.WithLabelValues(step, status).Inc() }

func (m *metricsSet) errorOf(step, kind string) { m.errors.WithLabelValues(step, kind).Inc() }
