package integration

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/claims"
	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// world is one integration context under test with real dependencies:
// claims on the backend (SQL event store), order and customer each behind
// its own HTTP server that the test can stop and restart, reached through
// their Clients as in the fleet.
type world struct {
	// svc is the Service under test (local, or Client over HTTP); local
	// is the in-process service behind it, which the loops run on.
	svc   Service
	local Local
	reg   *prometheus.Registry

	claims       claims.Service
	claimStore   claims.EventStore
	orders       order.Service
	customers    customer.Service
	orderHost    *host
	customerHost *host

	ann, bob           customer.Customer
	annOrder, bobOrder order.Order

	// as returns the Service acting for a caller, with the context to
	// call it with: a principal in the context locally, credentials on
	// the wire for the Client.
	as func(p auth.Principal) (Service, context.Context)
}

func (w *world) asCustomer(c customer.Customer) (Service, context.Context) {
	return w.as(auth.Principal{Role: auth.RoleCustomer, Subject: c.ID, Name: c.Email})
}

func (w *world) asAgent() (Service, context.Context) {
	return w.as(auth.Principal{Role: auth.RoleAgent, Subject: "key-agent", Name: "test agent"})
}

// newWorld builds a world; viaClient puts the integration context behind
// HTTP and tests it through its Client. Order and customer keep their data
// on SQLite whatever the backend: what runs on each backend is this
// context's own store and the claims it writes, and the PostgreSQL server
// is shared with other packages' tests.
func newWorld(t *testing.T, b testkit.Backend, viaClient bool) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{reg: prometheus.NewRegistry()}
	w.claims, w.claimStore = newClaims(t, b)
	w.orders = newOrders(t, testkit.SQLite)
	w.customers = newCustomers(t, testkit.SQLite)
	orders, customers := w.orders, w.customers
	w.orderHost = newHost(t, order.Name, func(s *httpx.Server) { order.Routes(s.API, orders) })
	w.customerHost = newHost(t, customer.Name, func(s *httpx.Server) { customer.Routes(s.API, customers) })
	w.local = New(testkit.OpenDB(t, b, Name, Migrations), Deps{
		Claims:    w.claims,
		Orders:    order.NewClient(w.orderHost.client()),
		Customers: customer.NewClient(w.customerHost.client()),
	}, Options{Registerer: w.reg, CallTimeout: time.Second, Logger: testkit.Logger()})

	w.ann = register(t, w.customers, "Ann", testkit.ID("ann")+"@example.com", "+1 514-555-0101")
	w.bob = register(t, w.customers, "Bob", testkit.ID("bob")+"@example.com", "+1 514-555-0102")
	w.annOrder = placeOrder(t, w.orders, w.ann.ID)
	w.bobOrder = placeOrder(t, w.orders, w.bob.ID)

	if !viaClient {
		w.svc = w.local
		w.as = func(p auth.Principal) (Service, context.Context) { return w.local, auth.WithPrincipal(ctx, p) }
		return w
	}
	h := testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, w.local) })
	w.svc = NewClient(h.Client(Name, h.Keys.Agent))
	w.as = func(p auth.Principal) (Service, context.Context) {
		switch p.Role {
		case auth.RoleCustomer:
			token, err := h.Tokens.Issue(p.Subject, p.Name)
			must(t, err)
			hc := &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}
			return NewClient(httpx.NewClient(httpx.ClientConfig{Context: Name, BaseURL: h.URL, HTTP: hc, Retries: -1})), ctx
		case auth.RoleAgent:
			return NewClient(h.Client(Name, h.Keys.Agent)), ctx
		}
		t.Fatalf("no credentials for role %s", p.Role)
		return nil, nil
	}
	return w
}

// runMonitor probes every 50 ms until the test ends.
func (w *world) runMonitor(t *testing.T) {
	runLoop(t, func(ctx context.Context) { RunMonitor(ctx, w.local, 50*time.Millisecond, testkit.Logger()) })
}

// runEnrichment runs the enrichment loop until the test ends. Its tick
// is long on purpose: a recovery must start a round through the
// monitor's signal, not wait for the tick.
func (w *world) runEnrichment(t *testing.T) {
	runLoop(t, func(ctx context.Context) { RunEnrichment(ctx, w.local, time.Minute, testkit.Logger()) })
}

