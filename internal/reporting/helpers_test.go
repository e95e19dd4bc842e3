package reporting

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/product"
)

// clock is a test clock set by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// toronto is the default reporting zone, loaded for the tests' own
// arithmetic.
func toronto(t testing.TB) *time.Location {
	t.Helper()
	loc, err := TimeZone("")
	must(t, err)
	return loc
}

// catalogFixture is a real catalog with the products the tests sell.
type catalogFixture struct {
	svc                       product.Service
	coffee, mug, grinder, tea product.Product
}

func newCatalog(t testing.TB) *catalogFixture {
	t.Helper()
	c := &catalogFixture{svc: product.New(testkit.OpenDB(t, testkit.SQLite, product.Name, product.Migrations))}
	mk := func(sku, name string, price int64, threshold int) product.Product {
		p, err := c.svc.CreateProduct(context.Background(), product.NewProduct{SKU: sku, Name: name, PriceCents: price, AlertThreshold: threshold})
		must(t, err)
		return p
	}
	c.coffee = mk("COF-1", "Coffee beans 1 kg", 1899, 10)
	c.mug = mk("MUG-1", "Mug", 500, 5)
	c.grinder = mk("GRN-1", "Burr grinder", 12345, 2)
	c.tea = mk("TEA-1", "Tea tin", 299, 3)
	return c
}

// fixture is the reporting context under test: the Service (local, or
// Client over HTTP), the local implementation behind it, its consumer and
// database, the catalog and the clock.
type fixture struct {
	svc      Service
	local    *service
	consumer *Consumer
	db       *gorm.DB
	cat      *catalogFixture
	clock    *clock
	o        Options
}

// suiteNow is the suites' "now": 11:00 on 2025-06-02 in Toronto.
var suiteNow = time.Date(2025, 6, 2, 15, 0, 0, 0, time.UTC)

func newFixture(t testing.TB, b testkit.Backend, overHTTP bool) *fixture {
	t.Helper()
	f := &fixture{db: testkit.OpenDB(t, b, Name, Migrations), cat: newCatalog(t), clock: newClock(suiteNow)}
	f.o = Options{Now: f.clock.Now, Logger: testkit.Logger()}
	f.local = New(f.db, f.cat.svc, f.o).(*service)
	f.consumer = NewConsumer(f.db, f.o)
	f.svc = f.local
	if overHTTP {
		h := testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, f.local) })
		f.svc = NewClient(h.Client(Name, h.Keys.Admin))
	}
	return f
}

// apply hands envs to the consumer, as the bus would.
func (f *fixture) apply(t testing.TB, envs ...events.Envelope) {
	t.Helper()
	for _, env := range envs {
		if err := f.consumer.Handle(context.Background(), env); err != nil {
			t.Fatalf("apply %s %s: %v", env.EventType, env.EventID, err)
		}
	}
}

// newEvent builds an envelope with events.New, as producers do, happening
// at occurred.
func newEvent(t testing.TB, eventType, aggregateID string, version int64, occurred time.Time, data any) events.Envelope {
	t.Helper()
	env, err := events.New(context.Background(), eventType, aggregateID, version, data)
	must(t, err)
	env.OccurredAt = occurred.UTC().Truncate(time.Microsecond)
	return env
}

// The catalog's payloads (docs/events.md), one builder per event type.

// line is one line of a test event: a catalog product (or, for products
// the catalog does not know, productID, sku and name), its quantity and
// amounts (net is after discount, before tax; an order line's total).
type line struct {
	product             product.Product
	qty, net, tax, disc int64
	productID, sku      string
	name                string
}

func (l line) id() string {
	if l.productID != "" {
		return l.productID
	}
	return l.product.ID
}

func (l line) skuOf() string {
	if l.sku != "" {
		return l.sku
	}
	return l.product.SKU
}

// saleCompletedEvent is a SaleCompleted at loc, completed at at.
func saleCompletedEvent(t testing.TB, saleID, loc string, at time.Time, lines ...line) events.Envelope {
	t.Helper()
	var sub, disc, tax int64
	var ls []map[string]any
	for _, l := range lines {
		sub += l.net
		disc += l.disc
		tax += l.tax
		ls = append(ls, map[string]any{"product_id": l.id(), "sku": l.skuOf(), "quantity": l.qty,
			"unit_price_cents": (l.net + l.disc) / l.qty, "discount_cents": l.disc, "net_cents": l.net, "tax_cents": l.tax})
	}
	return newEvent(t, evSaleCompleted, saleID, 2, at, map[string]any{
		"sale_id": saleID, "location_id": loc, "register_id": "reg-1", "cashier_id": "c-1", "lines": ls,
		"subtotal_cents": sub, "discount_cents": disc, "tax_cents": tax, "total_cents": sub + tax, "currency": "CAD",
		"tenders": []map[string]any{{"method": "cash", "amount_cents": sub + tax}}, "completed_at": at.UTC().Format(time.RFC3339Nano),
	})
}

