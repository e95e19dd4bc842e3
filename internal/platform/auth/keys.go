package auth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"sync"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
)

// StaticKey accepts one fixed key with one principal. The fleet uses it for
// POS_SERVICE_KEY, which contexts present to each other, so that service
// calls never depend on the customer context being up.
type StaticKey struct {
	Key       string
	Principal Principal
}

// Chain tries each store in turn; the first that knows the key wins. An
// Unauthorized answer moves on to the next store, any other error stops.
type Chain []KeyStore

// AuthenticateKey implements KeyStore.
func (c Chain) AuthenticateKey(ctx context.Context, key string) (Principal, error) {
	for _, s := range c {
		p, err := s.AuthenticateKey(ctx, key)
		if err == nil {
			return p, nil
		}
		if !errs.IsKind(err, errs.Unauthorized) {
			return Principal{}, err
		}
	}
	return Principal{}, fmt.Errorf("unknown api key: %w", errs.Unauthorized)
}

// AuthenticateKey implements KeyStore in constant time.
func (s StaticKey) AuthenticateKey(_ context.Context, key string) (Principal, error) {
	if s.Key != "" && subtle.ConstantTimeCompare([]byte(s.Key), []byte(key)) == 1 {
		return s.Principal, nil
	}
	return Principal{}, fmt.Errorf("unknown api key: %w", errs.Unauthorized)
}

// Cached remembers answers of a slower KeyStore (the customer context over
// HTTP) for a short while: a revoked key stops working within TTL.
type Cached struct {
	store       KeyStore
	ttl, negTTL time.Duration
	now         func() time.Time

	mu      sync.Mutex
	entries map[string]cachedKey
}

type cachedKey struct {
	p       Principal
	ok      bool
	expires time.Time
}

// NewCached wraps store; answers live ttl, refusals a tenth of it.
func NewCached(store KeyStore, ttl time.Duration) *Cached {
	return &Cached{store: store, ttl: ttl, negTTL: ttl / 10, now: time.Now, entries: map[string]cachedKey{}}
}

// AuthenticateKey implements KeyStore.
func (c *Cached) AuthenticateKey(ctx context.Context, key string) (Principal, error) {
	h := HashKey(key)
	now := c.now()
	c.mu.Lock()
	e, hit := c.entries[h]
	c.mu.Unlock()
	if hit && now.Before(e.expires) {
		if e.ok {
			return e.p, nil
		}
		return Principal{}, fmt.Errorf("unknown api key: %w", errs.Unauthorized)
	}
	p, err := c.store.AuthenticateKey(ctx, key)
	if err != nil && !errs.IsKind(err, errs.Unauthorized) {
		return Principal{}, err // outage: remember nothing
	}
	ttl := c.ttl
	if err != nil {
		ttl = c.negTTL
	}
	c.mu.Lock()
	if len(c.entries) > 10000 { // bounded: a flood of random keys cannot grow it forever
		c.entries = map[string]cachedKey{}
	}
	c.entries[h] = cachedKey{p: p, ok: err == nil, expires: now.Add(ttl)}
	c.mu.Unlock()
	return p, err
}
