package notification

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// serveNotifications mounts the context on a test server with the full
// middleware chain, over a database holding one event's notifications.
func serveNotifications(t *testing.T) *testkit.HTTP {
	t.Helper()
	gdb := openDB(t, testkit.SQLite)
	customers := newCustomers(t)
	bob := register(t, customers, "Bob", testkit.ID("bob")+"@example.com", "")
	c := NewConsumer(gdb, customers, NewLogSender(testkit.Logger(), nil), Options{Logger: testkit.Logger()})
	must(t, c.Handle(context.Background(), orderConfirmed(t, eventCtx("corr-http"), "ord_http", bob.ID, 100)))
	svc := New(gdb)
	return testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, svc) })
}

// TestHTTPAccess: agents (and admin) read notifications; nobody else.
func TestHTTPAccess(t *testing.T) {
	t.Parallel()
	h := serveNotifications(t)
	token, err := h.Tokens.Issue("cus_1", "a@example.com")
	must(t, err)
	key := func(k string) []string { return []string{"X-API-Key", k} }
	for _, path := range []string{"/api/v1/notifications", "/api/v1/notifications/stats"} {
		h.Call(t, http.MethodGet, path, nil).Problem(t, http.StatusUnauthorized)
		h.Call(t, http.MethodGet, path, nil, key("pos_notakeyatall000000000000")...).Problem(t, http.StatusUnauthorized)
		h.Call(t, http.MethodGet, path, nil, key(h.Keys.Cashier)...).Problem(t, http.StatusForbidden)
		h.Call(t, http.MethodGet, path, nil, key(h.Keys.Manager)...).Problem(t, http.StatusForbidden)
		h.Call(t, http.MethodGet, path, nil, key(h.Keys.Service)...).Problem(t, http.StatusForbidden)
		h.Call(t, http.MethodGet, path, nil, "Authorization", "Bearer "+token).Problem(t, http.StatusForbidden)
		h.Call(t, http.MethodGet, path, nil, key(h.Keys.Agent)...).JSON(t, http.StatusOK, nil)
		h.Call(t, http.MethodGet, path, nil, key(h.Keys.Admin)...).JSON(t, http.StatusOK, nil)
	}
	var list httpx.List[Notification]
	h.Call(t, http.MethodGet, "/api/v1/notifications?event_type=OrderConfirmed&status=sent", nil, key(h.Keys.Agent)...).JSON(t, http.StatusOK, &list)
	if list.Meta.Total != 1 || len(list.Data) != 1 || list.Data[0].AggregateID != "ord_http" || list.Meta.PerPage != 20 {
		t.Fatalf("list: %+v", list)
	}
	var st Stats
	h.Call(t, http.MethodGet, "/api/v1/notifications/stats", nil, key(h.Keys.Agent)...).JSON(t, http.StatusOK, &st)
	if st.Total != 1 || st.ByChannel["email"] != 1 || st.ByStatus["sent"] != 1 || st.ByEventType["orders.OrderConfirmed"] != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestHTTPBadInput: malformed queries get a 400 problem naming the field.
func TestHTTPBadInput(t *testing.T) {
	t.Parallel()
	h := serveNotifications(t)
	cases := []struct{ query, field string }{
		{"status=bogus", "status"},
		{"channel=fax", "channel"},
		{"event_type=not%20a%20type%21", "event_type"},
		{"recipient=" + strings.Repeat("r", 255), "recipient"},
		{"per_page=101", "per_page"},
		{"page=0", "page"},
		{"page=two", "page"},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			p := h.Call(t, http.MethodGet, "/api/v1/notifications?"+c.query, nil, "X-API-Key", h.Keys.Agent).Problem(t, http.StatusBadRequest)
			if !testkit.HasField(p, c.field) {
				t.Fatalf("%s: problem does not name %q: %+v", c.query, c.field, p)
			}
		})
	}
}
