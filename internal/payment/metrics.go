package payment

import (
	pm "github.com/retailco/pos/internal/platform/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the context's business metrics. They count outcomes once,
// when they are recorded, never on replays, so payments_total matches the
// rows in the table.
type metrics struct {
	payments  *prometheus.CounterVec
	amount    *prometheus.CounterVec
	refunds   *prometheus.CounterVec
	refunded  *prometheus.CounterVec
	gateway   *prometheus.HistogramVec
	conflicts prometheus.Counter
}

// newMetrics registers on reg; nil keeps the metrics unregistered (they
// still count, nobody scrapes them). A collector already registered by an
// earlier service on the same registry (tests, a restarted context) is
// reused, so building the service twice does not panic.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		payments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payments_total", Help: "Payment outcomes recorded, by method and status (captured, declined, failed).",
		}, []string{"method", "status"}),
		amount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payment_amount_cents_total", Help: "Cents captured, by currency.",
		}, []string{"currency"}),
		refunds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refunds_total", Help: "Refund outcomes recorded, by status (succeeded, failed).",
		}, []string{"status"}),
		refunded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payment_refunded_cents_total", Help: "Cents refunded, by currency.",
		}, []string{"currency"}),
		gateway: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "payment_gateway_duration_seconds",
			Help:    "Latency of payment gateway calls, by operation and outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation", "outcome"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payment_idempotency_conflicts_total", Help: "Transaction or refund ids reused with a different body.",
		}),
	}
	if reg == nil {
		return m
	}
	m.payments = pm.Register(reg, m.payments)
	m.amount = pm.Register(reg, m.amount)
	m.refunds = pm.Register(reg, m.refunds)
	m.refunded = pm.Register(reg, m.refunded)
	m.gateway = pm.Register(reg, m.gateway)
	m.conflicts = pm.Register(reg, m.conflicts)
	return m
}

func (m *metrics) gatewayCall(operation, outcome string, d time.Duration) {
	m.gateway.WithLabelValues(operation, outcome).Observe(d.Seconds())
}

func (m *metrics) payment(p paymentRow) {
	m.payments.WithLabelValues(p.Method, p.Status).Inc()
	if Status(p.Status) == StatusCaptured {
		m.amount.WithLabelValues(p.Currency).Add(float64(p.AmountCents))
	}
}

func (m *metrics) refund(r refundRow) {
	m.refunds.WithLabelValues(r.Status).Inc()
	if RefundStatus(r.Status) == RefundSucceeded {
		m.refunded.WithLabelValues(r.Currency).Add(float64(r.AmountCents))
	}
}
