package gateway_test

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/retailco/pos/internal/platform/gateway"
	"github.com/retailco/pos/internal/platform/gateway/kongconf"
)

// table is a route table with the traps the generator must get right:
// one path prefix shared by two contexts (order and saga), literals
// beside parameters (me, summary), machine-only and public operations on
// one template, and a balanced context.
var table = []gateway.Route{
	{Method: "GET", Path: "/api/v1/orders", Context: "order", Access: "customer,manager"},
	{Method: "GET", Path: "/api/v1/orders/{id}", Context: "order", Access: "customer,manager"},
	{Method: "PUT", Path: "/api/v1/orders/{id}/status", Context: "order", Access: "manager"},
	{Method: "POST", Path: "/api/v1/orders/{id}/cancel", Context: "saga", Access: "customer,manager"},
	{Method: "POST", Path: "/api/v1/checkout", Context: "saga", Access: "customer"},
	{Method: "GET", Path: "/api/v1/customers/me", Context: "customer", Access: "customer"},
	{Method: "GET", Path: "/api/v1/customers/{id}", Context: "customer", Access: "customer,admin"},
	{Method: "GET", Path: "/api/v1/payments", Context: "payment", Access: "service,manager"},
	{Method: "POST", Path: "/api/v1/payments", Context: "payment", Access: "service"},
	{Method: "GET", Path: "/api/v1/payments/summary", Context: "payment", Access: "manager"},
	{Method: "GET", Path: "/api/v1/payments/{id}", Context: "payment", Access: "service,manager"},
	{Method: "POST", Path: "/api/v1/payments/{id}/refunds", Context: "payment", Access: "service"},
	{Method: "GET", Path: "/api/v1/carts/{session_id}", Context: "cart", Access: "public"},
	{Method: "POST", Path: "/api/v1/carts/{session_id}/items", Context: "cart", Access: "public"},
}

func generate(t *testing.T, routes []gateway.Route, o gateway.Options) *kongconf.File {
	t.Helper()
	cfg, err := gateway.Generate(routes, o)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	f, err := kongconf.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the generator wrote what the strict model rejects: %v\n%s", err, raw)
	}
	return f
}

func TestGenerateRoutesEachRequestToItsContext(t *testing.T) {
	t.Parallel()
	f := generate(t, table, gateway.DefaultOptions())
	for _, e := range kongconf.Lint(f) {
		t.Error(e)
	}
	for _, c := range []struct {
		method, path, service string
		keyAuth               bool
	}{
		{"GET", "/api/v1/orders", "order", false},
		{"GET", "/api/v1/orders/o-1", "order", false},
		{"POST", "/api/v1/orders/o-1/cancel", "saga", false}, // a prefix route on /orders would steal it
		{"PUT", "/api/v1/orders/o-1/status", "order", false},
		{"POST", "/api/v1/checkout", "saga", false},
		{"GET", "/api/v1/customers/me", "customer", false},
		{"GET", "/api/v1/customers/c-1", "customer", false},
		{"GET", "/api/v1/payments", "payment", false},
		{"POST", "/api/v1/payments", "payment", true},
		{"GET", "/api/v1/payments/summary", "payment", false},
		{"GET", "/api/v1/payments/p-1", "payment", false},
		{"POST", "/api/v1/payments/p-1/refunds", "payment", true},
		{"GET", "/api/v1/carts/s-1", "cart", false},
	} {
		m, err := f.Match(c.method, c.path)
		if err != nil {
			t.Errorf("%s %s: %v", c.method, c.path, err)
			continue
		}
		if m.Service != c.service || slices.Contains(m.Plugins, "key-auth") != c.keyAuth {
			t.Errorf("%s %s: service %s plugins %v, want %s key-auth %v", c.method, c.path, m.Service, m.Plugins, c.service, c.keyAuth)
		}
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/orders/o-1/cancel"},        // no such operation
		{"DELETE", "/api/v1/orders/o-1"},            // no such method
		{"GET", "/api/v1/orders/o-1/x/y"},           // anchored at the end
		{"GET", "/api/v1/ordersx"},                  // not a prefix match
		{"GET", "/api/v1/carts/s-1/items"},          // POST only
		{"OPTIONS", "/api/v1/payments/p-1/refunds"}, // machine-only: no preflight
		{"GET", "/health"},                          // per process, not through the gateway
	} {
		if m, err := f.Match(c.method, c.path); err == nil {
			t.Errorf("%s %s must not be routed, reaches %s", c.method, c.path, m.Route)
		}
	}
	// Browsers' preflights reach cors on every template they may call,
	// including one whose other method is machine-only.
	for _, p := range []string{"/api/v1/orders/o-1/cancel", "/api/v1/payments", "/api/v1/customers/me"} {
		m, err := f.Match("OPTIONS", p)
		if err != nil || !slices.Contains(m.Plugins, "cors") || slices.Contains(m.Plugins, "key-auth") {
			t.Errorf("preflight %s: %+v %v", p, m, err)
		}
	}
	m, err := f.Match("GET", "/api/v1/carts/s-1")
	if err != nil || m.Upstream == nil || len(m.Upstream.Targets) != 3 || m.Upstream.Algorithm != "least-connections" {
		t.Fatalf("cart must be balanced over three instances: %+v %v", m, err)
	}
}

