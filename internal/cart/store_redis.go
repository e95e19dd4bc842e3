package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
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

// read fetches and decodes the stored cart; a missing key is (nil, nil,
// nil). raw is the value exactly as stored: update's script compares it
// with what the key holds when it writes.
func read(ctx context.Context, c redis.Cmdable, key string) (raw []byte, d *doc, err error) {
	raw, err = c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, unavailable(err)
	}
	d = new(doc)
	if err := json.Unmarshal(raw, d); err != nil {
		return nil, nil, fmt.Errorf("decode cart %s: %w", key, err)
	}
	return raw, d, nil
}

func (s *redisStore) load(ctx context.Context, sessionID string, now time.Time) (Cart, error) {
	_, d, err := read(ctx, s.rdb, s.key(sessionID))
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

// casScript writes a cart only if its key still holds exactly what the
// writer read, and answers 1 if it wrote, 0 if another writer got in
// first. It compares the raw stored bytes, not the version inside them:
// that is exact (every write changes the bytes, the version being in them)
// and needs no JSON decoding in Lua. The price is that the cart travels to
// Redis twice and is copied into Lua, which costs Redis time in proportion
// to its size (a few µs per KB).
//
//	KEYS[1] the cart's key
//	ARGV[1] "1" if the writer read a value, "0" if it found the key absent
//	ARGV[2] the bytes read ("" when absent)
//	ARGV[3] "set" or "del"
//	ARGV[4] the new bytes (set only)
//	ARGV[5] the new expiry in milliseconds, at least 1 (set only)
//
// GET of a missing key is false in Lua, never a string, so an absent key
// and an empty value cannot be confused.
//
// A key that already holds the new bytes is this very write, applied
// before: go-redis repeats a command whose reply was lost (a timeout, a
// dropped connection), and answering 0 then would make update apply the
// change a second time. The bytes are unique to one write (doc.Write), so
// no other writer's value can match them.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[3] == 'set' and cur == ARGV[4] then return 1 end
if ARGV[1] == '1' then
	if cur ~= ARGV[2] then return 0 end
elseif cur then
	return 0
end
if ARGV[3] == 'del' then
	redis.call('DEL', KEYS[1])
else
	redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
end
return 1
`)

// update is optimistic: GET the key, compute the change, and write it with
// casScript, which Redis runs atomically and which writes only if the key
// still holds what was read; the loser reads the winner's cart and tries
// again. That is two round trips per change (GET, then EVALSHA) and one
// when there is nothing to write, where WATCH/GET/MULTI-EXEC took three
// (WATCH/GET/UNWATCH for nothing to write): on the checkout path each
// round trip costs the server a network exchange, and Redis too.
func (s *redisStore) update(ctx context.Context, sessionID string, now time.Time, change func(*Cart) error) (Cart, error) {
	key := s.key(sessionID)
	var out Cart
	err := retry(ctx, sessionID, func() error {
		var err error
		out, err = s.apply(ctx, key, sessionID, now, change)
		return err
	})
	return out, err
}

// apply is one attempt of update: read, compute, compare-and-set. It
// answers errStale when another writer changed the key after the read.
func (s *redisStore) apply(ctx context.Context, key, sessionID string, now time.Time, change func(*Cart) error) (Cart, error) {
	raw, d, err := read(ctx, s.rdb, key)
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
	// The script's arguments after the expected value: what to do, and
	// for a SET the new value and its expiry.
	var write []any
	switch err := change(&next); {
	case errors.Is(err, errNoChange):
		return cur, nil
	case errors.Is(err, errDelete):
		if d == nil {
			return fresh(sessionID), nil
		}
		next = fresh(sessionID)
		write = []any{"del"}
	case err != nil:
		return Cart{}, err
	default:
		nd := toDoc(next)
		nd.Version = version + 1
		nd.Write = ids.New("w")
		val, err := json.Marshal(nd)
		if err != nil {
			return Cart{}, fmt.Errorf("encode cart %s: %w", sessionID, err)
		}
		// PX takes whole milliseconds, and the script would refuse 0: a
		// cart at (or past) its end still gets 1 ms rather than an error,
		// and never a key without expiry.
		ttl := nd.ExpiresAt.Sub(now).Milliseconds()
		if ttl < 1 {
			ttl = 1
		}
		next = nd.cart(sessionID)
		write = []any{"set", val, ttl}
	}
	readFlag := "0" // the key was absent: write only if it still is
	if d != nil {
		readFlag = "1"
	}
	wrote, err := casScript.Run(ctx, s.rdb, []string{key}, append([]any{readFlag, raw}, write...)...).Int64()
	switch {
	case err != nil:
		return Cart{}, unavailable(err)
	case wrote == 0:
		return Cart{}, errStale
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
