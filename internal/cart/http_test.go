package cart

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/product"
)

// serveCart mounts the cart (SQL store on SQLite, priced by a real
// catalog) on a test server with the full middleware chain.
func serveCart(t testing.TB) (*testkit.HTTP, Service, product.Service) {
	t.Helper()
	catalog := newCatalog(t)
	svc := New(NewSQLStore(testkit.OpenDB(t, testkit.SQLite, Name, Migrations)), catalog, Options{})
	return testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, svc) }), svc, catalog
}

// TestBadInput: every malformed request gets a 4xx problem naming the
// field at fault, and nothing is written.
func TestBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, svc, catalog := serveCart(t)
	p := addProduct(t, catalog, "OK-1", 500)
	archived := addProduct(t, catalog, "OLD-1", 500)
	if err := catalog.DeleteProduct(ctx, archived.ID); err != nil {
		t.Fatal(err)
	}
	// One cart that exists, to check that refused changes leave it alone.
	existing := session()
	before, err := svc.AddItem(ctx, existing, NewItem{ProductID: p.ID, Quantity: 2})
	must(t, err)
	fresh := session()

	items := "/api/v1/carts/" + fresh + "/items"
	line := "/api/v1/carts/" + existing + "/items/" + p.ID
	calc := "/api/v1/carts/" + existing + "/calculate"
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		field  string
	}{
		{"malformed json", "POST", items, `{"product_id": `, 400, ""},
		{"not an object", "POST", items, `[1, 2]`, 400, ""},
		{"empty body", "POST", items, ``, 400, ""},
		{"quantity as text", "POST", items, `{"product_id": "` + p.ID + `", "quantity": "two"}`, 400, "quantity"},
		{"fractional quantity", "POST", items, `{"product_id": "` + p.ID + `", "quantity": 1.5}`, 400, "quantity"},
		{"product id as number", "POST", items, `{"product_id": 42, "quantity": 1}`, 400, "product_id"},
		{"missing quantity", "POST", items, `{"product_id": "` + p.ID + `"}`, 400, "quantity"},
		{"missing product id", "POST", items, `{"quantity": 1}`, 400, "product_id"},
		{"client price", "POST", items, `{"product_id": "` + p.ID + `", "quantity": 1, "price_cents": 1}`, 400, "price_cents"},
		{"client unit price", "POST", items, `{"product_id": "` + p.ID + `", "quantity": 1, "unit_price_cents": 1}`, 400, "unit_price_cents"},
		{"quantity zero", "POST", items, `{"product_id": "` + p.ID + `", "quantity": 0}`, 400, "quantity"},
		{"quantity negative", "POST", items, `{"product_id": "` + p.ID + `", "quantity": -3}`, 400, "quantity"},
		{"quantity 1000", "POST", items, `{"product_id": "` + p.ID + `", "quantity": 1000}`, 400, "quantity"},
		{"unknown product", "POST", items, `{"product_id": "prd_nope", "quantity": 1}`, 400, "product_id"},
		{"archived product", "POST", items, `{"product_id": "` + archived.ID + `", "quantity": 1}`, 409, ""},
		{"body over 1 MiB", "POST", items, `{"product_id": "` + strings.Repeat("p", 1<<20) + `", "quantity": 1}`, 413, ""},
		{"short session id", "POST", "/api/v1/carts/short/items", `{"product_id": "` + p.ID + `", "quantity": 1}`, 400, "session_id"},
		{"session id with spaces", "POST", "/api/v1/carts/has%20spaces%20in%20it%20too/items", `{"product_id": "` + p.ID + `", "quantity": 1}`, 400, "session_id"},
		{"session id too long", "GET", "/api/v1/carts/" + strings.Repeat("s", 129), nil, 400, "session_id"},
		{"set quantity zero", "PUT", line, `{"quantity": 0}`, 400, "quantity"},
		{"set quantity 1000", "PUT", line, `{"quantity": 1000}`, 400, "quantity"},
		{"set quantity as text", "PUT", line, `{"quantity": "many"}`, 400, "quantity"},
		{"set with client price", "PUT", line, `{"quantity": 1, "price_cents": 1}`, 400, "price_cents"},
		{"set a line not in the cart", "PUT", "/api/v1/carts/" + existing + "/items/prd_other", `{"quantity": 1}`, 404, ""},
		{"unknown province", "POST", calc + "?province=ZZ", nil, 400, "province"},
		{"missing province", "POST", calc, nil, 400, "province"},
		{"long province", "POST", calc + "?province=QCC", nil, 400, "province"},
		{"attach with a bad customer id", "PUT", "/api/v1/carts/" + existing + "/customer", `{"customer_id": "a b"}`, 400, "customer_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.Call(t, c.method, c.path, c.body, "X-API-Key", h.Keys.Service)
			prob := r.Problem(t, c.status)
			if c.field != "" && !testkit.HasField(prob, c.field) {
				t.Errorf("problem does not name %q: %s", c.field, r.Body)
			}
		})
	}
	if _, err := svc.Get(ctx, fresh); err == nil {
		t.Fatal("refused adds created a cart")
	}
	after, err := svc.Get(ctx, existing)
	must(t, err)
	if after.Version != before.Version || after.Lines[0].Quantity != 2 || after.CustomerID != "" {
		t.Fatalf("refused changes wrote: %+v", after)
	}
	h.Call(t, "GET", "/api/v1/carts/"+fresh, nil).Problem(t, 404)
}