// TestPriorityAgreesWithTheMonolithsRouter: where two templates of
// different contexts can match one path, Kong must choose the one the
// monolith's echo router chooses, or a request that works on the monolith
// gets a 404 from the wrong service in the fleet.
func TestPriorityAgreesWithTheMonolithsRouter(t *testing.T) {
	t.Parallel()
	routes := []gateway.Route{
		{Method: "GET", Path: "/api/v1/a/{x}/c", Context: "one", Access: "public"},
		{Method: "GET", Path: "/api/v1/a/b/{y}", Context: "two", Access: "public"},
		{Method: "GET", Path: "/api/v1/a/{x}/{z}", Context: "three", Access: "public"},
		{Method: "GET", Path: "/api/v1/a/b/c", Context: "four", Access: "public"},
		{Method: "GET", Path: "/api/v1/{k}/b/c", Context: "five", Access: "public"},
	}
	f := generate(t, routes, gateway.Options{Port: 8080})
	e := echo.New()
	for _, r := range routes {
		ctxName := r.Context
		e.GET(strings.NewReplacer("{", ":", "}", "").Replace(r.Path), func(c echo.Context) error { return c.String(http.StatusOK, ctxName) })
	}
	for _, p := range []string{"/api/v1/a/b/c", "/api/v1/a/b/d", "/api/v1/a/q/c", "/api/v1/a/q/d", "/api/v1/z/b/c"} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		m, err := f.Match("GET", p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if m.Service != rec.Body.String() {
			t.Errorf("%s: Kong sends it to %s, the monolith serves it as %s", p, m.Service, rec.Body.String())
		}
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	t.Parallel()
	want, err := gateway.Generate(table, gateway.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	wantYAML, _ := want.YAML()
	for i := range 20 {
		shuffled := slices.Clone(table)
		rand.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		got, err := gateway.Generate(shuffled, gateway.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		gotYAML, _ := got.YAML()
		if !bytes.Equal(gotYAML, wantYAML) {
			t.Fatalf("shuffle %d: the YAML depends on the input order", i)
		}
	}
}

func TestGenerateRefusesWhatKongCannotRouteUnambiguously(t *testing.T) {
	t.Parallel()
	ok := gateway.Route{Method: "GET", Path: "/api/v1/things/{id}", Context: "things", Access: "public"}
	for name, extra := range map[string]gateway.Route{
		"same operation in two contexts": {Method: "GET", Path: "/api/v1/things/{thing_id}", Context: "other", Access: "public"},
		"unknown method":                 {Method: "FETCH", Path: "/api/v1/x", Context: "things", Access: "public"},
		"explicit OPTIONS":               {Method: "OPTIONS", Path: "/api/v1/x", Context: "things", Access: "public"},
		"relative path":                  {Method: "GET", Path: "api/v1/x", Context: "things", Access: "public"},
		"empty segment":                  {Method: "GET", Path: "/api/v1//x", Context: "things", Access: "public"},
		"partial parameter":              {Method: "GET", Path: "/api/v1/x-{id}", Context: "things", Access: "public"},
		"bad context name":               {Method: "GET", Path: "/api/v1/x", Context: "Things!", Access: "public"},
		"no access rule":                 {Method: "GET", Path: "/api/v1/x", Context: "things"},
	} {
		if _, err := gateway.Generate([]gateway.Route{ok, extra}, gateway.DefaultOptions()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := gateway.Generate(nil, gateway.DefaultOptions()); err == nil {
		t.Error("empty table accepted")
	}
	o := gateway.DefaultOptions()
	o.Replicas = map[string]int{"nobody": 2}
	if _, err := gateway.Generate([]gateway.Route{ok}, o); err == nil {
		t.Error("replicas of a context without routes accepted")
	}
	o.Replicas = map[string]int{"things": 0}
	if _, err := gateway.Generate([]gateway.Route{ok}, o); err == nil {
		t.Error("zero replicas accepted")
	}
}

// TestServiceKeyStaysAStringAfterSubstitution: the deployment replaces
// the placeholder with the key; whatever key of the allowed alphabet it
// is, the YAML must still read it as that string.
func TestServiceKeyStaysAStringAfterSubstitution(t *testing.T) {
	t.Parallel()
	cfg, err := gateway.Generate(table, gateway.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := cfg.YAML()
	if bytes.Count(raw, []byte(gateway.ServiceKeyPlaceholder)) != 2 { // the header mentions it once
		t.Fatalf("placeholder not written once as the key:\n%s", raw)
	}
	for _, key := range []string{"~", "123", "true", "-a.b_c~d", "0x1F", strings.Repeat("f", 64)} {
		sub := bytes.Replace(raw, []byte(`"`+gateway.ServiceKeyPlaceholder+`"`), []byte(`"`+key+`"`), 1)
		f, err := kongconf.Decode(bytes.NewReader(sub))
		if err != nil {
			t.Fatalf("key %q: %v", key, err)
		}
		if got := f.Consumers[0].KeyauthCredentials[0].Key; got != key {
			t.Errorf("key %q reads back as %q", key, got)
		}
	}
}
