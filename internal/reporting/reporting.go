// Package reporting is the manager's view across both channels: sales at
// the stores' registers (pos) and orders of the web shop (online), the
// products that sell, the stock and what it is worth, and how checkouts
// fare, on one dashboard.
//
// # A read model fed only by events
//
// Reporting owns its database and never reads another context's tables.
// Its Consumer, subscribed under Group to Streams, applies the catalog's
// events (docs/events.md) to pre-aggregated tables, so that a report or
// the dashboard reads a few hundred rows whatever the number of sale lines
// behind them:
//
//   - sales_by_day (day, location, channel): sales or orders, units,
//     discounts, revenue (net of discounts, before tax), tax, gross total
//     (tax included), and returns (pos) or cancellations (online) with what
//     they gave back;
//   - product_sales_by_day (day, product, channel): units and revenue sold
//     and returned;
//   - stock_levels (product, location): the row as the last StockChanged
//     left it; an event whose aggregate_version is not newer than the
//     stored one is ignored, so redelivery and reordering are harmless;
//   - checkouts_by_day (day): checkout sagas completed and failed;
//   - order_facts (order): what an OrderConfirmed booked, so that its
//     OrderCancelled can take exactly that back (the cancel event carries
//     no subtotal or tax), once;
//   - product_labels: the SKU and name the events carried, a fallback for
//     products the catalog does not know.
//
// Each event is applied in one transaction that records it first with
// inbox.Once and in the event_journal (its raw envelope), then updates the
// aggregates: a redelivered event finds itself recorded and changes
// nothing, so the effect is exactly once under at-least-once delivery.
//
// # Days
//
// A day is a calendar day in the reporting time zone (Options.Location,
// default America/Toronto: the stores are in Canada, and Eastern time is
// head office's day), taken from the event's business time: completed_at
// of a sale, returned_at of a return, confirmed_at and cancelled_at of an
// order, completed_at and failed_at of a checkout (occurred_at when the
// payload lacks it). A return or a cancellation counts on the day it
// happens, not on the day of the sale, as a till's Z report does. The day
// is fixed when the event is applied; Rebuild recomputes every day in the
// zone configured at the time, which is how a change of zone is applied.
//
// # Journal and rebuild
//
// The bus keeps only a retention window, so the journal is what lets
// Rebuild recompute every aggregate from scratch: in one transaction it
// empties the aggregates and replays the journal in the order events were
// applied, through the same code the consumer runs (folded per batch of
// events, which gives the same sums). The consumer waits meanwhile (a lock
// on PostgreSQL, the write lock on SQLite, with the bus retrying), and
// readers keep seeing the previous figures until the rebuild commits.
//
// # Catalog data at query time
//
// Product names, prices (stock value is on_hand × the current retail
// price: the catalog keeps no cost) and alert thresholds (low stock is
// available ≤ threshold, as in the inventory) are read from the catalog
// when a report is made, through Catalog, in batches of at most 100 ids,
// and reused for Options.CatalogTTL (30 s): the dashboard prices every
// stock row on every call. Products the catalog does not know are named
// from the events (product_labels), priced 0 with threshold 0.
//
// # Money
//
// Amounts are integer cents in one currency (Options.Currency, CAD): an
// event in another currency is refused (errs.Invalid, dead-lettered by the
// bus after its retries) rather than summed with Canadian dollars.
package reporting

import (
	"context"
	"embed"
	"time"

	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/product"
)

// Name is the context's name: its database, its metrics label, its
// --only value.
const Name = "reporting"

// Group is the consumer group the binary subscribes Consumer.Handle under.
const Group = "reporting"

// Streams are the streams whose events feed the read model.
var Streams = []string{"sales", "orders", "inventory", "saga"}

// Migrations is the context's versioned schema.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Channels a sale comes through: pos for the stores' registers (the sales
// stream), online for the web shop's orders (the orders stream).
const (
	ChannelPOS    = "pos"
	ChannelOnline = "online"
)

// DefaultTimeZone is the zone whose calendar days the reports count in.
const DefaultTimeZone = "America/Toronto"

// DefaultCurrency is the currency of every amount.
const DefaultCurrency = "CAD"

