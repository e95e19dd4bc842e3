// Package saga orchestrates the web checkout (POST /checkout) and the
// cancellation of a confirmed order (POST /orders/{id}/cancel): the
// distributed transactions that span the cart, inventory, payment and
// order contexts.
//
// A saga is persisted before anything happens and after every step, in
// the saga context's own database (tables sagas and saga_steps): each
// downstream call is written down before it is made (its request and
// attempt count) and after it returns (its response or error, its
// timing), so a process may die at any point and the next one continues
// where it stopped (Resume). On the way forward one write does both: a
// step's outcome and the next step's first attempt are recorded together
// (the first step's with the saga itself). Two more writes are saved
// where nothing could ever need them: the cart is validated before the
// saga is written, which is then born CART_VALIDATED with that step done
// (until the insert commits there is nothing to resume); and a step that
// must finish and has nothing to undo (commit_stock, refund_order) has
// its success written with the next step's outcome, so a crash in between
// repeats it. An approved checkout costs five saga writes, not twelve; on
// PostgreSQL each is a single statement. Every call carries an idempotency key derived
// from the saga (reservation_id = saga id, transaction_id = saga id, the
// order keyed by saga id, refund_id = saga id + ":refund"), so repeating
// the call a crash interrupted is harmless: the downstream answers what it
// did the first time.
//
// The checkout goes PENDING → CART_VALIDATED → STOCK_RESERVED →
// PAYMENT_PROCESSED → ORDER_CONFIRMED → COMPLETED. A step that fails
// records its failure state (CART_VALIDATION_FAILED,
// STOCK_RESERVATION_FAILED, PAYMENT_FAILED; the order step has none of its
// own and goes straight to compensation), then the steps already started
// are compensated newest first: COMPENSATING_PAYMENT (void the order if
// one was made, refund the payment if money was taken) →
// COMPENSATING_STOCK (release the reservation) → COMPENSATED → FAILED.
// This fixes the original system, whose failures after payment ended
// FAILED with the money kept.
//
// Transient errors (unavailable, timeout, rate limited, a downstream's
// 500 or a gateway's 502) are retried with exponential backoff, at most
// Options.MaxAttempts times; a decline, missing stock or invalid input
// never is. A charge whose outcome is unknown (the payment context did not
// answer, or is still processing an earlier attempt) is asked about again
// for Options.SettleBudget instead: failing then would only force the
// compensation to settle the charge in order to refund it.
//
// Once the order is confirmed the saga cannot fail any more: committing
// the reservation and clearing the cart are retried until they succeed
// (forward recovery). If the reservation expired in between (inventory
// answers Gone), the stock is reserved again under a derived id (saga id +
// ":r1", ":r2", …, derived from the id the saga holds, so a crash in the
// middle repeats the same calls) and committed; the expiry is counted in
// saga_errors_total{error_type="reservation_expired"}. Should that stock
// be gone too, the commit keeps retrying (with an error counted each time)
// until someone restocks: the order is paid and must be served, and an
// operator is the one to decide otherwise.
//
// Two orchestrators never drive one saga: the one driving holds a lease
// (owner, lease_until) renewed by every write, and every write is
// conditional on the saga's version and owner; a process that lost its
// lease stops at its next write. Only an expired lease (its owner died)
// or the same owner restarting lets another take a saga over.
package saga

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"time"

	"github.com/retailco/pos/internal/cart"
	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/payment"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
)

// Name is the context's name: its database, its metrics label, its
// --only value.
const Name = "saga"

// Migrations is the context's versioned schema.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Kinds of saga.
const (
	// KindCheckout turns a cart into a paid, confirmed order.
	KindCheckout = "checkout"
	// KindCancel cancels a confirmed order, refunds it and restocks it.
	KindCancel = "cancel"
)

// Checkout states, as in the original system (DESIGN.md).
const (
	StatePending           = "PENDING"
	StateCartValidated     = "CART_VALIDATED"
	StateStockReserved     = "STOCK_RESERVED"
	StatePaymentProcessed  = "PAYMENT_PROCESSED"
	StateOrderConfirmed    = "ORDER_CONFIRMED"
	StateCompleted         = "COMPLETED"
	StateCartFailed        = "CART_VALIDATION_FAILED"
	StateStockFailed       = "STOCK_RESERVATION_FAILED"
	StatePaymentFailed     = "PAYMENT_FAILED"
	StateCompensatingPay   = "COMPENSATING_PAYMENT"
	StateCompensatingStock = "COMPENSATING_STOCK"
	StateCompensated       = "COMPENSATED"
	StateFailed            = "FAILED"
)

// Cancellation states: PENDING → ORDER_CANCELLED → PAYMENT_REFUNDED →
// COMPLETED. Marking the order cancelled comes first: it is the step that
// may be refused (the order shipped meanwhile) and it stops fulfilment
// from shipping goods that are being refunded; refunding and restocking
// after it cannot be refused and are retried until they succeed.
const (
	StateOrderCancelled  = "ORDER_CANCELLED"
	StatePaymentRefunded = "PAYMENT_REFUNDED"
)

