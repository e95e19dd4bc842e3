package product

import (
	"context"
	"fmt"
	"testing"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestService runs one suite against every adapter of Service: the local
// implementation on each database engine, and Client over HTTP. The same
// assertions hold for all, errors included.
func TestService(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		runSuite(t, func(t *testing.T) Service { return New(testkit.OpenDB(t, b, Name, Migrations)) })
	})
	t.Run("client", func(t *testing.T) {
		runSuite(t, func(t *testing.T) Service {
			local := New(testkit.OpenDB(t, testkit.SQLite, Name, Migrations))
			h := testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, local) })
			return NewClient(h.Client(Name, h.Keys.Admin))
		})
	})
}

func runSuite(t *testing.T, newService func(t *testing.T) Service) {
	ctx := context.Background()
	ptr := func(s string) *string { return &s }

	t.Run("create and get", func(t *testing.T) {
		svc := newService(t)
		cat, err := svc.CreateCategory(ctx, NewCategory{Name: "Beverages"})
		must(t, err)
		p, err := svc.CreateProduct(ctx, NewProduct{SKU: "COF-1", Name: "Coffee 1kg", CategoryID: cat.ID, PriceCents: 1899, AlertThreshold: 5})
		must(t, err)
		if p.ID == "" || p.Currency != "CAD" || !p.Active || p.Version != 1 {
			t.Fatalf("defaults not applied: %+v", p)
		}
		got, err := svc.GetProduct(ctx, p.ID)
		must(t, err)
		if got.SKU != "COF-1" || got.PriceCents != 1899 || got.CategoryID != cat.ID || got.AlertThreshold != 5 || !got.CreatedAt.Equal(p.CreatedAt) {
			t.Fatalf("got %+v, want %+v", got, p)
		}
	})

	t.Run("errors", func(t *testing.T) {
		svc := newService(t)
		_, err := svc.CreateProduct(ctx, NewProduct{SKU: "DUP", Name: "One", PriceCents: 100})
		must(t, err)
		cases := []struct {
			name  string
			in    NewProduct
			kind  *errs.Kind
			field string
		}{
			{"duplicate sku", NewProduct{SKU: "DUP", Name: "Two", PriceCents: 1}, errs.Conflict, ""},
			{"negative price", NewProduct{SKU: "NEG", Name: "Neg", PriceCents: -1}, errs.Invalid, "price_cents"},
			{"empty name", NewProduct{SKU: "NONAME", Name: "  ", PriceCents: 1}, errs.Invalid, "name"},
			{"bad sku", NewProduct{SKU: "a b'; DROP TABLE products;--", Name: "x", PriceCents: 1}, errs.Invalid, "sku"},
			{"unknown category", NewProduct{SKU: "CAT", Name: "x", PriceCents: 1, CategoryID: "cat_nope"}, errs.Invalid, "category_id"},
			{"bad currency", NewProduct{SKU: "CUR", Name: "x", PriceCents: 1, Currency: "dollars"}, errs.Invalid, "currency"},
		}
		for _, c := range cases {
			_, err := svc.CreateProduct(ctx, c.in)
			if !errs.IsKind(err, c.kind) {
				t.Errorf("%s: got %v, want kind %s", c.name, err, c.kind)
				continue
			}
			if c.field != "" && !hasField(err, c.field) {
				t.Errorf("%s: error %v does not name field %q (fields %v)", c.name, err, c.field, errs.Fields(err))
			}
		}
		res, err := svc.ListProducts(ctx, Filter{})
		must(t, err)
		if res.Total != 1 {
			t.Fatalf("failed creates wrote something: %d products", res.Total)
		}
		if _, err := svc.GetProduct(ctx, "prd_missing"); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("get unknown: %v", err)
		}
	})

	t.Run("list filters and paging", func(t *testing.T) {
		svc := newService(t)
		a, _ := svc.CreateCategory(ctx, NewCategory{Name: "A"})
		b, _ := svc.CreateCategory(ctx, NewCategory{Name: "B"})
		var idsA []string
		for i := 0; i < 25; i++ {
			cat := a.ID
			if i%5 == 0 {
				cat = b.ID
			}
			p, err := svc.CreateProduct(ctx, NewProduct{SKU: fmt.Sprintf("SKU-%02d", i), Name: fmt.Sprintf("Item %02d", i), CategoryID: cat, PriceCents: int64(100 + i)})
			must(t, err)
			if cat == a.ID {
				idsA = append(idsA, p.ID)
			}
		}
		_, err := svc.CreateProduct(ctx, NewProduct{SKU: "PCT", Name: "100% Juice_Box", PriceCents: 250})
		must(t, err)
		off := false
		archived, err := svc.CreateProduct(ctx, NewProduct{SKU: "OLD", Name: "Old thing", PriceCents: 1, Active: &off})
		must(t, err)

		cases := []struct {
			name      string
			f         Filter
			total     int64
			pageItems int
		}{
			{"all, first page", Filter{}, 27, 20},
			{"second page", Filter{Page: page.Request{Page: 2, PerPage: 20}}, 27, 7},
			{"category", Filter{CategoryID: b.ID, Page: page.Request{PerPage: 100}}, 5, 5},
			{"search is case-insensitive", Filter{Search: "item 1"}, 10, 10},
			{"percent is literal", Filter{Search: "100%"}, 1, 1},
			{"underscore is literal", Filter{Search: "e_b"}, 1, 1},
			{"quote is literal", Filter{Search: "x' OR '1'='1"}, 0, 0},
			{"archived only", Filter{Active: &off}, 1, 1},
			{"by sku", Filter{SKU: "SKU-03"}, 1, 1},
			{"by ids", Filter{IDs: idsA[:3]}, 3, 3},
			{"empty ids", Filter{IDs: []string{}}, 0, 0},
		}
		for _, c := range cases {
			res, err := svc.ListProducts(ctx, c.f)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if res.Total != c.total || len(res.Items) != c.pageItems {
				t.Errorf("%s: total %d items %d, want %d and %d", c.name, res.Total, len(res.Items), c.total, c.pageItems)
			}
		}
		res, _ := svc.ListProducts(ctx, Filter{Active: &off})
		if len(res.Items) == 1 && res.Items[0].ID != archived.ID {
			t.Errorf("archived filter returned %s", res.Items[0].ID)
		}
	})

	t.Run("update", func(t *testing.T) {
		svc := newService(t)
		p, err := svc.CreateProduct(ctx, NewProduct{SKU: "U1", Name: "Before", Description: "keep me", PriceCents: 500})
		must(t, err)
		_, _ = svc.CreateProduct(ctx, NewProduct{SKU: "U2", Name: "Other", PriceCents: 500})
		price := int64(650)
		v := 1
		up, err := svc.UpdateProduct(ctx, p.ID, ProductUpdate{Name: ptr("After"), PriceCents: &price, Version: &v})
		must(t, err)
		if up.Name != "After" || up.PriceCents != 650 || up.Description != "keep me" || up.Version != 2 {
			t.Fatalf("partial update: %+v", up)
		}
		if _, err := svc.UpdateProduct(ctx, p.ID, ProductUpdate{Name: ptr("Stale"), Version: &v}); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("stale version: %v", err)
		}
		if _, err := svc.UpdateProduct(ctx, p.ID, ProductUpdate{SKU: ptr("U2")}); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("sku taken: %v", err)
		}
		neg := int64(-5)
		if _, err := svc.UpdateProduct(ctx, p.ID, ProductUpdate{PriceCents: &neg}); !errs.IsKind(err, errs.Invalid) || !hasField(err, "price_cents") {
			t.Fatalf("negative price: %v", err)
		}
		if _, err := svc.UpdateProduct(ctx, "prd_missing", ProductUpdate{Name: ptr("x")}); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("unknown: %v", err)
		}
		got, _ := svc.GetProduct(ctx, p.ID)
		if got.Name != "After" || got.SKU != "U1" || got.Version != 2 {
			t.Fatalf("failed updates changed the product: %+v", got)
		}
	})

	t.Run("delete archives", func(t *testing.T) {
		svc := newService(t)
		p, _ := svc.CreateProduct(ctx, NewProduct{SKU: "D1", Name: "Doomed", PriceCents: 1})
		must(t, svc.DeleteProduct(ctx, p.ID))
		must(t, svc.DeleteProduct(ctx, p.ID)) // twice is fine
		got, err := svc.GetProduct(ctx, p.ID)
		must(t, err)
		if got.Active {
			t.Fatal("deleted product still active")
		}
		if err := svc.DeleteProduct(ctx, "prd_missing"); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("delete unknown: %v", err)
		}
	})

	t.Run("categories", func(t *testing.T) {
		svc := newService(t)
		parent, err := svc.CreateCategory(ctx, NewCategory{Name: "Food"})
		must(t, err)
		_, err = svc.CreateCategory(ctx, NewCategory{Name: "Snacks", ParentID: parent.ID})
		must(t, err)
		if _, err := svc.CreateCategory(ctx, NewCategory{Name: "Food"}); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("duplicate: %v", err)
		}
		if _, err := svc.CreateCategory(ctx, NewCategory{Name: "Orphan", ParentID: "cat_nope"}); !errs.IsKind(err, errs.Invalid) {
			t.Fatalf("unknown parent: %v", err)
		}
		cs, err := svc.ListCategories(ctx)
		must(t, err)
		if len(cs) != 2 || cs[0].Name != "Food" || cs[1].ParentID != parent.ID {
			t.Fatalf("categories: %+v", cs)
		}
	})
}

func hasField(err error, field string) bool {
	for _, f := range errs.Fields(err) {
		if f.Field == field {
			return true
		}
	}
	return false
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
