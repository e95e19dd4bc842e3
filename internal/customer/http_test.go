package customer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
)

// httpEnv is the customer context behind a real server, with the service
// at hand to check what the HTTP calls did (and did not) write.
type httpEnv struct {
	*testServer
	svc   Service
	clock *testClock
}

func newHTTPEnv(t *testing.T, trustProxy bool) httpEnv {
	t.Helper()
	tokens, clock := newTokens(t), newTestClock()
	svc := newLocal(t, testkit.SQLite, tokens, clock)
	return httpEnv{testServer: serve(t, svc, tokens, trustProxy), svc: svc, clock: clock}
}

// problem checks r is an RFC 9457 problem with status and, when field is
// set, that it names field.
func problem(t *testing.T, what string, r response, status int, field string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d: %s", what, r.status, status, r.body)
		return
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, httpx.ProblemContentType) {
		t.Errorf("%s: content type %q: %s", what, ct, r.body)
		return
	}
	var p httpx.Problem
	if err := json.Unmarshal(r.body, &p); err != nil || p.Status != status || p.Type == "" {
		t.Errorf("%s: not a problem document (%v): %s", what, err, r.body)
		return
	}
	if field == "" {
		return
	}
	for _, f := range p.Errors {
		if f.Field == field {
			return
		}
	}
	t.Errorf("%s: problem does not name %q: %s", what, field, r.body)
}

// decode reads a 2xx JSON body.
func decode[T any](t *testing.T, what string, r response, status int) T {
	t.Helper()
	var out T
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.body)
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("%s: %v: %s", what, err, r.body)
	}
	return out
}

func (e httpEnv) register(t *testing.T, email string) Customer {
	t.Helper()
	body := fmt.Sprintf(`{"email":%q,"password":"correct horse","first_name":"Test","last_name":"Person"}`, email)
	r := e.call(t, http.MethodPost, "/auth/register", nil, body)
	if strings.Contains(string(r.body), "password") || strings.Contains(string(r.body), "$2a$") {
		t.Fatalf("register answer mentions the password: %s", r.body)
	}
	return decode[Customer](t, "register "+email, r, http.StatusCreated)
}

func (e httpEnv) login(t *testing.T, email string) string {
	t.Helper()
	body := fmt.Sprintf(`{"email":%q,"password":"correct horse"}`, email)
	s := decode[Session](t, "login "+email, e.call(t, http.MethodPost, "/auth/login", nil, body), http.StatusOK)
	return s.Token
}

const goodAddress = `{"line1":"1 Rue Sainte-Catherine","city":"Montréal","province":"QC","postal_code":"H2X 1Y4"}`

