// Package kongconf reads a Kong 3 declarative file the way a test needs
// to: strictly, into Go structs that model the subset of Kong's schema
// this project uses, so a field Kong does not have (a typo, a field of
// another version) fails instead of being ignored as Kong would silently
// default it. It then answers the two questions the deploy checks ask:
// which service and plugins a request reaches (Match, a model of Kong's
// router) and whether the file keeps the project's gateway rules (Lint).
//
// It is written apart from the generator (package gateway) on purpose:
// the checks read the committed file, not the generator's structs, so a
// wrong YAML tag in the generator fails here instead of passing on both
// sides of the same mistake.
package kongconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// File is a declarative configuration.
type File struct {
	// FormatVersion must be "3.0".
	FormatVersion string `yaml:"_format_version"`
	// Transform is Kong's _transform flag (credentials hashing on load).
	Transform *bool `yaml:"_transform"`
	// Services with their nested routes and plugins.
	Services []Service `yaml:"services"`
	// Upstreams with their nested targets.
	Upstreams []Upstream `yaml:"upstreams"`
	// Consumers with their nested credentials and plugins.
	Consumers []Consumer `yaml:"consumers"`
	// Plugins are global.
	Plugins []Plugin `yaml:"plugins"`
}

// Service is a Kong service.
type Service struct {
	// Name is unique.
	Name string `yaml:"name"`
	// URL is the shorthand for protocol, host, port and path.
	URL string `yaml:"url"`
	// Timeouts in milliseconds and the retry count.
	ConnectTimeout *int `yaml:"connect_timeout"`
	ReadTimeout    *int `yaml:"read_timeout"`
	WriteTimeout   *int `yaml:"write_timeout"`
	Retries        *int `yaml:"retries"`
	// Enabled defaults to true.
	Enabled *bool `yaml:"enabled"`
	// Tags are free labels.
	Tags []string `yaml:"tags"`
	// Routes belong to this service.
	Routes []Route `yaml:"routes"`
	// Plugins run on every route of this service.
	Plugins []Plugin `yaml:"plugins"`
}

// Route is a Kong route (http flavour: no hosts, headers or snis are
// modelled, as the project routes by method and path only).
type Route struct {
	// Name is unique.
	Name string `yaml:"name"`
	// Methods; empty matches any.
	Methods []string `yaml:"methods"`
	// Paths: prefixes, or regexes when they start with "~".
	Paths []string `yaml:"paths"`
	// RegexPriority orders regex routes, higher first.
	RegexPriority *int `yaml:"regex_priority"`
	// StripPath defaults to true in Kong.
	StripPath *bool `yaml:"strip_path"`
	// PreserveHost defaults to false in Kong.
	PreserveHost *bool `yaml:"preserve_host"`
	// Protocols default to http and https.
	Protocols []string `yaml:"protocols"`
	// PathHandling is v0 or v1.
	PathHandling string `yaml:"path_handling"`
	// HTTPSRedirectStatusCode is used when a route is https-only.
	HTTPSRedirectStatusCode *int `yaml:"https_redirect_status_code"`
	// RequestBuffering and ResponseBuffering default to true.
	RequestBuffering  *bool `yaml:"request_buffering"`
	ResponseBuffering *bool `yaml:"response_buffering"`
	// Tags are free labels.
	Tags []string `yaml:"tags"`
	// Plugins run on this route.
	Plugins []Plugin `yaml:"plugins"`
}

// Upstream is a load balancer.
type Upstream struct {
	// Name is what a service URL's host refers to.
	Name string `yaml:"name"`
	// Algorithm: round-robin, consistent-hashing, least-connections,
	// latency.
	Algorithm string `yaml:"algorithm"`
	// Slots of the balancer ring.
	Slots *int `yaml:"slots"`
	// Healthchecks, active and passive.
	Healthchecks *Healthchecks `yaml:"healthchecks"`
	// Targets are the instances.
	Targets []Target `yaml:"targets"`
	// Tags are free labels.
	Tags []string `yaml:"tags"`
}

