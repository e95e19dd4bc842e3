package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/payment"
	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
)

// failpoints stops an orchestrator once at an armed step and point, as if
// its process died there.
type failpoints struct {
	mu    sync.Mutex
	step  string
	at    Point
	fired string // the saga it stopped
}

func (f *failpoints) arm(step string, at Point) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.step, f.at, f.fired = step, at, ""
}

func (f *failpoints) hit(id, step string, at Point) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.step == step && f.at == at {
		f.step, f.fired = "", id
		return true
	}
	return false
}

func (f *failpoints) firedOn() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired
}

// scenario is one saga stopped at one step and point.
type scenario struct {
	name   string
	sagaID string
	kind   string // checkout outcome: ok, declined, orderfail; or cancel
	step   string
	at     Point
	want   string
	comps  []string
}

// TestCrashRecovery stops an orchestrator at every step of every flow,
// before the call and after it, then lets fresh orchestrators (two at
// once, on the same databases) resume everything: each saga ends COMPLETED
// or FAILED with its compensations done, the crashed step repeated under
// its idempotency key, and the invariants hold.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		fp := &failpoints{}
		// A short lease: the fresh orchestrators take over once it runs out.
		// The injected order outages must not open the order breaker here
		// (TestBreaker covers it): every attempt count below is exact.
		e := newEnv(t, b, Options{Owner: "crashing", Lease: 300 * time.Millisecond, Failpoint: fp.hit, BreakerFailures: 1000})
		const initial = 100
		item := e.addProduct("CRASH-1", 1000, initial)
		total := expectedTotal(t, line{item, 1})

		var scenarios []*scenario
		points := []Point{BeforeCall, AfterCall}
		// validate_cart runs before a new checkout's saga is written (it
		// has no crash point; TestResumePendingSaga covers sagas written
		// before it did).
		for _, step := range []string{StepReserveStock, StepChargePayment, StepCreateOrder, StepCommitStock, StepClearCart} {
			for _, at := range points {
				scenarios = append(scenarios, &scenario{kind: "ok", step: step, at: at, want: StateCompleted})
			}
		}
		for _, step := range []string{StepRefundPayment, StepReleaseStock} {
			for _, at := range points {
				scenarios = append(scenarios, &scenario{kind: "declined", step: step, at: at, want: StateFailed,
					comps: []string{StepRefundPayment, StepReleaseStock}})
			}
		}
		for _, step := range []string{StepVoidOrder, StepRefundPayment, StepReleaseStock} {
			for _, at := range points {
				scenarios = append(scenarios, &scenario{kind: "orderfail", step: step, at: at, want: StateFailed,
					comps: []string{StepVoidOrder, StepRefundPayment, StepReleaseStock}})
			}
		}
		for _, sc := range scenarios {
			sc.name = fmt.Sprintf("%s/%s/%s", sc.kind, sc.step, sc.at)
			cus := testkit.ID("cus")
			token := "tok_visa"
			switch sc.kind {
			case "declined":
				token = payment.TokenDeclined
			case "orderfail":
				e.faults.failFor(cus, -1)
			}
			fp.arm(sc.step, sc.at)
			res, err := e.saga.Checkout(ctx, "", request(e.fillCart(line{item, 1}), cus, token))
			sc.sagaID = fp.firedOn()
			if sc.sagaID == "" || err != nil || Final(res.Status) || res.SagaID != sc.sagaID {
				t.Fatalf("%s: the orchestrator did not stop there: %+v %v", sc.name, res, err)
			}
		}

		// Cancellations, each of a completed order, stopped at each step.
		for _, step := range []string{StepCancelOrder, StepRefundOrder, StepRestock} {
			for _, at := range points {
				cus := testkit.ID("cus")
				res, err := e.saga.Checkout(ctx, "", request(e.fillCart(line{item, 1}), cus, "tok_visa"))
				if err != nil || res.Status != StateCompleted {
					t.Fatalf("checkout to cancel: %+v %v", res, err)
				}
				sc := &scenario{name: fmt.Sprintf("cancel/%s/%s", step, at), kind: "cancel", step: step, at: at, want: StateCompleted}
				fp.arm(step, at)
				c, err := e.saga.CancelOrder(ctx, res.OrderID)
				sc.sagaID = fp.firedOn()
				if sc.sagaID == "" || err != nil || Final(c.Status) || c.SagaID != sc.sagaID {
					t.Fatalf("%s: the orchestrator did not stop there: %+v %v", sc.name, c, err)
				}
				scenarios = append(scenarios, sc)
			}
		}

		// Two fresh orchestrators resume at once: the leases decide which
		// drives each saga, and none is driven twice.
		fresh := []*Orchestrator{e.newOrchestrator(Options{Owner: "fresh-1", BreakerFailures: 1000}),
			e.newOrchestrator(Options{Owner: "fresh-2", BreakerFailures: 1000})}
		ids := make([]string, len(scenarios))
		for i, sc := range scenarios {
			ids[i] = sc.sagaID
		}
		deadline := time.Now().Add(90 * time.Second)
		for !allFinal(t, e, ids) {
			if time.Now().After(deadline) {
				t.Fatal("sagas still unfinished after 90 s")
			}
			var wg sync.WaitGroup
			for _, orc := range fresh {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := orc.Resume(ctx); err != nil {
						t.Errorf("resume: %v", err)
					}
				}()
			}
			wg.Wait()
			time.Sleep(50 * time.Millisecond)
		}

		completedCheckouts, cancelled := 0, 0
		for _, sc := range scenarios {
			sg, err := e.saga.GetSaga(ctx, sc.sagaID)
			must(t, err)
			if sg.Status != sc.want {
				t.Errorf("%s: ended %s (%s), want %s", sc.name, sg.Status, sg.Error, sc.want)
				continue
			}
			all := append(append([]SagaStep{}, sg.Steps...), sg.Compensations...)
			for _, s := range all {
				// The crashed step ran twice: once before the crash, once
				// resumed with the same key. Every other step ran once.
				// A step after a deferrable one is not written before its
				// call: the crash finds the deferrable step still armed,
				// and that is the step resumed twice.
				want := 1
				if s.Step == sc.step && !afterDeferrable(sc.step) || s.Step == rerunOnCrashIn(sc.step) {
					want = 2
				}
				if sc.kind == "orderfail" && s.Step == StepCreateOrder {
					want = e.saga.opts.MaxAttempts
				}
				if s.Attempts != want {
					t.Errorf("%s: step %s took %d attempts, want %d", sc.name, s.Step, s.Attempts, want)
				}
				if s.Status == StepRunning {
					t.Errorf("%s: step %s left running", sc.name, s.Step)
				}
			}
			if sc.comps != nil && !equal(stepNames(sg.Compensations), sc.comps) {
				t.Errorf("%s: compensations %v, want %v", sc.name, stepNames(sg.Compensations), sc.comps)
			}
			for _, c := range sg.Compensations {
				if c.Status != StepSucceeded {
					t.Errorf("%s: compensation %s %s", sc.name, c.Step, c.Status)
				}
			}
			switch {
			case sc.kind == "ok":
				completedCheckouts++
				orders, err := e.orders.ListOrders(ctx, order.Filter{SagaID: sc.sagaID})
				must(t, err)
				if orders.Total != 1 || orders.Items[0].Status != order.StatusConfirmed {
					t.Errorf("%s: %d orders", sc.name, orders.Total)
				}
				if _, err := e.carts.Get(ctx, sg.SessionID); !errs.IsKind(err, errs.NotFound) {
					t.Errorf("%s: cart not cleared: %v", sc.name, err)
				}
			case sc.kind == "cancel":
				cancelled++
				o, err := e.orders.GetOrder(ctx, sg.OrderID)
				must(t, err)
				refunds, err := e.pay.ListRefunds(ctx, sg.PaymentID, page.Request{})
				must(t, err)
				if o.Status != order.StatusCancelled || refunds.Total != 1 || refunds.Items[0].AmountCents != total {
					t.Errorf("%s: order %s, %d refunds", sc.name, o.Status, refunds.Total)
				}
			default:
				orders, err := e.orders.ListOrders(ctx, order.Filter{SagaID: sc.sagaID})
				must(t, err)
				if orders.Total != 0 {
					t.Errorf("%s: a failed checkout left an order", sc.name)
				}
			}
			// One payment per saga, whatever happened.
			pays, err := e.pay.ListPayments(ctx, payment.Filter{TransactionID: sg.ID})
			must(t, err)
			if sc.kind != "cancel" && pays.Total != 1 {
				t.Errorf("%s: %d payments for the saga", sc.name, pays.Total)
			}
		}
		// The cancelled orders came from checkouts of their own.
		completedCheckouts += cancelled
		s := e.stock(item)
		if want := int64(initial - completedCheckouts + cancelled); s.OnHand != want || s.Reserved != 0 {
			t.Errorf("stock %+v, want on_hand %d and nothing reserved", s, want)
		}
		e.checkStockInvariant()
		net := e.checkMoneyInvariant()
		if want := int64(completedCheckouts-cancelled) * total; net != want {
			t.Errorf("net money %d, want %d for %d kept orders", net, want, completedCheckouts-cancelled)
		}
		sum, err := e.pay.Summary(ctx, "")
		must(t, err)
		captured := sum.Payments[payment.StatusCaptured] + sum.Payments[payment.StatusPartiallyRefunded] + sum.Payments[payment.StatusRefunded]
		if st := e.sim.Stats(); int64(st.Charges) != captured {
			t.Errorf("the processor made %d charges for %d captured payments", st.Charges, captured)
		}
	})
}

