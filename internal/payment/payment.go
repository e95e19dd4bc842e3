// Package payment takes money and gives it back: it charges a card (or a
// gift card) through a payment Gateway exactly once per transaction id,
// refunds captured payments up to what was captured, and reports the
// totals behind the money invariant of DESIGN.md (captured − refunded =
// total of paid orders).
//
// Exactly once is built from three pieces:
//
//   - a payments row keyed by the caller's transaction_id (unique) is
//     inserted as "pending" before the gateway is called; whoever inserts it
//     owns the attempt, every concurrent duplicate waits (briefly, bounded)
//     for the owner's outcome instead of calling the gateway itself;
//   - the gateway is called outside any database transaction, carrying the
//     transaction_id as its idempotency key, so calling it again for the
//     same transaction (a retry after a crash or a gateway failure) cannot
//     charge twice at the processor;
//   - the owner holds a lease on the pending row; a row whose lease ran out
//     (its owner crashed) is taken over by the next retry of the same
//     transaction_id, with a conditional update on the attempt counter so
//     that exactly one retry wins.
//
// Refunds reserve their amount with one conditional UPDATE on
// refunded_cents before the gateway is called, so concurrent refunds can
// never add up to more than was captured, on either database engine.
package payment

import (
	"context"
	"embed"
	"time"

	"github.com/retailco/pos/internal/platform/page"
)

// Name is the context's name: its database, its metrics label, its
// --only value.
const Name = "payment"

// Migrations is the context's versioned schema.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// DefaultCurrency is used when a payment names none (API.md).
const DefaultCurrency = "CAD"

// Methods a payment may use. Only methods that go through a processor
// belong here: cash is counted in the till by the sales context and never
// reaches this one.
const (
	// MethodCard is a credit or debit card, charged through its token.
	MethodCard = "card"
	// MethodGiftCard is a store gift card, charged through the same gateway.
	MethodGiftCard = "gift_card"
)

// Methods lists the accepted payment methods.
var Methods = []string{MethodCard, MethodGiftCard}

// Status is where a payment stands.
type Status string

// Payment statuses. Pending is transient (the gateway is being called);
// declined is final; failed (the gateway did not answer properly) may be
// retried with the same transaction id and body; captured becomes
// partially_refunded and then refunded as refunds take money back.
const (
	StatusPending           Status = "pending"
	StatusCaptured          Status = "captured"
	StatusPartiallyRefunded Status = "partially_refunded"
	StatusRefunded          Status = "refunded"
	StatusDeclined          Status = "declined"
	StatusFailed            Status = "failed"
)

// Statuses lists every payment status.
var Statuses = []Status{StatusPending, StatusCaptured, StatusPartiallyRefunded, StatusRefunded, StatusDeclined, StatusFailed}

// Captured tells whether money was taken: captured, or captured and since
// refunded in part or in full.
func (s Status) Captured() bool {
	return s == StatusCaptured || s == StatusPartiallyRefunded || s == StatusRefunded
}

// Payment is one charge, identified for the caller by its TransactionID.
type Payment struct {
	ID                string    `json:"id"`
	TransactionID     string    `json:"transaction_id"`
	OrderID           string    `json:"order_id,omitempty"`
	CustomerID        string    `json:"customer_id,omitempty"`
	Status            Status    `json:"status" enum:"pending,captured,partially_refunded,refunded,declined,failed"`
	AmountCents       int64     `json:"amount_cents"`
	RefundedCents     int64     `json:"refunded_cents" doc:"Refunded so far, refunds in flight included"`
	Currency          string    `json:"currency"`
	Method            string    `json:"method"`
	AuthorizationCode string    `json:"authorization_code,omitempty" doc:"Set once captured"`
	FailureReason     string    `json:"failure_reason,omitempty" doc:"Why the payment was declined or failed"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// NewPayment is what charging takes. TransactionID is the idempotency key:
// the same id with the same body is the same payment; with any other body
// it is a conflict.
type NewPayment struct {
	TransactionID string `json:"transaction_id" minLength:"1" maxLength:"128" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$" doc:"Caller's idempotency key, e.g. the saga id and step"`
	AmountCents   int64  `json:"amount_cents" minimum:"1" maximum:"1000000000" doc:"Amount to charge, in cents"`
	Currency      string `json:"currency,omitempty" pattern:"^[A-Z]{3}$" doc:"ISO 4217 code, default CAD"`
	Method        string `json:"method" enum:"card,gift_card"`
	Token         string `json:"token" minLength:"1" maxLength:"128" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$" doc:"Processor token of the card (never a card number)"`
	OrderID       string `json:"order_id,omitempty" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	CustomerID    string `json:"customer_id,omitempty" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
}

// ChargeOutcome is the answer to a charge: the payment, and whether this
// call found it already made (an idempotent replay, HTTP 200) rather than
// making it (HTTP 201).
type ChargeOutcome struct {
	Payment
	Replayed bool `json:"replayed" doc:"True when the transaction id had already been charged"`
}

