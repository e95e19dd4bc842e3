package reporting

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/outbox"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/tax"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/product"
	"github.com/retailco/pos/internal/sales"
)

// busMode is one way the binary runs: the embedded SQL-log bus with every
// database on SQLite, or Redis Streams with the databases on PostgreSQL
// (SQLite when the run has no PostgreSQL).
type busMode struct {
	name    string
	backend testkit.Backend
	open    func(t *testing.T, o events.Options) events.Bus
	// redelivers says a second publish of one envelope is delivered again
	// (Redis with its dedup window off); the SQL bus drops it.
	redelivers bool
}

func busModes(t *testing.T) []busMode {
	backends := testkit.Backends(t)
	return []busMode{
		{name: "embedded", backend: testkit.SQLite, open: func(t *testing.T, o events.Options) events.Bus {
			t.Helper()
			ctx := context.Background()
			gdb, err := db.Open(ctx, testkit.SQLite.Options(t, "bus"))
			must(t, err)
			t.Cleanup(func() { _ = db.Close(gdb) })
			bus, err := events.NewSQLBus(ctx, gdb, o)
			must(t, err)
			t.Cleanup(func() { _ = bus.Close() })
			return bus
		}},
		{name: "fleet", backend: backends[len(backends)-1], redelivers: true, open: func(t *testing.T, o events.Options) events.Bus {
			t.Helper()
			url, prefix := testkit.RedisURL(t)
			t.Cleanup(func() { deleteRedisKeys(url, prefix) })
			o.Prefix = prefix
			o.DedupWindow = -1
			bus, err := events.NewRedisBus(context.Background(), url, o)
			must(t, err)
			t.Cleanup(func() { _ = bus.Close() })
			return bus
		}},
	}
}

// deleteRedisKeys removes a test's keys from the shared Redis.
func deleteRedisKeys(url, prefix string) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
}

// platform is the real sales, inventory and order contexts with their
// outbox relays on a real bus, and reporting subscribed to it.
type platform struct {
	t        *testing.T
	bus      events.Bus
	cat      *catalogFixture
	stock    inventory.Service
	sales    sales.Local
	orders   order.Service
	clock    *clock // the sales context's clock: it dates sales and returns
	salesDB  *gorm.DB
	invDB    *gorm.DB
	orderDB  *gorm.DB
	repDB    *gorm.DB
	report   *service
	consumer *Consumer

	mu    sync.Mutex
	calls map[string]int // handler calls per event id
	// batched counts the events applied through batches of two or more.
	batched int
	// published are the events the test published itself: checkout
	// outcomes, whose producer (the saga) needs the whole checkout to run.
	published []events.Envelope
	// relayed are the ids of the events the producers' relays published
	// (and then deleted from their outboxes).
	relayed map[string]bool
}

// relayPublisher is the bus as the relays see it: it remembers what they
// published, which leaves the outboxes once published.
type relayPublisher struct{ p *platform }

func (r relayPublisher) Publish(ctx context.Context, envs ...events.Envelope) error {
	if err := r.p.bus.Publish(ctx, envs...); err != nil {
		return err
	}
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	for _, e := range envs {
		r.p.relayed[e.EventID] = true
	}
	return nil
}

func newPlatform(t *testing.T, mode busMode) *platform {
	ctx := context.Background()
	p := &platform{t: t, cat: newCatalog(t), calls: map[string]int{}, relayed: map[string]bool{},
		clock: newClock(time.Date(2025, 6, 1, 14, 0, 0, 0, time.UTC))}
	p.invDB = testkit.OpenDB(t, mode.backend, inventory.Name, inventory.Migrations)
	p.stock = inventory.New(p.invDB, p.cat.svc)
	p.salesDB = testkit.OpenDB(t, mode.backend, sales.Name, sales.Migrations)
	p.sales = sales.New(p.salesDB, p.cat.svc, p.stock, sales.Options{Now: p.clock.Now, Logger: testkit.Logger()})
	p.orderDB = testkit.OpenDB(t, mode.backend, order.Name, order.Migrations)
	p.orders = order.New(p.orderDB)
	p.repDB = testkit.OpenDB(t, mode.backend, Name, Migrations)
	p.report = New(p.repDB, p.cat.svc, Options{Logger: testkit.Logger()}).(*service)
	p.consumer = NewConsumer(p.repDB, Options{Logger: testkit.Logger(), Registerer: prometheus.NewRegistry()})
	p.bus = mode.open(t, events.Options{
		Registry: prometheus.NewRegistry(), Logger: testkit.Logger(),
		BlockTime: 100 * time.Millisecond, RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond,
		ClaimMinIdle: 2 * time.Second, ClaimInterval: 100 * time.Millisecond, LagInterval: time.Second, TrimInterval: -1,
	})
	// The producers' relays, as the binary runs them.
	for name, gdb := range p.producers() {
		r, err := outbox.NewRelay(gdb, relayPublisher{p}, outbox.RelayOptions{Name: name, PollInterval: 20 * time.Millisecond, Logger: testkit.Logger()})
		must(t, err)
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = r.Run(rctx)
		}()
		t.Cleanup(func() { stop(); <-done })
	}
	return p
}

