package saga

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/cart"
	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/payment"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/tax"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/product"
)

// env is a monolith-like world: the real product, inventory, cart (SQL
// store), payment (with the simulator) and order services, each on a
// database of its own on one backend, the saga orchestrator over them, and
// an HTTP server mounting every context's routes.
type env struct {
	t       testing.TB
	b       testkit.Backend
	catalog product.Service
	inv     inventory.Service
	clock   *skewClock
	carts   cart.Service
	sim     *payment.Simulator
	pay     payment.Service
	orders  order.Service
	faults  *faultyOrders
	sagaDB  *gorm.DB
	deps    Deps
	saga    *Orchestrator
	reg     *prometheus.Registry
	h       *testkit.HTTP
	client  *http.Client
	online  inventory.Location
	store   inventory.Location
}

// skewClock is inventory's clock, movable forward so that reservations
// expire without waiting.
type skewClock struct{ skew atomic.Int64 }

func (c *skewClock) Now() time.Time          { return time.Now().Add(time.Duration(c.skew.Load())) }
func (c *skewClock) Advance(d time.Duration) { c.skew.Add(int64(d)) }
func newSkewClock() *skewClock               { return &skewClock{} }

// testOptions are fast retries and a generous wait budget: -race on two
// busy cores is slow, and a test must not see 202 because of it.
func testOptions(o Options) Options {
	if o.Owner == "" {
		o.Owner = "test-orchestrator"
	}
	if o.BackoffBase == 0 {
		o.BackoffBase = 2 * time.Millisecond
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = 20 * time.Millisecond
	}
	if o.RecoveryBackoffMax == 0 {
		o.RecoveryBackoffMax = 50 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = testkit.Logger()
	}
	if o.WaitBudget == 0 {
		o.WaitBudget = 60 * time.Second
	}
	return o
}

func newEnv(t testing.TB, b testkit.Backend, o Options) *env {
	t.Helper()
	e := &env{t: t, b: b, clock: newSkewClock(), sim: payment.NewSimulator(payment.SimulatorOptions{}), reg: prometheus.NewRegistry()}
	e.catalog = product.New(testkit.OpenDB(t, b, product.Name, product.Migrations))
	e.inv = inventory.NewWithOptions(testkit.OpenDB(t, b, inventory.Name, inventory.Migrations), e.catalog, inventory.Options{Now: e.clock.Now})
	e.carts = cart.New(cart.NewSQLStore(testkit.OpenDB(t, b, cart.Name, cart.Migrations)), e.catalog, cart.Options{})
	e.pay = payment.New(testkit.OpenDB(t, b, payment.Name, payment.Migrations), e.sim, payment.Options{})
	e.orders = order.New(testkit.OpenDB(t, b, order.Name, order.Migrations))
	e.faults = &faultyOrders{Service: e.orders, plan: map[string]int{}}
	e.sagaDB = testkit.OpenDB(t, b, Name, Migrations)
	e.deps = Deps{Inventory: e.inv, Payments: e.pay, Orders: e.faults, Carts: e.carts}
	o.Registerer = e.reg
	e.saga = e.newOrchestrator(o)
	e.h = testkit.Serve(t, func(s *httpx.Server) {
		product.Routes(s.API, e.catalog)
		inventory.Routes(s.API, e.inv)
		cart.Routes(s.API, e.carts)
		payment.Routes(s.API, e.pay)
		order.Routes(s.API, e.orders)
		Routes(s.API, e.saga)
	})
	// Concurrent tests and the benchmark keep their connections.
	e.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}}
	t.Cleanup(e.client.CloseIdleConnections)
	ctx := context.Background()
	var err error
	e.online, err = e.inv.CreateLocation(ctx, inventory.NewLocation{Code: "WEB", Name: "Web fulfilment", Kind: inventory.KindOnline, Province: "QC"})
	must(t, err)
	e.store, err = e.inv.CreateLocation(ctx, inventory.NewLocation{Code: "MTL-01", Name: "Montréal store", Kind: inventory.KindStore, Province: "QC"})
	must(t, err)
	return e
}

// newOrchestrator builds an orchestrator on the env's saga database and
// downstreams, closed when the test ends (before the databases are).
func (e *env) newOrchestrator(o Options) *Orchestrator {
	orc := New(e.sagaDB, e.deps, testOptions(o))
	e.t.Cleanup(orc.Close)
	return orc
}

// faultyOrders is the real order service with faults injected into
// CreateOrder for chosen customers: the next n calls fail (n < 0: every
// call) with errs.Unavailable, as an order context that is down would.
// It injects failures; every answer it gives is the real service's.
type faultyOrders struct {
	order.Service
	mu    sync.Mutex
	plan  map[string]int
	calls atomic.Int64
}

// failFor makes CreateOrder fail n times (n < 0: always) for a customer.
func (f *faultyOrders) failFor(customerID string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plan[customerID] = n
}

// CreateOrder implements order.Service.
func (f *faultyOrders) CreateOrder(ctx context.Context, in order.NewOrder) (order.Order, error) {
	f.calls.Add(1)
	f.mu.Lock()
	n, planned := f.plan[in.CustomerID]
	if planned && n != 0 {
		if n > 0 {
			f.plan[in.CustomerID] = n - 1
		}
		f.mu.Unlock()
		return order.Order{}, fmt.Errorf("injected fault: order context down: %w", errs.Unavailable)
	}
	f.mu.Unlock()
	return f.Service.CreateOrder(ctx, in)
}