func TestHTTPOwnership(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, false)
	ctx := context.Background()
	a, b := e.register(t, "a@example.com"), e.register(t, "b@example.com")
	tokA, tokB := bearer(e.login(t, "a@example.com")), bearer(e.login(t, "b@example.com"))
	decode[Address](t, "A adds own address", e.call(t, http.MethodPost, "/customers/"+a.ID+"/addresses", tokA, goodAddress), http.StatusCreated)
	bAddr := decode[Address](t, "B adds own address", e.call(t, http.MethodPost, "/customers/"+b.ID+"/addresses", tokB, goodAddress), http.StatusCreated)

	me := decode[Customer](t, "me", e.call(t, http.MethodGet, "/customers/me", tokA, ""), http.StatusOK)
	if me.ID != a.ID || me.Email != "a@example.com" {
		t.Fatalf("/customers/me answered %+v", me)
	}
	decode[Customer](t, "A reads own record", e.call(t, http.MethodGet, "/customers/"+a.ID, tokA, ""), http.StatusOK)

	// A against B: every route refuses, whether B's records exist or not.
	bAddrPath := "/customers/" + b.ID + "/addresses/" + bAddr.ID
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/customers/" + b.ID, ""},
		{http.MethodPut, "/customers/" + b.ID, `{"first_name":"Mallory"}`},
		{http.MethodGet, "/customers/" + b.ID + "/addresses", ""},
		{http.MethodPost, "/customers/" + b.ID + "/addresses", goodAddress},
		{http.MethodPut, bAddrPath, `{"city":"Laval"}`},
		{http.MethodDelete, bAddrPath, ""},
		{http.MethodGet, "/customers/cus_does_not_exist", ""},
	} {
		problem(t, "A: "+c.method+" "+c.path, e.call(t, c.method, c.path, tokA, c.body), http.StatusForbidden, "")
	}
	// B's address id under A's own path is not found, not changed.
	problem(t, "B's address under A's path", e.call(t, http.MethodPut, "/customers/"+a.ID+"/addresses/"+bAddr.ID, tokA, `{"city":"Laval"}`), http.StatusNotFound, "")
	gotB, err := e.svc.GetCustomer(ctx, b.ID)
	must(t, err)
	bAddrs, err := e.svc.ListAddresses(ctx, b.ID)
	must(t, err)
	if gotB.FirstName != "Test" || gotB.Version != 1 || len(bAddrs) != 1 || bAddrs[0].City != "Montréal" {
		t.Fatalf("B changed: %+v %+v", gotB, bAddrs)
	}

	// Customers never reach staff routes.
	problem(t, "customer lists customers", e.call(t, http.MethodGet, "/customers", tokA, ""), http.StatusForbidden, "")
	problem(t, "customer creates a key", e.call(t, http.MethodPost, "/api-keys", tokA, `{"name":"x","role":"admin"}`), http.StatusForbidden, "")
	problem(t, "customer lists keys", e.call(t, http.MethodGet, "/api-keys", tokA, ""), http.StatusForbidden, "")

	// Without or with broken credentials: 401.
	for _, c := range []struct {
		what   string
		header map[string]string
	}{
		{"no credentials", nil},
		{"garbage token", bearer("not.a.jwt")},
		{"basic auth", map[string]string{"Authorization": "Basic YTpi"}},
		{"unknown key", apiKey(auth.NewAPIKey())},
	} {
		for _, path := range []string{"/customers/me", "/customers/" + a.ID, "/customers", "/api-keys", "/auth/whoami"} {
			problem(t, c.what+" "+path, e.call(t, http.MethodGet, path, c.header, ""), http.StatusUnauthorized, "")
		}
	}

	// Staff by role: a cashier does not read customers, a manager reads
	// but does not write, an admin writes.
	keyFor := func(role auth.Role) map[string]string {
		k, err := e.svc.CreateAPIKey(ctx, NewAPIKey{Name: string(role), Role: role})
		must(t, err)
		return apiKey(k.Key)
	}
	cashier, manager := keyFor(auth.RoleCashier), keyFor(auth.RoleManager)
	problem(t, "cashier reads a customer", e.call(t, http.MethodGet, "/customers/"+a.ID, cashier, ""), http.StatusForbidden, "")
	problem(t, "cashier lists customers", e.call(t, http.MethodGet, "/customers", cashier, ""), http.StatusForbidden, "")
	decode[Customer](t, "manager reads a customer", e.call(t, http.MethodGet, "/customers/"+a.ID, manager, ""), http.StatusOK)
	list := decode[httpx.List[Customer]](t, "manager lists customers", e.call(t, http.MethodGet, "/customers?search=example&per_page=1", manager, ""), http.StatusOK)
	if list.Meta.Total != 2 || len(list.Data) != 1 || list.Meta.PerPage != 1 {
		t.Fatalf("list: %+v", list)
	}
	problem(t, "manager updates a customer", e.call(t, http.MethodPut, "/customers/"+a.ID, manager, `{"first_name":"X"}`), http.StatusForbidden, "")
	problem(t, "staff has no /customers/me", e.call(t, http.MethodGet, "/customers/me", manager, ""), http.StatusForbidden, "")
	up := decode[Customer](t, "admin updates a customer", e.call(t, http.MethodPut, "/customers/"+a.ID, apiKey(e.AdminKey), `{"phone":"514 555 0100"}`), http.StatusOK)
	if up.Phone != "514 555 0100" || up.Version != 2 {
		t.Fatalf("admin update: %+v", up)
	}
}