// Filter narrows a payment list. Zero values do not filter.
type Filter struct {
	// OrderID keeps the payments of one order.
	OrderID string
	// CustomerID keeps the payments of one customer.
	CustomerID string
	// Status keeps payments in one status.
	Status Status
	// TransactionID keeps the payment of one transaction (at most one).
	TransactionID string
	// Page selects the page; newest payments come first.
	Page page.Request
}

// RefundStatus is where a refund stands.
type RefundStatus string

// Refund statuses. Pending holds its amount reserved on the payment while
// the gateway is called; failed released it and may be retried with the
// same refund id and body.
const (
	RefundPending   RefundStatus = "pending"
	RefundSucceeded RefundStatus = "succeeded"
	RefundFailed    RefundStatus = "failed"
)

// RefundStatuses lists every refund status.
var RefundStatuses = []RefundStatus{RefundPending, RefundSucceeded, RefundFailed}

// Refund gives back part or all of a captured payment.
type Refund struct {
	ID            string       `json:"id"`
	RefundID      string       `json:"refund_id"`
	PaymentID     string       `json:"payment_id"`
	AmountCents   int64        `json:"amount_cents"`
	Currency      string       `json:"currency"`
	Reason        string       `json:"reason"`
	Status        RefundStatus `json:"status" enum:"pending,succeeded,failed"`
	FailureReason string       `json:"failure_reason,omitempty"`
	CreatedAt     time.Time    `json:"created_at"`
	UpdatedAt     time.Time    `json:"updated_at"`
}

// NewRefund is what refunding takes. RefundID is the idempotency key: the
// same id with the same payment, amount and reason is the same refund.
type NewRefund struct {
	RefundID    string `json:"refund_id" minLength:"1" maxLength:"128" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$" doc:"Caller's idempotency key"`
	AmountCents int64  `json:"amount_cents" minimum:"1" maximum:"1000000000" doc:"Amount to give back, in cents"`
	Reason      string `json:"reason" minLength:"1" maxLength:"500"`
}

// RefundOutcome is the answer to a refund: the refund, and whether this
// call found it already made (HTTP 200) rather than making it (HTTP 201).
type RefundOutcome struct {
	Refund
	Replayed bool `json:"replayed" doc:"True when the refund id had already been refunded"`
}

// Summary is the money picture of one currency, for the invariant
// captured − refunded = total of paid orders.
type Summary struct {
	Currency string `json:"currency"`
	// CapturedCents sums every payment that took money, refunded ones
	// included.
	CapturedCents int64 `json:"captured_cents"`
	// RefundedCents sums what was given back (refunds in flight included).
	RefundedCents int64 `json:"refunded_cents"`
	// NetCents is CapturedCents − RefundedCents: what the shop keeps.
	NetCents int64 `json:"net_cents"`
	// Payments counts payments by status; every status is present.
	Payments map[Status]int64 `json:"payments"`
	// Refunds counts refunds by status; every status is present.
	Refunds map[RefundStatus]int64 `json:"refunds"`
}

// Service is the payment context's contract, satisfied by the local
// implementation (New) and by Client over HTTP.
type Service interface {
	// Charge takes in.AmountCents through the gateway, once per
	// TransactionID. A replay with the same body answers the stored payment
	// (Replayed) without calling the gateway; another body is errs.Conflict.
	// A decline is stored and answered errs.PaymentRequired, every time; a
	// gateway failure is stored as failed and answered errs.BadGateway, and
	// a later retry calls the gateway again. A duplicate arriving while an
	// attempt is in flight waits for it (bounded: then errs.Unavailable,
	// retry later) and answers its outcome.
	Charge(ctx context.Context, in NewPayment) (ChargeOutcome, error)
	// GetPayment returns one payment by id.
	GetPayment(ctx context.Context, id string) (Payment, error)
	// GetPaymentByTransaction returns the payment of a transaction id, so a
	// saga can find out what became of a charge it is unsure about.
	GetPaymentByTransaction(ctx context.Context, transactionID string) (Payment, error)
	// ListPayments returns one page of payments, newest first.
	ListPayments(ctx context.Context, f Filter) (page.Result[Payment], error)
	// Refund gives back in.AmountCents of a captured payment, once per
	// RefundID; more than what remains unrefunded, or a payment that never
	// captured, is errs.Conflict.
	Refund(ctx context.Context, paymentID string, in NewRefund) (RefundOutcome, error)
	// ListRefunds returns one page of a payment's refunds, oldest first.
	ListRefunds(ctx context.Context, paymentID string, p page.Request) (page.Result[Refund], error)
	// Summary totals the payments in currency (empty: DefaultCurrency).
	Summary(ctx context.Context, currency string) (Summary, error)
}
