// Package gateway derives the fleet's API gateway configuration (Kong,
// DB-less, declarative) from the route table the binary serves, so the
// gateway can never miss a route or send one to the wrong context. The
// input is the list of operations (method, path template, owning context,
// access rule) that cmd/pos reads from the OpenAPI document; the output is
// a KongConfig marshalled to YAML deterministically, so a test can compare
// the committed deploy/kong/kong.yml byte for byte with a fresh one.
//
// # Routing
//
// Kong matches plain `paths` by prefix: a route on /api/v1/orders would
// also take /api/v1/orders/{id}/cancel, which the saga context owns. So
// every path template becomes one regex path anchored at both ends
// (Kong anchors the start itself; we add `$`), a parameter matching one
// segment: /api/v1/orders/{id}/cancel is `~/api/v1/orders/[^/]+/cancel$`.
// Two such regexes can only both match a request when the templates have
// the same number of segments and agree on every literal segment they
// share; then the one with a literal where the other has a parameter must
// win, as in the monolith's router (echo prefers a static segment to a
// parameter, leftmost first). regex_priority encodes exactly that: one bit
// per segment, most significant first, set for a literal. Routes also list
// their methods, so templates shared by two contexts (or by public and
// machine-only operations) are split by method and never compete. Generate
// refuses a table in which two routes could still tie.
//
// OPTIONS (CORS preflight) is added to one route per path template, the
// first that is not machine-only: with `methods` set, a preflight would
// otherwise match no route and never reach the cors plugin.
//
// # Authentication
//
// Kong gates only the machine-to-machine operations: those whose access is
// exactly "service" (reservations, payments, refunds, …) get the key-auth
// plugin, and the only consumer Kong knows is the fleet itself, holding
// the service key (POS_SERVICE_KEY). Human staff keys cannot be checked at
// the gateway: `pos apikey create` makes them at run time and the customer
// context keeps only their hashes, so Kong has nothing to compare them
// with. Every service authenticates and authorizes every request itself
// anyway (defense in depth), which is also why key-auth runs with
// hide_credentials off: the service must see X-API-Key to check it again.
// A consequence: through the gateway, even an admin key cannot call a
// machine-only route; operators who must (releasing a stuck reservation)
// do so from inside the network, directly at the service.
//
// The service key is not in the generated file, which is committed. Kong 3
// resolves vault references ({vault://env/…}) only in fields marked
// referenceable, and keyauth_credentials.key is not one (a reference there
// is taken as the literal key), so the file carries ServiceKeyPlaceholder
// and the deployment substitutes it when Kong starts (deploy/compose.yaml:
// the Kong container's entrypoint refuses to start without a well-formed
// POS_SERVICE_KEY, writes the substituted copy to /tmp and starts Kong on
// it). Were the substitution skipped, the literal placeholder would open
// only Kong's gate: the services still reject it, as it is not their key.
//
// # Rate limits
//
// The original gateway allowed 100 requests a minute and 1,000 an hour per
// client and rejected 96–99.9 % of its own load tests. Here the global
// limit is PublicRatePerSecond per consumer, or per client IP where Kong
// knows no consumer: twice the platform's bar (5,000 req/s on the catalog
// at 100 clients on 2 cores, README) and nine times the original's best
// run (1,136 req/s), so it trips on abuse, never on a load test the
// hardware can serve — a load generator sends everything from one IP.
// The fleet's consumer gets FleetRatePerSecond of its own, so the
// contexts' calls to each other never spend the public budget. The policy
// is local (in-memory counters per Kong node): DB-less Kong has no cluster
// policy, and Redis would add a round trip to every request; with N Kong
// nodes a client may get N times the limit, which is acceptable for a
// guard against abuse.
package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Route is one operation of the route table: what the gateway needs to
// route it and to decide whether it guards it.
type Route struct {
	// Method is the HTTP method (GET, POST, …).
	Method string
	// Path is the full path template, parameters in braces:
	// /api/v1/orders/{id}/cancel.
	Path string
	// Context is the owning context, which is also the name of its Kong
	// service and of its compose service.
	Context string
	// Access is "public" or a comma-separated list of roles
	// (httpx.Access.String).
	Access string
}

// MachineOnly reports whether only the fleet's service key may call the
// operation; Kong puts key-auth in front of exactly these.
func (r Route) MachineOnly() bool { return r.Access == AccessService }

