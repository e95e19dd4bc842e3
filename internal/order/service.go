package order

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/tax"
)

type service struct {
	store *store
	now   func() time.Time
}

var _ Service = (*service)(nil)

// New returns the local order service on gdb (already migrated).
func New(gdb *gorm.DB) Service {
	return &service{store: &store{db: gdb, oneStatement: db.DialectOf(gdb) == db.Postgres}, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
}

var (
	keyPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

func checkKey(v *errs.Validator, field, value string, required bool) {
	if value == "" {
		v.Check(!required, field, "is required")
		return
	}
	v.Check(keyPattern.MatchString(value), field, "must be 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
}

func (s *service) CreateOrder(ctx context.Context, in NewOrder) (Order, error) {
	in.ShippingAddress = in.ShippingAddress.Normalized()
	in.Currency = strings.TrimSpace(in.Currency)
	if in.Currency == "" {
		in.Currency = DefaultCurrency
	}
	if err := checkNewOrder(in); err != nil {
		return Order{}, err
	}
	now := s.now()
	o := Order{
		ID: ids.New("ord"), SagaID: in.SagaID, CustomerID: in.CustomerID, LocationID: in.LocationID,
		PaymentID: in.PaymentID, ReservationID: in.ReservationID, Status: StatusConfirmed,
		Lines: slices.Clone(in.Lines), ShippingAddress: in.ShippingAddress, SubtotalCents: in.SubtotalCents,
		Taxes: slices.Clone(in.Taxes), TaxCents: in.TaxCents, TotalCents: in.TotalCents, Currency: in.Currency,
		Version: 1, CreatedAt: now, UpdatedAt: now, ConfirmedAt: &now,
	}
	if o.Taxes == nil {
		o.Taxes = []tax.TaxLine{}
	}
	existing, found, err := s.store.create(ctx, o)
	if err != nil {
		return Order{}, err
	}
	if !found {
		return o, nil
	}
	// The saga's retry or resume: the same saga is the same order. A saga
	// id reused for another purchase is a bug of the caller worth hearing.
	field := ""
	switch {
	case existing.CustomerID != in.CustomerID:
		field = "customer_id"
	case existing.TotalCents != in.TotalCents:
		field = "total_cents"
	case existing.Currency != in.Currency:
		field = "currency"
	case len(existing.Lines) != len(in.Lines):
		field = "lines"
	}
	if field != "" {
		return Order{}, fmt.Errorf("saga %s already has order %s with a different %s: %w", in.SagaID, existing.ID, field, errs.Conflict)
	}
	existing.replayed = true
	return existing, nil
}

// checkNewOrder validates an order and the arithmetic of its amounts. The
// amounts come from the cart's quote; checking them here means a bug
// upstream is refused rather than written into the books.
func checkNewOrder(in NewOrder) error {
	var v errs.Validator
	checkKey(&v, "saga_id", in.SagaID, true)
	checkKey(&v, "customer_id", in.CustomerID, true)
	checkKey(&v, "location_id", in.LocationID, true)
	checkKey(&v, "payment_id", in.PaymentID, false)
	checkKey(&v, "reservation_id", in.ReservationID, false)
	v.Check(currencyPattern.MatchString(in.Currency), "currency", "must be an ISO 4217 code such as CAD")
	v.Check(len(in.Lines) >= 1 && len(in.Lines) <= MaxLines, "lines", "must hold 1 to %d lines", MaxLines)
	in.ShippingAddress.check(&v)
	var subtotal int64
	seen := map[string]int{}
	for i, l := range in.Lines {
		f := func(name string) string { return fmt.Sprintf("lines[%d].%s", i, name) }
		checkKey(&v, f("product_id"), l.ProductID, true)
		if j, dup := seen[l.ProductID]; dup {
			v.Check(false, f("product_id"), "repeats lines[%d]", j)
		}
		seen[l.ProductID] = i
		v.Check(utf8.RuneCountInString(l.SKU) <= 64, f("sku"), "must be at most 64 characters")
		v.Check(utf8.RuneCountInString(l.Name) <= 200, f("name"), "must be at most 200 characters")
		v.Check(l.Quantity >= 1 && l.Quantity <= MaxQuantity, f("quantity"), "must be between 1 and %d", MaxQuantity)
		priceOK := l.UnitPriceCents >= 0 && l.UnitPriceCents <= maxUnitPriceCents
		v.Check(priceOK, f("unit_price_cents"), "must be between 0 and %d", maxUnitPriceCents)
		if priceOK && l.Quantity >= 1 && l.Quantity <= MaxQuantity {
			v.Check(l.LineTotalCents == l.UnitPriceCents*int64(l.Quantity), f("line_total_cents"),
				"must be unit_price_cents × quantity (%d)", l.UnitPriceCents*int64(l.Quantity))
		}
		subtotal += l.LineTotalCents
	}
	var taxSum int64
	for i, t := range in.Taxes {
		v.Check(strings.TrimSpace(t.Name) != "", fmt.Sprintf("taxes[%d].name", i), "is required")
		v.Check(t.AmountCents >= 0, fmt.Sprintf("taxes[%d].amount_cents", i), "must not be negative")
		taxSum += t.AmountCents
	}
	if err := v.Err(); err != nil {
		return err
	}
	// Bounded lines and prices keep these sums far inside int64.
	v.Check(in.SubtotalCents == subtotal, "subtotal_cents", "must be the sum of the line totals (%d)", subtotal)
	v.Check(in.TaxCents == taxSum, "tax_cents", "must be the sum of the taxes (%d)", taxSum)
	v.Check(in.TotalCents == in.SubtotalCents+in.TaxCents, "total_cents", "must be subtotal_cents + tax_cents (%d)", in.SubtotalCents+in.TaxCents)
	return v.Err()
}

func (s *service) GetOrder(ctx context.Context, id string) (Order, error) {
	return s.store.order(ctx, id)
}

func (s *service) ListOrders(ctx context.Context, f Filter) (page.Result[Order], error) {
	f.Page = f.Page.Normalize()
	var v errs.Validator
	v.Check(f.Status == "" || slices.Contains(Statuses, f.Status), "status", "must be one of %s", joinStatuses())
	checkKey(&v, "customer_id", f.CustomerID, false)
	checkKey(&v, "saga_id", f.SagaID, false)
	if err := v.Err(); err != nil {
		return page.Result[Order]{}, err
	}
	return s.store.list(ctx, f)
}

func (s *service) UpdateStatus(ctx context.Context, id string, to Status) (Order, error) {
	if to != StatusShipped && to != StatusDelivered {
		return Order{}, errs.Field("status", "must be shipped or delivered (cancel through POST /orders/{id}/cancel)")
	}
	return s.store.transition(ctx, id, func(o *Order, now time.Time) error {
		switch {
		case o.Status == to:
			return errNoChange // a retried PUT: already done
		case o.Status == StatusConfirmed && to == StatusShipped:
			o.ShippedAt = &now
		case o.Status == StatusShipped && to == StatusDelivered:
			o.DeliveredAt = &now
		default:
			return fmt.Errorf("order %s is %s; it cannot become %s (confirmed → shipped → delivered): %w", id, o.Status, to, errs.Conflict)
		}
		o.Status = to
		return nil
	}, s.now)
}

func (s *service) MarkCancelled(ctx context.Context, id string) (Order, error) {
	return s.store.transition(ctx, id, func(o *Order, now time.Time) error {
		switch o.Status {
		case StatusCancelled:
			return errNoChange
		case StatusConfirmed, StatusPending:
			o.Status = StatusCancelled
			o.CancelledAt = &now
			return nil
		default:
			return fmt.Errorf("order %s is %s: only an order that has not shipped can be cancelled: %w", id, o.Status, errs.Conflict)
		}
	}, s.now)
}

func (s *service) Totals(ctx context.Context, currency string) (OrderTotals, error) {
	currency = strings.TrimSpace(currency)
	if currency == "" {
		currency = DefaultCurrency
	}
	if !currencyPattern.MatchString(currency) {
		return OrderTotals{}, errs.Field("currency", "must be an ISO 4217 code such as CAD")
	}
	return s.store.totals(ctx, currency)
}

func joinStatuses() string {
	parts := make([]string, len(Statuses))
	for i, s := range Statuses {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}
