package reporting

import (
	"net/http"
	"testing"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// serveReporting mounts reporting, fed with the suite's scenario, on a
// test server with the full middleware chain.
func serveReporting(t testing.TB) (*testkit.HTTP, *fixture) {
	t.Helper()
	f := newFixture(t, testkit.SQLite, false)
	loadScenario(t, f)
	return testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, f.local) }), f
}

// TestBadInput: every malformed query gets a 4xx problem naming the field
// at fault, never a 500.
func TestBadInput(t *testing.T) {
	t.Parallel()
	h, _ := serveReporting(t)
	manager := []string{"X-API-Key", h.Keys.Manager}
	cases := []struct {
		name, path, field string
	}{
		{"from after to", "/reports/sales?from=2025-06-02&to=2025-06-01", "from"},
		{"from after to, date-times", "/reports/sales?from=2025-06-01T12:00:00Z&to=2025-06-01T08:00:00Z", "from"},
		{"bad from", "/reports/sales?from=2025-02-30", "from"},
		{"bad to", "/reports/sales?to=last%20week", "to"},
		{"too long a range", "/reports/sales?from=2020-01-01&to=2025-01-01", "from"},
		{"channel", "/reports/sales?channel=web", "channel"},
		{"location", "/reports/sales?location_id=%27%3B%20DROP%20TABLE%20x", "location_id"},
		{"over-long date", "/reports/sales?from=2025-06-01T00:00:00.000000000000000000000000000000000000Z", "from"},
		{"top: limit 0", "/reports/products/top?limit=0", "limit"},
		{"top: limit 101", "/reports/products/top?limit=101", "limit"},
		{"top: limit not a number", "/reports/products/top?limit=ten", "limit"},
		{"top: from after to", "/reports/products/top?from=2025-06-02&to=2025-06-01", "from"},
		{"top: channel", "/reports/products/top?channel=pos,online", "channel"},
		{"top: bad date", "/reports/products/top?to=2025-6-1", "to"},
		{"inventory: location", "/reports/inventory?location_id=a%20b", "location_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := h.Call(t, http.MethodGet, "/api/v1"+c.path, nil, manager...).Problem(t, http.StatusBadRequest)
			if !testkit.HasField(p, c.field) {
				t.Errorf("problem does not name %q: %+v", c.field, p)
			}
		})
	}
	// The good ones answer.
	for _, path := range []string{"/reports/sales?from=2025-06-01&to=2025-06-02T10:00:00-04:00&channel=pos",
		"/reports/products/top?limit=100&from=2025-06-01", "/reports/inventory?location_id=" + mtl, "/dashboard", "/reports/totals"} {
		h.Call(t, http.MethodGet, "/api/v1"+path, nil, manager...).JSON(t, http.StatusOK, nil)
	}
}

// TestAccess: reports and the dashboard are the manager's and the
// admin's; the rebuild is the admin's alone.
func TestAccess(t *testing.T) {
	t.Parallel()
	h, _ := serveReporting(t)
	reads := []string{"/reports/sales", "/reports/products/top", "/reports/inventory", "/dashboard", "/reports/totals"}
	token, err := h.Tokens.Issue("cus_1", "a@example.com")
	must(t, err)
	for _, path := range reads {
		t.Run(path, func(t *testing.T) {
			url := "/api/v1" + path
			h.Call(t, http.MethodGet, url, nil).Problem(t, http.StatusUnauthorized)
			h.Call(t, http.MethodGet, url, nil, "X-API-Key", "pos_notakeyatall000000000000").Problem(t, http.StatusUnauthorized)
			h.Call(t, http.MethodGet, url, nil, "X-API-Key", h.Keys.Cashier).Problem(t, http.StatusForbidden)
			h.Call(t, http.MethodGet, url, nil, "X-API-Key", h.Keys.Agent).Problem(t, http.StatusForbidden)
			h.Call(t, http.MethodGet, url, nil, "Authorization", "Bearer "+token).Problem(t, http.StatusForbidden)
			h.Call(t, http.MethodGet, url, nil, "X-API-Key", h.Keys.Manager).JSON(t, http.StatusOK, nil)
			h.Call(t, http.MethodGet, url, nil, "X-API-Key", h.Keys.Admin).JSON(t, http.StatusOK, nil)
		})
	}
	rebuild := "/api/v1/reports/rebuild"
	h.Call(t, http.MethodPost, rebuild, nil).Problem(t, http.StatusUnauthorized)
	h.Call(t, http.MethodPost, rebuild, nil, "X-API-Key", h.Keys.Manager).Problem(t, http.StatusForbidden)
	var res RebuildResult
	h.Call(t, http.MethodPost, rebuild, nil, "X-API-Key", h.Keys.Admin).JSON(t, http.StatusOK, &res)
	if res.Events == 0 || res.After.Sales != res.Before.Sales {
		t.Fatalf("rebuild over HTTP: %+v", res)
	}
}

// TestDashboardShape pins the fields of GET /dashboard that API.md names.
func TestDashboardShape(t *testing.T) {
	t.Parallel()
	h, _ := serveReporting(t)
	var d map[string]any
	h.Call(t, http.MethodGet, "/api/v1/dashboard", nil, "X-API-Key", h.Keys.Manager).JSON(t, http.StatusOK, &d)
	for _, k := range []string{"day", "time_zone", "today", "by_channel", "by_location", "orders_today", "top_products",
		"low_stock", "low_stock_count", "checkouts", "freshness"} {
		if _, ok := d[k]; !ok {
			t.Errorf("dashboard has no %q: %v", k, d)
		}
	}
	checkouts, _ := d["checkouts"].(map[string]any)
	today, _ := checkouts["today"].(map[string]any)
	if _, ok := today["success_rate"]; !ok {
		t.Errorf("checkouts today has no success_rate: %v", checkouts)
	}
	var rep map[string]any
	h.Call(t, http.MethodGet, "/api/v1/reports/sales?from=2025-06-01&to=2025-06-02", nil, "X-API-Key", h.Keys.Manager).JSON(t, http.StatusOK, &rep)
	for _, k := range []string{"totals", "by_location", "by_channel", "by_day"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("sales report has no %q", k)
		}
	}
	totals, _ := rep["totals"].(map[string]any)
	if totals["revenue_cents"] != float64(allDays.RevenueCents) || totals["total_cents"] != float64(allDays.TotalCents) {
		t.Errorf("totals over HTTP: %v", totals)
	}
}
