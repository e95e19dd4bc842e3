package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/claims"
	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// monolith is the integration context as `pos serve --all` wires it: every
// dependency is the local Service of a context in the same process (the
// probe then reads their databases), and the routes are on one server.
type monolith struct {
	h          *testkit.HTTP
	svc        Local
	claimStore claims.EventStore
	ann, bob   customer.Customer
	annOrder   order.Order
}

func newMonolith(t *testing.T) *monolith {
	t.Helper()
	cl, store := newClaims(t, testkit.SQLite)
	orders, customers := newOrders(t, testkit.SQLite), newCustomers(t, testkit.SQLite)
	svc := New(testkit.OpenDB(t, testkit.SQLite, Name, Migrations), Deps{Claims: cl, Orders: orders, Customers: customers},
		Options{Registerer: prometheus.NewRegistry(), CallTimeout: time.Second, Logger: testkit.Logger()})
	m := &monolith{svc: svc, claimStore: store}
	m.h = testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, svc) })
	m.ann = register(t, customers, "Ann", testkit.ID("ann")+"@example.com", "+1 514-555-0101")
	m.bob = register(t, customers, "Bob", testkit.ID("bob")+"@example.com", "+1 514-555-0102")
	m.annOrder = placeOrder(t, orders, m.ann.ID)
	return m
}

// bearer is the Authorization header of a customer's token.
func (m *monolith) bearer(t *testing.T, c customer.Customer) []string {
	t.Helper()
	token, err := m.h.Tokens.Issue(c.ID, c.Email)
	must(t, err)
	return []string{"Authorization", "Bearer " + token}
}

const fromOrder = "/api/v1/integration/claims/from-order"