// AccessService is the access string of machine-to-machine operations.
const AccessService = "service"

// Options are the deployment facts the route table does not know.
type Options struct {
	// Port is where every context listens in its container (8080).
	Port int
	// Replicas names the contexts run as several instances behind a Kong
	// upstream, with their instance count: {"cart": 3} makes the upstream
	// cart over cart-1:8080, cart-2:8080 and cart-3:8080 (the compose
	// service names). Other contexts are one container named after them.
	Replicas map[string]int
	// CORSOrigins are the browser origins allowed to call the API; empty
	// means any ("*"), which is safe here because no credential rides on
	// a cookie: a page can only send X-API-Key or a bearer token it holds.
	CORSOrigins []string
}

// DefaultOptions is the fleet of deploy/compose.yaml: every context on
// 8080, three cart instances.
func DefaultOptions() Options {
	return Options{Port: 8080, Replicas: map[string]int{"cart": 3}}
}

// Limits and names the generated configuration uses; the package doc says
// why these values.
const (
	// FormatVersion is the declarative format of Kong 3.
	FormatVersion = "3.0"
	// PublicRatePerSecond is the global limit per consumer or client IP.
	PublicRatePerSecond = 10000
	// FleetRatePerSecond is the fleet consumer's own limit.
	FleetRatePerSecond = 50000
	// MaxBodyMiB matches the services' body limit (httpx.MaxBodyBytes).
	MaxBodyMiB = 1
	// FleetConsumer is the consumer holding the service key.
	FleetConsumer = "pos-fleet"
	// ServiceKeyPlaceholder stands for the service key in the committed
	// file; the deployment replaces it before Kong reads the file.
	ServiceKeyPlaceholder = "${POS_SERVICE_KEY}"
	// APIKeyHeader is where staff and services present their key.
	APIKeyHeader = "X-API-Key"
	// RequestIDHeader carries the correlation id end to end.
	RequestIDHeader = "X-Request-ID"
	// ReadinessPath is what Kong's active health checks probe: it answers
	// 503 while an instance's dependencies are down or while it drains,
	// so Kong stops sending before connections close.
	ReadinessPath = "/health/ready"
)

// knownMethods are the methods a Kong route may list.
var knownMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// contextName is what a context name must look like to be a Kong service
// name and a compose host name at once.
var contextName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Generate builds the Kong configuration for routes. It fails on a route
// it cannot express (unknown method, malformed template, an operation
// listed twice) and on any pair of Kong routes that could both take the
// same request at the same priority, so what it returns routes every
// request to exactly one context.
func Generate(routes []Route, o Options) (*KongConfig, error) {
	if o.Port <= 0 || o.Port > 65535 {
		return nil, fmt.Errorf("gateway: port %d out of range", o.Port)
	}
	if len(routes) == 0 {
		return nil, errors.New("gateway: empty route table")
	}
	groups, err := group(routes)
	if err != nil {
		return nil, err
	}
	krs := make([]kongRouteOf, 0, len(groups))
	for _, g := range groups {
		krs = append(krs, g.kongRoute())
	}
	if err := checkNoTies(krs); err != nil {
		return nil, err
	}

	byContext := map[string][]KongRoute{}
	for _, kr := range krs {
		byContext[kr.context] = append(byContext[kr.context], kr.route)
	}
	cfg := &KongConfig{FormatVersion: FormatVersion}
	for _, name := range sortedKeys(byContext) {
		rs := byContext[name]
		slices.SortFunc(rs, func(a, b KongRoute) int { return strings.Compare(a.Name, b.Name) })
		cfg.Services = append(cfg.Services, KongService{
			Name: name,
			URL:  ServiceURL(name, o),
			// Containers on one network connect in microseconds; a
			// connect that takes seconds means the instance is gone, and
			// the retry should go elsewhere quickly.
			ConnectTimeout: 2000,
			// The services' own write timeout is 60 s (httpx.Server).
			ReadTimeout:  60000,
			WriteTimeout: 60000,
			// Kong (nginx) retries only when the request could not be
			// sent or, for idempotent methods, timed out; a POST already
			// sent is never replayed. Two retries let a balanced context
			// fail over to another instance.
			Retries: 2,
			Routes:  rs,
		})
	}
	for _, name := range sortedKeys(o.Replicas) {
		n := o.Replicas[name]
		if n < 1 {
			return nil, fmt.Errorf("gateway: %s: %d replicas", name, n)
		}
		if _, ok := byContext[name]; !ok {
			return nil, fmt.Errorf("gateway: replicas for %s, which has no route", name)
		}
		cfg.Upstreams = append(cfg.Upstreams, upstream(name, n, o.Port))
	}
	cfg.Consumers = []KongConsumer{{
		Username:           FleetConsumer,
		KeyauthCredentials: []KongKeyauthCredential{{Key: ServiceKeyPlaceholder}},
		Plugins:            []KongPlugin{rateLimiting(FleetRatePerSecond)},
	}}
	cfg.Plugins = globalPlugins(o)
	return cfg, nil
}