// TestOwnership: an anonymous cart is anyone's with the session id; once a
// customer has it, only they and the service role may use it.
func TestOwnership(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, svc, catalog := serveCart(t)
	p := addProduct(t, catalog, "OWN-1", 1000)
	q := addProduct(t, catalog, "OWN-2", 300)
	tokenA, _ := h.Tokens.Issue("cus_A", "a@example.com")
	tokenB, _ := h.Tokens.Issue("cus_B", "b@example.com")
	asA := []string{"Authorization", "Bearer " + tokenA}
	asB := []string{"Authorization", "Bearer " + tokenB}
	add := map[string]any{"product_id": p.ID, "quantity": 1}

	// Anonymous: anyone with the session id.
	sid := session()
	base := "/api/v1/carts/" + sid
	var c Cart
	h.Call(t, "POST", base+"/items", add).JSON(t, 200, &c)
	if c.CustomerID != "" {
		t.Fatalf("anonymous add attached the cart: %+v", c)
	}
	h.Call(t, "GET", base, nil).JSON(t, 200, nil)
	h.Call(t, "GET", base, nil, "X-API-Key", h.Keys.Cashier).JSON(t, 200, nil)

	// Customer A changes it: it becomes A's.
	h.Call(t, "POST", base+"/items", map[string]any{"product_id": q.ID, "quantity": 2}, asA...).JSON(t, 200, &c)
	if c.CustomerID != "cus_A" || len(c.Lines) != 2 {
		t.Fatalf("customer add did not attach: %+v", c)
	}
	before := c

	// Nobody else may read or change it.
	denied := []struct {
		name, method, path string
		body               any
	}{
		{"get", "GET", base, nil},
		{"add", "POST", base + "/items", add},
		{"set", "PUT", base + "/items/" + p.ID, map[string]any{"quantity": 5}},
		{"remove", "DELETE", base + "/items/" + p.ID, nil},
		{"clear", "DELETE", base, nil},
		{"calculate", "POST", base + "/calculate?province=QC", nil},
		{"attach to self", "PUT", base + "/customer", map[string]any{"customer_id": "cus_B"}},
	}
	for _, d := range denied {
		h.Call(t, d.method, d.path, d.body, asB...).Problem(t, 403)
		h.Call(t, d.method, d.path, d.body, "X-API-Key", h.Keys.Cashier).Problem(t, 403)
		if d.name != "attach to self" {
			h.Call(t, d.method, d.path, d.body).Problem(t, 401) // anonymous
		}
	}
	// A may not give it away either.
	h.Call(t, "PUT", base+"/customer", map[string]any{"customer_id": "cus_B"}, asA...).Problem(t, 403)
	now, err := svc.Get(ctx, sid)
	must(t, err)
	if now.Version != before.Version || now.CustomerID != "cus_A" || len(now.Lines) != 2 {
		t.Fatalf("refused calls changed the cart: %+v", now)
	}

	// A, the service role and admin may.
	h.Call(t, "GET", base, nil, asA...).JSON(t, 200, nil)
	h.Call(t, "GET", base, nil, "X-API-Key", h.Keys.Service).JSON(t, 200, nil)
	h.Call(t, "GET", base, nil, "X-API-Key", h.Keys.Admin).JSON(t, 200, nil)
	h.Call(t, "PUT", base+"/items/"+p.ID, map[string]any{"quantity": 3}, "X-API-Key", h.Keys.Service).JSON(t, 200, &c)
	if c.Lines[0].Quantity != 3 || c.CustomerID != "cus_A" {
		t.Fatalf("service change: %+v", c)
	}
	if r := h.Call(t, "DELETE", base, nil, asA...); r.Status != http.StatusNoContent {
		t.Fatalf("owner's delete: %d %s", r.Status, r.Body)
	}
	h.Call(t, "GET", base, nil, asA...).Problem(t, 404)

	// A customer's first add makes a cart that is theirs from the start.
	own := "/api/v1/carts/" + session()
	h.Call(t, "POST", own+"/items", add, asB...).JSON(t, 200, &c)
	if c.CustomerID != "cus_B" {
		t.Fatalf("customer's new cart: %+v", c)
	}
	h.Call(t, "GET", own, nil, asA...).Problem(t, 403)

	// The attach route: customers attach themselves, the service anyone,
	// nobody without credentials.
	for _, who := range []struct {
		name     string
		headers  []string
		customer string
		status   int
	}{
		{"anonymous", nil, "cus_A", 401},
		{"cashier", []string{"X-API-Key", h.Keys.Cashier}, "cus_A", 403},
		{"customer for self", asA, "cus_A", 200},
		{"service for anyone", []string{"X-API-Key", h.Keys.Service}, "cus_C", 200},
	} {
		path := "/api/v1/carts/" + session()
		h.Call(t, "POST", path+"/items", add).JSON(t, 200, nil)
		r := h.Call(t, "PUT", path+"/customer", map[string]any{"customer_id": who.customer}, who.headers...)
		if who.status != 200 {
			r.Problem(t, who.status)
			continue
		}
		r.JSON(t, 200, &c)
		if c.CustomerID != who.customer {
			t.Fatalf("%s: attached to %q", who.name, c.CustomerID)
		}
	}
}

