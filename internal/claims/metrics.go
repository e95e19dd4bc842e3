package claims

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/errs"
	platformmetrics "github.com/retailco/pos/internal/platform/metrics"
)

// metrics are the context's business series. Projection lag is not here:
// the bus measures it per consumer group (events_consumer_lag_seconds).
type metrics struct {
	commands *prometheus.CounterVec
	appended *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		commands: platformmetrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claims_commands_total",
			Help: "Claim commands by command and outcome (ok, invalid, conflict, not_found, error).",
		}, []string{"command", "outcome"})),
		appended: platformmetrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claims_events_appended_total",
			Help: "Events appended to the claims event store, by event type.",
		}, []string{"type"})),
	}
}

// command counts one command by how it ended. Conflicts are the number to
// watch: many mean agents tread on each other's claims.
func (m *metrics) command(name string, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case errs.IsKind(err, errs.Invalid):
		outcome = "invalid"
	case errs.IsKind(err, errs.Conflict):
		outcome = "conflict"
	case errs.IsKind(err, errs.NotFound):
		outcome = "not_found"
	default:
		outcome = "error"
	}
	m.commands.WithLabelValues(name, outcome).Inc()
}
