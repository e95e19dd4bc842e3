// Package order keeps the web shop's orders: what was bought (lines priced
// and taxed at checkout), where it goes, how it was paid and where it
// stands in fulfilment.
//
// Orders are born confirmed: the checkout saga creates one only after the
// stock is reserved and the payment captured, so an order never waits for
// money. CreateOrder is idempotent on the saga id, so a saga that retries
// or resumes after a crash finds its order instead of making a second one.
// From confirmed an order moves forward through fulfilment (shipped, then
// delivered) or is cancelled (only before it ships: the goods must still
// be in the warehouse for the refund and restock to be right).
//
// Every change of an order's status goes through one function of the
// store (transition), inside one transaction: that is where the outbox
// write of OrderConfirmed / OrderCancelled will join the state change.
package order

import (
	"context"
	"embed"
	"regexp"
	"strings"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/tax"
)

// Name is the context's name: its database, its metrics label, its
// --only value.
const Name = "order"

// Migrations is the context's versioned schema.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// DefaultCurrency is used when an order names none (API.md).
const DefaultCurrency = "CAD"

// Status is where an order stands.
type Status string

// Order statuses. Pending is the status of an order awaiting payment; the
// checkout saga never stores one (it creates orders once paid, confirmed),
// but the value is part of the API's vocabulary and filters accept it.
const (
	StatusPending   Status = "pending"
	StatusConfirmed Status = "confirmed"
	StatusCancelled Status = "cancelled"
	StatusShipped   Status = "shipped"
	StatusDelivered Status = "delivered"
)

// Statuses lists every order status.
var Statuses = []Status{StatusPending, StatusConfirmed, StatusCancelled, StatusShipped, StatusDelivered}

// Paid tells whether an order in this status keeps its money: confirmed,
// shipped or delivered. Cancelled orders were refunded; pending ones never
// paid. The money invariant sums the totals of paid orders.
func (s Status) Paid() bool {
	return s == StatusConfirmed || s == StatusShipped || s == StatusDelivered
}

// Limits of one order, matching the cart's (an order is a checked-out cart).
const (
	// MaxLines is the most lines an order holds.
	MaxLines = 100
	// MaxQuantity is the most units of one line.
	MaxQuantity = 999
	// maxUnitPriceCents keeps line totals far from int64 overflow.
	maxUnitPriceCents = 100_000_000
)

// OrderLine is one product of an order, as priced at checkout.
type OrderLine struct {
	ProductID      string `json:"product_id" minLength:"1" maxLength:"64"`
	SKU            string `json:"sku" maxLength:"64"`
	Name           string `json:"name" maxLength:"200"`
	UnitPriceCents int64  `json:"unit_price_cents" minimum:"0" maximum:"100000000"`
	Quantity       int    `json:"quantity" minimum:"1" maximum:"999"`
	LineTotalCents int64  `json:"line_total_cents" minimum:"0" doc:"unit_price_cents × quantity"`
}

// ShippingAddress is where an order goes. Only Canadian addresses are
// accepted: sales taxes are computed by Canadian province.
type ShippingAddress struct {
	Name       string `json:"name" minLength:"1" maxLength:"200"`
	Line1      string `json:"line1" minLength:"1" maxLength:"200"`
	Line2      string `json:"line2,omitempty" maxLength:"200"`
	City       string `json:"city" minLength:"1" maxLength:"100"`
	Province   string `json:"province" minLength:"2" maxLength:"2" doc:"AB, BC, MB, NB, NL, NS, NT, NU, ON, PE, QC, SK or YT"`
	PostalCode string `json:"postal_code" minLength:"6" maxLength:"7" doc:"Canadian postal code, normalised to A1A 1A1"`
	Country    string `json:"country,omitempty" maxLength:"2" doc:"CA (the default): taxes are Canadian"`
}

var postalPattern = regexp.MustCompile(`^([A-Z][0-9][A-Z]) ?([0-9][A-Z][0-9])$`)

// Normalized returns the address in canonical form: fields trimmed,
// province and postal code upper-case, postal code as "A1A 1A1", country
// CA when left out. Validate and store the normalized form.
func (a ShippingAddress) Normalized() ShippingAddress {
	a.Name = strings.TrimSpace(a.Name)
	a.Line1 = strings.TrimSpace(a.Line1)
	a.Line2 = strings.TrimSpace(a.Line2)
	a.City = strings.TrimSpace(a.City)
	a.Province = strings.ToUpper(strings.TrimSpace(a.Province))
	a.Country = strings.ToUpper(strings.TrimSpace(a.Country))
	if a.Country == "" {
		a.Country = "CA"
	}
	pc := strings.ToUpper(strings.TrimSpace(a.PostalCode))
	if m := postalPattern.FindStringSubmatch(pc); m != nil {
		pc = m[1] + " " + m[2]
	}
	a.PostalCode = pc
	return a
}

// Validate reports every field at fault, named shipping_address.<field>,
// so the checkout can refuse a bad address before anything starts. The
// province must be one package tax knows. Validate a Normalized address.
func (a ShippingAddress) Validate() error {
	var v errs.Validator
	a.check(&v)
	return v.Err()
}

func (a ShippingAddress) check(v *errs.Validator) {
	const p = "shipping_address."
	v.Check(a.Name != "" && len(a.Name) <= 200, p+"name", "is required (at most 200 characters)")
	v.Check(a.Line1 != "" && len(a.Line1) <= 200, p+"line1", "is required (at most 200 characters)")
	v.Check(len(a.Line2) <= 200, p+"line2", "must be at most 200 characters")
	v.Check(a.City != "" && len(a.City) <= 100, p+"city", "is required (at most 100 characters)")
	_, err := tax.Rates(a.Province)
	v.Check(err == nil, p+"province", "unknown province or territory %q (known: %s)", a.Province, strings.Join(tax.Provinces(), ", "))
	v.Check(postalPattern.MatchString(a.PostalCode), p+"postal_code", "must be a Canadian postal code such as H2X 1Y4")
	v.Check(a.Country == "CA", p+"country", "only CA is served")
}