// Healthchecks of an upstream.
type Healthchecks struct {
	// Active probes.
	Active *ActiveCheck `yaml:"active"`
	// Passive circuit breaker.
	Passive *PassiveCheck `yaml:"passive"`
	// Threshold is the health percentage below which the upstream is
	// unhealthy as a whole.
	Threshold *float64 `yaml:"threshold"`
}

// ActiveCheck probes targets.
type ActiveCheck struct {
	// Type: tcp, http, https, grpc, grpcs.
	Type string `yaml:"type"`
	// HTTPPath is probed.
	HTTPPath string `yaml:"http_path"`
	// Timeout in seconds.
	Timeout *float64 `yaml:"timeout"`
	// Concurrency of probes.
	Concurrency *int `yaml:"concurrency"`
	// HTTPSVerifyCertificate for https probes.
	HTTPSVerifyCertificate *bool `yaml:"https_verify_certificate"`
	// Headers sent with probes.
	Headers map[string][]string `yaml:"headers"`
	// Healthy and Unhealthy thresholds.
	Healthy   *ActiveHealthy   `yaml:"healthy"`
	Unhealthy *ActiveUnhealthy `yaml:"unhealthy"`
}

// ActiveHealthy thresholds; Interval 0 disables probing of healthy
// targets, Kong's default.
type ActiveHealthy struct {
	// Interval in seconds.
	Interval float64 `yaml:"interval"`
	// Successes that mark a target healthy.
	Successes int `yaml:"successes"`
	// HTTPStatuses that count as success.
	HTTPStatuses []int `yaml:"http_statuses"`
}

// ActiveUnhealthy thresholds; Interval 0 disables probing of unhealthy
// targets, Kong's default.
type ActiveUnhealthy struct {
	// Interval in seconds.
	Interval float64 `yaml:"interval"`
	// Failures that mark a target unhealthy.
	HTTPFailures int `yaml:"http_failures"`
	TCPFailures  int `yaml:"tcp_failures"`
	Timeouts     int `yaml:"timeouts"`
	// HTTPStatuses that count as failure.
	HTTPStatuses []int `yaml:"http_statuses"`
}

// PassiveCheck watches proxied traffic.
type PassiveCheck struct {
	// Type: tcp, http, https, grpc, grpcs.
	Type string `yaml:"type"`
	// Healthy and Unhealthy thresholds.
	Healthy   *PassiveHealthy   `yaml:"healthy"`
	Unhealthy *PassiveUnhealthy `yaml:"unhealthy"`
}

// PassiveHealthy thresholds.
type PassiveHealthy struct {
	// Successes that mark a target healthy.
	Successes int `yaml:"successes"`
	// HTTPStatuses that count as success.
	HTTPStatuses []int `yaml:"http_statuses"`
}

// PassiveUnhealthy thresholds; all zero disables the breaker, Kong's
// default.
type PassiveUnhealthy struct {
	// Failures that mark a target unhealthy.
	HTTPFailures int `yaml:"http_failures"`
	TCPFailures  int `yaml:"tcp_failures"`
	Timeouts     int `yaml:"timeouts"`
	// HTTPStatuses that count as failure.
	HTTPStatuses []int `yaml:"http_statuses"`
}

// Target is one instance.
type Target struct {
	// Target is host:port.
	Target string `yaml:"target"`
	// Weight is its share.
	Weight *int `yaml:"weight"`
	// Tags are free labels.
	Tags []string `yaml:"tags"`
}

// Consumer is a known caller.
type Consumer struct {
	// Username and CustomID identify it.
	Username string `yaml:"username"`
	CustomID string `yaml:"custom_id"`
	// Tags are free labels.
	Tags []string `yaml:"tags"`
	// KeyauthCredentials are its API keys.
	KeyauthCredentials []Credential `yaml:"keyauth_credentials"`
	// Plugins scoped to this consumer.
	Plugins []Plugin `yaml:"plugins"`
}

