package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retailco/pos/internal/platform/errs"
)

// DefaultRedisPrefix namespaces cart keys when NewRedisStore is given no
// prefix, so carts can share a Redis with the event bus.
const DefaultRedisPrefix = "pos:cart:"

type redisStore struct {
	rdb    *redis.Client
	prefix string
}

// NewRedisStore keeps each cart as one JSON value at prefix+session id,
// with the cart's remaining life as the key's expiry: Redis forgets
// abandoned carts by itself. Every cart instance of the fleet points at the
// same Redis and prefix.
func NewRedisStore(rdb *redis.Client, prefix string) Store {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return &redisStore{rdb: rdb, prefix: prefix}
}

func (s *redisStore) key(sessionID string) string { return s.prefix + sessionID }

// read decodes the stored cart; a missing key is (nil, nil).
func read(ctx context.Context, c redis.Cmdable, key string) (*doc, error) {
	raw, err := c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(err)
	}
	var d doc
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("decode cart %s: %w", key, err)
	}
	return &d, nil
}

func (s *redisStore) load(ctx context.Context, sessionID string, now time.Time) (Cart, error) {
	d, err := read(ctx, s.rdb, s.key(sessionID))
	if err != nil {
		return Cart{}, err
	}
	// The stored expiry is checked as well as the key's TTL, so the
	// service's clock decides, as in the SQL store; the TTL is what
	// reclaims the memory of carts nobody comes back to.
	if d == nil || !d.ExpiresAt.After(now) {
		return Cart{}, notFound(sessionID)
	}
	return d.cart(sessionID), nil
}

// update is optimistic: WATCH the key, read, compute, and write in
// MULTI/EXEC, which Redis refuses if anyone wrote the key after WATCH; the
// loser reads the winner's cart and tries again.
func (s *redisStore) update(ctx context.Context, sessionID string, now time.Time, change func(*Cart) error) (Cart, error) {
	key := s.key(sessionID)
	var out Cart
	err := retry(ctx, sessionID, func() error {
		watched := false
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			watched = true
			var err error
			out, err = s.apply(ctx, tx, key, sessionID, now, change)
			return err
		}, key)
		if err != nil && !watched {
			return unavailable(err) // WATCH itself failed: Redis is unreachable
		}
		return err
	})
	return out, err
}

// apply is one attempt of update, between WATCH and EXEC.
func (s *redisStore) apply(ctx context.Context, tx *redis.Tx, key, sessionID string, now time.Time, change func(*Cart) error) (Cart, error) {
	d, err := read(ctx, tx, key)
	if err != nil {
		return Cart{}, err
	}
	cur := fresh(sessionID)
	var version int64
	if d != nil {
		// Versions grow from the stored one, even past an expiry, as in
		// the SQL store.
		version = d.Version
		if d.ExpiresAt.After(now) {
			cur = d.cart(sessionID)
		}
	}
	next := clone(cur)
	var write func(p redis.Pipeliner) error
	switch err := change(&next); {
	case errors.Is(err, errNoChange):
		return cur, nil
	case errors.Is(err, errDelete):
		if d == nil {
			return fresh(sessionID), nil
		}
		next = fresh(sessionID)
		write = func(p redis.Pipeliner) error { return p.Del(ctx, key).Err() }
	case err != nil:
		return Cart{}, err
	default:
		nd := toDoc(next)
		nd.Version = version + 1
		raw, err := json.Marshal(nd)
		if err != nil {
			return Cart{}, fmt.Errorf("encode cart %s: %w", sessionID, err)
		}
		ttl := nd.ExpiresAt.Sub(now)
		if ttl < time.Millisecond {
			ttl = time.Millisecond // a zero TTL would make SET keep the key forever
		}
		next = nd.cart(sessionID)
		write = func(p redis.Pipeliner) error { return p.Set(ctx, key, raw, ttl).Err() }
	}
	_, err = tx.TxPipelined(ctx, write)
	switch {
	case errors.Is(err, redis.TxFailedErr):
		return Cart{}, errStale
	case err != nil:
		return Cart{}, unavailable(err)
	}
	return next, nil
}

// purge has nothing to do: Redis expires the keys itself.
func (s *redisStore) purge(context.Context, time.Time, int) (int, error) { return 0, nil }

// unavailable marks a failure to reach Redis: the cart is fine, the store
// is not, and the caller may retry.
func unavailable(err error) error {
	return fmt.Errorf("cart store: %w (%v)", errs.Unavailable, err)
}
