package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMonolithEndToEnd drives the real binary over HTTP: catalog → stock →
// reservation → customer register/login/me; then a graceful SIGTERM while
// a request is in flight (it must finish), a restart on the same data dir,
// and the data is all there.
func TestMonolithEndToEnd(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	env := []string{"POS_DATA_DIR=" + dataDir}
	admin := createKey(t, env, "admin")
	service := createKey(t, env, "service")
	p := startPos(t, env, "serve", "--all")
	A := []string{"X-API-Key", admin}
	S := []string{"X-API-Key", service}

	// Catalog.
	var cat struct{ ID string }
	p.must(201, &cat, "POST", "/api/v1/categories", map[string]any{"name": "Tools"}, A...)
	var prod struct {
		ID         string
		PriceCents int64 `json:"price_cents"`
	}
	p.must(201, &prod, "POST", "/api/v1/products", map[string]any{"sku": "HAM-1", "name": "Claw hammer", "category_id": cat.ID, "price_cents": 2499, "alert_threshold": 2}, A...)
	var list struct {
		Data []struct{ ID string }
		Meta struct{ Total int64 }
	}
	p.must(200, &list, "GET", "/api/v1/products?search=hammer", nil)
	if list.Meta.Total != 1 || list.Data[0].ID != prod.ID {
		t.Fatalf("search: %+v", list)
	}

	// Stock.
	var loc struct{ ID string }
	p.must(201, &loc, "POST", "/api/v1/locations", map[string]any{"code": "E2E-1", "name": "E2E store", "kind": "store", "province": "QC"}, A...)
	p.must(200, nil, "POST", "/api/v1/inventory/adjustments", map[string]any{"product_id": prod.ID, "location_id": loc.ID, "delta": 5, "reason": "receipt"}, A...)

	// Reservation: all-or-nothing, idempotent, committed.
	res := map[string]any{"reservation_id": "e2e-res-1", "items": []map[string]any{{"product_id": prod.ID, "location_id": loc.ID, "quantity": 3}}, "ttl_seconds": 600}
	p.must(201, nil, "POST", "/api/v1/inventory/reservations", res, S...)
	p.must(200, nil, "POST", "/api/v1/inventory/reservations", res, S...)
	too := map[string]any{"reservation_id": "e2e-res-2", "items": []map[string]any{{"product_id": prod.ID, "location_id": loc.ID, "quantity": 3}}}
	if code, body := p.call("POST", "/api/v1/inventory/reservations", too, S...); code != 409 {
		t.Fatalf("over-reservation: %d %s", code, body)
	}
	p.must(200, nil, "POST", "/api/v1/inventory/reservations/e2e-res-1/commit", nil, S...)
	assertStock(t, p, prod.ID, loc.ID, 2, 0, A)

	// Customer.
	p.must(201, nil, "POST", "/api/v1/auth/register", map[string]any{"email": "e2e@example.com", "password": "correct horse 1", "first_name": "E", "last_name": "Two"})
	var login struct{ Token string }
	p.must(200, &login, "POST", "/api/v1/auth/login", map[string]any{"email": "e2e@example.com", "password": "correct horse 1"})
	var me struct{ Email string }
	p.must(200, &me, "GET", "/api/v1/customers/me", nil, "Authorization", "Bearer "+login.Token)
	if me.Email != "e2e@example.com" {
		t.Fatalf("me: %+v", me)
	}

	// Graceful stop: a request whose body is still arriving when SIGTERM
	// lands must complete.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", p.URL+"/api/v1/products", pr)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", admin)
	type result struct {
		code int
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		resp.Body.Close()
		inflight <- result{code: resp.StatusCode}
	}()
	_, _ = io.WriteString(pw, `{"sku": "LATE-1", "name": "Arrived during shutdown", `)
	time.Sleep(200 * time.Millisecond) // the server has the request in hand
	stopped := make(chan error, 1)
	go func() { stopped <- p.stop(syscall.SIGTERM) }()
	time.Sleep(300 * time.Millisecond) // the server is draining
	_, _ = io.WriteString(pw, `"price_cents": 100}`)
	_ = pw.Close()
	if r := <-inflight; r.err != nil || r.code != 201 {
		t.Fatalf("in-flight request during shutdown: %d %v", r.code, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("graceful stop exited with %v\n%s", err, p.logs)
	}

	// Restart on the same data dir: everything is there, the old token
	// still works (the JWT secret is kept in the data dir).
	p2 := startPos(t, env, "serve", "--all")
	p2.must(200, &list, "GET", "/api/v1/products?search=late", nil)
	if list.Meta.Total != 1 {
		t.Fatalf("product created during shutdown lost: %+v", list)
	}
	assertStock(t, p2, prod.ID, loc.ID, 2, 0, A)
	p2.must(200, &me, "GET", "/api/v1/customers/me", nil, "Authorization", "Bearer "+login.Token)
	p2.must(200, nil, "GET", "/api/v1/inventory/reservations/e2e-res-1", nil, S...)
	if err := p2.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// TestOperationsEndpoints: probes, metrics, OpenAPI and the docs UI served
// by the binary itself.
func TestOperationsEndpoints(t *testing.T) {
	t.Parallel()
	p := startPos(t, []string{"POS_DATA_DIR=" + t.TempDir()}, "serve")
	var health struct {
		Status   string
		Contexts map[string]string
	}
	p.must(200, &health, "GET", "/health", nil)
	for _, c := range allContexts {
		if health.Contexts[c] != "up" {
			t.Errorf("context %s: %q in /health", c, health.Contexts[c])
		}
	}
	p.must(200, nil, "GET", "/health/live", nil)
	p.must(200, nil, "GET", "/api/v1/products", nil)
	code, body := p.call("GET", "/metrics", nil)
	if code != 200 || !strings.Contains(string(body), `http_requests_total{code="200",context="product",method="GET",route="/api/v1/products"}`) {
		t.Fatalf("metrics without the route-template series: %d\n%.2000s", code, body)
	}
	code, body = p.call("GET", "/openapi.json", nil)
	if code != 200 || !strings.Contains(string(body), `"/api/v1/inventory/reservations"`) || !strings.Contains(string(body), `"openapi":"3.1.0"`) {
		t.Fatalf("openapi: %d %.300s", code, body)
	}
	code, body = p.call("GET", "/docs", nil)
	if code != 200 || !strings.Contains(string(body), "/docs/swagger-ui-bundle.js") {
		t.Fatalf("docs page: %d", code)
	}
	if code, _ = p.call("GET", "/docs/swagger-ui-bundle.js", nil); code != 200 {
		t.Fatalf("docs asset: %d", code)
	}
}

func assertStock(t *testing.T, p *proc, productID, locationID string, onHand, reserved int64, key []string) {
	t.Helper()
	var rows struct {
		Data []struct {
			OnHand    int64 `json:"on_hand"`
			Reserved  int64 `json:"reserved"`
			Available int64 `json:"available"`
		}
	}
	p.must(200, &rows, "GET", fmt.Sprintf("/api/v1/inventory?product_id=%s&location_id=%s", productID, locationID), nil, key...)
	if len(rows.Data) != 1 {
		t.Fatalf("stock rows: %+v", rows)
	}
	r := rows.Data[0]
	if r.OnHand != onHand || r.Reserved != reserved || r.Available != onHand-reserved {
		t.Fatalf("stock: %+v, want on_hand %d reserved %d", r, onHand, reserved)
	}
}

// createKey runs `pos apikey create` against the data dir of env.
func createKey(t *testing.T, env []string, role string) string {
	t.Helper()
	cmd := exec.Command(posBinary(t), "apikey", "create", "--role", role, "--name", "e2e-"+role)
	cmd.Env = append(append(os.Environ(), "POS_LOG_LEVEL=warn"), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("apikey create: %v", err)
	}
	return strings.TrimSpace(string(out))
}
