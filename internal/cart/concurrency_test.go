package cart

import (
	"context"
	"sync"
	"testing"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestTwoInstances is the fleet's situation: two cart instances, each with
// its own connection to one shared store, changing the same cart at the
// same moment. Every change must survive: no lost update, none applied
// twice.
func TestTwoInstances(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		// Two pools on one database, as two processes would have.
		opts := b.Options(t, Name)
		ctx := context.Background()
		var stores [2]Store
		for i := range stores {
			gdb, err := db.Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close(gdb) })
			must(t, db.Migrate(ctx, gdb, Migrations))
			stores[i] = NewSQLStore(gdb)
		}
		runTwoInstances(t, stores)
	})
	t.Run("redis", func(t *testing.T) {
		rdbs, prefix := openRedis(t, 2)
		runTwoInstances(t, [2]Store{NewRedisStore(rdbs[0], prefix), NewRedisStore(rdbs[1], prefix)})
	})
}

func runTwoInstances(t *testing.T, stores [2]Store) {
	ctx := context.Background()
	catalog := newCatalog(t)
	const n = 50
	ps := addProducts(t, catalog, "CC", n)
	svcs := [2]Service{New(stores[0], catalog, Options{}), New(stores[1], catalog, Options{})}

	// all runs n calls at once, alternating instances, and fails on any error.
	all := func(call func(i int, svc Service) error) {
		t.Helper()
		var wg sync.WaitGroup
		errc := make(chan error, n)
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errc <- call(i, svcs[i%2])
			}()
		}
		close(start)
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("different products", func(t *testing.T) {
		sid := session()
		all(func(i int, svc Service) error {
			_, err := svc.AddItem(ctx, sid, NewItem{ProductID: ps[i].ID, Quantity: 1})
			return err
		})
		c, err := svcs[0].Get(ctx, sid)
		must(t, err)
		seen := map[string]bool{}
		for _, l := range c.Lines {
			if l.Quantity != 1 {
				t.Errorf("line %s has quantity %d", l.ProductID, l.Quantity)
			}
			seen[l.ProductID] = true
		}
		if len(c.Lines) != n || len(seen) != n || c.Version != n {
			t.Fatalf("%d lines (%d products), version %d; want %d of each", len(c.Lines), len(seen), c.Version, n)
		}
	})

	t.Run("same product", func(t *testing.T) {
		sid := session()
		all(func(_ int, svc Service) error {
			_, err := svc.AddItem(ctx, sid, NewItem{ProductID: ps[0].ID, Quantity: 1})
			return err
		})
		c, err := svcs[1].Get(ctx, sid)
		must(t, err)
		if len(c.Lines) != 1 || c.Lines[0].Quantity != n || c.Version != n {
			t.Fatalf("lines %+v, version %d; want one line of %d at version %d", c.Lines, c.Version, n, n)
		}
	})
}
