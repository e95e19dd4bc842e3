package saga

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/retailco/pos/internal/cart"
	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/payment"
	"github.com/retailco/pos/internal/platform/errs"
)

// sagaData is the kind-specific part of a saga, kept as JSON in
// sagas.data: what the steps need and must not recompute on a retry.
type sagaData struct {
	// Checkout is the checkout request, without its payment token (kept
	// in its own column until the charge is settled, then erased).
	Checkout *CheckoutRequest `json:"checkout,omitempty"`
	// Quote is the cart as the cart step priced it: exactly what is
	// reserved, charged and ordered, however often a step is retried.
	Quote *cart.Quote `json:"quote,omitempty"`
	// Order is the order a cancellation cancels, as it was when the
	// cancellation began.
	Order *order.Order `json:"order,omitempty"`
	// RequestID is the X-Request-ID of the request that started the saga.
	RequestID string `json:"request_id,omitempty"`
}

// execution is what a step sees of its saga when it prepares an attempt.
type execution struct {
	o     *Orchestrator
	row   sagaRow
	data  sagaData
	steps map[string]stepRow
}

// result is a successful call: its response, recorded with the step, and
// what the saga keeps of it.
type result struct {
	response any
	apply    func(row *sagaRow, data *sagaData)
}

// stepDef is one step of a flow.
type stepDef struct {
	name string
	// stage is the failed_step a failure of this step reports: cart,
	// stock, payment or order.
	stage string
	// dep is the downstream called (its circuit breaker).
	dep string
	// from is the state a forward step runs in, to the state its success
	// leads to ("" stays), failState the state its failure records (""
	// none: straight to compensation).
	from, to, failState string
	// mustFinish marks steps past the point of no return: retried until
	// they succeed.
	mustFinish bool
	// settles marks a step whose unknown outcomes (Unavailable, Timeout)
	// are retried for Options.SettleBudget rather than MaxAttempts times.
	settles bool
	// undo names the compensation of a forward step.
	undo string
	// compensation marks compensating steps; state is the state they run
	// in. Compensations always retry until they succeed.
	compensation bool
	state        string
	// prepare builds the attempt: the request recorded before the call,
	// and the call itself.
	prepare func(x *execution) (request any, call func(ctx context.Context) (result, error))
}

// flow is the ordered forward steps of one kind of saga.
type flow struct{ steps []*stepDef }

func flowOf(kind string) flow {
	if kind == KindCancel {
		return cancelFlow
	}
	return checkoutFlow
}

// next is the forward step to run in state: the first of the state's
// steps that has not succeeded (after ORDER_CONFIRMED two steps share the
// state).
func (f flow) next(state string, steps map[string]stepRow) *stepDef {
	for _, s := range f.steps {
		if s.from == state && steps[s.name].Status != StepSucceeded {
			return s
		}
	}
	return nil
}

// nextCompensation is the next compensation to run: the newest started
// step with an undo that has not succeeded yet. A step is compensated when
// it started at all, whatever its outcome: a step that failed on a
// timeout may still have had its effect, and every compensation is safe
// when there is nothing to undo.
func (f flow) nextCompensation(steps map[string]stepRow) *stepDef {
	for i := len(f.steps) - 1; i >= 0; i-- {
		s := f.steps[i]
		if s.undo == "" {
			continue
		}
		if _, started := steps[s.name]; !started {
			continue
		}
		if steps[s.undo].Status == StepSucceeded {
			continue
		}
		return compensations[s.undo]
	}
	return nil
}