// addProduct creates a product with stock at the online location.
func (e *env) addProduct(sku string, priceCents, stock int64) product.Product {
	e.t.Helper()
	ctx := context.Background()
	p, err := e.catalog.CreateProduct(ctx, product.NewProduct{SKU: sku, Name: "Product " + sku, PriceCents: priceCents})
	must(e.t, err)
	if stock > 0 {
		_, err = e.inv.Adjust(ctx, inventory.Adjustment{ProductID: p.ID, LocationID: e.online.ID, Delta: stock, Reason: inventory.ReasonReceipt})
		must(e.t, err)
	}
	return p
}

// line is one product and quantity of a test cart.
type line struct {
	p   product.Product
	qty int
}

// fillCart makes a cart holding lines and returns its session id.
func (e *env) fillCart(lines ...line) string {
	e.t.Helper()
	session := testkit.ID("session-0000")
	for _, l := range lines {
		_, err := e.carts.AddItem(context.Background(), session, cart.NewItem{ProductID: l.p.ID, Quantity: l.qty})
		must(e.t, err)
	}
	return session
}

// expectedTotal is what a cart of lines costs shipped to QC, computed by
// package tax as a receipt would.
func expectedTotal(t testing.TB, lines ...line) int64 {
	t.Helper()
	tl := make([]tax.Line, len(lines))
	for i, l := range lines {
		tl[i] = tax.Line{Key: l.p.ID, AmountCents: l.p.PriceCents * int64(l.qty)}
	}
	res, err := tax.Compute("QC", tl)
	must(t, err)
	return res.TotalCents
}

// address is a valid Québec shipping address.
func address() order.ShippingAddress {
	return order.ShippingAddress{Name: "Ada Tremblay", Line1: "1 rue Sainte-Catherine O", City: "Montréal", Province: "QC", PostalCode: "H2X 1Y4"}
}

// request is a checkout of session by customer paying with token.
func request(session, customer, token string) CheckoutRequest {
	return CheckoutRequest{SessionID: session, CustomerID: customer, ShippingAddress: address(),
		Payment: PaymentDetails{Method: payment.MethodCard, Token: token}}
}

// bearer is the Authorization header of a customer.
func (e *env) bearer(customerID string) []string {
	e.t.Helper()
	tok, err := e.h.Tokens.Issue(customerID, customerID+"@example.com")
	must(e.t, err)
	return []string{"Authorization", "Bearer " + tok}
}

// checkoutHTTP posts a checkout as the customer, with an idempotency key
// when key is not empty.
func (e *env) checkoutHTTP(t testing.TB, body any, customerID, key string) testkit.Response {
	t.Helper()
	headers := e.bearer(customerID)
	if key != "" {
		headers = append(headers, "Idempotency-Key", key)
	}
	return e.h.Call(t, http.MethodPost, "/api/v1/checkout", body, headers...)
}

// failedBody is a failed saga's problem document as a client reads it.
type failedBody struct {
	httpx.Problem
	SagaID     string `json:"saga_id"`
	SagaStatus string `json:"saga_status"`
	FailedStep string `json:"failed_step"`
}

func decodeFailed(t testing.TB, r testkit.Response, status int) failedBody {
	t.Helper()
	r.Problem(t, status)
	var fb failedBody
	if err := json.Unmarshal(r.Body, &fb); err != nil {
		t.Fatalf("decode failed saga: %v: %s", err, r.Body)
	}
	if fb.SagaID == "" || fb.SagaStatus != StateFailed || fb.FailedStep == "" {
		t.Fatalf("problem lacks the saga's details: %s", r.Body)
	}
	return fb
}

// stock is the level of a product at the online location.
func (e *env) stock(p product.Product) inventory.StockLevel {
	e.t.Helper()
	res, err := e.inv.ListStock(context.Background(), inventory.StockFilter{ProductID: p.ID, LocationID: e.online.ID})
	must(e.t, err)
	if len(res.Items) != 1 {
		e.t.Fatalf("stock of %s: %d rows", p.SKU, len(res.Items))
	}
	return res.Items[0]
}

// checkStockInvariant asserts on_hand = available + reserved, none
// negative, for every stock row.
func (e *env) checkStockInvariant() {
	e.t.Helper()
	res, err := e.inv.ListStock(context.Background(), inventory.StockFilter{Page: page.Request{PerPage: 100}})
	must(e.t, err)
	for _, s := range res.Items {
		if s.OnHand != s.Available+s.Reserved || s.OnHand < 0 || s.Reserved < 0 || s.Available < 0 {
			e.t.Errorf("stock invariant broken: %+v", s)
		}
	}
}

// checkMoneyInvariant asserts captured − refunded = total of paid orders,
// and returns that net.
func (e *env) checkMoneyInvariant() int64 {
	e.t.Helper()
	ctx := context.Background()
	sum, err := e.pay.Summary(ctx, "")
	must(e.t, err)
	tot, err := e.orders.Totals(ctx, "")
	must(e.t, err)
	if sum.NetCents != tot.PaidCents {
		e.t.Errorf("money invariant broken: captured %d − refunded %d = %d, paid orders total %d",
			sum.CapturedCents, sum.RefundedCents, sum.NetCents, tot.PaidCents)
	}
	return sum.NetCents
}

// stepNames lists the names of steps, in the order given.
func stepNames(steps []SagaStep) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Step
	}
	return out
}

// waitFinal waits (generously) until every saga is final.
func (e *env) waitFinal(orc *Orchestrator, ids []string) {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		pending := 0
		for _, id := range ids {
			s, err := orc.GetSaga(context.Background(), id)
			must(e.t, err)
			if !Final(s.Status) {
				pending++
			}
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d sagas still unfinished after 90 s", pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