// rerunOnCrashIn is the step a crash in step makes run again: the step
// itself, or the deferrable step before it whose success rode on its
// first write (see deferrable).
func rerunOnCrashIn(step string) string {
	switch step {
	case StepClearCart:
		return StepCommitStock
	case StepRestock:
		return StepRefundOrder
	}
	return step
}

func afterDeferrable(step string) bool { return rerunOnCrashIn(step) != step }

// TestDeferrableSteps: the steps that must finish and have nothing to undo
// are exactly those whose success rides on the next write, and each is
// followed by another such step (so a crash resumes it, never skips it).
func TestDeferrableSteps(t *testing.T) {
	var got []string
	for _, fl := range []flow{checkoutFlow, cancelFlow} {
		for i, def := range fl.steps {
			if deferrable(def) && i+1 < len(fl.steps) && deferrable(fl.steps[i+1]) {
				got = append(got, def.name)
			}
		}
	}
	if want := []string{StepCommitStock, StepRefundOrder}; !equal(got, want) {
		t.Fatalf("steps whose success is deferred: %v, want %v", got, want)
	}
	for _, step := range got {
		if !afterDeferrable(map[string]string{StepCommitStock: StepClearCart, StepRefundOrder: StepRestock}[step]) {
			t.Fatalf("rerunOnCrashIn does not know %s", step)
		}
	}
}