var (
	checkoutFlow = flow{steps: []*stepDef{
		{name: StepValidateCart, stage: "cart", dep: depCart, from: StatePending, to: StateCartValidated,
			failState: StateCartFailed, prepare: validateCart},
		{name: StepReserveStock, stage: "stock", dep: depInventory, from: StateCartValidated, to: StateStockReserved,
			failState: StateStockFailed, undo: StepReleaseStock, prepare: reserveStock},
		{name: StepChargePayment, stage: "payment", dep: depPayment, from: StateStockReserved, to: StatePaymentProcessed,
			failState: StatePaymentFailed, undo: StepRefundPayment, settles: true, prepare: chargePayment},
		{name: StepCreateOrder, stage: "order", dep: depOrder, from: StatePaymentProcessed, to: StateOrderConfirmed,
			undo: StepVoidOrder, prepare: createOrder},
		{name: StepCommitStock, stage: "stock", dep: depInventory, from: StateOrderConfirmed, mustFinish: true,
			prepare: commitStock},
		{name: StepClearCart, stage: "cart", dep: depCart, from: StateOrderConfirmed, to: StateCompleted,
			mustFinish: true, prepare: clearCart},
	}}
	cancelFlow = flow{steps: []*stepDef{
		{name: StepCancelOrder, stage: "order", dep: depOrder, from: StatePending, to: StateOrderCancelled,
			prepare: cancelOrder},
		{name: StepRefundOrder, stage: "payment", dep: depPayment, from: StateOrderCancelled, to: StatePaymentRefunded,
			mustFinish: true, prepare: refundOrder},
		{name: StepRestock, stage: "stock", dep: depInventory, from: StatePaymentRefunded, to: StateCompleted,
			mustFinish: true, prepare: restock},
	}}
	compensations = map[string]*stepDef{
		StepVoidOrder: {name: StepVoidOrder, stage: "order", dep: depOrder, compensation: true,
			state: StateCompensatingPay, prepare: voidOrder},
		StepRefundPayment: {name: StepRefundPayment, stage: "payment", dep: depPayment, compensation: true,
			state: StateCompensatingPay, prepare: refundPayment},
		StepReleaseStock: {name: StepReleaseStock, stage: "stock", dep: depInventory, compensation: true,
			state: StateCompensatingStock, prepare: releaseStock},
	}
)

// Checkout steps.

type cartRequest struct {
	SessionID  string `json:"session_id"`
	CustomerID string `json:"customer_id"`
	Province   string `json:"province"`
}

// validateCart makes the cart the buyer's and prices it for the shipping
// province; that price is the one reserved, charged and ordered. A new
// checkout runs this step before its saga is written
// (Orchestrator.validateCartUpfront) and is born CART_VALIDATED; the
// driver runs it only for a saga an earlier version of this code wrote
// PENDING, when it resumes one.
func validateCart(x *execution) (any, func(context.Context) (result, error)) {
	req := cartRequest{SessionID: x.row.SessionID, CustomerID: x.row.CustomerID, Province: x.data.Checkout.ShippingAddress.Province}
	return req, func(ctx context.Context) (result, error) {
		carts := x.o.deps.Carts
		if _, err := carts.AttachCustomer(ctx, req.SessionID, req.CustomerID); err != nil {
			return result{}, cartGone(err)
		}
		q, err := carts.Calculate(ctx, req.SessionID, req.Province)
		if err != nil {
			return result{}, cartGone(err)
		}
		switch {
		case len(q.Lines) == 0:
			return result{}, fmt.Errorf("the cart was emptied before checkout: %w", errs.Conflict)
		case q.TotalCents <= 0 || q.TotalCents > MaxTotalCents:
			return result{}, fmt.Errorf("the cart's total %d cannot be charged: %w", q.TotalCents, errs.Conflict)
		}
		return result{response: q, apply: func(row *sagaRow, data *sagaData) {
			data.Quote = &q
			row.TotalCents, row.Currency = q.TotalCents, q.Currency
		}}, nil
	}
}

// cartGone turns "no such cart" into what it means mid-checkout: the cart
// changed under the saga (expired, cleared) — a conflict, not a 404.
func cartGone(err error) error {
	if errs.IsKind(err, errs.NotFound) {
		return fmt.Errorf("the cart is gone (expired or cleared) before checkout: %w", errs.Conflict)
	}
	return err
}

func reservationItems(x *execution) []inventory.ReservationItem {
	items := make([]inventory.ReservationItem, len(x.data.Quote.Lines))
	for i, l := range x.data.Quote.Lines {
		items[i] = inventory.ReservationItem{ProductID: l.ProductID, LocationID: x.row.LocationID, Quantity: int64(l.Quantity)}
	}
	return items
}

func (o *Orchestrator) ttlSeconds() int { return int(o.opts.ReservationTTL.Seconds()) }

// reserveStock holds the stock of every line, all or nothing, under the
// saga's id.
func reserveStock(x *execution) (any, func(context.Context) (result, error)) {
	req := inventory.NewReservation{ReservationID: x.row.ReservationID, Items: reservationItems(x), TTLSeconds: x.o.ttlSeconds()}
	return req, func(ctx context.Context) (result, error) {
		r, err := x.o.deps.Inventory.Reserve(ctx, req)
		if err != nil {
			return result{}, err
		}
		return result{response: r}, nil
	}
}