// routeGroup is the operations one Kong route carries: one path template,
// one context, one side of the key-auth line.
type routeGroup struct {
	path, context string
	machine       bool
	methods       []string
	preflight     bool // carries OPTIONS for its path template
}

func group(routes []Route) ([]*routeGroup, error) {
	type key struct {
		path, context string
		machine       bool
	}
	seen := map[string]Route{}
	byKey := map[key]*routeGroup{}
	for _, r := range routes {
		m := strings.ToUpper(r.Method)
		if !slices.Contains(knownMethods, m) || m == "OPTIONS" {
			return nil, fmt.Errorf("gateway: %s %s: method not routable", r.Method, r.Path)
		}
		if _, err := segments(r.Path); err != nil {
			return nil, fmt.Errorf("gateway: %s %s: %w", r.Method, r.Path, err)
		}
		if !contextName.MatchString(r.Context) {
			return nil, fmt.Errorf("gateway: %s %s: context %q is not a valid service name", r.Method, r.Path, r.Context)
		}
		if r.Access == "" {
			return nil, fmt.Errorf("gateway: %s %s: no access rule", r.Method, r.Path)
		}
		id := m + " " + shape(r.Path)
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("gateway: %s %s and %s %s are the same route (owned by %s and %s)",
				prev.Method, prev.Path, r.Method, r.Path, prev.Context, r.Context)
		}
		seen[id] = r
		k := key{r.Path, r.Context, r.MachineOnly()}
		g := byKey[k]
		if g == nil {
			g = &routeGroup{path: r.Path, context: r.Context, machine: r.MachineOnly()}
			byKey[k] = g
		}
		g.methods = append(g.methods, m)
	}
	groups := make([]*routeGroup, 0, len(byKey))
	for _, g := range byKey {
		slices.Sort(g.methods)
		groups = append(groups, g)
	}
	// Sorted by path, then context, public side first: the first group of
	// each template that browsers may call answers its preflight.
	slices.SortFunc(groups, func(a, b *routeGroup) int {
		if c := strings.Compare(a.path, b.path); c != 0 {
			return c
		}
		if c := strings.Compare(a.context, b.context); c != 0 {
			return c
		}
		switch {
		case a.machine == b.machine:
			return 0
		case b.machine:
			return -1
		default:
			return 1
		}
	})
	taken := map[string]bool{}
	for _, g := range groups {
		if !g.machine && !taken[g.path] {
			g.preflight, taken[g.path] = true, true
		}
	}
	return groups, nil
}

// kongRouteOf is a generated route with the facts the tie check needs.
type kongRouteOf struct {
	context string
	segs    []segment
	route   KongRoute
}

func (g *routeGroup) kongRoute() kongRouteOf {
	segs, _ := segments(g.path) // validated in group
	methods := slices.Clone(g.methods)
	if g.preflight {
		methods = append(methods, "OPTIONS")
		slices.Sort(methods)
	}
	name := g.context + "." + slug(segs)
	if g.machine {
		name += ".m2m"
	}
	r := KongRoute{
		Name:          name,
		Methods:       methods,
		Paths:         []string{regexPath(segs)},
		RegexPriority: priority(segs),
		// The services serve the full /api/v1/... path, as the monolith.
		StripPath: false,
		// The services see the Host the client used, for logs and for
		// the problem documents' instance URLs.
		PreserveHost: true,
		Protocols:    []string{"http", "https"},
	}
	if g.machine {
		r.Plugins = []KongPlugin{keyAuth()}
	}
	return kongRouteOf{context: g.context, segs: segs, route: r}
}

