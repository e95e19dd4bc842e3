// Package sales is what a cashier does all day at a physical store:
// registers, register sessions (open with a float, close with a Z report),
// sales rung up at a register and returns.
//
// # Prices, taxes and tender
//
// Unit prices and names come from the catalog at the moment of the sale,
// never from the client; taxes are the store's province's (platform/tax,
// half-up per line, after the line's discount). Only cash gives change:
// card tender may not exceed the total, and change never exceeds the cash
// tendered. A sale keeps a copy of what it printed (names, prices, the
// store's name and address), so a receipt reprinted a year later is the
// receipt the customer got.
//
// # A sale never half-happens
//
// A sale touches two databases: ours and the inventory's, reached through
// its Service (in-process or over HTTP). No transaction spans both, so the
// order of the writes is what makes a crash at any point recoverable:
//
//  1. the sale is written as pending, in one transaction that also checks
//     (and locks) the register's open session;
//  2. inventory.Reserve with reservation_id = the sale id: all lines or
//     none, idempotent on the id;
//  3. inventory.CommitReservation: the stock leaves (idempotent);
//  4. the sale is marked completed, in one transaction (store.completeSale,
//     where the SaleCompleted event will be written once the outbox exists).
//
// When the inventory refuses step 2 (not enough stock), nothing was
// reserved and the sale is voided: no sale is recorded (a voided row is
// kept only as the answer to a replay of its key). When a step fails for a
// reason a retry can cure (inventory down, time-out), the sale stays
// pending and the caller gets the error (503/504/502); the register's retry
// with the same Idempotency-Key drives the same sale forward through the
// same idempotent steps.
//
// Whatever is still pending after Options.PendingGrace is settled by Resume
// (run at start-up and periodically by RunRecovery, and for its own sales
// by a session close), from the state of its reservation: committed →
// completed; active → committed, then completed; missing, released or
// expired → voided (no stock left). The grace keeps Resume away from sales
// their own process is still driving. Pending and voided sales never
// count: not in lists, reports or Z reports.
//
// The one race the grace cannot rule out (a stalled owner reserving after
// Resume voided its sale) is closed at step 4: the completion is
// conditional on the sale still being pending, and an owner that finds its
// sale voided flags it (stock_to_restore), puts the stock it took back
// (inventory.Adjust, reason correction, adjustment ids derived from the
// sale, so a repeat does it once), clears the flag and answers 409; a
// crash in between leaves the flag for Resume.
//
// A session cannot close while one of its sales is pending (the close and
// the pending insert lock the same session row), so every completed sale is
// in its session's Z report, and a closed session's figures never change.
//
// # Returns
//
// A return is recorded in one transaction (store.recordReturn, where the
// SaleReturned event will go): it locks the sale row, so concurrent returns
// of one sale are serialised and can never return more than was sold, and
// computes the refund from the sold line's discounted price and taxes,
// proportionally, as the difference of cumulative allocations rounded
// half-up: returning everything refunds exactly what was paid, to the cent.
// The refund goes back card first (up to what was paid by card and not yet
// refunded), then cash, so a stolen card cannot be turned into cash at the
// till; cash refunds come out of the open session of the register where the
// return happens. Restocking follows the commit, at that register's store,
// through inventory.Adjust (reason "return", adjustment_id = return id +
// line number): a crash between the two leaves the return marked not
// restocked, and Resume finishes it without ever restocking twice.
//
// # Who may do what
//
// The service does not read HTTP credentials: callers pass an Actor (role
// and store) in the inputs whose rules need it, and the HTTP layer fills it
// from the authenticated principal. A key tied to a store works only that
// store's registers; discounts over 20 % need a manager; a return of
// another store's sale needs a manager.
package sales

import (
	"context"
	"embed"
	"time"

	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/product"
)

// Name is the context's name: its database, its metrics label, its
// --only value.
const Name = "sales"

// Migrations is the context's versioned schema.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Limits of the inputs. They keep every amount far inside int64: a line is
// at most the catalog's maximum price times MaxQuantity, which is within
// tax.MaxLineCents.
const (
	// MaxLines bounds the lines of one sale or return.
	MaxLines = 100
	// MaxQuantity bounds one line.
	MaxQuantity = 10_000
	// MaxPayments bounds the tender lines of one sale.
	MaxPayments = 10
	// MaxAmountCents bounds one tender line or a float.
	MaxAmountCents = 1_000_000_000_000
	// MaxCashierDiscountPercent is the largest discount a cashier may give
	// on a line; above it the manager role is needed.
	MaxCashierDiscountPercent = 20
)

