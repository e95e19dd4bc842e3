package payment

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
	"github.com/retailco/pos/internal/platform/testkit"
)

// skewClock is the service's clock, movable forward by a test to make
// leases run out without sleeping through them.
type skewClock struct{ skew atomic.Int64 }

func (c *skewClock) now() time.Time {
	return time.Now().Add(time.Duration(c.skew.Load())).UTC().Truncate(time.Microsecond)
}

func (c *skewClock) advance(d time.Duration) { c.skew.Add(int64(d)) }

// localService builds the local service with direct access to its store,
// which the crash tests use to leave behind what a crashed process leaves.
func localService(t *testing.T, b testkit.Backend, gw Gateway, o Options) (*service, *skewClock) {
	t.Helper()
	svc := New(testkit.OpenDB(t, b, Name, Migrations), gw, o).(*service)
	clock := &skewClock{}
	svc.now = clock.now
	return svc, clock
}

// pendingRow is the row a process writes before calling the gateway, as a
// crash would leave it.
func pendingRow(in NewPayment, leaseExpires time.Time) paymentRow {
	now := time.Now().UTC().Truncate(time.Microsecond)
	if in.Currency == "" {
		in.Currency = DefaultCurrency
	}
	return paymentRow{
		ID: ids.New("pay"), TransactionID: in.TransactionID, Status: string(StatusPending),
		AmountCents: in.AmountCents, Currency: in.Currency, Method: in.Method, TokenHash: tokenHash(in.Token),
		Attempts: 1, LeaseExpiresAt: &leaseExpires, CreatedAt: now, UpdatedAt: now,
	}
}

