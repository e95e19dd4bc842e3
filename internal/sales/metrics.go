package sales

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	pm "github.com/retailco/pos/internal/platform/metrics"
)

// metrics are the context's business metrics, counted once per outcome:
// by whichever call's transaction completed the sale or recorded the
// return, so a retry or a recovery never counts twice.
type metrics struct {
	sales   *prometheus.CounterVec
	amount  *prometheus.CounterVec
	returns prometheus.Counter
}

// newMetrics registers on reg (nil: counted, not exported). The open
// sessions gauge is read from the database at scrape time, so every
// process hosting sales reports the same, true number rather than what it
// happened to open itself.
func newMetrics(reg prometheus.Registerer, gdb *gorm.DB) *metrics {
	m := &metrics{
		sales: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sales_total", Help: "Completed sales, by store location.",
		}, []string{"location"}),
		amount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sales_amount_cents_total", Help: "Money taken by completed sales, net of change, by store location and tender.",
		}, []string{"location", "tender"}),
		returns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "returns_total", Help: "Returns recorded.",
		}),
	}
	if reg == nil {
		return m
	}
	m.sales = pm.Register(reg, m.sales)
	m.amount = pm.Register(reg, m.amount)
	m.returns = pm.Register(reg, m.returns)
	pm.Register[prometheus.GaugeFunc](reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "register_sessions_open", Help: "Register sessions currently open.",
	}, openSessions(gdb)))
	return m
}

// openSessions counts open sessions for the gauge; a failed read reports
// the last good value rather than a false zero.
func openSessions(gdb *gorm.DB) func() float64 {
	var last atomic.Int64 // scrapes may run concurrently
	return func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var n int64
		if err := gdb.WithContext(ctx).Table("register_sessions").Where("status = ?", SessionOpen).Count(&n).Error; err == nil {
			last.Store(n)
		}
		return float64(last.Load())
	}
}

// completed counts one completed sale.
func (m *metrics) completed(s Sale) {
	m.sales.WithLabelValues(s.LocationID).Inc()
	if cash := s.cashCents() - s.ChangeCents; cash > 0 {
		m.amount.WithLabelValues(s.LocationID, MethodCash).Add(float64(cash))
	}
	if card := s.cardCents(); card > 0 {
		m.amount.WithLabelValues(s.LocationID, MethodCard).Add(float64(card))
	}
}