// TestResumePendingSaga: a checkout saga written PENDING with its
// validate_cart step armed — as this code wrote them before it validated
// the cart ahead of the insert — is resumed through that step to
// COMPLETED.
func TestResumePendingSaga(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		e := newEnv(t, b, Options{Owner: "old"})
		item := e.addProduct("PENDING-1", 1000, 10)
		cus := testkit.ID("cus")
		in := request(e.fillCart(line{item, 2}), cus, "tok_visa")
		in.ShippingAddress = in.ShippingAddress.Normalized()
		o := e.saga
		now := o.now()
		id := testkit.ID("sga")
		stored := in
		stored.Payment.Token = ""
		sd := sagaData{Checkout: &stored}
		lock := "cart:" + in.SessionID
		lease := now.Add(-time.Second) // its process is gone
		row := sagaRow{ID: id, Kind: KindCheckout, Status: StatePending, Version: 1, CustomerID: in.CustomerID,
			SessionID: in.SessionID, LocationID: e.online.ID, ReservationID: id, Data: encode(sd),
			PaymentToken: in.Payment.Token, LockKey: &lock, Owner: "gone", LeaseUntil: &lease, CreatedAt: now, UpdatedAt: now}
		snap := o.created(row, sd)
		if snap.armed != StepValidateCart {
			t.Fatalf("a PENDING checkout arms %q, want %s", snap.armed, StepValidateCart)
		}
		must(t, o.store.insert(ctx, &snap.row, snap.inserted(), nil))

		fresh := e.newOrchestrator(Options{Owner: "fresh"})
		if n, err := fresh.Resume(ctx); err != nil || n != 1 {
			t.Fatalf("resume: %d sagas, %v", n, err)
		}
		e.waitFinal(fresh, []string{id})
		sg, err := fresh.GetSaga(ctx, id)
		must(t, err)
		if sg.Status != StateCompleted || sg.TotalCents != expectedTotal(t, line{item, 2}) {
			t.Fatalf("resumed PENDING saga: %s total %d (%s)", sg.Status, sg.TotalCents, sg.Error)
		}
		if names := stepNames(sg.Steps); len(names) == 0 || names[0] != StepValidateCart {
			t.Fatalf("steps %v: validate_cart did not run first", names)
		}
		if s := e.stock(item); s.OnHand != 8 || s.Reserved != 0 {
			t.Fatalf("stock %+v after the resumed checkout", s)
		}
		// validate_cart priced the cart into the saga's data: that change
		// was written, so a later resume would charge the same quote.
		row, err = fresh.store.load(ctx, id)
		must(t, err)
		var data sagaData
		must(t, json.Unmarshal([]byte(row.Data), &data))
		if data.Quote == nil || data.Quote.TotalCents != sg.TotalCents {
			t.Fatalf("the saga's stored data lacks the quote validate_cart made: %s", row.Data)
		}
	})
}