// Limits of the queries.
const (
	// DefaultRangeDays is the range a report covers when it names none:
	// the last 30 days, today included.
	DefaultRangeDays = 30
	// MaxRangeDays bounds a report's range (a year, leap day included),
	// so that its by-day series stays a readable size.
	MaxRangeDays = 366
	// DefaultTopLimit and MaxTopLimit bound the top products list.
	DefaultTopLimit = 10
	MaxTopLimit     = 100
	// DashboardTopProducts is how many products the dashboard ranks.
	DashboardTopProducts = 5
	// DashboardLowStockRows is how many low-stock rows the dashboard lists
	// (the most urgent; LowStockCount counts them all).
	DashboardLowStockRows = 20
	// MaxLowStockRows is how many low-stock rows the inventory report
	// lists per location.
	MaxLowStockRows = 100
)

// Figures are the sales figures of one slice of the read model. Amounts
// are in cents; Returns* and Refunded* are returns at the till (pos) and
// cancelled orders (online), counted on the day they happened.
type Figures struct {
	SalesCount int64 `json:"sales_count" doc:"Completed sales (pos) and confirmed orders (online)"`
	Units      int64 `json:"units" doc:"Units sold"`
	// DiscountCents is what line discounts took off (pos only).
	DiscountCents int64 `json:"discount_cents"`
	RevenueCents  int64 `json:"revenue_cents" doc:"Net of discounts, before tax"`
	TaxCents      int64 `json:"tax_cents"`
	TotalCents    int64 `json:"total_cents" doc:"Gross total: revenue + tax"`

	ReturnsCount     int64 `json:"returns_count" doc:"Returns (pos) and cancelled orders (online)"`
	ReturnedUnits    int64 `json:"returned_units"`
	ReturnedCents    int64 `json:"returned_cents" doc:"Value given back, before tax"`
	ReturnedTaxCents int64 `json:"returned_tax_cents"`
	RefundedCents    int64 `json:"refunded_cents" doc:"Money given back, tax included"`

	NetRevenueCents int64 `json:"net_revenue_cents" doc:"revenue − returned"`
	NetTaxCents     int64 `json:"net_tax_cents" doc:"tax − returned tax"`
	NetTotalCents   int64 `json:"net_total_cents" doc:"total − refunded"`
}

// LocationFigures are the figures of one location (a store, or the web
// shop's location for online orders).
type LocationFigures struct {
	LocationID string `json:"location_id"`
	Figures
}

// ChannelFigures are the figures of one channel.
type ChannelFigures struct {
	Channel string `json:"channel" enum:"pos,online"`
	Figures
}

// DayFigures are the figures of one calendar day.
type DayFigures struct {
	Day string `json:"day" doc:"YYYY-MM-DD in the reporting time zone"`
	Figures
}

// SalesQuery selects a sales report. From and To are RFC 3339 dates
// (2025-06-01) or date-times (2025-06-01T09:30:00-04:00), both days
// included: a date-time stands for its calendar day in the reporting time
// zone, the read model's grain. Empty To is today; empty From is
// DefaultRangeDays days back from To. Empty LocationID and Channel keep
// everything.
type SalesQuery struct {
	From       string
	To         string
	LocationID string
	Channel    string
}

// SalesReport is GET /reports/sales: totals by location, by channel and
// by day over a range of days. ByDay holds every day of the range, zero
// days included; ByLocation and ByChannel only those with activity.
type SalesReport struct {
	From       string            `json:"from" doc:"First day (YYYY-MM-DD), included"`
	To         string            `json:"to" doc:"Last day (YYYY-MM-DD), included"`
	TimeZone   string            `json:"time_zone"`
	Currency   string            `json:"currency"`
	LocationID string            `json:"location_id,omitempty"`
	Channel    string            `json:"channel,omitempty"`
	Totals     Figures           `json:"totals"`
	ByLocation []LocationFigures `json:"by_location"`
	ByChannel  []ChannelFigures  `json:"by_channel"`
	ByDay      []DayFigures      `json:"by_day"`
}