// TestServedBy: every cart response names the instance that served it,
// errors included (API.md), so a shopper's requests can be traced across
// the instances behind the gateway.
func TestServedBy(t *testing.T) {
	t.Parallel()
	h, _, catalog := serveCart(t)
	p := addProduct(t, catalog, "SB-1", 100)
	sid := session()
	base := "/api/v1/carts/" + sid
	calls := []struct {
		method, path string
		body         any
		status       int
	}{
		{"GET", base, nil, 404},
		{"POST", base + "/items", map[string]any{"product_id": p.ID, "quantity": 1}, 200},
		{"GET", base, nil, 200},
		{"PUT", base + "/items/" + p.ID, map[string]any{"quantity": 2}, 200},
		{"POST", base + "/calculate?province=ON", nil, 200},
		{"POST", base + "/items", map[string]any{"product_id": p.ID, "quantity": 0}, 400},
		{"DELETE", base + "/items/" + p.ID, nil, 200},
		{"DELETE", base, nil, 204},
		{"DELETE", base, nil, 204},
	}
	for _, c := range calls {
		r := h.Call(t, c.method, c.path, c.body)
		if r.Status != c.status {
			t.Fatalf("%s %s: %d, want %d: %s", c.method, c.path, r.Status, c.status, r.Body)
		}
		if got := r.Header.Get("X-Served-By"); got != "test" {
			t.Fatalf("%s %s: X-Served-By %q, want the instance id", c.method, c.path, got)
		}
	}
}

// TestCalculateShape pins the calculate answer of API.md: subtotal, tax
// lines, total, currency and lines, in snake_case.
func TestCalculateShape(t *testing.T) {
	t.Parallel()
	h, _, catalog := serveCart(t)
	a := addProduct(t, catalog, "CS-1", 2000)
	b := addProduct(t, catalog, "CS-2", 1000)
	base := "/api/v1/carts/" + session()
	h.Call(t, "POST", base+"/items", map[string]any{"product_id": a.ID, "quantity": 1}).JSON(t, 200, nil)
	h.Call(t, "POST", base+"/items", map[string]any{"product_id": b.ID, "quantity": 10}).JSON(t, 200, nil)

	var raw map[string]json.RawMessage
	h.Call(t, "POST", base+"/calculate?province=QC", nil).JSON(t, 200, &raw)
	var got struct {
		SubtotalCents int64 `json:"subtotal_cents"`
		Taxes         []struct {
			Name        string `json:"name"`
			Rate        string `json:"rate"`
			AmountCents int64  `json:"amount_cents"`
		} `json:"taxes"`
		TaxCents   int64  `json:"tax_cents"`
		TotalCents int64  `json:"total_cents"`
		Currency   string `json:"currency"`
		Lines      []struct {
			ProductID      string `json:"product_id"`
			UnitPriceCents int64  `json:"unit_price_cents"`
			Quantity       int    `json:"quantity"`
			LineTotalCents int64  `json:"line_total_cents"`
		} `json:"lines"`
	}
	for _, k := range []string{"subtotal_cents", "taxes", "tax_cents", "total_cents", "currency", "lines"} {
		if _, ok := raw[k]; !ok {
			t.Fatalf("calculate answer lacks %q", k)
		}
	}
	body, _ := json.Marshal(raw)
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.SubtotalCents != 12000 || got.TaxCents != 1798 || got.TotalCents != 13798 || got.Currency != "CAD" ||
		len(got.Taxes) != 2 || got.Taxes[0].Name != "GST" || got.Taxes[0].Rate != "5%" || got.Taxes[0].AmountCents != 600 ||
		got.Taxes[1].Name != "QST" || got.Taxes[1].Rate != "9.975%" || got.Taxes[1].AmountCents != 1198 ||
		len(got.Lines) != 2 || got.Lines[1].Quantity != 10 || got.Lines[1].LineTotalCents != 10000 {
		t.Fatalf("calculate: %s", body)
	}
}
