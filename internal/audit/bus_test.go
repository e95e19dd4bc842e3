package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/testkit/bustest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
)

// busMode is one way the binary runs the consumer: the embedded SQL-log
// bus with the trail on SQLite, or Redis Streams with the trail on
// PostgreSQL (SQLite when the run has no PostgreSQL).
type busMode struct {
	name    string
	backend testkit.Backend
	open    func(t *testing.T, o events.Options) events.Bus
	// redelivers says a second publish of one envelope is delivered
	// again (Redis with its dedup window off); the SQL bus drops it.
	redelivers bool
}

func busModes(t *testing.T) []busMode {
	backends := testkit.Backends(t)
	return []busMode{
		{name: "embedded", backend: testkit.SQLite, open: func(t *testing.T, o events.Options) events.Bus { return bustest.SQL(t, o) }},
		{name: "fleet", backend: backends[len(backends)-1], redelivers: true, open: func(t *testing.T, o events.Options) events.Bus {
			o.DedupWindow = -1
			return bustest.Redis(t, o)
		}},
	}
}

// TestOverBus publishes events of every catalog stream through real buses,
// kills the first subscription between handling an event and
// acknowledging it, and checks the trail: every event exactly once, with
// its correlation id, actor and payload.
func TestOverBus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, mode := range busModes(t) {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			gdb := openDB(t, mode.backend)
			reg := prometheus.NewRegistry()
			c := NewConsumer(gdb, Options{Logger: testkit.Logger(), Registerer: reg})
			bus := mode.open(t, events.Options{
				Registry: prometheus.NewRegistry(), Logger: testkit.Logger(),
				BlockTime: 100 * time.Millisecond, RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond,
				ClaimMinIdle: 2 * time.Second, ClaimInterval: 100 * time.Millisecond, LagInterval: time.Second, TrimInterval: -1,
			})

			// Three requests' worth of events across the four streams.
			r1 := actingAs("corr-claim-"+mode.name, auth.RoleCustomer, "cus_1")
			r2 := actingAs("corr-checkout-"+mode.name, auth.RoleService, "saga")
			r3 := actingAs("corr-till-"+mode.name, auth.RoleCashier, "key-cashier")
			claim := testkit.ID("clm")
			envs := []events.Envelope{
				newEvent(t, r1, "claims.ClaimCreated", claim, 1, claimCreatedData(claim, "cus_1")),
				newEvent(t, r2, "orders.OrderConfirmed", "ord_1", 1, orderConfirmedData("ord_1", "cus_1")),
				newEvent(t, r2, "inventory.StockChanged", "prd_1@loc_web", 4, stockChangedData("prd_1", "loc_web", 8)),
				newEvent(t, r3, "sales.SaleCompleted", "sal_1", 1, saleCompletedData("sal_1")),
				newEvent(t, r3, "inventory.StockChanged", "prd_1@loc_1", 9, stockChangedData("prd_1", "loc_1", 2)),
				newEvent(t, r1, "claims.ClaimAssigned", claim, 2, map[string]any{"claim_id": claim, "agent_id": "key-agent"}),
				newEvent(t, r3, "sales.SaleReturned", "sal_1", 2, saleReturnedData("sal_1")),
				newEvent(t, r2, "orders.OrderCancelled", "ord_1", 2, orderCancelledData("ord_1", "cus_1")),
			}
			for i := range 8 { // more stock movements, so the streams hold a batch or two
				envs = append(envs, newEvent(t, r3, "inventory.StockChanged", fmt.Sprintf("prd_%d@loc_1", i), 1,
					stockChangedData(fmt.Sprintf("prd_%d", i), "loc_1", 10+i)))
			}
			must(t, bus.Publish(ctx, envs...))

			victim := envs[3].EventID
			calls := map[string]int{}
			var mu sync.Mutex
			callsOf := func(id string) int {
				mu.Lock()
				defer mu.Unlock()
				return calls[id]
			}
			subCtx, kill := context.WithCancel(ctx)
			killed := make(chan struct{})
			var killOnce sync.Once
			handler := func(hctx context.Context, env events.Envelope) error {
				mu.Lock()
				calls[env.EventID]++
				mu.Unlock()
				if err := c.Handle(hctx, env); err != nil {
					return err
				}
				stop := false
				if env.EventID == victim {
					killOnce.Do(func() { stop = true })
				}
				if stop {
					kill()
					<-hctx.Done() // the subscription is stopping: no ack will follow
					close(killed)
					return errors.New("killed between handle and ack")
				}
				return nil
			}
			sub, err := bus.Subscribe(subCtx, Group, Streams, handler)
			must(t, err)
			waitClosed(t, killed, "the first subscription to handle its victim")
			waitClosed(t, sub.Done(), "the first subscription to stop")
			// The second consumer takes the backlog in batches.
			batched := 0
			batchHandler := func(hctx context.Context, envs []events.Envelope) error {
				err := c.HandleBatch(hctx, envs)
				mu.Lock()
				for _, env := range envs {
					calls[env.EventID]++
				}
				if err == nil {
					batched += len(envs)
				}
				mu.Unlock()
				return err
			}
			sub2, err := bus.Subscribe(ctx, Group, Streams, handler, events.WithBatch(batchHandler))
			must(t, err)
			t.Cleanup(func() { _ = sub2.Close() })
			if mode.redelivers {
				must(t, bus.Publish(ctx, envs[0])) // the same envelope again
			}

			svc := New(gdb, Options{})
			waitFor(t, 60*time.Second, "every event audited and every redelivery handled", func() bool {
				res, err := svc.ListEntries(ctx, Filter{})
				if err != nil || res.Total != int64(len(envs)) {
					return false
				}
				return callsOf(victim) >= 2 && (!mode.redelivers || callsOf(envs[0].EventID) >= 2)
			})

			mu.Lock()
			if batched < 2 {
				t.Errorf("%d events audited in batches; the second consumer should have batched the first one's leftovers", batched)
			}
			mu.Unlock()

			res, err := svc.ListEntries(ctx, Filter{Page: page.Request{PerPage: 100}})
			must(t, err)
			got := map[string]Entry{}
			for _, e := range res.Items {
				if _, dup := got[e.EventID]; dup {
					t.Errorf("event %s audited twice", e.EventID)
				}
				got[e.EventID] = e
			}
			for _, env := range envs {
				e, ok := got[env.EventID]
				switch {
				case !ok:
					t.Errorf("%s %s not audited", env.EventType, env.EventID)
				case e.CorrelationID != env.CorrelationID || e.Actor != env.Actor || e.Actor == "" ||
					e.EventType != env.EventType || e.Stream != env.Stream || e.AggregateID != env.AggregateID ||
					e.AggregateVersion != env.AggregateVersion || !e.OccurredAt.Equal(env.OccurredAt) ||
					e.AuditedAt.Before(env.OccurredAt) || e.LatencyMs < 0 || !sameJSON(t, e.Data, env.Data):
					t.Errorf("entry %+v\nfrom event %+v", e, env)
				}
			}
			// Each event observed once by the metric, whatever the deliveries.
			var observed uint64
			for _, st := range Streams {
				n, _ := histogram(t, reg, st)
				observed += n
			}
			if observed != uint64(len(envs)) {
				t.Errorf("audit_latency_seconds observed %d events, want %d", observed, len(envs))
			}
			byCorr, err := svc.ListEntries(ctx, Filter{CorrelationID: "corr-till-" + mode.name, Page: page.Request{PerPage: 100}})
			must(t, err)
			if byCorr.Total != 11 { // sale, return, its stock change and the eight more
				t.Errorf("by correlation id: %d entries, want 11", byCorr.Total)
			}
			if dl, err := bus.DeadLetters(ctx, Group, 10); err != nil || len(dl) > 0 {
				t.Fatalf("dead letters: %v %v", dl, err)
			}
		})
	}
}

// waitClosed waits for ch with a generous deadline.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
