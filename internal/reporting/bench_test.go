package reporting

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/product"
)

// Shape of the benchmark's history: a year of trading at five stores and
// the web shop, four lines a ticket, one ticket in five an online order,
// 500 products stocked everywhere, fifty checkouts a day.
const (
	benchDays        = 365
	benchLinesPerTkt = 4
	benchProducts    = 500
	benchOnlineEvery = 5
	benchCheckouts   = 50
)

var benchStores = []string{"loc-s1", "loc-s2", "loc-s3", "loc-s4", "loc-s5"}

// BenchmarkDashboard measures GET /api/v1/dashboard over HTTP (the whole
// middleware chain, TCP, two concurrent clients on this 2-core machine)
// against a read model holding 100,000 sale lines, and 1,000,000 with
// POS_BENCH_LARGE=1, on every backend of the run. It reports p50/p95/p99.
//
// The history is loaded (not measured) through the consumer's aggregate
// code path: the catalog's events are built, decoded and folded by the
// same planner the consumer uses, a batch of 5,000 events at a time, and
// written by the same multi-row upserts (this is how Rebuild writes; the
// live consumer writes one event per transaction, which would take hours
// for a million lines). Only the journal is left out, since the dashboard
// reads nothing from it but its newest entry: one last sale goes through
// Consumer.Handle, so that entry exists.
//
//	go test -run='^$' -bench=Dashboard -benchtime=2000x ./internal/reporting/
//	POS_BENCH_LARGE=1 go test -run='^$' -bench=Dashboard -benchtime=2000x -timeout=30m ./internal/reporting/
func BenchmarkDashboard(b *testing.B) {
	sizes := []int{100_000}
	if os.Getenv("POS_BENCH_LARGE") == "1" {
		sizes = append(sizes, 1_000_000)
	}
	for _, backend := range testkit.Backends(b) {
		for _, lines := range sizes {
			start := time.Now()
			h := loadHistory(b, backend, lines)
			b.Logf("%s: %d sale lines loaded in %s", backend.Name, lines, time.Since(start).Round(time.Millisecond))
			b.Run(fmt.Sprintf("%s/lines=%d", backend.Name, lines), func(b *testing.B) {
				url := h.URL + "/api/v1/dashboard"
				testkit.BenchHTTP(b, 2, func() *http.Request {
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					req.Header.Set("X-API-Key", h.Keys.Manager)
					return req
				}, http.StatusOK)
			})
		}
	}
}

// loadHistory fills a fresh reporting database on backend with lines sale
// lines ending today (suiteNow) and serves it.
func loadHistory(b *testing.B, backend testkit.Backend, lines int) *testkit.HTTP {
	b.Helper()
	ctx := context.Background()
	gdb := testkit.OpenDB(b, backend, Name, Migrations)
	catalog, prods := benchCatalog(b)
	o := Options{Now: func() time.Time { return suiteNow }, Logger: testkit.Logger()}.withDefaults()
	l := loader{b: b, db: gdb, p: o.planner()}
	history(b, o, prods, lines, l.add)
	l.flush()
	// The last event through the live path: the journal's newest entry.
	c := NewConsumer(gdb, o)
	must(b, c.Handle(ctx, saleCompletedEvent(b, "sal-last", benchStores[0], suiteNow, line{product: prods[0], qty: 1, net: prods[0].PriceCents})))
	svc := New(gdb, catalog, o)
	return testkit.Serve(b, func(s *httpx.Server) { Routes(s.API, svc) })
}

// benchCatalog is a catalog of benchProducts products.
func benchCatalog(b *testing.B) (product.Service, []product.Product) {
	b.Helper()
	catalog := product.New(testkit.OpenDB(b, testkit.SQLite, product.Name, product.Migrations))
	prods := make([]product.Product, benchProducts)
	for i := range prods {
		p, err := catalog.CreateProduct(context.Background(), product.NewProduct{SKU: fmt.Sprintf("B-%04d", i),
			Name: fmt.Sprintf("Bench item %04d", i), PriceCents: int64(199 + 37*i%5000), AlertThreshold: i % 12})
		must(b, err)
		prods[i] = p
	}
	return catalog, prods
}

