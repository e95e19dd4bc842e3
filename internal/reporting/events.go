package reporting

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
)

// The event types the read model is fed with (docs/events.md). Others on
// the same streams are skipped: producers may add types.
const (
	evSaleCompleted     = "sales.SaleCompleted"
	evSaleReturned      = "sales.SaleReturned"
	evOrderConfirmed    = "orders.OrderConfirmed"
	evOrderCancelled    = "orders.OrderCancelled"
	evStockChanged      = "inventory.StockChanged"
	evCheckoutCompleted = "saga.CheckoutCompleted"
	evCheckoutFailed    = "saga.CheckoutFailed"
)

// consumed tells whether an event type feeds the read model.
func consumed(eventType string) bool {
	switch eventType {
	case evSaleCompleted, evSaleReturned, evOrderConfirmed, evOrderCancelled, evStockChanged,
		evCheckoutCompleted, evCheckoutFailed:
		return true
	}
	return false
}

// The payloads, read tolerantly: only the fields reporting uses, unknown
// ones ignored. They are this package's own types, not the producers', so
// that reporting depends on the catalog's contract and not on another
// context's code.

type saleLine struct {
	ProductID     string `json:"product_id"`
	SKU           string `json:"sku"`
	Quantity      int64  `json:"quantity"`
	DiscountCents int64  `json:"discount_cents"`
	NetCents      int64  `json:"net_cents"`
	TaxCents      int64  `json:"tax_cents"`
}

type saleCompleted struct {
	SaleID        string     `json:"sale_id"`
	LocationID    string     `json:"location_id"`
	Lines         []saleLine `json:"lines"`
	SubtotalCents int64      `json:"subtotal_cents"`
	DiscountCents int64      `json:"discount_cents"`
	TaxCents      int64      `json:"tax_cents"`
	TotalCents    int64      `json:"total_cents"`
	Currency      string     `json:"currency"`
	CompletedAt   time.Time  `json:"completed_at"`
}

type saleReturned struct {
	ReturnID    string     `json:"return_id"`
	SaleID      string     `json:"sale_id"`
	LocationID  string     `json:"location_id"`
	Lines       []saleLine `json:"lines"`
	RefundCents int64      `json:"refund_cents"`
	TaxCents    int64      `json:"tax_cents"`
	Currency    string     `json:"currency"`
	ReturnedAt  time.Time  `json:"returned_at"`
}

type orderLine struct {
	ProductID      string `json:"product_id"`
	SKU            string `json:"sku,omitempty"`
	Name           string `json:"name,omitempty"`
	Quantity       int64  `json:"quantity"`
	LineTotalCents int64  `json:"line_total_cents"`
}

type orderEvent struct {
	OrderID       string      `json:"order_id"`
	LocationID    string      `json:"location_id"`
	Lines         []orderLine `json:"lines"`
	SubtotalCents int64       `json:"subtotal_cents"`
	TaxCents      int64       `json:"tax_cents"`
	TotalCents    int64       `json:"total_cents"`
	Currency      string      `json:"currency"`
	ConfirmedAt   time.Time   `json:"confirmed_at"`
	CancelledAt   time.Time   `json:"cancelled_at"`
}

type checkoutEvent struct {
	SagaID      string    `json:"saga_id"`
	DurationMs  int64     `json:"duration_ms"`
	CompletedAt time.Time `json:"completed_at"`
	FailedAt    time.Time `json:"failed_at"`
}

type stockChanged struct {
	ProductID  string `json:"product_id"`
	LocationID string `json:"location_id"`
	OnHand     int64  `json:"on_hand"`
	Reserved   int64  `json:"reserved"`
	Available  int64  `json:"available"`
}

// Keys of the aggregate rows.
type (
	salesKey   struct{ day, locationID, channel string }
	productKey struct{ day, productID, channel string }
	stockKey   struct{ locationID, productID string }
)

// salesDelta is what events add to one sales_by_day row.
type salesDelta struct {
	sales, units, discount, revenue, tax, total             int64
	returns, returnedUnits, returned, returnedTax, refunded int64
}

// productDelta is what events add to one product_sales_by_day row.
type productDelta struct {
	unitsSold, revenue, unitsReturned, returned int64
}

// checkoutDelta is what events add to one checkouts_by_day row.
type checkoutDelta struct {
	completed, failed, durationMs int64
}

// stockState is a stock row as one StockChanged states it.
type stockState struct {
	onHand, reserved, available, version int64
	at                                   time.Time
}

// label is what events say a product is called; at (µs) orders the
// claims, the newest winning.
type label struct {
	sku    string
	skuAt  int64
	name   string
	nameAt int64
}

// effects is what one event, or a batch of them folded together, does to
// the aggregates. Sums add up and stock keeps the highest version, so
// folding a batch and writing it once gives the rows that writing each
// event in turn gives: the consumer writes one event's effects, Rebuild a
// batch's.
type effects struct {
	sales     map[salesKey]*salesDelta
	products  map[productKey]*productDelta
	checkouts map[string]*checkoutDelta
	stock     map[stockKey]stockState
	labels    map[string]label
}

