package sales

import (
	"context"
	"testing"

	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/platform/testkit"
)

// BenchmarkSale measures a whole sale through the local service: priced
// from the real catalog, written pending, its stock reserved and committed
// in the real inventory, completed; on SQLite and (when
// POS_TEST_POSTGRES_URL is set) PostgreSQL. Sequential is one register;
// parallel is every register of a busy store after the same stock rows,
// the worst case for contention.
//
//	go test -run='^$' -bench=Sale -benchtime=200x ./internal/sales/
func BenchmarkSale(b *testing.B) {
	for _, be := range testkit.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			f := newFixture(b, be, false)
			ctx := context.Background()
			f.receive(b, f.coffee.ID, f.mtl.ID, inventory.MaxDelta)
			f.receive(b, f.mug.ID, f.mtl.ID, inventory.MaxDelta)
			reg, _ := f.till(b, f.mtl)
			in := saleAt(reg, []SaleLineInput{line(f.coffee, 1, 0), line(f.mug, 2, 10)}, cash(10000))
			b.Run("sequential", func(b *testing.B) {
				for b.Loop() {
					if _, err := f.svc.CreateSale(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := f.svc.CreateSale(ctx, in); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}
