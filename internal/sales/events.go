package sales

import (
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/outbox"
)

// Events this context publishes (docs/events.md). They are written to the
// outbox in the same transaction as the change they describe, so reporting
// sees every completed sale and return exactly when it is committed.
const (
	SaleCompletedEvent = "sales.SaleCompleted"
	SaleReturnedEvent  = "sales.SaleReturned"
)

// EventLine is one line of a sale or a return in an event.
type EventLine struct {
	ProductID      string `json:"product_id"`
	SKU            string `json:"sku"`
	Quantity       int64  `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents,omitempty"`
	DiscountCents  int64  `json:"discount_cents,omitempty"`
	NetCents       int64  `json:"net_cents"`
	TaxCents       int64  `json:"tax_cents"`
}

// SaleCompleted is the data of a SaleCompletedEvent.
type SaleCompleted struct {
	SaleID        string      `json:"sale_id"`
	LocationID    string      `json:"location_id"`
	RegisterID    string      `json:"register_id"`
	CashierID     string      `json:"cashier_id"`
	Lines         []EventLine `json:"lines"`
	SubtotalCents int64       `json:"subtotal_cents"`
	DiscountCents int64       `json:"discount_cents"`
	TaxCents      int64       `json:"tax_cents"`
	TotalCents    int64       `json:"total_cents"`
	Currency      string      `json:"currency"`
	Tenders       []Tender    `json:"tenders"`
	CompletedAt   time.Time   `json:"completed_at"`
}

// SaleReturned is the data of a SaleReturnedEvent.
type SaleReturned struct {
	ReturnID    string      `json:"return_id"`
	SaleID      string      `json:"sale_id"`
	LocationID  string      `json:"location_id"`
	RegisterID  string      `json:"register_id"`
	Lines       []EventLine `json:"lines"`
	RefundCents int64       `json:"refund_cents"`
	TaxCents    int64       `json:"tax_cents"`
	Currency    string      `json:"currency"`
	Refunds     []Tender    `json:"refunds"`
	ReturnedAt  time.Time   `json:"returned_at"`
}

// publishSaleCompleted adds the event of a sale just completed in tx.
func publishSaleCompleted(tx *gorm.DB, saleID string, at time.Time) error {
	sale, err := loadSale(tx, saleID)
	if err != nil {
		return err
	}
	var version int64
	if err := tx.Raw(`SELECT version FROM sales WHERE id = ?`, saleID).Scan(&version).Error; err != nil {
		return dbErr("read sale version", err)
	}
	data := SaleCompleted{
		SaleID: sale.ID, LocationID: sale.LocationID, RegisterID: sale.RegisterID, CashierID: sale.CashierID,
		SubtotalCents: sale.SubtotalCents, DiscountCents: sale.DiscountCents, TaxCents: sale.TaxCents,
		TotalCents: sale.TotalCents, Currency: sale.Currency, Tenders: sale.Payments, CompletedAt: at,
	}
	for _, l := range sale.Lines {
		data.Lines = append(data.Lines, EventLine{ProductID: l.ProductID, SKU: l.SKU, Quantity: l.Quantity,
			UnitPriceCents: l.UnitPriceCents, DiscountCents: l.DiscountCents, NetCents: l.NetCents, TaxCents: l.TaxCents})
	}
	env, err := events.New(tx.Statement.Context, SaleCompletedEvent, sale.ID, version, data)
	if err != nil {
		return err
	}
	return outbox.Add(tx, env)
}

// publishSaleReturned adds the event of a return just recorded in tx.
func publishSaleReturned(tx *gorm.DB, r SaleReturn) error {
	var version int64
	if err := tx.Raw(`SELECT version FROM sales WHERE id = ?`, r.SaleID).Scan(&version).Error; err != nil {
		return dbErr("read sale version", err)
	}
	data := SaleReturned{
		ReturnID: r.ID, SaleID: r.SaleID, LocationID: r.LocationID, RegisterID: r.RegisterID,
		RefundCents: r.TotalCents, TaxCents: r.TaxCents, Currency: r.Currency, Refunds: r.Refunds, ReturnedAt: r.CreatedAt,
	}
	for _, l := range r.Lines {
		data.Lines = append(data.Lines, EventLine{ProductID: l.ProductID, SKU: l.SKU, Quantity: l.Quantity,
			NetCents: l.SubtotalCents, TaxCents: l.TaxCents})
	}
	env, err := events.New(tx.Statement.Context, SaleReturnedEvent, r.SaleID, version, data)
	if err != nil {
		return err
	}
	return outbox.Add(tx, env)
}
