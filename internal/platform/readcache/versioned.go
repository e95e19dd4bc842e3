package readcache

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// MaxVersionedEntries bounds a Versioned cache. The pages people browse
// are few; searches and id batches are many and mostly read once, so
// when they fill the cache it is simply emptied.
const MaxVersionedEntries = 1024

// Versioned keeps answers of one version of their table. An answer is
// served only to a request that found exactly that version in the
// database, in a read that began after the request did (through a
// Coalescer), so it can never outlive a change: every change commits a
// new version with it (a trigger on the table, so that no writer — other
// processes, pos seed, psql by hand — can forget).
//
// An answer read after version v was read is at least as new as v (the
// commits that follow can only add to it), so storing it under v never
// serves older data than the database held when the request began.
type Versioned[K comparable, V any] struct {
	// clone copies an answer, so that neither the cache nor its callers
	// can change what the other holds.
	clone func(V) V

	mu      sync.RWMutex
	version int64
	entries map[K]V
}

// NewVersioned returns an empty cache whose answers are copied with clone
// on the way in and out.
func NewVersioned[K comparable, V any](clone func(V) V) *Versioned[K, V] {
	return &Versioned[K, V]{clone: clone}
}

// Get returns a copy of the answer cached for key at version.
func (c *Versioned[K, V]) Get(version int64, key K) (V, bool) {
	c.mu.RLock()
	v, ok := c.entries[key]
	ok = ok && c.version == version
	c.mu.RUnlock()
	if !ok {
		var zero V
		return zero, false
	}
	return c.clone(v), true
}

// Put stores an answer read after version was read. Another version
// empties the cache first: its answers are of no use to later requests,
// which read the newer version (or, after a database was restored, an
// unrelated one).
func (c *Versioned[K, V]) Put(version int64, key K, v V) {
	v = c.clone(v)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || c.version != version || len(c.entries) >= MaxVersionedEntries {
		c.entries = make(map[K]V)
		c.version = version
	}
	c.entries[key] = v
}

// Through answers key from the cache at the version read now (through
// version, so the read began after the caller asked), or else from read,
// whose answer it keeps for the next caller at that version.
func (c *Versioned[K, V]) Through(ctx context.Context, version *Coalescer[struct{}, int64], key K,
	read func(context.Context) (V, error)) (V, error) {
	v, err := version.Get(ctx, struct{}{})
	if err != nil {
		var zero V
		return zero, err
	}
	if ans, ok := c.Get(v, key); ok {
		return ans, nil
	}
	ans, err := read(ctx)
	if err != nil {
		return ans, err
	}
	c.Put(v, key, ans)
	return ans, nil
}

// TableVersion is the Coalescer of a one-row version table (a "version"
// column its triggers move on every change, see Versioned): what a cached
// answer must match to be served. The read goes to database/sql directly:
// the statement is fixed, and gorm's statement building would cost more
// than the query.
func TableVersion(sqlDB *sql.DB, table string) *Coalescer[struct{}, int64] {
	q := `SELECT version FROM ` + table
	return NewCoalescer(SharedReadTimeout, func(ctx context.Context, _ struct{}) (int64, error) {
		var v int64
		if err := sqlDB.QueryRowContext(ctx, q).Scan(&v); err != nil {
			return 0, fmt.Errorf("read %s: %w", table, err)
		}
		return v, nil
	})
}