// TestCrashRecovery proves that what a crash leaves behind (a pending row,
// with or without the charge made at the processor) is resolved by a retry
// with the same idempotency key, without a second charge.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	in := NewPayment{TransactionID: "txn-crash", AmountCents: 1234, Method: MethodCard, Token: "tok_visa"}
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		t.Run("crashed after the processor charged", func(t *testing.T) {
			sim := NewSimulator(SimulatorOptions{})
			svc, _ := localService(t, b, sim, Options{})
			must(t, svc.store.insertPayment(ctx, pendingRow(in, time.Now().Add(-time.Second))))
			first, err := sim.Charge(ctx, ChargeRequest{IdempotencyKey: in.TransactionID, AmountCents: in.AmountCents,
				Currency: "CAD", Method: in.Method, Token: in.Token})
			must(t, err)

			out, err := svc.Charge(ctx, in)
			must(t, err)
			if out.Status != StatusCaptured || out.AuthorizationCode != first.AuthorizationCode {
				t.Fatalf("recovered payment %+v, processor said %+v", out, first)
			}
			if st := sim.Stats(); st.Charges != 1 || st.ChargeCalls != 2 {
				t.Fatalf("processor: %+v, want one charge asked twice", st)
			}
			again, err := svc.Charge(ctx, in)
			must(t, err)
			if !again.Replayed || again.ID != out.ID {
				t.Fatalf("replay after recovery: %+v", again)
			}
		})

		t.Run("crashed before the processor was called", func(t *testing.T) {
			sim := NewSimulator(SimulatorOptions{})
			svc, _ := localService(t, b, sim, Options{})
			must(t, svc.store.insertPayment(ctx, pendingRow(in, time.Now().Add(-time.Second))))
			out, err := svc.Charge(ctx, in)
			must(t, err)
			if out.Status != StatusCaptured || sim.Stats().Charges != 1 {
				t.Fatalf("recovered %+v, processor %+v", out, sim.Stats())
			}
		})

		t.Run("a live attempt is waited for, and the wait is bounded", func(t *testing.T) {
			sim := NewSimulator(SimulatorOptions{})
			svc, clock := localService(t, b, sim, Options{WaitTimeout: 200 * time.Millisecond, Lease: time.Minute})
			must(t, svc.store.insertPayment(ctx, pendingRow(in, clock.now().Add(time.Minute))))
			start := time.Now()
			_, err := svc.Charge(ctx, in)
			waited := time.Since(start)
			if !errs.IsKind(err, errs.Unavailable) {
				t.Fatalf("duplicate of a live attempt: %v, want unavailable", err)
			}
			var h interface{ GetHeaders() http.Header }
			if !errors.As(err, &h) || h.GetHeaders().Get("Retry-After") == "" {
				t.Fatalf("no Retry-After on %v", err)
			}
			if waited < 200*time.Millisecond || waited > 5*time.Second {
				t.Fatalf("waited %v, want about 200ms", waited)
			}
			if sim.Stats().ChargeCalls != 0 {
				t.Fatal("a duplicate called the gateway while the owner's lease was live")
			}
			// Even a conflicting body is refused at once, not after the wait.
			other := in
			other.AmountCents++
			if _, err := svc.Charge(ctx, other); !errs.IsKind(err, errs.Conflict) {
				t.Fatalf("conflicting duplicate: %v", err)
			}
			clock.advance(2 * time.Minute) // the owner is gone
			out, err := svc.Charge(ctx, in)
			must(t, err)
			if out.Status != StatusCaptured || sim.Stats().Charges != 1 {
				t.Fatalf("takeover: %+v, processor %+v", out, sim.Stats())
			}
		})

		t.Run("a stale owner cannot overwrite its successor", func(t *testing.T) {
			gate := newGate(NewSimulator(SimulatorOptions{}))
			svc, clock := localService(t, b, gate, Options{Lease: time.Minute, WaitTimeout: 10 * time.Second})
			type answer struct {
				out ChargeOutcome
				err error
			}
			stale := make(chan answer, 1)
			go func() {
				out, err := svc.Charge(ctx, in)
				stale <- answer{out, err}
			}()
			<-gate.entered           // the first owner is inside the gateway
			clock.advance(time.Hour) // and looks dead
			fresh, err := svc.Charge(ctx, in)
			must(t, err)
			close(gate.release)
			old := <-stale
			must(t, old.err)
			if fresh.Replayed || !old.out.Replayed || old.out.ID != fresh.ID || old.out.AuthorizationCode != fresh.AuthorizationCode {
				t.Fatalf("successor %+v, stale owner %+v: want one creation and agreement", fresh, old.out)
			}
			row, err := svc.store.paymentByTransaction(ctx, in.TransactionID)
			must(t, err)
			if row.Attempts != 2 || row.Status != string(StatusCaptured) || row.LeaseExpiresAt != nil {
				t.Fatalf("row after takeover: %+v", row)
			}
		})

		t.Run("duplicates that waited share the failure they waited for", func(t *testing.T) {
			g := newGate(NewSimulator(SimulatorOptions{}))
			svc, _ := localService(t, b, g, Options{WaitTimeout: 30 * time.Second})
			bad := NewPayment{TransactionID: "txn-crash-error", AmountCents: 99, Method: MethodCard, Token: TokenError}
			const n = 20
			waiting := make(chan struct{}, n)
			svc.waiting = func() { waiting <- struct{}{} }
			errsOut := make(chan error, n)
			for range n {
				go func() {
					_, err := svc.Charge(ctx, bad)
					errsOut <- err
				}()
			}
			<-g.entered
			// Every duplicate must have found the attempt in flight before it
			// fails; one that arrived after the failure would retry it, as it
			// should, and that is tested below.
			for range n - 1 {
				<-waiting
			}
			close(g.release)
			for range n {
				if err := <-errsOut; !errs.IsKind(err, errs.BadGateway) {
					t.Fatalf("duplicate of a failing attempt: %v", err)
				}
			}
			if c := g.calls.Load(); c != 1 {
				t.Fatalf("gateway called %d times for one in-flight attempt", c)
			}
			// A request that comes later retries.
			if _, err := svc.Charge(ctx, bad); !errs.IsKind(err, errs.BadGateway) || g.calls.Load() != 2 {
				t.Fatalf("later retry: %v after %d calls", err, g.calls.Load())
			}
		})

		t.Run("pending refund left by a crash", func(t *testing.T) {
			sim := NewSimulator(SimulatorOptions{})
			svc, clock := localService(t, b, sim, Options{Lease: time.Minute})
			pay, err := svc.Charge(ctx, NewPayment{TransactionID: "txn-crash-refund", AmountCents: 5000, Method: MethodCard, Token: "tok_visa"})
			must(t, err)
			now := clock.now()
			expired := now.Add(-time.Second)
			row := refundRow{ID: ids.New("rfd"), RefundID: "ref-crash", PaymentID: pay.ID, AmountCents: 2000, Reason: "crash",
				Status: string(RefundPending), Attempts: 1, LeaseExpiresAt: &expired, CreatedAt: now, UpdatedAt: now}
			_, err = svc.store.insertRefund(ctx, &row) // reserved, then the process died
			must(t, err)

			out, err := svc.Refund(ctx, pay.ID, NewRefund{RefundID: "ref-crash", AmountCents: 2000, Reason: "crash"})
			must(t, err)
			if out.Status != RefundSucceeded || out.ID != row.ID {
				t.Fatalf("recovered refund: %+v", out)
			}
			p, err := svc.GetPayment(ctx, pay.ID)
			must(t, err)
			if p.RefundedCents != 2000 || p.Status != StatusPartiallyRefunded {
				t.Fatalf("payment after recovered refund: %+v (reserved twice?)", p)
			}
			if st := sim.Stats(); st.RefundCalls != 1 || st.Refunds != 1 {
				t.Fatalf("processor: %+v", st)
			}
		})
	})
}

// gate is a Gateway whose first charge waits for release, to hold an
// owner inside the gateway call.
type gate struct {
	inner   Gateway
	calls   atomic.Int64
	entered chan struct{}
	release chan struct{}
}

