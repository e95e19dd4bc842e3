package gateway

import (
	"bytes"

	"gopkg.in/yaml.v3"
)

// The types below model the part of Kong 3's declarative format that the
// generator writes. Field order is the output order and every list is
// sorted by Generate, so the YAML is byte-for-byte reproducible.

// KongConfig is a whole declarative configuration (kong.yml).
type KongConfig struct {
	// FormatVersion is "3.0" for Kong 3.
	FormatVersion string `yaml:"_format_version"`
	// Services are one per context, with their routes nested.
	Services []KongService `yaml:"services"`
	// Upstreams balance the contexts that run as several instances.
	Upstreams []KongUpstream `yaml:"upstreams,omitempty"`
	// Consumers are the callers Kong knows: the fleet.
	Consumers []KongConsumer `yaml:"consumers,omitempty"`
	// Plugins are global: they run on every route.
	Plugins []KongPlugin `yaml:"plugins,omitempty"`
}

// KongService is where Kong sends a context's requests.
type KongService struct {
	// Name is the context's name.
	Name string `yaml:"name"`
	// URL is http://<context>:<port>; when the host names an upstream,
	// Kong balances over the upstream's targets.
	URL string `yaml:"url"`
	// ConnectTimeout, ReadTimeout and WriteTimeout are in milliseconds.
	ConnectTimeout int `yaml:"connect_timeout"`
	ReadTimeout    int `yaml:"read_timeout"`
	WriteTimeout   int `yaml:"write_timeout"`
	// Retries is how often Kong tries another target after a failure.
	Retries int `yaml:"retries"`
	// Routes are the context's operations.
	Routes []KongRoute `yaml:"routes"`
}

// KongRoute matches requests for one path template of one context.
type KongRoute struct {
	// Name is <context>.<template slug>[.m2m].
	Name string `yaml:"name"`
	// Methods are the operations' methods (plus OPTIONS for preflights).
	Methods []string `yaml:"methods"`
	// Paths holds the anchored regex of the template.
	Paths []string `yaml:"paths"`
	// RegexPriority orders overlapping regexes (see the package doc).
	RegexPriority int `yaml:"regex_priority"`
	// StripPath is false: services serve the full path.
	StripPath bool `yaml:"strip_path"`
	// PreserveHost forwards the client's Host header.
	PreserveHost bool `yaml:"preserve_host"`
	// Protocols the route accepts.
	Protocols []string `yaml:"protocols"`
	// Plugins run on this route only (key-auth).
	Plugins []KongPlugin `yaml:"plugins,omitempty"`
}

// KongUpstream is a load balancer over a context's instances.
type KongUpstream struct {
	// Name is the context's name, which its service URL uses as host.
	Name string `yaml:"name"`
	// Algorithm is least-connections.
	Algorithm string `yaml:"algorithm"`
	// Healthchecks are active (probes) and passive (circuit breaker).
	Healthchecks KongHealthchecks `yaml:"healthchecks"`
	// Targets are the instances, host:port.
	Targets []KongTarget `yaml:"targets"`
}

// KongHealthchecks configures both kinds of health checks.
type KongHealthchecks struct {
	// Active probes every target on a schedule.
	Active KongActiveHealthcheck `yaml:"active"`
	// Passive watches live traffic.
	Passive KongPassiveHealthcheck `yaml:"passive"`
}

// KongActiveHealthcheck probes targets; zero intervals would disable it.
type KongActiveHealthcheck struct {
	// Type is the probe protocol.
	Type string `yaml:"type"`
	// HTTPPath is the probed path.
	HTTPPath string `yaml:"http_path"`
	// Timeout is the probe timeout in seconds.
	Timeout int `yaml:"timeout"`
	// Concurrency is how many targets are probed at once.
	Concurrency int `yaml:"concurrency"`
	// Healthy says when a target comes back.
	Healthy KongActiveHealthy `yaml:"healthy"`
	// Unhealthy says when a target is taken out.
	Unhealthy KongActiveUnhealthy `yaml:"unhealthy"`
}

// KongActiveHealthy: probe interval and successes to mark a target up.
type KongActiveHealthy struct {
	// Interval between probes of healthy targets, in seconds.
	Interval int `yaml:"interval"`
	// Successes in a row that mark a target healthy.
	Successes int `yaml:"successes"`
	// HTTPStatuses that count as success.
	HTTPStatuses []int `yaml:"http_statuses"`
}

// KongActiveUnhealthy: probe interval and failures to mark a target down.
type KongActiveUnhealthy struct {
	// Interval between probes of unhealthy targets, in seconds.
	Interval int `yaml:"interval"`
	// HTTPFailures, TCPFailures and Timeouts in a row that mark a target
	// unhealthy.
	HTTPFailures int `yaml:"http_failures"`
	TCPFailures  int `yaml:"tcp_failures"`
	Timeouts     int `yaml:"timeouts"`
	// HTTPStatuses that count as failure.
	HTTPStatuses []int `yaml:"http_statuses"`
}

// KongPassiveHealthcheck counts outcomes of proxied requests.
type KongPassiveHealthcheck struct {
	// Type is the traffic's protocol.
	Type string `yaml:"type"`
	// Healthy says which responses count as success.
	Healthy KongPassiveHealthy `yaml:"healthy"`
	// Unhealthy says which failures trip the breaker.
	Unhealthy KongPassiveUnhealthy `yaml:"unhealthy"`
}

// KongPassiveHealthy: successes that mark a target healthy again.
type KongPassiveHealthy struct {
	// Successes that mark a target healthy.
	Successes int `yaml:"successes"`
	// HTTPStatuses that count as success.
	HTTPStatuses []int `yaml:"http_statuses"`
}