func TestHTTPBadInput(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, false)
	ctx := context.Background()
	a := e.register(t, "a@example.com")
	tokA := bearer(e.login(t, "a@example.com"))
	admin := apiKey(e.AdminKey)
	valid := func(edit func(m map[string]any)) string {
		m := map[string]any{"email": "new@example.com", "password": "correct horse", "first_name": "New", "last_name": "Person"}
		edit(m)
		raw, _ := json.Marshal(m)
		return string(raw)
	}
	huge := `{"email":"big@example.com","password":"correct horse","first_name":"` + strings.Repeat("x", httpx.MaxBodyBytes+1) + `","last_name":"P"}`

	cases := []struct {
		what         string
		method, path string
		header       map[string]string
		body         string
		status       int
		field        string
	}{
		{"malformed json", http.MethodPost, "/auth/register", nil, `{"email": "new@example.com",`, 400, "body"},
		{"not an object", http.MethodPost, "/auth/register", nil, `["email"]`, 400, "body"},
		{"wrong type", http.MethodPost, "/auth/register", nil, valid(func(m map[string]any) { m["email"] = 123 }), 400, "email"},
		{"unknown field", http.MethodPost, "/auth/register", nil, valid(func(m map[string]any) { m["is_admin"] = true }), 400, "is_admin"},
		{"missing field", http.MethodPost, "/auth/register", nil, valid(func(m map[string]any) { delete(m, "password") }), 400, "password"},
		{"over-long name", http.MethodPost, "/auth/register", nil, valid(func(m map[string]any) { m["first_name"] = strings.Repeat("x", 101) }), 400, "first_name"},
		{"over-long password", http.MethodPost, "/auth/register", nil, valid(func(m map[string]any) { m["password"] = strings.Repeat("p", 73) }), 400, "password"},
		{"short password", http.MethodPost, "/auth/register", nil, valid(func(m map[string]any) { m["password"] = "short" }), 400, "password"},
		{"sql in email", http.MethodPost, "/auth/register", nil, valid(func(m map[string]any) { m["email"] = "x' OR '1'='1'; DROP TABLE customers;--" }), 400, "email"},
		{"body over 1 MiB", http.MethodPost, "/auth/register", nil, huge, 413, ""},
		{"login malformed", http.MethodPost, "/auth/login", nil, `{"email":`, 400, "body"},
		{"login wrong type", http.MethodPost, "/auth/login", nil, `{"email":"a@example.com","password":12345678}`, 400, "password"},
		{"login unknown field", http.MethodPost, "/auth/login", nil, `{"email":"a@example.com","password":"correct horse","client_ip":"10.0.0.1"}`, 400, "client_ip"},
		{"update wrong type", http.MethodPut, "/customers/" + a.ID, tokA, `{"version":"one"}`, 400, "version"},
		{"update bad email", http.MethodPut, "/customers/" + a.ID, tokA, `{"email":"a@"}`, 400, "email"},
		{"address bad postal code", http.MethodPost, "/customers/" + a.ID + "/addresses", tokA, `{"line1":"1 Main","city":"Ottawa","province":"ON","postal_code":"K1A-OAB"}`, 400, "postal_code"},
		{"address bad province", http.MethodPost, "/customers/" + a.ID + "/addresses", tokA, `{"line1":"1 Main","city":"Ottawa","province":"NY","postal_code":"K1A 0B1"}`, 400, "province"},
		{"address missing city", http.MethodPost, "/customers/" + a.ID + "/addresses", tokA, `{"line1":"1 Main","province":"ON","postal_code":"K1A 0B1"}`, 400, "city"},
		{"address is_default not bool", http.MethodPost, "/customers/" + a.ID + "/addresses", tokA, `{"line1":"1 Main","city":"Ottawa","province":"ON","postal_code":"K1A 0B1","is_default":"yes"}`, 400, "is_default"},
		{"key bad role", http.MethodPost, "/api-keys", admin, `{"name":"x","role":"root"}`, 400, "role"},
		{"key no name", http.MethodPost, "/api-keys", admin, `{"role":"cashier"}`, 400, "name"},
		{"list per_page too big", http.MethodGet, "/customers?per_page=1000", admin, "", 400, "per_page"},
		{"list page not a number", http.MethodGet, "/customers?page=x", admin, "", 400, "page"},
		{"search too long", http.MethodGet, "/customers?search=" + strings.Repeat("s", 201), admin, "", 400, "search"},
		{"search with sql", http.MethodGet, "/customers?search=%27%20OR%201%3D1--", admin, "", 200, ""},
	}
	for _, c := range cases {
		r := e.call(t, c.method, c.path, c.header, c.body)
		if c.status < 300 {
			if r.status != c.status {
				t.Errorf("%s: status %d, want %d: %s", c.what, r.status, c.status, r.body)
			}
			continue
		}
		problem(t, c.what, r, c.status, c.field)
	}
	// Nothing was written by any of them.
	res, err := e.svc.ListCustomers(ctx, Filter{})
	must(t, err)
	addrs, err := e.svc.ListAddresses(ctx, a.ID)
	must(t, err)
	keys, err := e.svc.ListAPIKeys(ctx, page.Request{})
	must(t, err)
	if res.Total != 1 || len(addrs) != 0 || keys.Total != 0 {
		t.Fatalf("bad input wrote: %d customers, %d addresses, %d keys", res.Total, len(addrs), keys.Total)
	}
	if got, _ := e.svc.GetCustomer(ctx, a.ID); got.Email != "a@example.com" {
		t.Fatalf("customer changed: %+v", got)
	}
}

