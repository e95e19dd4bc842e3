package order

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/tax"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestService runs one suite against every adapter of Service: the local
// implementation on each database engine, and Client over HTTP (with the
// service key, as the saga calls it in the fleet). The same assertions
// hold for all, errors included.
func TestService(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		runSuite(t, func(t *testing.T) Service { return New(testkit.OpenDB(t, b, Name, Migrations)) })
	})
	t.Run("client", func(t *testing.T) {
		runSuite(t, func(t *testing.T) Service {
			local := New(testkit.OpenDB(t, testkit.SQLite, Name, Migrations))
			h := testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, local) })
			return NewClient(h.Client(Name, h.Keys.Service))
		})
	})
}

// newOrder is a valid two-line order for Québec (GST 5 % + QST 9.975 %),
// its amounts computed by package tax as the cart computes them.
func newOrder(t testing.TB, sagaID, customerID string) NewOrder {
	t.Helper()
	lines := []OrderLine{
		{ProductID: "prd_a", SKU: "A-1", Name: "Coffee", UnitPriceCents: 1899, Quantity: 2, LineTotalCents: 3798},
		{ProductID: "prd_b", SKU: "B-1", Name: "Mug", UnitPriceCents: 1250, Quantity: 1, LineTotalCents: 1250},
	}
	res, err := tax.Compute("QC", []tax.Line{{Key: "prd_a", AmountCents: 3798}, {Key: "prd_b", AmountCents: 1250}})
	if err != nil {
		t.Fatal(err)
	}
	return NewOrder{
		SagaID: sagaID, CustomerID: customerID, LocationID: "loc_online", PaymentID: "pay_1", ReservationID: sagaID,
		Lines: lines, ShippingAddress: ShippingAddress{Name: "Ada Tremblay", Line1: "1 rue Sainte-Catherine", City: "Montréal",
			Province: "qc", PostalCode: "h2x1y4"},
		SubtotalCents: res.SubtotalCents, Taxes: res.Taxes, TaxCents: res.TaxCents, TotalCents: res.TotalCents,
	}
}

