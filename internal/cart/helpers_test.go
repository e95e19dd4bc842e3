package cart

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/redisx"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/product"
)

// clock is a test clock the service reads; tests move it to expire carts.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newCatalog is the real product service on a fresh SQLite file: carts are
// priced by the real thing, not a fake.
func newCatalog(t testing.TB) product.Service {
	t.Helper()
	return product.New(testkit.OpenDB(t, testkit.SQLite, product.Name, product.Migrations))
}

// addProduct creates an active product priced priceCents.
func addProduct(t testing.TB, cat product.Service, sku string, priceCents int64) product.Product {
	t.Helper()
	p, err := cat.CreateProduct(context.Background(), product.NewProduct{SKU: sku, Name: "Product " + sku, PriceCents: priceCents})
	if err != nil {
		t.Fatalf("create product %s: %v", sku, err)
	}
	return p
}

// addProducts creates n products with prices 100, 101, …
func addProducts(t testing.TB, cat product.Service, prefix string, n int) []product.Product {
	t.Helper()
	out := make([]product.Product, n)
	for i := range out {
		out[i] = addProduct(t, cat, fmt.Sprintf("%s-%03d", prefix, i), int64(100+i))
	}
	return out
}

// session makes a fresh, valid session id.
func session() string { return testkit.ID("session") }

// openRedis connects n clients to the test Redis under one key prefix of
// the test's own, and deletes the test's keys when it ends.
func openRedis(t testing.TB, n int) ([]*redis.Client, string) {
	t.Helper()
	url, prefix := testkit.RedisURL(t)
	prefix += "cart:"
	out := make([]*redis.Client, n)
	for i := range out {
		rdb, err := redisx.Open(context.Background(), url)
		if err != nil {
			t.Fatalf("redis: %v", err)
		}
		out[i] = rdb
	}
	t.Cleanup(func() {
		ctx := context.Background()
		iter := out[0].Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			out[0].Del(ctx, iter.Val())
		}
		for _, rdb := range out {
			_ = rdb.Close()
		}
	})
	return out, prefix
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr checks err's kind and, when field is set, that it names field.
func wantErr(t testing.TB, what string, err error, kind *errs.Kind, field string) {
	t.Helper()
	if !errs.IsKind(err, kind) {
		t.Errorf("%s: got %v, want kind %s", what, err, kind)
		return
	}
	if field == "" {
		return
	}
	for _, f := range errs.Fields(err) {
		if f.Field == field {
			return
		}
	}
	t.Errorf("%s: %v does not name field %q (fields %v)", what, err, field, errs.Fields(err))
}
