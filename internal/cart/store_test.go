package cart

import (
	"context"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestRedisKeyExpiry: the Redis key carries the cart's remaining life, so
// Redis itself forgets abandoned carts, and a change renews it.
func TestRedisKeyExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdbs, prefix := openRedis(t, 1)
	rdb := rdbs[0]
	catalog := newCatalog(t)
	p := addProduct(t, catalog, "K-1", 100)
	clk := newClock()
	svc := New(NewRedisStore(rdb, prefix), catalog, Options{Now: clk.Now, TTL: 2 * time.Hour})

	sid := session()
	_, err := svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
	must(t, err)
	ttl, err := rdb.PTTL(ctx, prefix+sid).Result()
	must(t, err)
	// The bound is loose below only by the time this test takes to get here.
	if ttl > 2*time.Hour || ttl < 2*time.Hour-time.Minute {
		t.Fatalf("key TTL %v, want about 2h", ttl)
	}

	// An hour later (service clock) a change sets the key to live another
	// full TTL: Redis counts from the change, not from the creation.
	clk.Advance(time.Hour)
	must(t, rdb.PExpire(ctx, prefix+sid, time.Hour).Err()) // what an hour of real time would have left
	_, err = svc.SetQuantity(ctx, sid, p.ID, 2)
	must(t, err)
	ttl, err = rdb.PTTL(ctx, prefix+sid).Result()
	must(t, err)
	if ttl > 2*time.Hour || ttl < 2*time.Hour-time.Minute {
		t.Fatalf("key TTL after a change %v, want about 2h again", ttl)
	}

	must(t, svc.Clear(ctx, sid))
	if n, err := rdb.Exists(ctx, prefix+sid).Result(); err != nil || n != 0 {
		t.Fatalf("cleared cart's key still exists: %d, %v", n, err)
	}
}

// TestRedisRealExpiry: with a short TTL and the real clock, the key is
// really gone from Redis afterwards, not merely hidden by the service.
func TestRedisRealExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdbs, prefix := openRedis(t, 1)
	rdb := rdbs[0]
	catalog := newCatalog(t)
	p := addProduct(t, catalog, "R-1", 100)
	const ttl = 300 * time.Millisecond
	svc := New(NewRedisStore(rdb, prefix), catalog, Options{TTL: ttl})
	sid := session()
	start := time.Now()
	_, err := svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
	must(t, err)
	// Polled, not slept: the assertion is "gone after the TTL", with
	// generous room for a slow machine, and never "gone at exactly t".
	for {
		n, err := rdb.Exists(ctx, prefix+sid).Result()
		must(t, err)
		if n == 0 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the cart's key outlived its TTL by 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if time.Since(start) < ttl {
		t.Fatalf("key gone after %v, before its TTL of %v", time.Since(start), ttl)
	}
	_, err = svc.Get(ctx, sid)
	wantErr(t, "get after expiry", err, errs.NotFound, "")
	n, err := PurgeExpired(ctx, NewRedisStore(rdb, prefix), time.Now(), 0)
	if err != nil || n != 0 {
		t.Fatalf("redis purge: %d, %v; Redis expires keys itself", n, err)
	}
}

// TestSQLPurge: expired rows are invisible at once and reclaimed by
// PurgeExpired, batch after batch; live carts stay.
func TestSQLPurge(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		gdb := testkit.OpenDB(t, b, Name, Migrations)
		st := NewSQLStore(gdb)
		catalog := newCatalog(t)
		p := addProduct(t, catalog, "S-1", 100)
		clk := newClock()
		svc := New(st, catalog, Options{Now: clk.Now})

		for i := 0; i < 5; i++ {
			_, err := svc.AddItem(ctx, session(), NewItem{ProductID: p.ID, Quantity: 1})
			must(t, err)
		}
		clk.Advance(12 * time.Hour)
		live := session()
		_, err := svc.AddItem(ctx, live, NewItem{ProductID: p.ID, Quantity: 1})
		must(t, err)

		clk.Advance(12 * time.Hour) // the first five are exactly at their end
		n, err := PurgeExpired(ctx, st, clk.Now(), 2)
		must(t, err)
		var rows int64
		must(t, gdb.Model(&cartRow{}).Count(&rows).Error)
		if n != 5 || rows != 1 {
			t.Fatalf("purged %d, %d rows left; want 5 and 1", n, rows)
		}
		if _, err := svc.Get(ctx, live); err != nil {
			t.Fatalf("purge took a live cart: %v", err)
		}
		if n, err := PurgeExpired(ctx, st, clk.Now(), 0); err != nil || n != 0 {
			t.Fatalf("second purge: %d, %v", n, err)
		}
	})
}
