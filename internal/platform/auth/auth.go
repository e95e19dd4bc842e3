// Package auth identifies callers and says what each may do. It holds no
// business rules of any context: it knows roles, principals, API keys and
// customer tokens. Who owns the key table (the customer context) plugs in
// through KeyStore.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"slices"
	"strings"
)

// Role is what a principal is allowed to do.
type Role string

// Roles of API.md. Customer is the role of a logged-in shopper (JWT);
// the others belong to API keys.
const (
	RoleAdmin    Role = "admin"
	RoleManager  Role = "manager"
	RoleCashier  Role = "cashier"
	RoleAgent    Role = "agent"
	RoleService  Role = "service"
	RoleCustomer Role = "customer"
)

// StaffRoles are the roles an API key may carry.
var StaffRoles = []Role{RoleAdmin, RoleManager, RoleCashier, RoleAgent, RoleService}

// Valid tells whether r is a role an API key may carry.
func (r Role) Valid() bool { return slices.Contains(StaffRoles, r) }

// Principal is the authenticated caller of one request.
type Principal struct {
	// Role decides what the caller may do.
	Role Role `json:"role"`
	// Subject is the customer id for customers, the key id for API keys.
	Subject string `json:"subject"`
	// Name is the key's name or the customer's e-mail, for logs and audit.
	Name string `json:"name"`
	// LocationID ties a cashier's or manager's key to a store, when set.
	LocationID string `json:"location_id,omitempty"`
}

// Is tells whether the principal acts with role r. Admin is every role; a
// manager is also a cashier (API.md: "all a cashier may, plus …").
func (p Principal) Is(r Role) bool {
	switch {
	case p.Role == r, p.Role == RoleAdmin:
		return true
	case p.Role == RoleManager && r == RoleCashier:
		return true
	}
	return false
}

// IsAny tells whether the principal acts with one of roles.
func (p Principal) IsAny(roles ...Role) bool {
	for _, r := range roles {
		if p.Is(r) {
			return true
		}
	}
	return false
}

// IsCustomer tells whether the principal is the customer with id customerID.
func (p Principal) IsCustomer(customerID string) bool {
	return p.Role == RoleCustomer && p.Subject == customerID
}

type principalKey struct{}

// WithPrincipal stores p in ctx; the HTTP middleware does this once per
// request.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the request's principal, if it authenticated.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// KeyStore resolves an API key to its principal. The customer context owns
// the keys; in the fleet other processes reach it through its Client.
type KeyStore interface {
	AuthenticateKey(ctx context.Context, key string) (Principal, error)
}

// apiKeyPrefix makes keys recognisable in logs and secret scanners.
const apiKeyPrefix = "pos_"

// NewAPIKey makes a fresh key with 160 bits of entropy. The key is shown once;
// only HashKey(key) is stored.
func NewAPIKey() string {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error()) // the kernel's RNG does not fail
	}
	return apiKeyPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// HashKey is what the key table stores. A fast hash is right here: the key
// is random with 160 bits, so there is nothing to brute-force that a slow
// hash would protect, and lookups stay O(1) by hash.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// LooksLikeKey filters out obvious garbage before a store lookup.
func LooksLikeKey(key string) bool {
	return strings.HasPrefix(key, apiKeyPrefix) && len(key) > len(apiKeyPrefix)+16 && len(key) < 128
}