// segment is one path segment: a literal or a parameter.
type segment struct {
	text  string // the literal, or the parameter's name
	param bool
}

// segments splits a template; it accepts only what huma registers:
// absolute, no empty segment, parameters that fill a whole segment.
func segments(path string) ([]segment, error) {
	if !strings.HasPrefix(path, "/") || len(path) < 2 {
		return nil, errors.New("path must be absolute and not the root")
	}
	var out []segment
	for _, s := range strings.Split(path[1:], "/") {
		switch {
		case s == "":
			return nil, errors.New("empty path segment")
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && len(s) > 2 && !strings.ContainsAny(s[1:len(s)-1], "{}"):
			out = append(out, segment{text: s[1 : len(s)-1], param: true})
		case strings.ContainsAny(s, "{}"):
			return nil, fmt.Errorf("segment %q: a parameter must fill its segment", s)
		default:
			out = append(out, segment{text: s})
		}
	}
	if len(out) > 30 {
		return nil, errors.New("more than 30 segments") // keeps priority() in range
	}
	return out, nil
}

// shape is a template with parameter names erased: two templates of one
// shape match the same requests.
func shape(path string) string {
	segs, err := segments(path)
	if err != nil {
		return path
	}
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		if s.param {
			b.WriteString("{}")
		} else {
			b.WriteString(s.text)
		}
	}
	return b.String()
}

// regexPath is the Kong regex path of a template.
func regexPath(segs []segment) string {
	var b strings.Builder
	b.WriteString("~")
	for _, s := range segs {
		b.WriteByte('/')
		if s.param {
			b.WriteString("[^/]+")
		} else {
			b.WriteString(regexp.QuoteMeta(s.text))
		}
	}
	b.WriteString("$")
	return b.String()
}

// priority sets one bit per literal segment, the first segment most
// significant: among templates that can match one request (same length),
// the one literal at the first position where they differ wins.
func priority(segs []segment) int {
	p := 0
	for _, s := range segs {
		p <<= 1
		if !s.param {
			p |= 1
		}
	}
	return p
}

// slug names a route after its template: literals as they are,
// parameters as _name (a Kong name allows letters, digits and ._-~).
func slug(segs []segment) string {
	if len(segs) > 2 && segs[0] == (segment{text: "api"}) && segs[1] == (segment{text: "v1"}) {
		segs = segs[2:] // every route is under /api/v1: say it once, here
	}
	parts := make([]string, 0, len(segs))
	for _, s := range segs {
		if s.param {
			parts = append(parts, "_"+s.text)
		} else {
			parts = append(parts, s.text)
		}
	}
	return strings.Join(parts, ".")
}

// checkNoTies refuses any two routes that share a method, can match the
// same path and have the same priority: Kong would pick one of them in an
// order nobody chose. Route names must be unique too.
func checkNoTies(rs []kongRouteOf) error {
	names := map[string]bool{}
	for i, a := range rs {
		if names[a.route.Name] {
			return fmt.Errorf("gateway: two routes named %s", a.route.Name)
		}
		names[a.route.Name] = true
		for _, b := range rs[i+1:] {
			if a.route.RegexPriority != b.route.RegexPriority || !overlap(a.segs, b.segs) {
				continue
			}
			for _, m := range a.route.Methods {
				if slices.Contains(b.route.Methods, m) {
					return fmt.Errorf("gateway: %s %s (%s) and %s (%s) tie", m, a.route.Paths[0], a.context, b.route.Paths[0], b.context)
				}
			}
		}
	}
	return nil
}

// overlap reports whether some path matches both templates.
func overlap(a, b []segment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].param && !b[i].param && a[i].text != b[i].text {
			return false
		}
	}
	return true
}