// chargeRequest is the charge of a checkout: the same body on every
// attempt and every resume, so the payment context recognises a repeat.
func chargeRequest(x *execution) payment.NewPayment {
	return payment.NewPayment{
		TransactionID: x.row.ID, AmountCents: x.row.TotalCents, Currency: x.row.Currency,
		Method: x.data.Checkout.Payment.Method, Token: x.row.PaymentToken, CustomerID: x.row.CustomerID,
	}
}

// redacted is a charge as recorded: the token never reaches the steps.
func redacted(p payment.NewPayment) payment.NewPayment {
	p.Token = "[redacted]"
	return p
}

// chargePayment takes the total, once, under the saga's id.
func chargePayment(x *execution) (any, func(context.Context) (result, error)) {
	req := chargeRequest(x)
	return redacted(req), func(ctx context.Context) (result, error) {
		out, err := x.o.deps.Payments.Charge(ctx, req)
		if err != nil {
			return result{}, err
		}
		return result{response: out.Payment, apply: func(row *sagaRow, _ *sagaData) {
			row.PaymentID = out.ID
			row.PaymentToken = "" // settled: never needed again
		}}, nil
	}
}

// createOrder records the paid order, confirmed, keyed by the saga id.
func createOrder(x *execution) (any, func(context.Context) (result, error)) {
	q := x.data.Quote
	lines := make([]order.OrderLine, len(q.Lines))
	for i, l := range q.Lines {
		lines[i] = order.OrderLine{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, UnitPriceCents: l.UnitPriceCents,
			Quantity: l.Quantity, LineTotalCents: l.LineTotalCents}
	}
	req := order.NewOrder{
		SagaID: x.row.ID, CustomerID: x.row.CustomerID, LocationID: x.row.LocationID, PaymentID: x.row.PaymentID,
		ReservationID: x.row.ReservationID, Lines: lines, ShippingAddress: x.data.Checkout.ShippingAddress,
		SubtotalCents: q.SubtotalCents, Taxes: q.Taxes, TaxCents: q.TaxCents, TotalCents: q.TotalCents, Currency: q.Currency,
	}
	return req, func(ctx context.Context) (result, error) {
		o, err := x.o.deps.Orders.CreateOrder(ctx, req)
		if err != nil {
			return result{}, err
		}
		return result{response: o, apply: func(row *sagaRow, _ *sagaData) { row.OrderID = o.ID }}, nil
	}
}

type commitResponse struct {
	ReservationID string                `json:"reservation_id"`
	Reservation   inventory.Reservation `json:"reservation"`
	// Expired lists the reservations that had expired and were replaced.
	Expired []string `json:"expired,omitempty"`
}

// maxReReserve bounds the replacements of expired reservations within one
// attempt; more would mean the TTL is absurdly short.
const maxReReserve = 3

// commitStock makes the reserved stock leave. A reservation that expired
// meanwhile (Gone) is replaced: the same items reserved under the next
// derived id, then committed. The next id derives from the current one,
// so an attempt interrupted half-way repeats the same calls.
func commitStock(x *execution) (any, func(context.Context) (result, error)) {
	type commitRequest struct {
		ReservationID string `json:"reservation_id"`
	}
	req := commitRequest{ReservationID: x.row.ReservationID}
	return req, func(ctx context.Context) (result, error) {
		inv := x.o.deps.Inventory
		id := req.ReservationID
		var expired []string
		for range maxReReserve + 1 {
			r, err := inv.CommitReservation(ctx, id)
			if err == nil {
				return result{
					response: commitResponse{ReservationID: id, Reservation: r, Expired: expired},
					apply:    func(row *sagaRow, _ *sagaData) { row.ReservationID = id },
				}, nil
			}
			if !errs.IsKind(err, errs.Gone) {
				return result{}, err
			}
			x.o.metrics.errorOf(StepCommitStock, "reservation_expired")
			x.o.log.Warn("reservation expired before commit; reserving again", "saga_id", x.row.ID, "reservation_id", id)
			expired = append(expired, id)
			id = nextReservationID(x.row.ID, id)
			if _, err := inv.Reserve(ctx, inventory.NewReservation{ReservationID: id, Items: reservationItems(x), TTLSeconds: x.o.ttlSeconds()}); err != nil {
				return result{}, fmt.Errorf("reserve again after reservation %s expired: %w", expired[len(expired)-1], err)
			}
		}
		return result{}, fmt.Errorf("reservations of saga %s keep expiring before commit: %w", x.row.ID, errs.Gone)
	}
}

