package product

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// BenchmarkListProducts is the catalog read the README's performance bar
// is about: GET /api/v1/products (first page of 30 products) through the
// whole middleware chain over TCP, 100 concurrent clients.
//
//	go test -run='^$' -bench=ListProducts -benchtime=20000x ./internal/product/
func BenchmarkListProducts(b *testing.B) {
	for _, backend := range testkit.Backends(b) {
		b.Run(backend.Name, func(b *testing.B) {
			svc := New(testkit.OpenDB(b, backend, Name, Migrations))
			ctx := context.Background()
			cat, err := svc.CreateCategory(ctx, NewCategory{Name: "Bench"})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < 30; i++ {
				if _, err := svc.CreateProduct(ctx, NewProduct{SKU: fmt.Sprintf("B-%02d", i), Name: fmt.Sprintf("Bench item %02d", i),
					CategoryID: cat.ID, PriceCents: int64(100 + i), AlertThreshold: 5}); err != nil {
					b.Fatal(err)
				}
			}
			h := testkit.Serve(b, func(s *httpx.Server) { Routes(s.API, svc) })
			url := h.URL + "/api/v1/products"
			testkit.BenchHTTP(b, 100, func() *http.Request {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				return req
			}, http.StatusOK)
		})
	}
}
