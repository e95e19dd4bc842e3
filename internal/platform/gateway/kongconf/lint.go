package kongconf

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/retailco/pos/internal/platform/gateway"
)

// MinPublicRatePerSecond is the lowest global rate limit Lint accepts:
// the platform's throughput bar (5,000 req/s on the catalog at 100
// clients, README), which a load test from one IP must be able to reach.
const MinPublicRatePerSecond = 5000

// Lint checks the file against the project's gateway rules (see package
// gateway): routes that cannot steal each other's traffic, services
// reached at the full path, balanced contexts with active and passive
// health checks on, the global plugins, key-auth that lets the services
// check the key again, and no real key in the file. It returns every
// problem found, none when the file keeps the rules.
func Lint(f *File) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if f.FormatVersion != gateway.FormatVersion {
		bad("_format_version is %q, want %q", f.FormatVersion, gateway.FormatVersion)
	}
	upstreams := map[string]*Upstream{}
	for i := range f.Upstreams {
		u := &f.Upstreams[i]
		if upstreams[u.Name] != nil {
			bad("upstream %s defined twice", u.Name)
		}
		upstreams[u.Name] = u
	}
	services, routes := map[string]bool{}, map[string]bool{}
	used := map[string]bool{}
	for _, s := range f.Services {
		if services[s.Name] {
			bad("service %s defined twice", s.Name)
		}
		services[s.Name] = true
		u, err := url.Parse(s.URL)
		if err != nil || u.Scheme != "http" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
			bad("service %s: url %q is not http://host:port", s.Name, s.URL)
		} else {
			used[u.Hostname()] = true
		}
		if len(s.Routes) == 0 {
			bad("service %s has no route", s.Name)
		}
		for _, r := range s.Routes {
			if routes[r.Name] {
				bad("route %s defined twice", r.Name)
			}
			routes[r.Name] = true
			lintRoute(s.Name, r, bad)
		}
	}
	for name, u := range upstreams {
		if !used[name] {
			bad("upstream %s: no service sends to it", name)
		}
		lintUpstream(u, bad)
	}
	lintGlobalPlugins(f, bad)
	lintKeyAuth(f, bad)
	return errs
}

func lintRoute(svc string, r Route, bad func(string, ...any)) {
	if len(r.Methods) == 0 {
		bad("route %s (%s): no methods: it would take every method of its paths", r.Name, svc)
	}
	if r.StripPath == nil || *r.StripPath {
		bad("route %s (%s): strip_path must be false (Kong's default strips the matched prefix)", r.Name, svc)
	}
	if r.PreserveHost == nil || !*r.PreserveHost {
		bad("route %s (%s): preserve_host must be true", r.Name, svc)
	}
	if len(r.Paths) == 0 {
		bad("route %s (%s): no paths", r.Name, svc)
	}
	for _, p := range r.Paths {
		re, isRegex := strings.CutPrefix(p, "~")
		switch {
		case !isRegex:
			// A plain path is a prefix: it would also take longer paths
			// that other contexts own.
			bad("route %s (%s): path %q is a prefix, not an anchored regex", r.Name, svc, p)
		case !strings.HasSuffix(re, "$") || !strings.HasPrefix(re, "/"):
			bad("route %s (%s): regex path %q must be /…$", r.Name, svc, p)
		default:
			if _, err := regexp.Compile("^" + re); err != nil {
				bad("route %s (%s): %v", r.Name, svc, err)
			}
		}
	}
}

func lintUpstream(u *Upstream, bad func(string, ...any)) {
	if u.Algorithm == "" {
		bad("upstream %s: no algorithm", u.Name)
	}
	if len(u.Targets) == 0 {
		bad("upstream %s: no targets", u.Name)
	}
	for _, t := range u.Targets {
		if !strings.Contains(t.Target, ":") {
			bad("upstream %s: target %q has no port", u.Name, t.Target)
		}
	}
	hc := u.Healthchecks
	if hc == nil || hc.Active == nil || hc.Passive == nil {
		bad("upstream %s: active and passive health checks are required", u.Name)
		return
	}
	a := hc.Active
	if a.Type != "http" || a.HTTPPath != gateway.ReadinessPath {
		bad("upstream %s: active checks must probe http %s, not %s %q", u.Name, gateway.ReadinessPath, a.Type, a.HTTPPath)
	}
	// Kong's defaults leave both intervals at 0, which disables probing.
	if a.Healthy == nil || a.Healthy.Interval <= 0 || a.Healthy.Successes <= 0 {
		bad("upstream %s: active healthy interval and successes must be set", u.Name)
	}
	if a.Unhealthy == nil || a.Unhealthy.Interval <= 0 || a.Unhealthy.HTTPFailures+a.Unhealthy.TCPFailures+a.Unhealthy.Timeouts <= 0 {
		bad("upstream %s: active unhealthy interval and failure thresholds must be set", u.Name)
	}
	p := hc.Passive
	if p.Unhealthy == nil || p.Unhealthy.HTTPFailures+p.Unhealthy.TCPFailures+p.Unhealthy.Timeouts <= 0 {
		bad("upstream %s: passive checks need a failure threshold (all 0 disables them)", u.Name)
	}
	if p.Healthy == nil || p.Healthy.Successes <= 0 {
		bad("upstream %s: passive healthy successes must be set", u.Name)
	}
}

