package cart

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/tax"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/product"
)

// fixture is one adapter under test, with the catalog it prices from and
// the clock it reads.
type fixture struct {
	svc     Service
	catalog product.Service
	clock   *clock
}

// TestService runs one suite against every adapter of Service: the local
// service on the SQL store (SQLite, PostgreSQL) and on the Redis store,
// and Client over HTTP. The same assertions hold for all, errors included.
func TestService(t *testing.T) {
	t.Parallel()
	local := func(t *testing.T, st Store) fixture {
		f := fixture{catalog: newCatalog(t), clock: newClock()}
		f.svc = New(st, f.catalog, Options{Now: f.clock.Now})
		return f
	}
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		runSuite(t, func(t *testing.T) fixture { return local(t, NewSQLStore(testkit.OpenDB(t, b, Name, Migrations))) })
	})
	t.Run("redis", func(t *testing.T) {
		runSuite(t, func(t *testing.T) fixture {
			rdb, prefix := openRedis(t, 1)
			return local(t, NewRedisStore(rdb[0], prefix))
		})
	})
	t.Run("client", func(t *testing.T) {
		runSuite(t, func(t *testing.T) fixture {
			f := local(t, NewSQLStore(testkit.OpenDB(t, testkit.SQLite, Name, Migrations)))
			h := testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, f.svc) })
			// The checkout saga's view: the service key.
			f.svc = NewClient(h.Client(Name, h.Keys.Service))
			return f
		})
	})
}

