package kongconf

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func decode(t *testing.T, doc string) *File {
	t.Helper()
	f, err := Decode(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestDecodeIsStrict: whatever Kong would ignore or default silently must
// fail here.
func TestDecodeIsStrict(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"unknown top-level field": "_format_version: \"3.0\"\nroutes: []\n",
		"misspelt route field": `_format_version: "3.0"
services:
  - name: a
    url: http://a:8080
    routes:
      - name: r
        paths: ["~/x$"]
        regex_priorty: 1
`,
		"unknown plugin config field": `_format_version: "3.0"
plugins:
  - name: correlation-id
    config:
      header: X-Request-ID
`,
		"plugin config field of the wrong type": `_format_version: "3.0"
plugins:
  - name: prometheus
    config:
      latency_metrics: sometimes
`,
		"unmodelled plugin": `_format_version: "3.0"
plugins:
  - name: ip-restriction
`,
		"misspelt health check field": `_format_version: "3.0"
upstreams:
  - name: u
    healthchecks:
      active:
        healthy:
          intervall: 5
`,
		"two documents": "_format_version: \"3.0\"\n---\n_format_version: \"3.0\"\n",
	} {
		if _, err := Decode(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	f := decode(t, `_format_version: "3.0"
plugins:
  - name: rate-limiting
    config: {second: 5, policy: local}
`)
	rl, ok := f.Plugins[0].Parsed.(*RateLimiting)
	if !ok || rl.Second == nil || *rl.Second != 5 || rl.Policy != "local" {
		t.Fatalf("plugin config not parsed: %#v", f.Plugins[0].Parsed)
	}
}

// TestMatchModelsKongsRouter: the priority rules of Kong 3's default
// router, on the cases that decide where a request goes.
func TestMatchModelsKongsRouter(t *testing.T) {
	t.Parallel()
	f := decode(t, `_format_version: "3.0"
services:
  - name: prefix-long
    url: http://long:8080
    routes:
      - name: long
        methods: [GET]
        paths: [/api/v1/orders/]
  - name: prefix-short
    url: http://short:8080
    routes:
      - name: short
        methods: [GET]
        paths: [/api/v1/]
  - name: regex-low
    url: http://low:8080
    plugins:
      - name: cors
    routes:
      - name: low
        methods: [GET, POST]
        paths: ["~/api/v1/orders/[^/]+$"]
        regex_priority: 1
  - name: regex-high
    url: http://balanced:8080
    routes:
      - name: high
        methods: [GET]
        paths: ["~/api/v1/orders/special$"]
        regex_priority: 9
        plugins:
          - name: key-auth
            config: {key_names: [X-API-Key]}
  - name: no-methods
    url: http://any:8080
    routes:
      - name: any
        paths: ["~/api/v1/orders/[^/]+$"]
        regex_priority: 50
upstreams:
  - name: balanced
    targets: [{target: "b-1:8080"}]
plugins:
  - name: prometheus
`)
	for _, c := range []struct{ method, path, route string }{
		{"GET", "/api/v1/orders/7", "low"},           // regex beats any prefix, however long
		{"GET", "/api/v1/orders/special", "high"},    // higher regex_priority
		{"GET", "/api/v1/orders/7/lines", "long"},    // regexes anchored: the longer prefix wins
		{"GET", "/api/v1/products", "short"},         // the only prefix left
		{"POST", "/api/v1/orders/7", "low"},          // methods count: beats the route without
		{"DELETE", "/api/v1/orders/7", "any"},        // only the route without methods takes DELETE
		{"GET", "/api/v1/orders/7x/special", "long"}, // regex is anchored at the start
	} {
		m, err := f.Match(c.method, c.path)
		if err != nil || m.Route != c.route {
			t.Errorf("%s %s: route %q (%v), want %s", c.method, c.path, m.Route, err, c.route)
		}
	}
	m, err := f.Match("GET", "/api/v1/orders/special")
	if err != nil || m.Upstream == nil || m.Upstream.Name != "balanced" || !slices.Equal(m.Plugins, []string{"key-auth", "prometheus"}) {
		t.Errorf("high: %+v %v", m, err)
	}
	m, _ = f.Match("GET", "/api/v1/orders/7")
	if m.Upstream != nil || m.Host != "low" || !slices.Equal(m.Plugins, []string{"cors", "prometheus"}) {
		t.Errorf("low: %+v", m)
	}
	if _, err := f.Match("GET", "/other"); !errors.Is(err, ErrNoRoute) {
		t.Errorf("unrouted path: %v", err)
	}

	tie := decode(t, `_format_version: "3.0"
services:
  - name: a
    url: http://a:8080
    routes:
      - {name: ra, methods: [GET], paths: ["~/x/[^/]+$"], regex_priority: 3}
  - name: b
    url: http://b:8080
    routes:
      - {name: rb, methods: [GET], paths: ["~/x/y$"], regex_priority: 3}
`)
	if _, err := tie.Match("GET", "/x/y"); err == nil || !strings.Contains(err.Error(), "tie") {
		t.Errorf("two routes at one priority: %v", err)
	}
	if m, err := tie.Match("GET", "/x/z"); err != nil || m.Route != "ra" {
		t.Errorf("only one matches /x/z: %+v %v", m, err)
	}
}

const good = `_format_version: "3.0"
services:
  - name: cart
    url: http://cart:8080
    routes:
      - name: cart.carts
        methods: [GET]
        paths: ["~/api/v1/carts$"]
        strip_path: false
        preserve_host: true
        plugins:
          - name: key-auth
            config: {key_names: [X-API-Key], hide_credentials: false}
upstreams:
  - name: cart
    algorithm: least-connections
    healthchecks:
      active:
        type: http
        http_path: /health/ready
        healthy: {interval: 5, successes: 2}
        unhealthy: {interval: 5, tcp_failures: 2}
      passive:
        healthy: {successes: 5}
        unhealthy: {tcp_failures: 2}
    targets: [{target: "cart-1:8080"}]
consumers:
  - username: pos-fleet
    keyauth_credentials: [{key: "${POS_SERVICE_KEY}"}]
plugins:
  - name: correlation-id
    config: {header_name: X-Request-ID, echo_downstream: true}
  - name: cors
  - name: request-size-limiting
    config: {allowed_payload_size: 1024, size_unit: kilobytes}
  - name: rate-limiting
    config: {second: 10000, policy: local, limit_by: consumer}
  - name: prometheus
    config: {status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true, upstream_health_metrics: true}
`

// TestLint: a file that keeps the rules passes, and each rule, broken
// alone, is reported.
func TestLint(t *testing.T) {
	t.Parallel()
	if errs := Lint(decode(t, good)); len(errs) > 0 {
		t.Fatalf("good file: %v", errs)
	}
	for _, c := range []struct{ from, to, want string }{
		{`"~/api/v1/carts$"`, `/api/v1/carts`, "prefix"},
		{`"~/api/v1/carts$"`, `"~/api/v1/carts"`, "must be /…$"},
		{"strip_path: false", "strip_path: true", "strip_path"},
		{"        preserve_host: true\n", "", "preserve_host"},
		{"methods: [GET]", "methods: []", "no methods"},
		{"interval: 5, successes: 2", "successes: 2", "active healthy interval"},
		{"unhealthy: {interval: 5, tcp_failures: 2}", "unhealthy: {tcp_failures: 2}", "active unhealthy interval"},
		{"unhealthy: {tcp_failures: 2}", "unhealthy: {}", "passive checks need a failure threshold"},
		{"http_path: /health/ready", "http_path: /", "active checks must probe"},
		{`[{target: "cart-1:8080"}]`, "[]", "no targets"},
		{"hide_credentials: false", "hide_credentials: true", "hide_credentials"},
		{`key: "${POS_SERVICE_KEY}"`, `key: "s3cr3t"`, "literal key"},
		{"keyauth_credentials: [{key: \"${POS_SERVICE_KEY}\"}]", "keyauth_credentials: []", "no consumer holds a key"},
		{"echo_downstream: true", "echo_downstream: false", "correlation-id"},
		{"allowed_payload_size: 1024", "allowed_payload_size: 128", "request-size-limiting"},
		{"policy: local", "policy: cluster", "policy"},
		{"second: 10000", "minute: 100", "throttle the load tests"},
		{"bandwidth_metrics: true", "bandwidth_metrics: false", "prometheus"},
		{"  - name: cors\n", "", "cors missing"},
		{`_format_version: "3.0"`, `_format_version: "2.1"`, "_format_version"},
		{"url: http://cart:8080", "url: http://other:8080", "no service sends to it"},
	} {
		if !strings.Contains(good, c.from) {
			t.Fatalf("fixture lacks %q", c.from)
		}
		f := decode(t, strings.Replace(good, c.from, c.to, 1))
		var msgs []string
		for _, e := range Lint(f) {
			msgs = append(msgs, e.Error())
		}
		if !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, c.want) }) {
			t.Errorf("%q → %q: want a problem about %q, got %v", c.from, c.to, c.want, msgs)
		}
	}
}

// TestMatchCompilesRegexOnce: matching a request against regex routes
// compiles their expressions once, not per request (the fleet test's
// stand-in gateway routes every request through Match).
func TestMatchCompilesRegexOnce(t *testing.T) {
	f := decode(t, `_format_version: "3.0"
services:
  - name: orders
    url: http://orders:8080
    routes:
      - name: one-order
        methods: [GET]
        paths: ["~/api/v1/orders/[^/]+/lines/[0-9]+$"]
        regex_priority: 1
`)
	if _, err := f.Match("GET", "/api/v1/orders/o-1/lines/2"); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(50, func() {
		if m, err := f.Match("GET", "/api/v1/orders/o-1/lines/2"); err != nil || m.Route != "one-order" {
			t.Fatalf("no match: %v", err)
		}
	})
	// Compiling the expression alone allocates dozens of times.
	if allocs > 10 {
		t.Errorf("Match allocated %.0f times a call: the route's expression is compiled per call", allocs)
	}
}
