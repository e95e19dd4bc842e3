package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestMonitorFollowsFlappingDependencies: with no request at all, the mode
// follows the dependencies going down and coming back, again and again
// (the original system looked once, at start-up). The mode is read from
// the integration_mode gauge, which nothing but the monitor moves here.
func TestMonitorFollowsFlappingDependencies(t *testing.T) {
	t.Parallel()
	w := newWorld(t, testkit.SQLite, false)
	w.runMonitor(t)
	waitGauge := func(what string, mode float64, dep string, up float64) {
		t.Helper()
		waitFor(t, 45*time.Second, func() (bool, string) {
			m := metricValue(t, w.reg, "integration_mode")
			d := metricValue(t, w.reg, "integration_dependency_up", "dependency", dep)
			return m == mode && d == up, fmt.Sprintf("%s: integration_mode %v, %s up %v", what, m, dep, d)
		})
	}
	waitGauge("start", 1, order.Name, 1)
	for round := range 2 {
		w.orderHost.stop()
		waitGauge(fmt.Sprintf("order down #%d", round), 0, order.Name, 0)
		if round == 0 {
			// Stay down until the client's breaker opens: recovery must
			// also be seen through the half-open probe, as after any
			// outage longer than a few probes.
			waitFor(t, 45*time.Second, func() (bool, string) {
				st, err := w.local.Status(context.Background())
				d := st.Dependencies.Order
				return err == nil && d.ConsecutiveFailures > 5 && strings.Contains(d.LastError, "circuit open"), asJSON(d)
			})
		}
		w.orderHost.start()
		waitGauge(fmt.Sprintf("order back #%d", round), 1, order.Name, 1)
	}
	w.customerHost.stop()
	waitGauge("customer down", 0, customer.Name, 0)
	// Status tells which dependency failed, and how.
	st, err := w.local.Status(context.Background())
	must(t, err)
	if st.Mode != ModeDegraded || st.Dependencies.Customer.Status != DependencyDown || st.Dependencies.Customer.LastError == "" ||
		st.Dependencies.Order.Status != DependencyUp || st.Dependencies.Order.LastError == "" {
		t.Fatalf("status while customer is down %s", asJSON(st))
	}
	w.customerHost.start()
	waitGauge("customer back", 1, customer.Name, 1)
}