func runSuite(t *testing.T, open func(t *testing.T) fixture) {
	ctx := context.Background()

	t.Run("add, merge, set and remove", func(t *testing.T) {
		f := open(t)
		a := addProduct(t, f.catalog, "A-1", 1899)
		b := addProduct(t, f.catalog, "B-1", 250)
		sid := session()
		start := f.clock.Now()

		c, err := f.svc.AddItem(ctx, sid, NewItem{ProductID: a.ID, Quantity: 2})
		must(t, err)
		want := Line{ProductID: a.ID, SKU: "A-1", Name: "Product A-1", UnitPriceCents: 1899, Currency: "CAD",
			Quantity: 2, LineTotalCents: 3798, AddedAt: start}
		if len(c.Lines) != 1 || !reflect.DeepEqual(c.Lines[0], want) {
			t.Fatalf("first add: %+v, want one line %+v", c.Lines, want)
		}
		if c.SessionID != sid || c.Version != 1 || c.CustomerID != "" || c.Currency != "CAD" ||
			!c.CreatedAt.Equal(start) || !c.ExpiresAt.Equal(start.Add(DefaultTTL)) {
			t.Fatalf("new cart: %+v", c)
		}

		f.clock.Advance(time.Minute)
		c, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: a.ID, Quantity: 3})
		must(t, err)
		if len(c.Lines) != 1 || c.Lines[0].Quantity != 5 || c.Lines[0].LineTotalCents != 9495 || !c.Lines[0].AddedAt.Equal(start) {
			t.Fatalf("merge: %+v", c.Lines)
		}
		if c.Version != 2 || !c.CreatedAt.Equal(start) || !c.UpdatedAt.Equal(start.Add(time.Minute)) {
			t.Fatalf("merge bookkeeping: %+v", c)
		}

		c, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: b.ID, Quantity: 4})
		must(t, err)
		if len(c.Lines) != 2 || c.Lines[0].ProductID != a.ID || c.Lines[1].ProductID != b.ID ||
			c.SubtotalCents != 9495+1000 || c.ItemCount != 9 {
			t.Fatalf("second product: %+v", c)
		}

		c, err = f.svc.SetQuantity(ctx, sid, a.ID, 1)
		must(t, err)
		if c.Lines[0].Quantity != 1 || c.SubtotalCents != 1899+1000 {
			t.Fatalf("set: %+v", c)
		}

		c, err = f.svc.RemoveItem(ctx, sid, b.ID)
		must(t, err)
		if len(c.Lines) != 1 || c.Lines[0].ProductID != a.ID || c.SubtotalCents != 1899 || c.ItemCount != 1 {
			t.Fatalf("remove: %+v", c)
		}
		again, err := f.svc.RemoveItem(ctx, sid, b.ID)
		must(t, err)
		if again.Version != c.Version || len(again.Lines) != 1 {
			t.Fatalf("removing a missing line changed the cart: %+v", again)
		}
		_, err = f.svc.SetQuantity(ctx, sid, b.ID, 1)
		wantErr(t, "set a line not in the cart", err, errs.NotFound, "")

		got, err := f.svc.Get(ctx, sid)
		must(t, err)
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("get:\n%+v\nwant\n%+v", got, c)
		}

		// Removing the last line leaves an empty cart, still there.
		c, err = f.svc.RemoveItem(ctx, sid, a.ID)
		must(t, err)
		if len(c.Lines) != 0 || c.SubtotalCents != 0 || c.Currency != "CAD" {
			t.Fatalf("emptied cart: %+v", c)
		}
		if _, err := f.svc.Get(ctx, sid); err != nil {
			t.Fatalf("emptied cart is gone: %v", err)
		}
	})

	t.Run("price is the catalog's at add time", func(t *testing.T) {
		f := open(t)
		p := addProduct(t, f.catalog, "P-1", 1000)
		sid := session()
		_, err := f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
		must(t, err)

		price, name := int64(1500), "Renamed"
		_, err = f.catalog.UpdateProduct(ctx, p.ID, product.ProductUpdate{PriceCents: &price, Name: &name})
		must(t, err)
		c, err := f.svc.Get(ctx, sid)
		must(t, err)
		if c.Lines[0].UnitPriceCents != 1000 || c.Lines[0].Name != "Product P-1" {
			t.Fatalf("a catalog change repriced the line: %+v", c.Lines[0])
		}
		// Adding more of it keeps the line's price: the shopper accepted it.
		c, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
		must(t, err)
		if c.Lines[0].UnitPriceCents != 1000 || c.Lines[0].LineTotalCents != 2000 {
			t.Fatalf("merge repriced the line: %+v", c.Lines[0])
		}
		// A new line takes today's price.
		q := addProduct(t, f.catalog, "P-2", 777)
		c, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: q.ID, Quantity: 2})
		must(t, err)
		if c.Lines[1].UnitPriceCents != 777 || c.SubtotalCents != 2000+1554 {
			t.Fatalf("new line: %+v", c)
		}
	})

	t.Run("catalog refusals write nothing", func(t *testing.T) {
		f := open(t)
		p := addProduct(t, f.catalog, "GONE", 100)
		must(t, f.catalog.DeleteProduct(ctx, p.ID))
		usd, err := f.catalog.CreateProduct(ctx, product.NewProduct{SKU: "USD-1", Name: "Imported", PriceCents: 100, Currency: "USD"})
		must(t, err)
		sid := session()
		_, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
		wantErr(t, "archived product", err, errs.Conflict, "")
		_, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: "prd_missing", Quantity: 1})
		wantErr(t, "unknown product", err, errs.Invalid, "product_id")
		_, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: "", Quantity: 1})
		wantErr(t, "empty product id", err, errs.Invalid, "product_id")
		if _, err := f.svc.Get(ctx, sid); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("refused adds created a cart: %v", err)
		}

		// One cart, one currency.
		cad := addProduct(t, f.catalog, "CAD-1", 100)
		_, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: cad.ID, Quantity: 1})
		must(t, err)
		_, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: usd.ID, Quantity: 1})
		wantErr(t, "second currency", err, errs.Conflict, "")
		other := session()
		c, err := f.svc.AddItem(ctx, other, NewItem{ProductID: usd.ID, Quantity: 1})
		must(t, err)
		if c.Currency != "USD" {
			t.Fatalf("a USD cart says %s", c.Currency)
		}
	})

	t.Run("quantity and line limits", func(t *testing.T) {
		f := open(t)
		p := addProduct(t, f.catalog, "Q-1", 100)
		sid := session()
		for _, q := range []int{0, -1, MaxQuantity + 1} {
			_, err := f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: q})
			wantErr(t, "add quantity "+strconv.Itoa(q), err, errs.Invalid, "quantity")
		}
		if _, err := f.svc.Get(ctx, sid); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("refused adds created a cart: %v", err)
		}
		_, err := f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: MaxQuantity})
		must(t, err)
		_, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
		wantErr(t, "merge over the limit", err, errs.Conflict, "")
		for _, q := range []int{0, -5, MaxQuantity + 1} {
			_, err := f.svc.SetQuantity(ctx, sid, p.ID, q)
			wantErr(t, "set quantity "+strconv.Itoa(q), err, errs.Invalid, "quantity")
		}
		c, err := f.svc.Get(ctx, sid)
		must(t, err)
		if c.Lines[0].Quantity != MaxQuantity || c.Version != 1 {
			t.Fatalf("refused changes wrote: %+v", c)
		}

		ps := addProducts(t, f.catalog, "L", MaxLines+1)
		full := session()
		for _, p := range ps[:MaxLines] {
			_, err := f.svc.AddItem(ctx, full, NewItem{ProductID: p.ID, Quantity: 1})
			must(t, err)
		}
		_, err = f.svc.AddItem(ctx, full, NewItem{ProductID: ps[MaxLines].ID, Quantity: 1})
		wantErr(t, "line over the limit", err, errs.Conflict, "")
		c, err = f.svc.AddItem(ctx, full, NewItem{ProductID: ps[0].ID, Quantity: 1})
		must(t, err)
		if len(c.Lines) != MaxLines || c.Lines[0].Quantity != 2 {
			t.Fatalf("a full cart: %d lines, first %+v", len(c.Lines), c.Lines[0])
		}
	})

	t.Run("bad ids", func(t *testing.T) {
		f := open(t)
		p := addProduct(t, f.catalog, "ID-1", 100)
		for _, sid := range []string{"", "short", strings.Repeat("a", 129), "has spaces in it, twenty", "../../../etc/passwd", "sessión-with-accent-1"} {
			_, err := f.svc.Get(ctx, sid)
			wantErr(t, "get "+sid, err, errs.Invalid, "session_id")
			_, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
			wantErr(t, "add "+sid, err, errs.Invalid, "session_id")
			_, err = f.svc.SetQuantity(ctx, sid, p.ID, 1)
			wantErr(t, "set "+sid, err, errs.Invalid, "session_id")
			_, err = f.svc.RemoveItem(ctx, sid, p.ID)
			wantErr(t, "remove "+sid, err, errs.Invalid, "session_id")
			wantErr(t, "clear "+sid, f.svc.Clear(ctx, sid), errs.Invalid, "session_id")
			_, err = f.svc.Calculate(ctx, sid, "QC")
			wantErr(t, "calculate "+sid, err, errs.Invalid, "session_id")
			_, err = f.svc.AttachCustomer(ctx, sid, "cus_1")
			wantErr(t, "attach "+sid, err, errs.Invalid, "session_id")
		}
		sid := session()
		_, err := f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
		must(t, err)
		for _, pid := range []string{"", "a/b", strings.Repeat("p", 65)} {
			_, err = f.svc.SetQuantity(ctx, sid, pid, 1)
			wantErr(t, "set product "+pid, err, errs.Invalid, "product_id")
			_, err = f.svc.RemoveItem(ctx, sid, pid)
			wantErr(t, "remove product "+pid, err, errs.Invalid, "product_id")
		}
		for _, cid := range []string{"", "cus 1", strings.Repeat("c", 65)} {
			_, err = f.svc.AttachCustomer(ctx, sid, cid)
			wantErr(t, "attach customer "+cid, err, errs.Invalid, "customer_id")
		}
		c, err := f.svc.Get(ctx, sid)
		must(t, err)
		if c.Version != 1 || c.CustomerID != "" {
			t.Fatalf("refused calls wrote: %+v", c)
		}
	})

	t.Run("unknown session", func(t *testing.T) {
		f := open(t)
		p := addProduct(t, f.catalog, "U-1", 100)
		sid := session()
		_, err := f.svc.Get(ctx, sid)
		wantErr(t, "get", err, errs.NotFound, "")
		_, err = f.svc.SetQuantity(ctx, sid, p.ID, 1)
		wantErr(t, "set", err, errs.NotFound, "")
		_, err = f.svc.RemoveItem(ctx, sid, p.ID)
		wantErr(t, "remove", err, errs.NotFound, "")
		_, err = f.svc.Calculate(ctx, sid, "QC")
		wantErr(t, "calculate", err, errs.NotFound, "")
		_, err = f.svc.AttachCustomer(ctx, sid, "cus_1")
		wantErr(t, "attach", err, errs.NotFound, "")
		must(t, f.svc.Clear(ctx, sid))
		if _, err := f.svc.Get(ctx, sid); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("calls on an unknown session created a cart: %v", err)
		}
	})

	t.Run("clear is idempotent", func(t *testing.T) {
		f := open(t)
		p := addProduct(t, f.catalog, "C-1", 100)
		sid := session()
		_, err := f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 3})
		must(t, err)
		_, err = f.svc.AttachCustomer(ctx, sid, "cus_clear")
		must(t, err)
		must(t, f.svc.Clear(ctx, sid))
		_, err = f.svc.Get(ctx, sid)
		wantErr(t, "get after clear", err, errs.NotFound, "")
		must(t, f.svc.Clear(ctx, sid))
		// The session starts over: a new, anonymous cart.
		c, err := f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
		must(t, err)
		if len(c.Lines) != 1 || c.Lines[0].Quantity != 1 || c.CustomerID != "" {
			t.Fatalf("cart after clear: %+v", c)
		}
	})

	t.Run("calculate per province", func(t *testing.T) {
		f := open(t)
		a := addProduct(t, f.catalog, "T-A", 2000)
		b := addProduct(t, f.catalog, "T-B", 1000)
		sid := session()
		_, err := f.svc.AddItem(ctx, sid, NewItem{ProductID: a.ID, Quantity: 1})
		must(t, err)
		cart, err := f.svc.AddItem(ctx, sid, NewItem{ProductID: b.ID, Quantity: 10})
		must(t, err)
		// Lines of 20.00 and 100.00, taxed line by line.
		cases := []struct {
			province string
			code     string
			taxes    []tax.TaxLine
			total    int64
		}{
			{"QC", "QC", []tax.TaxLine{{Name: "GST", Rate: "5%", RatePPM: 50_000, AmountCents: 600}, {Name: "QST", Rate: "9.975%", RatePPM: 99_750, AmountCents: 1198}}, 13798},
			{"qc", "QC", []tax.TaxLine{{Name: "GST", Rate: "5%", RatePPM: 50_000, AmountCents: 600}, {Name: "QST", Rate: "9.975%", RatePPM: 99_750, AmountCents: 1198}}, 13798},
			{"ON", "ON", []tax.TaxLine{{Name: "HST", Rate: "13%", RatePPM: 130_000, AmountCents: 1560}}, 13560},
			{"NS", "NS", []tax.TaxLine{{Name: "HST", Rate: "14%", RatePPM: 140_000, AmountCents: 1680}}, 13680},
			{"NB", "NB", []tax.TaxLine{{Name: "HST", Rate: "15%", RatePPM: 150_000, AmountCents: 1800}}, 13800},
			{"BC", "BC", []tax.TaxLine{{Name: "GST", Rate: "5%", RatePPM: 50_000, AmountCents: 600}, {Name: "PST", Rate: "7%", RatePPM: 70_000, AmountCents: 840}}, 13440},
			{"AB", "AB", []tax.TaxLine{{Name: "GST", Rate: "5%", RatePPM: 50_000, AmountCents: 600}}, 12600},
		}
		for _, c := range cases {
			q, err := f.svc.Calculate(ctx, sid, c.province)
			if err != nil {
				t.Errorf("%s: %v", c.province, err)
				continue
			}
			if q.Province != c.code || q.SubtotalCents != 12000 || q.TotalCents != c.total ||
				q.TaxCents != c.total-12000 || !reflect.DeepEqual(q.Taxes, c.taxes) {
				t.Errorf("%s: %+v", c.province, q)
			}
			if q.SessionID != sid || q.Currency != "CAD" || q.CartVersion != cart.Version || !reflect.DeepEqual(q.Lines, cart.Lines) {
				t.Errorf("%s: quote does not carry the cart: %+v", c.province, q)
			}
		}
		for _, p := range []string{"ZZ", "", "Quebec"} {
			_, err := f.svc.Calculate(ctx, sid, p)
			wantErr(t, "province "+p, err, errs.Invalid, "province")
		}
		// Pricing reads: the cart did not change.
		got, err := f.svc.Get(ctx, sid)
		must(t, err)
		if got.Version != cart.Version {
			t.Fatalf("calculate wrote the cart: version %d -> %d", cart.Version, got.Version)
		}
	})

	t.Run("expiry after inactivity", func(t *testing.T) {
		f := open(t)
		p := addProduct(t, f.catalog, "E-1", 100)
		q := addProduct(t, f.catalog, "E-2", 200)
		sid := session()
		_, err := f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
		must(t, err)
		_, err = f.svc.AttachCustomer(ctx, sid, "cus_expiry")
		must(t, err)

		// Reading does not keep a cart alive; changing it does.
		f.clock.Advance(23 * time.Hour)
		if _, err := f.svc.Get(ctx, sid); err != nil {
			t.Fatalf("cart gone before its time: %v", err)
		}
		c, err := f.svc.SetQuantity(ctx, sid, p.ID, 2)
		must(t, err)
		if !c.ExpiresAt.Equal(f.clock.Now().Add(DefaultTTL)) {
			t.Fatalf("a change did not extend the cart: expires %v", c.ExpiresAt)
		}
		f.clock.Advance(DefaultTTL - time.Second)
		if _, err := f.svc.Get(ctx, sid); err != nil {
			t.Fatalf("cart gone a second before its time: %v", err)
		}
		f.clock.Advance(time.Second)
		_, err = f.svc.Get(ctx, sid)
		wantErr(t, "get expired", err, errs.NotFound, "")
		_, err = f.svc.SetQuantity(ctx, sid, p.ID, 1)
		wantErr(t, "set expired", err, errs.NotFound, "")
		_, err = f.svc.Calculate(ctx, sid, "ON")
		wantErr(t, "calculate expired", err, errs.NotFound, "")

		// The session starts over: no old lines, no owner.
		c, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: q.ID, Quantity: 1})
		must(t, err)
		if len(c.Lines) != 1 || c.Lines[0].ProductID != q.ID || c.CustomerID != "" || !c.CreatedAt.Equal(f.clock.Now()) {
			t.Fatalf("cart after expiry: %+v", c)
		}
	})

	t.Run("customer ownership", func(t *testing.T) {
		f := open(t)
		p := addProduct(t, f.catalog, "O-1", 100)
		sid := session()
		_, err := f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
		must(t, err)
		c, err := f.svc.AttachCustomer(ctx, sid, "cus_A")
		must(t, err)
		if c.CustomerID != "cus_A" || c.Version != 2 {
			t.Fatalf("attach: %+v", c)
		}
		again, err := f.svc.AttachCustomer(ctx, sid, "cus_A")
		must(t, err)
		if again.Version != c.Version {
			t.Fatalf("attaching the owner again wrote: %+v", again)
		}
		_, err = f.svc.AttachCustomer(ctx, sid, "cus_B")
		wantErr(t, "attach another customer", err, errs.Conflict, "")
		// Changes keep the owner.
		c, err = f.svc.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
		must(t, err)
		if c.CustomerID != "cus_A" || c.Lines[0].Quantity != 2 {
			t.Fatalf("after attach: %+v", c)
		}
		q, err := f.svc.Calculate(ctx, sid, "QC")
		must(t, err)
		if q.CustomerID != "cus_A" {
			t.Fatalf("quote lost the customer: %+v", q)
		}
	})
}