// TopQuery selects the best-selling products over a range of days (From
// and To as in SalesQuery). Limit is 1 to MaxTopLimit, 0 for
// DefaultTopLimit; empty Channel keeps both.
type TopQuery struct {
	From    string
	To      string
	Channel string
	Limit   int
}

// ProductFigures are one product's sales over a range, ranked by net
// revenue, then net units, then product id.
type ProductFigures struct {
	Rank      int    `json:"rank"`
	ProductID string `json:"product_id"`
	SKU       string `json:"sku"`
	Name      string `json:"name"`

	UnitsSold       int64 `json:"units_sold"`
	UnitsReturned   int64 `json:"units_returned"`
	NetUnits        int64 `json:"net_units"`
	RevenueCents    int64 `json:"revenue_cents" doc:"Net of discounts, before tax"`
	ReturnedCents   int64 `json:"returned_cents" doc:"Before tax"`
	NetRevenueCents int64 `json:"net_revenue_cents"`
}

// TopProducts is GET /reports/products/top.
type TopProducts struct {
	From     string           `json:"from"`
	To       string           `json:"to"`
	TimeZone string           `json:"time_zone"`
	Currency string           `json:"currency"`
	Channel  string           `json:"channel,omitempty"`
	Products []ProductFigures `json:"products"`
}

// InventoryQuery selects the inventory report; empty LocationID keeps
// every location.
type InventoryQuery struct {
	LocationID string
}

