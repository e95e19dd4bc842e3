package httpx_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

type echoIn struct {
	Kind string `query:"kind"`
}

type echoOut struct {
	RequestID string `json:"request_id"`
	Role      string `json:"role"`
}

// mount registers a few operations that exercise the platform: errors of
// each kind, a panic, and access rules.
func mount(s *httpx.Server) {
	httpx.Register(s.API, httpx.Op{Context: "test", ID: "echo", Method: http.MethodGet, Path: "/echo", Access: httpx.Public},
		func(ctx context.Context, in *echoIn) (*httpx.Reply[echoOut], error) {
			switch in.Kind {
			case "conflict":
				return nil, fmt.Errorf("reserve r1: %w", errs.Conflict)
			case "field":
				return nil, errs.Field("quantity", "must be positive")
			case "bug":
				return nil, errors.New("secret internal detail")
			case "panic":
				panic("boom")
			}
			p, _ := auth.FromContext(ctx)
			return httpx.OK(echoOut{RequestID: correlation.From(ctx), Role: string(p.Role)}), nil
		})
	httpx.Register(s.API, httpx.Op{Context: "test", ID: "staff", Method: http.MethodGet, Path: "/staff", Access: httpx.Staff(auth.RoleCashier)},
		func(ctx context.Context, _ *struct{}) (*httpx.Reply[echoOut], error) { return httpx.OK(echoOut{}), nil })
	httpx.Register(s.API, httpx.Op{Context: "test", ID: "mine", Method: http.MethodGet, Path: "/customers/{id}/thing", Access: httpx.CustomerOr(auth.RoleAgent)},
		func(ctx context.Context, in *struct {
			ID string `path:"id"`
		}) (*httpx.Reply[echoOut], error) {
			if err := httpx.Allow(ctx, in.ID, auth.RoleAgent); err != nil {
				return nil, err
			}
			return httpx.OK(echoOut{}), nil
		})
}

func TestProblems(t *testing.T) {
	t.Parallel()
	h := testkit.Serve(t, mount)
	p := h.Call(t, "GET", "/api/v1/echo?kind=conflict", nil).Problem(t, 409)
	if p.Type != "urn:pos:problem:conflict" || !strings.Contains(p.Detail, "reserve r1") || p.RequestID == "" || p.Instance != "/api/v1/echo" {
		t.Fatalf("conflict problem: %+v", p)
	}
	p = h.Call(t, "GET", "/api/v1/echo?kind=field", nil).Problem(t, 400)
	if !testkit.HasField(p, "quantity") {
		t.Fatalf("field problem: %+v", p)
	}
	p = h.Call(t, "GET", "/api/v1/echo?kind=bug", nil).Problem(t, 500)
	if strings.Contains(p.Detail, "secret") {
		t.Fatalf("a bug's detail leaked to the client: %q", p.Detail)
	}
	h.Call(t, "GET", "/api/v1/echo?kind=panic", nil).Problem(t, 500)
	h.Call(t, "GET", "/api/v1/echo", nil).JSON(t, 200, nil) // the process lives on
	h.Call(t, "GET", "/api/v1/nowhere", nil).Problem(t, 404)
	h.Call(t, "DELETE", "/api/v1/echo", nil).Problem(t, 405)
}

func TestAccessRules(t *testing.T) {
	t.Parallel()
	h := testkit.Serve(t, mount)
	h.Call(t, "GET", "/api/v1/staff", nil).Problem(t, 401)
	h.Call(t, "GET", "/api/v1/staff", nil, "X-API-Key", h.Keys.Agent).Problem(t, 403)
	h.Call(t, "GET", "/api/v1/staff", nil, "X-API-Key", h.Keys.Cashier).JSON(t, 200, nil)
	h.Call(t, "GET", "/api/v1/staff", nil, "X-API-Key", h.Keys.Manager).JSON(t, 200, nil) // a manager is a cashier too
	h.Call(t, "GET", "/api/v1/staff", nil, "X-API-Key", h.Keys.Admin).JSON(t, 200, nil)

	alice, _ := h.Tokens.Issue("cus_alice", "alice@example.com")
	h.Call(t, "GET", "/api/v1/customers/cus_alice/thing", nil, "Authorization", "Bearer "+alice).JSON(t, 200, nil)
	h.Call(t, "GET", "/api/v1/customers/cus_bob/thing", nil, "Authorization", "Bearer "+alice).Problem(t, 403)
	h.Call(t, "GET", "/api/v1/customers/cus_bob/thing", nil, "X-API-Key", h.Keys.Agent).JSON(t, 200, nil)
	h.Call(t, "GET", "/api/v1/customers/cus_bob/thing", nil, "X-API-Key", h.Keys.Admin).JSON(t, 200, nil)
	h.Call(t, "GET", "/api/v1/customers/cus_bob/thing", nil, "X-API-Key", h.Keys.Cashier).Problem(t, 403)
	r := h.Call(t, "GET", "/api/v1/staff", nil, "Authorization", "Basic abc")
	r.Problem(t, 401)
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	srv := httpx.NewServer(httpx.ServerConfig{Logger: testkit.Logger(), RateLimit: 1, RateBurst: 3})
	mount(srv)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	h := &testkit.HTTP{URL: ts.URL, Server: srv}
	for i := 0; i < 3; i++ {
		h.Call(t, "GET", "/api/v1/echo", nil).JSON(t, 200, nil)
	}
	r := h.Call(t, "GET", "/api/v1/echo", nil)
	r.Problem(t, 429)
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	h.Call(t, "GET", "/health/live", nil).JSON(t, 200, nil) // probes are never throttled
}

