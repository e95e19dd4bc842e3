package saga

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/retailco/pos/internal/cart"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/payment"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestCheckout drives checkouts over real HTTP through a monolith-like
// server, on every backend: the happy path, a declined card, a gateway
// failure, an order step failing after the payment, idempotency keys,
// cancellations and bad input.
func TestCheckout(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		e := newEnv(t, b, Options{})
		ctx := context.Background()

		t.Run("happy path", func(t *testing.T) {
			coffee := e.addProduct("COF-1", 1899, 10)
			mug := e.addProduct("MUG-1", 1250, 5)
			lines := []line{{coffee, 2}, {mug, 1}}
			session := e.fillCart(lines...)
			cus := testkit.ID("cus")
			var res CheckoutResult
			e.checkoutHTTP(t, request(session, cus, "tok_visa"), cus, testkit.ID("key")).JSON(t, http.StatusCreated, &res)
			want := expectedTotal(t, lines...)
			if res.Status != StateCompleted || res.OrderID == "" || res.TotalCents != want || res.Currency != "CAD" || res.PaymentID == "" {
				t.Fatalf("checkout answered %+v, want COMPLETED for %d", res, want)
			}

			var o order.Order
			e.h.Call(t, http.MethodGet, "/api/v1/orders/"+res.OrderID, nil, e.bearer(cus)...).JSON(t, http.StatusOK, &o)
			if o.Status != order.StatusConfirmed || o.TotalCents != want || o.SagaID != res.SagaID || o.PaymentID != res.PaymentID ||
				len(o.Lines) != 2 || o.CustomerID != cus || o.LocationID != e.online.ID {
				t.Fatalf("order %+v", o)
			}
			for _, c := range []struct {
				l       line
				onHand  int64
				initial int64
			}{{lines[0], 8, 10}, {lines[1], 4, 5}} {
				s := e.stock(c.l.p)
				if s.OnHand != c.onHand || s.Reserved != 0 || s.Available != c.onHand {
					t.Fatalf("stock of %s after checkout: %+v, want on_hand %d, nothing reserved", c.l.p.SKU, s, c.onHand)
				}
			}
			p, err := e.pay.GetPaymentByTransaction(ctx, res.SagaID)
			must(t, err)
			if p.Status != payment.StatusCaptured || p.AmountCents != want || p.ID != res.PaymentID {
				t.Fatalf("payment %+v, want %d captured", p, want)
			}
			e.h.Call(t, http.MethodGet, "/api/v1/carts/"+session, nil, e.bearer(cus)...).Problem(t, http.StatusNotFound)

			var sg Saga
			e.h.Call(t, http.MethodGet, "/api/v1/sagas/"+res.SagaID, nil, e.bearer(cus)...).JSON(t, http.StatusOK, &sg)
			wantSteps := []string{StepValidateCart, StepReserveStock, StepChargePayment, StepCreateOrder, StepCommitStock, StepClearCart}
			if sg.Status != StateCompleted || sg.FinishedAt == nil || !equal(stepNames(sg.Steps), wantSteps) || len(sg.Compensations) != 0 {
				t.Fatalf("saga %s: status %s steps %v compensations %v", sg.ID, sg.Status, stepNames(sg.Steps), stepNames(sg.Compensations))
			}
			for i, s := range sg.Steps {
				if s.Status != StepSucceeded || s.Attempts != 1 || s.Seq != i+1 || s.FinishedAt == nil || len(s.Request) == 0 || len(s.Response) == 0 {
					t.Fatalf("step %+v", s)
				}
			}
			if bytes.Contains(mustJSON(t, sg), []byte("tok_visa")) {
				t.Fatal("the saga shows the payment token")
			}
			e.h.Call(t, http.MethodGet, "/api/v1/sagas/"+res.SagaID, nil, e.bearer("cus-other")...).Problem(t, http.StatusForbidden)
			if n := counter(e.saga.metrics.requests.WithLabelValues(StateCompleted)); n < 1 {
				t.Fatalf("saga_requests_total{COMPLETED} = %v", n)
			}
			e.checkStockInvariant()
			e.checkMoneyInvariant()
		})

		t.Run("declined payment", func(t *testing.T) {
			tea := e.addProduct("TEA-1", 500, 3)
			session := e.fillCart(line{tea, 2})
			cus := testkit.ID("cus")
			before, err := e.pay.Summary(ctx, "")
			must(t, err)
			calls := e.sim.Stats().ChargeCalls
			fb := decodeFailed(t, e.checkoutHTTP(t, request(session, cus, payment.TokenDeclined), cus, ""), http.StatusPaymentRequired)
			if fb.FailedStep != "payment" {
				t.Fatalf("failed_step %q, want payment", fb.FailedStep)
			}
			if s := e.stock(tea); s.OnHand != 3 || s.Reserved != 0 {
				t.Fatalf("stock after a decline: %+v", s)
			}
			if res, err := e.orders.ListOrders(ctx, order.Filter{SagaID: fb.SagaID}); err != nil || res.Total != 0 {
				t.Fatalf("orders of a declined checkout: %v %v", res.Total, err)
			}
			after, err := e.pay.Summary(ctx, "")
			must(t, err)
			if after.CapturedCents != before.CapturedCents || after.RefundedCents != before.RefundedCents {
				t.Fatalf("money moved on a decline: %+v → %+v", before, after)
			}
			if got := e.sim.Stats().ChargeCalls - calls; got != 1 {
				t.Fatalf("the processor was asked %d times: a decline must not be retried", got)
			}
			sg, err := e.saga.GetSaga(ctx, fb.SagaID)
			must(t, err)
			charge := sg.Steps[len(sg.Steps)-1]
			if sg.Status != StateFailed || charge.Step != StepChargePayment || charge.Status != StepFailed || charge.Attempts != 1 ||
				!equal(stepNames(sg.Compensations), []string{StepRefundPayment, StepReleaseStock}) {
				t.Fatalf("saga: %s, last step %+v, compensations %v", sg.Status, charge, stepNames(sg.Compensations))
			}
			// The cart is still there: the customer may try another card.
			e.h.Call(t, http.MethodGet, "/api/v1/carts/"+session, nil, e.bearer(cus)...).JSON(t, http.StatusOK, nil)
			e.checkStockInvariant()
			e.checkMoneyInvariant()
		})

		t.Run("gateway failure is retried, then fails", func(t *testing.T) {
			jam := e.addProduct("JAM-1", 700, 2)
			session := e.fillCart(line{jam, 1})
			cus := testkit.ID("cus")
			calls := e.sim.Stats().ChargeCalls
			fb := decodeFailed(t, e.checkoutHTTP(t, request(session, cus, payment.TokenError), cus, ""), http.StatusBadGateway)
			if fb.FailedStep != "payment" {
				t.Fatalf("failed_step %q", fb.FailedStep)
			}
			sg, err := e.saga.GetSaga(ctx, fb.SagaID)
			must(t, err)
			if got := e.sim.Stats().ChargeCalls - calls; got != int64(e.saga.opts.MaxAttempts) || sg.Steps[2].Attempts != e.saga.opts.MaxAttempts {
				t.Fatalf("gateway asked %d times, step attempts %d, want %d", got, sg.Steps[2].Attempts, e.saga.opts.MaxAttempts)
			}
			if s := e.stock(jam); s.OnHand != 2 || s.Reserved != 0 {
				t.Fatalf("stock: %+v", s)
			}
			e.checkMoneyInvariant()
		})

		t.Run("order step fails after payment", func(t *testing.T) {
			pen := e.addProduct("PEN-1", 2500, 4)
			lines := []line{{pen, 3}}
			session := e.fillCart(lines...)
			cus := testkit.ID("cus")
			e.faults.failFor(cus, -1)
			want := expectedTotal(t, lines...)
			fb := decodeFailed(t, e.checkoutHTTP(t, request(session, cus, "tok_visa"), cus, ""), http.StatusServiceUnavailable)
			if fb.FailedStep != "order" {
				t.Fatalf("failed_step %q, want order", fb.FailedStep)
			}
			sg, err := e.saga.GetSaga(ctx, fb.SagaID)
			must(t, err)
			// Newest first: the order (none was made), the money, then the
			// stock — and the refund recorded before the release.
			if !equal(stepNames(sg.Compensations), []string{StepVoidOrder, StepRefundPayment, StepReleaseStock}) {
				t.Fatalf("compensations %v", stepNames(sg.Compensations))
			}
			refund, release := sg.Compensations[1], sg.Compensations[2]
			if refund.Seq >= release.Seq || refund.FinishedAt == nil || release.StartedAt.Before(*refund.FinishedAt) {
				t.Fatalf("refund %+v must finish before release %+v starts", refund, release)
			}
			for _, c := range sg.Compensations {
				if c.Status != StepSucceeded {
					t.Fatalf("compensation %+v", c)
				}
			}
			if sg.Status != StateFailed || sg.Steps[3].Attempts != e.saga.opts.MaxAttempts {
				t.Fatalf("saga %s, order step attempts %d", sg.Status, sg.Steps[3].Attempts)
			}
			p, err := e.pay.GetPaymentByTransaction(ctx, fb.SagaID)
			must(t, err)
			if p.Status != payment.StatusRefunded || p.AmountCents != want || p.RefundedCents != want {
				t.Fatalf("payment %+v: want %d captured and refunded", p, want)
			}
			if s := e.stock(pen); s.OnHand != 4 || s.Reserved != 0 {
				t.Fatalf("stock: %+v", s)
			}
			net := e.checkMoneyInvariant()

			// Each compensation is idempotent: running them all again moves
			// nothing.
			e.rerunCompensations(fb.SagaID)
			again, err := e.pay.GetPaymentByTransaction(ctx, fb.SagaID)
			must(t, err)
			refunds, err := e.pay.ListRefunds(ctx, p.ID, page.Request{})
			must(t, err)
			if again.RefundedCents != want || refunds.Total != 1 || e.checkMoneyInvariant() != net {
				t.Fatalf("compensating twice moved money: %+v, %d refunds", again, refunds.Total)
			}
			if s := e.stock(pen); s.OnHand != 4 || s.Reserved != 0 {
				t.Fatalf("stock after compensating twice: %+v", s)
			}
		})

		t.Run("order step fails twice, then succeeds", func(t *testing.T) {
			ink := e.addProduct("INK-1", 300, 4)
			session := e.fillCart(line{ink, 1})
			cus := testkit.ID("cus")
			e.faults.failFor(cus, 2)
			var res CheckoutResult
			e.checkoutHTTP(t, request(session, cus, "tok_visa"), cus, "").JSON(t, http.StatusCreated, &res)
			sg, err := e.saga.GetSaga(ctx, res.SagaID)
			must(t, err)
			if sg.Steps[3].Step != StepCreateOrder || sg.Steps[3].Attempts != 3 || sg.Steps[3].Status != StepSucceeded {
				t.Fatalf("order step %+v", sg.Steps[3])
			}
			e.checkMoneyInvariant()
		})

		t.Run("idempotency key", func(t *testing.T) {
			cup := e.addProduct("CUP-1", 999, 5)
			session := e.fillCart(line{cup, 1})
			cus := testkit.ID("cus")
			key := testkit.ID("idem")
			body := request(session, cus, "tok_visa")
			charges := e.sim.Stats().Charges
			const n = 20
			answers := make([]rawResponse, n)
			var wg sync.WaitGroup
			for i := range answers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers[i] = e.post("/api/v1/checkout", body, append(e.bearer(cus), "Idempotency-Key", key)...)
				}()
			}
			wg.Wait()
			var first CheckoutResult
			for i, a := range answers {
				if a.err != nil {
					t.Fatalf("request %d: %v", i, a.err)
				}
				var r CheckoutResult
				if err := json.Unmarshal(a.body, &r); err != nil {
					t.Fatalf("request %d: %d %s", i, a.status, a.body)
				}
				if i == 0 {
					first = r
				}
				// Every answer names the one saga; a final one says how it
				// ended, the same for all.
				if r.SagaID != first.SagaID || (a.status == http.StatusCreated) != (r.Status == StateCompleted) ||
					(a.status != http.StatusCreated && a.status != http.StatusAccepted) {
					t.Fatalf("answer %d: %d %+v, first %+v", i, a.status, r, first)
				}
				if a.status == http.StatusCreated && r.OrderID == "" {
					t.Fatalf("answer %d: completed without an order", i)
				}
			}
			e.waitFinal(e.saga, []string{first.SagaID})
			if res, err := e.orders.ListOrders(ctx, order.Filter{CustomerID: cus}); err != nil || res.Total != 1 {
				t.Fatalf("orders: %d %v", res.Total, err)
			}
			if res, err := e.pay.ListPayments(ctx, payment.Filter{CustomerID: cus}); err != nil || res.Total != 1 {
				t.Fatalf("payments: %d %v", res.Total, err)
			}
			if got := e.sim.Stats().Charges - charges; got != 1 {
				t.Fatalf("%d charges at the processor, want 1", got)
			}
			if s := e.stock(cup); s.OnHand != 4 || s.Reserved != 0 {
				t.Fatalf("stock: %+v", s)
			}
			sagas, err := e.saga.ListSagas(ctx, Filter{CustomerID: cus})
			must(t, err)
			if sagas.Total != 1 {
				t.Fatalf("%d sagas for one key", sagas.Total)
			}
			// The same key later (the cart is gone by now) still answers.
			var replay CheckoutResult
			e.checkoutHTTP(t, body, cus, key).JSON(t, http.StatusCreated, &replay)
			if replay.SagaID != first.SagaID || replay.OrderID == "" {
				t.Fatalf("replay %+v", replay)
			}
			other := body
			other.ShippingAddress.Line2 = "apt 3"
			e.checkoutHTTP(t, other, cus, key).Problem(t, http.StatusUnprocessableEntity)
			// Keys are the caller's: another customer's same key is theirs.
			session2 := e.fillCart(line{cup, 1})
			cus2 := testkit.ID("cus")
			var mine CheckoutResult
			e.checkoutHTTP(t, request(session2, cus2, "tok_visa"), cus2, key).JSON(t, http.StatusCreated, &mine)
			if mine.SagaID == first.SagaID {
				t.Fatal("one customer's key answered another's checkout")
			}
		})

		t.Run("one cart checked out twice at once", func(t *testing.T) {
			bowl := e.addProduct("BOWL-1", 1700, 5)
			session := e.fillCart(line{bowl, 2})
			cus := testkit.ID("cus")
			const n = 5
			answers := make([]rawResponse, n)
			var wg sync.WaitGroup
			for i := range answers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers[i] = e.post("/api/v1/checkout", request(session, cus, "tok_visa"),
						append(e.bearer(cus), "Idempotency-Key", testkit.ID("key"))...)
				}()
			}
			wg.Wait()
			completed := 0
			for i, a := range answers {
				switch {
				case a.err != nil:
					t.Fatalf("request %d: %v", i, a.err)
				case a.status == http.StatusCreated:
					completed++
				// Refused while the first runs (409), after it emptied the
				// cart (400), or failed at the cart step (409 FAILED).
				case a.status != http.StatusConflict && a.status != http.StatusBadRequest:
					t.Fatalf("request %d: %d %s", i, a.status, a.body)
				}
			}
			pays, err := e.pay.ListPayments(ctx, payment.Filter{CustomerID: cus})
			must(t, err)
			if completed != 1 || pays.Total != 1 {
				t.Fatalf("%d checkouts completed and %d payments for one cart", completed, pays.Total)
			}
			if s := e.stock(bowl); s.OnHand != 3 || s.Reserved != 0 {
				t.Fatalf("stock: %+v", s)
			}
		})

		t.Run("cancel order", func(t *testing.T) {
			lamp := e.addProduct("LAMP-1", 4500, 5)
			lines := []line{{lamp, 2}}
			cus := testkit.ID("cus")
			var res CheckoutResult
			e.checkoutHTTP(t, request(e.fillCart(lines...), cus, "tok_visa"), cus, "").JSON(t, http.StatusCreated, &res)
			want := expectedTotal(t, lines...)
			if s := e.stock(lamp); s.OnHand != 3 {
				t.Fatalf("stock after checkout: %+v", s)
			}
			path := "/api/v1/orders/" + res.OrderID + "/cancel"
			e.h.Call(t, http.MethodPost, path, nil, e.bearer("cus-intruder")...).Problem(t, http.StatusForbidden)
			var c CancelResult
			e.h.Call(t, http.MethodPost, path, nil, e.bearer(cus)...).JSON(t, http.StatusOK, &c)
			if c.Status != StateCompleted || c.OrderID != res.OrderID || c.RefundedCents != want {
				t.Fatalf("cancel: %+v", c)
			}
			o, err := e.orders.GetOrder(ctx, res.OrderID)
			must(t, err)
			p, err := e.pay.GetPaymentByTransaction(ctx, res.SagaID)
			must(t, err)
			if o.Status != order.StatusCancelled || o.CancelledAt == nil || p.Status != payment.StatusRefunded || p.RefundedCents != want {
				t.Fatalf("after cancel: order %s, payment %+v", o.Status, p)
			}
			if s := e.stock(lamp); s.OnHand != 5 || s.Reserved != 0 {
				t.Fatalf("stock after cancel: %+v", s)
			}
			// Twice: the same cancellation, nothing moves again.
			var again CancelResult
			e.h.Call(t, http.MethodPost, path, nil, "X-API-Key", e.h.Keys.Manager).JSON(t, http.StatusOK, &again)
			if again.SagaID != c.SagaID {
				t.Fatalf("second cancel ran saga %s, first %s", again.SagaID, c.SagaID)
			}
			refunds, err := e.pay.ListRefunds(ctx, p.ID, page.Request{})
			must(t, err)
			if s := e.stock(lamp); s.OnHand != 5 || refunds.Total != 1 {
				t.Fatalf("cancelling twice: stock %+v, %d refunds", s, refunds.Total)
			}
			sg, err := e.saga.GetSaga(ctx, c.SagaID)
			must(t, err)
			if sg.Kind != KindCancel || !equal(stepNames(sg.Steps), []string{StepCancelOrder, StepRefundOrder, StepRestock}) {
				t.Fatalf("cancel saga %s steps %v", sg.Kind, stepNames(sg.Steps))
			}

			// A shipped order cannot be cancelled: 409, and no saga.
			var shipped CheckoutResult
			e.checkoutHTTP(t, request(e.fillCart(lines...), cus, "tok_visa"), cus, "").JSON(t, http.StatusCreated, &shipped)
			e.h.Call(t, http.MethodPut, "/api/v1/orders/"+shipped.OrderID+"/status", map[string]string{"status": "shipped"},
				"X-API-Key", e.h.Keys.Manager).JSON(t, http.StatusOK, nil)
			e.h.Call(t, http.MethodPost, "/api/v1/orders/"+shipped.OrderID+"/cancel", nil, e.bearer(cus)...).Problem(t, http.StatusConflict)
			if res, err := e.saga.ListSagas(ctx, Filter{Kind: KindCancel, OrderID: shipped.OrderID}); err != nil || res.Total != 0 {
				t.Fatalf("a refused cancellation started a saga: %d %v", res.Total, err)
			}
			e.h.Call(t, http.MethodPost, "/api/v1/orders/ord_missing/cancel", nil, "X-API-Key", e.h.Keys.Manager).Problem(t, http.StatusNotFound)
			e.checkStockInvariant()
			e.checkMoneyInvariant()
		})

		t.Run("bad input starts nothing", func(t *testing.T) {
			sagaCount := func() int64 {
				var n int64
				must(t, e.sagaDB.Model(&sagaRow{}).Count(&n).Error)
				return n
			}
			before := sagaCount()
			soap := e.addProduct("SOAP-1", 350, 5)
			cus := testkit.ID("cus")
			empty := e.fillCart(line{soap, 1})
			_, err := e.carts.RemoveItem(ctx, empty, soap.ID)
			must(t, err)
			full := e.fillCart(line{soap, 1})
			theirs := e.fillCart(line{soap, 1})
			_, err = e.carts.AttachCustomer(ctx, theirs, "cus-someone-else")
			must(t, err)
			// The cart itself refuses impossible quantities.
			never := testkit.ID("session-0000")
			for _, q := range []int{0, 1000, -1} {
				e.h.Call(t, http.MethodPost, "/api/v1/carts/"+never+"/items", cart.NewItem{ProductID: soap.ID, Quantity: q}).
					Problem(t, http.StatusBadRequest)
			}
			withAddress := func(edit func(a *order.ShippingAddress)) CheckoutRequest {
				r := request(full, cus, "tok_visa")
				edit(&r.ShippingAddress)
				return r
			}
			noAddress := map[string]any{"session_id": full, "customer_id": cus, "payment": map[string]string{"method": "card", "token": "tok_visa"}}
			cash := request(full, cus, "tok_visa")
			cash.Payment.Method = "cash"
			badLocation := request(full, cus, "tok_visa")
			badLocation.LocationID = "loc_nowhere"
			cases := []struct {
				name   string
				body   any
				as     string
				status int
				field  string
			}{
				{"empty cart", request(empty, cus, "tok_visa"), cus, http.StatusBadRequest, "session_id"},
				{"cart never made (quantities refused)", request(never, cus, "tok_visa"), cus, http.StatusBadRequest, "session_id"},
				{"unknown session", request(testkit.ID("session-unknown"), cus, "tok_visa"), cus, http.StatusBadRequest, "session_id"},
				{"missing address", noAddress, cus, http.StatusBadRequest, "shipping_address"},
				{"unknown province", withAddress(func(a *order.ShippingAddress) { a.Province = "ZZ" }), cus, http.StatusBadRequest, "shipping_address.province"},
				{"bad postal code", withAddress(func(a *order.ShippingAddress) { a.PostalCode = "902101" }), cus, http.StatusBadRequest, "shipping_address.postal_code"},
				{"blank city", withAddress(func(a *order.ShippingAddress) { a.City = "  " }), cus, http.StatusBadRequest, "shipping_address.city"},
				{"unknown payment method", cash, cus, http.StatusBadRequest, "payment.method"},
				{"unknown location", badLocation, cus, http.StatusBadRequest, "location_id"},
				{"checkout for another customer", request(full, "cus-victim", "tok_visa"), cus, http.StatusForbidden, ""},
				{"someone else's cart", request(theirs, cus, "tok_visa"), cus, http.StatusForbidden, ""},
				{"malformed body", `{"session_id":`, cus, http.StatusBadRequest, ""},
			}
			for _, c := range cases {
				p := e.checkoutHTTP(t, c.body, c.as, testkit.ID("key")).Problem(t, c.status)
				if c.field != "" && !testkit.HasField(p, c.field) {
					t.Errorf("%s: problem does not name %s: %+v", c.name, c.field, p)
				}
			}
			e.h.Call(t, http.MethodPost, "/api/v1/checkout", request(full, cus, "tok_visa")).Problem(t, http.StatusUnauthorized)
			e.h.Call(t, http.MethodPost, "/api/v1/checkout", request(full, cus, "tok_visa"), "X-API-Key", e.h.Keys.Cashier).
				Problem(t, http.StatusForbidden)
			if after := sagaCount(); after != before {
				t.Fatalf("bad input started %d sagas", after-before)
			}
			if s := e.stock(soap); s.OnHand != 5 || s.Reserved != 0 {
				t.Fatalf("bad input moved stock: %+v", s)
			}
			// The staff view of sagas: managers list, cashiers may not.
			var list struct {
				Data []Saga `json:"data"`
			}
			e.h.Call(t, http.MethodGet, "/api/v1/sagas?status=FAILED", nil, "X-API-Key", e.h.Keys.Agent).JSON(t, http.StatusOK, &list)
			for _, s := range list.Data {
				if s.Status != StateFailed {
					t.Fatalf("status filter returned %s", s.Status)
				}
			}
			e.h.Call(t, http.MethodGet, "/api/v1/sagas", nil, "X-API-Key", e.h.Keys.Cashier).Problem(t, http.StatusForbidden)
			e.h.Call(t, http.MethodGet, "/api/v1/sagas", nil, e.bearer(cus)...).Problem(t, http.StatusForbidden)
			e.h.Call(t, http.MethodGet, "/api/v1/sagas?status=LOST", nil, "X-API-Key", e.h.Keys.Manager).Problem(t, http.StatusBadRequest)
		})
	})
}