func runSuite(t *testing.T, newService func(t *testing.T) Service) {
	ctx := context.Background()

	t.Run("create and get", func(t *testing.T) {
		svc := newService(t)
		in := newOrder(t, "sga_1", "cus_1")
		o, err := svc.CreateOrder(ctx, in)
		must(t, err)
		if o.ID == "" || o.Status != StatusConfirmed || o.ConfirmedAt == nil || o.Currency != "CAD" || o.Version != 1 {
			t.Fatalf("created order: %+v", o)
		}
		if a := o.ShippingAddress; a.Province != "QC" || a.PostalCode != "H2X 1Y4" || a.Country != "CA" {
			t.Fatalf("address not normalized: %+v", a)
		}
		got, err := svc.GetOrder(ctx, o.ID)
		must(t, err)
		if got.TotalCents != in.TotalCents || got.TotalCents != 5048+757 || len(got.Lines) != 2 || got.Lines[1].Name != "Mug" ||
			len(got.Taxes) != 2 || got.Taxes[1].Name != "QST" || got.Taxes[1].AmountCents != 504 || got.SagaID != "sga_1" ||
			got.PaymentID != "pay_1" || got.ReservationID != "sga_1" || !got.CreatedAt.Equal(o.CreatedAt) {
			t.Fatalf("got %+v\nwant %+v", got, o)
		}
		if _, err := svc.GetOrder(ctx, "ord_missing"); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("unknown order: %v", err)
		}
	})

	t.Run("idempotent on saga id", func(t *testing.T) {
		svc := newService(t)
		in := newOrder(t, "sga_same", "cus_1")
		first, err := svc.CreateOrder(ctx, in)
		must(t, err)
		// Concurrent repeats, as a resumed saga racing its old self would
		// send: one order, every caller gets it.
		var wg sync.WaitGroup
		got := make([]Order, 8)
		errsOf := make([]error, 8)
		for i := range got {
			wg.Add(1)
			go func() { defer wg.Done(); got[i], errsOf[i] = svc.CreateOrder(ctx, in) }()
		}
		wg.Wait()
		for i := range got {
			if errsOf[i] != nil || got[i].ID != first.ID {
				t.Fatalf("repeat %d: %v %s, want order %s", i, errsOf[i], got[i].ID, first.ID)
			}
		}
		other := newOrder(t, "sga_same", "cus_2")
		if _, err := svc.CreateOrder(ctx, other); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("saga id reused for another customer: %v", err)
		}
		res, err := svc.ListOrders(ctx, Filter{SagaID: "sga_same"})
		must(t, err)
		if res.Total != 1 {
			t.Fatalf("%d orders for one saga", res.Total)
		}
	})

	t.Run("invalid orders write nothing", func(t *testing.T) {
		svc := newService(t)
		cases := []struct {
			name  string
			edit  func(*NewOrder)
			field string
		}{
			{"no saga id", func(o *NewOrder) { o.SagaID = "" }, "saga_id"},
			{"bad saga id", func(o *NewOrder) { o.SagaID = "x'; DROP TABLE orders;--" }, "saga_id"},
			{"no customer", func(o *NewOrder) { o.CustomerID = "" }, "customer_id"},
			{"no lines", func(o *NewOrder) { o.Lines = nil }, "lines"},
			{"zero quantity", func(o *NewOrder) { o.Lines[0].Quantity = 0 }, "lines[0].quantity"},
			{"line total", func(o *NewOrder) { o.Lines[1].LineTotalCents = 1 }, "lines[1].line_total_cents"},
			{"duplicate product", func(o *NewOrder) { o.Lines[1].ProductID = "prd_a" }, "lines[1].product_id"},
			{"subtotal", func(o *NewOrder) { o.SubtotalCents++ }, "subtotal_cents"},
			{"tax sum", func(o *NewOrder) { o.TaxCents++ }, "tax_cents"},
			{"total", func(o *NewOrder) { o.TotalCents++ }, "total_cents"},
			{"province", func(o *NewOrder) { o.ShippingAddress.Province = "ZZ" }, "shipping_address.province"},
			{"postal code", func(o *NewOrder) { o.ShippingAddress.PostalCode = "90210" }, "shipping_address.postal_code"},
			{"country", func(o *NewOrder) { o.ShippingAddress.Country = "US" }, "shipping_address.country"},
			{"city", func(o *NewOrder) { o.ShippingAddress.City = " " }, "shipping_address.city"},
			{"currency", func(o *NewOrder) { o.Currency = "dollars" }, "currency"},
		}
		for i, c := range cases {
			in := newOrder(t, fmt.Sprintf("sga_bad_%d", i), "cus_1")
			c.edit(&in)
			_, err := svc.CreateOrder(ctx, in)
			if !errs.IsKind(err, errs.Invalid) || !hasField(err, c.field) {
				t.Errorf("%s: got %v (fields %v), want invalid %s", c.name, err, errs.Fields(err), c.field)
			}
		}
		res, err := svc.ListOrders(ctx, Filter{})
		must(t, err)
		if res.Total != 0 {
			t.Fatalf("invalid orders wrote %d rows", res.Total)
		}
	})

	t.Run("transitions", func(t *testing.T) {
		svc := newService(t)
		mk := func(saga string) Order {
			o, err := svc.CreateOrder(ctx, newOrder(t, saga, "cus_1"))
			must(t, err)
			return o
		}
		a := mk("sga_t1")
		// confirmed → shipped → delivered, each timestamped once.
		shipped, err := svc.UpdateStatus(ctx, a.ID, StatusShipped)
		must(t, err)
		if shipped.Status != StatusShipped || shipped.ShippedAt == nil || shipped.Version != 2 {
			t.Fatalf("shipped: %+v", shipped)
		}
		again, err := svc.UpdateStatus(ctx, a.ID, StatusShipped)
		must(t, err)
		if again.Version != 2 || !again.ShippedAt.Equal(*shipped.ShippedAt) {
			t.Fatalf("repeating a status changed the order: %+v", again)
		}
		delivered, err := svc.UpdateStatus(ctx, a.ID, StatusDelivered)
		must(t, err)
		if delivered.Status != StatusDelivered || delivered.DeliveredAt == nil {
			t.Fatalf("delivered: %+v", delivered)
		}
		b := mk("sga_t2")
		cancelled, err := svc.MarkCancelled(ctx, b.ID)
		must(t, err)
		if cancelled.Status != StatusCancelled || cancelled.CancelledAt == nil {
			t.Fatalf("cancelled: %+v", cancelled)
		}
		twice, err := svc.MarkCancelled(ctx, b.ID)
		must(t, err)
		if twice.Version != cancelled.Version || !twice.CancelledAt.Equal(*cancelled.CancelledAt) {
			t.Fatalf("cancelling twice changed the order: %+v", twice)
		}
		c := mk("sga_t3")
		conflicts := []struct {
			name string
			do   func() error
		}{
			{"confirmed → delivered", func() error { _, err := svc.UpdateStatus(ctx, c.ID, StatusDelivered); return err }},
			{"delivered → shipped", func() error { _, err := svc.UpdateStatus(ctx, a.ID, StatusShipped); return err }},
			{"cancelled → shipped", func() error { _, err := svc.UpdateStatus(ctx, b.ID, StatusShipped); return err }},
			{"cancel delivered", func() error { _, err := svc.MarkCancelled(ctx, a.ID); return err }},
		}
		for _, cc := range conflicts {
			if err := cc.do(); !errs.IsKind(err, errs.Conflict) {
				t.Errorf("%s: %v, want conflict", cc.name, err)
			}
		}
		_, err = svc.UpdateStatus(ctx, c.ID, StatusShipped)
		must(t, err)
		if _, err := svc.MarkCancelled(ctx, c.ID); !errs.IsKind(err, errs.Conflict) {
			t.Errorf("cancel shipped: %v, want conflict", err)
		}
		if _, err := svc.UpdateStatus(ctx, c.ID, StatusCancelled); !errs.IsKind(err, errs.Invalid) {
			t.Errorf("cancel through UpdateStatus: %v, want invalid", err)
		}
		if _, err := svc.UpdateStatus(ctx, "ord_missing", StatusShipped); !errs.IsKind(err, errs.NotFound) {
			t.Errorf("unknown order: %v", err)
		}
		if _, err := svc.MarkCancelled(ctx, "ord_missing"); !errs.IsKind(err, errs.NotFound) {
			t.Errorf("cancel unknown order: %v", err)
		}
	})

	t.Run("concurrent cancels all succeed once", func(t *testing.T) {
		svc := newService(t)
		o, err := svc.CreateOrder(ctx, newOrder(t, "sga_cc", "cus_1"))
		must(t, err)
		var wg sync.WaitGroup
		errsOf := make([]error, 10)
		for i := range errsOf {
			wg.Add(1)
			go func() { defer wg.Done(); _, errsOf[i] = svc.MarkCancelled(ctx, o.ID) }()
		}
		wg.Wait()
		for i, err := range errsOf {
			if err != nil {
				t.Fatalf("cancel %d: %v", i, err)
			}
		}
		got, err := svc.GetOrder(ctx, o.ID)
		must(t, err)
		if got.Status != StatusCancelled || got.Version != 2 {
			t.Fatalf("after concurrent cancels: %+v", got)
		}
	})

	t.Run("list, paging and totals", func(t *testing.T) {
		svc := newService(t)
		var last, lastA Order
		for i := range 7 {
			cus := "cus_a"
			if i%3 == 0 {
				cus = "cus_b"
			}
			o, err := svc.CreateOrder(ctx, newOrder(t, fmt.Sprintf("sga_l%d", i), cus))
			must(t, err)
			last = o
			if cus == "cus_a" {
				lastA = o
			}
		}
		first, err := svc.ListOrders(ctx, Filter{CustomerID: "cus_a"})
		must(t, err)
		if first.Total != 4 || len(first.Items) != 4 || first.Items[0].ID != lastA.ID || len(first.Items[0].Lines) != 2 {
			t.Fatalf("customer a: total %d, first of %d is %s, want %s", first.Total, len(first.Items), first.Items[0].ID, lastA.ID)
		}
		_, err = svc.MarkCancelled(ctx, last.ID)
		must(t, err)
		_, err = svc.UpdateStatus(ctx, first.Items[1].ID, StatusShipped)
		must(t, err)
		cases := []struct {
			name        string
			f           Filter
			total       int64
			items       int
			wantFirstID string
		}{
			{"all", Filter{}, 7, 7, last.ID},
			{"paged", Filter{Page: page.Request{Page: 2, PerPage: 3}}, 7, 3, ""},
			{"last page", Filter{Page: page.Request{Page: 3, PerPage: 3}}, 7, 1, ""},
			{"cancelled", Filter{Status: StatusCancelled}, 1, 1, last.ID},
			{"shipped of a", Filter{Status: StatusShipped, CustomerID: "cus_a"}, 1, 1, first.Items[1].ID},
			{"confirmed of b (one cancelled)", Filter{Status: StatusConfirmed, CustomerID: "cus_b"}, 2, 2, ""},
			{"pending", Filter{Status: StatusPending}, 0, 0, ""},
		}
		for _, c := range cases {
			res, err := svc.ListOrders(ctx, c.f)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if res.Total != c.total || len(res.Items) != c.items || (c.wantFirstID != "" && res.Items[0].ID != c.wantFirstID) {
				t.Errorf("%s: total %d items %d, want %d and %d", c.name, res.Total, len(res.Items), c.total, c.items)
			}
		}
		if _, err := svc.ListOrders(ctx, Filter{Status: "lost"}); !errs.IsKind(err, errs.Invalid) {
			t.Errorf("unknown status filter: %v", err)
		}
		tot, err := svc.Totals(ctx, "")
		must(t, err)
		each := last.TotalCents
		if tot.PaidCount != 6 || tot.PaidCents != 6*each || tot.CancelledCount != 1 || tot.CancelledCents != each ||
			tot.ByStatus[StatusShipped] != 1 || tot.ByStatus[StatusConfirmed] != 5 || tot.ByStatus[StatusPending] != 0 {
			t.Fatalf("totals: %+v", tot)
		}
		usd, err := svc.Totals(ctx, "USD")
		must(t, err)
		if usd.PaidCount != 0 || len(usd.ByStatus) != len(Statuses) {
			t.Fatalf("USD totals: %+v", usd)
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

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
