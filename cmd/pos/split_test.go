package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// TestSplitMatchesMonolith runs one scenario against the monolith and
// against three processes — customer (keys), product and inventory, each
// `pos serve --only=…` on its own data dir, pointed at each other — and
// requires the same answers: the same code, only the wiring differs.
func TestSplitMatchesMonolith(t *testing.T) {
	t.Parallel()
	const serviceKey = "pos_fleetservicekeyfortests0000000000"
	const secret = "0123456789abcdef0123456789abcdef-split"

	mono := t.TempDir()
	monoEnv := []string{"POS_DATA_DIR=" + mono, "POS_SERVICE_KEY=" + serviceKey, "POS_JWT_SECRET=" + secret}
	monoAdmin := createKey(t, monoEnv, "admin")
	m := startPos(t, monoEnv, "serve", "--all")
	want := splitScenario(t, m, m, monoAdmin, serviceKey)

	custDir := t.TempDir()
	custEnv := []string{"POS_DATA_DIR=" + custDir, "POS_SERVICE_KEY=" + serviceKey, "POS_JWT_SECRET=" + secret}
	admin := createKey(t, custEnv, "admin")
	cust := startPos(t, custEnv, "serve", "--only=customer")
	prod := startPos(t, []string{"POS_DATA_DIR=" + t.TempDir(), "POS_SERVICE_KEY=" + serviceKey, "POS_JWT_SECRET=" + secret,
		"POS_CUSTOMER_URL=" + cust.URL}, "serve", "--only=product")
	inv := startPos(t, []string{"POS_DATA_DIR=" + t.TempDir(), "POS_SERVICE_KEY=" + serviceKey, "POS_JWT_SECRET=" + secret,
		"POS_CUSTOMER_URL=" + cust.URL, "POS_PRODUCT_URL=" + prod.URL}, "serve", "--only=inventory")
	got := splitScenario(t, prod, inv, admin, serviceKey)
	t.Logf("scenario answers: %q", want)

	if !reflect.DeepEqual(got, want) {
		for i := range want {
			if i < len(got) && !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("step %d differs:\n fleet    %v\n monolith %v", i, got[i], want[i])
			}
		}
		t.Fatalf("fleet and monolith disagree (%d vs %d steps)", len(got), len(want))
	}

	// The inventory process does not host the catalog: its routes are not
	// there, and its health names only what it hosts.
	if code, _ := inv.call("GET", "/api/v1/products", nil); code != 404 {
		t.Fatalf("inventory process serves products: %d", code)
	}
	var health struct{ Contexts map[string]string }
	inv.must(200, &health, "GET", "/health", nil)
	if len(health.Contexts) != 1 || health.Contexts["inventory"] != "up" {
		t.Fatalf("inventory health: %+v", health)
	}
}

// splitScenario walks catalog and stock through the product and inventory
// endpoints and returns, per step, the status and the fields that do not
// depend on generated ids or clocks.
func splitScenario(t *testing.T, prod, inv *proc, admin, service string) []string {
	t.Helper()
	A := []string{"X-API-Key", admin}
	S := []string{"X-API-Key", service}
	var out []string
	record := func(code int, body []byte, fields ...string) map[string]any {
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		s := fmt.Sprint(code)
		for _, f := range fields {
			s += fmt.Sprintf(" %s=%v", f, m[f])
		}
		out = append(out, s)
		return m
	}
	code, body := prod.call("POST", "/api/v1/products", map[string]any{"sku": "SPL-1", "name": "Split item", "price_cents": 1500, "alert_threshold": 4}, A...)
	p := record(code, body, "sku", "price_cents", "active")
	pid, _ := p["id"].(string)
	code, body = prod.call("POST", "/api/v1/products", map[string]any{"sku": "SPL-1", "name": "again", "price_cents": 1}, A...)
	record(code, body, "status", "type")
	code, body = inv.call("POST", "/api/v1/locations", map[string]any{"code": "SPL", "name": "Split store", "kind": "store", "province": "ON"}, A...)
	l := record(code, body, "code", "kind", "province")
	lid, _ := l["id"].(string)
	// The inventory process checks the product with the catalog process.
	code, body = inv.call("POST", "/api/v1/inventory/adjustments", map[string]any{"product_id": "prd_nope", "location_id": lid, "delta": 5, "reason": "receipt"}, A...)
	record(code, body, "status", "type")
	code, body = inv.call("POST", "/api/v1/inventory/adjustments", map[string]any{"product_id": pid, "location_id": lid, "delta": 6, "reason": "receipt"}, A...)
	record(code, body, "on_hand", "reserved", "available")
	res := map[string]any{"reservation_id": "split-1", "items": []map[string]any{{"product_id": pid, "location_id": lid, "quantity": 3}}}
	code, body = inv.call("POST", "/api/v1/inventory/reservations", res, S...)
	record(code, body, "status")
	code, body = inv.call("POST", "/api/v1/inventory/reservations", res, S...)
	record(code, body, "status")
	// Low stock needs each product's threshold from the catalog: 3
	// available ≤ 4.
	code, body = inv.call("GET", "/api/v1/inventory?low_stock=true", nil, A...)
	var low struct {
		Data []map[string]any
	}
	_ = json.Unmarshal(body, &low)
	out = append(out, fmt.Sprintf("%d low=%d", code, len(low.Data)))
	for _, row := range low.Data {
		out = append(out, fmt.Sprintf("row available=%v reserved=%v alert=%v low=%v", row["available"], row["reserved"], row["alert_threshold"], row["low_stock"]))
	}
	code, body = inv.call("POST", "/api/v1/inventory/reservations/split-1/commit", nil, S...)
	record(code, body, "status")
	code, body = inv.call("GET", "/api/v1/inventory/reservations/split-1", nil, "X-API-Key", "pos_wrongkeywrongkeywrongkey00000")
	record(code, body, "status")
	return out
}