// nextReservationID derives the replacement of an expired reservation:
// the saga id, then saga id + ":r1", ":r2", …
func nextReservationID(sagaID, current string) string {
	n := 0
	if rest, ok := strings.CutPrefix(current, sagaID+":r"); ok {
		n, _ = strconv.Atoi(rest)
	}
	return sagaID + ":r" + strconv.Itoa(n+1)
}

// clearCart empties the cart bought; Clear is idempotent.
func clearCart(x *execution) (any, func(context.Context) (result, error)) {
	req := struct {
		SessionID string `json:"session_id"`
	}{x.row.SessionID}
	return req, func(ctx context.Context) (result, error) {
		if err := x.o.deps.Carts.Clear(ctx, req.SessionID); err != nil {
			return result{}, err
		}
		return result{response: map[string]bool{"cleared": true}}, nil
	}
}

// Checkout compensations.

// voidOrder cancels the saga's order if the order step made one before
// failing (a timeout that hid a success): an order must never stand
// confirmed without its money.
func voidOrder(x *execution) (any, func(context.Context) (result, error)) {
	req := struct {
		SagaID string `json:"saga_id"`
	}{x.row.ID}
	return req, func(ctx context.Context) (result, error) {
		orders := x.o.deps.Orders
		found, err := orders.ListOrders(ctx, order.Filter{SagaID: req.SagaID})
		if err != nil {
			return result{}, err
		}
		if len(found.Items) == 0 {
			return result{response: map[string]any{"voided": false, "reason": "no order was made"}}, nil
		}
		o, err := orders.MarkCancelled(ctx, found.Items[0].ID)
		if err != nil {
			return result{}, err
		}
		return result{response: map[string]any{"voided": true, "order_id": o.ID, "status": o.Status}}, nil
	}
}

type refundResponse struct {
	Refunded      bool           `json:"refunded"`
	Reason        string         `json:"reason,omitempty"`
	PaymentStatus payment.Status `json:"payment_status,omitempty"`
	Refund        any            `json:"refund,omitempty"`
}

// refundPayment gives back what the saga's charge took. It first learns
// what the charge did: a payment still pending, or none found after an
// attempt whose outcome is unknown (a timeout, a crash mid-call), is
// settled by asking again with the same transaction id — the payment
// context answers the charge already made, or makes it now, to be
// refunded at once; either way the books end at zero and nothing is
// charged twice.
func refundPayment(x *execution) (any, func(context.Context) (result, error)) {
	req := struct {
		TransactionID string `json:"transaction_id"`
		RefundID      string `json:"refund_id"`
	}{x.row.ID, x.row.ID + ":refund"}
	charge := chargeRequest(x)
	uncertain := chargeUncertain(x.steps[StepChargePayment])
	reason := fmt.Sprintf("checkout %s failed at %s", x.row.ID, x.row.FailedStep)
	return req, func(ctx context.Context) (result, error) {
		pay := x.o.deps.Payments
		p, err := pay.GetPaymentByTransaction(ctx, req.TransactionID)
		notFound := errs.IsKind(err, errs.NotFound)
		if err != nil && !notFound {
			return result{}, err
		}
		if (notFound && uncertain) || (!notFound && p.Status == payment.StatusPending) {
			if charge.Token == "" {
				return result{}, fmt.Errorf("payment of saga %s is unsettled and its token is gone: %w", x.row.ID, errs.Conflict)
			}
			out, err := pay.Charge(ctx, charge)
			switch {
			case err == nil:
				p, notFound = out.Payment, false
			case transient(kindOf(err)) && !errs.IsKind(err, errs.BadGateway):
				return result{}, err // still in flight: ask again later
			default:
				// Declined or failed at the gateway: nothing was captured.
				return result{response: refundResponse{Reason: "the charge took nothing: " + clip(err.Error())}}, nil
			}
		}
		if notFound {
			return result{response: refundResponse{Reason: "no charge was made"}}, nil
		}
		if !p.Status.Captured() {
			return result{response: refundResponse{Reason: "nothing was captured", PaymentStatus: p.Status}}, nil
		}
		out, err := pay.Refund(ctx, p.ID, payment.NewRefund{RefundID: req.RefundID, AmountCents: p.AmountCents, Reason: reason})
		if err != nil {
			return result{}, err
		}
		return result{response: refundResponse{Refunded: true, PaymentStatus: p.Status, Refund: out.Refund}}, nil
	}
}

