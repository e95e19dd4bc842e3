package audit

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
)

// fixture is one adapter of Service under test, over a database its
// consumer fills, both on the same hand-set clock.
type fixture struct {
	svc      Service
	consumer *Consumer
	clock    *clock
}

// TestService runs one suite against every adapter of Service: the local
// implementation on each database engine, and Client over HTTP (as an
// agent). The same assertions hold for all, errors included.
func TestService(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		runSuite(t, func(t *testing.T) fixture {
			gdb := openDB(t, b)
			clk := &clock{}
			o := Options{Logger: testkit.Logger(), Now: clk.Now}
			return fixture{svc: New(gdb, o), consumer: NewConsumer(gdb, o), clock: clk}
		})
	})
	t.Run("client", func(t *testing.T) {
		runSuite(t, func(t *testing.T) fixture {
			gdb := openDB(t, testkit.SQLite)
			clk := &clock{}
			o := Options{Logger: testkit.Logger(), Now: clk.Now}
			local := New(gdb, o)
			h := testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, local) })
			return fixture{svc: NewClient(h.Client(Name, h.Keys.Agent)), consumer: NewConsumer(gdb, o), clock: clk}
		})
	})
}

// t0 is when the suite's story starts.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func runSuite(t *testing.T, newFixture func(t *testing.T) fixture) {
	ctx := context.Background()

	// seed audits one event that occurred at occurred and reached the
	// trail at audited.
	type seeded struct {
		env     events.Envelope
		latency int64
	}
	seed := func(t *testing.T, f fixture, env events.Envelope, occurred, audited time.Time) seeded {
		t.Helper()
		env.OccurredAt = occurred
		f.clock.Set(audited)
		must(t, f.consumer.Handle(ctx, env))
		return seeded{env: env, latency: max(audited.Sub(occurred), 0).Milliseconds()}
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	sec := func(n int) time.Duration { return time.Duration(n) * time.Second }

	t.Run("trail and queries", func(t *testing.T) {
		f := newFixture(t)
		cust := actingAs("c1", auth.RoleCustomer, "cus_1")
		agent := actingAs("c2", auth.RoleAgent, "key-agent")
		saga := actingAs("c3", auth.RoleService, "saga")
		till := actingAs("c4", auth.RoleCashier, "key-cashier")
		system := actingAs("c4", "", "")
		s := []seeded{
			seed(t, f, newEvent(t, cust, "claims.ClaimCreated", "clm_A", 1, claimCreatedData("clm_A", "cus_1")), t0, t0.Add(ms(100))),
			seed(t, f, newEvent(t, agent, "claims.ClaimAssigned", "clm_A", 2, map[string]any{"claim_id": "clm_A", "agent_id": "key-agent"}), t0.Add(sec(1)), t0.Add(sec(1)+ms(200))),
			seed(t, f, newEvent(t, agent, "claims.ClaimStarted", "clm_A", 3, map[string]any{"claim_id": "clm_A"}), t0.Add(sec(2)), t0.Add(sec(2)+ms(300))),
			seed(t, f, newEvent(t, saga, "orders.OrderConfirmed", "ord_1", 1, orderConfirmedData("ord_1", "cus_1")), t0.Add(sec(3)), t0.Add(sec(3)+ms(400))),
			seed(t, f, newEvent(t, till, "sales.SaleCompleted", "sal_1", 1, saleCompletedData("sal_1")), t0.Add(sec(4)), t0.Add(sec(4)+ms(500))),
			seed(t, f, newEvent(t, system, "inventory.StockChanged", "prd_1@loc_1", 7, stockChangedData("prd_1", "loc_1", 9)), t0.Add(sec(5)), t0.Add(sec(5)+ms(600))),
			seed(t, f, newEvent(t, actingAs("c5", auth.RoleService, "saga"), "orders.OrderCancelled", "ord_1", 2, orderCancelledData("ord_1", "cus_1")), t0.Add(sec(6)), t0.Add(sec(6)+ms(700))),
			seed(t, f, newEvent(t, actingAs("c6", auth.RoleManager, "key-manager"), "sales.SaleReturned", "sal_1", 2, saleReturnedData("sal_1")), t0.Add(sec(7)), t0.Add(sec(7)+ms(800))),
			// Audited two hours ago: outside the latency window.
			seed(t, f, newEvent(t, cust, "claims.ClaimCreated", "clm_B", 1, claimCreatedData("clm_B", "cus_2")), t0.Add(-2*time.Hour), t0.Add(-2*time.Hour+sec(5))),
			// The producer's clock runs two seconds ahead of ours.
			seed(t, f, newEvent(t, system, "inventory.StockChanged", "prd_2@loc_1", 3, stockChangedData("prd_2", "loc_1", 4)), t0.Add(sec(10)), t0.Add(sec(8))),
		}

		// A redelivery, later, changes nothing.
		f.clock.Set(t0.Add(sec(30)))
		must(t, f.consumer.Handle(ctx, s[0].env))

		f.clock.Set(t0.Add(time.Minute))
		st, err := f.svc.Stats(ctx)
		must(t, err)
		want := Stats{
			Total:    10,
			ByStream: map[string]int64{"claims": 4, "orders": 2, "sales": 2, "inventory": 2},
			ByEventType: map[string]int64{"claims.ClaimCreated": 2, "claims.ClaimAssigned": 1, "claims.ClaimStarted": 1,
				"orders.OrderConfirmed": 1, "orders.OrderCancelled": 1, "sales.SaleCompleted": 1, "sales.SaleReturned": 1,
				"inventory.StockChanged": 2},
			// In the window: 0 100 200 … 800 ms; nearest rank of 9 values.
			Latency: Latency{Window: "1h0m0s", Since: t0.Add(time.Minute - time.Hour), Count: 9, P50Ms: 400, P95Ms: 800, MaxMs: 800},
		}
		if !reflect.DeepEqual(st, want) {
			t.Fatalf("stats\n got %+v\nwant %+v", st, want)
		}

		// Every field of one entry, the redelivered one.
		res, err := f.svc.ListEntries(ctx, Filter{AggregateID: "clm_A"})
		must(t, err)
		if res.Total != 3 || len(res.Items) != 3 {
			t.Fatalf("clm_A: %+v", res)
		}
		e := res.Items[0]
		src := s[0].env
		if e.EventID != src.EventID || e.EventType != "claims.ClaimCreated" || e.Stream != "claims" || e.AggregateID != "clm_A" ||
			e.AggregateVersion != 1 || e.Actor != "customer:cus_1" || e.CorrelationID != "c1" || !e.OccurredAt.Equal(t0) ||
			!e.AuditedAt.Equal(t0.Add(ms(100))) || e.LatencyMs != 100 || !sameJSON(t, e.Data, src.Data) {
			t.Fatalf("entry %+v\nfrom %+v", e, src)
		}
		for i, v := range []int64{1, 2, 3} {
			if res.Items[i].AggregateVersion != v {
				t.Errorf("clm_A in order: item %d is version %d", i, res.Items[i].AggregateVersion)
			}
		}
		all, err := f.svc.ListEntries(ctx, Filter{Page: page.Request{PerPage: 100}})
		must(t, err)
		for _, e := range all.Items {
			for _, sd := range s {
				if sd.env.EventID == e.EventID && (e.LatencyMs != sd.latency || e.Actor != sd.env.Actor || e.CorrelationID != sd.env.CorrelationID) {
					t.Errorf("%s: latency %d actor %q corr %q, want %d %q %q", e.EventType, e.LatencyMs, e.Actor, e.CorrelationID,
						sd.latency, sd.env.Actor, sd.env.CorrelationID)
				}
			}
		}
		if all.Items[0].AggregateID != "clm_B" || all.Items[9].AggregateID != "prd_2@loc_1" {
			t.Errorf("oldest first: %s … %s", all.Items[0].AggregateID, all.Items[9].AggregateID)
		}

		eastern := time.FixedZone("EDT", -4*3600)
		cases := []struct {
			name  string
			f     Filter
			total int64
			items int
			first string // aggregate id of the first item, when set
		}{
			{"everything, first page", Filter{}, 10, 10, "clm_B"},
			{"paged", Filter{Page: page.Request{Page: 3, PerPage: 4}}, 10, 2, ""},
			{"newest first", Filter{Newest: true}, 10, 10, "prd_2@loc_1"},
			{"full event type", Filter{EventType: "claims.ClaimCreated"}, 2, 2, "clm_B"},
			{"event name only", Filter{EventType: "ClaimCreated"}, 2, 2, "clm_B"},
			{"name of another stream", Filter{EventType: "orders.ClaimCreated"}, 0, 0, ""},
			{"name across streams", Filter{EventType: "StockChanged"}, 2, 2, "prd_1@loc_1"},
			{"correlation", Filter{CorrelationID: "c4"}, 3, 3, "sal_1"},
			{"stream", Filter{Stream: "sales"}, 2, 2, "sal_1"},
			{"actor", Filter{Actor: "cashier:key-cashier"}, 1, 1, "sal_1"},
			{"system actor has none", Filter{Actor: "agent:nobody"}, 0, 0, ""},
			{"from inclusive, to exclusive", Filter{From: t0.Add(sec(3)), To: t0.Add(sec(6))}, 3, 3, "ord_1"},
			{"bounds in another zone", Filter{From: t0.Add(sec(3)).In(eastern), To: t0.Add(sec(6)).In(eastern)}, 3, 3, "ord_1"},
			{"sub-second bound", Filter{From: t0.Add(ms(2999)), To: t0.Add(ms(3001))}, 1, 1, "ord_1"},
			{"from only", Filter{From: t0.Add(sec(6))}, 3, 3, "ord_1"},
			{"to only", Filter{To: t0}, 1, 1, "clm_B"},
			{"aggregate and type", Filter{AggregateID: "ord_1", EventType: "OrderCancelled"}, 1, 1, "ord_1"},
			{"quote is literal", Filter{AggregateID: "x' OR '1'='1"}, 0, 0, ""},
		}
		for _, c := range cases {
			res, err := f.svc.ListEntries(ctx, c.f)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if res.Total != c.total || len(res.Items) != c.items {
				t.Errorf("%s: total %d items %d, want %d and %d", c.name, res.Total, len(res.Items), c.total, c.items)
				continue
			}
			if c.first != "" && res.Items[0].AggregateID != c.first {
				t.Errorf("%s: first item %s, want %s", c.name, res.Items[0].AggregateID, c.first)
			}
		}
	})

	t.Run("invalid filters", func(t *testing.T) {
		f := newFixture(t)
		cases := []struct {
			name  string
			f     Filter
			field string
		}{
			{"event type", Filter{EventType: "not a type!"}, "event_type"},
			{"stream", Filter{Stream: "Sales Stream"}, "stream"},
			{"to before from", Filter{From: t0, To: t0.Add(-time.Second)}, "to"},
			{"empty range", Filter{From: t0, To: t0}, "to"},
			{"aggregate id", Filter{AggregateID: strings.Repeat("a", 201)}, "aggregate_id"},
			{"correlation id", Filter{CorrelationID: strings.Repeat("c", 129)}, "correlation_id"},
		}
		for _, c := range cases {
			_, err := f.svc.ListEntries(ctx, c.f)
			if !errs.IsKind(err, errs.Invalid) || !hasField(err, c.field) {
				t.Errorf("%s: got %v (fields %v), want Invalid naming %q", c.name, err, errs.Fields(err), c.field)
			}
		}
	})

	t.Run("empty trail", func(t *testing.T) {
		f := newFixture(t)
		f.clock.Set(t0)
		st, err := f.svc.Stats(ctx)
		must(t, err)
		want := Stats{ByStream: map[string]int64{}, ByEventType: map[string]int64{},
			Latency: Latency{Window: "1h0m0s", Since: t0.Add(-time.Hour)}}
		if !reflect.DeepEqual(st, want) {
			t.Fatalf("empty stats: %+v", st)
		}
		res, err := f.svc.ListEntries(ctx, Filter{})
		must(t, err)
		if res.Total != 0 || len(res.Items) != 0 {
			t.Fatalf("empty list: %+v", res)
		}
	})
}