// TestSagaDataWrittenOnce: a saga's data is written with the saga and not
// again by steps that leave it as it was — every step of a checkout, its
// compensations, a cancellation — while the saga's row is written at each
// of them.
func TestSagaDataWrittenOnce(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		e := newEnv(t, b, testOptions(Options{}))
		must(t, e.sagaDB.Exec(`CREATE TABLE data_writes (saga_id TEXT NOT NULL)`).Error)
		if db.DialectOf(e.sagaDB) == db.Postgres {
			must(t, e.sagaDB.Exec(`CREATE FUNCTION count_data_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO data_writes VALUES (NEW.saga_id); RETURN NEW; END $$`).Error)
			must(t, e.sagaDB.Exec(`CREATE TRIGGER saga_data_writes AFTER UPDATE ON saga_data
FOR EACH ROW EXECUTE FUNCTION count_data_write()`).Error)
		} else {
			must(t, e.sagaDB.Exec(`CREATE TRIGGER saga_data_writes AFTER UPDATE ON saga_data
BEGIN INSERT INTO data_writes VALUES (NEW.saga_id); END`).Error)
		}
		p := e.addProduct(testkit.ID("ONCE"), 1200, 10)
		ok, err := e.saga.Checkout(ctx, "once-ok", request(e.fillCart(line{p, 2}), "cus_once", "tok_visa"))
		must(t, err)
		if _, err := e.saga.Checkout(ctx, "once-declined", request(e.fillCart(line{p, 1}), "cus_once", "tok_declined")); err == nil {
			t.Fatal("declined card completed")
		}
		cancelled, err := e.saga.CancelOrder(ctx, ok.OrderID)
		must(t, err)
		e.waitFinal(e.saga, []string{cancelled.SagaID})

		var sagas, data, versions, rewrites int64
		must(t, e.sagaDB.Raw(`SELECT COUNT(*) FROM sagas`).Scan(&sagas).Error)
		must(t, e.sagaDB.Raw(`SELECT COUNT(*) FROM saga_data`).Scan(&data).Error)
		must(t, e.sagaDB.Raw(`SELECT COALESCE(SUM(version), 0) FROM sagas`).Scan(&versions).Error)
		must(t, e.sagaDB.Raw(`SELECT COUNT(*) FROM data_writes`).Scan(&rewrites).Error)
		if sagas != 3 || data != 3 {
			t.Fatalf("%d sagas and %d data rows, want 3 of each", sagas, data)
		}
		if versions <= 2*sagas {
			t.Fatalf("the sagas were written %d times in all: too few to tell", versions)
		}
		if rewrites != 0 {
			t.Errorf("the data of unchanged sagas was written again %d times", rewrites)
		}
	})
}

func allFinal(t *testing.T, e *env, ids []string) bool {
	for _, id := range ids {
		s, err := e.saga.GetSaga(context.Background(), id)
		must(t, err)
		if !Final(s.Status) {
			return false
		}
	}
	return true
}