// Final tells whether a saga in state s is done: COMPLETED or FAILED.
func Final(s string) bool { return s == StateCompleted || s == StateFailed }

// Step types, the step_type label of the metrics and the names in
// SagaStep.
const (
	StepValidateCart  = "validate_cart"
	StepReserveStock  = "reserve_stock"
	StepChargePayment = "charge_payment"
	StepCreateOrder   = "create_order"
	StepCommitStock   = "commit_stock"
	StepClearCart     = "clear_cart"
	StepVoidOrder     = "void_order"
	StepRefundPayment = "refund_payment"
	StepReleaseStock  = "release_stock"
	StepCancelOrder   = "cancel_order"
	StepRefundOrder   = "refund_order"
	StepRestock       = "restock"
)

// Step statuses.
const (
	// StepRunning: an attempt is in flight, or failed and will be retried.
	StepRunning = "running"
	// StepSucceeded: the call succeeded and its effect is recorded.
	StepSucceeded = "succeeded"
	// StepFailed: the step failed for good; compensation follows.
	StepFailed = "failed"
)

// PaymentDetails says how the customer pays. The token is a processor
// token, never a card number; the saga keeps it only until the charge is
// settled and never shows it.
type PaymentDetails struct {
	Method string `json:"method" enum:"card,gift_card"`
	Token  string `json:"token" minLength:"1" maxLength:"128" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
}

// CheckoutRequest is the body of POST /checkout.
type CheckoutRequest struct {
	SessionID       string                `json:"session_id" minLength:"16" maxLength:"128" pattern:"^[A-Za-z0-9_-]+$" doc:"The cart's session id"`
	CustomerID      string                `json:"customer_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9_-]+$" doc:"The buyer; a customer checks out for themselves only"`
	LocationID      string                `json:"location_id,omitempty" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$" doc:"Where the stock comes from; default the online location"`
	ShippingAddress order.ShippingAddress `json:"shipping_address"`
	Payment         PaymentDetails        `json:"payment"`
}

// CheckoutResult is the answer to a checkout: 201 when COMPLETED, 202
// while the saga still runs (Status is then its current state; GET
// /sagas/{id} follows it).
type CheckoutResult struct {
	SagaID        string `json:"saga_id"`
	Status        string `json:"status" doc:"COMPLETED, or the current state while the saga runs"`
	OrderID       string `json:"order_id,omitempty"`
	TotalCents    int64  `json:"total_cents"`
	Currency      string `json:"currency"`
	PaymentID     string `json:"payment_id,omitempty"`
	ReservationID string `json:"reservation_id,omitempty"`
	FailedStep    string `json:"failed_step,omitempty"`
}

// CancelResult is the answer to POST /orders/{id}/cancel.
type CancelResult struct {
	SagaID        string `json:"saga_id"`
	Status        string `json:"status" doc:"COMPLETED, or the current state while the saga runs"`
	OrderID       string `json:"order_id"`
	RefundedCents int64  `json:"refunded_cents" doc:"What the cancellation gives back (the order's total)"`
	Currency      string `json:"currency"`
	FailedStep    string `json:"failed_step,omitempty"`
}

// FailedError is the error of a saga that ran and ended FAILED (its
// compensations done). It unwraps to the kind of the failure, so
// errors.Is(err, errs.PaymentRequired) holds for a declined card and
// errs.Conflict for missing stock; the HTTP layer turns it into a problem
// document that names the saga and the failed step.
type FailedError struct {
	SagaID     string
	FailedStep string
	Kind       *errs.Kind
	Detail     string
}

// Error describes the failure.
func (e *FailedError) Error() string {
	return fmt.Sprintf("saga %s failed at %s: %s", e.SagaID, e.FailedStep, e.Detail)
}

// Unwrap exposes the kind.
func (e *FailedError) Unwrap() error { return e.Kind }