// Credential is one key-auth key.
type Credential struct {
	// Key is the key itself.
	Key string `yaml:"key"`
	// Tags are free labels.
	Tags []string `yaml:"tags"`
}

// Plugin is a plugin instance. Its config is decoded strictly into the
// typed struct of its name (CorrelationID, CORS, …); an unmodelled plugin
// fails.
type Plugin struct {
	// Name selects the plugin.
	Name string `yaml:"name"`
	// Enabled defaults to true.
	Enabled *bool `yaml:"enabled"`
	// Protocols the plugin runs on.
	Protocols []string `yaml:"protocols"`
	// Tags are free labels.
	Tags []string `yaml:"tags"`
	// Config is the raw configuration; Decode fills Parsed from it.
	Config yaml.Node `yaml:"config"`
	// Parsed is the typed configuration: one of the *Config types below.
	Parsed any `yaml:"-"`
}

// CorrelationID is correlation-id's configuration; fields and names as in the
// plugin's schema in Kong 3.
type CorrelationID struct {
	HeaderName     string `yaml:"header_name"`
	Generator      string `yaml:"generator"`
	EchoDownstream bool   `yaml:"echo_downstream"`
}

// CORS is cors's configuration; fields and names as in the
// plugin's schema in Kong 3.
type CORS struct {
	Origins           []string `yaml:"origins"`
	Methods           []string `yaml:"methods"`
	Headers           []string `yaml:"headers"`
	ExposedHeaders    []string `yaml:"exposed_headers"`
	Credentials       bool     `yaml:"credentials"`
	MaxAge            *float64 `yaml:"max_age"`
	PreflightContinue bool     `yaml:"preflight_continue"`
	PrivateNetwork    bool     `yaml:"private_network"`
}

// RequestSizeLimiting is request-size-limiting's configuration; fields and names as in the
// plugin's schema in Kong 3.
type RequestSizeLimiting struct {
	AllowedPayloadSize   int    `yaml:"allowed_payload_size"`
	SizeUnit             string `yaml:"size_unit"`
	RequireContentLength bool   `yaml:"require_content_length"`
}

// RateLimiting is rate-limiting's configuration; fields and names as in
// the plugin's schema in Kong 3, without the redis block: the project
// uses the local policy.
type RateLimiting struct {
	Second            *float64 `yaml:"second"`
	Minute            *float64 `yaml:"minute"`
	Hour              *float64 `yaml:"hour"`
	Day               *float64 `yaml:"day"`
	Month             *float64 `yaml:"month"`
	Year              *float64 `yaml:"year"`
	LimitBy           string   `yaml:"limit_by"`
	HeaderName        string   `yaml:"header_name"`
	Path              string   `yaml:"path"`
	Policy            string   `yaml:"policy"`
	FaultTolerant     *bool    `yaml:"fault_tolerant"`
	HideClientHeaders bool     `yaml:"hide_client_headers"`
	ErrorCode         *int     `yaml:"error_code"`
	ErrorMessage      string   `yaml:"error_message"`
	SyncRate          *float64 `yaml:"sync_rate"`
}

// Prometheus is prometheus's configuration; fields and names as in the
// plugin's schema in Kong 3.
type Prometheus struct {
	PerConsumer           bool `yaml:"per_consumer"`
	StatusCodeMetrics     bool `yaml:"status_code_metrics"`
	LatencyMetrics        bool `yaml:"latency_metrics"`
	BandwidthMetrics      bool `yaml:"bandwidth_metrics"`
	UpstreamHealthMetrics bool `yaml:"upstream_health_metrics"`
	AIMetrics             bool `yaml:"ai_metrics"`
}

// KeyAuth is key-auth's configuration; fields and names as in the
// plugin's schema in Kong 3.
type KeyAuth struct {
	KeyNames        []string `yaml:"key_names"`
	HideCredentials bool     `yaml:"hide_credentials"`
	Anonymous       string   `yaml:"anonymous"`
	KeyInHeader     *bool    `yaml:"key_in_header"`
	KeyInQuery      *bool    `yaml:"key_in_query"`
	KeyInBody       *bool    `yaml:"key_in_body"`
	RunOnPreflight  *bool    `yaml:"run_on_preflight"`
	Realm           string   `yaml:"realm"`
}