// TestLease proves one saga is driven by one orchestrator: a driver stuck
// past its lease loses the saga to the one that takes it over, and its
// late write is refused; a restarted orchestrator (same owner) takes its
// own sagas back at once, without waiting for the lease.
func TestLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	release := make(chan struct{})
	var stuck sync.Once
	stuckAt := make(chan string, 1)
	block := func(id, step string, at Point) bool {
		if step == StepChargePayment && at == BeforeCall {
			stuck.Do(func() {
				stuckAt <- id
				<-release
			})
		}
		return false
	}
	e := newEnv(t, testkit.SQLite, Options{Owner: "slow", Lease: 200 * time.Millisecond, Failpoint: block})
	item := e.addProduct("LEASE-1", 1500, 5)
	cus := testkit.ID("cus")

	// The first orchestrator hangs before charging; the caller gets 202.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	res, err := e.saga.Checkout(short, "", request(e.fillCart(line{item, 1}), cus, "tok_visa"))
	must(t, err)
	id := <-stuckAt
	if res.SagaID != id || Final(res.Status) {
		t.Fatalf("checkout answered %+v", res)
	}
	// Its lease runs out; another orchestrator takes the saga over and
	// finishes it, though the first is alive.
	other := e.newOrchestrator(Options{Owner: "other"})
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := other.GetSaga(ctx, id)
		must(t, err)
		if s.Status == StateCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("takeover did not finish the saga: %s", s.Status)
		}
		_, err = other.Resume(ctx)
		must(t, err)
		time.Sleep(20 * time.Millisecond)
	}
	// The first wakes up, charges (the same transaction: a replay) and
	// tries to record it: refused, it stops.
	close(release)
	lost := e.saga.metrics.errors.WithLabelValues("", "lease_lost")
	for counter(lost) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stale orchestrator did not notice it lost the saga")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sg, err := e.saga.GetSaga(ctx, id)
	must(t, err)
	if sg.Status != StateCompleted || sg.Steps[2].Attempts != 2 {
		t.Fatalf("saga %s, charge attempts %d (want 2: the stale one's, the taker's)", sg.Status, sg.Steps[2].Attempts)
	}
	pays, err := e.pay.ListPayments(ctx, payment.Filter{CustomerID: cus})
	must(t, err)
	orders, err := e.orders.ListOrders(ctx, order.Filter{CustomerID: cus})
	must(t, err)
	if pays.Total != 1 || orders.Total != 1 || e.sim.Stats().Charges != 1 {
		t.Fatalf("%d payments, %d orders, %d charges", pays.Total, orders.Total, e.sim.Stats().Charges)
	}

	// A restart: the same owner resumes its own saga at once, its lease
	// (an hour) notwithstanding.
	fp := &failpoints{}
	fp.arm(StepReserveStock, AfterCall)
	first := e.newOrchestrator(Options{Owner: "stable", Lease: time.Hour, Failpoint: fp.hit})
	res, err = first.Checkout(ctx, "", request(e.fillCart(line{item, 1}), testkit.ID("cus"), "tok_visa"))
	must(t, err)
	if fp.firedOn() != res.SagaID || Final(res.Status) {
		t.Fatalf("first run: %+v", res)
	}
	stranger := e.newOrchestrator(Options{Owner: "stranger"})
	if n, err := stranger.Resume(ctx); err != nil || n != 0 {
		t.Fatalf("a stranger resumed %d sagas under a live lease (%v)", n, err)
	}
	restarted := e.newOrchestrator(Options{Owner: "stable"})
	if n, err := restarted.Resume(ctx); err != nil || n != 1 {
		t.Fatalf("the restarted owner resumed %d sagas (%v)", n, err)
	}
	e.waitFinal(restarted, []string{res.SagaID})
	if s, _ := restarted.GetSaga(ctx, res.SagaID); s.Status != StateCompleted {
		t.Fatalf("resumed saga %s", s.Status)
	}
	e.checkMoneyInvariant()
	e.checkStockInvariant()
}

