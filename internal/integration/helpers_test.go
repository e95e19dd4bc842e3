package integration

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/retailco/pos/internal/claims"
	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/tax"
	"github.com/retailco/pos/internal/platform/testkit"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// waitFor polls cond until it holds or the deadline passes. The deadline
// only bounds a failing run: a passing one returns as soon as the
// condition holds. Outages and recoveries go through a real circuit
// breaker (5 s open before it lets a call through again), hence deadlines
// of tens of seconds.
func waitFor(t testing.TB, deadline time.Duration, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("condition not met after %s: %s", deadline, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hasField tells whether err is invalid input naming field.
func hasField(err error, field string) bool {
	for _, f := range errs.Fields(err) {
		if f.Field == field {
			return true
		}
	}
	return false
}

// host serves a dependency's routes on a fixed loopback address that the
// test can take down (the listener and every connection close, so calls
// are refused, exactly as when the process dies) and bring back on the
// same address, where the dependency's Client finds it again.
type host struct {
	t       testing.TB
	name    string
	handler http.Handler
	addr    string
	key     string

	mu  sync.Mutex
	srv *http.Server
}

// newHost mounts routes on a platform server with the whole middleware
// chain, accepting one service key (the fleet's key, as the integration
// process presents it).
func newHost(t testing.TB, name string, mount func(s *httpx.Server)) *host {
	t.Helper()
	key := auth.NewAPIKey()
	s := httpx.NewServer(httpx.ServerConfig{
		Title: name, Version: "test", InstanceID: name, Logger: testkit.Logger(), Registry: prometheus.NewRegistry(),
		Keys: auth.Chain{auth.StaticKey{Key: key, Principal: auth.Principal{Role: auth.RoleService, Subject: "key-service", Name: "fleet service key"}}},
	})
	mount(s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	h := &host{t: t, name: name, handler: s.Handler(), addr: ln.Addr().String(), key: key}
	h.serve(ln)
	t.Cleanup(h.stop)
	return h
}

func (h *host) serve(ln net.Listener) {
	srv := &http.Server{Handler: h.handler, ReadHeaderTimeout: 5 * time.Second}
	h.mu.Lock()
	h.srv = srv
	h.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// stop takes the dependency down: new connections are refused and open
// ones are closed.
func (h *host) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		_ = h.srv.Close()
		h.srv = nil
	}
}

// start brings the dependency back on its address. Binding may fail for
// a moment if the kernel still holds the port; it is retried.
func (h *host) start() {
	h.t.Helper()
	var ln net.Listener
	waitFor(h.t, 20*time.Second, func() (bool, string) {
		var err error
		ln, err = net.Listen("tcp", h.addr)
		return err == nil, "listen " + h.addr + ": " + errString(err)
	})
	h.serve(ln)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// client is the httpx.Client the integration context uses to reach the
// dependency: the service key, a short timeout and no retries, so an
// outage shows quickly (the breaker is the real one).
func (h *host) client() *httpx.Client {
	return httpx.NewClient(httpx.ClientConfig{Context: h.name, BaseURL: "http://" + h.addr, ServiceKey: h.key,
		Timeout: 500 * time.Millisecond, Retries: -1})
}

// newClaims is the claims context on b with the SQL event store, as the
// monolith runs it (no relay or projector: the tests read claims through
// the event store, ReplayClaim and ClaimEvents).
func newClaims(t testing.TB, b testkit.Backend) (claims.Service, claims.EventStore) {
	t.Helper()
	ctx := context.Background()
	gdb, err := db.Open(ctx, b.Options(t, claims.Name))
	must(t, err)
	t.Cleanup(func() { _ = db.Close(gdb) })
	must(t, claims.Migrate(ctx, gdb, true))
	store := claims.NewSQLEventStore(gdb)
	return claims.New(store, gdb, claims.Options{Registerer: prometheus.NewRegistry()}), store
}

// newOrders is the order context on b.
func newOrders(t testing.TB, b testkit.Backend) order.Service {
	t.Helper()
	return order.New(testkit.OpenDB(t, b, order.Name, order.Migrations))
}

// newCustomers is the customer context on b.
func newCustomers(t testing.TB, b testkit.Backend) customer.Service {
	t.Helper()
	tokens, err := auth.NewTokens([]byte("integration-test-secret-0123456789abcdef"), time.Hour)
	must(t, err)
	return customer.New(testkit.OpenDB(t, b, customer.Name, customer.Migrations), tokens, customer.Options{BcryptCost: bcrypt.MinCost})
}

// register opens a customer account.
func register(t testing.TB, svc customer.Service, first, email, phone string) customer.Customer {
	t.Helper()
	c, err := svc.Register(context.Background(), customer.Registration{Email: email, Password: "correct horse battery",
		FirstName: first, LastName: "Tremblay", Phone: phone})
	must(t, err)
	return c
}

// placeOrder creates a paid two-line order for Québec as the checkout saga
// does, its amounts computed by package tax as the cart computes them.
func placeOrder(t testing.TB, svc order.Service, customerID string) order.Order {
	t.Helper()
	lines := []order.OrderLine{
		{ProductID: "prd_a", SKU: "A-1", Name: "Coffee", UnitPriceCents: 1899, Quantity: 2, LineTotalCents: 3798},
		{ProductID: "prd_b", SKU: "B-1", Name: "Mug", UnitPriceCents: 1250, Quantity: 1, LineTotalCents: 1250},
	}
	res, err := tax.Compute("QC", []tax.Line{{Key: "prd_a", AmountCents: 3798}, {Key: "prd_b", AmountCents: 1250}})
	must(t, err)
	saga := testkit.ID("sga")
	o, err := svc.CreateOrder(context.Background(), order.NewOrder{
		SagaID: saga, CustomerID: customerID, LocationID: "loc_online", PaymentID: "pay_" + saga, ReservationID: saga,
		Lines: lines, ShippingAddress: order.ShippingAddress{Name: "Ada Tremblay", Line1: "1 rue Sainte-Catherine", City: "Montréal",
			Province: "QC", PostalCode: "H2X 1Y4"},
		SubtotalCents: res.SubtotalCents, Taxes: res.Taxes, TaxCents: res.TaxCents, TotalCents: res.TotalCents,
	})
	must(t, err)
	return o
}

// createdClaims counts the claims in the event store (ClaimCreated events).
func createdClaims(t testing.TB, store claims.EventStore) int {
	t.Helper()
	n := 0
	var after int64
	for {
		batch, err := store.ReadAll(context.Background(), after, 500)
		must(t, err)
		if len(batch) == 0 {
			return n
		}
		for _, e := range batch {
			if e.EventType == claims.EventClaimCreated {
				n++
			}
		}
		after = batch[len(batch)-1].Position
	}
}

// enrichedEvents counts the ClaimEnriched events of one claim.
func enrichedEvents(t testing.TB, svc claims.Service, claimID string) int {
	t.Helper()
	evs, err := svc.ClaimEvents(context.Background(), claimID)
	must(t, err)
	n := 0
	for _, e := range evs {
		if e.EventType == claims.EventClaimEnriched {
			n++
		}
	}
	return n
}

// metricValue reads one sample from reg: the gauge or counter name with
// exactly the given label pairs (name, value, …); -1 when absent.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	must(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			want := map[string]string{}
			for i := 0; i+1 < len(labels); i += 2 {
				want[labels[i]] = labels[i+1]
			}
			if len(m.GetLabel()) != len(want) {
				continue
			}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
		}
	}
	return -1
}

// bearer presents a customer token on every request: a Client acting for
// a logged-in customer, as a web front end would.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// runLoop runs fn until the test ends, and waits for it to return.
func runLoop(t testing.TB, fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}