// Tender methods. Only cash gives change.
const (
	MethodCash = "cash"
	MethodCard = "card"
)

// Sale statuses. Only completed sales count anywhere.
const (
	StatusPending   = "pending"
	StatusCompleted = "completed"
	StatusVoided    = "voided"
)

// Session statuses.
const (
	SessionOpen   = "open"
	SessionClosed = "closed"
)

// ReceiptWidth is the printer's line width in characters.
const ReceiptWidth = 58

// Actor is who asks, as far as the rules of this context care: the role
// and, when the key is tied to one, the store. The HTTP layer fills it from
// the authenticated principal; it never travels in a body (json:"-"), so a
// client cannot claim a role. The zero Actor is a cashier of no particular
// store: it may not give discounts over 20 % nor return another store's
// sale. Over Client the actor is whoever the Client's key authenticates as.
type Actor struct {
	Role       auth.Role
	LocationID string
}

// isManager tells whether the actor has the manager's rights (admin has).
func (a Actor) isManager() bool {
	return auth.Principal{Role: a.Role}.Is(auth.RoleManager)
}

// mayWorkAt tells whether the actor may operate a register at locationID:
// keys tied to a store work only there; admin works everywhere.
func (a Actor) mayWorkAt(locationID string) bool {
	return a.Role == auth.RoleAdmin || a.LocationID == "" || a.LocationID == locationID
}

// Register is a till at a store.
type Register struct {
	ID         string    `json:"id"`
	LocationID string    `json:"location_id"`
	Name       string    `json:"name"`
	CreatedAt  time.Time `json:"created_at"`
}

// NewRegister is what creating a register takes.
type NewRegister struct {
	ID         string `json:"id,omitempty" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$" doc:"Optional, e.g. MTL-01-R1; default <store code>-R<n>"`
	LocationID string `json:"location_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$" doc:"A store location"`
	Name       string `json:"name" minLength:"1" maxLength:"100"`
	Actor      Actor  `json:"-"`
}

// RegisterFilter narrows a register list. Zero values do not filter.
type RegisterFilter struct {
	LocationID string
	Page       page.Request
}