// TestReservationExpiredBeforeCommit covers forward recovery's edge: the
// reservation expired while the saga was down after the order was
// confirmed. The saga reserves again under a derived id and commits; when
// the stock went to someone else meanwhile, it keeps trying until the
// shelf is restocked.
func TestReservationExpiredBeforeCommit(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		fp := &failpoints{}
		e := newEnv(t, b, Options{Owner: "down", Failpoint: fp.hit})
		plenty := e.addProduct("PLENTY-1", 800, 10)
		scarce := e.addProduct("SCARCE-1", 900, 1)

		var stopped []string
		for _, p := range []line{{plenty, 2}, {scarce, 1}} {
			fp.arm(StepCommitStock, BeforeCall)
			res, err := e.saga.Checkout(ctx, "", request(e.fillCart(p), testkit.ID("cus"), "tok_visa"))
			if err != nil || res.Status != StateOrderConfirmed || fp.firedOn() != res.SagaID {
				t.Fatalf("stop before commit: %+v %v", res, err)
			}
			stopped = append(stopped, res.SagaID)
		}
		// Down long enough for the reservations to lapse, and the last
		// scarce unit is sold to someone else meanwhile.
		e.clock.Advance(e.saga.opts.ReservationTTL + time.Minute)
		other, err := e.saga.Checkout(ctx, "", request(e.fillCart(line{scarce, 1}), testkit.ID("cus"), "tok_visa"))
		if err != nil || other.Status != StateCompleted {
			t.Fatalf("the other buyer: %+v %v", other, err)
		}

		back := e.newOrchestrator(Options{Owner: "down"})
		_, err = back.Resume(ctx)
		must(t, err)
		e.waitFinal(back, stopped[:1])
		sg, err := back.GetSaga(ctx, stopped[0])
		must(t, err)
		if sg.Status != StateCompleted || sg.ReservationID != stopped[0]+":r1" || !strings.Contains(string(sg.Steps[4].Response), `"expired"`) {
			t.Fatalf("saga %s with reservation %s: %s", sg.Status, sg.ReservationID, sg.Steps[4].Response)
		}
		if s := e.stock(plenty); s.OnHand != 8 || s.Reserved != 0 {
			t.Fatalf("plenty: %+v", s)
		}

		// The scarce one cannot commit: it keeps trying (the order is
		// paid), recording each failure, until the shelf is restocked.
		deadline := time.Now().Add(60 * time.Second)
		for {
			s, err := back.GetSaga(ctx, stopped[1])
			must(t, err)
			if s.Status != StateOrderConfirmed {
				t.Fatalf("the scarce saga left ORDER_CONFIRMED without stock: %s", s.Status)
			}
			if commit := s.Steps[len(s.Steps)-1]; commit.Step == StepCommitStock && commit.Attempts >= 3 && commit.ErrorKind == errs.Conflict.Name() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the scarce saga does not retry its commit: %+v", s.Steps)
			}
			time.Sleep(20 * time.Millisecond)
		}
		_, err = e.inv.Adjust(ctx, inventory.Adjustment{ProductID: scarce.ID, LocationID: e.online.ID, Delta: 1, Reason: inventory.ReasonReceipt})
		must(t, err)
		e.waitFinal(back, stopped[1:])
		sg, err = back.GetSaga(ctx, stopped[1])
		must(t, err)
		if sg.Status != StateCompleted || sg.ReservationID != stopped[1]+":r1" {
			t.Fatalf("scarce saga %s with reservation %s", sg.Status, sg.ReservationID)
		}
		if s := e.stock(scarce); s.OnHand != 0 || s.Reserved != 0 {
			t.Fatalf("scarce: %+v", s)
		}
		if n := counter(back.metrics.errors.WithLabelValues(StepCommitStock, "reservation_expired")); n < 2 {
			t.Fatalf("reservation_expired counted %v times", n)
		}
		e.checkStockInvariant()
		e.checkMoneyInvariant()
	})
}

// TestBreaker shows the order circuit opening on consecutive outages: the
// saga's later attempts fail fast without reaching the order context, the
// saga fails and is compensated, and once the circuit half-opens the next
// checkout goes through.
func TestBreaker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, testkit.SQLite, Options{BreakerFailures: 2, BreakerOpen: 300 * time.Millisecond})
	item := e.addProduct("BRK-1", 600, 5)
	down := testkit.ID("cus")
	e.faults.failFor(down, -1)
	_, err := e.saga.Checkout(ctx, "", request(e.fillCart(line{item, 1}), down, "tok_visa"))
	var failed *FailedError
	if !errors.As(err, &failed) || !errs.IsKind(err, errs.Unavailable) || failed.FailedStep != "order" {
		t.Fatalf("checkout against a down order context: %v", err)
	}
	if n := e.faults.calls.Load(); n != 2 {
		t.Fatalf("the order context was called %d times; the open circuit should have stopped the rest after 2", n)
	}
	sg, err := e.saga.GetSaga(ctx, failed.SagaID)
	must(t, err)
	if sg.Steps[3].Attempts != e.saga.opts.MaxAttempts || !strings.Contains(sg.Steps[3].Error, "circuit open") {
		t.Fatalf("order step: %+v", sg.Steps[3])
	}
	for _, c := range sg.Compensations {
		if c.Status != StepSucceeded {
			t.Fatalf("compensation %+v", c)
		}
	}
	e.checkMoneyInvariant()
	res, err := e.saga.Checkout(ctx, "", request(e.fillCart(line{item, 1}), testkit.ID("cus"), "tok_visa"))
	if err != nil || res.Status != StateCompleted {
		t.Fatalf("checkout after the outage: %+v %v", res, err)
	}
}

