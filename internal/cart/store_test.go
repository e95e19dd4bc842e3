package cart

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// roundTrips records what a Redis client sends, one entry per round trip:
// the command's name, or a pipeline's names joined by spaces.
type roundTrips struct {
	mu   sync.Mutex
	sent []string
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.add(cmd.Name())
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		r.add(strings.Join(names, " "))
		return next(ctx, cmds)
	}
}

func (r *roundTrips) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, s)
}

// during returns the round trips fn made.
func (r *roundTrips) during(fn func()) []string {
	r.mu.Lock()
	r.sent = nil
	r.mu.Unlock()
	fn()
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

// TestRedisRoundTrips: a change costs two round trips to Redis (GET, then
// the compare-and-set script by its digest) and a change that writes
// nothing costs one, the GET. Saving round trips is why update uses a
// script rather than WATCH and MULTI/EXEC, so losing them again must fail.
func TestRedisRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdbs, prefix := openRedis(t, 1)
	rdb := rdbs[0]
	trips := &roundTrips{}
	rdb.AddHook(trips)
	catalog := newCatalog(t)
	p := addProduct(t, catalog, "RT-1", 100)
	q := addProduct(t, catalog, "RT-2", 200)
	svc := New(NewRedisStore(rdb, prefix), catalog, Options{})
	sid := session()
	// The first change creates the cart, and loads the script into Redis
	// should this be its first run there (EVALSHA, NOSCRIPT, then EVAL).
	_, err := svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
	must(t, err)

	change, noop := []string{"get", "evalsha"}, []string{"get"}
	cases := []struct {
		what string
		call func() error
		want []string
	}{
		{"add to an existing cart", func() error {
			_, err := svc.AddItem(ctx, sid, NewItem{ProductID: q.ID, Quantity: 1})
			return err
		}, change},
		{"remove a line that is not there", func() error {
			_, err := svc.RemoveItem(ctx, sid, "prd_absent")
			return err
		}, noop},
		{"clear", func() error { return svc.Clear(ctx, sid) }, change},
		{"clear a cart that is gone", func() error { return svc.Clear(ctx, sid) }, noop},
	}
	for _, c := range cases {
		var err error
		got := trips.during(func() { err = c.call() })
		if err != nil {
			t.Errorf("%s: %v", c.what, err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %d round trips %q, want %q", c.what, len(got), got, c.want)
		}
	}
}

// TestRedisRepeatedWriteAppliesOnce: go-redis sends a command again when
// its reply was lost; the compare-and-set script run twice with the same
// arguments must answer "written" both times, so update does not read the
// cart again and apply its change a second time. Another writer's value,
// even of the same lines, is still refused: every write's bytes are its
// own (doc.Write).
func TestRedisRepeatedWriteAppliesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdbs, prefix := openRedis(t, 1)
	rdb := rdbs[0]
	st := NewRedisStore(rdb, prefix).(*redisStore)
	now := newClock().Now()
	sid := session()
	key := st.key(sid)
	c, err := st.update(ctx, sid, now, func(c *Cart) error {
		c.Lines = append(c.Lines, Line{ProductID: "prd_1", Currency: DefaultCurrency, Quantity: 1, AddedAt: now})
		c.CreatedAt, c.UpdatedAt, c.ExpiresAt = now, now, now.Add(time.Hour)
		return nil
	})
	must(t, err)
	raw, err := rdb.Get(ctx, key).Bytes()
	must(t, err)

	// The next write, as update makes it, sent twice.
	next := toDoc(c)
	next.Version++
	next.Lines[0].Quantity = 2
	next.Write = "w_test_1"
	val, err := json.Marshal(next)
	must(t, err)
	args := []any{"1", raw, "set", val, int64(time.Hour / time.Millisecond)}
	for i := range 2 {
		wrote, err := casScript.Run(ctx, rdb, []string{key}, args...).Int64()
		if err != nil || wrote != 1 {
			t.Fatalf("send %d of the same write: %d %v, want written", i+1, wrote, err)
		}
	}
	// The same lines from another writer's read of the old value: refused.
	next.Write = "w_test_2"
	other, err := json.Marshal(next)
	must(t, err)
	if wrote, err := casScript.Run(ctx, rdb, []string{key}, "1", raw, "set", other, int64(1000)).Int64(); err != nil || wrote != 0 {
		t.Fatalf("a stale writer's write: %d %v, want refused", wrote, err)
	}
	got, err := st.load(ctx, sid, now)
	must(t, err)
	if len(got.Lines) != 1 || got.Lines[0].Quantity != 2 || got.Version != c.Version+1 {
		t.Fatalf("cart after the repeated write: %+v", got)
	}
}

// TestRedisRaceBetweenReadAndWrite: another instance writes the cart after
// update read it and before update writes. The write must notice, read
// again and apply its change to the other instance's cart, so both changes
// survive, whether the other instance changed, created or deleted the
// cart. The other instance's write happens inside the change function,
// which update calls between its read and its write: the race, every time.
func TestRedisRaceBetweenReadAndWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdbs, prefix := openRedis(t, 2)
	st, other := NewRedisStore(rdbs[0], prefix), NewRedisStore(rdbs[1], prefix)
	now := newClock().Now()
	// add is a change as the service makes them: a line, and a renewed life.
	add := func(productID string) func(*Cart) error {
		return func(c *Cart) error {
			c.Lines = append(c.Lines, Line{ProductID: productID, Currency: DefaultCurrency, Quantity: 1, AddedAt: now})
			if c.Version == 0 {
				c.CreatedAt = now
			}
			c.UpdatedAt, c.ExpiresAt = now, now.Add(time.Hour)
			return nil
		}
	}
	remove := func(*Cart) error { return errDelete }
	products := func(c Cart) []string {
		out := []string{}
		for _, l := range c.Lines {
			out = append(out, l.ProductID)
		}
		return out
	}

	cases := []struct {
		what     string
		existing bool              // a cart with line "a" is there before the race
		racer    func(*Cart) error // what the other instance does meanwhile
		change   func(*Cart) error // what the raced update does
		want     []string          // the cart's lines afterwards; nil: no cart
		version  int64
	}{
		{"both change", true, add("b"), add("c"), []string{"a", "b", "c"}, 3},
		{"the other creates", false, add("b"), add("c"), []string{"b", "c"}, 2},
		{"the other deletes", true, remove, add("c"), []string{"c"}, 1},
		{"a delete races a change", true, add("b"), remove, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			sid := session()
			if c.existing {
				_, err := st.update(ctx, sid, now, add("a"))
				must(t, err)
			}
			calls := 0
			got, err := st.update(ctx, sid, now, func(cart *Cart) error {
				calls++
				if calls == 1 {
					if _, err := other.update(ctx, sid, now, c.racer); err != nil {
						return err
					}
				}
				return c.change(cart)
			})
			must(t, err)
			if calls != 2 {
				t.Errorf("change ran %d times, want 2: the first write must fail and be retried", calls)
			}
			stored, err := st.load(ctx, sid, now)
			if c.want == nil {
				wantErr(t, "load after the delete", err, errs.NotFound, "")
				if got.Version != 0 || len(got.Lines) != 0 {
					t.Errorf("update returned %+v, want a fresh cart", got)
				}
				return
			}
			must(t, err)
			if !slices.Equal(products(got), c.want) || got.Version != c.version {
				t.Errorf("update returned lines %q at version %d, want %q at %d", products(got), got.Version, c.want, c.version)
			}
			if !reflect.DeepEqual(stored, got) {
				t.Errorf("stored\n%+v\nupdate returned\n%+v", stored, got)
			}
		})
	}
}