// pluginConfigs maps each modelled plugin to a constructor of its typed
// configuration.
var pluginConfigs = map[string]func() any{
	"correlation-id":        func() any { return &CorrelationID{} },
	"cors":                  func() any { return &CORS{} },
	"request-size-limiting": func() any { return &RequestSizeLimiting{} },
	"rate-limiting":         func() any { return &RateLimiting{} },
	"prometheus":            func() any { return &Prometheus{} },
	"key-auth":              func() any { return &KeyAuth{} },
}

// Decode reads one declarative document strictly: unknown fields, a
// second document, an unmodelled plugin or a plugin config field the
// plugin does not have are errors.
func Decode(r io.Reader) (*File, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("kong config: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("kong config: more than one YAML document")
	}
	for _, p := range f.allPlugins() {
		if err := p.parse(); err != nil {
			return nil, err
		}
	}
	return &f, nil
}

// allPlugins is every plugin instance in the file, wherever it is scoped.
func (f *File) allPlugins() []*Plugin {
	var out []*Plugin
	add := func(ps []Plugin) {
		for i := range ps {
			out = append(out, &ps[i])
		}
	}
	add(f.Plugins)
	for i := range f.Services {
		add(f.Services[i].Plugins)
		for j := range f.Services[i].Routes {
			add(f.Services[i].Routes[j].Plugins)
		}
	}
	for i := range f.Consumers {
		add(f.Consumers[i].Plugins)
	}
	return out
}

func (p *Plugin) parse() error {
	mk, ok := pluginConfigs[p.Name]
	if !ok {
		return fmt.Errorf("kong config: plugin %q is not modelled", p.Name)
	}
	cfg := mk()
	if p.Config.Kind != 0 {
		// A yaml.Node decodes leniently; re-encode it and decode the
		// bytes with a strict decoder instead.
		raw, err := yaml.Marshal(&p.Config)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil {
			return fmt.Errorf("kong config: plugin %s: %w", p.Name, err)
		}
	}
	p.Parsed = cfg
	return nil
}

// enabled is Kong's default for the enabled flags.
func enabled(b *bool) bool { return b == nil || *b }

// Match is where Kong sends one request.
type Match struct {
	// Service and Route are the names of what matched.
	Service, Route string
	// Host is the service URL's host; Upstream is set when it names an
	// upstream, whose Targets then receive the request.
	Host     string
	Upstream *Upstream
	// Plugins are the names of the plugins that run on the request, global
	// and service- and route-scoped (consumer-scoped ones depend on the
	// caller and are left out), sorted.
	Plugins []string
}

// ErrNoRoute is Kong's 404 "no Route matched with those values".
var ErrNoRoute = errors.New("no route matched")