// chargeUncertain tells whether the charge step may have taken money
// without the saga learning it: its last attempt did not end in a clear
// answer (a decline, a refusal, a gateway failure the payment context
// recorded).
func chargeUncertain(st stepRow) bool {
	if st.Status == StepRunning {
		return true // interrupted mid-call
	}
	switch st.ErrorKind {
	case errs.PaymentRequired.Name(), errs.Invalid.Name(), errs.Conflict.Name(), errs.Unprocessable.Name(), errs.BadGateway.Name():
		return false
	}
	return st.Status == StepFailed
}

// releaseStock gives the reserved stock back. Releasing is idempotent; a
// reservation never made (the reserve failed) has nothing to give back.
func releaseStock(x *execution) (any, func(context.Context) (result, error)) {
	req := struct {
		ReservationID string `json:"reservation_id"`
	}{x.row.ReservationID}
	return req, func(ctx context.Context) (result, error) {
		r, err := x.o.deps.Inventory.ReleaseReservation(ctx, req.ReservationID)
		if errs.IsKind(err, errs.NotFound) {
			return result{response: map[string]any{"released": false, "reason": "nothing was reserved"}}, nil
		}
		if err != nil {
			return result{}, err
		}
		return result{response: map[string]any{"released": true, "reservation": r}}, nil
	}
}

// Cancellation steps.

// cancelOrder marks the order cancelled; it is refused (and the
// cancellation fails, having changed nothing) when the order shipped.
func cancelOrder(x *execution) (any, func(context.Context) (result, error)) {
	req := struct {
		OrderID string `json:"order_id"`
	}{x.row.OrderID}
	return req, func(ctx context.Context) (result, error) {
		o, err := x.o.deps.Orders.MarkCancelled(ctx, req.OrderID)
		if err != nil {
			return result{}, err
		}
		return result{response: map[string]any{"order_id": o.ID, "status": o.Status, "cancelled_at": o.CancelledAt}}, nil
	}
}

// refundOrder gives the order's total back, keyed by the order id.
func refundOrder(x *execution) (any, func(context.Context) (result, error)) {
	ord := x.data.Order
	req := payment.NewRefund{RefundID: ord.ID + ":cancel", AmountCents: ord.TotalCents, Reason: "order " + ord.ID + " cancelled"}
	return req, func(ctx context.Context) (result, error) {
		if ord.PaymentID == "" {
			return result{response: refundResponse{Reason: "the order was never paid"}}, nil
		}
		out, err := x.o.deps.Payments.Refund(ctx, ord.PaymentID, req)
		if err != nil {
			return result{}, err
		}
		return result{response: refundResponse{Refunded: true, Refund: out.Refund}}, nil
	}
}

// restock returns each line's units to the order's location, one
// adjustment per line keyed by the order id and line number, so a repeat
// adds nothing.
func restock(x *execution) (any, func(context.Context) (result, error)) {
	ord := x.data.Order
	adjustments := make([]inventory.Adjustment, len(ord.Lines))
	for i, l := range ord.Lines {
		adjustments[i] = inventory.Adjustment{
			AdjustmentID: fmt.Sprintf("%s:return:%d", ord.ID, i+1), ProductID: l.ProductID, LocationID: ord.LocationID,
			Delta: int64(l.Quantity), Reason: inventory.ReasonReturn, Note: "order " + ord.ID + " cancelled",
		}
	}
	return adjustments, func(ctx context.Context) (result, error) {
		levels := make([]inventory.StockLevel, 0, len(adjustments))
		for _, a := range adjustments {
			lvl, err := x.o.deps.Inventory.Adjust(ctx, a)
			if err != nil {
				return result{}, fmt.Errorf("restock %s: %w", a.AdjustmentID, err)
			}
			levels = append(levels, lvl)
		}
		return result{response: levels}, nil
	}
}
