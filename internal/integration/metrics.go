package integration

import (
	"github.com/prometheus/client_golang/prometheus"

	platformmetrics "github.com/retailco/pos/internal/platform/metrics"
)

// Outcomes of one enrichment attempt (integration_enrichments_total).
const (
	// outcomeCompleted: this attempt enriched the claim.
	outcomeCompleted = "completed"
	// outcomeAlreadyComplete: the claim was found complete (an earlier
	// attempt that crashed before recording it, or an agent).
	outcomeAlreadyComplete = "already_complete"
	// outcomeDeferred: a dependency (or claims) did not answer; retried.
	outcomeDeferred = "deferred"
	// outcomeRetry: the claim moved under us (another command won the
	// append); retried.
	outcomeRetry = "retry"
	// outcomeOrderNotFound, outcomeCustomerMismatch, outcomeClaimClosed and
	// outcomeClaimMissing end the enrichment for good (state failed).
	outcomeOrderNotFound    = "order_not_found"
	outcomeCustomerMismatch = "customer_mismatch"
	outcomeClaimClosed      = "claim_closed"
	outcomeClaimMissing     = "claim_missing"
)

// metrics are the context's series: the mode and the dependencies as the
// monitor sees them, the enrichment backlog, and what became of claims.
type metrics struct {
	mode        prometheus.Gauge
	dependency  *prometheus.GaugeVec
	pending     prometheus.Gauge
	enrichments *prometheus.CounterVec
	claims      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		mode: platformmetrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "integration_mode",
			Help: "1 while the integration context runs in full mode, 0 while degraded (order or customer unreachable).",
		})),
		dependency: platformmetrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "integration_dependency_up",
			Help: "1 while a dependency of the integration context answers, 0 while it is down (as last observed).",
		}, []string{"dependency"})),
		pending: platformmetrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "integration_pending_enrichments",
			Help: "Claims created in degraded mode whose enrichment is still pending.",
		})),
		enrichments: platformmetrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "integration_enrichments_total",
			Help: "Attempts to complete a pending enrichment, by outcome (completed, already_complete, deferred, retry, order_not_found, customer_mismatch, claim_closed, claim_missing).",
		}, []string{"outcome"})),
		claims: platformmetrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "integration_claims_total",
			Help: "Claims created from orders, by the mode they were created in (full, degraded).",
		}, []string{"mode"})),
	}
	// The series exist from the start at zero, so a rate() or an alert on
	// them works before the first outage.
	for _, o := range []string{outcomeCompleted, outcomeAlreadyComplete, outcomeDeferred, outcomeRetry,
		outcomeOrderNotFound, outcomeCustomerMismatch, outcomeClaimClosed, outcomeClaimMissing} {
		m.enrichments.WithLabelValues(o)
	}
	for _, mode := range []Mode{ModeFull, ModeDegraded} {
		m.claims.WithLabelValues(string(mode))
	}
	return m
}
