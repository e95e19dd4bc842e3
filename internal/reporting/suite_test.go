package reporting

import (
	"context"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/product"
)

// TestService runs one suite against every adapter of Service: the local
// implementation on each database engine, and Client over HTTP. The read
// model is fed by handing the catalog's events to the Consumer, as the bus
// does.
func TestService(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		t.Parallel()
		runSuite(t, func(t *testing.T) *fixture { return newFixture(t, b, false) })
	})
	t.Run("client", func(t *testing.T) {
		t.Parallel()
		runSuite(t, func(t *testing.T) *fixture { return newFixture(t, testkit.SQLite, true) })
	})
}

// Locations of the scenario.
const (
	mtl = "loc-mtl"
	tor = "loc-tor"
	web = "loc-web"
)

// fig builds expected figures: the total is revenue + tax, the refund
// returned + returned tax.
func fig(sales, units, disc, rev, tax, returns, rUnits, returned, rTax int64) Figures {
	return Figures{SalesCount: sales, Units: units, DiscountCents: disc, RevenueCents: rev, TaxCents: tax, TotalCents: rev + tax,
		ReturnsCount: returns, ReturnedUnits: rUnits, ReturnedCents: returned, ReturnedTaxCents: rTax, RefundedCents: returned + rTax,
	}.withNet()
}

// sum adds figures up.
func sum(fs ...Figures) Figures {
	var out Figures
	for _, f := range fs {
		out.add(f)
	}
	return out.withNet()
}

// The scenario's figures per (day, location, channel), worked out by hand
// from the events loadScenario applies.
var (
	mtlJun1 = fig(1, 3, 380, 3918, 587, 0, 0, 0, 0)    // S1: 2 coffee (10 % off) + 1 mug
	torJun1 = fig(1, 1, 0, 1899, 247, 0, 0, 0, 0)      // S2: at 23:30 Toronto time, 03:30 UTC on June 2
	webJun1 = fig(1, 1, 0, 1899, 285, 0, 0, 0, 0)      // O2 confirmed
	mtlJun2 = fig(1, 1, 0, 12345, 1851, 1, 1, 500, 75) // S3: a grinder; R1: S1's mug back
	webJun2 = fig(1, 5, 0, 2098, 315, 1, 1, 1899, 285) // O1 confirmed; O2 cancelled
	allDays = sum(mtlJun1, torJun1, webJun1, mtlJun2, webJun2)
)

// loadScenario applies two days of activity at two stores and the web
// shop, checkouts over three weeks and stock rows, some events out of
// order.
func loadScenario(t testing.TB, f *fixture) []events.Envelope {
	t.Helper()
	c := f.cat
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		must(t, err)
		return tm
	}
	envs := []events.Envelope{
		saleCompletedEvent(t, "sal-1", mtl, at("2025-06-01T14:00:00Z"),
			line{product: c.coffee, qty: 2, net: 3418, tax: 512, disc: 380}, line{product: c.mug, qty: 1, net: 500, tax: 75}),
		saleCompletedEvent(t, "sal-2", tor, at("2025-06-02T03:30:00Z"), line{product: c.coffee, qty: 1, net: 1899, tax: 247}),
		orderConfirmedEvent(t, "ord-2", web, at("2025-06-01T16:00:00Z"), 285, line{product: c.coffee, qty: 1, net: 1899}),
		saleCompletedEvent(t, "sal-3", mtl, at("2025-06-02T13:00:00Z"), line{product: c.grinder, qty: 1, net: 12345, tax: 1851}),
		saleReturnedEvent(t, "ret-1", "sal-1", mtl, at("2025-06-02T14:00:00Z"), line{product: c.mug, qty: 1, net: 500, tax: 75}),
		orderConfirmedEvent(t, "ord-1", web, at("2025-06-02T12:00:00Z"), 315,
			line{product: c.mug, qty: 3, net: 1500}, line{product: c.tea, qty: 2, net: 598}),
		orderCancelledEvent(t, "ord-2", web, at("2025-06-02T10:00:00Z"), 2184),
		checkoutCompletedEvent(t, "sg-1", at("2025-06-02T12:00:00Z")),
		checkoutCompletedEvent(t, "sg-2", at("2025-06-02T12:10:00Z")),
		checkoutCompletedEvent(t, "sg-3", at("2025-06-02T12:20:00Z")),
		checkoutFailedEvent(t, "sg-4", at("2025-06-02T12:30:00Z")),
		checkoutCompletedEvent(t, "sg-5", at("2025-05-28T15:00:00Z")),
		checkoutFailedEvent(t, "sg-6", at("2025-05-28T15:00:00Z")),
		checkoutFailedEvent(t, "sg-7", at("2025-05-20T15:00:00Z")), // before the 7 days
		stockChangedEvent(t, c.coffee.ID, mtl, 1, 10, 0, at("2025-06-01T12:00:00Z")),
		stockChangedEvent(t, c.coffee.ID, mtl, 3, 8, 1, at("2025-06-02T13:00:00Z")),
		stockChangedEvent(t, c.coffee.ID, mtl, 2, 9, 0, at("2025-06-01T14:00:00Z")), // older, arrives late: ignored
		stockChangedEvent(t, c.mug.ID, mtl, 1, 2, 0, at("2025-06-01T12:00:00Z")),
		stockChangedEvent(t, c.tea.ID, web, 1, 0, 0, at("2025-06-01T12:00:00Z")),
		stockChangedEvent(t, c.grinder.ID, tor, 1, 4, 0, at("2025-06-01T12:00:00Z")),
	}
	f.apply(t, envs...)
	return envs
}