func newEffects() *effects {
	return &effects{
		sales:     map[salesKey]*salesDelta{},
		products:  map[productKey]*productDelta{},
		checkouts: map[string]*checkoutDelta{},
		stock:     map[stockKey]stockState{},
		labels:    map[string]label{},
	}
}

func (e *effects) empty() bool {
	return len(e.sales) == 0 && len(e.products) == 0 && len(e.checkouts) == 0 && len(e.stock) == 0 && len(e.labels) == 0
}

func (e *effects) salesRow(k salesKey) *salesDelta {
	d := e.sales[k]
	if d == nil {
		d = &salesDelta{}
		e.sales[k] = d
	}
	return d
}

func (e *effects) productRow(k productKey) *productDelta {
	d := e.products[k]
	if d == nil {
		d = &productDelta{}
		e.products[k] = d
	}
	return d
}

func (e *effects) checkoutRow(day string) *checkoutDelta {
	d := e.checkouts[day]
	if d == nil {
		d = &checkoutDelta{}
		e.checkouts[day] = d
	}
	return d
}

// setStock keeps s unless a newer version of the row is already folded in.
func (e *effects) setStock(k stockKey, s stockState) {
	if cur, ok := e.stock[k]; ok && cur.version >= s.version {
		return
	}
	e.stock[k] = s
}

// label records a product's SKU and name as of at, the newest winning.
func (e *effects) label(productID, sku, name string, at int64) {
	if productID == "" || (sku == "" && name == "") {
		return
	}
	l := e.labels[productID]
	if sku != "" && at >= l.skuAt {
		l.sku, l.skuAt = sku, at
	}
	if name != "" && at >= l.nameAt {
		l.name, l.nameAt = name, at
	}
	e.labels[productID] = l
}

// orderFact is what an OrderConfirmed booked.
type orderFact struct {
	OrderID       string
	LocationID    string
	SubtotalCents int64
	TaxCents      int64
	TotalCents    int64
	Units         int64
	Lines         []orderLine
	ConfirmedDay  string
}

// orderBook keeps the order facts. It is the one piece of state an event's
// effect depends on: a cancellation takes back what its confirmation
// booked, and each happens once per order, whatever the event ids.
type orderBook interface {
	// confirm records f; false when the order is already known (a second
	// OrderConfirmed for it books nothing).
	confirm(f orderFact) (bool, error)
	// cancel marks the order cancelled on day and returns its facts; first
	// is false when it already was. An order not confirmed yet is
	// errs.Unavailable: the bus delivers the cancellation again later.
	cancel(orderID, day string) (f orderFact, first bool, err error)
}

// planner turns envelopes into effects with the reporting zone and
// currency.
type planner struct {
	loc      *time.Location
	currency string
}

// dayOf is the calendar day of t in the reporting zone; fallback (the
// envelope's occurred_at) when the payload carried no business time.
func (p planner) dayOf(t, fallback time.Time) string {
	if t.IsZero() {
		t = fallback
	}
	return t.In(p.loc).Format(dayLayout)
}

// invalid is the error of an event reporting cannot use: errs.Invalid, so
// the bus dead-letters it after its retries instead of blocking others.
func invalid(env events.Envelope, format string, args ...any) error {
	return fmt.Errorf("event %s (%s): %s: %w", env.EventID, env.EventType, fmt.Sprintf(format, args...), errs.Invalid)
}

func (p planner) decode(env events.Envelope, v any) error {
	if err := json.Unmarshal(env.Data, v); err != nil {
		return invalid(env, "undecodable data: %v", err)
	}
	return nil
}

func (p planner) checkCurrency(env events.Envelope, currency string) error {
	if currency != "" && currency != p.currency {
		return invalid(env, "currency %s: reporting sums %s only", currency, p.currency)
	}
	return nil
}