func TestHTTPAPIKeys(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, false)
	admin := apiKey(e.AdminKey)
	created := decode[CreatedAPIKey](t, "create key", e.call(t, http.MethodPost, "/api-keys", admin,
		`{"name":"Store 12 manager","role":"manager","location_id":"loc_12"}`), http.StatusCreated)
	if !auth.LooksLikeKey(created.Key) || created.Role != auth.RoleManager || created.LocationID != "loc_12" {
		t.Fatalf("created %+v", created)
	}
	key := apiKey(created.Key)

	p := decode[auth.Principal](t, "whoami", e.call(t, http.MethodGet, "/auth/whoami", key, ""), http.StatusOK)
	if p != (auth.Principal{Role: auth.RoleManager, Subject: created.ID, Name: "Store 12 manager", LocationID: "loc_12"}) {
		t.Fatalf("whoami: %+v", p)
	}
	decode[httpx.List[Customer]](t, "new key lists customers", e.call(t, http.MethodGet, "/customers", key, ""), http.StatusOK)
	problem(t, "manager key creates keys", e.call(t, http.MethodPost, "/api-keys", key, `{"name":"x","role":"admin"}`), http.StatusForbidden, "")

	r := e.call(t, http.MethodGet, "/api-keys", admin, "")
	list := decode[httpx.List[APIKey]](t, "list keys", r, http.StatusOK)
	if list.Meta.Total != 1 || list.Data[0].ID != created.ID || list.Data[0].LastUsedAt == nil ||
		strings.Contains(string(r.body), created.Key) || strings.Contains(string(r.body), auth.HashKey(created.Key)) {
		t.Fatalf("key list: %s", r.body)
	}

	// A fleet process validates the key through the customer context's
	// Client, the way the binary wires it (behind auth.NewCached; a
	// nanosecond TTL here so the revocation is seen at once).
	remote := NewClient(httpx.NewClient(httpx.ClientConfig{Context: Name, BaseURL: e.URL, ServiceKey: e.ServiceKey, Retries: -1}))
	otherTokens, otherClock := newTokens(t), newTestClock()
	fleet := serve(t, newLocal(t, testkit.SQLite, otherTokens, otherClock), otherTokens, false, auth.NewCached(remote, time.Nanosecond))
	p = decode[auth.Principal](t, "whoami on another process", fleet.call(t, http.MethodGet, "/auth/whoami", key, ""), http.StatusOK)
	if p.Subject != created.ID || p.Role != auth.RoleManager {
		t.Fatalf("fleet whoami: %+v", p)
	}

	for range 2 { // revoking is idempotent
		if r := e.call(t, http.MethodDelete, "/api-keys/"+created.ID, admin, ""); r.status != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
	}
	problem(t, "revoke unknown", e.call(t, http.MethodDelete, "/api-keys/key_missing", admin, ""), http.StatusNotFound, "")
	problem(t, "revoked key here", e.call(t, http.MethodGet, "/customers", key, ""), http.StatusUnauthorized, "")
	problem(t, "revoked key on another process", fleet.call(t, http.MethodGet, "/auth/whoami", key, ""), http.StatusUnauthorized, "")
}