// waitMode waits until the status reports mode with the given backlog.
func (w *world) waitMode(t *testing.T, mode Mode, pending int64) Status {
	t.Helper()
	var st Status
	waitFor(t, 45*time.Second, func() (bool, string) {
		var err error
		st, err = w.svc.Status(context.Background())
		return err == nil && st.Mode == mode && st.PendingEnrichments == pending, asJSON(st) + " " + errString(err)
	})
	return st
}

// replay reads a claim back from the claims event store.
func (w *world) replay(t *testing.T, id string) claims.Claim {
	t.Helper()
	c, err := w.claims.ReplayClaim(context.Background(), id)
	must(t, err)
	return c
}

// row reads the integration context's record of a claim's enrichment.
func (w *world) row(t *testing.T, claimID string) enrichmentRow {
	t.Helper()
	r, ok, err := w.local.(*service).store.get(context.Background(), claimID)
	must(t, err)
	if !ok {
		t.Fatalf("no enrichment record for claim %s", claimID)
	}
	return r
}

// TestService runs one suite against every adapter of Service: the local
// implementation on each database engine, and Client over HTTP. The same
// assertions hold for all, errors included.
func TestService(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		t.Parallel()
		runSuite(t, func(t *testing.T) *world { return newWorld(t, b, false) })
	})
	t.Run("client", func(t *testing.T) {
		t.Parallel()
		runSuite(t, func(t *testing.T) *world { return newWorld(t, testkit.SQLite, true) })
	})
}

// checkComplete asserts a claim carries the whole enrichment of o and c.
func checkComplete(t *testing.T, cl claims.Claim, o order.Order, c customer.Customer) {
	t.Helper()
	en := cl.Enrichment
	if en == nil || en.Status != claims.EnrichmentComplete || en.Order == nil || en.Customer == nil {
		t.Fatalf("enrichment not complete: %s", asJSON(cl))
	}
	if en.Order.OrderID != o.ID || en.Order.Status != "confirmed" || en.Order.TotalCents != o.TotalCents || en.Order.Currency != "CAD" ||
		len(en.Order.Lines) != 2 || en.Order.Lines[0].ProductID != "prd_a" || en.Order.Lines[0].Quantity != 2 ||
		en.Order.Lines[0].UnitPriceCents != 1899 || en.Order.Lines[1].Name != "Mug" {
		t.Fatalf("order context %s, want order %s", asJSON(en.Order), asJSON(o))
	}
	if en.Customer.Email != c.Email || en.Customer.Phone != c.Phone || en.Customer.Name != c.FirstName+" "+c.LastName {
		t.Fatalf("contact %s, want %s", asJSON(en.Customer), asJSON(c))
	}
}