// add folds env's effect into e. Event types that do not feed the read
// model add nothing.
func (p planner) add(e *effects, env events.Envelope, book orderBook) error {
	if env.OccurredAt.IsZero() {
		// Every producer stamps it (events.New); it is the day of last
		// resort and the order of labels.
		return invalid(env, "no occurred_at")
	}
	at := env.OccurredAt.UnixMicro()
	switch env.EventType {
	case evSaleCompleted:
		var s saleCompleted
		if err := p.decode(env, &s); err != nil {
			return err
		}
		if s.LocationID == "" {
			return invalid(env, "no location_id")
		}
		if err := p.checkCurrency(env, s.Currency); err != nil {
			return err
		}
		day := p.dayOf(s.CompletedAt, env.OccurredAt)
		row := e.salesRow(salesKey{day, s.LocationID, ChannelPOS})
		row.sales++
		row.discount += s.DiscountCents
		row.revenue += s.SubtotalCents
		row.tax += s.TaxCents
		row.total += s.TotalCents
		for i, l := range s.Lines {
			if l.ProductID == "" {
				return invalid(env, "line %d has no product_id", i+1)
			}
			row.units += l.Quantity
			pr := e.productRow(productKey{day, l.ProductID, ChannelPOS})
			pr.unitsSold += l.Quantity
			pr.revenue += l.NetCents
			e.label(l.ProductID, l.SKU, "", at)
		}
	case evSaleReturned:
		var r saleReturned
		if err := p.decode(env, &r); err != nil {
			return err
		}
		if r.LocationID == "" {
			return invalid(env, "no location_id")
		}
		if err := p.checkCurrency(env, r.Currency); err != nil {
			return err
		}
		day := p.dayOf(r.ReturnedAt, env.OccurredAt)
		row := e.salesRow(salesKey{day, r.LocationID, ChannelPOS})
		row.returns++
		row.returnedTax += r.TaxCents
		row.refunded += r.RefundCents
		for i, l := range r.Lines {
			if l.ProductID == "" {
				return invalid(env, "line %d has no product_id", i+1)
			}
			row.returnedUnits += l.Quantity
			row.returned += l.NetCents
			pr := e.productRow(productKey{day, l.ProductID, ChannelPOS})
			pr.unitsReturned += l.Quantity
			pr.returned += l.NetCents
			e.label(l.ProductID, l.SKU, "", at)
		}
	case evOrderConfirmed:
		var o orderEvent
		if err := p.decode(env, &o); err != nil {
			return err
		}
		if o.OrderID == "" {
			o.OrderID = env.AggregateID
		}
		if o.OrderID == "" || o.LocationID == "" {
			return invalid(env, "no order_id or location_id")
		}
		if err := p.checkCurrency(env, o.Currency); err != nil {
			return err
		}
		f := orderFact{OrderID: o.OrderID, LocationID: o.LocationID, SubtotalCents: o.SubtotalCents,
			TaxCents: o.TaxCents, TotalCents: o.TotalCents, ConfirmedDay: p.dayOf(o.ConfirmedAt, env.OccurredAt)}
		for i, l := range o.Lines {
			if l.ProductID == "" {
				return invalid(env, "line %d has no product_id", i+1)
			}
			f.Units += l.Quantity
			// Only what a cancellation needs is kept.
			f.Lines = append(f.Lines, orderLine{ProductID: l.ProductID, Quantity: l.Quantity, LineTotalCents: l.LineTotalCents})
		}
		first, err := book.confirm(f)
		if err != nil || !first {
			return err
		}
		row := e.salesRow(salesKey{f.ConfirmedDay, f.LocationID, ChannelOnline})
		row.sales++
		row.units += f.Units
		row.revenue += f.SubtotalCents
		row.tax += f.TaxCents
		row.total += f.TotalCents
		for _, l := range o.Lines {
			pr := e.productRow(productKey{f.ConfirmedDay, l.ProductID, ChannelOnline})
			pr.unitsSold += l.Quantity
			pr.revenue += l.LineTotalCents
			e.label(l.ProductID, l.SKU, l.Name, at)
		}
	case evOrderCancelled:
		var o orderEvent
		if err := p.decode(env, &o); err != nil {
			return err
		}
		if o.OrderID == "" {
			o.OrderID = env.AggregateID
		}
		if o.OrderID == "" {
			return invalid(env, "no order_id")
		}
		day := p.dayOf(o.CancelledAt, env.OccurredAt)
		f, first, err := book.cancel(o.OrderID, day)
		if err != nil || !first {
			return err
		}
		// The cancellation takes back what the confirmation booked, at the
		// order's location, on the day of the cancellation.
		row := e.salesRow(salesKey{day, f.LocationID, ChannelOnline})
		row.returns++
		row.returnedUnits += f.Units
		row.returned += f.SubtotalCents
		row.returnedTax += f.TaxCents
		row.refunded += f.TotalCents
		for _, l := range f.Lines {
			pr := e.productRow(productKey{day, l.ProductID, ChannelOnline})
			pr.unitsReturned += l.Quantity
			pr.returned += l.LineTotalCents
		}
	case evStockChanged:
		var s stockChanged
		if err := p.decode(env, &s); err != nil {
			return err
		}
		if s.ProductID == "" || s.LocationID == "" {
			// The aggregate id is product_id@location_id.
			if prd, loc, ok := strings.Cut(env.AggregateID, "@"); ok {
				s.ProductID, s.LocationID = prd, loc
			}
		}
		if s.ProductID == "" || s.LocationID == "" {
			return invalid(env, "no product_id or location_id")
		}
		e.setStock(stockKey{s.LocationID, s.ProductID}, stockState{onHand: s.OnHand, reserved: s.Reserved,
			available: s.Available, version: env.AggregateVersion, at: env.OccurredAt.UTC()})
	case evCheckoutCompleted:
		var c checkoutEvent
		if err := p.decode(env, &c); err != nil {
			return err
		}
		row := e.checkoutRow(p.dayOf(c.CompletedAt, env.OccurredAt))
		row.completed++
		row.durationMs += max(c.DurationMs, 0)
	case evCheckoutFailed:
		var c checkoutEvent
		if err := p.decode(env, &c); err != nil {
			return err
		}
		e.checkoutRow(p.dayOf(c.FailedAt, env.OccurredAt)).failed++
	}
	return nil
}