func TestHTTPLoginLimits(t *testing.T) {
	t.Parallel()
	loginBody := func(email, password string) string {
		return fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)
	}

	t.Run("account", func(t *testing.T) {
		t.Parallel()
		e := newHTTPEnv(t, false)
		e.register(t, "victim@example.com")
		var details []string
		for range 5 {
			r := e.call(t, http.MethodPost, "/auth/login", nil, loginBody("victim@example.com", "guess"))
			problem(t, "guess", r, http.StatusUnauthorized, "")
			details = append(details, string(r.body))
		}
		r := e.call(t, http.MethodPost, "/auth/login", nil, loginBody("nobody@example.com", "guess"))
		problem(t, "unknown email", r, http.StatusUnauthorized, "")
		var wrong, unknown httpx.Problem
		_ = json.Unmarshal([]byte(details[0]), &wrong)
		_ = json.Unmarshal(r.body, &unknown)
		if wrong.Detail != unknown.Detail || wrong.Detail == "" {
			t.Fatalf("details differ: %q vs %q", wrong.Detail, unknown.Detail)
		}
		r = e.call(t, http.MethodPost, "/auth/login", nil, loginBody("victim@example.com", "correct horse"))
		problem(t, "6th attempt", r, http.StatusTooManyRequests, "")
		if ra := r.header.Get("Retry-After"); ra != "900" {
			t.Fatalf("Retry-After %q, want 900", ra)
		}
		e.clock.Advance(10 * time.Minute)
		r = e.call(t, http.MethodPost, "/auth/login", nil, loginBody("victim@example.com", "correct horse"))
		if ra := r.header.Get("Retry-After"); r.status != http.StatusTooManyRequests || ra != "300" {
			t.Fatalf("later: %d, Retry-After %q", r.status, ra)
		}
		e.clock.Advance(5*time.Minute + time.Second)
		decode[Session](t, "after the window", e.call(t, http.MethodPost, "/auth/login", nil, loginBody("victim@example.com", "correct horse")), http.StatusOK)
	})

	t.Run("address cannot be spoofed by default", func(t *testing.T) {
		t.Parallel()
		e := newHTTPEnv(t, false)
		e.register(t, "victim@example.com")
		// Staff below the service role are not believed either.
		cashier, err := e.svc.CreateAPIKey(context.Background(), NewAPIKey{Name: "till", Role: auth.RoleCashier})
		must(t, err)
		for i := range 20 {
			spoof := map[string]string{
				"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i), "X-Real-IP": fmt.Sprintf("198.51.100.%d", i),
				ClientIPHeader: fmt.Sprintf("198.51.100.%d", i),
			}
			if i%2 == 1 {
				spoof["X-API-Key"] = cashier.Key
			}
			r := e.call(t, http.MethodPost, "/auth/login", spoof, loginBody(fmt.Sprintf("user%d@example.com", i), "guess"))
			problem(t, "guess", r, http.StatusUnauthorized, "")
		}
		r := e.call(t, http.MethodPost, "/auth/login", map[string]string{"X-Forwarded-For": "192.0.2.99", ClientIPHeader: "192.0.2.99"},
			loginBody("victim@example.com", "correct horse"))
		problem(t, "21st attempt from the same peer", r, http.StatusTooManyRequests, "")
	})

	t.Run("behind a trusted proxy the forwarded address counts", func(t *testing.T) {
		t.Parallel()
		e := newHTTPEnv(t, true)
		e.register(t, "victim@example.com")
		xff := map[string]string{"X-Forwarded-For": "203.0.113.9"}
		for i := range 20 {
			e.call(t, http.MethodPost, "/auth/login", xff, loginBody(fmt.Sprintf("user%d@example.com", i), "guess"))
		}
		problem(t, "blocked address", e.call(t, http.MethodPost, "/auth/login", xff, loginBody("victim@example.com", "correct horse")), http.StatusTooManyRequests, "")
		decode[Session](t, "another address", e.call(t, http.MethodPost, "/auth/login", map[string]string{"X-Forwarded-For": "203.0.113.10"},
			loginBody("victim@example.com", "correct horse")), http.StatusOK)
	})

	t.Run("a service caller names the shopper's address", func(t *testing.T) {
		t.Parallel()
		e := newHTTPEnv(t, false)
		e.register(t, "victim@example.com")
		viaService := func(ip string) map[string]string {
			return map[string]string{"X-API-Key": e.ServiceKey, ClientIPHeader: ip}
		}
		for i := range 20 {
			e.call(t, http.MethodPost, "/auth/login", viaService("203.0.113.50"), loginBody(fmt.Sprintf("user%d@example.com", i), "guess"))
		}
		problem(t, "blocked shopper", e.call(t, http.MethodPost, "/auth/login", viaService("203.0.113.50"), loginBody("victim@example.com", "correct horse")), http.StatusTooManyRequests, "")
		decode[Session](t, "other shopper through the same service", e.call(t, http.MethodPost, "/auth/login", viaService("203.0.113.51"),
			loginBody("victim@example.com", "correct horse")), http.StatusOK)
	})
}