func runSuite(t *testing.T, newFixture func(t *testing.T) *fixture) {
	ctx := context.Background()

	t.Run("sales report", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		loadScenario(t, f)
		rep, err := f.svc.SalesReport(ctx, SalesQuery{From: "2025-06-01", To: "2025-06-02"})
		must(t, err)
		if rep.From != "2025-06-01" || rep.To != "2025-06-02" || rep.TimeZone != "America/Toronto" || rep.Currency != "CAD" {
			t.Errorf("header: %+v", rep)
		}
		wantFigures(t, "totals", rep.Totals, allDays)
		if len(rep.ByDay) != 2 || rep.ByDay[0].Day != "2025-06-01" || rep.ByDay[1].Day != "2025-06-02" {
			t.Fatalf("by day: %+v", rep.ByDay)
		}
		// sal-2 at 03:30 UTC on June 2 is 23:30 on June 1 in Toronto.
		wantFigures(t, "June 1", rep.ByDay[0].Figures, sum(mtlJun1, torJun1, webJun1))
		wantFigures(t, "June 2", rep.ByDay[1].Figures, sum(mtlJun2, webJun2))
		wantLocations(t, rep.ByLocation, map[string]Figures{mtl: sum(mtlJun1, mtlJun2), tor: torJun1, web: sum(webJun1, webJun2)})
		if len(rep.ByChannel) != 2 || rep.ByChannel[0].Channel != ChannelPOS || rep.ByChannel[1].Channel != ChannelOnline {
			t.Fatalf("by channel: %+v", rep.ByChannel)
		}
		wantFigures(t, "pos", rep.ByChannel[0].Figures, sum(mtlJun1, torJun1, mtlJun2))
		wantFigures(t, "online", rep.ByChannel[1].Figures, sum(webJun1, webJun2))
		if got := allDays; got.NetRevenueCents != 22159-2399 || got.NetTotalCents != 25444-2759 {
			t.Fatalf("hand-worked totals are off: %+v", got) // guards the expectations themselves
		}

		// Filters.
		rep, err = f.svc.SalesReport(ctx, SalesQuery{From: "2025-06-01", To: "2025-06-02", LocationID: mtl})
		must(t, err)
		wantFigures(t, "MTL", rep.Totals, sum(mtlJun1, mtlJun2))
		wantLocations(t, rep.ByLocation, map[string]Figures{mtl: sum(mtlJun1, mtlJun2)})
		rep, err = f.svc.SalesReport(ctx, SalesQuery{From: "2025-06-01", To: "2025-06-02", Channel: ChannelOnline})
		must(t, err)
		wantFigures(t, "online only", rep.Totals, sum(webJun1, webJun2))
		if len(rep.ByChannel) != 1 || rep.ByChannel[0].Channel != ChannelOnline || rep.Channel != ChannelOnline {
			t.Errorf("online only, by channel: %+v", rep.ByChannel)
		}
		rep, err = f.svc.SalesReport(ctx, SalesQuery{From: "2025-06-01", To: "2025-06-02", LocationID: tor, Channel: ChannelOnline})
		must(t, err)
		wantFigures(t, "TOR online", rep.Totals, Figures{})
		if len(rep.ByDay) != 2 || len(rep.ByLocation) != 0 || len(rep.ByChannel) != 1 {
			t.Errorf("empty slice: %+v", rep)
		}

		// Date-times stand for their day in Toronto: both are June 1 there.
		rep, err = f.svc.SalesReport(ctx, SalesQuery{From: "2025-06-02T03:00:00Z", To: "2025-06-01T23:59:59-04:00"})
		must(t, err)
		if rep.From != "2025-06-01" || rep.To != "2025-06-01" {
			t.Fatalf("date-time range resolved to %s..%s", rep.From, rep.To)
		}
		wantFigures(t, "June 1 by date-times", rep.Totals, sum(mtlJun1, torJun1, webJun1))

		// Default: the last 30 days, today (June 2) included.
		rep, err = f.svc.SalesReport(ctx, SalesQuery{})
		must(t, err)
		if rep.From != "2025-05-04" || rep.To != "2025-06-02" || len(rep.ByDay) != 30 {
			t.Fatalf("default range %s..%s with %d days", rep.From, rep.To, len(rep.ByDay))
		}
		wantFigures(t, "default range", rep.Totals, allDays)
		rep, err = f.svc.SalesReport(ctx, SalesQuery{To: "2025-06-01"})
		must(t, err)
		if rep.From != "2025-05-03" {
			t.Fatalf("from defaults to 29 days before to: %s", rep.From)
		}
		wantFigures(t, "up to June 1", rep.Totals, sum(mtlJun1, torJun1, webJun1))
	})

	t.Run("top products", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		loadScenario(t, f)
		c := f.cat
		top, err := f.svc.TopProducts(ctx, TopQuery{From: "2025-06-01", To: "2025-06-02"})
		must(t, err)
		want := []ProductFigures{
			{Rank: 1, ProductID: c.grinder.ID, SKU: "GRN-1", Name: "Burr grinder", UnitsSold: 1, NetUnits: 1, RevenueCents: 12345, NetRevenueCents: 12345},
			{Rank: 2, ProductID: c.coffee.ID, SKU: "COF-1", Name: "Coffee beans 1 kg", UnitsSold: 4, UnitsReturned: 1, NetUnits: 3,
				RevenueCents: 3418 + 1899 + 1899, ReturnedCents: 1899, NetRevenueCents: 3418 + 1899},
			{Rank: 3, ProductID: c.mug.ID, SKU: "MUG-1", Name: "Mug", UnitsSold: 4, UnitsReturned: 1, NetUnits: 3,
				RevenueCents: 2000, ReturnedCents: 500, NetRevenueCents: 1500},
			{Rank: 4, ProductID: c.tea.ID, SKU: "TEA-1", Name: "Tea tin", UnitsSold: 2, NetUnits: 2, RevenueCents: 598, NetRevenueCents: 598},
		}
		if !reflect.DeepEqual(top.Products, want) {
			t.Fatalf("top products:\n got %+v\nwant %+v", top.Products, want)
		}
		top, err = f.svc.TopProducts(ctx, TopQuery{From: "2025-06-01", To: "2025-06-02", Limit: 2})
		must(t, err)
		if !reflect.DeepEqual(top.Products, want[:2]) {
			t.Fatalf("limit 2: %+v", top.Products)
		}
		top, err = f.svc.TopProducts(ctx, TopQuery{From: "2025-06-01", To: "2025-06-02", Channel: ChannelPOS})
		must(t, err)
		if len(top.Products) != 3 || top.Products[0].ProductID != c.grinder.ID || top.Products[1].NetUnits != 3 ||
			top.Products[2].ProductID != c.mug.ID || top.Products[2].NetUnits != 0 || top.Products[2].NetRevenueCents != 0 {
			t.Fatalf("pos only: %+v", top.Products)
		}
		top, err = f.svc.TopProducts(ctx, TopQuery{From: "2025-05-01", To: "2025-05-31"})
		must(t, err)
		if top.Products == nil || len(top.Products) != 0 {
			t.Fatalf("a month without sales ranks %+v, want an empty list", top.Products)
		}
	})

	t.Run("products the catalog does not know are named from the events", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		day := time.Date(2025, 6, 2, 14, 0, 0, 0, time.UTC)
		f.apply(t,
			saleCompletedEvent(t, "sal-x", mtl, day, line{productID: "prd-gone", sku: "OLD-1", qty: 1, net: 900, tax: 0}),
			orderConfirmedEvent(t, "ord-x", web, day, 0, line{productID: "prd-kettle", sku: "KET-1", name: "Retired kettle", qty: 1, net: 800}),
		)
		top, err := f.svc.TopProducts(ctx, TopQuery{From: "2025-06-02", To: "2025-06-02"})
		must(t, err)
		if len(top.Products) != 2 || top.Products[0].Name != "OLD-1" || top.Products[0].SKU != "OLD-1" ||
			top.Products[1].Name != "Retired kettle" || top.Products[1].SKU != "KET-1" {
			t.Fatalf("names: %+v", top.Products)
		}
	})

	t.Run("inventory report", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		loadScenario(t, f)
		c := f.cat
		rep, err := f.svc.InventoryReport(ctx, InventoryQuery{})
		must(t, err)
		wantStock := StockFigures{Products: 4, OnHand: 14, Reserved: 1, Available: 13,
			StockValueCents: 8*1899 + 2*500 + 4*12345, LowStockCount: 3}
		if rep.Totals != wantStock || rep.Currency != "CAD" {
			t.Errorf("totals %+v, want %+v", rep.Totals, wantStock)
		}
		if len(rep.Locations) != 3 || rep.Locations[0].LocationID != mtl || rep.Locations[1].LocationID != tor || rep.Locations[2].LocationID != web {
			t.Fatalf("locations: %+v", rep.Locations)
		}
		m := rep.Locations[0]
		if m.StockFigures != (StockFigures{Products: 2, OnHand: 10, Reserved: 1, Available: 9, StockValueCents: 8*1899 + 2*500, LowStockCount: 2}) {
			t.Errorf("MTL: %+v", m.StockFigures)
		}
		// The emptiest shelf first; coffee's version 2 (arriving after 3) did not count.
		if len(m.LowStock) != 2 || m.LowStock[0].ProductID != c.mug.ID || m.LowStock[1].ProductID != c.coffee.ID {
			t.Fatalf("MTL low stock: %+v", m.LowStock)
		}
		if r := m.LowStock[1]; r.OnHand != 8 || r.Reserved != 1 || r.Available != 7 || r.AlertThreshold != 10 || r.PriceCents != 1899 ||
			r.ValueCents != 8*1899 || !r.LowStock || r.Name != "Coffee beans 1 kg" || r.SKU != "COF-1" || r.UpdatedAt.IsZero() {
			t.Errorf("coffee row: %+v", r)
		}
		if tr := rep.Locations[1]; tr.LowStockCount != 0 || len(tr.LowStock) != 0 || tr.StockValueCents != 4*12345 {
			t.Errorf("TOR: %+v", tr)
		}
		if w := rep.Locations[2]; w.LowStockCount != 1 || w.LowStock[0].ProductID != c.tea.ID || w.LowStock[0].Available != 0 {
			t.Errorf("web: %+v", w)
		}
		one, err := f.svc.InventoryReport(ctx, InventoryQuery{LocationID: tor})
		must(t, err)
		if len(one.Locations) != 1 || one.Locations[0].LocationID != tor || one.Totals.Products != 1 {
			t.Fatalf("TOR only: %+v", one)
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		envs := loadScenario(t, f)
		c := f.cat
		d, err := f.svc.Dashboard(ctx)
		must(t, err)
		if d.Day != "2025-06-02" || d.TimeZone != "America/Toronto" || !d.GeneratedAt.Equal(suiteNow) {
			t.Errorf("header: %s %s %s", d.Day, d.TimeZone, d.GeneratedAt)
		}
		wantFigures(t, "today", d.Today, sum(mtlJun2, webJun2))
		if len(d.ByChannel) != 2 {
			t.Fatalf("by channel: %+v", d.ByChannel)
		}
		wantFigures(t, "today pos", d.ByChannel[0].Figures, mtlJun2)
		wantFigures(t, "today online", d.ByChannel[1].Figures, webJun2)
		wantLocations(t, d.ByLocation, map[string]Figures{mtl: mtlJun2, web: webJun2})
		if d.OrdersToday != 1 {
			t.Errorf("orders today: %d", d.OrdersToday)
		}
		// Today: the grinder; mugs online less the one returned at the
		// till; tea; the cancelled order's coffee, negative.
		var ranked []string
		for _, p := range d.TopProducts {
			ranked = append(ranked, p.ProductID)
		}
		if !reflect.DeepEqual(ranked, []string{c.grinder.ID, c.mug.ID, c.tea.ID, c.coffee.ID}) ||
			d.TopProducts[1].NetRevenueCents != 1000 || d.TopProducts[1].NetUnits != 2 || d.TopProducts[3].NetRevenueCents != -1899 ||
			d.TopProducts[0].Name != "Burr grinder" {
			t.Errorf("top products today: %+v", d.TopProducts)
		}
		if d.LowStockCount != 3 || len(d.LowStock) != 3 || d.LowStock[0].ProductID != c.tea.ID ||
			d.LowStock[1].ProductID != c.mug.ID || d.LowStock[2].ProductID != c.coffee.ID {
			t.Errorf("low stock: %d %+v", d.LowStockCount, d.LowStock)
		}
		wantRate(t, "today", d.Checkouts.Today, "2025-06-02", "2025-06-02", 3, 1)
		wantRate(t, "7 days", d.Checkouts.Last7Days, "2025-05-27", "2025-06-02", 4, 2)
		last := envs[len(envs)-1]
		fr := d.Freshness
		if fr.LastAppliedAt == nil || !fr.LastAppliedAt.Equal(suiteNow) || fr.LastEventAt == nil ||
			!fr.LastEventAt.Equal(last.OccurredAt) || fr.AgeSeconds == nil || *fr.AgeSeconds != 0 {
			t.Errorf("freshness: %+v", fr)
		}
		f.clock.Set(suiteNow.Add(90 * time.Second))
		d, err = f.svc.Dashboard(ctx)
		must(t, err)
		if *d.Freshness.AgeSeconds != 90 {
			t.Errorf("age after 90 s: %d", *d.Freshness.AgeSeconds)
		}

		// Nothing yet: a dashboard of zeros, no rate, no freshness.
		empty := newFixture(t)
		d, err = empty.svc.Dashboard(ctx)
		must(t, err)
		if d.Today != (Figures{}) || len(d.ByChannel) != 2 || d.ByLocation == nil || len(d.ByLocation) != 0 ||
			len(d.TopProducts) != 0 || len(d.LowStock) != 0 || d.Checkouts.Today.SuccessRate != nil || d.Freshness.LastAppliedAt != nil {
			t.Errorf("empty dashboard: %+v", d)
		}
	})

	t.Run("bad queries name the field", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		cases := []struct {
			name  string
			q     SalesQuery
			field string
		}{
			{"from after to", SalesQuery{From: "2025-06-02", To: "2025-06-01"}, "from"},
			{"from after to, as date-times", SalesQuery{From: "2025-06-01T12:00:00Z", To: "2025-06-01T11:00:00Z"}, "from"},
			{"from after today", SalesQuery{From: "2025-06-03"}, "from"},
			{"month 13", SalesQuery{From: "2025-13-01"}, "from"},
			{"not a date", SalesQuery{To: "yesterday"}, "to"},
			{"date-time without zone", SalesQuery{To: "2025-06-01T10:00:00"}, "to"},
			{"more than a year", SalesQuery{From: "2024-01-01", To: "2025-06-01"}, "from"},
			{"channel", SalesQuery{Channel: "web"}, "channel"},
			{"location", SalesQuery{LocationID: "no such place!"}, "location_id"},
		}
		for _, c := range cases {
			_, err := f.svc.SalesReport(ctx, c.q)
			t.Run(c.name, func(t *testing.T) { wantKind(t, err, errs.Invalid, c.field) })
		}
		_, err := f.svc.TopProducts(ctx, TopQuery{Limit: MaxTopLimit + 1})
		wantKind(t, err, errs.Invalid, "limit")
		_, err = f.svc.TopProducts(ctx, TopQuery{Limit: -1})
		wantKind(t, err, errs.Invalid, "limit")
		_, err = f.svc.TopProducts(ctx, TopQuery{Channel: "store"})
		wantKind(t, err, errs.Invalid, "channel")
		_, err = f.svc.TopProducts(ctx, TopQuery{From: "2025-06-01", To: "2025-05-01"})
		wantKind(t, err, errs.Invalid, "from")
		_, err = f.svc.InventoryReport(ctx, InventoryQuery{LocationID: "'; DROP TABLE stock_levels;--"})
		wantKind(t, err, errs.Invalid, "location_id")
		// A year, leap day included, is allowed.
		_, err = f.svc.SalesReport(ctx, SalesQuery{From: "2024-01-01", To: "2024-12-31"})
		must(t, err)
	})

	t.Run("each event counts once, whatever the deliveries", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		envs := loadScenario(t, f)
		before, err := f.svc.Totals(ctx)
		must(t, err)
		if before.Events != int64(len(envs)) || before.Orders != 2 || before.OrdersCancelled != 1 {
			t.Fatalf("totals after the scenario: %+v", before)
		}
		wantFigures(t, "totals", before.Sales, allDays)
		// The same envelopes again: nothing changes, not even the journal.
		f.apply(t, envs...)
		again, err := f.svc.Totals(ctx)
		must(t, err)
		if !reflect.DeepEqual(before, again) {
			t.Fatalf("redelivery changed the totals:\n got %+v\nwant %+v", again, before)
		}
		// The same order confirmed or cancelled again under new event ids
		// (a producer repeating itself) books nothing more.
		at := time.Date(2025, 6, 2, 12, 0, 0, 0, time.UTC)
		f.apply(t,
			orderConfirmedEvent(t, "ord-1", web, at, 315, line{product: f.cat.mug, qty: 3, net: 1500}, line{product: f.cat.tea, qty: 2, net: 598}),
			orderCancelledEvent(t, "ord-2", web, at, 2184))
		again, err = f.svc.Totals(ctx)
		must(t, err)
		if again.Events != before.Events+2 || again.Sales != before.Sales || again.Orders != 2 || again.OrdersCancelled != 1 {
			t.Fatalf("a repeated confirmation or cancellation counted: %+v", again)
		}

		// A cancellation before its confirmation waits for it (the bus
		// redelivers) and leaves no trace meanwhile.
		cancel := orderCancelledEvent(t, "ord-3", web, at.Add(time.Hour), 1150)
		wantKind(t, f.consumer.Handle(ctx, cancel), errs.Unavailable, "")
		after, err := f.svc.Totals(ctx)
		must(t, err)
		if after.Events != again.Events || after.Sales != again.Sales {
			t.Fatalf("a refused event left a trace: %+v", after)
		}
		f.apply(t, orderConfirmedEvent(t, "ord-3", web, at, 150, line{product: f.cat.mug, qty: 2, net: 1000}), cancel)
		after, err = f.svc.Totals(ctx)
		must(t, err)
		wantFigures(t, "after ord-3", after.Sales, sum(allDays, fig(1, 2, 0, 1000, 150, 1, 2, 1000, 150)))
	})

	t.Run("events reporting cannot use are refused, others skipped", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		at := time.Date(2025, 6, 2, 12, 0, 0, 0, time.UTC)
		bad := []events.Envelope{
			newEvent(t, evSaleCompleted, "sal-bad", 1, at, map[string]any{"sale_id": "sal-bad", "location_id": mtl, "lines": "many"}),
			newEvent(t, evSaleCompleted, "sal-usd", 1, at, map[string]any{"sale_id": "sal-usd", "location_id": mtl, "currency": "USD", "total_cents": 100}),
			newEvent(t, evSaleReturned, "sal-1", 2, at, map[string]any{"return_id": "ret-x", "sale_id": "sal-1"}),
			newEvent(t, evStockChanged, "nowhere", 1, at, map[string]any{"on_hand": 3}),
			newEvent(t, evOrderConfirmed, "", 1, at, map[string]any{"location_id": web}),
		}
		noTime := checkoutCompletedEvent(t, "sg-x", at)
		noTime.OccurredAt = time.Time{}
		bad = append(bad, noTime)
		for _, env := range bad {
			wantKind(t, f.consumer.Handle(ctx, env), errs.Invalid, "")
		}
		f.apply(t, newEvent(t, "sales.RegisterOpened", "reg-1", 1, at, map[string]any{"register_id": "reg-1"}),
			newEvent(t, "claims.ClaimCreated", "clm-1", 1, at, map[string]any{"claim_id": "clm-1"}))
		tot, err := f.svc.Totals(ctx)
		must(t, err)
		if tot.Events != 0 || tot.Sales != (Figures{}) || tot.StockRows != 0 {
			t.Fatalf("refused or skipped events left a trace: %+v", tot)
		}
	})

	t.Run("rebuild equals live", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		envs := loadScenario(t, f)
		// Several rebuild batches, with a cancellation in a later batch
		// than its confirmation and stock versions spread across batches.
		f.local.store.batch = 7
		at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		var more []events.Envelope
		for i := range 30 {
			more = append(more, stockChangedEvent(t, f.cat.mug.ID, "loc-bulk-"+string(rune('a'+i%4)), int64(30-i), int64(i%7), 0, at))
		}
		more = append(more, orderCancelledEvent(t, "ord-1", web, at.Add(48*time.Hour), 2413))
		f.apply(t, more...)
		live := tableDump(t, f.db)
		liveTotals, err := f.svc.Totals(ctx)
		must(t, err)

		res, err := f.svc.Rebuild(ctx)
		must(t, err)
		if res.Events != int64(len(envs)+len(more)) || !reflect.DeepEqual(res.Before, liveTotals) || !reflect.DeepEqual(res.After, liveTotals) {
			t.Fatalf("rebuild: %d events\nbefore %+v\nafter  %+v\nlive   %+v", res.Events, res.Before, res.After, liveTotals)
		}
		sameDump(t, "rebuilt", live, tableDump(t, f.db))
		// Live again after the rebuild: the consumer goes on from there.
		f.apply(t, saleCompletedEvent(t, "sal-after", tor, time.Date(2025, 6, 2, 16, 0, 0, 0, time.UTC),
			line{product: f.cat.tea, qty: 1, net: 299, tax: 39}))
		tot, err := f.svc.Totals(ctx)
		must(t, err)
		if tot.Sales.SalesCount != liveTotals.Sales.SalesCount+1 || tot.Events != liveTotals.Events+1 {
			t.Fatalf("after the rebuild: %+v", tot)
		}
	})
}