// upstream balances a context over its instances. Kong's defaults leave
// active probing off (intervals 0) and passive breaking off (thresholds
// 0); both are switched on here.
func upstream(name string, n, port int) KongUpstream {
	u := KongUpstream{
		Name: name,
		// Least connections sends new requests to the least busy instance,
		// so a slow instance gets less work (round-robin would not care).
		Algorithm: "least-connections",
		Healthchecks: KongHealthchecks{
			Active: KongActiveHealthcheck{
				Type:        "http",
				HTTPPath:    ReadinessPath,
				Timeout:     2,
				Concurrency: 10,
				Healthy: KongActiveHealthy{
					Interval:     5,
					Successes:    2,
					HTTPStatuses: []int{200},
				},
				Unhealthy: KongActiveUnhealthy{
					Interval:     5,
					HTTPFailures: 2,
					TCPFailures:  2,
					Timeouts:     2,
					HTTPStatuses: []int{429, 500, 502, 503, 504},
				},
			},
			Passive: KongPassiveHealthcheck{
				Type: "http",
				Healthy: KongPassiveHealthy{
					Successes:    5,
					HTTPStatuses: []int{200, 201, 202, 204, 301, 302, 304},
				},
				// Only what singles out one instance trips the breaker:
				// refused connections, timeouts and 500s (a 500 is a bug).
				// A 503 usually means a shared dependency is down (the
				// catalog, Redis) and every instance would answer the same;
				// ejecting them all would turn a partial outage into a
				// full one until the active probes bring them back.
				Unhealthy: KongPassiveUnhealthy{
					HTTPFailures: 5,
					TCPFailures:  2,
					Timeouts:     3,
					HTTPStatuses: []int{500},
				},
			},
		},
	}
	for i := 1; i <= n; i++ {
		u.Targets = append(u.Targets, KongTarget{Target: fmt.Sprintf("%s-%d:%d", name, i, port), Weight: 100})
	}
	return u
}

func keyAuth() KongPlugin {
	return KongPlugin{Name: "key-auth", Config: &KeyAuthConfig{
		KeyNames: []string{APIKeyHeader},
		// The service checks the key again and needs it for the role.
		HideCredentials: false,
		KeyInHeader:     true,
		KeyInQuery:      false, // keys in URLs end up in logs
		KeyInBody:       false,
	}}
}

func rateLimiting(perSecond int) KongPlugin {
	return KongPlugin{Name: "rate-limiting", Config: &RateLimitingConfig{
		Second:  perSecond,
		LimitBy: "consumer", // Kong falls back to the client IP without one
		Policy:  "local",
		// Counters are in memory: nothing to be unavailable.
		FaultTolerant:     true,
		HideClientHeaders: false,
	}}
}

func globalPlugins(o Options) []KongPlugin {
	origins := o.CORSOrigins
	if len(origins) == 0 {
		origins = []string{"*"}
	}
	ps := []KongPlugin{
		{Name: "correlation-id", Config: &CorrelationIDConfig{
			HeaderName: RequestIDHeader,
			// The services keep a caller's X-Request-ID and log it; Kong
			// makes one when the client sent none and echoes it back.
			Generator:      "uuid#counter",
			EchoDownstream: true,
		}},
		{Name: "cors", Config: &CORSConfig{
			Origins:        slices.Clone(origins),
			Methods:        []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"},
			Headers:        []string{"Accept", "Authorization", "Content-Type", "Idempotency-Key", APIKeyHeader, RequestIDHeader},
			ExposedHeaders: []string{RequestIDHeader, "X-Served-By", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"},
			// Credentials are headers the page sets itself, never cookies.
			Credentials:       false,
			MaxAge:            3600,
			PreflightContinue: false,
		}},
		{Name: "prometheus", Config: &PrometheusConfig{
			PerConsumer:           true, // tells the fleet's calls from the public's
			StatusCodeMetrics:     true,
			LatencyMetrics:        true,
			BandwidthMetrics:      true,
			UpstreamHealthMetrics: true,
		}},
		rateLimiting(PublicRatePerSecond),
		{Name: "request-size-limiting", Config: &RequestSizeLimitingConfig{
			AllowedPayloadSize: MaxBodyMiB,
			SizeUnit:           "megabytes",
			// Chunked bodies are counted as they stream instead.
			RequireContentLength: false,
		}},
	}
	slices.SortFunc(ps, func(a, b KongPlugin) int { return strings.Compare(a.Name, b.Name) })
	return ps
}

// ServiceURL is where Kong sends a context's requests: the context's
// compose service name (or its upstream's name) on Options.Port.
func ServiceURL(context string, o Options) string {
	return (&url.URL{Scheme: "http", Host: context + ":" + strconv.Itoa(o.Port)}).String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
