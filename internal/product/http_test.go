package product

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// serveCatalog mounts the catalog on a test server with the full
// middleware chain.
func serveCatalog(t testing.TB) (*testkit.HTTP, Service) {
	svc := New(testkit.OpenDB(t, testkit.SQLite, Name, Migrations))
	return testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, svc) }), svc
}

// TestBadInput: every malformed request gets a 4xx problem naming the
// field at fault, and nothing is written.
func TestBadInput(t *testing.T) {
	t.Parallel()
	h, svc := serveCatalog(t)
	admin := []string{"X-API-Key", h.Keys.Admin}
	h.Call(t, http.MethodPost, "/api/v1/products", map[string]any{"sku": "OK-1", "name": "Fine", "price_cents": 100}, admin...).JSON(t, 201, nil)

	cases := []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"malformed json", `{"sku": "X", "name": `, 400, ""},
		{"wrong type", `{"sku": "X", "name": "x", "price_cents": "ten"}`, 400, "price_cents"},
		{"float price", `{"sku": "X", "name": "x", "price_cents": 1.5}`, 400, "price_cents"},
		{"missing field", `{"sku": "X", "name": "x"}`, 400, "price_cents"},
		{"unknown field", `{"sku": "X", "name": "x", "price_cents": 1, "discount": 5}`, 400, "discount"},
		{"negative price", `{"sku": "X", "name": "x", "price_cents": -1}`, 400, "price_cents"},
		{"negative threshold", `{"sku": "X", "name": "x", "price_cents": 1, "alert_threshold": -3}`, 400, "alert_threshold"},
		{"sql in sku", `{"sku": "x'; DROP TABLE products; --", "name": "x", "price_cents": 1}`, 400, "sku"},
		{"duplicate sku", `{"sku": "OK-1", "name": "again", "price_cents": 1}`, 409, ""},
		{"unknown category", `{"sku": "X", "name": "x", "price_cents": 1, "category_id": "cat_nope"}`, 400, "category_id"},
		{"empty body", ``, 400, ""},
		{"too large", `{"sku": "X", "name": "x", "price_cents": 1, "description": "` + strings.Repeat("a", 1<<20+10) + `"}`, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := h.Call(t, http.MethodPost, "/api/v1/products", c.body, admin...).Problem(t, c.status)
			if c.field != "" && !testkit.HasField(p, c.field) {
				t.Errorf("problem does not name %q: %+v", c.field, p)
			}
		})
	}
	res, err := svc.ListProducts(context.Background(), Filter{})
	if err != nil || res.Total != 1 {
		t.Fatalf("bad input wrote something: %d products, %v", res.Total, err)
	}

	// A name with SQL metacharacters is just a name: stored and read back verbatim.
	evil := `Robert'); DROP TABLE products;-- "%_\`
	var p Product
	h.Call(t, http.MethodPost, "/api/v1/products", map[string]any{"sku": "EVIL", "name": evil, "price_cents": 1}, admin...).JSON(t, 201, &p)
	var got Product
	h.Call(t, http.MethodGet, "/api/v1/products/"+p.ID, nil).JSON(t, 200, &got)
	if got.Name != evil {
		t.Fatalf("name round trip: %q", got.Name)
	}
	h.Call(t, http.MethodGet, "/api/v1/products/prd_nope", nil).Problem(t, 404)
	h.Call(t, http.MethodGet, "/api/v1/products?per_page=101", nil).Problem(t, 400)
	h.Call(t, http.MethodGet, "/api/v1/products?page=0", nil).Problem(t, 400)
}

// TestAccess: reads are public, writes need the admin role.
func TestAccess(t *testing.T) {
	t.Parallel()
	h, _ := serveCatalog(t)
	body := map[string]any{"sku": "A-1", "name": "x", "price_cents": 1}
	h.Call(t, http.MethodPost, "/api/v1/products", body).Problem(t, 401)
	h.Call(t, http.MethodPost, "/api/v1/products", body, "X-API-Key", "pos_notakeyatall000000000000").Problem(t, 401)
	h.Call(t, http.MethodPost, "/api/v1/products", body, "X-API-Key", h.Keys.Cashier).Problem(t, 403)
	token, _ := h.Tokens.Issue("cus_1", "a@example.com")
	h.Call(t, http.MethodPost, "/api/v1/products", body, "Authorization", "Bearer "+token).Problem(t, 403)
	h.Call(t, http.MethodPost, "/api/v1/products", body, "Authorization", "Bearer garbage").Problem(t, 401)
	h.Call(t, http.MethodGet, "/api/v1/products", nil).JSON(t, 200, nil)
	h.Call(t, http.MethodGet, "/api/v1/categories", nil).JSON(t, 200, nil)
	r := h.Call(t, http.MethodGet, "/api/v1/products", nil, "X-Request-ID", "trace-me-1")
	if r.Header.Get("X-Request-ID") != "trace-me-1" || r.Header.Get("X-Served-By") == "" {
		t.Fatalf("request id / served-by headers: %v", r.Header)
	}
}

// TestListShape pins the list envelope of API.md.
func TestListShape(t *testing.T) {
	t.Parallel()
	h, svc := serveCatalog(t)
	for _, sku := range []string{"L-1", "L-2", "L-3"} {
		if _, err := svc.CreateProduct(context.Background(), NewProduct{SKU: sku, Name: sku, PriceCents: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var list httpx.List[Product]
	h.Call(t, http.MethodGet, "/api/v1/products?per_page=2&page=2", nil).JSON(t, 200, &list)
	if list.Meta.Total != 3 || list.Meta.Page != 2 || list.Meta.PerPage != 2 || len(list.Data) != 1 {
		t.Fatalf("list: %+v", list)
	}
}
