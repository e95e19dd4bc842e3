// Package readcache makes hot reads cheap without making them stale:
// Coalescer shares one database read among concurrent callers that want
// the same thing, never handing one a read that began before it asked;
// Versioned keeps answers (list pages) under a version number that every
// change to their table moves, so an answer is served only while the
// version a caller has just read still matches. The product and customer
// contexts use both for their list pages and API keys.
package readcache

import (
	"context"
	"sync"
	"time"
)

// SharedReadTimeout is a sensible bound for a read that several requests
// wait for: none of them owns it, so none of their contexts can end it.
const SharedReadTimeout = 10 * time.Second

// Coalescer shares one database read among the concurrent callers that
// want the same thing (a table version, an API key), without ever handing a
// caller a read that began before it asked: callers that arrive while a
// read is in flight wait for the next one, which is sent when the first
// returns and which they all share. A caller therefore sees every change
// committed before it asked, exactly as if it had read for itself, while
// under load one round trip serves every request that arrived during the
// previous one (catalog-100vu: thousands of identical version reads a
// second, each a round trip and a PostgreSQL backend wake-up).
//
// At most one read per key is in flight. It runs on a context of its own
// (it serves several callers), bounded by timeout; a caller stops
// waiting when its own context ends.
type Coalescer[K comparable, V any] struct {
	read    func(ctx context.Context, key K) (V, error)
	timeout time.Duration

	mu   sync.Mutex
	keys map[K]*readState[V]
}

// readState is one key's reads: whether one is in flight, and the next
// one, which the callers that arrived since are waiting for.
type readState[V any] struct {
	busy bool
	next *flight[V]
}

// flight is one read and, once done is closed, its result.
type flight[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// NewCoalescer returns a Coalescer whose reads call read, each bounded by
// timeout.
func NewCoalescer[K comparable, V any](timeout time.Duration, read func(ctx context.Context, key K) (V, error)) *Coalescer[K, V] {
	return &Coalescer[K, V]{read: read, timeout: timeout, keys: map[K]*readState[V]{}}
}

// Get returns the result of a read of key sent after Get was called.
func (c *Coalescer[K, V]) Get(ctx context.Context, key K) (V, error) {
	c.mu.Lock()
	s := c.keys[key]
	if s == nil {
		s = &readState[V]{}
		c.keys[key] = s
	}
	f, send := s.next, false
	if f == nil {
		f = &flight[V]{done: make(chan struct{})}
		if s.busy {
			s.next = f // sent when the read in flight returns
		} else {
			s.busy, send = true, true
		}
	}
	c.mu.Unlock()
	if send {
		// Nothing in flight: this caller reads at once, in its own
		// goroutine, so an idle process pays no hand-off.
		c.send(key, s, f)
	}
	select {
	case <-f.done:
		return f.v, f.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// send reads for flight f, then starts the next flight if callers are
// waiting for one.
func (c *Coalescer[K, V]) send(key K, s *readState[V], f *flight[V]) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	f.v, f.err = c.read(ctx, key)
	cancel()
	close(f.done)
	c.mu.Lock()
	next := s.next
	s.next = nil
	if next == nil {
		s.busy = false
		delete(c.keys, key)
	}
	c.mu.Unlock()
	if next != nil {
		go c.send(key, s, next)
	}
}