// TestSlowPaymentSettles reproduces a payment context that is slower than
// the saga's patience, reached over HTTP as in the fleet: the first charge
// attempt times out while the processor still works on it, the next ones
// hear "still being processed". Those are unknown outcomes, not failures:
// the saga keeps asking (for its settle budget, beyond MaxAttempts) and
// completes with one charge, instead of failing a checkout whose money was
// taken.
func TestSlowPaymentSettles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, testkit.SQLite, Options{})
	slow := payment.NewSimulator(payment.SimulatorOptions{Latency: time.Second})
	pay := payment.New(testkit.OpenDB(t, testkit.SQLite, payment.Name, payment.Migrations), slow,
		payment.Options{WaitTimeout: 100 * time.Millisecond})
	h := testkit.Serve(t, func(s *httpx.Server) { payment.Routes(s.API, pay) })
	deps := e.deps
	deps.Payments = payment.NewClient(httpx.NewClient(httpx.ClientConfig{Context: payment.Name, BaseURL: h.URL,
		ServiceKey: h.Keys.Service, Timeout: 150 * time.Millisecond, Retries: -1}))
	orc := New(e.sagaDB, deps, testOptions(Options{Owner: "patient", MaxAttempts: 2, SettleBudget: 60 * time.Second,
		BackoffBase: 150 * time.Millisecond, BackoffMax: 300 * time.Millisecond, BreakerOpen: 200 * time.Millisecond}))
	t.Cleanup(orc.Close)
	item := e.addProduct("SLOW-1", 2000, 3)
	res, err := orc.Checkout(ctx, "", request(e.fillCart(line{item, 1}), testkit.ID("cus"), "tok_visa"))
	if err != nil || res.Status != StateCompleted {
		t.Fatalf("checkout against a slow payment context: %+v %v", res, err)
	}
	sg, err := orc.GetSaga(ctx, res.SagaID)
	must(t, err)
	if charge := sg.Steps[2]; charge.Step != StepChargePayment || charge.Attempts < 3 {
		t.Fatalf("charge step %+v: want more attempts than MaxAttempts (2)", charge)
	}
	p, err := pay.GetPaymentByTransaction(ctx, res.SagaID)
	must(t, err)
	if st := slow.Stats(); st.Charges != 1 || p.Status != payment.StatusCaptured || p.ID != res.PaymentID {
		t.Fatalf("processor %+v, payment %+v", st, p)
	}
}

// TestSagaDataMigration: migration 0002 moves the data of sagas written
// before it into saga_data, where a resume reads it.
func TestSagaDataMigration(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		gdb, err := db.Open(ctx, b.Options(t, Name))
		must(t, err)
		t.Cleanup(func() { _ = db.Close(gdb) })
		raw, err := fs.ReadFile(Migrations, "migrations/0001_init.sql")
		must(t, err)
		must(t, db.Migrate(ctx, gdb, fstest.MapFS{"0001_init.sql": {Data: raw}}))
		now := time.Now().UTC()
		must(t, gdb.Exec(`INSERT INTO sagas (id, kind, status, version, data, created_at, updated_at)
VALUES ('sga_before', 'checkout', 'STOCK_RESERVED', 3, '{"request_id":"req-before"}', ?, ?)`, now, now).Error)
		must(t, db.Migrate(ctx, gdb, Migrations))
		row, err := newStore(gdb).load(ctx, "sga_before")
		must(t, err)
		if row.Data != `{"request_id":"req-before"}` || row.Version != 3 || row.Status != "STOCK_RESERVED" {
			t.Fatalf("after migration 0002: %+v", row)
		}
	})
}
