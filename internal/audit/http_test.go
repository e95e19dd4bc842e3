package audit

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// serveAudit mounts the context on a test server with the full middleware
// chain, over a trail holding one event.
func serveAudit(t *testing.T) *testkit.HTTP {
	t.Helper()
	gdb := openDB(t, testkit.SQLite)
	env := newEvent(t, actingAs("corr-http", auth.RoleService, "saga"), "orders.OrderConfirmed", "ord_http", 1, orderConfirmedData("ord_http", "cus_1"))
	must(t, NewConsumer(gdb, Options{Logger: testkit.Logger()}).Handle(context.Background(), env))
	svc := New(gdb, Options{})
	return testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, svc) })
}

// TestHTTPAccess: agents (and admin) read the trail; managers its
// statistics too; nobody else either.
func TestHTTPAccess(t *testing.T) {
	t.Parallel()
	h := serveAudit(t)
	token, err := h.Tokens.Issue("cus_1", "a@example.com")
	must(t, err)
	key := func(k string) []string { return []string{"X-API-Key", k} }
	cases := []struct {
		name, path string
		who        []string
		status     int
	}{
		{"anonymous trail", "/api/v1/audit", nil, http.StatusUnauthorized},
		{"anonymous stats", "/api/v1/audit/stats", nil, http.StatusUnauthorized},
		{"unknown key", "/api/v1/audit", key("pos_notakeyatall000000000000"), http.StatusUnauthorized},
		{"cashier trail", "/api/v1/audit", key(h.Keys.Cashier), http.StatusForbidden},
		{"cashier stats", "/api/v1/audit/stats", key(h.Keys.Cashier), http.StatusForbidden},
		{"customer trail", "/api/v1/audit", []string{"Authorization", "Bearer " + token}, http.StatusForbidden},
		{"service trail", "/api/v1/audit", key(h.Keys.Service), http.StatusForbidden},
		{"manager trail", "/api/v1/audit", key(h.Keys.Manager), http.StatusForbidden},
		{"manager stats", "/api/v1/audit/stats", key(h.Keys.Manager), http.StatusOK},
		{"agent trail", "/api/v1/audit", key(h.Keys.Agent), http.StatusOK},
		{"agent stats", "/api/v1/audit/stats", key(h.Keys.Agent), http.StatusOK},
		{"admin trail", "/api/v1/audit", key(h.Keys.Admin), http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.Call(t, http.MethodGet, c.path, nil, c.who...)
			if c.status == http.StatusOK {
				r.JSON(t, c.status, nil)
			} else {
				r.Problem(t, c.status)
			}
		})
	}
	var list httpx.List[Entry]
	h.Call(t, http.MethodGet, "/api/v1/audit?event_type=OrderConfirmed&from=2000-01-01T00:00:00Z&order=desc", nil, key(h.Keys.Agent)...).
		JSON(t, http.StatusOK, &list)
	if list.Meta.Total != 1 || len(list.Data) != 1 || list.Data[0].Actor != "service:saga" || list.Data[0].CorrelationID != "corr-http" ||
		!strings.Contains(string(list.Data[0].Data), `"total_cents":2875`) {
		t.Fatalf("list: %+v", list)
	}
}

// TestHTTPBadInput: malformed queries get a 400 problem naming the field.
func TestHTTPBadInput(t *testing.T) {
	t.Parallel()
	h := serveAudit(t)
	cases := []struct{ name, query, field string }{
		{"from not a time", "from=yesterday", "from"},
		{"to not a time", "to=2025-13-01T00:00:00Z", "to"},
		{"to before from", "from=2025-06-02T00:00:00Z&to=2025-06-01T00:00:00Z", "to"},
		{"event type", "event_type=not%20a%20type%21", "event_type"},
		{"stream", "stream=Sales%20Stream", "stream"},
		{"order", "order=sideways", "order"},
		{"per_page", "per_page=101", "per_page"},
		{"page", "page=0", "page"},
		{"aggregate id", "aggregate_id=" + strings.Repeat("a", 201), "aggregate_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := h.Call(t, http.MethodGet, "/api/v1/audit?"+c.query, nil, "X-API-Key", h.Keys.Agent).Problem(t, http.StatusBadRequest)
			if !testkit.HasField(p, c.field) {
				t.Fatalf("%s: problem does not name %q: %+v", c.query, c.field, p)
			}
		})
	}
}
