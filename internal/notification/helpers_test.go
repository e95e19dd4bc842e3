package notification

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/platform/testkit/bustest"
)

// openDB is a fresh, migrated notification database on backend b.
func openDB(t testing.TB, b testkit.Backend) *gorm.DB {
	t.Helper()
	return testkit.OpenDB(t, b, Name, Migrations)
}

// newCustomers is a real customer context on its own SQLite database.
func newCustomers(t testing.TB) customer.Service {
	t.Helper()
	tokens, err := auth.NewTokens([]byte("notification-test-secret-0123456789ab"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gdb := testkit.OpenDB(t, testkit.SQLite, customer.Name, customer.Migrations)
	return customer.New(gdb, tokens, customer.Options{BcryptCost: bcrypt.MinCost})
}

// register opens a customer account; phone may be empty.
func register(t testing.TB, svc customer.Service, first, email, phone string) customer.Customer {
	t.Helper()
	c, err := svc.Register(context.Background(), customer.Registration{
		Email: email, Password: "correct horse battery", FirstName: first, LastName: "Tester", Phone: phone,
	})
	if err != nil {
		t.Fatalf("register %s: %v", email, err)
	}
	return c
}

// eventCtx carries what a producer's request would: a correlation id and
// the principal who acted.
func eventCtx(corr string) context.Context {
	ctx := correlation.With(context.Background(), corr)
	return auth.WithPrincipal(ctx, auth.Principal{Role: auth.RoleAgent, Subject: "key-agent-7", Name: "agent seven"})
}

// newEvent builds a catalog event with events.New, as producers do.
func newEvent(t testing.TB, ctx context.Context, eventType, aggregateID string, version int64, data any) events.Envelope {
	t.Helper()
	env, err := events.New(ctx, eventType, aggregateID, version, data)
	if err != nil {
		t.Fatalf("event %s: %v", eventType, err)
	}
	return env
}

// The catalog's events, with the data fields of docs/events.md.

func claimCreated(t testing.TB, ctx context.Context, claimID, customerID string) events.Envelope {
	return newEvent(t, ctx, evClaimCreated, claimID, 1, map[string]any{
		"claim_id": claimID, "customer_id": customerID, "claim_type": "product_defect",
		"description": "The kettle leaks.\n.\nA line with only a dot, for SMTP.", "product_id": "prd_kettle", "order_id": "ord_9",
	})
}

func claimAssigned(t testing.TB, ctx context.Context, claimID, agentID string) events.Envelope {
	return newEvent(t, ctx, evClaimAssigned, claimID, 2, map[string]any{"claim_id": claimID, "agent_id": agentID})
}

func claimStarted(t testing.TB, ctx context.Context, claimID string) events.Envelope {
	return newEvent(t, ctx, evClaimStarted, claimID, 3, map[string]any{"claim_id": claimID})
}

func claimResolved(t testing.TB, ctx context.Context, claimID, resolution string) events.Envelope {
	return newEvent(t, ctx, evClaimResolved, claimID, 4, map[string]any{"claim_id": claimID, "resolution": resolution})
}

func claimClosed(t testing.TB, ctx context.Context, claimID string) events.Envelope {
	return newEvent(t, ctx, evClaimClosed, claimID, 5, map[string]any{"claim_id": claimID})
}

func orderConfirmed(t testing.TB, ctx context.Context, orderID, customerID string, totalCents int64) events.Envelope {
	tax := totalCents * 15 / 115
	return newEvent(t, ctx, evOrderConfirmed, orderID, 1, map[string]any{
		"order_id": orderID, "customer_id": customerID, "location_id": "loc_web",
		"lines": []map[string]any{{"product_id": "prd_kettle", "sku": "KET-1", "name": "Kettle", "quantity": 1,
			"unit_price_cents": totalCents - tax, "line_total_cents": totalCents - tax}},
		"subtotal_cents": totalCents - tax, "tax_cents": tax, "total_cents": totalCents, "currency": "CAD",
		"confirmed_at": time.Now().UTC().Format(time.RFC3339),
	})
}

func orderCancelled(t testing.TB, ctx context.Context, orderID, customerID string, totalCents int64) events.Envelope {
	return newEvent(t, ctx, evOrderCancelled, orderID, 2, map[string]any{
		"order_id": orderID, "customer_id": customerID, "location_id": "loc_web",
		"lines": []map[string]any{{"product_id": "prd_kettle", "sku": "KET-1", "quantity": 1}}, "total_cents": totalCents,
		"currency": "CAD", "cancelled_at": time.Now().UTC().Format(time.RFC3339),
	})
}

// switchableCustomers is fault injection in front of a real customer
// context: while down, every call fails as an unreachable context would.
// It counts calls per customer id.
type switchableCustomers struct {
	real  Customers
	down  atomic.Bool
	mu    sync.Mutex
	calls map[string]int
}

func newSwitchable(real Customers) *switchableCustomers {
	return &switchableCustomers{real: real, calls: map[string]int{}}
}

func (s *switchableCustomers) GetCustomer(ctx context.Context, id string) (customer.Customer, error) {
	s.mu.Lock()
	s.calls[id]++
	s.mu.Unlock()
	if s.down.Load() {
		return customer.Customer{}, fmt.Errorf("customer unreachable (test switch): %w", errs.Unavailable)
	}
	return s.real.GetCustomer(ctx, id)
}

func (s *switchableCustomers) callsFor(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// spySender records what it is given and hands it to a real sender; fail,
// when set, decides per call whether to refuse instead (fault injection).
type spySender struct {
	next Sender
	mu   sync.Mutex
	sent map[string]int // accepted sends per notification id
	msgs []Message
	fail func(n int, m Message) error // n counts calls from 1
	n    int
}

func newSpy(next Sender) *spySender { return &spySender{next: next, sent: map[string]int{}} }

func (s *spySender) Send(ctx context.Context, m Message) error {
	s.mu.Lock()
	s.n++
	n, fail := s.n, s.fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(n, m); err != nil {
			return err
		}
	}
	if err := s.next.Send(ctx, m); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent[m.ID]++
	s.msgs = append(s.msgs, m)
	return nil
}

func (s *spySender) sentCount(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[id]
}

// calls counts Send calls, refused ones included.
func (s *spySender) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// total counts accepted sends.
func (s *spySender) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// duplicates lists notification ids sent more than once.
func (s *spySender) duplicates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, n := range s.sent {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s x%d", id, n))
		}
	}
	return out
}