func newGate(inner Gateway) *gate {
	return &gate{inner: inner, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error) {
	if g.calls.Add(1) == 1 {
		close(g.entered)
		<-g.release
	}
	return g.inner.Charge(ctx, req)
}

func (g *gate) Refund(ctx context.Context, req RefundRequest) (RefundResult, error) {
	return g.inner.Refund(ctx, req)
}

// TestMetrics checks outcomes are counted once, on the registry given.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	gdb := testkit.OpenDB(t, testkit.SQLite, Name, Migrations)
	svc := New(gdb, NewSimulator(SimulatorOptions{}), Options{Registerer: reg})
	_ = New(gdb, NewSimulator(SimulatorOptions{}), Options{Registerer: reg}) // a second service shares the collectors

	pay, err := svc.Charge(ctx, NewPayment{TransactionID: "m1", AmountCents: 1500, Method: MethodCard, Token: "tok_visa"})
	must(t, err)
	_, _ = svc.Charge(ctx, NewPayment{TransactionID: "m1", AmountCents: 1500, Method: MethodCard, Token: "tok_visa"}) // replay: not counted
	_, _ = svc.Charge(ctx, NewPayment{TransactionID: "m2", AmountCents: 10, Method: MethodGiftCard, Token: TokenDeclined})
	_, _ = svc.Charge(ctx, NewPayment{TransactionID: "m3", AmountCents: 10, Method: MethodCard, Token: TokenError})
	_, err = svc.Refund(ctx, pay.ID, NewRefund{RefundID: "mr1", AmountCents: 500, Reason: "x"})
	must(t, err)

	families, err := reg.Gather()
	must(t, err)
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName() + labels(m)
			switch {
			case m.Counter != nil:
				got[key] = m.GetCounter().GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"payments_total{method=card,status=captured}":                          1,
		"payments_total{method=gift_card,status=declined}":                     1,
		"payments_total{method=card,status=failed}":                            1,
		"payment_amount_cents_total{currency=CAD}":                             1500,
		"refunds_total{status=succeeded}":                                      1,
		"payment_refunded_cents_total{currency=CAD}":                           500,
		"payment_gateway_duration_seconds{operation=charge,outcome=captured}":  1,
		"payment_gateway_duration_seconds{operation=refund,outcome=succeeded}": 1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func labels(m *dto.Metric) string {
	s := "{"
	for i, l := range m.GetLabel() {
		if i > 0 {
			s += ","
		}
		s += l.GetName() + "=" + l.GetValue()
	}
	return s + "}"
}

// TestSimulator pins the simulator's contract, which the saga and load
// tests lean on.
func TestSimulator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sim := NewSimulator(SimulatorOptions{})
	req := ChargeRequest{IdempotencyKey: "k1", AmountCents: 1000, Currency: "CAD", Method: MethodCard, Token: "tok_visa"}

	first, err := sim.Charge(ctx, req)
	must(t, err)
	if first.ChargeRef == "" || len(first.AuthorizationCode) != 6 {
		t.Fatalf("approval: %+v", first)
	}
	again, err := sim.Charge(ctx, req)
	if err != nil || again != first {
		t.Fatalf("same key: %+v %v, want %+v", again, err, first)
	}
	// Another process (a restart) answers the same for the same key.
	if other, err := NewSimulator(SimulatorOptions{}).Charge(ctx, req); err != nil || other != first {
		t.Fatalf("restarted simulator: %+v %v", other, err)
	}
	changed := req
	changed.AmountCents = 999
	if _, err := sim.Charge(ctx, changed); !errs.IsKind(err, errs.Unprocessable) {
		t.Fatalf("key reused with another amount: %v", err)
	}
	cases := []struct {
		token string
		kind  *errs.Kind
	}{{TokenDeclined, errs.PaymentRequired}, {TokenError, errs.BadGateway}, {"", errs.Invalid}}
	for _, c := range cases {
		r := req
		r.IdempotencyKey, r.Token = "k-"+c.token, c.token
		if _, err := sim.Charge(ctx, r); !errs.IsKind(err, c.kind) {
			t.Errorf("token %q: %v, want %s", c.token, err, c.kind)
		}
	}

	rr := RefundRequest{IdempotencyKey: "r1", ChargeRef: first.ChargeRef, AmountCents: 600, Currency: "CAD"}
	r1, err := sim.Refund(ctx, rr)
	must(t, err)
	if r2, err := sim.Refund(ctx, rr); err != nil || r2 != r1 {
		t.Fatalf("refund replay: %+v %v", r2, err)
	}
	if _, err := sim.Refund(ctx, RefundRequest{IdempotencyKey: "r2", ChargeRef: first.ChargeRef, AmountCents: 401, Currency: "CAD"}); !errs.IsKind(err, errs.Unprocessable) {
		t.Fatalf("refund beyond the charge: %v", err)
	}
	if st := sim.Stats(); st.Charges != 1 || st.Refunds != 1 || st.ChargeCalls != 6 || st.RefundCalls != 3 {
		t.Fatalf("stats: %+v", st)
	}

	slow := NewSimulator(SimulatorOptions{Latency: time.Hour})
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := slow.Charge(cctx, req); !errs.IsKind(err, errs.Timeout) {
		t.Fatalf("latency past the deadline: %v", err)
	}
}
