package product

import (
	"context"
	"errors"
	"testing"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestListNeverServesAStalePage: list pages and products by id are cached,
// yet every change
// is seen by the next list, whoever made it: this process, another
// process on the same database (a second service: its own cache), or an
// operator with SQL. The price is what matters most: a cart must never be
// priced from a page that predates a change.
func TestListNeverServesAStalePage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		gdb := testkit.OpenDB(t, b, Name, Migrations)
		svc, other := New(gdb), New(gdb)
		p, err := svc.CreateProduct(ctx, NewProduct{SKU: "C-1", Name: "Cached", PriceCents: 100})
		must(t, err)
		price := func(s Service) int64 {
			t.Helper()
			res, err := s.ListProducts(ctx, Filter{})
			must(t, err)
			if len(res.Items) != 1 || res.Total != 1 {
				t.Fatalf("list: %+v", res)
			}
			return res.Items[0].PriceCents
		}
		if got := price(svc); got != 100 {
			t.Fatalf("price %d", got)
		}
		if got := price(svc); got != 100 { // from the cache now
			t.Fatalf("price %d", got)
		}
		// GetProduct is what carts price lines with.
		unitPrice := func(s Service) int64 {
			t.Helper()
			got, err := s.GetProduct(ctx, p.ID)
			must(t, err)
			return got.PriceCents
		}
		for range 2 { // the second from the cache
			if got := unitPrice(svc); got != 100 {
				t.Fatalf("GetProduct price %d", got)
			}
		}

		steps := []struct {
			name   string
			change func()
			want   int64
		}{
			{"this process", func() {
				_, err := svc.UpdateProduct(ctx, p.ID, ProductUpdate{PriceCents: ptrTo(int64(200))})
				must(t, err)
			}, 200},
			{"another process", func() {
				_, err := other.UpdateProduct(ctx, p.ID, ProductUpdate{PriceCents: ptrTo(int64(300))})
				must(t, err)
			}, 300},
			{"by hand", func() {
				must(t, gdb.Exec(`UPDATE products SET price_cents = 400`).Error)
			}, 400},
		}
		for _, s := range steps {
			s.change()
			if got := price(svc); got != s.want {
				t.Errorf("after a change by %s: price %d, want %d", s.name, got, s.want)
			}
			if got := price(other); got != s.want {
				t.Errorf("after a change by %s, the other process: price %d, want %d", s.name, got, s.want)
			}
			if got := unitPrice(svc); got != s.want {
				t.Errorf("after a change by %s: GetProduct price %d, want %d", s.name, got, s.want)
			}
			if got := unitPrice(other); got != s.want {
				t.Errorf("after a change by %s, the other process: GetProduct price %d, want %d", s.name, got, s.want)
			}
		}
		// A product deleted by hand is gone at once, not served from the cache.
		must(t, gdb.Exec(`INSERT INTO products (id, sku, name, description, price_cents, currency, alert_threshold, active, version, created_at, updated_at)
			SELECT 'prd_gone', 'C-GONE', name, description, price_cents, currency, alert_threshold, active, version, created_at, updated_at FROM products WHERE id = ?`, p.ID).Error)
		if _, err := svc.GetProduct(ctx, "prd_gone"); err != nil {
			t.Fatalf("GetProduct of a product inserted by hand: %v", err)
		}
		must(t, gdb.Exec(`DELETE FROM products WHERE id = 'prd_gone'`).Error)
		if _, err := svc.GetProduct(ctx, "prd_gone"); !errors.Is(err, errs.NotFound) {
			t.Errorf("GetProduct after a delete by hand: %v, want NotFound", err)
		}

		// New and archived products change the totals too.
		_, err = other.CreateProduct(ctx, NewProduct{SKU: "C-2", Name: "Second", PriceCents: 1})
		must(t, err)
		res, err := svc.ListProducts(ctx, Filter{})
		must(t, err)
		if res.Total != 2 || len(res.Items) != 2 {
			t.Errorf("after a create elsewhere: %d of %d", len(res.Items), res.Total)
		}
		must(t, gdb.Exec(`DELETE FROM products WHERE sku = 'C-2'`).Error)
		res, err = svc.ListProducts(ctx, Filter{})
		must(t, err)
		if res.Total != 1 {
			t.Errorf("after a delete by hand: total %d", res.Total)
		}
	})
}

// TestListAnswersAreCopies: a caller that changes a page it was given
// changes nothing for the next caller.
func TestListAnswersAreCopies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := New(testkit.OpenDB(t, testkit.SQLite, Name, Migrations))
	_, err := svc.CreateProduct(ctx, NewProduct{SKU: "K-1", Name: "Kept", PriceCents: 100})
	must(t, err)
	for range 2 {
		res, err := svc.ListProducts(ctx, Filter{Page: page.Request{Page: 1, PerPage: 5}})
		must(t, err)
		if res.Items[0].Name != "Kept" || res.Items[0].PriceCents != 100 {
			t.Fatalf("the cached page was changed by a caller: %+v", res.Items[0])
		}
		res.Items[0].Name, res.Items[0].PriceCents = "Changed", 1
	}
}

// TestPageKeysTellFiltersApart: two filters that may answer differently
// never share a cached page.
func TestPageKeysTellFiltersApart(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	filters := []Filter{
		{}, {IDs: []string{}}, {IDs: []string{"a", "b"}}, {IDs: []string{"a,b"}}, {IDs: []string{"a\x00b"}},
		{IDs: []string{"1:a"}}, {IDs: []string{"", "1:a"}}, {Active: &yes}, {Active: &no},
		{Search: "a"}, {SKU: "a"}, {CategoryID: "a"}, {Page: page.Request{Page: 2, PerPage: 20}},
		{Page: page.Request{Page: 1, PerPage: 10}},
	}
	seen := map[pageKey]int{}
	for i, f := range filters {
		f.Page = f.Page.Normalize()
		k := keyOf(f)
		if j, dup := seen[k]; dup {
			t.Errorf("filters %d and %d share the key %+v", j, i, k)
		}
		seen[k] = i
	}
}

func ptrTo[T any](v T) *T { return &v }