// SessionOpening opens a register session.
type SessionOpening struct {
	CashierID         string `json:"cashier_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	OpeningFloatCents int64  `json:"opening_float_cents" minimum:"0" maximum:"1000000000000" doc:"Cash in the drawer at the start"`
	Actor             Actor  `json:"-"`
}

// SessionClosing closes a register session with the cash counted in the
// drawer.
type SessionClosing struct {
	CountedCashCents int64 `json:"counted_cash_cents" minimum:"0" maximum:"1000000000000"`
	Actor            Actor `json:"-"`
}

// RegisterSession is one cashier's shift at one register. Report is the
// Z report of a closed session, fixed at close; for an open session it is
// the running figures so far (an X report, without counted cash).
type RegisterSession struct {
	ID                string     `json:"id"`
	RegisterID        string     `json:"register_id"`
	LocationID        string     `json:"location_id"`
	CashierID         string     `json:"cashier_id"`
	Status            string     `json:"status" enum:"open,closed"`
	OpeningFloatCents int64      `json:"opening_float_cents"`
	CountedCashCents  *int64     `json:"counted_cash_cents,omitempty"`
	OpenedAt          time.Time  `json:"opened_at"`
	ClosedAt          *time.Time `json:"closed_at,omitempty"`
	Report            *ZReport   `json:"report,omitempty"`
}

// ZReport is the till's account of a session: what was sold and returned,
// what each tender took and gave back, and the cash that should be in the
// drawer against the cash counted. Amounts exclude tax unless named
// otherwise.
type ZReport struct {
	SessionID  string `json:"session_id"`
	RegisterID string `json:"register_id"`
	LocationID string `json:"location_id"`
	CashierID  string `json:"cashier_id"`
	Currency   string `json:"currency"`
	// SalesCount and ReturnsCount count completed sales and returns
	// recorded in this session.
	SalesCount   int64 `json:"sales_count"`
	ReturnsCount int64 `json:"returns_count"`
	// GrossSalesCents is unit price × quantity, before discounts.
	GrossSalesCents int64 `json:"gross_sales_cents"`
	DiscountCents   int64 `json:"discount_cents"`
	// ReturnsCents is the value of the goods returned, before tax.
	ReturnsCents int64 `json:"returns_cents"`
	// NetSalesCents is gross − discounts − returns.
	NetSalesCents int64 `json:"net_sales_cents"`
	// Taxes are collected on sales, refunded on returns, per tax.
	Taxes []ZTax `json:"taxes"`
	// TaxCents is the net tax (collected − refunded).
	TaxCents int64 `json:"tax_cents"`
	// SalesTotalCents sums the sales' totals (tax included);
	// RefundsTotalCents the returns' refunds; TotalCents is the first less
	// the second: what the session took, net.
	SalesTotalCents   int64 `json:"sales_total_cents"`
	RefundsTotalCents int64 `json:"refunds_total_cents"`
	TotalCents        int64 `json:"total_cents"`
	// Tenders has one entry per method (cash, card), each present.
	Tenders []ZTender `json:"tenders"`
	// ChangeGivenCents is the change handed back on cash sales.
	ChangeGivenCents  int64 `json:"change_given_cents"`
	OpeningFloatCents int64 `json:"opening_float_cents"`
	// ExpectedCashCents = float + cash tendered − change − cash refunded.
	ExpectedCashCents int64 `json:"expected_cash_cents"`
	// CountedCashCents and OverShortCents (counted − expected, negative
	// when short) are set once the session is closed.
	CountedCashCents *int64     `json:"counted_cash_cents,omitempty"`
	OverShortCents   *int64     `json:"over_short_cents,omitempty"`
	OpenedAt         time.Time  `json:"opened_at"`
	ClosedAt         *time.Time `json:"closed_at,omitempty"`
}

// ZTax is one tax over a session.
type ZTax struct {
	Name           string `json:"name"`
	Rate           string `json:"rate"`
	RatePPM        int64  `json:"rate_ppm"`
	CollectedCents int64  `json:"collected_cents"`
	RefundedCents  int64  `json:"refunded_cents"`
	NetCents       int64  `json:"net_cents"`
}

// ZTender is one tender method over a session. TakenCents is what was
// tendered (cash before change); RefundedCents what returns gave back by
// this method; NetCents is taken − change − refunded.
type ZTender struct {
	Method        string `json:"method" enum:"cash,card"`
	TakenCents    int64  `json:"taken_cents"`
	RefundedCents int64  `json:"refunded_cents"`
	NetCents      int64  `json:"net_cents"`
}

// SaleLineInput is one line of a sale: a product by id or by SKU (scanned), a
// quantity and an optional discount in whole percent.
type SaleLineInput struct {
	ProductID       string `json:"product_id,omitempty" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$" doc:"The product, or give sku"`
	SKU             string `json:"sku,omitempty" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$" doc:"The product's SKU, or give product_id"`
	Quantity        int64  `json:"quantity" minimum:"1" maximum:"10000"`
	DiscountPercent int    `json:"discount_percent,omitempty" minimum:"0" maximum:"100" doc:"Whole percent off the line; over 20 needs a manager"`
}

// Tender is one tender line of a sale, or one refund of a return.
type Tender struct {
	Method      string `json:"method" enum:"cash,card"`
	AmountCents int64  `json:"amount_cents" minimum:"1" maximum:"1000000000000"`
}

// NewSale is what ringing up a sale takes. IdempotencyKey (the HTTP
// Idempotency-Key header) makes a retry by the same register the same
// sale: the same key with the same body answers the first sale, with
// another body errs.Unprocessable.
type NewSale struct {
	LocationID     string          `json:"location_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	RegisterID     string          `json:"register_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	CashierID      string          `json:"cashier_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	Lines          []SaleLineInput `json:"lines" minItems:"1" maxItems:"100" doc:"One line per product"`
	Payments       []Tender        `json:"payments" maxItems:"10" doc:"Tender; may be empty only when the total is zero"`
	IdempotencyKey string          `json:"-"`
	Actor          Actor           `json:"-"`
}

// SaleTax is one tax of a sale or a return.
type SaleTax struct {
	Name        string `json:"name"`
	Rate        string `json:"rate"`
	RatePPM     int64  `json:"rate_ppm"`
	AmountCents int64  `json:"amount_cents"`
}

// SaleLine is one line as sold.
type SaleLine struct {
	LineNo          int    `json:"line_no"`
	ProductID       string `json:"product_id"`
	SKU             string `json:"sku"`
	Name            string `json:"name"`
	UnitPriceCents  int64  `json:"unit_price_cents"`
	Quantity        int64  `json:"quantity"`
	DiscountPercent int    `json:"discount_percent"`
	// GrossCents is unit price × quantity; DiscountCents is rounded
	// half-up; NetCents (gross − discount) is what is taxed.
	GrossCents    int64 `json:"gross_cents"`
	DiscountCents int64 `json:"discount_cents"`
	NetCents      int64 `json:"net_cents"`
	TaxCents      int64 `json:"tax_cents"`
	// Taxes are this line's taxes, each rounded, in the province's order.
	Taxes            []SaleTax `json:"taxes"`
	ReturnedQuantity int64     `json:"returned_quantity"`
}