// TestBadInput: every malformed request gets a 4xx problem naming the
// field at fault, and no claim is created.
func TestBadInput(t *testing.T) {
	t.Parallel()
	m := newMonolith(t)
	agent := []string{"X-API-Key", m.h.Keys.Agent}
	oid := m.annOrder.ID
	cases := []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"malformed json", `{"order_id": "` + oid + `", "claim_type": `, 400, ""},
		{"empty body", ``, 400, ""},
		{"unknown claim type", `{"order_id": "` + oid + `", "claim_type": "refund_please", "description": "x"}`, 400, "claim_type"},
		{"claim type not a string", `{"order_id": "` + oid + `", "claim_type": 3, "description": "x"}`, 400, "claim_type"},
		{"missing claim type", `{"order_id": "` + oid + `", "description": "x"}`, 400, "claim_type"},
		{"empty description", `{"order_id": "` + oid + `", "claim_type": "billing_error", "description": "   "}`, 400, "description"},
		{"missing description", `{"order_id": "` + oid + `", "claim_type": "billing_error"}`, 400, "description"},
		{"description too long", `{"order_id": "` + oid + `", "claim_type": "billing_error", "description": "` + strings.Repeat("a", claims.MaxDescription+1) + `"}`, 400, "description"},
		{"missing order id", `{"claim_type": "billing_error", "description": "x"}`, 400, "order_id"},
		{"empty order id", `{"order_id": "", "claim_type": "billing_error", "description": "x"}`, 400, "order_id"},
		{"order id too long", `{"order_id": "` + strings.Repeat("o", 65) + `", "claim_type": "billing_error", "description": "x"}`, 400, "order_id"},
		{"unknown field", `{"order_id": "` + oid + `", "claim_type": "billing_error", "description": "x", "priority": "high"}`, 400, "priority"},
		{"product not in the order", `{"order_id": "` + oid + `", "claim_type": "product_defect", "description": "x", "product_id": "prd_z"}`, 400, "product_id"},
		{"claimant not the order's customer", `{"order_id": "` + oid + `", "claim_type": "billing_error", "description": "x", "customer_id": "` + m.bob.ID + `"}`, 400, "customer_id"},
		{"unknown order", `{"order_id": "ord_nope", "claim_type": "billing_error", "description": "x"}`, 404, ""},
		{"body over 1 MiB", `{"order_id": "` + oid + `", "claim_type": "billing_error", "description": "` + strings.Repeat("a", 1<<20+10) + `"}`, 413, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := m.h.Call(t, http.MethodPost, fromOrder, tc.body, agent...).Problem(t, tc.status)
			if tc.field != "" && !testkit.HasField(p, tc.field) {
				t.Errorf("problem does not name %q: %+v", tc.field, p)
			}
		})
	}
	if n := createdClaims(t, m.claimStore); n != 0 {
		t.Fatalf("bad input created %d claims", n)
	}

	// Text with SQL and markup in it is just text, stored verbatim.
	evil := `Robert'); DROP TABLE enrichments;-- <script>"%_\`
	var res Result
	m.h.Call(t, http.MethodPost, fromOrder, map[string]any{"order_id": oid, "claim_type": "service_complaint", "description": evil}, agent...).JSON(t, 201, &res)
	if res.Claim.Description != evil || res.Claim.CustomerID != m.ann.ID {
		t.Fatalf("claim %s", asJSON(res))
	}
}

// TestAccess: customers and agents (and services, and admins) open claims,
// a customer on their own orders only; 401 without credentials, 403 with
// the wrong ones.
func TestAccess(t *testing.T) {
	t.Parallel()
	m := newMonolith(t)
	body := map[string]any{"order_id": m.annOrder.ID, "claim_type": "delivery_issue", "description": "Late"}
	m.h.Call(t, http.MethodPost, fromOrder, body).Problem(t, 401)
	m.h.Call(t, http.MethodPost, fromOrder, body, "X-API-Key", "pos_notakeyatall000000000000").Problem(t, 401)
	m.h.Call(t, http.MethodPost, fromOrder, body, "Authorization", "Bearer garbage").Problem(t, 401)
	m.h.Call(t, http.MethodPost, fromOrder, body, "X-API-Key", m.h.Keys.Cashier).Problem(t, 403)
	m.h.Call(t, http.MethodPost, fromOrder, body, "X-API-Key", m.h.Keys.Manager).Problem(t, 403)
	m.h.Call(t, http.MethodPost, fromOrder, body, m.bearer(t, m.bob)...).Problem(t, 403)
	if n := createdClaims(t, m.claimStore); n != 0 {
		t.Fatalf("refused requests created %d claims", n)
	}

	var res Result
	m.h.Call(t, http.MethodPost, fromOrder, body, m.bearer(t, m.ann)...).JSON(t, 201, &res)
	if res.Mode != ModeFull || res.Enrichment != claims.EnrichmentComplete || res.Claim.CustomerID != m.ann.ID ||
		res.Claim.Enrichment == nil || len(res.Claim.Enrichment.Order.Lines) != 2 || res.Claim.Enrichment.Customer.Email != m.ann.Email {
		t.Fatalf("customer's claim %s", asJSON(res))
	}
	for _, key := range []string{m.h.Keys.Agent, m.h.Keys.Service, m.h.Keys.Admin} {
		m.h.Call(t, http.MethodPost, fromOrder, body, "X-API-Key", key).JSON(t, 201, nil)
	}

	// The status: staff who watch the platform, not customers or cashiers.
	const status = "/api/v1/integration/status"
	m.h.Call(t, http.MethodGet, status, nil).Problem(t, 401)
	m.h.Call(t, http.MethodGet, status, nil, "X-API-Key", m.h.Keys.Cashier).Problem(t, 403)
	m.h.Call(t, http.MethodGet, status, nil, m.bearer(t, m.ann)...).Problem(t, 403)
	var st Status
	m.h.Call(t, http.MethodGet, status, nil, "X-API-Key", m.h.Keys.Manager).JSON(t, 200, &st)
	// Local dependencies are probed through their databases.
	if st.Mode != ModeFull || st.Dependencies.Order.Status != DependencyUp || st.Dependencies.Customer.Status != DependencyUp ||
		st.PendingEnrichments != 0 || st.CheckedAt == nil {
		t.Fatalf("status %s", asJSON(st))
	}

	const run = "/api/v1/integration/enrichments/run"
	m.h.Call(t, http.MethodPost, run, nil).Problem(t, 401)
	m.h.Call(t, http.MethodPost, run, nil, "X-API-Key", m.h.Keys.Cashier).Problem(t, 403)
	m.h.Call(t, http.MethodPost, run, nil, m.bearer(t, m.ann)...).Problem(t, 403)
	var er EnrichmentRun
	m.h.Call(t, http.MethodPost, run, nil, "X-API-Key", m.h.Keys.Agent).JSON(t, 200, &er)
	if er.Enriched != 0 {
		t.Fatalf("run %+v", er)
	}
}

// TestStatusShape pins the JSON of GET /integration/status (API.md).
func TestStatusShape(t *testing.T) {
	t.Parallel()
	m := newMonolith(t)
	if _, err := m.svc.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	m.h.Call(t, http.MethodGet, "/api/v1/integration/status", nil, "X-API-Key", m.h.Keys.Agent).JSON(t, 200, &raw)
	deps, _ := raw["dependencies"].(map[string]any)
	ord, _ := deps["order"].(map[string]any)
	cus, _ := deps["customer"].(map[string]any)
	if raw["mode"] != "full" || raw["pending_enrichments"] != float64(0) || raw["checked_at"] == nil || ord == nil || cus == nil {
		t.Fatalf("status %s", asJSON(raw))
	}
	for _, d := range []map[string]any{ord, cus} {
		if d["status"] != "up" || d["last_ok"] == nil || d["consecutive_failures"] != float64(0) {
			t.Fatalf("dependency %s", asJSON(d))
		}
	}
}

// TestRecordWithoutClaim: the pending record is written before the claim,
// so a crash (or a claims failure without an answer) between the two
// leaves a record whose claim does not exist. A young one is retried (the
// creation may still land); an old one is dropped as failed. Neither
// creates anything.
func TestRecordWithoutClaim(t *testing.T) {
	t.Parallel()
	m := newMonolith(t)
	st := m.svc.(*service)
	ctx := context.Background()
	now := time.Now().UTC()
	for id, age := range map[string]time.Duration{"clm_young": time.Minute, "clm_old": time.Hour} {
		must(t, st.store.insert(ctx, enrichmentRow{ClaimID: id, OrderID: m.annOrder.ID, CustomerID: m.ann.ID, Verified: true,
			State: statePending, CreatedAt: now.Add(-age), UpdatedAt: now.Add(-age)}))
	}
	n, err := m.svc.EnrichPending(ctx)
	if err != nil || n != 0 {
		t.Fatalf("round: %d, %v", n, err)
	}
	young, _, err := st.store.get(ctx, "clm_young")
	must(t, err)
	old, _, err := st.store.get(ctx, "clm_old")
	must(t, err)
	if young.State != statePending || young.LeaseUntil == nil || young.LastError == "" ||
		old.State != stateFailed || old.Outcome != outcomeClaimMissing {
		t.Fatalf("young %s\nold %s", asJSON(young), asJSON(old))
	}
	// The young one is not retried before its backoff: a round right away
	// leaves it alone.
	n, err = m.svc.EnrichPending(ctx)
	again, _, gerr := st.store.get(ctx, "clm_young")
	must(t, gerr)
	if err != nil || n != 0 || again.Attempts != young.Attempts {
		t.Fatalf("second round: %d, %v, attempts %d then %d", n, err, young.Attempts, again.Attempts)
	}
	if n := createdClaims(t, m.claimStore); n != 0 {
		t.Fatalf("%d claims created", n)
	}
	status, err := m.svc.Status(ctx)
	must(t, err)
	if status.PendingEnrichments != 1 || status.FailedEnrichments != 1 {
		t.Fatalf("status %s", asJSON(status))
	}
}