// TestLastUnit races 50 checkouts (different carts, different keys) for
// one unit in stock: exactly one completes, the others fail with 409 and
// are charged nothing.
func TestLastUnit(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		e := newEnv(t, b, Options{})
		ctx := context.Background()
		rare := e.addProduct("RARE-1", 12000, 1)
		const n = 50
		type buyer struct{ cus, session string }
		buyers := make([]buyer, n)
		for i := range buyers {
			buyers[i] = buyer{testkit.ID("cus"), e.fillCart(line{rare, 1})}
		}
		answers := make([]rawResponse, n)
		var wg sync.WaitGroup
		for i, by := range buyers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i] = e.post("/api/v1/checkout", request(by.session, by.cus, "tok_visa"),
					append(e.bearer(by.cus), "Idempotency-Key", testkit.ID("key"))...)
			}()
		}
		wg.Wait()
		completed := 0
		for i, a := range answers {
			switch {
			case a.err != nil:
				t.Fatalf("checkout %d: %v", i, a.err)
			case a.status == http.StatusCreated:
				completed++
			case a.status == http.StatusConflict:
				var fb failedBody
				if err := json.Unmarshal(a.body, &fb); err != nil || fb.SagaStatus != StateFailed || fb.FailedStep != "stock" {
					t.Fatalf("checkout %d: %s", i, a.body)
				}
			default:
				t.Fatalf("checkout %d: %d %s", i, a.status, a.body)
			}
		}
		if completed != 1 {
			t.Fatalf("%d checkouts completed for one unit", completed)
		}
		sum, err := e.pay.Summary(ctx, "")
		must(t, err)
		want := expectedTotal(t, line{rare, 1})
		if sum.CapturedCents != want || sum.Payments[payment.StatusCaptured] != 1 || e.sim.Stats().ChargeCalls != 1 {
			t.Fatalf("payments: %+v, %d processor calls; want one charge of %d", sum, e.sim.Stats().ChargeCalls, want)
		}
		if s := e.stock(rare); s.OnHand != 0 || s.Reserved != 0 || s.Available != 0 {
			t.Fatalf("stock: %+v", s)
		}
		e.checkStockInvariant()
		e.checkMoneyInvariant()
	})
}

