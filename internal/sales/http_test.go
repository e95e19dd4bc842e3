package sales

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// keys are the API keys of the test server: untied staff, and a cashier
// and a manager tied to each store.
type keys struct {
	admin, manager, cashier, service, agent string
	cashierMTL, cashierTOR, managerTOR      string
}

// httpEnv is the sales context behind the whole middleware chain, on the
// fixture's real catalog and inventory, with store-tied keys.
type httpEnv struct {
	*fixture
	h    *testkit.HTTP
	keys keys
}

func newHTTPEnv(t *testing.T) *httpEnv {
	t.Helper()
	f := newFixture(t, testkit.SQLite, false)
	k := keys{admin: auth.NewAPIKey(), manager: auth.NewAPIKey(), cashier: auth.NewAPIKey(), service: auth.NewAPIKey(),
		agent: auth.NewAPIKey(), cashierMTL: auth.NewAPIKey(), cashierTOR: auth.NewAPIKey(), managerTOR: auth.NewAPIKey()}
	p := func(role auth.Role, loc string) auth.Principal {
		return auth.Principal{Role: role, Subject: "key-" + string(role) + loc, Name: "test", LocationID: loc}
	}
	store := auth.Chain{
		auth.StaticKey{Key: k.admin, Principal: p(auth.RoleAdmin, "")},
		auth.StaticKey{Key: k.manager, Principal: p(auth.RoleManager, "")},
		auth.StaticKey{Key: k.cashier, Principal: p(auth.RoleCashier, "")},
		auth.StaticKey{Key: k.service, Principal: p(auth.RoleService, "")},
		auth.StaticKey{Key: k.agent, Principal: p(auth.RoleAgent, "")},
		auth.StaticKey{Key: k.cashierMTL, Principal: p(auth.RoleCashier, f.mtl.ID)},
		auth.StaticKey{Key: k.cashierTOR, Principal: p(auth.RoleCashier, f.tor.ID)},
		auth.StaticKey{Key: k.managerTOR, Principal: p(auth.RoleManager, f.tor.ID)},
	}
	srv := httpx.NewServer(httpx.ServerConfig{Title: "sales test", Version: "test", InstanceID: "test",
		Logger: testkit.Logger(), Registry: f.reg, Keys: store})
	Routes(srv.API, f.local)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &httpEnv{fixture: f, h: &testkit.HTTP{URL: ts.URL, Server: srv}, keys: k}
}

func key(k string) []string { return []string{"X-API-Key", k} }

// saleBody is a POST /sales body of one mug at reg, paid cash.
func (e *httpEnv) saleBody(reg Register) map[string]any {
	return map[string]any{"location_id": reg.LocationID, "register_id": reg.ID, "cashier_id": "c-1",
		"lines": []map[string]any{{"product_id": e.mug.ID, "quantity": 1}}, "payments": []map[string]any{{"method": "cash", "amount_cents": 1000}}}
}

// rows counts what the sales context has written, for "nothing written".
func (e *httpEnv) rows(t *testing.T) string {
	t.Helper()
	var parts []string
	for _, table := range []string{"sales", "sale_lines", "sale_payments", "returns", "return_lines"} {
		var n int64
		must(t, e.db.Table(table).Count(&n).Error)
		parts = append(parts, fmt.Sprintf("%s=%d", table, n))
	}
	return strings.Join(parts, " ")
}