// Order is one web order.
type Order struct {
	ID              string          `json:"id"`
	SagaID          string          `json:"saga_id"`
	CustomerID      string          `json:"customer_id"`
	LocationID      string          `json:"location_id" doc:"Where the stock was reserved and is restocked on cancellation"`
	PaymentID       string          `json:"payment_id,omitempty"`
	ReservationID   string          `json:"reservation_id,omitempty"`
	Status          Status          `json:"status" enum:"pending,confirmed,cancelled,shipped,delivered"`
	Lines           []OrderLine     `json:"lines"`
	ShippingAddress ShippingAddress `json:"shipping_address"`
	SubtotalCents   int64           `json:"subtotal_cents"`
	Taxes           []tax.TaxLine   `json:"taxes"`
	TaxCents        int64           `json:"tax_cents"`
	TotalCents      int64           `json:"total_cents"`
	Currency        string          `json:"currency"`
	Version         int             `json:"version" doc:"Incremented by every change"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	ConfirmedAt     *time.Time      `json:"confirmed_at,omitempty"`
	ShippedAt       *time.Time      `json:"shipped_at,omitempty"`
	DeliveredAt     *time.Time      `json:"delivered_at,omitempty"`
	CancelledAt     *time.Time      `json:"cancelled_at,omitempty"`

	// replayed tells the HTTP layer CreateOrder found the saga's order
	// already made (200, not 201). It never crosses the network.
	replayed bool
}

// Replayed tells whether CreateOrder found this order already made for
// the saga id rather than making it.
func (o Order) Replayed() bool { return o.replayed }

// NewOrder is what creating an order takes: a checked-out cart. SagaID is
// the idempotency key. The amounts are checked for consistency (line
// totals, subtotal, tax, total) but not recomputed: the saga charged the
// customer exactly these, and the order must say what was charged.
type NewOrder struct {
	SagaID          string          `json:"saga_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$" doc:"Idempotency key: the same saga id answers the existing order"`
	CustomerID      string          `json:"customer_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	LocationID      string          `json:"location_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	PaymentID       string          `json:"payment_id,omitempty" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	ReservationID   string          `json:"reservation_id,omitempty" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	Lines           []OrderLine     `json:"lines" minItems:"1" maxItems:"100"`
	ShippingAddress ShippingAddress `json:"shipping_address"`
	SubtotalCents   int64           `json:"subtotal_cents" minimum:"0"`
	Taxes           []tax.TaxLine   `json:"taxes"`
	TaxCents        int64           `json:"tax_cents" minimum:"0"`
	TotalCents      int64           `json:"total_cents" minimum:"0"`
	Currency        string          `json:"currency,omitempty" pattern:"^[A-Z]{3}$" doc:"ISO 4217 code, default CAD"`
}

// Filter narrows an order list. Zero values do not filter.
type Filter struct {
	// CustomerID keeps one customer's orders.
	CustomerID string
	// Status keeps orders in one status.
	Status Status
	// SagaID keeps the order of one checkout saga (at most one).
	SagaID string
	// Page selects the page; newest orders come first.
	Page page.Request
}

// OrderTotals sums orders for the money invariant of DESIGN.md: the
// payment context's captured − refunded equals PaidCents.
type OrderTotals struct {
	Currency string `json:"currency"`
	// PaidCount and PaidCents cover confirmed, shipped and delivered
	// orders: the ones that keep their money.
	PaidCount int64 `json:"paid_count"`
	PaidCents int64 `json:"paid_cents"`
	// CancelledCount and CancelledCents cover cancelled orders.
	CancelledCount int64 `json:"cancelled_count"`
	CancelledCents int64 `json:"cancelled_cents"`
	// ByStatus counts orders by status; every status is present.
	ByStatus map[Status]int64 `json:"by_status"`
}

// Service is the order context's contract, satisfied by the local
// implementation (New) and by Client over HTTP.
type Service interface {
	// CreateOrder records a paid order, confirmed. Idempotent on SagaID:
	// the same saga id answers the existing order (Replayed); with another
	// customer, total or currency it is errs.Conflict.
	CreateOrder(ctx context.Context, in NewOrder) (Order, error)
	// GetOrder returns one order.
	GetOrder(ctx context.Context, id string) (Order, error)
	// ListOrders returns one page of orders, newest first.
	ListOrders(ctx context.Context, f Filter) (page.Result[Order], error)
	// UpdateStatus moves an order through fulfilment: confirmed → shipped
	// → delivered. Setting the status the order already has changes
	// nothing (a retried PUT must succeed); any other move is
	// errs.Conflict, a status other than shipped or delivered errs.Invalid.
	UpdateStatus(ctx context.Context, id string, to Status) (Order, error)
	// MarkCancelled cancels a confirmed (or pending) order. Idempotent: a
	// cancelled order is returned as it is; a shipped or delivered one is
	// errs.Conflict. It moves no money and no stock: the saga's cancel
	// flow refunds and restocks.
	MarkCancelled(ctx context.Context, id string) (Order, error)
	// Totals counts and sums the orders of currency (empty:
	// DefaultCurrency).
	Totals(ctx context.Context, currency string) (OrderTotals, error)
}
