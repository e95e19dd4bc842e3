package audit

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestConsumer pins Handle itself on every engine: once per event id, the
// latency metric observed once, bad envelopes refused, and a trail the
// database itself will not let anyone rewrite.
func TestConsumer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		t.Run("once per event, metric once", func(t *testing.T) {
			gdb := openDB(t, b)
			reg := prometheus.NewRegistry()
			clk := &clock{}
			c := NewConsumer(gdb, Options{Logger: testkit.Logger(), Registerer: reg, Now: clk.Now})
			env := newEvent(t, actingAs("corr-1", auth.RoleAgent, "key-7"), "claims.ClaimClosed", "clm_1", 5, map[string]any{"claim_id": "clm_1"})
			env.OccurredAt = t0
			clk.Set(t0.Add(1500 * time.Millisecond))
			must(t, c.Handle(ctx, env))
			clk.Set(t0.Add(time.Hour))
			must(t, c.Handle(ctx, env))
			// A second consumer (another process) on the same trail.
			must(t, NewConsumer(gdb, Options{Logger: testkit.Logger(), Registerer: reg, Now: clk.Now}).Handle(ctx, env))

			res, err := New(gdb, Options{}).ListEntries(ctx, Filter{})
			must(t, err)
			if res.Total != 1 || res.Items[0].LatencyMs != 1500 || !res.Items[0].AuditedAt.Equal(t0.Add(1500*time.Millisecond)) {
				t.Fatalf("trail after three deliveries: %+v", res)
			}
			count, sum := histogram(t, reg, "claims")
			if count != 1 || sum != 1.5 {
				t.Fatalf("audit_latency_seconds{stream=claims}: count %d sum %v, want 1 and 1.5", count, sum)
			}
		})

		t.Run("bad envelopes", func(t *testing.T) {
			gdb := openDB(t, b)
			c := NewConsumer(gdb, Options{Logger: testkit.Logger()})
			good := newEvent(t, actingAs("corr-2", "", ""), "sales.SaleCompleted", "sal_1", 1, saleCompletedData("sal_1"))
			noTime := good
			noTime.OccurredAt = time.Time{}
			noID := good
			noID.EventID = ""
			for name, env := range map[string]events.Envelope{"no occurred_at": noTime, "no event id": noID} {
				if err := c.Handle(ctx, env); !errs.IsKind(err, errs.Invalid) {
					t.Errorf("%s: %v, want Invalid", name, err)
				}
			}
			// A payload-less event is still an event.
			bare := newEvent(t, actingAs("corr-3", "", ""), "inventory.StockChanged", "p@l", 1, nil)
			must(t, c.Handle(ctx, bare))
			res, err := New(gdb, Options{}).ListEntries(ctx, Filter{})
			must(t, err)
			if res.Total != 1 || string(res.Items[0].Data) != "null" || res.Items[0].Actor != "" {
				t.Fatalf("trail: %+v", res)
			}
		})

		t.Run("append-only", func(t *testing.T) {
			gdb := openDB(t, b)
			c := NewConsumer(gdb, Options{Logger: testkit.Logger()})
			env := newEvent(t, actingAs("corr-4", auth.RoleCustomer, "cus_1"), "orders.OrderConfirmed", "ord_1", 1, orderConfirmedData("ord_1", "cus_1"))
			must(t, c.Handle(ctx, env))
			if err := gdb.Exec(`UPDATE audit_log SET actor = 'someone else'`).Error; err == nil {
				t.Error("UPDATE of the trail succeeded")
			}
			if err := gdb.Exec(`DELETE FROM audit_log`).Error; err == nil {
				t.Error("DELETE from the trail succeeded")
			}
			if b.Name == "postgres" {
				if err := gdb.Exec(`TRUNCATE audit_log`).Error; err == nil {
					t.Error("TRUNCATE of the trail succeeded")
				}
			}
			res, err := New(gdb, Options{}).ListEntries(ctx, Filter{})
			must(t, err)
			if res.Total != 1 || res.Items[0].Actor != "customer:cus_1" {
				t.Fatalf("trail changed: %+v", res)
			}
		})
	})
}

// histogram reads audit_latency_seconds for one stream.
func histogram(t *testing.T, reg *prometheus.Registry, stream string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "audit_latency_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "stream" && lp.GetValue() == stream {
					return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return 0, 0
}