// Sale is one ticket. Totals: GrossCents − DiscountCents = SubtotalCents
// (taxed); SubtotalCents + TaxCents = TotalCents; TenderedCents −
// ChangeCents = TotalCents.
type Sale struct {
	ID           string `json:"id"`
	Status       string `json:"status" enum:"pending,completed,voided"`
	VoidReason   string `json:"void_reason,omitempty"`
	LocationID   string `json:"location_id"`
	StoreName    string `json:"store_name"`
	StoreAddress string `json:"store_address"`
	Province     string `json:"province"`
	RegisterID   string `json:"register_id"`
	SessionID    string `json:"session_id"`
	CashierID    string `json:"cashier_id"`
	Currency     string `json:"currency"`

	Lines         []SaleLine `json:"lines"`
	GrossCents    int64      `json:"gross_cents"`
	DiscountCents int64      `json:"discount_cents"`
	SubtotalCents int64      `json:"subtotal_cents"`
	Taxes         []SaleTax  `json:"taxes"`
	TaxCents      int64      `json:"tax_cents"`
	TotalCents    int64      `json:"total_cents"`

	Payments      []Tender `json:"payments"`
	TenderedCents int64    `json:"tendered_cents"`
	ChangeCents   int64    `json:"change_cents"`
	// RefundedCashCents and RefundedCardCents sum the returns so far.
	RefundedCashCents int64 `json:"refunded_cash_cents"`
	RefundedCardCents int64 `json:"refunded_card_cents"`

	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`

	// replayed tells the HTTP layer the sale was found under the request's
	// idempotency key (200, not 201). It never crosses the network.
	replayed bool
}

// cashCents and cardCents are the tender by method, as tendered.
func (s Sale) cashCents() int64 { return sumMethod(s.Payments, MethodCash) }
func (s Sale) cardCents() int64 { return sumMethod(s.Payments, MethodCard) }

func sumMethod(ps []Tender, method string) int64 {
	var n int64
	for _, p := range ps {
		if p.Method == method {
			n += p.AmountCents
		}
	}
	return n
}

// SaleFilter narrows a sale list to completed sales. Zero values do not
// filter; From is inclusive, To exclusive, on the sale's time.
type SaleFilter struct {
	LocationID string
	RegisterID string
	SessionID  string
	From, To   time.Time
	Page       page.Request
}

// SaleReceipt is a sale's printable receipt: Text is ReceiptWidth characters
// wide, lines separated by \n.
type SaleReceipt struct {
	SaleID string `json:"sale_id"`
	Width  int    `json:"width"`
	Text   string `json:"text"`
}

// SaleReturnLineInput is one product brought back.
type SaleReturnLineInput struct {
	ProductID string `json:"product_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	Quantity  int64  `json:"quantity" minimum:"1" maximum:"10000"`
}

