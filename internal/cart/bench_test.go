package cart

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/retailco/pos/internal/platform/testkit"
)

// BenchmarkAddItem measures the cart's hot write, AddItem through the local
// service (catalog read, the store's read-modify-write), on each store,
// with parallel shoppers each filling carts of their own.
//
//	POS_TEST_POSTGRES_URL=… POS_TEST_REDIS_URL=… go test -run='^$' -bench=AddItem ./internal/cart/
func BenchmarkAddItem(b *testing.B) {
	for _, backend := range testkit.Backends(b) {
		b.Run(backend.Name, func(b *testing.B) {
			benchAddItem(b, NewSQLStore(testkit.OpenDB(b, backend, Name, Migrations)))
		})
	}
	b.Run("redis", func(b *testing.B) {
		rdb, prefix := openRedis(b, 1)
		benchAddItem(b, NewRedisStore(rdb[0], prefix))
	})
}

func benchAddItem(b *testing.B, st Store) {
	ctx := context.Background()
	catalog := newCatalog(b)
	ps := addProducts(b, catalog, "BENCH", 20)
	svc := New(st, catalog, Options{})
	var shopper atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := shopper.Add(1)
		for n := 0; pb.Next(); n++ {
			// A new cart every 50 adds keeps carts realistic (20 lines,
			// a few units each) and far from the limits.
			sid := fmt.Sprintf("bench-shopper-%04d-%08d", id, n/50)
			if _, err := svc.AddItem(ctx, sid, NewItem{ProductID: ps[n%len(ps)].ID, Quantity: 1}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