// saleReturnedEvent is a SaleReturned at loc, returned at at.
func saleReturnedEvent(t testing.TB, returnID, saleID, loc string, at time.Time, lines ...line) events.Envelope {
	t.Helper()
	var sub, tax int64
	var ls []map[string]any
	for _, l := range lines {
		sub += l.net
		tax += l.tax
		ls = append(ls, map[string]any{"product_id": l.id(), "sku": l.skuOf(), "quantity": l.qty, "net_cents": l.net, "tax_cents": l.tax})
	}
	return newEvent(t, evSaleReturned, saleID, 3, at, map[string]any{
		"return_id": returnID, "sale_id": saleID, "location_id": loc, "register_id": "reg-1", "lines": ls,
		"refund_cents": sub + tax, "tax_cents": tax, "currency": "CAD",
		"refunds": []map[string]any{{"method": "cash", "amount_cents": sub + tax}}, "returned_at": at.UTC().Format(time.RFC3339Nano),
	})
}

// orderConfirmedEvent is an OrderConfirmed at loc; a line's net is its
// line_total_cents.
func orderConfirmedEvent(t testing.TB, orderID, loc string, at time.Time, tax int64, lines ...line) events.Envelope {
	t.Helper()
	var sub int64
	var ls []map[string]any
	for _, l := range lines {
		sub += l.net
		name := l.name
		if name == "" {
			name = l.product.Name
		}
		ls = append(ls, map[string]any{"product_id": l.id(), "sku": l.skuOf(), "name": name, "quantity": l.qty,
			"unit_price_cents": l.net / l.qty, "line_total_cents": l.net})
	}
	return newEvent(t, evOrderConfirmed, orderID, 1, at, map[string]any{
		"order_id": orderID, "customer_id": "cus-1", "location_id": loc, "lines": ls,
		"subtotal_cents": sub, "tax_cents": tax, "total_cents": sub + tax, "currency": "CAD",
		"confirmed_at": at.UTC().Format(time.RFC3339Nano),
	})
}

// orderCancelledEvent is an OrderCancelled as the catalog has it: lines
// with product and quantity, the total, no subtotal or tax.
func orderCancelledEvent(t testing.TB, orderID, loc string, at time.Time, total int64) events.Envelope {
	t.Helper()
	return newEvent(t, evOrderCancelled, orderID, 2, at, map[string]any{
		"order_id": orderID, "customer_id": "cus-1", "location_id": loc, "lines": []map[string]any{},
		"total_cents": total, "currency": "CAD", "cancelled_at": at.UTC().Format(time.RFC3339Nano),
	})
}

func checkoutCompletedEvent(t testing.TB, sagaID string, at time.Time) events.Envelope {
	t.Helper()
	return newEvent(t, evCheckoutCompleted, sagaID, 6, at, map[string]any{
		"saga_id": sagaID, "order_id": "ord-" + sagaID, "customer_id": "cus-1", "total_cents": 1000, "currency": "CAD",
		"duration_ms": 120, "completed_at": at.UTC().Format(time.RFC3339Nano),
	})
}

func checkoutFailedEvent(t testing.TB, sagaID string, at time.Time) events.Envelope {
	t.Helper()
	return newEvent(t, evCheckoutFailed, sagaID, 5, at, map[string]any{
		"saga_id": sagaID, "customer_id": "cus-1", "failed_step": "payment", "reason": "declined", "compensated": true,
		"failed_at": at.UTC().Format(time.RFC3339Nano),
	})
}

func stockChangedEvent(t testing.TB, productID, loc string, version, onHand, reserved int64, at time.Time) events.Envelope {
	t.Helper()
	return newEvent(t, evStockChanged, productID+"@"+loc, version, at, map[string]any{
		"product_id": productID, "location_id": loc, "on_hand": onHand, "reserved": reserved,
		"available": onHand - reserved, "delta_on_hand": 0, "delta_reserved": 0, "reason": "count",
	})
}

// tableDump reads every aggregate table, rows in key order, as text: two
// dumps are equal when the read models are.
func tableDump(t testing.TB, gdb *gorm.DB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, table := range aggregateTables {
		rows, err := gdb.Raw(`SELECT * FROM ` + table + ` ORDER BY 1, 2, 3`).Rows()
		must(t, err)
		cols, err := rows.Columns()
		must(t, err)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			must(t, rows.Scan(ptrs...))
			line := ""
			for i, v := range vals {
				if tm, ok := v.(time.Time); ok {
					v = tm.UTC().Format(time.RFC3339Nano)
				}
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				line += fmt.Sprintf("%s=%v ", cols[i], v)
			}
			out[table] = append(out[table], line)
		}
		must(t, rows.Err())
		_ = rows.Close()
	}
	return out
}

// sameDump reports the first difference between two dumps.
func sameDump(t testing.TB, what string, want, got map[string][]string) {
	t.Helper()
	for _, table := range aggregateTables {
		w, g := want[table], got[table]
		if len(w) != len(g) {
			t.Errorf("%s: %s has %d rows, want %d\n got %v\nwant %v", what, table, len(g), len(w), g, w)
			continue
		}
		for i := range w {
			if w[i] != g[i] {
				t.Errorf("%s: %s row %d:\n got %s\nwant %s", what, table, i, g[i], w[i])
			}
		}
	}
}

// waitFor polls cond until it holds or the (generous) deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// wantKind asserts err's kind and, when field is set, that it names field.
func wantKind(t testing.TB, err error, kind *errs.Kind, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", kind.Name())
	}
	if errs.KindOf(err) != kind {
		t.Fatalf("error %v is %s, want %s", err, errs.KindOf(err).Name(), kind.Name())
	}
	if field == "" {
		return
	}
	for _, fe := range errs.Fields(err) {
		if fe.Field == field {
			return
		}
	}
	t.Fatalf("error %v does not name %q (fields %v)", err, field, errs.Fields(err))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
