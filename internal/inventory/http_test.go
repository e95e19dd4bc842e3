package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// httpEnv is the inventory behind the real middleware chain, with a
// product stocked at one location.
type httpEnv struct {
	*fixture
	h            *testkit.HTTP
	prod, loc    string
	reservations string
}

func newHTTPEnv(t testing.TB) *httpEnv {
	t.Helper()
	f := newFixture(t, testkit.SQLite, false)
	e := &httpEnv{fixture: f, h: testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, f.svc) })}
	e.prod = f.product(t, "HTTP-1", 2)
	e.loc = f.location(t, "HTTP")
	f.receive(t, e.prod, e.loc, 10)
	return e
}

// response is one HTTP answer, with the problem decoded when it is one.
type response struct {
	status  int
	header  http.Header
	body    []byte
	problem httpx.Problem
}

func (e *httpEnv) do(t testing.TB, method, path, key string, body []byte) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.h.URL+httpx.APIPrefix+path, rd)
	must(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	out := response{status: resp.StatusCode, header: resp.Header}
	out.body, err = io.ReadAll(resp.Body)
	must(t, err)
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, httpx.ProblemContentType) {
			t.Errorf("%s %s: %d with Content-Type %q, want %s", method, path, resp.StatusCode, ct, httpx.ProblemContentType)
		}
		if err := json.Unmarshal(out.body, &out.problem); err != nil || out.problem.Status != resp.StatusCode {
			t.Errorf("%s %s: problem body %q does not decode (%v)", method, path, out.body, err)
		}
	}
	return out
}

// snapshot is everything the inventory has written, to prove a refused
// request wrote nothing.
func (e *httpEnv) snapshot(t testing.TB) string {
	t.Helper()
	var parts []string
	for _, table := range []string{"locations", "stock", "stock_movements", "adjustments", "reservations", "reservation_items", "transfers"} {
		var n int64
		must(t, e.db.Table(table).Count(&n).Error)
		parts = append(parts, fmt.Sprintf("%s=%d", table, n))
	}
	var sums struct{ OnHand, Reserved int64 }
	must(t, e.db.Raw(`SELECT COALESCE(SUM(on_hand), 0) AS on_hand, COALESCE(SUM(reserved), 0) AS reserved FROM stock`).Scan(&sums).Error)
	return strings.Join(parts, " ") + fmt.Sprintf(" on_hand=%d reserved=%d", sums.OnHand, sums.Reserved)
}

