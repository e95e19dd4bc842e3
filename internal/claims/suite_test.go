package claims

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
)

// testClock is a clock the test moves by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// suiteEnv is one Service under test, with what the suite needs around it.
type suiteEnv struct {
	svc Service
	// settle waits until the read model has caught up with the store.
	settle func(t testing.TB)
	clock  *testClock
}

// TestService runs one suite against every adapter of Service: the local
// implementation on each database engine, and Client over HTTP. The same
// assertions hold for all, errors included.
func TestService(t *testing.T) {
	t.Parallel()
	local := func(b testkit.Backend) func(t *testing.T) suiteEnv {
		return func(t *testing.T) suiteEnv {
			clock := newTestClock()
			st := newStack(t, stackConfig{backend: b, now: clock.Now})
			return suiteEnv{svc: st.svc, settle: st.settle, clock: clock}
		}
	}
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		t.Parallel()
		runSuite(t, local(b))
	})
	t.Run("client", func(t *testing.T) {
		t.Parallel()
		runSuite(t, func(t *testing.T) suiteEnv {
			clock := newTestClock()
			st := newStack(t, stackConfig{backend: testkit.SQLite, now: clock.Now})
			return suiteEnv{svc: NewClient(st.h.Client(Name, st.h.Keys.Agent)), settle: st.settle, clock: clock}
		})
	})
}