// handle is the subscribed handler: the consumer, counted.
func (p *platform) handle(ctx context.Context, env events.Envelope) error {
	p.mu.Lock()
	p.calls[env.EventID]++
	p.mu.Unlock()
	return p.consumer.Handle(ctx, env)
}

// handleBatch is the subscribed batch handler: the consumer, counted.
func (p *platform) handleBatch(ctx context.Context, envs []events.Envelope) error {
	err := p.consumer.HandleBatch(ctx, envs)
	p.mu.Lock()
	for _, env := range envs {
		p.calls[env.EventID]++
	}
	if err == nil {
		p.batched += len(envs)
	}
	p.mu.Unlock()
	return err
}

func (p *platform) batchedEvents() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.batched
}

func (p *platform) callsOf(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[id]
}

func (p *platform) subscribe() *events.Subscription {
	sub, err := p.bus.Subscribe(context.Background(), Group, Streams, p.handle, events.WithBatch(p.handleBatch))
	must(p.t, err)
	p.t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// producers are the databases whose outboxes feed the bus.
func (p *platform) producers() map[string]*gorm.DB {
	return map[string]*gorm.DB{sales.Name: p.salesDB, inventory.Name: p.invDB, order.Name: p.orderDB}
}

// publish sends checkout outcomes as the saga does.
func (p *platform) publish(envs ...events.Envelope) {
	must(p.t, p.bus.Publish(context.Background(), envs...))
	p.published = append(p.published, envs...)
}

// produced counts the events the producers committed (those relayed and
// those still in their outboxes) and the test published; unpublished
// counts outbox rows not relayed yet.
func (p *platform) produced() (total, unpublished int64) {
	seen := map[string]bool{}
	for _, gdb := range p.producers() {
		var open []string
		must(p.t, gdb.Raw(`SELECT event_id FROM outbox`).Scan(&open).Error)
		for _, id := range open {
			seen[id] = true
		}
		unpublished += int64(len(open))
	}
	p.mu.Lock()
	for id := range p.relayed {
		seen[id] = true
	}
	p.mu.Unlock()
	return int64(len(seen) + len(p.published)), unpublished
}

func (p *platform) applied() int64 {
	tot, err := p.report.Totals(context.Background())
	must(p.t, err)
	return tot.Events
}

// waitApplied waits until every event produced so far is applied.
func (p *platform) waitApplied(what string) {
	p.t.Helper()
	waitFor(p.t, 60*time.Second, what, func() bool {
		want, _ := p.produced()
		return p.applied() == want
	})
}

var managerActor = sales.Actor{Role: auth.RoleManager}

func (p *platform) sell(reg sales.Register, lines ...sales.SaleLineInput) sales.Sale {
	p.t.Helper()
	s, err := p.sales.CreateSale(context.Background(), sales.NewSale{LocationID: reg.LocationID, RegisterID: reg.ID, CashierID: "c-1",
		Lines: lines, Payments: []sales.Tender{{Method: sales.MethodCash, AmountCents: 1_000_000}}, Actor: managerActor})
	must(p.t, err)
	return s
}

func (p *platform) giveBack(saleID string, reg sales.Register, lines ...sales.SaleReturnLineInput) {
	p.t.Helper()
	_, err := p.sales.CreateReturn(context.Background(), saleID, sales.NewSaleReturn{RegisterID: reg.ID, Lines: lines,
		Reason: "changed mind", Actor: managerActor})
	must(p.t, err)
}

// TestOverBus runs the real sales and inventory contexts with their
// outbox relays on a real bus, rings up sales and returns over three days
// at two stores, publishes web orders and checkouts as the catalog has
// them, and checks the reports against the source records: sales.ListSales
// and ListReturns per day, per location and per product, inventory's
// ListStock row by row. Then it stops the consumer, produces more, starts
// it again (catch-up, each event once), delivers a duplicate, and rebuilds.
func TestOverBus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, mode := range busModes(t) {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t, mode)
			sub := p.subscribe()
			c := p.cat

			loc := func(code, kind, province string) inventory.Location {
				l, err := p.stock.CreateLocation(ctx, inventory.NewLocation{Code: code, Name: code, Kind: kind, Province: province})
				must(t, err)
				return l
			}
			mtlStore, torStore, webShop := loc("MTL-01", inventory.KindStore, "QC"), loc("TOR-01", inventory.KindStore, "ON"), loc("WEB", inventory.KindOnline, "QC")
			receive := func(productID, locationID string, qty int64) {
				_, err := p.stock.Adjust(ctx, inventory.Adjustment{ProductID: productID, LocationID: locationID, Delta: qty, Reason: inventory.ReasonReceipt})
				must(t, err)
			}
			receive(c.coffee.ID, mtlStore.ID, 50)
			receive(c.mug.ID, mtlStore.ID, 50)
			receive(c.grinder.ID, mtlStore.ID, 10)
			receive(c.coffee.ID, torStore.ID, 20)
			receive(c.mug.ID, webShop.ID, 30)
			till := func(l inventory.Location) sales.Register {
				r, err := p.sales.CreateRegister(ctx, sales.NewRegister{LocationID: l.ID, Name: "Till", Actor: managerActor})
				must(t, err)
				_, err = p.sales.OpenSession(ctx, r.ID, sales.SessionOpening{CashierID: "c-1", OpeningFloatCents: 50_000, Actor: managerActor})
				must(t, err)
				return r
			}
			regM, regT := till(mtlStore), till(torStore)
			line := func(prd string, qty int64, pct int) sales.SaleLineInput {
				return sales.SaleLineInput{ProductID: prd, Quantity: qty, DiscountPercent: pct}
			}

			// June 1, Toronto time (the last sale at 23:30, 03:30 UTC on June 2).
			a := p.sell(regM, line(c.coffee.ID, 2, 10), line(c.mug.ID, 1, 0))
			b := p.sell(regT, line(c.coffee.ID, 1, 0))
			p.clock.Set(time.Date(2025, 6, 2, 3, 30, 0, 0, time.UTC))
			p.sell(regT, line(c.coffee.ID, 2, 5))
			// June 2.
			p.clock.Set(time.Date(2025, 6, 2, 15, 0, 0, 0, time.UTC))
			p.sell(regM, line(c.grinder.ID, 1, 0), line(c.mug.ID, 2, 0))
			p.giveBack(a.ID, regM, sales.SaleReturnLineInput{ProductID: c.mug.ID, Quantity: 1})
			p.giveBack(b.ID, regT, sales.SaleReturnLineInput{ProductID: c.coffee.ID, Quantity: 1})
			// The web shop: orders through the order context (their events
			// through its outbox), checkout outcomes as the saga publishes them.
			o1 := p.order("sg-1", webShop.ID, c.mug, 2)
			o2 := p.order("sg-2", webShop.ID, c.coffee, 1)
			p.order("sg-3", mtlStore.ID, c.grinder, 1) // a pick-up at the store: online channel, MTL
			_, err := p.orders.MarkCancelled(ctx, o2.ID)
			must(t, err)
			_, err = p.orders.UpdateStatus(ctx, o1.ID, order.StatusShipped)
			must(t, err)
			orderDay := time.Date(2025, 6, 2, 12, 0, 0, 0, time.UTC)
			p.publish(
				checkoutCompletedEvent(t, "sg-1", orderDay),
				checkoutCompletedEvent(t, "sg-2", orderDay),
				checkoutFailedEvent(t, "sg-9", orderDay),
			)
			p.waitApplied("every event of the first two days")
			p.compare()

			// Catch-up: the consumer stops, the shops go on.
			must(t, sub.Close())
			stoppedAt := p.applied()
			p.clock.Set(time.Date(2025, 6, 3, 15, 0, 0, 0, time.UTC))
			p.sell(regM, line(c.coffee.ID, 3, 0))
			p.sell(regT, line(c.coffee.ID, 1, 0))
			p.order("sg-4", webShop.ID, c.mug, 1)
			p.publish(checkoutCompletedEvent(t, "sg-4", orderDay.Add(24*time.Hour)))
			waitFor(t, 30*time.Second, "the relays to publish the new events", func() bool {
				_, open := p.produced()
				return open == 0
			})
			if got := p.applied(); got != stoppedAt {
				t.Fatalf("%d events applied while the consumer was stopped", got-stoppedAt)
			}
			p.subscribe()
			p.waitApplied("the events produced while the consumer was stopped")
			// The backlog came in reads of several messages: those went
			// through HandleBatch, and compare() below checks their effect.
			if p.batchedEvents() < 2 {
				t.Fatalf("%d events applied in batches; the catch-up should have batched its backlog", p.batchedEvents())
			}

			// A duplicate delivery changes nothing.
			before, err := p.report.Totals(ctx)
			must(t, err)
			// The producers' own envelopes, as the journal keeps them.
			var raws []string
			must(t, p.repDB.Raw(`SELECT envelope FROM event_journal WHERE event_type IN (?, ?, ?) ORDER BY seq`,
				evSaleCompleted, evOrderConfirmed, evOrderCancelled).Scan(&raws).Error)
			var dups []events.Envelope
			for _, raw := range raws {
				var env events.Envelope
				must(t, json.Unmarshal([]byte(raw), &env))
				dups = append(dups, env)
			}
			if len(dups) < 3 {
				t.Fatalf("journal holds %d sale and order events", len(dups))
			}
			if mode.redelivers {
				must(t, p.bus.Publish(ctx, dups...))
				waitFor(t, 30*time.Second, "the duplicates to be delivered", func() bool {
					for _, d := range dups {
						if p.callsOf(d.EventID) < 2 {
							return false
						}
					}
					return true
				})
			}
			for _, d := range dups {
				must(t, p.consumer.Handle(ctx, d))
			}
			must(t, p.consumer.HandleBatch(ctx, append(dups, dups[0])))
			after, err := p.report.Totals(ctx)
			must(t, err)
			if !reflect.DeepEqual(after, before) {
				t.Fatalf("a duplicate changed the totals:\n got %+v\nwant %+v", after, before)
			}
			p.compare()

			// Every event applied once: one journal entry and one inbox
			// record each, and handled at least once.
			want, _ := p.produced()
			var inboxed int64
			must(t, p.repDB.Raw(`SELECT COUNT(*) FROM processed_events WHERE consumer = ?`, Group).Scan(&inboxed).Error)
			if after.Events != want || inboxed != want {
				t.Fatalf("journal %d, inbox %d, produced %d", after.Events, inboxed, want)
			}
			var ids []string
			must(t, p.repDB.Raw(`SELECT event_id FROM event_journal`).Scan(&ids).Error)
			for _, id := range ids {
				if p.callsOf(id) == 0 {
					t.Errorf("event %s in the journal was never delivered", id)
				}
			}

			// Rebuild equals live.
			live := tableDump(t, p.repDB)
			res, err := p.report.Rebuild(ctx)
			must(t, err)
			if res.Events != want || !reflect.DeepEqual(res.After, res.Before) {
				t.Fatalf("rebuild: %+v", res)
			}
			sameDump(t, "rebuilt", live, tableDump(t, p.repDB))
			p.compare()
			if dl, err := p.bus.DeadLetters(ctx, Group, 10); err != nil || len(dl) > 0 {
				t.Fatalf("dead letters: %+v %v", dl, err)
			}
		})
	}
}