func TestHealth(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	h := testkit.Serve(t, func(s *httpx.Server) {
		s.AddCheck("test", "database", func(context.Context) error {
			if down.Load() {
				return errors.New("connection refused")
			}
			return nil
		})
	})
	var rep httpx.HealthReport
	h.Call(t, "GET", "/health", nil).JSON(t, 200, &rep)
	if rep.Status != "up" || rep.Contexts["test"] != "up" || rep.Checks["test.database"].Status != "up" {
		t.Fatalf("healthy report: %+v", rep)
	}
	down.Store(true)
	h.Call(t, "GET", "/health/ready", nil).JSON(t, 503, &rep)
	if rep.Contexts["test"] != "down" || rep.Checks["test.database"].Error == "" {
		t.Fatalf("unhealthy report: %+v", rep)
	}
	h.Call(t, "GET", "/health/live", nil).JSON(t, 200, nil) // alive, just not ready
}

func TestMetricsUseRouteTemplates(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	srv := httpx.NewServer(httpx.ServerConfig{Logger: testkit.Logger(), Registry: reg})
	mount(srv)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	h := &testkit.HTTP{URL: ts.URL, Server: srv}
	for _, id := range []string{"a", "b", "c"} {
		h.Call(t, "GET", "/api/v1/customers/"+id+"/thing", nil)
	}
	body := string(h.Call(t, "GET", "/metrics", nil).Body)
	want := `http_requests_total{code="401",context="test",method="GET",route="/api/v1/customers/:id/thing"} 3`
	if !strings.Contains(body, want) {
		t.Fatalf("metrics lack %s:\n%s", want, body)
	}
	if strings.Contains(body, "/customers/a/thing") {
		t.Fatal("a raw path leaked into a label")
	}
}

func TestClient(t *testing.T) {
	t.Parallel()
	h := testkit.Serve(t, mount)
	c := h.Client("test", h.Keys.Admin)
	ctx := correlation.With(context.Background(), "corr-123")

	var out echoOut
	if err := c.Do(ctx, http.MethodGet, "/echo", nil, &out); err != nil {
		t.Fatal(err)
	}
	if out.RequestID != "corr-123" || out.Role != "admin" {
		t.Fatalf("request id or key not propagated: %+v", out)
	}
	err := c.Do(ctx, http.MethodGet, "/echo?kind=conflict", nil, nil)
	if !errors.Is(err, errs.Conflict) || !strings.Contains(err.Error(), "reserve r1") {
		t.Fatalf("conflict over the wire: %v", err)
	}
	err = c.Do(ctx, http.MethodGet, "/echo?kind=field", nil, nil)
	if !errors.Is(err, errs.Invalid) || len(errs.Fields(err)) != 1 || errs.Fields(err)[0].Field != "quantity" {
		t.Fatalf("field error over the wire: %v %+v", err, errs.Fields(err))
	}
}

