// Package customer owns who may use the platform: shoppers' accounts (the
// e-commerce customers, their login and their delivery addresses) and the
// API keys that staff and other contexts present.
//
// It is the issuer of both kinds of credentials. Customer tokens are signed
// with the shared auth.Tokens, so every process verifies them without
// calling here. API keys are stored only as auth.HashKey(key); other
// processes validate a key by asking this context (Client.AuthenticateKey
// calls GET /auth/whoami with the key), which is why Service is an
// auth.KeyStore.
package customer

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/page"
)

// Name is the context's name: its database, its metrics label, its
// --only value.
const Name = "customer"

// Migrations is the context's versioned schema.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Customer is a shopper's account as every caller sees it. The password
// hash is not a field: it never leaves the store, so no response or log
// can carry it by accident.
type Customer struct {
	ID        string    `json:"id"`
	Email     string    `json:"email" doc:"Trimmed and lower-cased; unique"`
	FirstName string    `json:"first_name"`
	LastName  string    `json:"last_name"`
	Phone     string    `json:"phone"`
	Version   int       `json:"version" doc:"Incremented by every change; send it back on update to detect lost updates"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Registration is what opening an account takes.
type Registration struct {
	Email string `json:"email" maxLength:"254" doc:"Login name; trimmed and lower-cased"`
	// Password is checked in bytes (bcrypt reads at most 72), so the schema
	// bound in characters is only a first filter.
	Password  string `json:"password" maxLength:"72" doc:"8 to 72 bytes"`
	FirstName string `json:"first_name" minLength:"1" maxLength:"100"`
	LastName  string `json:"last_name" minLength:"1" maxLength:"100"`
	Phone     string `json:"phone,omitempty" maxLength:"32" doc:"Digits, spaces, + ( ) . -; at least 7 digits"`
}

// String keeps the password out of logs that print a registration with %v.
func (r Registration) String() string {
	return fmt.Sprintf("{Email:%s Password:[redacted] FirstName:%s LastName:%s Phone:%s}", r.Email, r.FirstName, r.LastName, r.Phone)
}

// CustomerUpdate changes the fields it sets and keeps the others. Version,
// when set, must match the stored version (optimistic concurrency).
type CustomerUpdate struct {
	Email     *string `json:"email,omitempty" maxLength:"254"`
	FirstName *string `json:"first_name,omitempty" minLength:"1" maxLength:"100"`
	LastName  *string `json:"last_name,omitempty" minLength:"1" maxLength:"100"`
	Phone     *string `json:"phone,omitempty" maxLength:"32"`
	Version   *int    `json:"version,omitempty" minimum:"1"`
}

// Filter narrows a customer list. Zero values do not filter.
type Filter struct {
	// Search matches e-mail, first, last or full name, or phone,
	// case-insensitively.
	Search string
	// Page selects the page.
	Page page.Request
}

// Credentials is one login attempt. ClientIP is where the attempt came
// from; it feeds the per-address failure limit and is never read from a
// request body (a client would simply lie). Empty skips that limit (local
// callers that have no address, such as a command-line tool).
type Credentials struct {
	Email string `json:"email"`
	// Password is kept out of JSON: Credentials never travels as a body
	// (LoginRequest does), so marshalling one is logging it.
	Password string `json:"-"`
	ClientIP string `json:"-"`
}

// String keeps the password out of logs and error messages that print
// the credentials with %v.
func (c Credentials) String() string {
	return fmt.Sprintf("{Email:%s Password:[redacted] ClientIP:%s}", c.Email, c.ClientIP)
}

// LoginRequest is the body of POST /auth/login: Credentials without the
// address, which the server takes from the connection.
type LoginRequest struct {
	Email    string `json:"email" maxLength:"254"`
	Password string `json:"password" maxLength:"72"`
}

// String keeps the password out of logs that print a request with %v.
func (r LoginRequest) String() string { return fmt.Sprintf("{Email:%s Password:[redacted]}", r.Email) }

// Session is a successful login: a bearer token for the customer.
type Session struct {
	Token      string `json:"token"`
	TokenType  string `json:"token_type" doc:"Always Bearer"`
	ExpiresIn  int    `json:"expires_in" doc:"Seconds until the token expires"`
	CustomerID string `json:"customer_id"`
}

// Address is one delivery address of a customer. A customer with any
// address has exactly one default.
type Address struct {
	ID         string    `json:"id"`
	CustomerID string    `json:"customer_id"`
	Label      string    `json:"label"`
	Line1      string    `json:"line1"`
	Line2      string    `json:"line2"`
	City       string    `json:"city"`
	Province   string    `json:"province" doc:"Two-letter Canadian province or territory code"`
	PostalCode string    `json:"postal_code" doc:"Canadian postal code, normalised to A1A 1A1"`
	Country    string    `json:"country"`
	IsDefault  bool      `json:"is_default"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// NewAddress is what adding an address takes. The schema bounds are loose
// on purpose (lower-case "qc", "h2x1y4" are accepted and normalised); the
// service holds the real rules, so local calls and HTTP calls agree.
type NewAddress struct {
	Label      string `json:"label,omitempty" maxLength:"50" doc:"Free text such as home or work"`
	Line1      string `json:"line1" minLength:"1" maxLength:"200"`
	Line2      string `json:"line2,omitempty" maxLength:"200"`
	City       string `json:"city" minLength:"1" maxLength:"100"`
	Province   string `json:"province" maxLength:"8" doc:"AB BC MB NB NL NS NT NU ON PE QC SK YT"`
	PostalCode string `json:"postal_code" maxLength:"10" doc:"A1A 1A1, spaces and case are normalised"`
	Country    string `json:"country,omitempty" maxLength:"2" doc:"Default CA, the only country served"`
	IsDefault  bool   `json:"is_default,omitempty" doc:"Make this the default address (the first address always is)"`
}

// AddressUpdate changes the fields it sets and keeps the others. Setting
// is_default true moves the default here; setting it false on the default
// is refused, because a customer with addresses always has a default:
// make another one the default instead.
type AddressUpdate struct {
	Label      *string `json:"label,omitempty" maxLength:"50"`
	Line1      *string `json:"line1,omitempty" minLength:"1" maxLength:"200"`
	Line2      *string `json:"line2,omitempty" maxLength:"200"`
	City       *string `json:"city,omitempty" minLength:"1" maxLength:"100"`
	Province   *string `json:"province,omitempty" maxLength:"8"`
	PostalCode *string `json:"postal_code,omitempty" maxLength:"10"`
	Country    *string `json:"country,omitempty" maxLength:"2"`
	IsDefault  *bool   `json:"is_default,omitempty"`
}

// APIKey describes a staff or API-client key. The key itself is shown once,
// at creation (CreatedAPIKey); afterwards only this description exists.
type APIKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       auth.Role  `json:"role"`
	LocationID string     `json:"location_id,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty" doc:"Updated at most once a minute"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// NewAPIKey is what creating a key takes.
type NewAPIKey struct {
	Name       string    `json:"name" minLength:"1" maxLength:"100" doc:"Who or what holds the key"`
	Role       auth.Role `json:"role" enum:"admin,manager,cashier,agent,service"`
	LocationID string    `json:"location_id,omitempty" maxLength:"64" doc:"Store the key is tied to, for cashiers and managers"`
}

// CreatedAPIKey is the answer to creating a key: the only time the plain
// key is ever returned.
type CreatedAPIKey struct {
	APIKey
	Key string `json:"key" doc:"The key itself; shown once, store it now"`
}

// Service is the customer context's contract, satisfied by the local
// implementation (New) and by Client over HTTP. It authorises nothing
// itself: the HTTP layer decides who may call what (Routes), so other
// contexts and the command line can use it directly.
type Service interface {
	// Register opens an account; a taken e-mail is errs.Conflict.
	Register(ctx context.Context, in Registration) (Customer, error)
	// Login checks credentials and issues a customer token. Wrong e-mail and
	// wrong password are the same errs.Unauthorized; too many recent
	// failures for the account or the client address are
	// errs.TooManyRequests carrying a retry delay, and the password is then
	// not checked at all.
	Login(ctx context.Context, in Credentials) (Session, error)
	// GetCustomer returns one customer.
	GetCustomer(ctx context.Context, id string) (Customer, error)
	// ListCustomers returns one page of customers, ordered by name.
	ListCustomers(ctx context.Context, f Filter) (page.Result[Customer], error)
	// UpdateCustomer changes a customer; a taken e-mail or a stale Version
	// is errs.Conflict.
	UpdateCustomer(ctx context.Context, id string, in CustomerUpdate) (Customer, error)

	// ListAddresses returns a customer's addresses, the default first.
	ListAddresses(ctx context.Context, customerID string) ([]Address, error)
	// AddAddress adds an address; the first one becomes the default.
	AddAddress(ctx context.Context, customerID string, in NewAddress) (Address, error)
	// UpdateAddress changes an address of the customer.
	UpdateAddress(ctx context.Context, customerID, addressID string, in AddressUpdate) (Address, error)
	// DeleteAddress removes an address; when it was the default, the
	// oldest remaining address becomes the default.
	DeleteAddress(ctx context.Context, customerID, addressID string) error

	// CreateAPIKey makes a key for a staff role and returns it, once.
	CreateAPIKey(ctx context.Context, in NewAPIKey) (CreatedAPIKey, error)
	// ListAPIKeys returns one page of keys, revoked ones included, oldest
	// first; never the keys themselves.
	ListAPIKeys(ctx context.Context, p page.Request) (page.Result[APIKey], error)
	// RevokeAPIKey stops a key from working; revoking twice is fine.
	RevokeAPIKey(ctx context.Context, id string) error
	// AuthenticateKey resolves a key to its principal (auth.KeyStore); an
	// unknown or revoked key is errs.Unauthorized.
	AuthenticateKey(ctx context.Context, key string) (auth.Principal, error)
}

// Service is what the HTTP middleware needs to accept the keys it issues.
var _ auth.KeyStore = Service(nil)