// Saga is a saga as GET /sagas/{id} shows it: its state, its steps with
// timings and attempts, its compensations and its error.
type Saga struct {
	ID            string     `json:"id"`
	Kind          string     `json:"kind" enum:"checkout,cancel"`
	Status        string     `json:"status"`
	CustomerID    string     `json:"customer_id,omitempty"`
	SessionID     string     `json:"session_id,omitempty"`
	LocationID    string     `json:"location_id,omitempty"`
	ReservationID string     `json:"reservation_id,omitempty"`
	PaymentID     string     `json:"payment_id,omitempty"`
	OrderID       string     `json:"order_id,omitempty"`
	TotalCents    int64      `json:"total_cents"`
	Currency      string     `json:"currency"`
	FailedStep    string     `json:"failed_step,omitempty"`
	Error         string     `json:"error,omitempty"`
	ErrorKind     string     `json:"error_kind,omitempty"`
	Steps         []SagaStep `json:"steps" doc:"Forward steps, in the order they started"`
	Compensations []SagaStep `json:"compensations" doc:"Compensating steps, in the order they ran (newest step undone first)"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	DurationMS    int64      `json:"duration_ms" doc:"From creation to the final state (or to now)"`
}

// SagaStep is one step of a saga: what was asked, what came back, how
// many attempts it took and when.
type SagaStep struct {
	Seq          int             `json:"seq" doc:"Order in which the steps started, compensations included"`
	Step         string          `json:"step"`
	Compensation bool            `json:"compensation"`
	Status       string          `json:"status" enum:"running,succeeded,failed"`
	Attempts     int             `json:"attempts"`
	Request      json.RawMessage `json:"request"`
	Response     json.RawMessage `json:"response,omitempty"`
	Error        string          `json:"error,omitempty"`
	ErrorKind    string          `json:"error_kind,omitempty"`
	StartedAt    time.Time       `json:"started_at"`
	FinishedAt   *time.Time      `json:"finished_at,omitempty"`
	DurationMS   int64           `json:"duration_ms" doc:"From the first attempt to the outcome (or to the last attempt)"`
}

// Filter narrows a saga list. Zero values do not filter.
type Filter struct {
	Status     string
	Kind       string
	CustomerID string
	OrderID    string
	Page       page.Request
}

// Service is the saga context's contract.
type Service interface {
	// Checkout validates the request and the cart synchronously (a bad
	// request starts nothing), then runs a checkout saga and waits for it
	// up to the wait budget: COMPLETED, a *FailedError once FAILED, or the
	// current state while it still runs. With an idempotency key, the same
	// key and body answer the first saga's outcome (waiting for it too);
	// the same key with another body is errs.Unprocessable.
	Checkout(ctx context.Context, idempotencyKey string, in CheckoutRequest) (CheckoutResult, error)
	// CancelOrder cancels a confirmed order, refunds it and restocks it
	// through a cancellation saga. Idempotent: cancelling again answers
	// the same saga. A shipped or delivered order is errs.Conflict.
	CancelOrder(ctx context.Context, orderID string) (CancelResult, error)
	// GetSaga returns one saga with its steps.
	GetSaga(ctx context.Context, id string) (Saga, error)
	// ListSagas returns one page of sagas (without steps), newest first.
	ListSagas(ctx context.Context, f Filter) (page.Result[Saga], error)
}

// The saga's view of its downstreams: only the calls it makes. The
// contexts' Service interfaces and their HTTP Clients satisfy them, so
// the monolith passes the local services and the fleet the Clients.

// Inventory is what the saga needs of the inventory context.
type Inventory interface {
	GetLocation(ctx context.Context, id string) (inventory.Location, error)
	ListLocations(ctx context.Context, f inventory.LocationFilter) (page.Result[inventory.Location], error)
	Reserve(ctx context.Context, in inventory.NewReservation) (inventory.Reservation, error)
	CommitReservation(ctx context.Context, id string) (inventory.Reservation, error)
	ReleaseReservation(ctx context.Context, id string) (inventory.Reservation, error)
	Adjust(ctx context.Context, in inventory.Adjustment) (inventory.StockLevel, error)
}

// Payments is what the saga needs of the payment context.
type Payments interface {
	Charge(ctx context.Context, in payment.NewPayment) (payment.ChargeOutcome, error)
	GetPaymentByTransaction(ctx context.Context, transactionID string) (payment.Payment, error)
	Refund(ctx context.Context, paymentID string, in payment.NewRefund) (payment.RefundOutcome, error)
}

// Orders is what the saga needs of the order context.
type Orders interface {
	CreateOrder(ctx context.Context, in order.NewOrder) (order.Order, error)
	GetOrder(ctx context.Context, id string) (order.Order, error)
	ListOrders(ctx context.Context, f order.Filter) (page.Result[order.Order], error)
	MarkCancelled(ctx context.Context, id string) (order.Order, error)
}

// Carts is what the saga needs of the cart context.
type Carts interface {
	Calculate(ctx context.Context, sessionID, province string) (cart.Quote, error)
	AttachCustomer(ctx context.Context, sessionID, customerID string) (cart.Cart, error)
	Clear(ctx context.Context, sessionID string) error
}

// The Services and Clients of the downstreams satisfy the saga's views.
var (
	_ Inventory = (inventory.Service)(nil)
	_ Inventory = (*inventory.Client)(nil)
	_ Payments  = (payment.Service)(nil)
	_ Payments  = (*payment.Client)(nil)
	_ Orders    = (order.Service)(nil)
	_ Orders    = (*order.Client)(nil)
	_ Carts     = (cart.Service)(nil)
	_ Carts     = (*cart.Client)(nil)
)

// Deps are the downstreams a saga calls.
type Deps struct {
	Inventory Inventory
	Payments  Payments
	Orders    Orders
	Carts     Carts
}