// TestClientRetriesAndBreaker: idempotent calls are retried through a
// transient outage, POSTs are not unless marked, and a dead downstream
// trips the breaker so callers fail fast.
func TestClientRetriesAndBreaker(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var failFirst atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if failFirst.Add(-1) >= 0 {
			w.Header().Set("Content-Type", httpx.ProblemContentType)
			w.WriteHeader(503)
			_, _ = w.Write([]byte(`{"type":"urn:pos:problem:unavailable","title":"Service Unavailable","status":503,"detail":"warming up"}`))
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer ts.Close()
	c := httpx.NewClient(httpx.ClientConfig{Context: "flaky", BaseURL: ts.URL, Retries: 2})
	ctx := context.Background()

	failFirst.Store(2)
	if err := c.Do(ctx, http.MethodGet, "/x", nil, nil); err != nil || calls.Load() != 3 {
		t.Fatalf("GET through two 503s: %v after %d calls", err, calls.Load())
	}
	calls.Store(0)
	failFirst.Store(1)
	if err := c.Do(ctx, http.MethodPost, "/x", map[string]int{"a": 1}, nil); !errors.Is(err, errs.Unavailable) || calls.Load() != 1 {
		t.Fatalf("POST must not be retried: %v after %d calls", err, calls.Load())
	}
	calls.Store(0)
	failFirst.Store(1)
	if err := c.Do(ctx, http.MethodPost, "/x", map[string]int{"a": 1}, nil, httpx.Idempotent()); err != nil || calls.Load() != 2 {
		t.Fatalf("idempotent POST: %v after %d calls", err, calls.Load())
	}

	// Down for good: after 5 consecutive failures the breaker opens and
	// the next call fails without reaching the server.
	failFirst.Store(1 << 20)
	b := httpx.NewClient(httpx.ClientConfig{Context: "dead", BaseURL: ts.URL, Retries: -1})
	for i := 0; i < 5; i++ {
		_ = b.Do(ctx, http.MethodGet, "/x", nil, nil)
	}
	calls.Store(0)
	err := b.Do(ctx, http.MethodGet, "/x", nil, nil)
	if !errors.Is(err, errs.Unavailable) || !strings.Contains(err.Error(), "circuit open") || calls.Load() != 0 {
		t.Fatalf("breaker did not open: %v, %d calls", err, calls.Load())
	}

	// Unreachable host: Unavailable, not a 500.
	gone := httpx.NewClient(httpx.ClientConfig{Context: "gone", BaseURL: "http://127.0.0.1:1", Retries: -1})
	if err := gone.Do(ctx, http.MethodGet, "/x", nil, nil); !errors.Is(err, errs.Unavailable) {
		t.Fatalf("unreachable: %v", err)
	}
}

// TestTraceContextPropagates: a traceparent sent by the caller reaches a
// handler, and the Client passes the same trace id on to the next hop with
// a span id of its own.
func TestTraceContextPropagates(t *testing.T) {
	t.Parallel()
	var seen atomic.Value
	downstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("traceparent"))
		_, _ = w.Write([]byte(`{}`))
	}))
	defer downstream.Close()
	next := httpx.NewClient(httpx.ClientConfig{Context: "next", BaseURL: downstream.URL, Retries: -1})
	h := testkit.Serve(t, func(s *httpx.Server) {
		httpx.Register(s.API, httpx.Op{Context: "test", ID: "hop", Method: http.MethodGet, Path: "/hop", Access: httpx.Public},
			func(ctx context.Context, _ *struct{}) (*httpx.Reply[echoOut], error) {
				return httpx.OK(echoOut{}), next.Do(ctx, http.MethodGet, "/x", nil, nil)
			})
	})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := h.Call(t, "GET", "/api/v1/hop", nil, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	r.JSON(t, 200, nil)
	got, _ := seen.Load().(string)
	parts := strings.Split(got, "-")
	if len(parts) != 4 || parts[1] != traceID || parts[2] == "00f067aa0ba902b7" {
		t.Fatalf("downstream traceparent %q: want trace %s with a new span id", got, traceID)
	}
	if !strings.Contains(r.Header.Get("traceparent"), traceID) {
		t.Fatalf("response traceparent %q", r.Header.Get("traceparent"))
	}
	// Without one, the server starts a trace and still passes it on.
	h.Call(t, "GET", "/api/v1/hop", nil).JSON(t, 200, nil)
	if got, _ := seen.Load().(string); len(strings.Split(got, "-")) != 4 {
		t.Fatalf("no trace started: %q", got)
	}
}

// TestDependencyHealth: a remote context that is down shows in /health as
// degraded, and readiness stays green.
func TestDependencyHealth(t *testing.T) {
	t.Parallel()
	up := httpx.NewClient(httpx.ClientConfig{Context: "up", BaseURL: testkit.Serve(t, func(*httpx.Server) {}).URL})
	down := httpx.NewClient(httpx.ClientConfig{Context: "down", BaseURL: "http://127.0.0.1:1"})
	h := testkit.Serve(t, func(s *httpx.Server) {
		s.AddDependency("up", up.Live)
		s.AddDependency("down", down.Live)
	})
	var rep httpx.HealthReport
	h.Call(t, "GET", "/health/ready", nil).JSON(t, 200, &rep)
	if rep.Status != "degraded" || rep.Dependencies["up"].Status != "up" || rep.Dependencies["down"].Status != "down" {
		t.Fatalf("report: %+v", rep)
	}
}
