// Package httpx is the HTTP platform every context stands on: one echo
// server with huma operations (typed inputs, OpenAPI 3.1, validation),
// problem+json errors from the errs table, request ids, structured logs,
// RED metrics, authentication, rate limiting, health and docs; and the typed
// client every context's Client adapter uses to call another process.
package httpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humaecho"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/auth"
)

// MaxBodyBytes bounds every request body (1 MiB).
const MaxBodyBytes = 1 << 20

// ServerConfig is everything NewServer needs; there are no globals.
type ServerConfig struct {
	// Title and Version describe the API in the OpenAPI document.
	Title, Version string
	// InstanceID is sent as X-Served-By on every response.
	InstanceID string
	// Logger receives access logs and errors.
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is served on /metrics.
	Registry *prometheus.Registry
	// Keys resolves X-API-Key; nil means no key is accepted.
	Keys auth.KeyStore
	// Tokens verifies customer bearer tokens; nil means none is accepted.
	Tokens *auth.Tokens
	// RateLimit is requests per second per client (0: off); RateBurst the
	// bucket size.
	RateLimit float64
	RateBurst int
	// TrustProxy takes the client IP from X-Forwarded-For (behind Kong);
	// otherwise the TCP peer is the client.
	TrustProxy bool
	// AccessLog logs one line per request at info level.
	AccessLog bool
	// Pprof serves Go's profiler under /debug/pprof/ (admin key required),
	// for profiling a running process under load.
	Pprof bool
}

// Server is one process's HTTP surface: the contexts it hosts register
// their operations on API.
type Server struct {
	// Echo is the router; contexts rarely need it directly.
	Echo *echo.Echo
	// API is where contexts register their operations (Register).
	API huma.API

	cfg     ServerConfig
	health  *Health
	metrics *httpMetrics
	limiter *rateLimiter

	routeMu      sync.RWMutex
	routeContext map[string]string // echo path → owning context
}

// NewServer builds the server with the whole middleware chain.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	useProblemsInHuma()

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler
	if cfg.TrustProxy {
		e.IPExtractor = echo.ExtractIPFromXFFHeader()
	} else {
		e.IPExtractor = echo.ExtractIPDirect()
	}

	s := &Server{
		Echo:         e,
		cfg:          cfg,
		health:       newHealth(),
		metrics:      newHTTPMetrics(cfg.Registry),
		routeContext: map[string]string{},
	}
	if cfg.RateLimit > 0 {
		s.limiter = newRateLimiter(cfg.RateLimit, cfg.RateBurst)
	}

	e.Use(s.requestID, s.observe, s.recoverer)
	e.Use(middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: "1M"}))
	e.Use(middleware.GzipWithConfig(middleware.GzipConfig{
		MinLength: 1024,
		Skipper: func(c echo.Context) bool {
			p := c.Request().URL.Path
			return p == "/metrics" || strings.HasPrefix(p, "/docs/")
		},
	}))
	e.Use(s.authenticate, s.rateLimit)

	hcfg := huma.DefaultConfig(cfg.Title, cfg.Version)
	hcfg.CreateHooks = nil // no $schema links in bodies: clients get plain JSON
	hcfg.Components.Schemas = huma.NewMapRegistry("#/components/schemas/", schemaName)
	hcfg.OpenAPIPath, hcfg.DocsPath, hcfg.SchemasPath = "", "", ""
	hcfg.Info.Description = "Point-of-sale and e-commerce platform. Staff authenticate with X-API-Key, customers with a bearer token from /api/v1/auth/login."
	hcfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"apiKey": {Type: "apiKey", In: "header", Name: "X-API-Key"},
		"bearer": {Type: "http", Scheme: "bearer", BearerFormat: "JWT"},
	}
	hcfg.OnAddOperation = append(hcfg.OnAddOperation, func(_ *huma.OpenAPI, op *huma.Operation) {
		if name, ok := op.Metadata[MetaContext].(string); ok {
			s.routeMu.Lock()
			s.routeContext[op.Method+" "+echoPath(op.Path)] = name
			s.routeMu.Unlock()
		}
	})
	s.API = humaecho.New(e, hcfg)

	e.GET("/health", s.health.handleHealth)
	e.GET("/health/live", s.health.handleLive)
	e.GET("/health/ready", s.health.handleReady)
	e.GET("/metrics", echo.WrapHandler(promHandler(cfg.Registry)))
	s.mountDocs()
	if cfg.Pprof {
		s.mountPprof()
	}
	return s
}

// echoPath converts huma's {param} to echo's :param.
func echoPath(p string) string {
	return strings.NewReplacer("{", ":", "}", "").Replace(p)
}

// contextOf names the context owning a matched route, for metric labels.
func (s *Server) contextOf(method, route string) string {
	s.routeMu.RLock()
	defer s.routeMu.RUnlock()
	if name, ok := s.routeContext[method+" "+route]; ok {
		return name
	}
	return "platform"
}

// AddCheck adds a readiness check for a hosted context (its database, its
// broker). /health and /health/ready answer 503 while one fails.
func (s *Server) AddCheck(contextName, check string, fn func(context.Context) error) {
	s.health.add(contextName, check, fn)
}

// AddDependency reports a remote context this process calls in /health
// (status "degraded" while it is unreachable) without failing readiness.
func (s *Server) AddDependency(name string, fn func(context.Context) error) {
	s.health.addDependency(name, fn)
}

// Handler is the server as an http.Handler (tests mount it on httptest).
func (s *Server) Handler() http.Handler { return s.Echo }

// Serve answers on ln until ctx is cancelled, then drains: in-flight
// requests get up to drain to finish, new connections are refused.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	srv := &http.Server{
		Handler:           s.Echo,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.health.setDraining()
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