// TestHTTPBadInput sends bad requests over real HTTP: each gets a 4xx
// problem+json naming the field at fault, and none writes anything.
func TestHTTPBadInput(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	svcKey, mgrKey, admKey := e.h.Keys.Service, e.h.Keys.Manager, e.h.Keys.Admin
	line := func(extra string) string {
		return `{"reservation_id":"bad-1","items":[{"product_id":"` + e.prod + `","location_id":"` + e.loc + `","quantity":1` + extra + `}]}`
	}
	tooMany := make([]string, MaxItems+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf(`{"product_id":"p%d","location_id":"%s","quantity":1}`, i, e.loc)
	}
	huge := `{"reservation_id":"big","items":[{"product_id":"` + e.prod + `","location_id":"` + e.loc + `","quantity":1}],"pad":"` + strings.Repeat("x", 1<<20) + `"}`
	const sql = `x'; DROP TABLE stock; --`

	cases := []struct {
		name         string
		method, path string
		key          string
		body         string
		status       int
		field        string // "" when the problem names no field
		detail       string // a substring of the detail, when it matters
	}{
		// Reservations.
		{"malformed json", "POST", "/inventory/reservations", svcKey, `{"reservation_id":`, 400, "body", ""},
		{"not an object", "POST", "/inventory/reservations", svcKey, `[1,2]`, 400, "body", ""},
		{"empty body", "POST", "/inventory/reservations", svcKey, ``, 400, "", "body is required"},
		{"id of wrong type", "POST", "/inventory/reservations", svcKey, `{"reservation_id":5,"items":[]}`, 400, "reservation_id", ""},
		{"quantity of wrong type", "POST", "/inventory/reservations", svcKey, strings.Replace(line(""), `"quantity":1`, `"quantity":"two"`, 1), 400, "items[0].quantity", ""},
		{"fractional quantity", "POST", "/inventory/reservations", svcKey, strings.Replace(line(""), `"quantity":1`, `"quantity":1.5`, 1), 400, "items[0].quantity", ""},
		{"missing items", "POST", "/inventory/reservations", svcKey, `{"reservation_id":"bad-1"}`, 400, "items", ""},
		{"null items", "POST", "/inventory/reservations", svcKey, `{"reservation_id":"bad-1","items":null}`, 400, "items", ""},
		{"missing quantity", "POST", "/inventory/reservations", svcKey, strings.Replace(line(""), `,"quantity":1`, ``, 1), 400, "items[0].quantity", ""},
		{"unknown field", "POST", "/inventory/reservations", svcKey, strings.Replace(line(""), `"items"`, `"price_cents":1,"items"`, 1), 400, "price_cents", ""},
		{"unknown field in a line", "POST", "/inventory/reservations", svcKey, line(`,"discount":5`), 400, "items[0].discount", ""},
		{"zero quantity", "POST", "/inventory/reservations", svcKey, strings.Replace(line(""), `"quantity":1`, `"quantity":0`, 1), 400, "items[0].quantity", ""},
		{"negative quantity", "POST", "/inventory/reservations", svcKey, strings.Replace(line(""), `"quantity":1`, `"quantity":-4`, 1), 400, "items[0].quantity", ""},
		{"no items", "POST", "/inventory/reservations", svcKey, `{"reservation_id":"bad-1","items":[]}`, 400, "items", ""},
		{"too many items", "POST", "/inventory/reservations", svcKey, `{"reservation_id":"bad-1","items":[` + strings.Join(tooMany, ",") + `]}`, 400, "items", ""},
		{"ttl too long", "POST", "/inventory/reservations", svcKey, strings.Replace(line(""), `"items"`, `"ttl_seconds":90000,"items"`, 1), 400, "ttl_seconds", ""},
		{"sql in reservation id", "POST", "/inventory/reservations", svcKey, strings.Replace(line(""), `"bad-1"`, `"`+sql+`"`, 1), 400, "reservation_id", ""},
		{"sql in product id", "POST", "/inventory/reservations", svcKey, strings.Replace(line(""), e.prod, sql, 1), 400, "items[0].product_id", ""},
		{"unknown product", "POST", "/inventory/reservations", svcKey, strings.Replace(line(""), e.prod, "prd_nope", 1), 400, "items[0].product_id", ""},
		{"unknown location", "POST", "/inventory/reservations", svcKey, strings.Replace(line(""), e.loc, "loc_nope", 1), 400, "items[0].location_id", ""},
		{"duplicate line", "POST", "/inventory/reservations", svcKey, `{"reservation_id":"bad-1","items":[{"product_id":"` + e.prod + `","location_id":"` + e.loc + `","quantity":1},{"product_id":"` + e.prod + `","location_id":"` + e.loc + `","quantity":2}]}`, 400, "items[1]", ""},
		{"more than in stock", "POST", "/inventory/reservations", svcKey, strings.Replace(line(""), `"quantity":1`, `"quantity":11`, 1), 409, "", "items[0]"},
		{"body over 1 MiB", "POST", "/inventory/reservations", svcKey, huge, 413, "", ""},
		{"commit unknown", "POST", "/inventory/reservations/res_nope/commit", svcKey, ``, 404, "", "res_nope"},
		{"release unknown", "DELETE", "/inventory/reservations/res_nope", svcKey, ``, 404, "", "res_nope"},
		{"path id too long", "GET", "/inventory/reservations/" + strings.Repeat("r", 65), svcKey, ``, 400, "id", ""},

		// Adjustments.
		{"delta of wrong type", "POST", "/inventory/adjustments", mgrKey, `{"product_id":"` + e.prod + `","location_id":"` + e.loc + `","delta":"5","reason":"receipt"}`, 400, "delta", ""},
		{"zero delta", "POST", "/inventory/adjustments", mgrKey, `{"product_id":"` + e.prod + `","location_id":"` + e.loc + `","delta":0,"reason":"count"}`, 400, "delta", ""},
		{"damage that adds", "POST", "/inventory/adjustments", mgrKey, `{"product_id":"` + e.prod + `","location_id":"` + e.loc + `","delta":3,"reason":"damage"}`, 400, "delta", ""},
		{"unknown reason", "POST", "/inventory/adjustments", mgrKey, `{"product_id":"` + e.prod + `","location_id":"` + e.loc + `","delta":3,"reason":"found"}`, 400, "reason", ""},
		{"missing reason", "POST", "/inventory/adjustments", mgrKey, `{"product_id":"` + e.prod + `","location_id":"` + e.loc + `","delta":3}`, 400, "reason", ""},
		{"adjust unknown product", "POST", "/inventory/adjustments", mgrKey, `{"product_id":"prd_nope","location_id":"` + e.loc + `","delta":3,"reason":"receipt"}`, 400, "product_id", ""},
		{"adjust unknown location", "POST", "/inventory/adjustments", mgrKey, `{"product_id":"` + e.prod + `","location_id":"loc_nope","delta":3,"reason":"receipt"}`, 400, "location_id", ""},
		{"adjust below zero", "POST", "/inventory/adjustments", mgrKey, `{"product_id":"` + e.prod + `","location_id":"` + e.loc + `","delta":-11,"reason":"theft"}`, 409, "", "on_hand 10"},
		{"sql in location id", "POST", "/inventory/adjustments", mgrKey, `{"product_id":"` + e.prod + `","location_id":"` + sql + `","delta":3,"reason":"receipt"}`, 400, "location_id", ""},

		// Locations.
		{"unknown kind", "POST", "/locations", admKey, `{"code":"X1","name":"x","kind":"mall","province":"QC"}`, 400, "kind", ""},
		{"unknown province", "POST", "/locations", admKey, `{"code":"X1","name":"x","kind":"store","province":"XX"}`, 400, "province", ""},
		{"missing name", "POST", "/locations", admKey, `{"code":"X1","kind":"store","province":"QC"}`, 400, "name", ""},
		{"sql in code", "POST", "/locations", admKey, `{"code":"` + sql + `","name":"x","kind":"store","province":"QC"}`, 400, "code", ""},
		{"taken code", "POST", "/locations", admKey, `{"code":"HTTP","name":"x","kind":"store","province":"QC"}`, 409, "", "HTTP"},

		// Transfers.
		{"negative transfer", "POST", "/inventory/transfers", mgrKey, `{"product_id":"` + e.prod + `","from_location_id":"` + e.loc + `","to_location_id":"loc_x","quantity":-3}`, 400, "quantity", ""},
		{"transfer to itself", "POST", "/inventory/transfers", mgrKey, `{"product_id":"` + e.prod + `","from_location_id":"` + e.loc + `","to_location_id":"` + e.loc + `","quantity":3}`, 400, "to_location_id", ""},
		{"transfer to nowhere", "POST", "/inventory/transfers", mgrKey, `{"product_id":"` + e.prod + `","from_location_id":"` + e.loc + `","to_location_id":"loc_nope","quantity":3}`, 400, "to_location_id", ""},
		{"approve unknown", "POST", "/inventory/transfers/trf_nope/approve", mgrKey, ``, 404, "", "trf_nope"},

		// Queries.
		{"bad boolean", "GET", "/inventory?low_stock=maybe", mgrKey, ``, 400, "low_stock", ""},
		{"page too big", "GET", "/inventory?per_page=1000", mgrKey, ``, 400, "per_page", ""},
		{"page zero", "GET", "/inventory?page=0", mgrKey, ``, 400, "page", ""},
		{"sql in filter", "GET", "/inventory?location_id=x'%20OR%20'1'='1", mgrKey, ``, 400, "location_id", ""},
		{"bad transfer status", "GET", "/inventory/transfers?status=lost", mgrKey, ``, 400, "status", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot(t)
			var body []byte
			if c.body != "" || c.method == "POST" {
				body = []byte(c.body)
			}
			r := e.do(t, c.method, c.path, c.key, body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if c.field != "" && !problemNames(r.problem, c.field) {
				t.Errorf("problem does not name %q: %s", c.field, r.body)
			}
			if c.detail != "" && !strings.Contains(r.problem.Detail, c.detail) {
				t.Errorf("detail %q does not mention %q", r.problem.Detail, c.detail)
			}
			if after := e.snapshot(t); after != before {
				t.Errorf("a refused request wrote:\n before %s\n after  %s", before, after)
			}
		})
	}
}