// order places a paid web order of qty units of prd, as the checkout
// saga does once the payment is captured.
func (p *platform) order(sagaID, locationID string, prd product.Product, qty int) order.Order {
	p.t.Helper()
	sub := prd.PriceCents * int64(qty)
	gst, qst := sub*5/100, sub*9975/100000
	o, err := p.orders.CreateOrder(context.Background(), order.NewOrder{SagaID: sagaID, CustomerID: "cus-1", LocationID: locationID,
		Lines: []order.OrderLine{{ProductID: prd.ID, SKU: prd.SKU, Name: prd.Name, UnitPriceCents: prd.PriceCents, Quantity: qty,
			LineTotalCents: sub}},
		ShippingAddress: order.ShippingAddress{Name: "Alice", Line1: "1 rue Test", City: "Montréal", Province: "QC", PostalCode: "H2X 1Y4"},
		SubtotalCents:   sub, Taxes: []tax.TaxLine{{Name: "GST", AmountCents: gst}, {Name: "QST", AmountCents: qst}},
		TaxCents: gst + qst, TotalCents: sub + gst + qst})
	must(p.t, err)
	return o
}

// compare checks the reports against the source records: the sales and
// returns the sales context lists (per day and location, both ways, and
// per product), the orders the order context lists, the checkouts the
// test published, and the inventory's stock rows.
func (p *platform) compare() {
	t := p.t
	t.Helper()
	ctx := context.Background()
	zone := toronto(t)
	type key struct{ day, loc string }
	want := map[key]*Figures{}
	at := func(k key) *Figures {
		if want[k] == nil {
			want[k] = &Figures{}
		}
		return want[k]
	}
	products := map[string]*ProductFigures{}
	prd := func(id string) *ProductFigures {
		if products[id] == nil {
			products[id] = &ProductFigures{ProductID: id}
		}
		return products[id]
	}
	var all []sales.Sale
	for pg := 1; ; pg++ {
		res, err := p.sales.ListSales(ctx, sales.SaleFilter{Page: page.Request{Page: pg, PerPage: page.MaxPerPage}})
		must(t, err)
		all = append(all, res.Items...)
		if int64(len(all)) >= res.Total || len(res.Items) == 0 {
			break
		}
	}
	for _, s := range all {
		var units int64
		for _, l := range s.Lines {
			units += l.Quantity
			prd(l.ProductID).UnitsSold += l.Quantity
			prd(l.ProductID).RevenueCents += l.NetCents
		}
		at(key{s.CompletedAt.In(zone).Format(dayLayout), s.LocationID}).add(Figures{SalesCount: 1, Units: units,
			DiscountCents: s.DiscountCents, RevenueCents: s.SubtotalCents, TaxCents: s.TaxCents, TotalCents: s.TotalCents})
		rets, err := p.sales.ListReturns(ctx, s.ID)
		must(t, err)
		for _, r := range rets {
			var units int64
			for _, l := range r.Lines {
				units += l.Quantity
				prd(l.ProductID).UnitsReturned += l.Quantity
				prd(l.ProductID).ReturnedCents += l.SubtotalCents
			}
			at(key{r.CreatedAt.In(zone).Format(dayLayout), r.LocationID}).add(Figures{ReturnsCount: 1, ReturnedUnits: units,
				ReturnedCents: r.SubtotalCents, ReturnedTaxCents: r.TaxCents, RefundedCents: r.TotalCents})
		}
	}
	if len(all) == 0 || len(want) == 0 {
		t.Fatal("no sales to compare")
	}
	from, to := "9999-12-31", "0000-01-01"
	for k := range want {
		from, to = min(from, k.day), max(to, k.day)
	}

	// Both ways over the whole range: each day across stores, each store
	// across days.
	rep, err := p.report.SalesReport(ctx, SalesQuery{From: from, To: to, Channel: ChannelPOS})
	must(t, err)
	perDay, perLoc := map[string]Figures{}, map[string]Figures{}
	var total Figures
	for k, f := range want {
		d, l := perDay[k.day], perLoc[k.loc]
		d.add(*f)
		l.add(*f)
		perDay[k.day], perLoc[k.loc] = d, l
		total.add(*f)
	}
	wantFigures(t, "pos total", rep.Totals, total)
	for _, d := range rep.ByDay {
		wantFigures(t, "pos on "+d.Day, d.Figures, perDay[d.Day])
	}
	wantLocations(t, rep.ByLocation, perLoc)
	// And each (day, store) on its own.
	for k, f := range want {
		r, err := p.report.SalesReport(ctx, SalesQuery{From: k.day, To: k.day, LocationID: k.loc, Channel: ChannelPOS})
		must(t, err)
		wantFigures(t, fmt.Sprintf("pos at %s on %s", k.loc, k.day), r.Totals, *f)
	}

	// Units and revenue per product.
	top, err := p.report.TopProducts(ctx, TopQuery{From: from, To: to, Channel: ChannelPOS, Limit: MaxTopLimit})
	must(t, err)
	if len(top.Products) != len(products) {
		t.Errorf("%d products ranked, %d sold", len(top.Products), len(products))
	}
	for _, got := range top.Products {
		w := products[got.ProductID]
		if w == nil || got.UnitsSold != w.UnitsSold || got.UnitsReturned != w.UnitsReturned ||
			got.RevenueCents != w.RevenueCents || got.ReturnedCents != w.ReturnedCents {
			t.Errorf("product %s: got %+v, want %+v", got.ProductID, got, w)
		}
	}

	// Online: the orders as the order context lists them, confirmed on
	// their confirmation day, taken back on their cancellation day.
	var orders []order.Order
	for pg := 1; ; pg++ {
		res, err := p.orders.ListOrders(ctx, order.Filter{Page: page.Request{Page: pg, PerPage: page.MaxPerPage}})
		must(t, err)
		orders = append(orders, res.Items...)
		if int64(len(orders)) >= res.Total || len(res.Items) == 0 {
			break
		}
	}
	online := map[key]*Figures{}
	onlineAt := func(k key) *Figures {
		if online[k] == nil {
			online[k] = &Figures{}
		}
		return online[k]
	}
	for _, o := range orders {
		var units int64
		for _, l := range o.Lines {
			units += int64(l.Quantity)
		}
		onlineAt(key{o.ConfirmedAt.In(zone).Format(dayLayout), o.LocationID}).add(Figures{SalesCount: 1, Units: units,
			RevenueCents: o.SubtotalCents, TaxCents: o.TaxCents, TotalCents: o.TotalCents})
		if o.CancelledAt != nil {
			onlineAt(key{o.CancelledAt.In(zone).Format(dayLayout), o.LocationID}).add(Figures{ReturnsCount: 1, ReturnedUnits: units,
				ReturnedCents: o.SubtotalCents, ReturnedTaxCents: o.TaxCents, RefundedCents: o.TotalCents})
		}
	}
	if len(orders) == 0 {
		t.Fatal("no orders to compare")
	}
	for k, f := range online {
		r, err := p.report.SalesReport(ctx, SalesQuery{From: k.day, To: k.day, LocationID: k.loc, Channel: ChannelOnline})
		must(t, err)
		wantFigures(t, fmt.Sprintf("online at %s on %s", k.loc, k.day), r.Totals, *f)
	}
	var completed, failed int64
	for _, env := range p.published {
		switch env.EventType {
		case evCheckoutCompleted:
			completed++
		case evCheckoutFailed:
			failed++
		}
	}
	tot, err := p.report.Totals(ctx)
	must(t, err)
	if tot.CheckoutsCompleted != completed || tot.CheckoutsFailed != failed {
		t.Errorf("checkouts %d/%d, want %d/%d", tot.CheckoutsCompleted, tot.CheckoutsFailed, completed, failed)
	}

	// Stock, row by row, as the inventory lists it.
	var levels []inventory.StockLevel
	for pg := 1; ; pg++ {
		res, err := p.stock.ListStock(ctx, inventory.StockFilter{Page: page.Request{Page: pg, PerPage: page.MaxPerPage}})
		must(t, err)
		levels = append(levels, res.Items...)
		if int64(len(levels)) >= res.Total || len(res.Items) == 0 {
			break
		}
	}
	rows, err := p.report.store.stockRows(ctx, "", true)
	must(t, err)
	if len(rows) != len(levels) {
		t.Fatalf("%d stock rows in reporting, %d in the inventory", len(rows), len(levels))
	}
	have := map[stockKey]stockLevelRow{}
	for _, r := range rows {
		have[stockKey{r.LocationID, r.ProductID}] = r
	}
	perLocOnHand := map[string]int64{}
	for _, l := range levels {
		r, ok := have[stockKey{l.LocationID, l.ProductID}]
		if !ok || r.OnHand != l.OnHand || r.Reserved != l.Reserved || r.Available != l.Available {
			t.Errorf("stock of %s at %s: reporting %+v, inventory %+v", l.ProductID, l.LocationID, r, l)
		}
		perLocOnHand[l.LocationID] += l.OnHand
	}
	inv, err := p.report.InventoryReport(ctx, InventoryQuery{})
	must(t, err)
	for _, l := range inv.Locations {
		if l.OnHand != perLocOnHand[l.LocationID] {
			t.Errorf("on hand at %s: %d, inventory %d", l.LocationID, l.OnHand, perLocOnHand[l.LocationID])
		}
	}
}