// TestHTTPBadInput: every malformed request gets a 4xx problem+json naming
// the field at fault, and none writes anything, here or in the inventory.
func TestHTTPBadInput(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	reg, _ := e.till(t, e.mtl)
	closedReg := e.register(t, e.mtl, "No session")
	body := func(edit func(m map[string]any)) map[string]any {
		m := e.saleBody(reg)
		edit(m)
		return m
	}
	withLine := func(l map[string]any) map[string]any {
		return body(func(m map[string]any) { m["lines"] = []map[string]any{l} })
	}
	valid := `{"location_id":"` + e.mtl.ID + `","register_id":"` + reg.ID + `","cashier_id":"c-1","lines":[{"product_id":"` + e.mug.ID + `","quantity":1}],"payments":[{"method":"cash","amount_cents":1000}]`
	before := e.rows(t)

	cases := []struct {
		name   string
		body   any
		extra  []string
		status int
		field  string
	}{
		{"unknown register", body(func(m map[string]any) { m["register_id"] = "NOPE-R9" }), nil, 404, "register_id"},
		{"closed session", body(func(m map[string]any) { m["register_id"] = closedReg.ID }), nil, 409, ""},
		{"negative quantity", withLine(map[string]any{"product_id": e.mug.ID, "quantity": -1}), nil, 400, "lines[0].quantity"},
		{"quantity 0", withLine(map[string]any{"product_id": e.mug.ID, "quantity": 0}), nil, 400, "lines[0].quantity"},
		{"fractional quantity", withLine(map[string]any{"product_id": e.mug.ID, "quantity": 1.5}), nil, 400, "lines[0].quantity"},
		{"discount over 100", withLine(map[string]any{"product_id": e.mug.ID, "quantity": 1, "discount_percent": 101}), nil, 400, "lines[0].discount_percent"},
		{"negative discount", withLine(map[string]any{"product_id": e.mug.ID, "quantity": 1, "discount_percent": -5}), nil, 400, "lines[0].discount_percent"},
		{"tender short", body(func(m map[string]any) {
			m["payments"] = []map[string]any{{"method": "cash", "amount_cents": 100}}
		}), nil, 400, "payments"},
		{"negative tender", body(func(m map[string]any) {
			m["payments"] = []map[string]any{{"method": "cash", "amount_cents": -1000}}
		}), nil, 400, "payments[0].amount_cents"},
		{"unknown tender", body(func(m map[string]any) {
			m["payments"] = []map[string]any{{"method": "bitcoin", "amount_cents": 1000}}
		}), nil, 400, "payments[0].method"},
		{"missing payments", body(func(m map[string]any) { delete(m, "payments") }), nil, 400, "payments"},
		{"no lines", body(func(m map[string]any) { m["lines"] = []any{} }), nil, 400, "lines"},
		{"unknown product", withLine(map[string]any{"product_id": "prd_nope", "quantity": 1}), nil, 400, "lines[0].product_id"},
		{"unknown sku", withLine(map[string]any{"sku": "NOPE-1", "quantity": 1}), nil, 400, "lines[0].sku"},
		{"unknown field", valid + `,"tip_cents":100}`, nil, 400, "tip_cents"},
		{"unknown field in a line", strings.Replace(valid, `"quantity":1}`, `"quantity":1,"unit_price_cents":1}`, 1) + `}`, nil, 400, "lines[0].unit_price_cents"},
		{"malformed json", `{"location_id": "` + e.mtl.ID + `", "lines": [`, nil, 400, ""},
		{"empty body", ``, nil, 400, ""},
		{"body over 1 MiB", valid + `,"pad":"` + strings.Repeat("x", 1<<20) + `"}`, nil, 413, ""},
		{"sql in cashier", body(func(m map[string]any) { m["cashier_id"] = "x'; DROP TABLE sales; --" }), nil, 400, "cashier_id"},
		{"sql in register", body(func(m map[string]any) { m["register_id"] = "R1' OR '1'='1" }), nil, 400, "register_id"},
		{"sql in sku", withLine(map[string]any{"sku": "a'; DELETE FROM sale_lines; --", "quantity": 1}), nil, 400, "lines[0].sku"},
		{"bad idempotency key", e.saleBody(reg), []string{"Idempotency-Key", "two words"}, 400, "Idempotency-Key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.h.Call(t, http.MethodPost, "/api/v1/sales", c.body, append(key(e.keys.cashier), c.extra...)...).Problem(t, c.status)
			if c.field != "" && !testkit.HasField(p, c.field) {
				t.Errorf("problem does not name %q: %+v", c.field, p)
			}
		})
	}
	if after := e.rows(t); after != before {
		t.Fatalf("bad input wrote: %s → %s", before, after)
	}
	e.wantStock(t, e.mug.ID, e.mtl.ID, mtlMug, 0)

	// Sessions and registers.
	e.h.Call(t, http.MethodPost, "/api/v1/registers/NOPE-R9/sessions", map[string]any{"cashier_id": "c", "opening_float_cents": 0},
		key(e.keys.cashier)...).Problem(t, 404)
	p := e.h.Call(t, http.MethodPost, "/api/v1/registers/"+reg.ID+"/sessions", map[string]any{"cashier_id": "c", "opening_float_cents": -1},
		key(e.keys.cashier)...).Problem(t, 400)
	if !testkit.HasField(p, "opening_float_cents") {
		t.Errorf("negative float: %+v", p)
	}
	e.h.Call(t, http.MethodPost, "/api/v1/registers/"+reg.ID+"/sessions", map[string]any{"cashier_id": "c", "opening_float_cents": 0},
		key(e.keys.cashier)...).Problem(t, 409)
	p = e.h.Call(t, http.MethodPost, "/api/v1/registers", map[string]any{"location_id": "loc_nope", "name": "x"}, key(e.keys.manager)...).Problem(t, 400)
	if !testkit.HasField(p, "location_id") {
		t.Errorf("unknown location: %+v", p)
	}
	e.h.Call(t, http.MethodGet, "/api/v1/sales/sal_nope", nil, key(e.keys.cashier)...).Problem(t, 404)
	e.h.Call(t, http.MethodGet, "/api/v1/sales?from=yesterday", nil, key(e.keys.cashier)...).Problem(t, 400)
	e.h.Call(t, http.MethodGet, "/api/v1/sales?per_page=101", nil, key(e.keys.cashier)...).Problem(t, 400)

	// Returns.
	var sale Sale
	e.h.Call(t, http.MethodPost, "/api/v1/sales", e.saleBody(reg), key(e.keys.cashier)...).JSON(t, 201, &sale)
	retPath := "/api/v1/sales/" + sale.ID + "/returns"
	ret := func(qty any) map[string]any {
		return map[string]any{"register_id": reg.ID, "reason": "broken", "lines": []map[string]any{{"product_id": e.mug.ID, "quantity": qty}}}
	}
	before = e.rows(t)
	e.h.Call(t, http.MethodPost, retPath, ret(2), key(e.keys.cashier)...).Problem(t, 409)
	p = e.h.Call(t, http.MethodPost, retPath, ret(0), key(e.keys.cashier)...).Problem(t, 400)
	if !testkit.HasField(p, "lines[0].quantity") {
		t.Errorf("return of 0: %+v", p)
	}
	e.h.Call(t, http.MethodPost, retPath, map[string]any{"register_id": reg.ID, "reason": "", "lines": ret(1)["lines"]}, key(e.keys.cashier)...).Problem(t, 400)
	e.h.Call(t, http.MethodPost, "/api/v1/sales/sal_nope/returns", ret(1), key(e.keys.cashier)...).Problem(t, 404)
	if after := e.rows(t); after != before {
		t.Fatalf("bad returns wrote: %s → %s", before, after)
	}

	// Free text with SQL metacharacters is just text, stored verbatim.
	evil := `Robert'); DROP TABLE returns;-- "%_\`
	var r SaleReturn
	e.h.Call(t, http.MethodPost, retPath, map[string]any{"register_id": reg.ID, "reason": evil, "lines": ret(1)["lines"]},
		key(e.keys.cashier)...).JSON(t, 201, &r)
	var rets httpx.List[SaleReturn]
	e.h.Call(t, http.MethodGet, retPath, nil, key(e.keys.cashier)...).JSON(t, 200, &rets)
	if len(rets.Data) != 1 || rets.Data[0].Reason != evil {
		t.Fatalf("reason round trip: %+v", rets.Data)
	}
}

// TestHTTPAccess: credentials, roles, store ties, discounts and
// cross-store returns over real HTTP.
func TestHTTPAccess(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	var mtlReg, torReg Register
	e.h.Call(t, http.MethodPost, "/api/v1/registers", map[string]any{"location_id": e.mtl.ID, "name": "Front"}, key(e.keys.manager)...).JSON(t, 201, &mtlReg)
	e.h.Call(t, http.MethodPost, "/api/v1/registers", map[string]any{"id": "TOR-01-R7", "location_id": e.tor.ID, "name": "Back"}, key(e.keys.admin)...).JSON(t, 201, &torReg)
	if mtlReg.ID != "MTL-01-R1" || torReg.ID != "TOR-01-R7" {
		t.Fatalf("registers %s, %s", mtlReg.ID, torReg.ID)
	}
	open := func(reg Register, k string) {
		e.h.Call(t, http.MethodPost, "/api/v1/registers/"+reg.ID+"/sessions", map[string]any{"cashier_id": "c-1", "opening_float_cents": 5000},
			key(k)...).JSON(t, 201, nil)
	}
	open(mtlReg, e.keys.cashierMTL)
	open(torReg, e.keys.cashierTOR)

	// Credentials and roles.
	e.h.Call(t, http.MethodPost, "/api/v1/sales", e.saleBody(mtlReg)).Problem(t, 401)
	e.h.Call(t, http.MethodGet, "/api/v1/sales", nil).Problem(t, 401)
	e.h.Call(t, http.MethodPost, "/api/v1/sales", e.saleBody(mtlReg), key("pos_notakeyatall000000000000")...).Problem(t, 401)
	e.h.Call(t, http.MethodPost, "/api/v1/sales", e.saleBody(mtlReg), key(e.keys.service)...).Problem(t, 403)
	e.h.Call(t, http.MethodPost, "/api/v1/sales", e.saleBody(mtlReg), key(e.keys.agent)...).Problem(t, 403)
	e.h.Call(t, http.MethodPost, "/api/v1/registers", map[string]any{"location_id": e.mtl.ID, "name": "x"}, key(e.keys.cashier)...).Problem(t, 403)
	e.h.Call(t, http.MethodGet, "/api/v1/registers?location_id="+e.mtl.ID, nil, key(e.keys.service)...).JSON(t, 200, nil)
	// A cashier's key tied to Toronto sells only in Toronto.
	e.h.Call(t, http.MethodPost, "/api/v1/sales", e.saleBody(mtlReg), key(e.keys.cashierTOR)...).Problem(t, 403)
	e.h.Call(t, http.MethodPost, "/api/v1/registers/"+mtlReg.ID+"/sessions", map[string]any{"cashier_id": "c", "opening_float_cents": 0},
		key(e.keys.cashierTOR)...).Problem(t, 403)

	// Discounts over 20 % need a manager.
	disc := e.saleBody(mtlReg)
	disc["lines"] = []map[string]any{{"product_id": e.grinder.ID, "quantity": 1, "discount_percent": 25}}
	disc["payments"] = []map[string]any{{"method": "card", "amount_cents": 10646}}
	p := e.h.Call(t, http.MethodPost, "/api/v1/sales", disc, key(e.keys.cashierMTL)...).Problem(t, 403)
	if !testkit.HasField(p, "lines[0].discount_percent") {
		t.Errorf("403 does not name the discount: %+v", p)
	}
	e.wantStock(t, e.grinder.ID, e.mtl.ID, mtlGrinder, 0)
	var discounted Sale
	e.h.Call(t, http.MethodPost, "/api/v1/sales", disc, key(e.keys.manager)...).JSON(t, 201, &discounted)
	if discounted.TotalCents != 10646 {
		t.Fatalf("discounted total %d", discounted.TotalCents)
	}
	small := e.saleBody(mtlReg)
	small["lines"] = []map[string]any{{"product_id": e.mug.ID, "quantity": 1, "discount_percent": 20}}
	e.h.Call(t, http.MethodPost, "/api/v1/sales", small, key(e.keys.cashierMTL)...).JSON(t, 201, nil)

	// Idempotency-Key: the replay answers 200 with the same sale.
	var first, again Sale
	e.h.Call(t, http.MethodPost, "/api/v1/sales", e.saleBody(mtlReg), append(key(e.keys.cashierMTL), "Idempotency-Key", "k-1")...).JSON(t, 201, &first)
	e.h.Call(t, http.MethodPost, "/api/v1/sales", e.saleBody(mtlReg), append(key(e.keys.cashierMTL), "Idempotency-Key", "k-1")...).JSON(t, 200, &again)
	if first.ID != again.ID {
		t.Fatalf("replay made sale %s after %s", again.ID, first.ID)
	}
	other := e.saleBody(mtlReg)
	other["cashier_id"] = "c-2"
	e.h.Call(t, http.MethodPost, "/api/v1/sales", other, append(key(e.keys.cashierMTL), "Idempotency-Key", "k-1")...).Problem(t, 422)

	// A return of a Montréal sale at a Toronto register: not for a
	// cashier tied to Toronto (nor to Montréal: the register is not
	// theirs), fine for a manager.
	retBody := map[string]any{"register_id": torReg.ID, "reason": "moved away",
		"lines": []map[string]any{{"product_id": e.mug.ID, "quantity": 1}}}
	retPath := "/api/v1/sales/" + first.ID + "/returns"
	e.h.Call(t, http.MethodPost, retPath, retBody, key(e.keys.cashierTOR)...).Problem(t, 403)
	e.h.Call(t, http.MethodPost, retPath, retBody, key(e.keys.cashierMTL)...).Problem(t, 403)
	e.h.Call(t, http.MethodPost, retPath, retBody, key(e.keys.cashier)...).Problem(t, 403)
	var crossed SaleReturn
	e.h.Call(t, http.MethodPost, retPath, retBody, key(e.keys.managerTOR)...).JSON(t, 201, &crossed)
	if crossed.LocationID != e.tor.ID || crossed.SessionID == "" || !crossed.Restocked {
		t.Fatalf("cross-store return: %+v", crossed)
	}
	e.wantStock(t, e.mug.ID, e.tor.ID, 1, 0) // the mug is back on a Toronto shelf
	// The cashier at the sale's own store may return there.
	e.h.Call(t, http.MethodPost, "/api/v1/sales/"+discounted.ID+"/returns", map[string]any{"register_id": mtlReg.ID, "reason": "x",
		"lines": []map[string]any{{"product_id": e.grinder.ID, "quantity": 1}}}, key(e.keys.cashierMTL)...).JSON(t, 201, nil)

	// The receipt is text/plain, 58 columns; JSON when asked.
	r := e.h.Call(t, http.MethodGet, "/api/v1/sales/"+discounted.ID+"/receipt", nil, key(e.keys.cashierMTL)...)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("receipt: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	for _, l := range strings.Split(string(r.Body), "\n") {
		if utf8.RuneCountInString(l) > ReceiptWidth {
			t.Fatalf("receipt line %q", l)
		}
	}
	if !strings.Contains(string(r.Body), money(10646)) {
		t.Fatalf("receipt lacks the total:\n%s", r.Body)
	}
	var rc SaleReceipt
	e.h.Call(t, http.MethodGet, "/api/v1/sales/"+discounted.ID+"/receipt", nil, append(key(e.keys.cashier), "Accept", "application/json")...).JSON(t, 200, &rc)
	if rc.Text != string(r.Body) {
		t.Fatal("JSON receipt differs from the text one")
	}
	e.h.Call(t, http.MethodGet, "/api/v1/sales/"+discounted.ID+"/receipt", nil, key(e.keys.agent)...).Problem(t, 403)

	// Lists: completed sales only, filtered, for the service key too.
	var list httpx.List[Sale]
	from := time.Now().UTC().Add(-24 * time.Hour).Format(time.RFC3339)
	e.h.Call(t, http.MethodGet, "/api/v1/sales?location_id="+e.mtl.ID+"&register_id="+mtlReg.ID+"&from="+from+"&per_page=2",
		nil, key(e.keys.service)...).JSON(t, 200, &list)
	if list.Meta.Total != 3 || len(list.Data) != 2 {
		t.Fatalf("list: %+v", list.Meta)
	}

	// Metrics are on /metrics.
	m := e.h.Call(t, http.MethodGet, "/metrics", nil)
	for _, want := range []string{`sales_total{location="` + e.mtl.ID + `"} 3`, "register_sessions_open 2", "returns_total 2"} {
		if !strings.Contains(string(m.Body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