// wantFigures compares figures field by field.
func wantFigures(t testing.TB, what string, got, want Figures) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func wantLocations(t testing.TB, got []LocationFigures, want map[string]Figures) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("by location: %d rows, want %d: %+v", len(got), len(want), got)
	}
	for i, l := range got {
		if i > 0 && got[i-1].LocationID >= l.LocationID {
			t.Errorf("by location not in order: %+v", got)
		}
		w, ok := want[l.LocationID]
		if !ok {
			t.Errorf("unexpected location %s", l.LocationID)
			continue
		}
		wantFigures(t, "location "+l.LocationID, l.Figures, w)
	}
}

func wantRate(t testing.TB, what string, got CheckoutRate, from, to string, completed, failed int64) {
	t.Helper()
	rate := float64(completed) / float64(completed+failed)
	if got.From != from || got.To != to || got.Completed != completed || got.Failed != failed ||
		got.SuccessRate == nil || math.Abs(*got.SuccessRate-rate) > 1e-9 {
		t.Errorf("checkouts %s: %+v (rate %v), want %s..%s %d/%d", what, got, got.SuccessRate, from, to, completed, failed)
	}
}

// TestRebuildInAnotherZone: days are fixed when an event is applied, and a
// rebuild recomputes them in the zone configured then.
func TestRebuildInAnotherZone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, testkit.SQLite, false)
	loadScenario(t, f)
	utc := New(f.db, f.cat.svc, Options{Location: time.UTC, Now: f.clock.Now, Logger: testkit.Logger()})
	if _, err := utc.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := utc.SalesReport(ctx, SalesQuery{From: "2025-06-01", To: "2025-06-02"})
	must(t, err)
	if rep.TimeZone != "UTC" {
		t.Errorf("zone %s", rep.TimeZone)
	}
	// In UTC sal-2 (03:30 UTC on June 2) belongs to June 2.
	wantFigures(t, "June 1 in UTC", rep.ByDay[0].Figures, sum(mtlJun1, webJun1))
	wantFigures(t, "June 2 in UTC", rep.ByDay[1].Figures, sum(torJun1, mtlJun2, webJun2))
	if _, err := TimeZone("Mars/Olympus_Mons"); !errs.IsKind(err, errs.Invalid) {
		t.Errorf("unknown zone: %v", err)
	}
}