// stepClock advances by a millisecond each time it is read, so rows of
// successive events have distinct, ordered creation times.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func newStepClock() *stepClock {
	return &stepClock{now: time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond)
	return c.now
}

// rowsOf reads an event's rows straight from the store.
func rowsOf(t testing.TB, gdb *gorm.DB, eventID string) []notificationRow {
	t.Helper()
	rows, err := (&store{db: gdb}).byEvent(context.Background(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// waitFor polls cond until it holds or the (generous) deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasField(err error, field string) bool {
	for _, f := range errs.Fields(err) {
		if f.Field == field {
			return true
		}
	}
	return false
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// firstDelivery is a context such as the bus hands a handler on an
// event's first delivery (events.Attempt is 1), the only case in which
// the consumer plans before it reads. Only the bus can make one, so it is
// taken from a real bus, its cancellation dropped and its values kept.
func firstDelivery(t testing.TB) context.Context {
	t.Helper()
	bus := bustest.SQL(t, busOptions(prometheus.NewRegistry()))
	got := make(chan context.Context, 1)
	sub, err := bus.Subscribe(context.Background(), "probe", []string{"probe"}, func(ctx context.Context, _ events.Envelope) error {
		select {
		case got <- context.WithoutCancel(ctx):
		default:
		}
		return nil
	})
	must(t, err)
	defer func() { _ = sub.Close() }()
	must(t, bus.Publish(context.Background(), newEvent(t, context.Background(), "probe.Probed", "probe_1", 1, nil)))
	select {
	case ctx := <-got:
		if n := events.Attempt(ctx); n != 1 {
			t.Fatalf("the probe's delivery is attempt %d, want 1", n)
		}
		return ctx
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for the probe event")
		return nil
	}
}
