package httpx

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
)

// Health answers the probes. Liveness is "the process serves HTTP";
// readiness is "every hosted context can do its work" (its database and
// brokers answer) and turns false while the process drains on shutdown, so
// a balancer stops sending before connections close.
//
// Dependencies (the remote contexts this process calls) are reported too,
// and turn the status to "degraded", but never fail readiness: a saga
// whose order service is down must stay in the balancer to answer its
// checkouts with a clean failure and compensation, and the calls that do
// not need the dependency keep working.
type Health struct {
	mu       sync.RWMutex
	checks   []healthCheck
	deps     []healthCheck
	draining atomic.Bool
}

type healthCheck struct {
	context, name string
	fn            func(context.Context) error
}

func newHealth() *Health { return &Health{} }

func (h *Health) add(contextName, name string, fn func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = append(h.checks, healthCheck{context: contextName, name: name, fn: fn})
}

func (h *Health) addDependency(name string, fn func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deps = append(h.deps, healthCheck{context: name, name: "reachable", fn: fn})
}

func (h *Health) setDraining() { h.draining.Store(true) }

// CheckResult is one check's outcome in /health.
type CheckResult struct {
	Status    string  `json:"status"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// HealthReport is the body of /health.
type HealthReport struct {
	Status   string                 `json:"status"`
	Contexts map[string]string      `json:"contexts"`
	Checks   map[string]CheckResult `json:"checks"`
	// Dependencies are the remote contexts this process calls.
	Dependencies map[string]CheckResult `json:"dependencies,omitempty"`
}

// run evaluates every check concurrently, each bounded to 2 s, so one slow
// dependency cannot stall the probe.
func (h *Health) run(ctx context.Context) (HealthReport, bool) {
	h.mu.RLock()
	checks := append([]healthCheck(nil), h.checks...)
	deps := append([]healthCheck(nil), h.deps...)
	h.mu.RUnlock()
	rep := HealthReport{Status: "up", Contexts: map[string]string{}, Checks: map[string]CheckResult{}}
	all := append(checks, deps...)
	results := make([]CheckResult, len(all))
	var wg sync.WaitGroup
	for i, c := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			start := time.Now()
			err := c.fn(cctx)
			r := CheckResult{Status: "up", LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				r.Status, r.Error = "down", err.Error()
			}
			results[i] = r
		}()
	}
	wg.Wait()
	ok := true
	for i, c := range checks {
		rep.Checks[c.context+"."+c.name] = results[i]
		if _, seen := rep.Contexts[c.context]; !seen {
			rep.Contexts[c.context] = "up"
		}
		if results[i].Status != "up" {
			rep.Contexts[c.context] = "down"
			ok = false
		}
	}
	degraded := false
	for i, d := range deps {
		if rep.Dependencies == nil {
			rep.Dependencies = map[string]CheckResult{}
		}
		r := results[len(checks)+i]
		rep.Dependencies[d.context] = r
		degraded = degraded || r.Status != "up"
	}
	switch {
	case h.draining.Load():
		rep.Status, ok = "draining", false
	case !ok:
		rep.Status = "down"
	case degraded:
		rep.Status = "degraded"
	}
	return rep, ok
}

// Contexts lists the contexts with a registered check, sorted.
func (h *Health) Contexts() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	seen := map[string]bool{}
	var out []string
	for _, c := range h.checks {
		if !seen[c.context] {
			seen[c.context] = true
			out = append(out, c.context)
		}
	}
	sort.Strings(out)
	return out
}

func (h *Health) handleHealth(c echo.Context) error {
	rep, ok := h.run(c.Request().Context())
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, rep)
}

func (h *Health) handleReady(c echo.Context) error { return h.handleHealth(c) }

func (h *Health) handleLive(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "up"})
}
