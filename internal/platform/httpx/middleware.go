package httpx

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
)

// recoverer turns a panic into a logged 500 problem: the process lives on.
func (s *Server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.cfg.Logger.Error("panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()),
					"request_id", correlation.From(c.Request().Context()))
				err = NewProblem(errs.Internal, "internal error; the request id identifies it in the logs", nil)
			}
		}()
		return next(c)
	}
}

// requestID takes the caller's X-Request-ID (Kong sets one) or makes one,
// puts it in the request context for logs, outgoing calls and events, and
// echoes it back with the instance that served the request.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		id := req.Header.Get(correlation.Header)
		if !correlation.Valid(id) {
			id = correlation.NewID()
		}
		ctx := correlation.StartTrace(correlation.With(req.Context(), id), req.Header)
		c.SetRequest(req.WithContext(ctx))
		h := c.Response().Header()
		h.Set(correlation.Header, id)
		correlation.InjectTrace(ctx, h) // the caller learns the trace id too
		if s.cfg.InstanceID != "" {
			h.Set("X-Served-By", s.cfg.InstanceID)
		}
		return next(c)
	}
}

// observe records RED metrics by route template (never the raw path, which
// would explode the label set) and writes the access log.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		s.metrics.inflight.Inc()
		err := next(c)
		s.metrics.inflight.Dec()
		if err != nil {
			c.Error(err) // write the problem now so the status is known
		}
		status := c.Response().Status
		route := c.Path()
		if route == "" || status == http.StatusNotFound && route == "/*" {
			route = "unmatched"
		}
		method := c.Request().Method
		ctxName := s.contextOf(method, route)
		elapsed := time.Since(start)
		s.metrics.observe(ctxName, method, route, status, elapsed)
		if s.cfg.AccessLog {
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("method", method), slog.String("route", route), slog.String("path", c.Request().URL.Path),
				slog.Int("status", status), slog.Float64("ms", float64(elapsed.Microseconds())/1000),
				slog.String("context", ctxName), slog.String("request_id", correlation.From(c.Request().Context())),
				slog.String("trace_id", correlation.TraceID(c.Request().Context())),
			}
			if p, ok := auth.FromContext(c.Request().Context()); ok {
				attrs = append(attrs, slog.String("role", string(p.Role)), slog.String("subject", p.Subject))
			}
			s.cfg.Logger.LogAttrs(c.Request().Context(), level, "request", attrs...)
		}
		return nil
	}
}

// authenticate resolves credentials into a principal. Missing credentials
// are fine here (public routes exist; each operation checks its Access);
// wrong credentials are a 401 at once.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		var (
			p   auth.Principal
			err error
			ok  bool
		)
		if key := req.Header.Get("X-API-Key"); key != "" {
			if s.cfg.Keys == nil {
				err = fmt.Errorf("api keys are not accepted here: %w", errs.Unauthorized)
			} else {
				p, err = s.cfg.Keys.AuthenticateKey(req.Context(), key)
			}
			ok = err == nil
		} else if h := req.Header.Get(echo.HeaderAuthorization); h != "" {
			token, found := strings.CutPrefix(h, "Bearer ")
			switch {
			case !found:
				err = fmt.Errorf("authorization must be a Bearer token: %w", errs.Unauthorized)
			case s.cfg.Tokens == nil:
				err = fmt.Errorf("bearer tokens are not accepted here: %w", errs.Unauthorized)
			default:
				p, err = s.cfg.Tokens.Verify(strings.TrimSpace(token))
			}
			ok = err == nil
		}
		if err != nil {
			p := ProblemFor(req.Context(), err)
			if p.Status == http.StatusUnauthorized {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="pos"`)
			}
			return p
		}
		if ok {
			c.SetRequest(req.WithContext(auth.WithPrincipal(req.Context(), p)))
		}
		return next(c)
	}
}

// rateLimit keeps any one client (key, customer, else IP) under the
// configured rate, so the monolith is safe without a gateway in front.
func (s *Server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.limiter == nil {
			return next(c)
		}
		path := c.Request().URL.Path
		if strings.HasPrefix(path, "/health") || path == "/metrics" {
			return next(c) // probes and scrapes must never be throttled
		}
		client := "ip:" + c.RealIP()
		if p, ok := auth.FromContext(c.Request().Context()); ok {
			client = string(p.Role) + ":" + p.Subject
		}
		if wait, ok := s.limiter.allow(client); !ok {
			secs := int(wait/time.Second) + 1
			c.Response().Header().Set("Retry-After", fmt.Sprint(secs))
			s.metrics.rateLimited.Inc()
			return NewProblem(errs.TooManyRequests, fmt.Sprintf("rate limit exceeded; retry in %ds", secs), nil)
		}
		return next(c)
	}
}
