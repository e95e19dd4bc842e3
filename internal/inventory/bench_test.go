package inventory

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/retailco/pos/internal/platform/testkit"
)

// BenchmarkReserve measures the checkout's hot path, reserve then release,
// on SQLite and (when POS_TEST_POSTGRES_URL is set) PostgreSQL: once in
// sequence, once from parallel callers all after the same stock row (the
// worst case for contention).
func BenchmarkReserve(b *testing.B) {
	for _, be := range testkit.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			f := newFixture(b, be, false)
			p, loc := f.product(b, "BENCH", 0), f.location(b, "BENCH")
			f.receive(b, p, loc, MaxDelta)
			ctx := context.Background()
			var seq atomic.Int64
			cycle := func() error {
				id := fmt.Sprintf("bench-%d", seq.Add(1))
				if _, err := f.svc.Reserve(ctx, NewReservation{ReservationID: id, Items: []ReservationItem{{p, loc, 1}}}); err != nil {
					return err
				}
				_, err := f.svc.ReleaseReservation(ctx, id)
				return err
			}
			b.Run("sequential", func(b *testing.B) {
				for b.Loop() {
					if err := cycle(); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := cycle(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}