// StockRow is one product at one location as the read model has it, with
// the catalog's price and threshold.
type StockRow struct {
	ProductID      string    `json:"product_id"`
	SKU            string    `json:"sku"`
	Name           string    `json:"name"`
	LocationID     string    `json:"location_id"`
	OnHand         int64     `json:"on_hand"`
	Reserved       int64     `json:"reserved"`
	Available      int64     `json:"available"`
	AlertThreshold int       `json:"alert_threshold"`
	PriceCents     int64     `json:"price_cents"`
	ValueCents     int64     `json:"value_cents" doc:"on_hand × price"`
	LowStock       bool      `json:"low_stock" doc:"available <= alert_threshold"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// StockFigures sum stock rows.
type StockFigures struct {
	Products        int64 `json:"products" doc:"Stock rows (products stocked)"`
	OnHand          int64 `json:"on_hand"`
	Reserved        int64 `json:"reserved"`
	Available       int64 `json:"available"`
	StockValueCents int64 `json:"stock_value_cents" doc:"Σ on_hand × current retail price"`
	LowStockCount   int64 `json:"low_stock_count"`
}

// LocationStock is one location's stock: its figures and its low-stock
// rows, most urgent first (at most MaxLowStockRows).
type LocationStock struct {
	LocationID string `json:"location_id"`
	StockFigures
	LowStock []StockRow `json:"low_stock"`
}

// InventoryReport is GET /reports/inventory: stock value and low stock per
// location.
type InventoryReport struct {
	Currency  string          `json:"currency"`
	Totals    StockFigures    `json:"totals"`
	Locations []LocationStock `json:"locations"`
}

// CheckoutRate is how checkouts fared over a range of days.
type CheckoutRate struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Completed int64  `json:"completed"`
	Failed    int64  `json:"failed"`
	// SuccessRate is completed / (completed + failed), absent when there
	// was no checkout.
	SuccessRate *float64 `json:"success_rate,omitempty"`
}

// Freshness says how current the read model is.
type Freshness struct {
	// LastAppliedAt is when the last event was applied; absent before the
	// first.
	LastAppliedAt *time.Time `json:"last_applied_at,omitempty"`
	// LastEventAt is when that event happened at its producer.
	LastEventAt *time.Time `json:"last_event_at,omitempty"`
	// AgeSeconds is now − LastAppliedAt.
	AgeSeconds *int64 `json:"age_seconds,omitempty"`
}

// Checkouts are the saga outcomes of the dashboard.
type Checkouts struct {
	Today     CheckoutRate `json:"today"`
	Last7Days CheckoutRate `json:"last_7_days" doc:"Today and the six days before"`
}

// Dashboard is GET /dashboard: today at a glance, in one call.
type Dashboard struct {
	Day         string    `json:"day" doc:"Today (YYYY-MM-DD) in the reporting time zone"`
	TimeZone    string    `json:"time_zone"`
	Currency    string    `json:"currency"`
	GeneratedAt time.Time `json:"generated_at"`
	// Today sums both channels; ByChannel and ByLocation split it.
	Today       Figures           `json:"today"`
	ByChannel   []ChannelFigures  `json:"by_channel" doc:"Both channels, always"`
	ByLocation  []LocationFigures `json:"by_location" doc:"Stores (and the web shop's location) with activity today"`
	OrdersToday int64             `json:"orders_today" doc:"Online orders confirmed today"`
	TopProducts []ProductFigures  `json:"top_products"`
	// LowStock lists the most urgent low-stock rows (at most
	// DashboardLowStockRows); LowStockCount counts them all.
	LowStock      []StockRow `json:"low_stock"`
	LowStockCount int64      `json:"low_stock_count"`
	Checkouts     Checkouts  `json:"checkouts"`
	Freshness     Freshness  `json:"freshness"`
}

// Totals sum the whole read model: what Rebuild must reproduce, and what
// the CLI prints around it.
type Totals struct {
	TimeZone string `json:"time_zone"`
	// Events is the number of events applied (journal entries).
	Events int64   `json:"events"`
	Sales  Figures `json:"sales"`
	// Product* sum the product table; they equal the sales figures' units
	// and revenue when every event named its lines.
	ProductUnitsSold     int64 `json:"product_units_sold"`
	ProductUnitsReturned int64 `json:"product_units_returned"`
	ProductRevenueCents  int64 `json:"product_revenue_cents"`
	ProductReturnedCents int64 `json:"product_returned_cents"`
	// Orders counts orders confirmed; OrdersCancelled those cancelled.
	Orders          int64 `json:"orders"`
	OrdersCancelled int64 `json:"orders_cancelled"`
	// Stock sums the stock rows (without the catalog: no value, no low
	// stock).
	StockRows      int64 `json:"stock_rows"`
	StockOnHand    int64 `json:"stock_on_hand"`
	StockReserved  int64 `json:"stock_reserved"`
	StockAvailable int64 `json:"stock_available"`
	// Checkouts* count saga outcomes.
	CheckoutsCompleted int64      `json:"checkouts_completed"`
	CheckoutsFailed    int64      `json:"checkouts_failed"`
	LastAppliedAt      *time.Time `json:"last_applied_at,omitempty"`
}

// RebuildResult is what Rebuild did.
type RebuildResult struct {
	// Events is how many journal entries were replayed.
	Events     int64  `json:"events"`
	Before     Totals `json:"before"`
	After      Totals `json:"after"`
	DurationMs int64  `json:"duration_ms"`
}

// Catalog is what reporting needs from the product context: names, prices
// and alert thresholds, by batches of ids (product.Filter.IDs, at most
// 100). product.Service satisfies it, locally or through product.Client.
type Catalog interface {
	ListProducts(ctx context.Context, f product.Filter) (page.Result[product.Product], error)
}

// Service is the reporting contract, satisfied by the local implementation
// (New) and by Client over HTTP. The read model is written only by
// Consumer (and Rebuild). Errors carry errs kinds: Invalid names the query
// fields at fault, Unavailable a database or catalog that does not answer.
type Service interface {
	// SalesReport sums sales over a range of days by location, channel
	// and day.
	SalesReport(ctx context.Context, q SalesQuery) (SalesReport, error)
	// TopProducts ranks products by net revenue over a range of days.
	TopProducts(ctx context.Context, q TopQuery) (TopProducts, error)
	// InventoryReport values the stock and lists low stock per location.
	InventoryReport(ctx context.Context, q InventoryQuery) (InventoryReport, error)
	// Dashboard is today at a glance.
	Dashboard(ctx context.Context) (Dashboard, error)
	// Totals sums the whole read model (tests, the CLI, a rebuild's check).
	Totals(ctx context.Context) (Totals, error)
	// Rebuild recomputes every aggregate from the journal.
	Rebuild(ctx context.Context) (RebuildResult, error)
}