func runSuite(t *testing.T, newWorld func(t *testing.T) *world) {
	t.Run("full mode", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		svc, ctx := w.asCustomer(w.ann)
		res, err := svc.CreateClaimFromOrder(ctx, ClaimFromOrder{OrderID: w.annOrder.ID, ClaimType: claims.ProductDefect,
			Description: "  The mug came cracked  ", ProductID: "prd_b"})
		must(t, err)
		if res.Mode != ModeFull || res.Enrichment != claims.EnrichmentComplete || res.ClaimID != res.Claim.ClaimID ||
			res.Claim.CustomerID != w.ann.ID || res.Claim.OrderID != w.annOrder.ID || res.Claim.ProductID != "prd_b" ||
			res.Claim.Description != "The mug came cracked" || res.Claim.Status != claims.StatusCreated {
			t.Fatalf("result %s", asJSON(res))
		}
		checkComplete(t, res.Claim, w.annOrder, w.ann)
		// The claims context holds it as answered: one event, enriched.
		stored := w.replay(t, res.ClaimID)
		checkComplete(t, stored, w.annOrder, w.ann)
		if stored.Version != 1 || enrichedEvents(t, w.claims, res.ClaimID) != 0 {
			t.Fatalf("stored %s", asJSON(stored))
		}

		// Staff name no claimant: the order's customer is.
		agent, actx := w.asAgent()
		res, err = agent.CreateClaimFromOrder(actx, ClaimFromOrder{OrderID: w.bobOrder.ID, ClaimType: claims.DeliveryIssue, Description: "Late"})
		must(t, err)
		if res.Mode != ModeFull || res.Claim.CustomerID != w.bob.ID {
			t.Fatalf("agent's claim %s", asJSON(res))
		}
		checkComplete(t, res.Claim, w.bobOrder, w.bob)

		st, err := w.svc.Status(context.Background())
		must(t, err)
		if st.Mode != ModeFull || st.PendingEnrichments != 0 || st.Dependencies.Order.Status != DependencyUp ||
			st.Dependencies.Customer.Status != DependencyUp || st.Dependencies.Order.LastOK == nil || st.CheckedAt == nil {
			t.Fatalf("status %s", asJSON(st))
		}
		if got := metricValue(t, w.reg, "integration_claims_total", "mode", "full"); got != 2 {
			t.Fatalf("integration_claims_total{full} = %v", got)
		}
	})

	t.Run("refusals write nothing", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		bob, bctx := w.asCustomer(w.bob)
		ann, actx := w.asCustomer(w.ann)
		agent, gctx := w.asAgent()
		ok := func(o order.Order) ClaimFromOrder {
			return ClaimFromOrder{OrderID: o.ID, ClaimType: claims.BillingError, Description: "Charged twice"}
		}
		with := func(o order.Order, edit func(*ClaimFromOrder)) ClaimFromOrder { in := ok(o); edit(&in); return in }
		cases := []struct {
			name  string
			svc   Service
			ctx   context.Context
			in    ClaimFromOrder
			kind  *errs.Kind
			field string
		}{
			{"another customer's order", bob, bctx, ok(w.annOrder), errs.Forbidden, ""},
			{"naming another claimant", ann, actx, with(w.annOrder, func(in *ClaimFromOrder) { in.CustomerID = w.bob.ID }), errs.Forbidden, ""},
			{"unknown order (customer)", ann, actx, with(w.annOrder, func(in *ClaimFromOrder) { in.OrderID = "ord_nope" }), errs.NotFound, ""},
			{"unknown order (agent)", agent, gctx, with(w.annOrder, func(in *ClaimFromOrder) { in.OrderID = "ord_nope" }), errs.NotFound, ""},
			{"claimant is not the order's customer", agent, gctx, with(w.annOrder, func(in *ClaimFromOrder) { in.CustomerID = w.bob.ID }), errs.Invalid, "customer_id"},
			{"product not in the order", ann, actx, with(w.annOrder, func(in *ClaimFromOrder) { in.ProductID = "prd_z" }), errs.Invalid, "product_id"},
			{"unknown claim type", ann, actx, with(w.annOrder, func(in *ClaimFromOrder) { in.ClaimType = "refund_me" }), errs.Invalid, "claim_type"},
			{"empty description", ann, actx, with(w.annOrder, func(in *ClaimFromOrder) { in.Description = "   " }), errs.Invalid, "description"},
			{"long description", ann, actx, with(w.annOrder, func(in *ClaimFromOrder) { in.Description = strings.Repeat("x", claims.MaxDescription+1) }), errs.Invalid, "description"},
			{"no order", agent, gctx, with(w.annOrder, func(in *ClaimFromOrder) { in.OrderID = "" }), errs.Invalid, "order_id"},
		}
		for _, tc := range cases {
			_, err := tc.svc.CreateClaimFromOrder(tc.ctx, tc.in)
			if !errs.IsKind(err, tc.kind) || (tc.field != "" && !hasField(err, tc.field)) {
				t.Errorf("%s: %v (fields %v), want %s naming %q", tc.name, err, errs.Fields(err), tc.kind, tc.field)
			}
		}
		if n := createdClaims(t, w.claimStore); n != 0 {
			t.Fatalf("refused requests created %d claims", n)
		}
		st, err := w.svc.Status(context.Background())
		must(t, err)
		if st.Mode != ModeFull || st.PendingEnrichments != 0 {
			t.Fatalf("status after refusals %s", asJSON(st))
		}
	})

	t.Run("degraded while order is down, completed once when it returns", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.runMonitor(t)
		w.runEnrichment(t)
		w.waitMode(t, ModeFull, 0)
		w.orderHost.stop()

		ann, actx := w.asCustomer(w.ann)
		res, err := ann.CreateClaimFromOrder(actx, ClaimFromOrder{OrderID: w.annOrder.ID, ClaimType: claims.DeliveryIssue, Description: "Never came"})
		must(t, err)
		if res.Mode != ModeDegraded || res.Enrichment != claims.EnrichmentPending || res.Claim.CustomerID != w.ann.ID {
			t.Fatalf("degraded result %s", asJSON(res))
		}
		// The claim exists in claims, pending, with what could be had: the
		// contact (customer answers), not the order.
		stored := w.replay(t, res.ClaimID)
		if stored.Enrichment == nil || stored.Enrichment.Status != claims.EnrichmentPending || stored.Enrichment.Order != nil ||
			stored.Enrichment.Customer == nil || stored.Enrichment.Customer.Email != w.ann.Email || stored.OrderID != w.annOrder.ID {
			t.Fatalf("stored degraded claim %s", asJSON(stored))
		}

		// Staff must name the claimant the order cannot name now, and the
		// customer context must know them.
		agent, gctx := w.asAgent()
		_, err = agent.CreateClaimFromOrder(gctx, ClaimFromOrder{OrderID: w.bobOrder.ID, ClaimType: claims.BillingError, Description: "x"})
		if !errs.IsKind(err, errs.Invalid) || !hasField(err, "customer_id") {
			t.Fatalf("staff without claimant while order is down: %v", err)
		}
		_, err = agent.CreateClaimFromOrder(gctx, ClaimFromOrder{OrderID: w.bobOrder.ID, ClaimType: claims.BillingError, Description: "x", CustomerID: "cus_nobody"})
		if !errs.IsKind(err, errs.Invalid) || !hasField(err, "customer_id") {
			t.Fatalf("staff naming an unknown claimant: %v", err)
		}
		res2, err := agent.CreateClaimFromOrder(gctx, ClaimFromOrder{OrderID: w.bobOrder.ID, ClaimType: claims.BillingError,
			Description: "Charged twice", CustomerID: w.bob.ID})
		must(t, err)
		if res2.Mode != ModeDegraded || res2.Claim.CustomerID != w.bob.ID {
			t.Fatalf("staff degraded result %s", asJSON(res2))
		}
		if n := createdClaims(t, w.claimStore); n != 2 {
			t.Fatalf("%d claims, want 2", n)
		}

		st, err := w.svc.Status(context.Background())
		must(t, err)
		od := st.Dependencies.Order
		if st.Mode != ModeDegraded || od.Status != DependencyDown || od.ConsecutiveFailures < 1 || od.LastError == "" ||
			od.LastErrorAt == nil || st.Dependencies.Customer.Status != DependencyUp || st.PendingEnrichments != 2 {
			t.Fatalf("degraded status %s", asJSON(st))
		}
		if m, p := metricValue(t, w.reg, "integration_mode"), metricValue(t, w.reg, "integration_pending_enrichments"); m != 0 || p != 2 {
			t.Fatalf("integration_mode %v, integration_pending_enrichments %v", m, p)
		}

		w.orderHost.start()
		st = w.waitMode(t, ModeFull, 0)
		if st.Dependencies.Order.Status != DependencyUp || st.Dependencies.Order.ConsecutiveFailures != 0 || st.FailedEnrichments != 0 {
			t.Fatalf("recovered status %s", asJSON(st))
		}
		for _, c := range []struct {
			id string
			o  order.Order
			cu customer.Customer
		}{{res.ClaimID, w.annOrder, w.ann}, {res2.ClaimID, w.bobOrder, w.bob}} {
			checkComplete(t, w.replay(t, c.id), c.o, c.cu)
			if n := enrichedEvents(t, w.claims, c.id); n != 1 {
				t.Fatalf("claim %s enriched %d times", c.id, n)
			}
			if r := w.row(t, c.id); r.State != stateDone || r.Outcome != outcomeCompleted || r.Attempts < 1 || r.FinishedAt == nil || r.LeaseUntil != nil {
				t.Fatalf("record %s", asJSON(r))
			}
		}
		// More rounds, concurrent ones too, find nothing to do.
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := w.svc.EnrichPending(context.Background())
				if err != nil || n != 0 {
					t.Errorf("extra round: %d, %v", n, err)
				}
			}()
		}
		wg.Wait()
		for _, id := range []string{res.ClaimID, res2.ClaimID} {
			if n := enrichedEvents(t, w.claims, id); n != 1 {
				t.Fatalf("claim %s enriched %d times after extra rounds", id, n)
			}
		}
		if got := metricValue(t, w.reg, "integration_enrichments_total", "outcome", outcomeCompleted); got != 2 {
			t.Fatalf("integration_enrichments_total{completed} = %v", got)
		}
		if m, p := metricValue(t, w.reg, "integration_mode"), metricValue(t, w.reg, "integration_pending_enrichments"); m != 1 || p != 0 {
			t.Fatalf("after recovery integration_mode %v, integration_pending_enrichments %v", m, p)
		}
	})

	t.Run("degraded while customer is down", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.runMonitor(t) // no enrichment loop: EnrichPending is called by hand
		w.waitMode(t, ModeFull, 0)
		w.customerHost.stop()

		ann, actx := w.asCustomer(w.ann)
		res, err := ann.CreateClaimFromOrder(actx, ClaimFromOrder{OrderID: w.annOrder.ID, ClaimType: claims.ProductDefect, Description: "Broken", ProductID: "prd_a"})
		must(t, err)
		if res.Mode != ModeDegraded || res.Enrichment != claims.EnrichmentPending {
			t.Fatalf("result %s", asJSON(res))
		}
		// The order answered: its context is in the claim already, and its
		// ownership was checked.
		if en := res.Claim.Enrichment; en == nil || en.Order == nil || len(en.Order.Lines) != 2 || en.Customer != nil {
			t.Fatalf("partial enrichment %s", asJSON(res.Claim))
		}
		bob, bctx := w.asCustomer(w.bob)
		if _, err := bob.CreateClaimFromOrder(bctx, ClaimFromOrder{OrderID: w.annOrder.ID, ClaimType: claims.ProductDefect, Description: "x"}); !errs.IsKind(err, errs.Forbidden) {
			t.Fatalf("another customer's order while customer is down: %v", err)
		}
		st, err := w.svc.Status(context.Background())
		must(t, err)
		if st.Mode != ModeDegraded || st.Dependencies.Customer.Status != DependencyDown || st.Dependencies.Order.Status != DependencyUp || st.PendingEnrichments != 1 {
			t.Fatalf("status %s", asJSON(st))
		}
		// A round while it is still down does nothing and loses nothing.
		n, err := w.svc.EnrichPending(context.Background())
		if err != nil || n != 0 {
			t.Fatalf("round while down: %d, %v", n, err)
		}

		w.customerHost.start()
		w.waitMode(t, ModeFull, 1)
		// Rounds racing on the one pending row: exactly one enriches it.
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			total int
		)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := w.svc.EnrichPending(context.Background())
				if err != nil {
					t.Errorf("concurrent round: %v", err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}()
		}
		wg.Wait()
		if total != 1 {
			t.Fatalf("concurrent rounds enriched %d claims, want 1", total)
		}
		n, err = w.svc.EnrichPending(context.Background())
		if err != nil || n != 0 {
			t.Fatalf("later round: %d, %v", n, err)
		}
		checkComplete(t, w.replay(t, res.ClaimID), w.annOrder, w.ann)
		if n := enrichedEvents(t, w.claims, res.ClaimID); n != 1 {
			t.Fatalf("enriched %d times", n)
		}
		w.waitMode(t, ModeFull, 0)
	})

	t.Run("a claim on someone else's order made during an outage is never enriched", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.runMonitor(t)
		w.waitMode(t, ModeFull, 0)
		w.orderHost.stop()
		// Bob's claim cannot be checked while order is down: it is taken.
		bob, bctx := w.asCustomer(w.bob)
		res, err := bob.CreateClaimFromOrder(bctx, ClaimFromOrder{OrderID: w.annOrder.ID, ClaimType: claims.DeliveryIssue, Description: "Where is it"})
		must(t, err)
		if res.Mode != ModeDegraded || res.Claim.CustomerID != w.bob.ID {
			t.Fatalf("result %s", asJSON(res))
		}
		w.orderHost.start()
		w.waitMode(t, ModeFull, 1)
		n, err := w.svc.EnrichPending(context.Background())
		if err != nil || n != 0 {
			t.Fatalf("round: %d, %v", n, err)
		}
		st := w.waitMode(t, ModeFull, 0)
		if st.FailedEnrichments != 1 {
			t.Fatalf("status %s", asJSON(st))
		}
		// Ann's order stays out of Bob's claim.
		stored := w.replay(t, res.ClaimID)
		if stored.Enrichment == nil || stored.Enrichment.Status != claims.EnrichmentPending || stored.Enrichment.Order != nil || enrichedEvents(t, w.claims, res.ClaimID) != 0 {
			t.Fatalf("claim %s", asJSON(stored))
		}
		if r := w.row(t, res.ClaimID); r.State != stateFailed || r.Outcome != outcomeCustomerMismatch || r.Verified || r.CustomerID != w.bob.ID {
			t.Fatalf("record %s", asJSON(r))
		}
		if got := metricValue(t, w.reg, "integration_enrichments_total", "outcome", outcomeCustomerMismatch); got != 1 {
			t.Fatalf("integration_enrichments_total{customer_mismatch} = %v", got)
		}
	})

	t.Run("claims already enriched or closed meanwhile are left as they are", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.runMonitor(t)
		w.waitMode(t, ModeFull, 0)
		w.orderHost.stop()
		ann, actx := w.asCustomer(w.ann)
		res, err := ann.CreateClaimFromOrder(actx, ClaimFromOrder{OrderID: w.annOrder.ID, ClaimType: claims.BillingError, Description: "Twice"})
		must(t, err)
		closed, err := ann.CreateClaimFromOrder(actx, ClaimFromOrder{OrderID: w.annOrder.ID, ClaimType: claims.ServiceComplaint, Description: "Rude"})
		must(t, err)
		// The enrichment completes elsewhere first: an agent on the phone,
		// or an earlier round that crashed before recording it.
		ctx := context.Background()
		_, err = w.claims.EnrichClaim(ctx, res.ClaimID, claims.Enrichment{Status: claims.EnrichmentComplete,
			Order: &claims.OrderContext{OrderID: w.annOrder.ID, Status: "confirmed"}})
		must(t, err)
		// The other is worked to closure before the order returns.
		_, err = w.claims.AssignClaim(ctx, closed.ClaimID, claims.Assignment{AgentID: "agt_1"})
		must(t, err)
		_, err = w.claims.StartClaim(ctx, closed.ClaimID)
		must(t, err)
		_, err = w.claims.ResolveClaim(ctx, closed.ClaimID, claims.Resolution{Resolution: "Apologised"})
		must(t, err)
		_, err = w.claims.CloseClaim(ctx, closed.ClaimID)
		must(t, err)

		w.orderHost.start()
		w.waitMode(t, ModeFull, 2)
		n, err := w.svc.EnrichPending(ctx)
		if err != nil || n != 0 {
			t.Fatalf("round: %d, %v", n, err)
		}
		st := w.waitMode(t, ModeFull, 0)
		if st.FailedEnrichments != 1 || enrichedEvents(t, w.claims, res.ClaimID) != 1 || enrichedEvents(t, w.claims, closed.ClaimID) != 0 {
			t.Fatalf("status %s, enriched %d and %d times", asJSON(st), enrichedEvents(t, w.claims, res.ClaimID), enrichedEvents(t, w.claims, closed.ClaimID))
		}
		if r := w.row(t, res.ClaimID); r.State != stateDone || r.Outcome != outcomeAlreadyComplete {
			t.Fatalf("record %s", asJSON(r))
		}
		if r := w.row(t, closed.ClaimID); r.State != stateFailed || r.Outcome != outcomeClaimClosed {
			t.Fatalf("record %s", asJSON(r))
		}
		if got := metricValue(t, w.reg, "integration_enrichments_total", "outcome", outcomeAlreadyComplete); got != 1 {
			t.Fatalf("integration_enrichments_total{already_complete} = %v", got)
		}
	})
}