// Match models the router Kong 3 uses by default (router_flavor
// traditional_compatible) for requests that differ only by method and
// path: a route matches when its methods (if any) contain method and one
// of its paths matches — a plain path as a prefix, a "~" path as a regex
// anchored at the start. Among the matches Kong takes the highest
// priority: more matching fields first (methods, paths), then a regex
// path over a plain one, then the higher regex_priority, then the longer
// plain prefix. A tie between two routes is an error here: Kong would pick
// one in an order nobody configured.
func (f *File) Match(method, path string) (Match, error) {
	type cand struct {
		svc   *Service
		route *Route
		prio  [4]int
	}
	var best []cand
	for i := range f.Services {
		svc := &f.Services[i]
		if !enabled(svc.Enabled) {
			continue
		}
		for j := range svc.Routes {
			r := &svc.Routes[j]
			if len(r.Methods) > 0 && !slices.Contains(r.Methods, method) {
				continue
			}
			weight := 0
			if len(r.Methods) > 0 {
				weight++
			}
			if len(r.Paths) > 0 {
				weight++
			}
			paths := r.Paths
			if len(paths) == 0 {
				paths = []string{"/"}
			}
			for _, p := range paths {
				ok, prio, err := matchPath(p, path)
				if err != nil {
					return Match{}, fmt.Errorf("route %s: %w", r.Name, err)
				}
				if !ok {
					continue
				}
				if strings.HasPrefix(p, "~") && r.RegexPriority != nil {
					prio[1] = *r.RegexPriority
				}
				c := cand{svc, r, [4]int{weight, prio[0], prio[1], prio[2]}}
				switch {
				case len(best) == 0 || cmpPrio(c.prio, best[0].prio) > 0:
					best = []cand{c}
				case cmpPrio(c.prio, best[0].prio) == 0 && best[0].route != r:
					best = append(best, c)
				}
			}
		}
	}
	if len(best) == 0 {
		return Match{}, fmt.Errorf("%s %s: %w", method, path, ErrNoRoute)
	}
	if len(best) > 1 {
		var names []string
		for _, c := range best {
			names = append(names, c.route.Name)
		}
		return Match{}, fmt.Errorf("%s %s: routes %s tie", method, path, strings.Join(names, ", "))
	}
	c := best[0]
	m := Match{Service: c.svc.Name, Route: c.route.Name, Host: hostOf(c.svc.URL)}
	for i := range f.Upstreams {
		if f.Upstreams[i].Name == m.Host {
			m.Upstream = &f.Upstreams[i]
		}
	}
	for _, ps := range [][]Plugin{f.Plugins, c.svc.Plugins, c.route.Plugins} {
		for _, p := range ps {
			if enabled(p.Enabled) && !slices.Contains(m.Plugins, p.Name) {
				m.Plugins = append(m.Plugins, p.Name)
			}
		}
	}
	slices.Sort(m.Plugins)
	return m, nil
}

// matchPath tells whether one route path matches; prio is (regex bit,
// regex priority slot left for the caller, plain prefix length).
func matchPath(p, path string) (bool, [3]int, error) {
	if re, ok := strings.CutPrefix(p, "~"); ok {
		rx, err := pathRegexp(re)
		if err != nil {
			return false, [3]int{}, fmt.Errorf("path %q: %w", p, err)
		}
		return rx.MatchString(path), [3]int{1, 0, 0}, nil
	}
	return strings.HasPrefix(path, p), [3]int{0, 0, len(p)}, nil
}

// compiledPaths holds the regular expressions of regex paths, compiled
// once each: Match runs for every request the fleet test's stand-in
// gateway routes, and compiling them per request was most of its CPU
// (README, "Performance"). Paths come from configuration, a bounded set.
var compiledPaths sync.Map // pattern → *regexp.Regexp

// pathRegexp is the compiled form of a regex path's pattern, anchored as
// Kong anchors it.
func pathRegexp(pattern string) (*regexp.Regexp, error) {
	if rx, ok := compiledPaths.Load(pattern); ok {
		return rx.(*regexp.Regexp), nil
	}
	rx, err := regexp.Compile("^" + pattern)
	if err != nil {
		return nil, err
	}
	compiledPaths.Store(pattern, rx)
	return rx, nil
}

func cmpPrio(a, b [4]int) int {
	for i := range a {
		if a[i] != b[i] {
			return a[i] - b[i]
		}
	}
	return 0
}

// hostOf is the host of a service URL (http://host:port/path).
func hostOf(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	host, _, _ := strings.Cut(rest, "/")
	if h, _, ok := strings.Cut(host, ":"); ok {
		return h
	}
	return host
}

// ServiceHost is the host a service sends to: an upstream's name or a
// container's.
func (s Service) ServiceHost() string { return hostOf(s.URL) }

// GlobalPlugin returns the enabled global plugin of that name.
func (f *File) GlobalPlugin(name string) (*Plugin, bool) {
	for i := range f.Plugins {
		if f.Plugins[i].Name == name && enabled(f.Plugins[i].Enabled) {
			return &f.Plugins[i], true
		}
	}
	return nil, false
}
