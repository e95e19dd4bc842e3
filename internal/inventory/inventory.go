// Package inventory is the one stock picture both channels sell from:
// locations (stores, warehouses, the online fulfilment centre), stock per
// product and location, reservations that hold stock for a checkout until it
// is committed, released or expires, adjustments (receipts, counts, damage…)
// and transfers between locations.
//
// The invariant everything here protects: at every location, on_hand =
// available + reserved and none is negative, under any concurrency. Every
// change to a stock row goes through one write path (a conditional UPDATE
// that keeps the invariant, plus a row in the stock_movements ledger, in the
// same transaction), and SQL CHECK constraints back it up.
//
// Product data (existence, low-stock thresholds) belongs to the catalog;
// inventory reads it through the narrow Catalog interface declared here.
package inventory

import (
	"context"
	"embed"
	"time"

	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/product"
)

// Name is the context's name: its database, its metrics label, its
// --only value.
const Name = "inventory"

// Migrations is the context's versioned schema.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Location kinds.
const (
	KindStore     = "store"
	KindWarehouse = "warehouse"
	KindOnline    = "online"
)

// Reasons an adjustment may give. Receipts and returns add stock, damage and
// theft remove it, counts and corrections go either way.
const (
	ReasonReceipt    = "receipt"
	ReasonCount      = "count"
	ReasonDamage     = "damage"
	ReasonTheft      = "theft"
	ReasonReturn     = "return"
	ReasonCorrection = "correction"
)

// Reservation statuses. Active holds stock; the other three are final.
const (
	ReservationActive    = "active"
	ReservationCommitted = "committed"
	ReservationReleased  = "released"
	ReservationExpired   = "expired"
)

// Transfer statuses. Pending waits for a manager; the other two are final.
const (
	TransferPending  = "pending"
	TransferApproved = "approved"
	TransferRejected = "rejected"
)

// Limits of the inputs.
const (
	// MaxItems bounds the lines of one reservation.
	MaxItems = 100
	// MaxQuantity bounds one reservation line or one transfer.
	MaxQuantity = 1_000_000
	// MaxDelta bounds one adjustment, far from int64 overflow.
	MaxDelta = 10_000_000
	// DefaultTTL is how long a reservation holds stock when the caller
	// names no TTL: long enough for a payment, short enough that an
	// abandoned checkout does not starve the shelf.
	DefaultTTL = 900 * time.Second
	// MaxTTL is the longest hold a reservation may ask for.
	MaxTTL = 86400 * time.Second
)

// Location is a place that holds stock.
type Location struct {
	ID        string    `json:"id"`
	Code      string    `json:"code"`
	Name      string    `json:"name"`
	Kind      string    `json:"kind" enum:"store,warehouse,online"`
	Province  string    `json:"province" doc:"Two-letter Canadian province or territory code (sales taxes follow it)"`
	Address   string    `json:"address"`
	CreatedAt time.Time `json:"created_at"`
}

// NewLocation is what creating a location takes.
type NewLocation struct {
	Code     string `json:"code" minLength:"1" maxLength:"32" pattern:"^[A-Za-z0-9][A-Za-z0-9_-]*$" doc:"Unique short code, e.g. MTL-01 (stored upper-case)"`
	Name     string `json:"name" minLength:"1" maxLength:"200"`
	Kind     string `json:"kind" enum:"store,warehouse,online"`
	Province string `json:"province" enum:"AB,BC,MB,NB,NL,NS,NT,NU,ON,PE,QC,SK,YT"`
	Address  string `json:"address,omitempty" maxLength:"500"`
}

// LocationFilter narrows a location list. Zero values do not filter.
type LocationFilter struct {
	Kind     string
	Province string
	Page     page.Request
}

// StockLevel is the stock of one product at one location. Available is
// on_hand − reserved; LowStock compares it with the product's alert
// threshold, read from the catalog when the level is read.
type StockLevel struct {
	ProductID      string    `json:"product_id"`
	LocationID     string    `json:"location_id"`
	OnHand         int64     `json:"on_hand"`
	Reserved       int64     `json:"reserved"`
	Available      int64     `json:"available"`
	AlertThreshold int       `json:"alert_threshold"`
	LowStock       bool      `json:"low_stock" doc:"available <= alert_threshold"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// StockFilter narrows a stock list. Zero values do not filter.
type StockFilter struct {
	ProductID  string
	LocationID string
	// LowStock keeps only rows whose available stock is at or below the
	// product's alert threshold.
	LowStock bool
	Page     page.Request
}

// Adjustment changes on_hand at one location for a reason other than a
// sale: a receipt from a supplier, a count, damage, theft…
type Adjustment struct {
	// AdjustmentID is an optional idempotency key: the same id again is
	// applied once (a caller retrying after a timeout cannot double a
	// receipt). Without it every call is a new adjustment.
	AdjustmentID string `json:"adjustment_id,omitempty" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$" doc:"Optional idempotency key"`
	ProductID    string `json:"product_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	LocationID   string `json:"location_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	Delta        int64  `json:"delta" minimum:"-10000000" maximum:"10000000" doc:"Signed change to on_hand; receipt and return add, damage and theft remove"`
	Reason       string `json:"reason" enum:"receipt,count,damage,theft,return,correction"`
	Note         string `json:"note,omitempty" maxLength:"500"`
}

// ReservationItem is one line of a reservation.
type ReservationItem struct {
	ProductID  string `json:"product_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	LocationID string `json:"location_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	Quantity   int64  `json:"quantity" minimum:"1" maximum:"1000000"`
}