func runSuite(t *testing.T, newEnv func(t *testing.T) suiteEnv) {
	ctx := context.Background()

	t.Run("lifecycle", func(t *testing.T) {
		env := newEnv(t)
		svc := env.svc
		c, err := svc.CreateClaim(ctx, NewClaim{CustomerID: "cus_1", ClaimType: DeliveryIssue, Description: " Parcel never came ", OrderID: "ord_9"})
		must(t, err)
		if !strings.HasPrefix(c.ClaimID, "clm_") || c.Status != StatusCreated || c.Version != 1 || c.Description != "Parcel never came" || c.OrderID != "ord_9" {
			t.Fatalf("created %+v", c)
		}
		steps := []func() (Claim, error){
			func() (Claim, error) { return svc.AssignClaim(ctx, c.ClaimID, Assignment{AgentID: "agt_1"}) },
			func() (Claim, error) { return svc.StartClaim(ctx, c.ClaimID) },
			func() (Claim, error) { return svc.ResolveClaim(ctx, c.ClaimID, Resolution{Resolution: "Refunded"}) },
			func() (Claim, error) { return svc.CloseClaim(ctx, c.ClaimID) },
		}
		wantStatus := []Status{StatusAssigned, StatusInProgress, StatusResolved, StatusClosed}
		for i, step := range steps {
			env.clock.Advance(time.Minute)
			if c, err = step(); err != nil || c.Status != wantStatus[i] || c.Version != int64(i+2) {
				t.Fatalf("step %d: %+v %v", i, c, err)
			}
		}
		replayed, err := svc.ReplayClaim(ctx, c.ClaimID)
		must(t, err)
		if !sameClaim(&replayed, &c) {
			t.Fatalf("replay %s\nwant   %s", asJSON(replayed), asJSON(c))
		}
		evs, err := svc.ClaimEvents(ctx, c.ClaimID)
		must(t, err)
		if len(evs) != 5 || evs[4].EventType != EventClaimClosed || !evs[4].OccurredAt.Equal(env.clock.Now().Truncate(time.Millisecond)) {
			t.Fatalf("events %s", asJSON(evs))
		}
		env.settle(t)
		read, err := svc.GetClaim(ctx, c.ClaimID)
		must(t, err)
		if !sameClaim(&read, &c) || read.ResolvedAt == nil || !read.ResolvedAt.Equal(c.CreatedAt.Add(3*time.Minute)) {
			t.Fatalf("read model %s\nwant       %s", asJSON(read), asJSON(c))
		}
	})

	t.Run("invalid input writes nothing", func(t *testing.T) {
		env := newEnv(t)
		svc := env.svc
		c, err := svc.CreateClaim(ctx, NewClaim{CustomerID: "cus_1", ClaimType: BillingError, Description: "twice"})
		must(t, err)
		long := strings.Repeat("x", MaxDescription+1)
		cases := []struct {
			name  string
			call  func() error
			field string
		}{
			{"unknown claim type", func() error {
				_, err := svc.CreateClaim(ctx, NewClaim{CustomerID: "cus_1", ClaimType: "refund_me", Description: "x"})
				return err
			}, "claim_type"},
			{"empty description", func() error {
				_, err := svc.CreateClaim(ctx, NewClaim{CustomerID: "cus_1", ClaimType: BillingError, Description: "  "})
				return err
			}, "description"},
			{"long description", func() error {
				_, err := svc.CreateClaim(ctx, NewClaim{CustomerID: "cus_1", ClaimType: BillingError, Description: long})
				return err
			}, "description"},
			{"no customer", func() error {
				_, err := svc.CreateClaim(ctx, NewClaim{ClaimType: BillingError, Description: "x"})
				return err
			}, "customer_id"},
			{"bad enrichment", func() error {
				_, err := svc.CreateClaim(ctx, NewClaim{CustomerID: "cus_1", ClaimType: BillingError, Description: "x", Enrichment: &Enrichment{Status: "later"}})
				return err
			}, "enrichment.status"},
			{"empty agent", func() error { _, err := svc.AssignClaim(ctx, c.ClaimID, Assignment{AgentID: " "}); return err }, "agent_id"},
			{"empty resolution", func() error { _, err := svc.ResolveClaim(ctx, c.ClaimID, Resolution{}); return err }, "resolution"},
			{"bad enrichment status", func() error { _, err := svc.EnrichClaim(ctx, c.ClaimID, Enrichment{Status: "done"}); return err }, "status"},
		}
		for _, tc := range cases {
			err := tc.call()
			if !errs.IsKind(err, errs.Invalid) || !hasField(err, tc.field) {
				t.Errorf("%s: %v (fields %v), want invalid naming %s", tc.name, err, errs.Fields(err), tc.field)
			}
		}
		evs, err := svc.ClaimEvents(ctx, c.ClaimID)
		must(t, err)
		if len(evs) != 1 {
			t.Fatalf("invalid commands wrote events: %d", len(evs))
		}
		env.settle(t)
		res, err := svc.ListClaims(ctx, Filter{})
		must(t, err)
		if res.Total != 1 {
			t.Fatalf("invalid creates wrote claims: %d", res.Total)
		}
	})

	t.Run("unknown claim", func(t *testing.T) {
		svc := newEnv(t).svc
		calls := map[string]func() error{
			"assign":  func() error { _, err := svc.AssignClaim(ctx, "clm_nope", Assignment{AgentID: "a"}); return err },
			"start":   func() error { _, err := svc.StartClaim(ctx, "clm_nope"); return err },
			"resolve": func() error { _, err := svc.ResolveClaim(ctx, "clm_nope", Resolution{Resolution: "r"}); return err },
			"close":   func() error { _, err := svc.CloseClaim(ctx, "clm_nope"); return err },
			"enrich": func() error {
				_, err := svc.EnrichClaim(ctx, "clm_nope", Enrichment{Status: EnrichmentPending})
				return err
			},
			"events": func() error { _, err := svc.ClaimEvents(ctx, "clm_nope"); return err },
			"replay": func() error { _, err := svc.ReplayClaim(ctx, "clm_nope"); return err },
			"get":    func() error { _, err := svc.GetClaim(ctx, "clm_nope"); return err },
		}
		for name, call := range calls {
			if err := call(); !errs.IsKind(err, errs.NotFound) {
				t.Errorf("%s: %v, want not found", name, err)
			}
		}
	})

	t.Run("out of order is a conflict", func(t *testing.T) {
		svc := newEnv(t).svc
		c, err := svc.CreateClaim(ctx, NewClaim{CustomerID: "cus_1", ClaimType: ProductDefect, Description: "cracked"})
		must(t, err)
		bad := map[string]func() error{
			"start":   func() error { _, err := svc.StartClaim(ctx, c.ClaimID); return err },
			"resolve": func() error { _, err := svc.ResolveClaim(ctx, c.ClaimID, Resolution{Resolution: "r"}); return err },
			"close":   func() error { _, err := svc.CloseClaim(ctx, c.ClaimID); return err },
		}
		for name, call := range bad {
			if err := call(); !errs.IsKind(err, errs.Conflict) {
				t.Errorf("%s on a created claim: %v, want conflict", name, err)
			}
		}
		evs, err := svc.ClaimEvents(ctx, c.ClaimID)
		must(t, err)
		if len(evs) != 1 {
			t.Fatalf("refused commands wrote %d events", len(evs)-1)
		}
	})

	t.Run("create with a claim id is idempotent", func(t *testing.T) {
		svc := newEnv(t).svc
		in := NewClaim{ClaimID: "clm_from-order-42", CustomerID: "cus_1", ClaimType: DeliveryIssue, Description: "late", OrderID: "ord_42"}
		first, err := svc.CreateClaim(ctx, in)
		must(t, err)
		again, err := svc.CreateClaim(ctx, in)
		must(t, err)
		if again.ClaimID != "clm_from-order-42" || !sameClaim(&first, &again) {
			t.Fatalf("repeat %s, first %s", asJSON(again), asJSON(first))
		}
		in.Description = "something else"
		if _, err := svc.CreateClaim(ctx, in); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("same id, other content: %v, want conflict", err)
		}
		evs, err := svc.ClaimEvents(ctx, "clm_from-order-42")
		must(t, err)
		if len(evs) != 1 {
			t.Fatalf("%d events, want 1", len(evs))
		}
	})

	t.Run("enrichment", func(t *testing.T) {
		env := newEnv(t)
		svc := env.svc
		c, err := svc.CreateClaim(ctx, NewClaim{CustomerID: "cus_1", ClaimType: DeliveryIssue, Description: "late", OrderID: "ord_1",
			Enrichment: &Enrichment{Status: EnrichmentPending, Customer: &CustomerContact{Email: "a@example.com"}}})
		must(t, err)
		full := Enrichment{Status: EnrichmentComplete, Customer: &CustomerContact{Name: "Ann", Email: "a@example.com"},
			Order: &OrderContext{OrderID: "ord_1", Status: "delivered", TotalCents: 2598, Currency: "CAD",
				Lines: []OrderLine{{ProductID: "prd_1", SKU: "K-1", Name: "Kettle", Quantity: 2, UnitPriceCents: 1299}}}}
		got, err := svc.EnrichClaim(ctx, c.ClaimID, full)
		must(t, err)
		if got.Version != 2 || got.Status != StatusCreated || got.Enrichment == nil || got.Enrichment.Status != EnrichmentComplete || len(got.Enrichment.Order.Lines) != 1 {
			t.Fatalf("enriched %s", asJSON(got))
		}
		if _, err := svc.EnrichClaim(ctx, c.ClaimID, Enrichment{Status: EnrichmentPending}); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("enrich after complete: %v, want conflict", err)
		}
		env.settle(t)
		read, err := svc.GetClaim(ctx, c.ClaimID)
		must(t, err)
		if !sameClaim(&read, &got) {
			t.Fatalf("read model %s\nwant       %s", asJSON(read), asJSON(got))
		}
	})

	t.Run("list filters and paging", func(t *testing.T) {
		env := newEnv(t)
		svc := env.svc
		var ids []string
		for i := 0; i < 12; i++ {
			env.clock.Advance(time.Second)
			c, err := svc.CreateClaim(ctx, NewClaim{CustomerID: fmt.Sprintf("cus_%d", i%3), ClaimType: ClaimTypes[i%4], Description: fmt.Sprintf("claim %d", i)})
			must(t, err)
			ids = append(ids, c.ClaimID)
			if i%2 == 0 {
				_, err = svc.AssignClaim(ctx, c.ClaimID, Assignment{AgentID: fmt.Sprintf("agt_%d", i%4)})
				must(t, err)
			}
		}
		env.settle(t)
		cases := []struct {
			name  string
			f     Filter
			total int64
			items int
		}{
			{"all, first page", Filter{Page: page.Request{PerPage: 5}}, 12, 5},
			{"last page", Filter{Page: page.Request{Page: 3, PerPage: 5}}, 12, 2},
			{"by customer", Filter{CustomerID: "cus_1"}, 4, 4},
			{"by status", Filter{Status: StatusAssigned}, 6, 6},
			{"by agent", Filter{AgentID: "agt_0"}, 3, 3},
			{"by type", Filter{ClaimType: BillingError}, 3, 3},
			{"combined", Filter{Status: StatusCreated, CustomerID: "cus_0"}, 2, 2},
			{"no match", Filter{CustomerID: "cus_nobody"}, 0, 0},
		}
		for _, c := range cases {
			res, err := svc.ListClaims(ctx, c.f)
			if err != nil || res.Total != c.total || len(res.Items) != c.items {
				t.Errorf("%s: total %d items %d err %v, want %d and %d", c.name, res.Total, len(res.Items), err, c.total, c.items)
			}
		}
		res, err := svc.ListClaims(ctx, Filter{Page: page.Request{PerPage: 3}})
		must(t, err)
		if res.Items[0].ClaimID != ids[11] || res.Items[2].ClaimID != ids[9] {
			t.Fatalf("not newest first: %s", asJSON(res.Items))
		}
		for _, f := range []Filter{{Status: "lost"}, {ClaimType: "other"}} {
			if _, err := svc.ListClaims(ctx, f); !errs.IsKind(err, errs.Invalid) {
				t.Errorf("filter %+v: %v, want invalid", f, err)
			}
		}
	})

	t.Run("stats", func(t *testing.T) {
		env := newEnv(t)
		svc := env.svc
		run := func(customer string, typ ClaimType, agent string, resolveAfter time.Duration, steps int) {
			c, err := svc.CreateClaim(ctx, NewClaim{CustomerID: customer, ClaimType: typ, Description: "d"})
			must(t, err)
			if steps >= 1 {
				_, err = svc.AssignClaim(ctx, c.ClaimID, Assignment{AgentID: agent})
				must(t, err)
			}
			if steps >= 2 {
				_, err = svc.StartClaim(ctx, c.ClaimID)
				must(t, err)
			}
			if steps >= 3 {
				env.clock.Advance(resolveAfter)
				_, err = svc.ResolveClaim(ctx, c.ClaimID, Resolution{Resolution: "done"})
				must(t, err)
			}
			if steps >= 4 {
				_, err = svc.CloseClaim(ctx, c.ClaimID)
				must(t, err)
			}
		}
		run("cus_a", ProductDefect, "agt_1", time.Minute, 4)
		run("cus_a", ProductDefect, "agt_1", 2*time.Minute, 3)
		run("cus_a", BillingError, "agt_2", 0, 2)
		run("cus_b", BillingError, "agt_2", 0, 1)
		run("cus_c", ServiceComplaint, "", 0, 0)
		env.settle(t)
		st, err := svc.Stats(ctx, StatsQuery{TopCustomers: 2})
		must(t, err)
		wantStatus := map[Status]int64{StatusCreated: 1, StatusAssigned: 1, StatusInProgress: 1, StatusResolved: 1, StatusClosed: 1}
		wantType := map[ClaimType]int64{ProductDefect: 2, BillingError: 2, ServiceComplaint: 1, DeliveryIssue: 0}
		if st.Total != 5 || fmt.Sprint(st.ByStatus) != fmt.Sprint(wantStatus) || fmt.Sprint(st.ByType) != fmt.Sprint(wantType) {
			t.Errorf("counts %s", asJSON(st))
		}
		if len(st.PerAgent) != 2 || st.PerAgent[0].AgentID != "agt_1" || st.PerAgent[0].Total != 2 || st.PerAgent[0].ByStatus[StatusClosed] != 1 ||
			st.PerAgent[1].Total != 2 || st.PerAgent[1].ByStatus[StatusInProgress] != 1 {
			t.Errorf("per agent %s", asJSON(st.PerAgent))
		}
		if len(st.TopCustomers) != 2 || st.TopCustomers[0] != (CustomerCount{"cus_a", 3}) || st.TopCustomers[1] != (CustomerCount{"cus_b", 1}) {
			t.Errorf("top customers %s", asJSON(st.TopCustomers))
		}
		if st.Resolved != 2 || st.AvgResolveSeconds != 90 {
			t.Errorf("resolved %d, mean %v s, want 2 and 90", st.Resolved, st.AvgResolveSeconds)
		}
		if _, err := svc.Stats(ctx, StatsQuery{TopCustomers: 101}); !errs.IsKind(err, errs.Invalid) || !hasField(err, "top") {
			t.Errorf("top 101: %v, want invalid naming top", err)
		}
	})
}