func problemNames(p httpx.Problem, field string) bool {
	for _, f := range p.Errors {
		if f.Field == field {
			return true
		}
	}
	return false
}

// TestHTTPFreeTextIsStoredVerbatim: SQL metacharacters in free text are
// data, not a reason to refuse; parameters keep them inert.
func TestHTTPFreeTextIsStoredVerbatim(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	name := `Robert'); DROP TABLE stock;-- "quoted" \ 100%_`
	r := e.do(t, "POST", "/locations", e.h.Keys.Admin, []byte(`{"code":"BOBBY","name":`+jsonString(name)+`,"kind":"store","province":"ON","address":`+jsonString(name)+`}`))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var l Location
	must(t, json.Unmarshal(r.body, &l))
	got, err := e.svc.GetLocation(context.Background(), l.ID)
	must(t, err)
	if got.Name != name || got.Address != name {
		t.Fatalf("stored %q / %q", got.Name, got.Address)
	}
	e.wantLevel(t, e.prod, e.loc, 10, 0) // the stock table is still there
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestHTTPReservationReplay: 201 then 200 with the same body; other items
// 409; commit of an expired reservation 410.
func TestHTTPReservationReplay(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	key := e.h.Keys.Service
	body := []byte(`{"reservation_id":"sag_http","items":[{"product_id":"` + e.prod + `","location_id":"` + e.loc + `","quantity":2}],"ttl_seconds":60}`)
	first := e.do(t, "POST", "/inventory/reservations", key, body)
	if first.status != http.StatusCreated {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	again := e.do(t, "POST", "/inventory/reservations", key, body)
	if again.status != http.StatusOK || !bytes.Equal(again.body, first.body) {
		t.Fatalf("replay: %d %s, want 200 %s", again.status, again.body, first.body)
	}
	other := e.do(t, "POST", "/inventory/reservations", key, bytes.Replace(body, []byte(`"quantity":2`), []byte(`"quantity":3`), 1))
	if other.status != http.StatusConflict {
		t.Fatalf("other items: %d %s", other.status, other.body)
	}
	e.wantLevel(t, e.prod, e.loc, 10, 2)
	e.clock.Advance(61 * time.Second)
	gone := e.do(t, "POST", "/inventory/reservations/sag_http/commit", key, nil)
	if gone.status != http.StatusGone {
		t.Fatalf("commit expired: %d %s", gone.status, gone.body)
	}
	rel := e.do(t, "DELETE", "/inventory/reservations/sag_http", key, nil)
	if rel.status != http.StatusOK || !strings.Contains(string(rel.body), `"status":"expired"`) {
		t.Fatalf("release expired: %d %s", rel.status, rel.body)
	}
	exp := e.do(t, "POST", "/inventory/reservations/expire", key, nil)
	if exp.status != http.StatusOK || string(bytes.TrimSpace(exp.body)) != `{"expired":0}` {
		t.Fatalf("sweep: %d %s", exp.status, exp.body)
	}
	e.wantLevel(t, e.prod, e.loc, 10, 0)
}

// TestHTTPAccess checks every route against every kind of caller: 401
// without or with bad credentials, 403 for a customer or a staff role the
// route does not let in, and neither for the roles it does.
func TestHTTPAccess(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	k := e.h.Keys
	customer, err := e.h.Tokens.Issue("cus_1", "c@example.com")
	must(t, err)
	type caller struct {
		name   string
		header [2]string
	}
	callers := []caller{
		{"admin", [2]string{"X-API-Key", k.Admin}}, {"manager", [2]string{"X-API-Key", k.Manager}},
		{"cashier", [2]string{"X-API-Key", k.Cashier}}, {"agent", [2]string{"X-API-Key", k.Agent}},
		{"service", [2]string{"X-API-Key", k.Service}}, {"customer", [2]string{"Authorization", "Bearer " + customer}},
	}
	routes := []struct {
		method, path string
		allowed      string
	}{
		{"GET", "/locations", "admin manager cashier agent service"},
		{"POST", "/locations", "admin"},
		{"GET", "/locations/loc_x", "admin manager cashier agent service"},
		{"GET", "/inventory", "admin manager cashier service"},
		{"POST", "/inventory/adjustments", "admin manager service"},
		{"POST", "/inventory/reservations", "admin service"},
		{"POST", "/inventory/reservations/expire", "admin service"},
		{"GET", "/inventory/reservations/res_x", "admin service"},
		{"POST", "/inventory/reservations/res_x/commit", "admin service"},
		{"DELETE", "/inventory/reservations/res_x", "admin service"},
		{"GET", "/inventory/transfers", "admin manager cashier service"},
		{"POST", "/inventory/transfers", "admin manager cashier service"},
		{"GET", "/inventory/transfers/trf_x", "admin manager cashier service"},
		{"POST", "/inventory/transfers/trf_x/approve", "admin manager"},
		{"POST", "/inventory/transfers/trf_x/reject", "admin manager"},
	}
	send := func(method, path string, header [2]string) int {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(`{}`) // invalid everywhere: no allowed call writes
		}
		req, err := http.NewRequest(method, e.h.URL+httpx.APIPrefix+path, body)
		must(t, err)
		req.Header.Set("Content-Type", "application/json")
		if header[0] != "" {
			req.Header.Set(header[0], header[1])
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	before := e.snapshot(t)
	for _, rt := range routes {
		if got := send(rt.method, rt.path, [2]string{}); got != http.StatusUnauthorized {
			t.Errorf("%s %s without credentials: %d, want 401", rt.method, rt.path, got)
		}
		if got := send(rt.method, rt.path, [2]string{"X-API-Key", "pos_not_a_real_key_at_all_000000"}); got != http.StatusUnauthorized {
			t.Errorf("%s %s with a bad key: %d, want 401", rt.method, rt.path, got)
		}
		for _, c := range callers {
			got := send(rt.method, rt.path, c.header)
			allowed := strings.Contains(" "+rt.allowed+" ", " "+c.name+" ")
			switch {
			case allowed && (got == http.StatusUnauthorized || got == http.StatusForbidden):
				t.Errorf("%s %s as %s: %d, want it let in", rt.method, rt.path, c.name, got)
			case !allowed && got != http.StatusForbidden:
				t.Errorf("%s %s as %s: %d, want 403", rt.method, rt.path, c.name, got)
			}
		}
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("access checks wrote:\n before %s\n after  %s", before, after)
	}
}