func lintGlobalPlugins(f *File, bad func(string, ...any)) {
	get := func(name string) any {
		p, ok := f.GlobalPlugin(name)
		if !ok {
			bad("global plugin %s missing", name)
			return nil
		}
		return p.Parsed
	}
	if c, ok := get("correlation-id").(*CorrelationID); ok && (c.HeaderName != gateway.RequestIDHeader || !c.EchoDownstream) {
		bad("correlation-id: header %q, echo_downstream %v; want %s echoed", c.HeaderName, c.EchoDownstream, gateway.RequestIDHeader)
	}
	if c, ok := get("cors").(*CORS); ok && c.Credentials && slices.Contains(c.Origins, "*") {
		bad("cors: credentials with origin *")
	}
	if c, ok := get("request-size-limiting").(*RequestSizeLimiting); ok {
		unit := map[string]int{"bytes": 1, "kilobytes": 1 << 10, "megabytes": 1 << 20}[c.SizeUnit]
		if c.AllowedPayloadSize*unit != gateway.MaxBodyMiB<<20 {
			bad("request-size-limiting: %d %s, want %d MiB like the services", c.AllowedPayloadSize, c.SizeUnit, gateway.MaxBodyMiB)
		}
	}
	if c, ok := get("rate-limiting").(*RateLimiting); ok {
		if c.Policy != "local" {
			bad("rate-limiting: policy %q, want local (DB-less Kong has no cluster policy)", c.Policy)
		}
		if c.LimitBy != "consumer" && c.LimitBy != "ip" {
			bad("rate-limiting: limit_by %q, want consumer or ip", c.LimitBy)
		}
		for name, v := range map[string]*float64{"second": c.Second, "minute": c.Minute, "hour": c.Hour} {
			if v != nil && *v < float64(MinPublicRatePerSecond)*map[string]float64{"second": 1, "minute": 60, "hour": 3600}[name] {
				bad("rate-limiting: %s limit %v is under %d/s: it would throttle the load tests", name, *v, MinPublicRatePerSecond)
			}
		}
		if c.Second == nil && c.Minute == nil && c.Hour == nil {
			bad("rate-limiting: no second, minute or hour limit")
		}
	}
	if c, ok := get("prometheus").(*Prometheus); ok && !(c.StatusCodeMetrics && c.LatencyMetrics && c.BandwidthMetrics && c.UpstreamHealthMetrics) {
		bad("prometheus: status code, latency, bandwidth and upstream health metrics must all be on")
	}
}

func lintKeyAuth(f *File, bad func(string, ...any)) {
	n := 0
	for _, p := range f.allPlugins() {
		k, ok := p.Parsed.(*KeyAuth)
		if !ok {
			continue
		}
		n++
		if !slices.Contains(k.KeyNames, gateway.APIKeyHeader) {
			bad("key-auth: key_names %v lack %s", k.KeyNames, gateway.APIKeyHeader)
		}
		if k.HideCredentials {
			bad("key-auth: hide_credentials would strip the key the services check again")
		}
		if k.Anonymous != "" {
			bad("key-auth: an anonymous consumer would let callers without a key through")
		}
	}
	if n == 0 {
		bad("no key-auth plugin: the machine routes are open at the gateway")
	}
	creds := 0
	for _, c := range f.Consumers {
		for _, k := range c.KeyauthCredentials {
			creds++
			if k.Key != gateway.ServiceKeyPlaceholder {
				bad("consumer %s: a literal key is committed; use %s", c.Username, gateway.ServiceKeyPlaceholder)
			}
		}
	}
	if creds == 0 {
		bad("no consumer holds a key: key-auth would refuse the fleet too")
	}
}
