package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/gateway"
	"github.com/retailco/pos/internal/platform/gateway/kongconf"
)

// standIn is the fleet test's gateway: it routes with the very Kong config
// the binary generates (kongconf's model of Kong's router), balances the
// cart instances by least connections, probes every instance's readiness,
// and retries a request on another instance when the connection is
// refused (as Kong does) — not a replacement for Kong, just enough to
// exercise the failover path on one machine.
type standIn struct {
	t      *testing.T
	routes *kongconf.File
	// upstream keeps connections to the instances alive, as Kong does
	// (its upstream keepalive pool). Go's default transport keeps two
	// idle connections per host, so under load most hops opened a new
	// TCP connection, a cost Kong does not have.
	upstream *http.Transport

	mu       sync.Mutex
	backends map[string][]*backend // context → instances
}

type backend struct {
	name    string
	url     *url.URL
	active  atomic.Int64
	healthy atomic.Bool
}

func newStandIn(t *testing.T) (*standIn, *httptest.Server) {
	t.Helper()
	cfg, err := gateway.Generate(routeTable(), gateway.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	f, err := kongconf.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	upstream := http.DefaultTransport.(*http.Transport).Clone()
	upstream.MaxIdleConnsPerHost = 256
	t.Cleanup(upstream.CloseIdleConnections)
	g := &standIn{t: t, routes: f, backends: map[string][]*backend{}, upstream: upstream}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go g.probe(ctx)
	return g, srv
}

func (g *standIn) add(contextName, name, base string) {
	u, _ := url.Parse(base)
	b := &backend{name: name, url: u}
	b.healthy.Store(true)
	g.mu.Lock()
	g.backends[contextName] = append(g.backends[contextName], b)
	g.mu.Unlock()
}

// probe marks instances up or down from /health/ready, like Kong's active
// health checks.
func (g *standIn) probe(ctx context.Context) {
	client := &http.Client{Timeout: 500 * time.Millisecond}
	for ctx.Err() == nil {
		g.mu.Lock()
		var all []*backend
		for _, bs := range g.backends {
			all = append(all, bs...)
		}
		g.mu.Unlock()
		for _, b := range all {
			resp, err := client.Get(b.url.String() + "/health/ready")
			ok := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				resp.Body.Close()
			}
			b.healthy.Store(ok)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pick is least-connections over the healthy instances, skipping tried.
func (g *standIn) pick(contextName string, tried map[*backend]bool) *backend {
	g.mu.Lock()
	defer g.mu.Unlock()
	var best *backend
	for _, b := range g.backends[contextName] {
		if !b.healthy.Load() || tried[b] {
			continue
		}
		if best == nil || b.active.Load() < best.active.Load() {
			best = b
		}
	}
	return best
}

func (g *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m, err := g.routes.Match(r.Method, r.URL.Path)
	if err != nil {
		http.Error(w, "no route", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 2<<20))
	tried := map[*backend]bool{}
	for attempt := 0; attempt < 3; attempt++ {
		b := g.pick(m.Service, tried)
		if b == nil {
			http.Error(w, "no healthy upstream for "+m.Service, http.StatusServiceUnavailable)
			return
		}
		tried[b] = true
		refused := false
		proxy := httputil.NewSingleHostReverseProxy(b.url)
		proxy.Transport = g.upstream
		proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
			if errors.Is(err, syscall.ECONNREFUSED) {
				refused = true // never reached the instance: safe to retry elsewhere
				b.healthy.Store(false)
				return
			}
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
		req := r.Clone(r.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		b.active.Add(1)
		proxy.ServeHTTP(w, req)
		b.active.Add(-1)
		if !refused {
			return
		}
	}
	http.Error(w, "every instance refused", http.StatusBadGateway)
}

// TestFleet runs every context as its own `pos serve --only` process on
// PostgreSQL and Redis, three cart instances behind the stand-in gateway,
// and walks catalog → cart → checkout → POS sale → claim → audit through
// the gateway; kills a cart instance mid-run (no cart lost, no request
// failed beyond those in flight); kills the order service (checkout fails
// cleanly with its compensation) and brings it back.
func TestFleet(t *testing.T) {
	t.Parallel()
	f := startFleet(t)
	procs, start, admin, manager, agent := f.procs, f.start, f.admin, f.manager, f.agent
	api := &proc{t: t, URL: f.url}
	A := []string{"X-API-Key", admin}
	M := []string{"X-API-Key", manager}

	// Catalog and stock.
	var web, store, prod struct{ ID string }
	api.must(201, &web, "POST", "/api/v1/locations", map[string]any{"code": "WEB", "name": "Web", "kind": "online", "province": "QC"}, A...)
	api.must(201, &store, "POST", "/api/v1/locations", map[string]any{"code": "MTL-01", "name": "Montréal", "kind": "store", "province": "QC"}, A...)
	api.must(201, &prod, "POST", "/api/v1/products", map[string]any{"sku": "FLEET-1", "name": "Fleet mug", "price_cents": 1500}, A...)
	for _, loc := range []string{web.ID, store.ID} {
		api.must(200, nil, "POST", "/api/v1/inventory/adjustments", map[string]any{"product_id": prod.ID, "location_id": loc, "delta": 500, "reason": "receipt"}, A...)
	}
	var cust struct{ ID string }
	api.must(201, &cust, "POST", "/api/v1/auth/register", map[string]any{"email": "fleet@example.com", "password": "long enough pw", "first_name": "F", "last_name": "Leet"})
	var login struct{ Token string }
	api.must(200, &login, "POST", "/api/v1/auth/login", map[string]any{"email": "fleet@example.com", "password": "long enough pw"})
	B := []string{"Authorization", "Bearer " + login.Token}
	s := &shop{t: t, manager: manager, productID: prod.ID, locationID: web.ID, customerID: cust.ID, token: login.Token, initial: 500}

	// Checkout through the fleet: saga → inventory, payment, order, cart.
	code, out := s.checkout(api, 2, "tok_visa")
	if code != 201 {
		t.Fatalf("fleet checkout: %d %v", code, out)
	}
	orderID, _ := out["order_id"].(string)
	// A claim from that order, enriched through order and customer.
	var fromOrder struct {
		Mode       string
		Enrichment string
	}
	api.must(201, &fromOrder, "POST", "/api/v1/integration/claims/from-order", map[string]any{"order_id": orderID, "claim_type": "product_defect", "description": "Chipped"}, B...)
	if fromOrder.Mode != "full" || fromOrder.Enrichment != "complete" {
		t.Fatalf("claim from order: %+v", fromOrder)
	}

	// Carts across three instances; one dies mid-run.
	const shoppers, adds = 6, 30
	var failed atomic.Int64
	servedBy := sync.Map{}
	var wg sync.WaitGroup
	for i := 0; i < shoppers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			session := fmt.Sprintf("fleet-cart-%02d-%d", i, time.Now().UnixNano())
			for n := 0; n < adds; n++ {
				req, _ := http.NewRequest("POST", api.URL+"/api/v1/carts/"+session+"/items", strings.NewReader(fmt.Sprintf(`{"product_id":%q,"quantity":1}`, prod.ID)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					servedBy.Store(resp.Header.Get("X-Served-By"), true)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
			servedBy.Store("session:"+session, true)
		}()
		if i == shoppers/2 {
			_ = procs["cart-2"].cmd.Process.Kill()
		}
	}
	wg.Wait()
	if f := failed.Load(); f > shoppers {
		t.Fatalf("%d cart requests failed after one instance died; at most those in flight (%d) may", f, shoppers)
	}
	instances := 0
	servedBy.Range(func(k, _ any) bool {
		key := k.(string)
		if strings.HasPrefix(key, "cart-") {
			instances++
		}
		if session, ok := strings.CutPrefix(key, "session:"); ok {
			var c struct {
				Lines []struct{ Quantity int }
			}
			api.must(200, &c, "GET", "/api/v1/carts/"+session, nil)
			if len(c.Lines) != 1 || c.Lines[0].Quantity < adds-int(failed.Load()) {
				t.Errorf("cart %s lost items: %+v", session, c)
			}
		}
		return true
	})
	if instances < 2 {
		t.Errorf("carts were served by %d instances; the balancer should spread them", instances)
	}

	// POS sale at the store through the fleet.
	var reg struct{ ID string }
	api.must(201, &reg, "POST", "/api/v1/registers", map[string]any{"location_id": store.ID, "name": "Till 1"}, M...)
	var sess struct{ ID string }
	api.must(201, &sess, "POST", "/api/v1/registers/"+reg.ID+"/sessions", map[string]any{"cashier_id": "cashier-1", "opening_float_cents": 10000}, M...)
	api.must(201, nil, "POST", "/api/v1/sales", map[string]any{"location_id": store.ID, "register_id": reg.ID, "cashier_id": "cashier-1",
		"lines": []map[string]any{{"product_id": prod.ID, "quantity": 1}}, "payments": []map[string]any{{"method": "cash", "amount_cents": 5000}}}, M...)

	// A claim through the fleet reaches the audit trail over Redis Streams.
	var claim struct {
		ClaimID string `json:"claim_id"`
	}
	api.must(201, &claim, "POST", "/api/v1/claims", map[string]any{"claim_type": "delivery_issue", "description": "Late parcel"}, B...)
	eventually(t, func() string {
		var trail struct{ Data []any }
		api.must(200, &trail, "GET", "/api/v1/audit?aggregate_id="+claim.ClaimID, nil, "X-API-Key", agent)
		if len(trail.Data) != 1 {
			return fmt.Sprintf("%d audit entries for the claim", len(trail.Data))
		}
		return ""
	})

	// The order service dies: the checkout fails at the order step. Its
	// compensations run newest first, and the newest — voiding an order the
	// failed call may have created after all — needs the order service, so
	// the saga holds in COMPENSATING_PAYMENT until it returns; then it
	// refunds, releases and ends FAILED, and checkouts work again.
	_ = procs["order"].stop(syscall.SIGKILL)
	integrationMode := func(want string) func() string {
		return func() string {
			var st struct{ Mode string }
			api.must(200, &st, "GET", "/api/v1/integration/status", nil, M...)
			if st.Mode != want {
				return "integration mode " + st.Mode + ", want " + want
			}
			return ""
		}
	}
	eventually(t, integrationMode("degraded"))
	code, out = s.checkout(api, 1, "tok_visa")
	sagaID, _ := out["saga_id"].(string)
	if sagaID == "" || (code != http.StatusAccepted && out["saga_status"] != "FAILED") {
		t.Fatalf("checkout without the order service: %d %v", code, out)
	}
	start("order-2", "order")
	eventually(t, integrationMode("full"))
	eventually(t, func() string {
		var sg struct {
			Status     string
			FailedStep string `json:"failed_step"`
		}
		api.must(200, &sg, "GET", "/api/v1/sagas/"+sagaID, nil, M...)
		if sg.Status != "FAILED" || sg.FailedStep != "order" {
			return fmt.Sprintf("saga %s: %+v", sagaID, sg)
		}
		return ""
	})
	eventually(t, func() string {
		if code, out := s.checkout(api, 1, "tok_visa"); code != 201 {
			return fmt.Sprintf("checkout after the order service returned: %d %v", code, out)
		}
		return ""
	})
	s.waitAllFinal(api)
	s.checkInvariants(api, 3) // 2 units in the first checkout, 1 in the last

	// The dashboard, fed by events from every context over Redis Streams,
	// shows both channels: the store's sale and the web shop's orders.
	eventually(t, func() string {
		var d struct {
			ByChannel []struct {
				Channel    string
				SalesCount int64 `json:"sales_count"`
			} `json:"by_channel"`
			OrdersToday int64 `json:"orders_today"`
		}
		api.must(200, &d, "GET", "/api/v1/dashboard", nil, M...)
		counts := map[string]int64{}
		for _, c := range d.ByChannel {
			counts[c.Channel] = c.SalesCount
		}
		if counts["pos"] != 1 || counts["online"] != 2 || d.OrdersToday != 2 {
			return fmt.Sprintf("dashboard: %+v", d)
		}
		return ""
	})
}

// fleet is every context as its own process behind the stand-in gateway.
type fleet struct {
	gw                    *standIn
	url                   string
	procs                 map[string]*proc
	start                 func(name, contextName string) *proc
	admin, manager, agent string
}

// startFleet starts every context of allContexts as `pos serve --only`
// (three cart instances) on PostgreSQL and Redis of the test's own.
func startFleet(t *testing.T) *fleet {
	t.Helper()
	const serviceKey = "pos_fleet_service_key_for_the_test_0000000000"
	gw, gwSrv := newStandIn(t)
	common := append(productionEnv(t), "POS_SERVICE_KEY="+serviceKey, "POS_JWT_SECRET=fleet-secret-0123456789abcdef0123456789",
		"POS_GATEWAY_URL="+gwSrv.URL, "POS_RATE_LIMIT=0")
	admin := createKey(t, common, "admin")
	manager := createKey(t, common, "manager")
	agent := createKey(t, common, "agent")

	procs := map[string]*proc{}
	start := func(name, contextName string) *proc {
		env := append(append([]string{}, common...), "POS_DATA_DIR="+t.TempDir(), "POS_INSTANCE_ID="+name)
		p := startPos(t, env, "serve", "--only="+contextName)
		gw.add(contextName, name, p.URL)
		procs[name] = p
		return p
	}
	for _, c := range allContexts {
		if c == "cart" {
			for i := 1; i <= 3; i++ {
				start(fmt.Sprintf("cart-%d", i), "cart")
			}
			continue
		}
		start(c, c)
	}
	return &fleet{gw: gw, url: gwSrv.URL, procs: procs, start: start, admin: admin, manager: manager, agent: agent}
}

// TestFleetVsMonolithCheckout is the fleet-against-monolith benchmark of
// the checkout scenario, opt-in (POS_BENCH_FLEET=1) because it runs
// minutes of load: `pos loadtest --scenario checkout` at 20 VUs without
// think time against the monolith on PostgreSQL + Redis, then every
// scenario against the fleet behind the stand-in gateway; it logs the
// figures for the README.
//
//	POS_BENCH_FLEET=1 POS_TEST_POSTGRES_URL=… POS_TEST_REDIS_URL=… go test -run FleetVsMonolith -v -timeout 20m ./cmd/pos/
func TestFleetVsMonolithCheckout(t *testing.T) {
	if os.Getenv("POS_BENCH_FLEET") != "1" {
		t.Skip("a benchmark, not a test: POS_BENCH_FLEET=1 with POS_TEST_POSTGRES_URL and POS_TEST_REDIS_URL runs the fleet/monolith load comparison (minutes of load)")
	}
	monoEnv := append(productionEnv(t), "POS_DATA_DIR="+t.TempDir(), "POS_RATE_LIMIT=0")
	monoAdmin := createKey(t, monoEnv, "admin")
	mono := startPos(t, monoEnv, "serve", "--all")
	m := runLoad(t, mono.URL, monoAdmin, "checkout", 20)
	_ = mono.stop(syscall.SIGTERM)

	f := startFleet(t)
	before := fleetCPU(f)
	fl := runLoad(t, f.url, f.admin, "checkout", 20)
	logCPU(t, "fleet checkout", before, fleetCPU(f))
	t.Logf("checkout, 20 VUs, no think time, 20 s (POST /checkout):")
	t.Logf("  monolith (PostgreSQL + Redis): %.1f checkouts/s, p95 %.1f ms, errors %.2f%%", m.checkout.RPS, m.checkout.Latency.P95, 100*m.checkout.ErrorRate)
	t.Logf("  fleet (%d processes + gateway): %.1f checkouts/s, p95 %.1f ms, errors %.2f%%", len(f.procs), fl.checkout.RPS, fl.checkout.Latency.P95, 100*fl.checkout.ErrorRate)
	t.Logf("  fleet keeps %.0f%% of the monolith's throughput, p95 %.1f× the monolith's", 100*fl.checkout.RPS/m.checkout.RPS, fl.checkout.Latency.P95/m.checkout.Latency.P95)
	for _, sc := range []struct {
		name string
		vus  int
	}{{"catalog-100vu", 100}, {"pos", 20}, {"claims", 20}, {"mixed", 20}} {
		r := runLoad(t, f.url, f.admin, sc.name, sc.vus)
		t.Logf("fleet %s (%d VUs): %.0f req/s, p95 %.1f ms, errors %.2f%%, invariants passed %v", sc.name, sc.vus, r.all.RPS, r.all.Latency.P95, 100*r.all.ErrorRate, r.passed)
	}
}

// loadFigures are a load test's request figures.
type loadFigures struct {
	RPS       float64 `json:"rps"`
	ErrorRate float64 `json:"error_rate"`
	Latency   struct {
		P95 float64 `json:"p95"`
	} `json:"latency_ms"`
}

type loadResult struct {
	all, checkout loadFigures
	passed        bool
}

// runLoad runs `pos loadtest` for 20 s at vus without think time.
func runLoad(t *testing.T, target, admin, scenario string, vus int) loadResult {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run.json")
	cmd := exec.Command(posBinary(t), "loadtest", "--target", target, "--api-key", admin, "--scenario", scenario,
		"--stages", fmt.Sprintf("0s:%d,20s:%d", vus, vus), "--think", "0", "--out", out)
	cmd.Env = append(os.Environ(), "POS_LOG_LEVEL=warn")
	if raw, err := cmd.CombinedOutput(); err != nil {
		t.Logf("loadtest %s against %s: %v\n%s", scenario, target, err, raw)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no loadtest summary: %v", err)
	}
	var sum struct {
		loadFigures
		Passed    bool
		Endpoints []struct {
			Route string
			loadFigures
		}
	}
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	res := loadResult{all: sum.loadFigures, passed: sum.Passed}
	for _, e := range sum.Endpoints {
		if e.Route == "POST /api/v1/checkout" {
			res.checkout = e.loadFigures
		}
	}
	return res
}

// fleetCPU reads the CPU time (clock ticks) each part of the fleet has
// used so far: every pos process, the test process (the stand-in gateway
// runs in it), and PostgreSQL's and Redis's processes together. Linux
// only (/proc); elsewhere it is empty and the breakdown is not logged.
func fleetCPU(f *fleet) map[string]int64 {
	out := map[string]int64{}
	for name, p := range f.procs {
		if p.cmd.Process != nil {
			out[name] += procTicks(p.cmd.Process.Pid)
		}
	}
	out["gateway (test process)"] = procTicks(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		switch strings.TrimSpace(string(comm)) {
		case "postgres":
			out["postgresql"] += procTicks(pid)
		case "redis-server":
			out["redis"] += procTicks(pid)
		}
	}
	return out
}

// procTicks is the user and system time of process pid, in clock ticks.
func procTicks(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th of them.
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return u + st
}

// logCPU logs each part's share of the CPU used between two fleetCPU
// readings, largest first.
func logCPU(t *testing.T, what string, before, after map[string]int64) {
	t.Helper()
	type part struct {
		name  string
		ticks int64
	}
	var parts []part
	var total int64
	for name, v := range after {
		if d := v - before[name]; d > 0 {
			parts = append(parts, part{name, d})
			total += d
		}
	}
	if total == 0 {
		return
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].ticks > parts[j].ticks })
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, " %s %.0f%%", p.name, 100*float64(p.ticks)/float64(total))
	}
	t.Logf("%s, CPU by process (of %d ticks):%s", what, total, b.String())
}