// rawResponse is an HTTP answer read off the test goroutine (testkit's
// Call may only fail the test from it).
type rawResponse struct {
	status int
	body   []byte
	err    error
}

func (e *env) post(path string, body any, headers ...string) rawResponse {
	raw, err := json.Marshal(body)
	if err != nil {
		return rawResponse{err: err}
	}
	req, err := http.NewRequest(http.MethodPost, e.h.URL+path, bytes.NewReader(raw))
	if err != nil {
		return rawResponse{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return rawResponse{err: err}
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, body: out, err: err}
}

// rerunCompensations runs every compensation a failed saga ran once more,
// from its persisted state, as a resumed orchestrator repeating them would.
func (e *env) rerunCompensations(id string) {
	e.t.Helper()
	ctx := context.Background()
	row, err := e.saga.store.load(ctx, id)
	must(e.t, err)
	rows, err := e.saga.store.steps(ctx, id)
	must(e.t, err)
	steps := map[string]stepRow{}
	for _, s := range rows {
		steps[s.Step] = s
	}
	var data sagaData
	must(e.t, json.Unmarshal([]byte(row.Data), &data))
	ran := 0
	for _, s := range rows {
		if !s.Compensation {
			continue
		}
		_, call := compensations[s.Step].prepare(&execution{o: e.saga, row: row, data: data, steps: steps})
		if _, err := call(ctx); err != nil {
			e.t.Fatalf("compensation %s again: %v", s.Step, err)
		}
		ran++
	}
	if ran == 0 {
		e.t.Fatal("no compensation to run again")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	must(t, err)
	return raw
}

// counter reads a counter's value.
func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
