package order

import (
	"context"
	"net/http"
	"testing"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestHTTPAccess checks who may do what over the real middleware chain:
// customers see their own orders only, fulfilment is staff's, creating and
// marking cancelled are the saga's (service role).
func TestHTTPAccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := New(testkit.OpenDB(t, testkit.SQLite, Name, Migrations))
	h := testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, svc) })
	mine, err := svc.CreateOrder(ctx, newOrder(t, "sga_mine", "cus_ada"))
	must(t, err)
	theirs, err := svc.CreateOrder(ctx, newOrder(t, "sga_theirs", "cus_bob"))
	must(t, err)
	ada, err := h.Tokens.Issue("cus_ada", "ada@example.com")
	must(t, err)
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	key := func(k string) []string { return []string{"X-API-Key", k} }

	cases := []struct {
		name   string
		method string
		path   string
		body   any
		who    []string
		status int
	}{
		{"anonymous list", http.MethodGet, "/api/v1/orders", nil, nil, http.StatusUnauthorized},
		{"customer lists own", http.MethodGet, "/api/v1/orders", nil, bearer(ada), http.StatusOK},
		{"customer names self", http.MethodGet, "/api/v1/orders?customer_id=cus_ada", nil, bearer(ada), http.StatusOK},
		{"customer names another", http.MethodGet, "/api/v1/orders?customer_id=cus_bob", nil, bearer(ada), http.StatusForbidden},
		{"customer reads own", http.MethodGet, "/api/v1/orders/" + mine.ID, nil, bearer(ada), http.StatusOK},
		{"customer reads another's", http.MethodGet, "/api/v1/orders/" + theirs.ID, nil, bearer(ada), http.StatusForbidden},
		{"agent reads any", http.MethodGet, "/api/v1/orders/" + theirs.ID, nil, key(h.Keys.Agent), http.StatusOK},
		{"cashier may not read", http.MethodGet, "/api/v1/orders", nil, key(h.Keys.Cashier), http.StatusForbidden},
		{"unknown order", http.MethodGet, "/api/v1/orders/ord_nope", nil, key(h.Keys.Manager), http.StatusNotFound},
		{"customer may not ship", http.MethodPut, "/api/v1/orders/" + mine.ID + "/status", map[string]string{"status": "shipped"}, bearer(ada), http.StatusForbidden},
		{"agent may not ship", http.MethodPut, "/api/v1/orders/" + mine.ID + "/status", map[string]string{"status": "shipped"}, key(h.Keys.Agent), http.StatusForbidden},
		{"bad status", http.MethodPut, "/api/v1/orders/" + mine.ID + "/status", map[string]string{"status": "cancelled"}, key(h.Keys.Manager), http.StatusBadRequest},
		{"manager ships", http.MethodPut, "/api/v1/orders/" + mine.ID + "/status", map[string]string{"status": "shipped"}, key(h.Keys.Manager), http.StatusOK},
		{"skip to delivered", http.MethodPut, "/api/v1/orders/" + theirs.ID + "/status", map[string]string{"status": "delivered"}, key(h.Keys.Service), http.StatusConflict},
		{"manager may not mark cancelled", http.MethodPut, "/api/v1/orders/" + theirs.ID + "/cancellation", nil, key(h.Keys.Manager), http.StatusForbidden},
		{"cancel shipped", http.MethodPut, "/api/v1/orders/" + mine.ID + "/cancellation", nil, key(h.Keys.Service), http.StatusConflict},
		{"service marks cancelled", http.MethodPut, "/api/v1/orders/" + theirs.ID + "/cancellation", nil, key(h.Keys.Service), http.StatusOK},
		{"manager may not create", http.MethodPost, "/api/v1/orders", newOrder(t, "sga_new", "cus_ada"), key(h.Keys.Manager), http.StatusForbidden},
		{"service creates", http.MethodPost, "/api/v1/orders", newOrder(t, "sga_new", "cus_ada"), key(h.Keys.Service), http.StatusCreated},
		{"service replays", http.MethodPost, "/api/v1/orders", newOrder(t, "sga_new", "cus_ada"), key(h.Keys.Service), http.StatusOK},
		{"customer may not create", http.MethodPost, "/api/v1/orders", newOrder(t, "sga_c", "cus_ada"), bearer(ada), http.StatusForbidden},
		{"summary for agents", http.MethodGet, "/api/v1/orders/summary", nil, key(h.Keys.Agent), http.StatusOK},
		{"summary not for customers", http.MethodGet, "/api/v1/orders/summary", nil, bearer(ada), http.StatusForbidden},
	}
	for _, c := range cases {
		resp := h.Call(t, c.method, c.path, c.body, c.who...)
		if resp.Status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.Status, c.status, resp.Body)
			continue
		}
		if c.status >= 400 {
			resp.Problem(t, c.status)
		}
	}

	// What a customer's list holds: their own orders, whatever they ask.
	var list httpx.List[Order]
	h.Call(t, http.MethodGet, "/api/v1/orders", nil, bearer(ada)...).JSON(t, http.StatusOK, &list)
	if list.Meta.Total != 2 {
		t.Fatalf("ada sees %d orders, want her 2", list.Meta.Total)
	}
	for _, o := range list.Data {
		if o.CustomerID != "cus_ada" {
			t.Fatalf("ada sees order %s of %s", o.ID, o.CustomerID)
		}
	}
	var all httpx.List[Order]
	h.Call(t, http.MethodGet, "/api/v1/orders?status=cancelled", nil, key(h.Keys.Agent)...).JSON(t, http.StatusOK, &all)
	if all.Meta.Total != 1 || all.Data[0].ID != theirs.ID {
		t.Fatalf("cancelled orders for an agent: %+v", all.Meta)
	}
}