// history emits a year of events holding lines sale lines, ending today
// (suiteNow): tickets spread evenly over the days, checkouts every day,
// one stock row per product and location.
func history(b *testing.B, o Options, prods []product.Product, lines int, emit func(events.Envelope)) {
	b.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	today := civil(suiteNow.In(o.Location))
	tickets := lines / benchLinesPerTkt
	for k := range tickets {
		day := today.AddDate(0, 0, -(k % benchDays))
		at := time.Date(day.Year(), day.Month(), day.Day(), 9+rng.IntN(11), rng.IntN(60), 0, 0, o.Location)
		var ls []line
		for range benchLinesPerTkt {
			p := prods[rng.IntN(len(prods))]
			qty := int64(1 + rng.IntN(3))
			net := qty * p.PriceCents
			ls = append(ls, line{product: p, qty: qty, net: net, tax: net * 13 / 100})
		}
		if k%benchOnlineEvery == 0 {
			emit(orderConfirmedEvent(b, fmt.Sprintf("ord-%d", k), "loc-web", at, 500, ls...))
		} else {
			emit(saleCompletedEvent(b, fmt.Sprintf("sal-%d", k), benchStores[k%len(benchStores)], at, ls...))
		}
	}
	for d := range benchDays {
		day := today.AddDate(0, 0, -d)
		at := time.Date(day.Year(), day.Month(), day.Day(), 12, 0, 0, 0, o.Location)
		for i := range benchCheckouts {
			if i%17 == 0 {
				emit(checkoutFailedEvent(b, fmt.Sprintf("sg-%d-%d", d, i), at))
			} else {
				emit(checkoutCompletedEvent(b, fmt.Sprintf("sg-%d-%d", d, i), at))
			}
		}
	}
	for _, loc := range append([]string{"loc-web"}, benchStores...) {
		for _, p := range prods {
			onHand := int64(rng.IntN(60))
			emit(stockChangedEvent(b, p.ID, loc, 1, onHand, int64(rng.IntN(int(onHand)+1)), suiteNow))
		}
	}
}

// BenchmarkRebuild measures Rebuild over a journal of 100,000 sale lines
// (1,000,000 with POS_BENCH_LARGE=1): how long the consumer waits while
// the read model is recomputed. The journal is written directly (the raw
// envelopes, as the consumer journals them); each iteration is a whole
// rebuild.
//
//	go test -run='^$' -bench=Rebuild -benchtime=1x ./internal/reporting/
func BenchmarkRebuild(b *testing.B) {
	sizes := []int{100_000}
	if os.Getenv("POS_BENCH_LARGE") == "1" {
		sizes = append(sizes, 1_000_000)
	}
	for _, backend := range testkit.Backends(b) {
		for _, lines := range sizes {
			gdb := testkit.OpenDB(b, backend, Name, Migrations)
			catalog, prods := benchCatalog(b)
			o := Options{Now: func() time.Time { return suiteNow }, Logger: testkit.Logger()}.withDefaults()
			var rows [][]any
			write := func() {
				must(b, upsertRows(gdb, `INSERT INTO event_journal (event_id, event_type, aggregate_id, aggregate_version, occurred_at, applied_at, envelope)`,
					`ON CONFLICT (event_id) DO NOTHING`, rows))
				rows = rows[:0]
			}
			var journaled int
			history(b, o, prods, lines, func(env events.Envelope) {
				raw, err := json.Marshal(env)
				must(b, err)
				rows = append(rows, []any{env.EventID, env.EventType, env.AggregateID, env.AggregateVersion, env.OccurredAt, suiteNow, string(raw)})
				journaled++
				if len(rows) == 5000 {
					write()
				}
			})
			write()
			svc := New(gdb, catalog, o)
			b.Run(fmt.Sprintf("%s/lines=%d", backend.Name, lines), func(b *testing.B) {
				for range b.N {
					res, err := svc.Rebuild(context.Background())
					must(b, err)
					if res.Events != int64(journaled) {
						b.Fatalf("rebuilt from %d events, journal holds %d", res.Events, journaled)
					}
				}
				b.ReportMetric(float64(journaled), "events")
			})
		}
	}
}

// loader folds events into effects and writes them a batch at a time, as
// Rebuild does.
type loader struct {
	b       *testing.B
	db      *gorm.DB
	p       planner
	pending []events.Envelope
}

func (l *loader) add(env events.Envelope) {
	l.b.Helper()
	l.pending = append(l.pending, env)
	if len(l.pending) == 5000 {
		l.flush()
	}
}

func (l *loader) flush() {
	l.b.Helper()
	if len(l.pending) == 0 {
		return
	}
	must(l.b, l.db.Transaction(func(tx *gorm.DB) error {
		eff := newEffects()
		book := dbOrders{tx: tx}
		for _, env := range l.pending {
			if err := l.p.add(eff, env, book); err != nil {
				return err
			}
		}
		return eff.flush(tx)
	}))
	l.pending = l.pending[:0]
}
