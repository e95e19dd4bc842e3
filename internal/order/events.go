package order

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/outbox"
)

// Events this context publishes (docs/events.md), written to the outbox
// in the transaction that changes the order: reporting counts online
// revenue from them and notification tells the customer.
const (
	OrderConfirmedEvent = "orders.OrderConfirmed"
	OrderCancelledEvent = "orders.OrderCancelled"
)

// EventLine is one line of an order in an event.
type EventLine struct {
	ProductID      string `json:"product_id"`
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int64  `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
	LineTotalCents int64  `json:"line_total_cents"`
}

// OrderEvent is the data of both events: the order as it stands, with the
// time of the change.
type OrderEvent struct {
	OrderID       string      `json:"order_id"`
	CustomerID    string      `json:"customer_id"`
	LocationID    string      `json:"location_id"`
	Lines         []EventLine `json:"lines"`
	SubtotalCents int64       `json:"subtotal_cents"`
	TaxCents      int64       `json:"tax_cents"`
	TotalCents    int64       `json:"total_cents"`
	Currency      string      `json:"currency"`
	ConfirmedAt   *time.Time  `json:"confirmed_at,omitempty"`
	CancelledAt   *time.Time  `json:"cancelled_at,omitempty"`
}

// publish adds the event of eventType about o to the outbox inside tx.
func publish(tx *gorm.DB, eventType string, o Order) error {
	env, err := orderEvent(tx.Statement.Context, eventType, o)
	if err != nil {
		return err
	}
	return outbox.Add(tx, env)
}

// orderEvent is the event of type eventType about o as it now stands.
func orderEvent(ctx context.Context, eventType string, o Order) (events.Envelope, error) {
	data := OrderEvent{
		OrderID: o.ID, CustomerID: o.CustomerID, LocationID: o.LocationID, SubtotalCents: o.SubtotalCents,
		TaxCents: o.TaxCents, TotalCents: o.TotalCents, Currency: o.Currency,
		ConfirmedAt: o.ConfirmedAt, CancelledAt: o.CancelledAt,
	}
	for _, l := range o.Lines {
		data.Lines = append(data.Lines, EventLine{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name,
			Quantity: int64(l.Quantity), UnitPriceCents: l.UnitPriceCents, LineTotalCents: l.LineTotalCents})
	}
	return events.New(ctx, eventType, o.ID, int64(o.Version), data)
}