// TestWithoutCatalog: a process that cannot reach the catalog still
// answers what needs no catalog, names products from the events, and
// answers 503 (errs.Unavailable) for what needs prices and thresholds.
func TestWithoutCatalog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, testkit.SQLite, false)
	loadScenario(t, f)
	svc := New(f.db, nil, f.o)
	rep, err := svc.SalesReport(ctx, SalesQuery{From: "2025-06-01", To: "2025-06-02"})
	must(t, err)
	wantFigures(t, "totals", rep.Totals, allDays)
	top, err := svc.TopProducts(ctx, TopQuery{From: "2025-06-01", To: "2025-06-02"})
	must(t, err)
	// Orders carry names, sales only SKUs: the grinder was only sold at a till.
	if len(top.Products) != 4 || top.Products[0].Name != "GRN-1" || top.Products[2].Name != "Mug" || top.Products[2].SKU != "MUG-1" {
		t.Fatalf("names from events: %+v", top.Products)
	}
	_, err = svc.InventoryReport(ctx, InventoryQuery{})
	wantKind(t, err, errs.Unavailable, "")
	_, err = svc.Dashboard(ctx)
	wantKind(t, err, errs.Unavailable, "")
	if _, err := svc.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCatalogCache: catalog answers are reused for CatalogTTL, then read
// again.
func TestCatalogCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, testkit.SQLite, false)
	loadScenario(t, f)
	name := func() string {
		t.Helper()
		top, err := f.svc.TopProducts(ctx, TopQuery{From: "2025-06-01", To: "2025-06-02", Limit: 1})
		must(t, err)
		return top.Products[0].Name
	}
	if got := name(); got != "Burr grinder" {
		t.Fatalf("name %q", got)
	}
	renamed := "Conical burr grinder"
	_, err := f.cat.svc.UpdateProduct(ctx, f.cat.grinder.ID, product.ProductUpdate{Name: &renamed})
	must(t, err)
	if got := name(); got != "Burr grinder" {
		t.Fatalf("within the TTL: %q, want the cached name", got)
	}
	f.clock.Set(suiteNow.Add(DefaultCatalogTTL + time.Second))
	if got := name(); got != renamed {
		t.Fatalf("after the TTL: %q, want %q", got, renamed)
	}
}