// NewReservation asks to hold stock. ReservationID is the caller's
// idempotency key (the checkout saga uses its saga id): the same id with the
// same items returns the existing reservation, with other items it is a
// conflict.
type NewReservation struct {
	ReservationID string            `json:"reservation_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	Items         []ReservationItem `json:"items" minItems:"1" maxItems:"100" doc:"One line per (product, location); duplicates are rejected"`
	TTLSeconds    int               `json:"ttl_seconds,omitempty" minimum:"1" maximum:"86400" doc:"How long the stock is held; default 900"`
}

// Reservation is stock held for a checkout. Items are in canonical order
// (location_id, product_id), whatever order the request used.
type Reservation struct {
	ID        string            `json:"id"`
	Status    string            `json:"status" enum:"active,committed,released,expired"`
	Items     []ReservationItem `json:"items"`
	ExpiresAt time.Time         `json:"expires_at"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`

	// replayed tells the HTTP layer this call found an existing
	// reservation (200, not 201). It never crosses the network: the body of
	// a replay is the same as the original's.
	replayed bool
}

// NewTransfer requests moving stock between two locations (replenishment).
// Nothing moves until a manager approves it.
type NewTransfer struct {
	ProductID      string `json:"product_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	FromLocationID string `json:"from_location_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	ToLocationID   string `json:"to_location_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	Quantity       int64  `json:"quantity" minimum:"1" maximum:"1000000"`
	Note           string `json:"note,omitempty" maxLength:"500"`
}

// Transfer is a request to move stock and its decision.
type Transfer struct {
	ID             string     `json:"id"`
	ProductID      string     `json:"product_id"`
	FromLocationID string     `json:"from_location_id"`
	ToLocationID   string     `json:"to_location_id"`
	Quantity       int64      `json:"quantity"`
	Note           string     `json:"note"`
	Status         string     `json:"status" enum:"pending,approved,rejected"`
	CreatedAt      time.Time  `json:"created_at"`
	DecidedAt      *time.Time `json:"decided_at,omitempty"`
}

// TransferFilter narrows a transfer list. LocationID matches either end.
type TransferFilter struct {
	Status     string
	LocationID string
	ProductID  string
	Page       page.Request
}

// Catalog is what inventory needs from the product context: existence
// checks and alert thresholds. product.Service satisfies it, locally or
// through product.Client.
type Catalog interface {
	GetProduct(ctx context.Context, id string) (product.Product, error)
	ListProducts(ctx context.Context, f product.Filter) (page.Result[product.Product], error)
}

// Service is the inventory contract, satisfied by the local implementation
// (New) and by Client over HTTP. Errors carry errs kinds: Invalid names the
// fields at fault, Conflict means the stock or the state says no, Gone
// means an expired reservation.
type Service interface {
	// CreateLocation adds a location; a taken code is errs.Conflict.
	CreateLocation(ctx context.Context, in NewLocation) (Location, error)
	// GetLocation returns one location.
	GetLocation(ctx context.Context, id string) (Location, error)
	// ListLocations returns one page of locations, ordered by code.
	ListLocations(ctx context.Context, f LocationFilter) (page.Result[Location], error)

	// ListStock returns one page of stock levels, ordered by location then
	// product, with each product's current alert threshold.
	ListStock(ctx context.Context, f StockFilter) (page.Result[StockLevel], error)
	// Adjust changes on_hand and returns the new level. A delta that would
	// leave on_hand below reserved (or negative) is errs.Conflict and
	// writes nothing.
	Adjust(ctx context.Context, in Adjustment) (StockLevel, error)

	// Reserve holds stock for every line or for none: insufficient stock
	// on any line is errs.Conflict naming it. Idempotent on ReservationID.
	Reserve(ctx context.Context, in NewReservation) (Reservation, error)
	// GetReservation returns a reservation; an active one past its expiry
	// is expired (and its stock released) first.
	GetReservation(ctx context.Context, id string) (Reservation, error)
	// CommitReservation turns held stock into stock gone (the sale):
	// on_hand and reserved both drop. Committing twice returns the
	// committed reservation; a released one is errs.Conflict, an expired
	// one errs.Gone.
	CommitReservation(ctx context.Context, id string) (Reservation, error)
	// ReleaseReservation gives held stock back. Idempotent: a released or
	// expired reservation is returned as it is; a committed one is
	// errs.Conflict.
	ReleaseReservation(ctx context.Context, id string) (Reservation, error)
	// ExpireReservations releases every active reservation past its expiry
	// and returns how many it expired.
	ExpireReservations(ctx context.Context) (int, error)

	// CreateTransfer records a pending transfer request.
	CreateTransfer(ctx context.Context, in NewTransfer) (Transfer, error)
	// GetTransfer returns one transfer.
	GetTransfer(ctx context.Context, id string) (Transfer, error)
	// ListTransfers returns one page of transfers, newest first.
	ListTransfers(ctx context.Context, f TransferFilter) (page.Result[Transfer], error)
	// ApproveTransfer moves the stock atomically: the source's available
	// stock must cover it, else errs.Conflict and nothing moves. Approving
	// an approved transfer returns it; a rejected one is errs.Conflict.
	ApproveTransfer(ctx context.Context, id string) (Transfer, error)
	// RejectTransfer closes a pending transfer without moving stock.
	// Rejecting a rejected transfer returns it; an approved one is
	// errs.Conflict.
	RejectTransfer(ctx context.Context, id string) (Transfer, error)
}