// KongPassiveUnhealthy: failures that take a target out.
type KongPassiveUnhealthy struct {
	// HTTPFailures, TCPFailures and Timeouts that mark a target unhealthy.
	HTTPFailures int `yaml:"http_failures"`
	TCPFailures  int `yaml:"tcp_failures"`
	Timeouts     int `yaml:"timeouts"`
	// HTTPStatuses that count as failure.
	HTTPStatuses []int `yaml:"http_statuses"`
}

// KongTarget is one instance of an upstream.
type KongTarget struct {
	// Target is host:port.
	Target string `yaml:"target"`
	// Weight is the target's share (all equal).
	Weight int `yaml:"weight"`
}

// KongConsumer is a caller Kong can identify.
type KongConsumer struct {
	// Username names the consumer.
	Username string `yaml:"username"`
	// KeyauthCredentials are its API keys.
	KeyauthCredentials []KongKeyauthCredential `yaml:"keyauth_credentials"`
	// Plugins apply to this consumer's requests only.
	Plugins []KongPlugin `yaml:"plugins,omitempty"`
}

// KongKeyauthCredential is one API key of a consumer.
type KongKeyauthCredential struct {
	// Key is the key, or ServiceKeyPlaceholder in the committed file.
	Key doubleQuoted `yaml:"key"`
}

// doubleQuoted is written in double quotes: whatever the deployment
// substitutes for the placeholder (letters, digits, ._~-) stays a string,
// even a lone "~" that YAML would read as null.
type doubleQuoted string

// MarshalYAML writes the string double-quoted.
func (s doubleQuoted) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Value: string(s)}, nil
}

// KongPlugin is a plugin instance; Config is one of the *Config types.
type KongPlugin struct {
	// Name is the plugin's name.
	Name string `yaml:"name"`
	// Config is the plugin's configuration.
	Config any `yaml:"config"`
}

// CorrelationIDConfig configures correlation-id.
type CorrelationIDConfig struct {
	// HeaderName carries the id.
	HeaderName string `yaml:"header_name"`
	// Generator makes ids: uuid, uuid#counter or tracker.
	Generator string `yaml:"generator"`
	// EchoDownstream returns the id to the client.
	EchoDownstream bool `yaml:"echo_downstream"`
}

// CORSConfig configures cors.
type CORSConfig struct {
	// Origins allowed ("*" for any).
	Origins []string `yaml:"origins"`
	// Methods allowed.
	Methods []string `yaml:"methods"`
	// Headers a request may carry.
	Headers []string `yaml:"headers"`
	// ExposedHeaders a page may read.
	ExposedHeaders []string `yaml:"exposed_headers"`
	// Credentials allows cookies; off.
	Credentials bool `yaml:"credentials"`
	// MaxAge caches preflights, in seconds.
	MaxAge int `yaml:"max_age"`
	// PreflightContinue would proxy preflights; Kong answers them.
	PreflightContinue bool `yaml:"preflight_continue"`
}

// RequestSizeLimitingConfig configures request-size-limiting.
type RequestSizeLimitingConfig struct {
	// AllowedPayloadSize in SizeUnit.
	AllowedPayloadSize int `yaml:"allowed_payload_size"`
	// SizeUnit: bytes, kilobytes or megabytes (powers of 1024).
	SizeUnit string `yaml:"size_unit"`
	// RequireContentLength refuses bodies without Content-Length.
	RequireContentLength bool `yaml:"require_content_length"`
}

// RateLimitingConfig configures rate-limiting.
type RateLimitingConfig struct {
	// Second is the limit per second.
	Second int `yaml:"second"`
	// LimitBy is what a counter belongs to.
	LimitBy string `yaml:"limit_by"`
	// Policy is where counters live: local memory.
	Policy string `yaml:"policy"`
	// FaultTolerant proxies when counters cannot be read.
	FaultTolerant bool `yaml:"fault_tolerant"`
	// HideClientHeaders hides the RateLimit-* headers; they are shown.
	HideClientHeaders bool `yaml:"hide_client_headers"`
}

// PrometheusConfig configures prometheus; every family is switched on.
type PrometheusConfig struct {
	// PerConsumer labels requests with their consumer.
	PerConsumer bool `yaml:"per_consumer"`
	// StatusCodeMetrics exports kong_http_requests_total.
	StatusCodeMetrics bool `yaml:"status_code_metrics"`
	// LatencyMetrics exports the latency histograms.
	LatencyMetrics bool `yaml:"latency_metrics"`
	// BandwidthMetrics exports kong_bandwidth_bytes.
	BandwidthMetrics bool `yaml:"bandwidth_metrics"`
	// UpstreamHealthMetrics exports kong_upstream_target_health.
	UpstreamHealthMetrics bool `yaml:"upstream_health_metrics"`
}

// KeyAuthConfig configures key-auth.
type KeyAuthConfig struct {
	// KeyNames are the headers holding the key.
	KeyNames []string `yaml:"key_names"`
	// HideCredentials would strip the key before proxying.
	HideCredentials bool `yaml:"hide_credentials"`
	// KeyInHeader, KeyInQuery and KeyInBody say where Kong looks.
	KeyInHeader bool `yaml:"key_in_header"`
	KeyInQuery  bool `yaml:"key_in_query"`
	KeyInBody   bool `yaml:"key_in_body"`
}

// Header opens the generated file; it says where the file comes from.
const Header = "# Generated from the route table by `pos gateway kong`: do not edit.\n" +
	"# Regenerate with: go run ./cmd/pos gateway kong > deploy/kong/kong.yml\n" +
	"# " + ServiceKeyPlaceholder + " is replaced when Kong starts (see deploy/compose.yaml).\n"

// YAML is the configuration as kong.yml: Header, then the document.
func (c *KongConfig) YAML() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(Header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
