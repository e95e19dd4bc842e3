package cart

import (
	pm "github.com/retailco/pos/internal/platform/metrics"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/errs"
)

// metrics are the cart's business metrics. There is no gauge of active
// carts: in Redis that would take a scan of the keyspace.
type metrics struct {
	created    prometheus.Counter
	itemsAdded prometheus.Counter
	operations *prometheus.CounterVec
}

// newMetrics registers on reg; nil leaves them unregistered (they count,
// nobody scrapes them). Collectors already registered by an earlier
// service on the same registry (two services over one store in a test, a
// rebuilt context) are reused, so building twice does not panic.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "carts_created_total", Help: "Carts created (a first item added to a session without a live cart).",
		}),
		itemsAdded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cart_items_added_total", Help: "Successful add-to-cart calls.",
		}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cart_operations_total", Help: "Cart operations by operation and outcome (ok or the error kind).",
		}, []string{"op", "outcome"}),
	}
	if reg == nil {
		return m
	}
	m.created = pm.Register(reg, m.created)
	m.itemsAdded = pm.Register(reg, m.itemsAdded)
	m.operations = pm.Register(reg, m.operations)
	return m
}

// op counts one operation's outcome and passes err through.
func (m *metrics) op(name string, err error) error {
	outcome := "ok"
	if err != nil {
		outcome = errs.KindOf(err).Name()
	}
	m.operations.WithLabelValues(name, outcome).Inc()
	return err
}