// NewSaleReturn is what returning goods from a sale takes. RegisterID is where
// the return happens (its open session pays cash refunds); IdempotencyKey
// (the HTTP Idempotency-Key header) makes a retry the same return.
type NewSaleReturn struct {
	RegisterID     string                `json:"register_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	Lines          []SaleReturnLineInput `json:"lines" minItems:"1" maxItems:"100" doc:"One line per product"`
	Reason         string                `json:"reason" minLength:"1" maxLength:"500"`
	IdempotencyKey string                `json:"-"`
	Actor          Actor                 `json:"-"`
}

// SaleReturnLine is one product returned and what it refunds.
type SaleReturnLine struct {
	LineNo        int       `json:"line_no"`
	SaleLineNo    int       `json:"sale_line_no"`
	ProductID     string    `json:"product_id"`
	SKU           string    `json:"sku"`
	Name          string    `json:"name"`
	Quantity      int64     `json:"quantity"`
	SubtotalCents int64     `json:"subtotal_cents" doc:"Refunded before tax"`
	Taxes         []SaleTax `json:"taxes"`
	TaxCents      int64     `json:"tax_cents"`
	TotalCents    int64     `json:"total_cents"`
}

// SaleReturn is goods brought back and money given back. Refunds lists the
// tender the money went back to (card first, then cash).
type SaleReturn struct {
	ID            string           `json:"id"`
	SaleID        string           `json:"sale_id"`
	RegisterID    string           `json:"register_id"`
	SessionID     string           `json:"session_id"`
	LocationID    string           `json:"location_id" doc:"Where the return happened and the goods were restocked"`
	Reason        string           `json:"reason"`
	Currency      string           `json:"currency"`
	Lines         []SaleReturnLine `json:"lines"`
	SubtotalCents int64            `json:"subtotal_cents"`
	Taxes         []SaleTax        `json:"taxes"`
	TaxCents      int64            `json:"tax_cents"`
	TotalCents    int64            `json:"total_cents"`
	Refunds       []Tender         `json:"refunds"`
	Restocked     bool             `json:"restocked" doc:"False until the goods are back in stock (finished by recovery if interrupted)"`
	CreatedAt     time.Time        `json:"created_at"`

	replayed bool
}

// Catalog is what sales needs from the product context: prices and names.
// product.Service satisfies it, locally or through product.Client.
type Catalog interface {
	ListProducts(ctx context.Context, f product.Filter) (page.Result[product.Product], error)
}

// Stock is what sales needs from the inventory: the store (its province,
// name and address), the reservation that makes stock leave with a sale,
// and adjustments for returns. inventory.Service satisfies it.
type Stock interface {
	GetLocation(ctx context.Context, id string) (inventory.Location, error)
	Reserve(ctx context.Context, in inventory.NewReservation) (inventory.Reservation, error)
	GetReservation(ctx context.Context, id string) (inventory.Reservation, error)
	CommitReservation(ctx context.Context, id string) (inventory.Reservation, error)
	Adjust(ctx context.Context, in inventory.Adjustment) (inventory.StockLevel, error)
}

// Service is the sales contract, satisfied by the local implementation
// (New) and by Client over HTTP. Errors carry errs kinds: Invalid names the
// fields at fault, NotFound an unknown register, sale or session, Conflict
// a state that says no (no open session, not enough stock, more returned
// than sold), Forbidden a rule of the actor's role or store.
type Service interface {
	// CreateRegister adds a register at a store; a taken id is
	// errs.Conflict.
	CreateRegister(ctx context.Context, in NewRegister) (Register, error)
	// GetRegister returns one register.
	GetRegister(ctx context.Context, id string) (Register, error)
	// ListRegisters returns one page of registers, ordered by id.
	ListRegisters(ctx context.Context, f RegisterFilter) (page.Result[Register], error)

	// OpenSession opens a session on a register; a register with an open
	// session already is errs.Conflict.
	OpenSession(ctx context.Context, registerID string, in SessionOpening) (RegisterSession, error)
	// GetSession returns a session with its Z report (closed) or its
	// running figures (open).
	GetSession(ctx context.Context, registerID, sessionID string) (RegisterSession, error)
	// CloseSession closes a session and fixes its Z report. Closing again
	// with the same count returns the closed session; with another count it
	// is errs.Conflict, as is closing while a sale is still in flight.
	CloseSession(ctx context.Context, registerID, sessionID string, in SessionClosing) (RegisterSession, error)

	// CreateSale rings up a sale: priced from the catalog, taxed by the
	// store's province, its stock taken from the store, all or nothing.
	CreateSale(ctx context.Context, in NewSale) (Sale, error)
	// GetSale returns one sale, whatever its status.
	GetSale(ctx context.Context, id string) (Sale, error)
	// ListSales returns one page of completed sales, newest first.
	ListSales(ctx context.Context, f SaleFilter) (page.Result[Sale], error)
	// Receipt renders a completed sale's receipt.
	Receipt(ctx context.Context, saleID string) (SaleReceipt, error)

	// CreateReturn takes goods back from a completed sale and refunds them.
	CreateReturn(ctx context.Context, saleID string, in NewSaleReturn) (SaleReturn, error)
	// ListReturns returns a sale's returns, oldest first.
	ListReturns(ctx context.Context, saleID string) ([]SaleReturn, error)
}

// Resumed counts what one Resume settled.
type Resumed struct {
	// Completed and Voided count pending sales settled either way.
	Completed int `json:"completed"`
	Voided    int `json:"voided"`
	// Restocked counts returns whose restock was finished.
	Restocked int `json:"restocked"`
	// Left counts what could not be settled this time (inventory
	// unreachable); the next Resume tries again.
	Left int `json:"left"`
}

// Local is the in-process sales service: the Service contract plus the
// recovery only the process hosting the context can run.
type Local interface {
	Service
	// Resume settles what interrupted work left behind: pending sales
	// older than Options.PendingGrace are completed or voided from the
	// state of their reservation, and returns not yet restocked are
	// restocked. Safe to run at any time, in every process hosting sales.
	Resume(ctx context.Context) (Resumed, error)
}
