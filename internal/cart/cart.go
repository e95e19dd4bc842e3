// Package cart is the web shop's cart: the lines a shopper collects before
// checkout, keyed by a session id the browser makes up, priced from the
// catalog at the moment each product is added.
//
// A cart starts anonymous: whoever holds the session id may use it (API.md:
// "anyone: use an anonymous cart by session id"). When a logged-in
// customer changes it, or the checkout saga attaches the buyer, it belongs
// to that customer for good; from then on only that customer and staff
// with the service role may read or change it.
//
// Carts live 24 hours after their last change (Options.TTL). In the
// embedded default they are rows of a SQL table; in the fleet they live in
// Redis, shared by the cart instances behind the gateway, so a shopper
// whose requests land on different instances sees one cart. Both stores
// apply every change as a read-modify-write that retries when another
// writer got in first, so concurrent changes to one cart all survive.
//
// The checkout saga uses three calls: AttachCustomer (the cart becomes
// the buyer's; another customer's cart is refused), Calculate (lines and
// totals, taxed for the shipping province) and, once the order is
// confirmed, Clear (idempotent).
package cart

import (
	"context"
	"embed"
	"time"

	"github.com/retailco/pos/internal/platform/tax"
	"github.com/retailco/pos/internal/product"
)

// Name is the context's name: its database, its metrics label, its
// --only value.
const Name = "cart"

// Migrations is the schema of the SQL store.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Limits of one cart. They keep a cart (and the JSON document it is
// stored as) small, and its totals far from overflow.
const (
	// MaxQuantity is the most units of one product a line holds.
	MaxQuantity = 999
	// MaxLines is the most distinct products a cart holds.
	MaxLines = 100
	// DefaultTTL is how long a cart lives after its last change.
	DefaultTTL = 24 * time.Hour
	// DefaultCurrency is the currency of an empty cart.
	DefaultCurrency = "CAD"
)

// Cart is one shopper's cart.
type Cart struct {
	SessionID string `json:"session_id"`
	// CustomerID is set once a customer owns the cart.
	CustomerID string `json:"customer_id,omitempty"`
	// Currency is the lines' currency (every line has the same one).
	Currency string `json:"currency"`
	// Lines are in the order their products were first added.
	Lines []Line `json:"lines"`
	// ItemCount is the sum of the quantities.
	ItemCount     int   `json:"item_count"`
	SubtotalCents int64 `json:"subtotal_cents" doc:"Sum of the line totals, before tax"`
	// Version grows with every change.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// ExpiresAt is when the cart disappears unless it changes before.
	ExpiresAt time.Time `json:"expires_at"`
}

// Line is one product in a cart. SKU, name and price are the catalog's at
// the time the product was first added: a later price change does not
// reprice the line (the shopper saw and accepted that price).
type Line struct {
	ProductID      string    `json:"product_id"`
	SKU            string    `json:"sku"`
	Name           string    `json:"name"`
	UnitPriceCents int64     `json:"unit_price_cents"`
	Currency       string    `json:"currency"`
	Quantity       int       `json:"quantity"`
	LineTotalCents int64     `json:"line_total_cents"`
	AddedAt        time.Time `json:"added_at"`
}

// NewItem is what adding to a cart takes. There is no price: prices come
// from the catalog, and the HTTP layer rejects unknown fields, so a
// client-sent price is refused rather than ignored.
type NewItem struct {
	ProductID string `json:"product_id" minLength:"1" maxLength:"64"`
	Quantity  int    `json:"quantity" minimum:"1" maximum:"999" doc:"Added to the line's quantity when the product is already in the cart"`
}

// Quote is a cart priced for checkout: its lines, the taxes of the
// shipping province and the totals.
type Quote struct {
	SessionID     string        `json:"session_id"`
	CustomerID    string        `json:"customer_id,omitempty"`
	Province      string        `json:"province"`
	Currency      string        `json:"currency"`
	Lines         []Line        `json:"lines"`
	SubtotalCents int64         `json:"subtotal_cents"`
	Taxes         []tax.TaxLine `json:"taxes"`
	TaxCents      int64         `json:"tax_cents"`
	TotalCents    int64         `json:"total_cents"`
	// CartVersion is the version of the cart priced, so a caller can tell
	// whether the cart changed since.
	CartVersion int64 `json:"cart_version"`
}

// Catalog is what the cart needs of the product context: one product by
// id, archived ones included (product.Service and product.Client satisfy
// it).
type Catalog interface {
	GetProduct(ctx context.Context, id string) (product.Product, error)
}

var _ Catalog = (product.Service)(nil)

// Service is the cart's contract, satisfied by the local implementation
// (New) and by Client over HTTP. Session ids are 16 to 128 letters,
// digits, '_' or '-'; anything else is errs.Invalid naming session_id.
type Service interface {
	// Get returns a cart; a session without one (or whose cart expired)
	// is errs.NotFound.
	Get(ctx context.Context, sessionID string) (Cart, error)
	// AddItem adds quantity units of a product, creating the cart when
	// needed; a product already in the cart has its quantity raised and
	// keeps its price. An unknown product is errs.Invalid naming
	// product_id, an archived one errs.Conflict, and so are a line over
	// MaxQuantity, a cart over MaxLines and a product in another currency.
	AddItem(ctx context.Context, sessionID string, in NewItem) (Cart, error)
	// SetQuantity sets a line's quantity (1..MaxQuantity; remove a line
	// with RemoveItem). A product not in the cart is errs.NotFound.
	SetQuantity(ctx context.Context, sessionID, productID string, quantity int) (Cart, error)
	// RemoveItem removes a line; removing a line that is not there changes
	// nothing and is not an error, so a retried call succeeds.
	RemoveItem(ctx context.Context, sessionID, productID string) (Cart, error)
	// Clear deletes the cart. It is idempotent: clearing a cart that does
	// not exist succeeds (the saga retries it after checkout).
	Clear(ctx context.Context, sessionID string) error
	// Calculate prices the cart for a province (QC, ON, …: the codes of
	// package tax); an unknown code is errs.Invalid naming province.
	Calculate(ctx context.Context, sessionID, province string) (Quote, error)
	// AttachCustomer makes the cart customerID's. Attaching the owner
	// again changes nothing; a cart that is another customer's is
	// errs.Conflict.
	AttachCustomer(ctx context.Context, sessionID, customerID string) (Cart, error)
}
