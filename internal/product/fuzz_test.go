package product

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/retailco/pos/internal/platform/httpx"
)

// FuzzCreateProduct throws arbitrary bodies at POST /products: the answer
// is never a 5xx, a 201 means the product is really there, and anything
// else wrote nothing.
func FuzzCreateProduct(f *testing.F) {
	for _, seed := range []string{
		`{"sku":"A","name":"a","price_cents":1}`,
		`{"sku":"A","name":"a","price_cents":-1}`,
		`{"sku":"","name":"","price_cents":0}`,
		`{"sku":"A'--","name":"a","price_cents":9223372036854775807}`,
		`{"sku":"A","name":"a","price_cents":1,"active":false,"currency":"USD","alert_threshold":3}`,
		`{"sku":"A","name":"\u0000","price_cents":1}`,
		`[1,2,3]`, `null`, `{`, `{"sku":1}`,
	} {
		f.Add(seed)
	}
	h, svc := serveCatalog(f)
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, body string) {
		before, err := svc.ListProducts(ctx, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/api/v1/products", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", h.Keys.Admin)
		rec := httptest.NewRecorder()
		h.Server.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("5xx for %q: %d %s", body, rec.Code, rec.Body)
		}
		after, err := svc.ListProducts(ctx, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case rec.Code == http.StatusCreated && after.Total != before.Total+1:
			t.Fatalf("201 but %d -> %d products", before.Total, after.Total)
		case rec.Code != http.StatusCreated && after.Total != before.Total:
			t.Fatalf("%d but %d -> %d products", rec.Code, before.Total, after.Total)
		case rec.Code != http.StatusCreated && !strings.HasPrefix(rec.Header().Get("Content-Type"), httpx.ProblemContentType):
			t.Fatalf("%d without problem+json: %s", rec.Code, rec.Header().Get("Content-Type"))
		}
	})
}
