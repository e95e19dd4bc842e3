package inventory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/product"
)

// TestService runs one suite against every adapter of Service: the local
// implementation on each database engine, and Client over HTTP (to a local
// service on SQLite). The same assertions hold for all, errors included.
func TestService(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		runSuite(t, func(t *testing.T) *fixture { return newFixture(t, b, false) })
	})
	t.Run("client", func(t *testing.T) {
		runSuite(t, func(t *testing.T) *fixture { return newFixture(t, testkit.SQLite, true) })
	})
}

// testClock is a clock the test moves by hand, so expiry is exact.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
	// Sub-second on purpose: expiry comparisons must be right to the
	// microsecond on both engines.
	return &testClock{t: time.Now().UTC().Truncate(time.Second).Add(123456 * time.Microsecond)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is one Service under test with what the assertions need around
// it: the real catalog it reads, its database (for ledger and invariant
// checks) and its clock.
type fixture struct {
	svc     Service
	catalog product.Service
	db      *gorm.DB
	clock   *testClock
	// local is true when svc is the in-process implementation, whose
	// answers say whether a Reserve was a replay.
	local bool
}

func newFixture(t testing.TB, b testkit.Backend, overHTTP bool) *fixture {
	t.Helper()
	catalog := product.New(testkit.OpenDB(t, testkit.SQLite, product.Name, product.Migrations))
	gdb := testkit.OpenDB(t, b, Name, Migrations)
	clock := newClock()
	local := NewWithOptions(gdb, catalog, Options{Now: clock.Now})
	f := &fixture{svc: local, catalog: catalog, db: gdb, clock: clock, local: true}
	if overHTTP {
		h := testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, local) })
		f.svc, f.local = NewClient(h.Client(Name, h.Keys.Admin)), false
	}
	// Registered after OpenDB, so it runs before the database closes:
	// whatever a test did, the invariants must hold at its end.
	t.Cleanup(func() { checkInvariants(t, gdb) })
	return f
}

func (f *fixture) product(t testing.TB, sku string, threshold int) string {
	t.Helper()
	p, err := f.catalog.CreateProduct(context.Background(), product.NewProduct{SKU: sku, Name: "Product " + sku, PriceCents: 999, AlertThreshold: threshold})
	must(t, err)
	return p.ID
}

func (f *fixture) location(t testing.TB, code string) string {
	t.Helper()
	l, err := f.svc.CreateLocation(context.Background(), NewLocation{Code: code, Name: "Location " + code, Kind: KindStore, Province: "QC"})
	must(t, err)
	return l.ID
}

func (f *fixture) receive(t testing.TB, productID, locationID string, qty int64) {
	t.Helper()
	_, err := f.svc.Adjust(context.Background(), Adjustment{ProductID: productID, LocationID: locationID, Delta: qty, Reason: ReasonReceipt})
	must(t, err)
}

// level reads one stock row through the Service; a pair without a row
// reads as zero.
func (f *fixture) level(t testing.TB, productID, locationID string) StockLevel {
	t.Helper()
	res, err := f.svc.ListStock(context.Background(), StockFilter{ProductID: productID, LocationID: locationID})
	must(t, err)
	switch len(res.Items) {
	case 0:
		return StockLevel{ProductID: productID, LocationID: locationID}
	case 1:
		return res.Items[0]
	}
	t.Fatalf("%d rows for one (product, location)", len(res.Items))
	return StockLevel{}
}

func (f *fixture) wantLevel(t testing.TB, productID, locationID string, onHand, reserved int64) {
	t.Helper()
	lvl := f.level(t, productID, locationID)
	if lvl.OnHand != onHand || lvl.Reserved != reserved || lvl.Available != onHand-reserved {
		t.Fatalf("stock of %s at %s: on_hand %d reserved %d available %d, want %d/%d/%d",
			productID, locationID, lvl.OnHand, lvl.Reserved, lvl.Available, onHand, reserved, onHand-reserved)
	}
}

// movements counts the ledger rows, for "nothing was written" checks.
func (f *fixture) movements(t testing.TB) int64 {
	t.Helper()
	var n int64
	must(t, f.db.Model(&movementRow{}).Count(&n).Error)
	return n
}

// ledger lists the reasons recorded for one stock row, oldest first.
func (f *fixture) ledger(t testing.TB, productID, locationID string) []string {
	t.Helper()
	var rows []movementRow
	must(t, f.db.Where("product_id = ? AND location_id = ?", productID, locationID).Order("id").Find(&rows).Error)
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%s%+d/%+d", r.Reason, r.DeltaOnHand, r.DeltaReserved)
	}
	return out
}

// checkInvariants holds the database to the stock invariants: no row
// breaks 0 <= reserved <= on_hand; every row equals the sum of its ledger
// (and no ledger row lacks a stock row); reserved equals what the active
// reservations hold.
func checkInvariants(t testing.TB, gdb *gorm.DB) {
	t.Helper()
	var broken int64
	if err := gdb.Model(&stockRow{}).Where("reserved < 0 OR on_hand < reserved").Count(&broken).Error; err != nil {
		t.Errorf("invariants: %v", err)
		return
	}
	if broken > 0 {
		t.Errorf("invariants: %d stock rows with reserved < 0 or on_hand < reserved", broken)
	}
	type sums struct {
		LocationID, ProductID  string
		OnHand, Reserved       int64
		LedgerOnHand, LedgerRs int64
		Held                   int64
	}
	var rows []sums
	err := gdb.Raw(`SELECT s.location_id, s.product_id, s.on_hand, s.reserved,
			COALESCE((SELECT SUM(m.delta_on_hand) FROM stock_movements m WHERE m.location_id = s.location_id AND m.product_id = s.product_id), 0) AS ledger_on_hand,
			COALESCE((SELECT SUM(m.delta_reserved) FROM stock_movements m WHERE m.location_id = s.location_id AND m.product_id = s.product_id), 0) AS ledger_rs,
			COALESCE((SELECT SUM(i.quantity) FROM reservation_items i JOIN reservations r ON r.id = i.reservation_id
				WHERE r.status = 'active' AND i.location_id = s.location_id AND i.product_id = s.product_id), 0) AS held
		FROM stock s`).Scan(&rows).Error
	if err != nil {
		t.Errorf("invariants: %v", err)
		return
	}
	for _, r := range rows {
		if r.OnHand != r.LedgerOnHand || r.Reserved != r.LedgerRs {
			t.Errorf("invariants: %s at %s is %d/%d but its ledger sums to %d/%d",
				r.ProductID, r.LocationID, r.OnHand, r.Reserved, r.LedgerOnHand, r.LedgerRs)
		}
		if r.Reserved != r.Held {
			t.Errorf("invariants: %s at %s has %d reserved but active reservations hold %d", r.ProductID, r.LocationID, r.Reserved, r.Held)
		}
	}
	var orphans int64
	err = gdb.Raw(`SELECT COUNT(*) FROM stock_movements m WHERE NOT EXISTS
		(SELECT 1 FROM stock s WHERE s.location_id = m.location_id AND s.product_id = m.product_id)`).Scan(&orphans).Error
	if err != nil || orphans > 0 {
		t.Errorf("invariants: %d ledger rows without a stock row (%v)", orphans, err)
	}
}

func runSuite(t *testing.T, newFixture func(t *testing.T) *fixture) {
	ctx := context.Background()

	t.Run("locations", func(t *testing.T) {
		f := newFixture(t)
		l, err := f.svc.CreateLocation(ctx, NewLocation{Code: "mtl-01", Name: "Montréal centre", Kind: KindStore, Province: "QC", Address: "1 rue Ste-Catherine"})
		must(t, err)
		if l.ID == "" || !strings.HasPrefix(l.ID, "loc_") || l.Code != "MTL-01" || l.CreatedAt.IsZero() {
			t.Fatalf("created %+v", l)
		}
		got, err := f.svc.GetLocation(ctx, l.ID)
		must(t, err)
		if got.Code != "MTL-01" || got.Name != "Montréal centre" || got.Province != "QC" || got.Address != "1 rue Ste-Catherine" || !got.CreatedAt.Equal(l.CreatedAt) {
			t.Fatalf("got %+v, want %+v", got, l)
		}
		_, err = f.svc.CreateLocation(ctx, NewLocation{Code: "TOR-WH", Name: "Toronto warehouse", Kind: KindWarehouse, Province: "ON"})
		must(t, err)
		_, err = f.svc.CreateLocation(ctx, NewLocation{Code: "WEB", Name: "Online", Kind: KindOnline, Province: "QC"})
		must(t, err)

		cases := []struct {
			name  string
			in    NewLocation
			kind  *errs.Kind
			field string
		}{
			{"duplicate code", NewLocation{Code: "MTL-01", Name: "Again", Kind: KindStore, Province: "QC"}, errs.Conflict, ""},
			{"duplicate code other case", NewLocation{Code: "mtl-01", Name: "Again", Kind: KindStore, Province: "QC"}, errs.Conflict, ""},
			{"bad kind", NewLocation{Code: "X1", Name: "x", Kind: "mall", Province: "QC"}, errs.Invalid, "kind"},
			{"bad province", NewLocation{Code: "X2", Name: "x", Kind: KindStore, Province: "XX"}, errs.Invalid, "province"},
			{"empty name", NewLocation{Code: "X3", Name: " ", Kind: KindStore, Province: "QC"}, errs.Invalid, "name"},
			{"bad code", NewLocation{Code: "X'; DROP TABLE stock;--", Name: "x", Kind: KindStore, Province: "QC"}, errs.Invalid, "code"},
		}
		for _, c := range cases {
			_, err := f.svc.CreateLocation(ctx, c.in)
			wantErr(t, c.name, err, c.kind, c.field)
		}
		all, err := f.svc.ListLocations(ctx, LocationFilter{})
		must(t, err)
		if all.Total != 3 || len(all.Items) != 3 || all.Items[0].Code != "MTL-01" || all.Items[1].Code != "TOR-WH" {
			t.Fatalf("list: %+v", all)
		}
		stores, err := f.svc.ListLocations(ctx, LocationFilter{Kind: KindWarehouse})
		must(t, err)
		if stores.Total != 1 || stores.Items[0].Code != "TOR-WH" {
			t.Fatalf("warehouses: %+v", stores)
		}
		paged, err := f.svc.ListLocations(ctx, LocationFilter{Page: page.Request{Page: 2, PerPage: 2}})
		must(t, err)
		if paged.Total != 3 || len(paged.Items) != 1 || paged.Items[0].Code != "WEB" {
			t.Fatalf("page 2: %+v", paged)
		}
		if _, err := f.svc.GetLocation(ctx, "loc_missing"); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("get unknown: %v", err)
		}
	})

	t.Run("adjustments", func(t *testing.T) {
		f := newFixture(t)
		p := f.product(t, "ADJ", 3)
		loc := f.location(t, "ADJ-1")

		lvl, err := f.svc.Adjust(ctx, Adjustment{ProductID: p, LocationID: loc, Delta: 10, Reason: ReasonReceipt, Note: "PO 42"})
		must(t, err)
		if lvl.OnHand != 10 || lvl.Reserved != 0 || lvl.Available != 10 || lvl.AlertThreshold != 3 || lvl.LowStock {
			t.Fatalf("after receipt: %+v", lvl)
		}
		lvl, err = f.svc.Adjust(ctx, Adjustment{ProductID: p, LocationID: loc, Delta: -7, Reason: ReasonDamage})
		must(t, err)
		if lvl.OnHand != 3 || !lvl.LowStock {
			t.Fatalf("after damage: %+v", lvl)
		}
		_, err = f.svc.Reserve(ctx, NewReservation{ReservationID: "adj-hold", Items: []ReservationItem{{p, loc, 2}}})
		must(t, err)

		before := f.movements(t)
		cases := []struct {
			name  string
			in    Adjustment
			kind  *errs.Kind
			field string
		}{
			{"below reserved", Adjustment{ProductID: p, LocationID: loc, Delta: -2, Reason: ReasonTheft}, errs.Conflict, ""},
			{"negative", Adjustment{ProductID: p, LocationID: loc, Delta: -4, Reason: ReasonCount}, errs.Conflict, ""},
			{"no stock row to remove from", Adjustment{ProductID: f.product(t, "ADJ-NONE", 0), LocationID: loc, Delta: -1, Reason: ReasonCorrection}, errs.Conflict, ""},
			{"unknown product", Adjustment{ProductID: "prd_missing", LocationID: loc, Delta: 1, Reason: ReasonReceipt}, errs.Invalid, "product_id"},
			{"unknown location", Adjustment{ProductID: p, LocationID: "loc_missing", Delta: 1, Reason: ReasonReceipt}, errs.Invalid, "location_id"},
			{"zero delta", Adjustment{ProductID: p, LocationID: loc, Delta: 0, Reason: ReasonCount}, errs.Invalid, "delta"},
			{"huge delta", Adjustment{ProductID: p, LocationID: loc, Delta: MaxDelta + 1, Reason: ReasonReceipt}, errs.Invalid, "delta"},
			{"damage that adds", Adjustment{ProductID: p, LocationID: loc, Delta: 5, Reason: ReasonDamage}, errs.Invalid, "delta"},
			{"receipt that removes", Adjustment{ProductID: p, LocationID: loc, Delta: -1, Reason: ReasonReceipt}, errs.Invalid, "delta"},
			{"unknown reason", Adjustment{ProductID: p, LocationID: loc, Delta: 1, Reason: "found"}, errs.Invalid, "reason"},
			{"sql in product id", Adjustment{ProductID: "x' OR '1'='1", LocationID: loc, Delta: 1, Reason: ReasonReceipt}, errs.Invalid, "product_id"},
		}
		for _, c := range cases {
			_, err := f.svc.Adjust(ctx, c.in)
			wantErr(t, c.name, err, c.kind, c.field)
		}
		f.wantLevel(t, p, loc, 3, 2)
		if after := f.movements(t); after != before {
			t.Fatalf("refused adjustments wrote %d ledger rows", after-before)
		}
		if got := f.ledger(t, p, loc); !slices.Equal(got, []string{"receipt+10/+0", "damage-7/+0", "reserve+0/+2"}) {
			t.Fatalf("ledger: %v", got)
		}
		lvl, err = f.svc.Adjust(ctx, Adjustment{ProductID: p, LocationID: loc, Delta: -1, Reason: ReasonCount})
		must(t, err)
		if lvl.OnHand != 2 || lvl.Reserved != 2 || lvl.Available != 0 {
			t.Fatalf("down to reserved: %+v", lvl)
		}
	})

	t.Run("adjustment idempotency key", func(t *testing.T) {
		f := newFixture(t)
		p := f.product(t, "KEY", 0)
		loc := f.location(t, "KEY-1")
		in := Adjustment{AdjustmentID: "po-7781-line-1", ProductID: p, LocationID: loc, Delta: 12, Reason: ReasonReceipt}
		for range 3 {
			lvl, err := f.svc.Adjust(ctx, in)
			must(t, err)
			if lvl.OnHand != 12 {
				t.Fatalf("replayed receipt counted again: %+v", lvl)
			}
		}
		other := in
		other.Delta = 13
		if _, err := f.svc.Adjust(ctx, other); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("same key, other delta: %v", err)
		}
		f.wantLevel(t, p, loc, 12, 0)
		if got := f.ledger(t, p, loc); len(got) != 1 {
			t.Fatalf("ledger: %v", got)
		}
	})

	t.Run("stock list and low stock", func(t *testing.T) {
		f := newFixture(t)
		locA, locB := f.location(t, "A"), f.location(t, "B")
		// 60 products at 2 locations: 120 rows, more than one batch of the
		// low-stock scan. Threshold 5 everywhere; every 4th product is low
		// at A (3 on hand), every 5th at B (1 on hand), so low rows are
		// spread over the whole key range whatever order ids sort in.
		const n = 60
		var prods []string
		for i := range n {
			p := f.product(t, fmt.Sprintf("LOW-%02d", i), 5)
			prods = append(prods, p)
			f.receive(t, p, locA, map[bool]int64{true: 3, false: 50}[i%4 == 0])
			f.receive(t, p, locB, map[bool]int64{true: 1, false: 50}[i%5 == 0])
		}
		// Reserving 46 of product 1 at A makes it low too (50 - 46 <= 5).
		_, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "low-1", Items: []ReservationItem{{prods[1], locA, 46}}})
		must(t, err)
		const lowA, lowB = n/4 + 1, n / 5

		cases := []struct {
			name  string
			f     StockFilter
			total int64
			items int
		}{
			{"all", StockFilter{}, 2 * n, 20},
			{"last page", StockFilter{Page: page.Request{Page: 6, PerPage: 20}}, 2 * n, 20},
			{"past the end", StockFilter{Page: page.Request{Page: 7, PerPage: 20}}, 2 * n, 0},
			{"one location", StockFilter{LocationID: locB, Page: page.Request{PerPage: 100}}, n, n},
			{"one product", StockFilter{ProductID: prods[3]}, 2, 2},
			{"low everywhere", StockFilter{LowStock: true, Page: page.Request{PerPage: 100}}, lowA + lowB, lowA + lowB},
			{"low at A", StockFilter{LowStock: true, LocationID: locA}, lowA, lowA},
			{"low at B", StockFilter{LowStock: true, LocationID: locB}, lowB, lowB},
			{"low, paged", StockFilter{LowStock: true, Page: page.Request{Page: 2, PerPage: 10}}, lowA + lowB, 10},
			{"low, last page", StockFilter{LowStock: true, Page: page.Request{Page: 3, PerPage: 10}}, lowA + lowB, lowA + lowB - 20},
			{"low, past the end", StockFilter{LowStock: true, Page: page.Request{Page: 9, PerPage: 10}}, lowA + lowB, 0},
			{"low, one product", StockFilter{LowStock: true, ProductID: prods[1]}, 1, 1},
			{"low, product low nowhere", StockFilter{LowStock: true, ProductID: prods[7]}, 0, 0},
			{"unknown location", StockFilter{LocationID: "loc_none"}, 0, 0},
		}
		for _, c := range cases {
			res, err := f.svc.ListStock(ctx, c.f)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if res.Total != c.total || len(res.Items) != c.items {
				t.Errorf("%s: total %d items %d, want %d and %d", c.name, res.Total, len(res.Items), c.total, c.items)
			}
			for _, lvl := range res.Items {
				if lvl.Available != lvl.OnHand-lvl.Reserved || lvl.AlertThreshold != 5 || lvl.LowStock != (lvl.Available <= 5) {
					t.Errorf("%s: inconsistent row %+v", c.name, lvl)
				}
				if c.f.LowStock && !lvl.LowStock {
					t.Errorf("%s: row not low: %+v", c.name, lvl)
				}
			}
		}
		// Pages of the low list are disjoint, ordered, and cover it.
		var seen []string
		for pg := 1; pg <= 3; pg++ {
			res, err := f.svc.ListStock(ctx, StockFilter{LowStock: true, Page: page.Request{Page: pg, PerPage: 10}})
			must(t, err)
			for _, lvl := range res.Items {
				seen = append(seen, lvl.LocationID+"/"+lvl.ProductID)
			}
		}
		if len(seen) != lowA+lowB || !slices.IsSorted(seen) || len(slices.Compact(slices.Clone(seen))) != lowA+lowB {
			t.Fatalf("low pages: %v", seen)
		}
		// The threshold is the catalog's, read fresh: raising it shows at
		// once.
		th := 50
		_, err = f.catalog.UpdateProduct(ctx, prods[21], product.ProductUpdate{AlertThreshold: &th})
		must(t, err)
		res, err := f.svc.ListStock(ctx, StockFilter{LowStock: true, ProductID: prods[21]})
		must(t, err)
		if res.Total != 2 || res.Items[0].AlertThreshold != 50 {
			t.Fatalf("after raising the threshold: %+v", res)
		}
		if _, err := f.svc.ListStock(ctx, StockFilter{LocationID: "x' OR '1'='1"}); !errs.IsKind(err, errs.Invalid) || !hasField(err, "location_id") {
			t.Fatalf("sql in filter: %v", err)
		}
	})

	t.Run("reservation lifecycle", func(t *testing.T) {
		f := newFixture(t)
		p1, p2 := f.product(t, "R1", 0), f.product(t, "R2", 0)
		loc := f.location(t, "RES")
		f.receive(t, p1, loc, 10)
		f.receive(t, p2, loc, 5)

		in := NewReservation{ReservationID: "sag_life", Items: []ReservationItem{{p2, loc, 2}, {p1, loc, 3}}}
		r, err := f.svc.Reserve(ctx, in)
		must(t, err)
		if r.ID != "sag_life" || r.Status != ReservationActive || len(r.Items) != 2 || r.replayed {
			t.Fatalf("reserved %+v", r)
		}
		if want := f.clock.Now().Add(DefaultTTL); !r.ExpiresAt.Equal(want) {
			t.Fatalf("expires_at %v, want %v (default TTL)", r.ExpiresAt, want)
		}
		if !slices.IsSortedFunc(r.Items, func(a, b ReservationItem) int { return strings.Compare(a.ProductID, b.ProductID) }) {
			t.Fatalf("items not in canonical order: %+v", r.Items)
		}
		f.wantLevel(t, p1, loc, 10, 3)
		f.wantLevel(t, p2, loc, 5, 2)

		got, err := f.svc.GetReservation(ctx, "sag_life")
		must(t, err)
		if got.Status != ReservationActive || !slices.Equal(got.Items, r.Items) || !got.ExpiresAt.Equal(r.ExpiresAt) {
			t.Fatalf("get %+v, want %+v", got, r)
		}

		c, err := f.svc.CommitReservation(ctx, "sag_life")
		must(t, err)
		if c.Status != ReservationCommitted {
			t.Fatalf("commit: %+v", c)
		}
		f.wantLevel(t, p1, loc, 7, 0)
		f.wantLevel(t, p2, loc, 3, 0)
		again, err := f.svc.CommitReservation(ctx, "sag_life")
		must(t, err)
		if again.Status != ReservationCommitted {
			t.Fatalf("second commit: %+v", again)
		}
		f.wantLevel(t, p1, loc, 7, 0)
		if _, err := f.svc.ReleaseReservation(ctx, "sag_life"); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("release committed: %v", err)
		}
		if got := f.ledger(t, p1, loc); !slices.Equal(got, []string{"receipt+10/+0", "reserve+0/+3", "commit-3/-3"}) {
			t.Fatalf("ledger: %v", got)
		}

		// Release path: idempotent, and the stock comes back.
		_, err = f.svc.Reserve(ctx, NewReservation{ReservationID: "sag_rel", Items: []ReservationItem{{p1, loc, 4}}, TTLSeconds: 60})
		must(t, err)
		f.wantLevel(t, p1, loc, 7, 4)
		for range 2 {
			rel, err := f.svc.ReleaseReservation(ctx, "sag_rel")
			must(t, err)
			if rel.Status != ReservationReleased {
				t.Fatalf("release: %+v", rel)
			}
			f.wantLevel(t, p1, loc, 7, 0)
		}
		if _, err := f.svc.CommitReservation(ctx, "sag_rel"); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("commit released: %v", err)
		}
		for name, call := range map[string]func(context.Context, string) (Reservation, error){
			"get": f.svc.GetReservation, "commit": f.svc.CommitReservation, "release": f.svc.ReleaseReservation,
		} {
			if _, err := call(ctx, "sag_nope"); !errs.IsKind(err, errs.NotFound) {
				t.Errorf("%s unknown: %v", name, err)
			}
		}
	})

	t.Run("reservation replay", func(t *testing.T) {
		f := newFixture(t)
		p1, p2 := f.product(t, "RP1", 0), f.product(t, "RP2", 0)
		loc := f.location(t, "RP")
		f.receive(t, p1, loc, 10)
		f.receive(t, p2, loc, 10)
		first, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "sag_rp", Items: []ReservationItem{{p1, loc, 2}, {p2, loc, 1}}, TTLSeconds: 300})
		must(t, err)
		f.clock.Advance(10 * time.Second)
		// Same lines in another order, another TTL: the same request.
		again, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "sag_rp", Items: []ReservationItem{{p2, loc, 1}, {p1, loc, 2}}, TTLSeconds: 30})
		must(t, err)
		if f.local && !again.replayed {
			t.Fatal("replay not flagged")
		}
		if again.ID != first.ID || !again.ExpiresAt.Equal(first.ExpiresAt) || !again.CreatedAt.Equal(first.CreatedAt) || !slices.Equal(again.Items, first.Items) {
			t.Fatalf("replay %+v, want %+v", again, first)
		}
		f.wantLevel(t, p1, loc, 10, 2)
		for name, items := range map[string][]ReservationItem{
			"other quantity": {{p1, loc, 3}, {p2, loc, 1}},
			"fewer lines":    {{p1, loc, 2}},
		} {
			if _, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "sag_rp", Items: items}); !errs.IsKind(err, errs.Conflict) {
				t.Errorf("%s: %v", name, err)
			}
		}
		f.wantLevel(t, p1, loc, 10, 2)
		// A replay after commit answers with the reservation as it is now.
		_, err = f.svc.CommitReservation(ctx, "sag_rp")
		must(t, err)
		after, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "sag_rp", Items: []ReservationItem{{p1, loc, 2}, {p2, loc, 1}}})
		must(t, err)
		if after.Status != ReservationCommitted {
			t.Fatalf("replay after commit: %+v", after)
		}
		f.wantLevel(t, p1, loc, 8, 0)
	})

	t.Run("reservation is all or nothing", func(t *testing.T) {
		f := newFixture(t)
		p1, p2, p3 := f.product(t, "AON1", 0), f.product(t, "AON2", 0), f.product(t, "AON3", 0)
		locA, locB := f.location(t, "AON-A"), f.location(t, "AON-B")
		f.receive(t, p1, locA, 5)
		f.receive(t, p2, locB, 2)
		f.receive(t, p3, locA, 1)
		before := f.movements(t)
		_, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "sag_aon", Items: []ReservationItem{
			{p1, locA, 5}, {p2, locB, 3}, {p3, locA, 1},
		}})
		if !errs.IsKind(err, errs.Conflict) || !strings.Contains(err.Error(), "items[1]") || !strings.Contains(err.Error(), "2 available, 3 requested") {
			t.Fatalf("short line: %v", err)
		}
		if strings.Contains(err.Error(), "items[0]") || strings.Contains(err.Error(), "items[2]") {
			t.Fatalf("names lines that were fine: %v", err)
		}
		f.wantLevel(t, p1, locA, 5, 0)
		f.wantLevel(t, p2, locB, 2, 0)
		f.wantLevel(t, p3, locA, 1, 0)
		if after := f.movements(t); after != before {
			t.Fatalf("refused reservation wrote %d ledger rows", after-before)
		}
		if _, err := f.svc.GetReservation(ctx, "sag_aon"); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("refused reservation was kept: %v", err)
		}
		// A product the location never stocked is a conflict too.
		p4 := f.product(t, "AON4", 0)
		_, err = f.svc.Reserve(ctx, NewReservation{ReservationID: "sag_aon", Items: []ReservationItem{{p4, locA, 1}}})
		if !errs.IsKind(err, errs.Conflict) || !strings.Contains(err.Error(), "none in stock") {
			t.Fatalf("never stocked: %v", err)
		}
		// The id is still free once stock allows.
		_, err = f.svc.Reserve(ctx, NewReservation{ReservationID: "sag_aon", Items: []ReservationItem{{p1, locA, 5}, {p2, locB, 2}}})
		must(t, err)
		f.wantLevel(t, p2, locB, 2, 2)
	})

	t.Run("reservation validation", func(t *testing.T) {
		f := newFixture(t)
		p := f.product(t, "VAL", 0)
		loc := f.location(t, "VAL")
		f.receive(t, p, loc, 5)
		many := make([]ReservationItem, MaxItems+1)
		for i := range many {
			many[i] = ReservationItem{ProductID: fmt.Sprintf("p%d", i), LocationID: loc, Quantity: 1}
		}
		line := func(q int64) []ReservationItem { return []ReservationItem{{p, loc, q}} }
		cases := []struct {
			name  string
			in    NewReservation
			kind  *errs.Kind
			field string
		}{
			{"no id", NewReservation{Items: line(1)}, errs.Invalid, "reservation_id"},
			{"sql in id", NewReservation{ReservationID: "r'; DELETE FROM stock;--", Items: line(1)}, errs.Invalid, "reservation_id"},
			{"no items", NewReservation{ReservationID: "v1"}, errs.Invalid, "items"},
			{"too many items", NewReservation{ReservationID: "v1", Items: many}, errs.Invalid, "items"},
			{"zero quantity", NewReservation{ReservationID: "v1", Items: line(0)}, errs.Invalid, "items[0].quantity"},
			{"negative quantity", NewReservation{ReservationID: "v1", Items: line(-3)}, errs.Invalid, "items[0].quantity"},
			{"huge quantity", NewReservation{ReservationID: "v1", Items: line(MaxQuantity + 1)}, errs.Invalid, "items[0].quantity"},
			{"duplicate line", NewReservation{ReservationID: "v1", Items: []ReservationItem{{p, loc, 1}, {p, loc, 1}}}, errs.Invalid, "items[1]"},
			{"ttl too long", NewReservation{ReservationID: "v1", Items: line(1), TTLSeconds: 86401}, errs.Invalid, "ttl_seconds"},
			{"ttl that would overflow", NewReservation{ReservationID: "v1", Items: line(1), TTLSeconds: 1 << 62}, errs.Invalid, "ttl_seconds"},
			{"negative ttl", NewReservation{ReservationID: "v1", Items: line(1), TTLSeconds: -1}, errs.Invalid, "ttl_seconds"},
			{"unknown location", NewReservation{ReservationID: "v1", Items: []ReservationItem{{p, loc, 1}, {p, "loc_nope", 1}}}, errs.Invalid, "items[1].location_id"},
			{"unknown product", NewReservation{ReservationID: "v1", Items: []ReservationItem{{"prd_nope", loc, 1}}}, errs.Invalid, "items[0].product_id"},
			{"more than stock", NewReservation{ReservationID: "v1", Items: line(6)}, errs.Conflict, ""},
		}
		before := f.movements(t)
		for _, c := range cases {
			_, err := f.svc.Reserve(ctx, c.in)
			wantErr(t, c.name, err, c.kind, c.field)
		}
		f.wantLevel(t, p, loc, 5, 0)
		if after := f.movements(t); after != before {
			t.Fatalf("refused reservations wrote %d ledger rows", after-before)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		f := newFixture(t)
		p := f.product(t, "EXP", 0)
		loc := f.location(t, "EXP")
		f.receive(t, p, loc, 10)
		reserve := func(id string, qty int64, ttl int) {
			t.Helper()
			_, err := f.svc.Reserve(ctx, NewReservation{ReservationID: id, Items: []ReservationItem{{p, loc, qty}}, TTLSeconds: ttl})
			must(t, err)
		}
		reserve("exp-get", 1, 60)
		reserve("exp-commit", 1, 60)
		reserve("exp-release", 1, 60)
		reserve("exp-replay", 1, 60)
		reserve("exp-long", 1, 3600)
		f.wantLevel(t, p, loc, 10, 5)

		// One microsecond short of the TTL, everything is still held.
		f.clock.Advance(60*time.Second - time.Microsecond)
		r, err := f.svc.GetReservation(ctx, "exp-get")
		must(t, err)
		if r.Status != ReservationActive {
			t.Fatalf("expired early: %+v", r)
		}
		if n, err := f.svc.ExpireReservations(ctx); err != nil || n != 0 {
			t.Fatalf("sweep before expiry: %d, %v", n, err)
		}
		f.clock.Advance(time.Microsecond)

		// Lazily, on each kind of access.
		r, err = f.svc.GetReservation(ctx, "exp-get")
		must(t, err)
		if r.Status != ReservationExpired {
			t.Fatalf("get after expiry: %+v", r)
		}
		f.wantLevel(t, p, loc, 10, 4)
		if _, err := f.svc.CommitReservation(ctx, "exp-commit"); !errs.IsKind(err, errs.Gone) {
			t.Fatalf("commit after expiry: %v", err)
		}
		f.wantLevel(t, p, loc, 10, 3) // the expiry was kept although the commit failed
		if _, err := f.svc.CommitReservation(ctx, "exp-commit"); !errs.IsKind(err, errs.Gone) {
			t.Fatalf("commit expired again: %v", err)
		}
		rel, err := f.svc.ReleaseReservation(ctx, "exp-release")
		must(t, err)
		if rel.Status != ReservationExpired {
			t.Fatalf("release after expiry: %+v", rel)
		}
		rep, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "exp-replay", Items: []ReservationItem{{p, loc, 1}}, TTLSeconds: 60})
		must(t, err)
		if rep.Status != ReservationExpired {
			t.Fatalf("replay after expiry: %+v", rep)
		}
		f.wantLevel(t, p, loc, 10, 1)
		if got := f.ledger(t, p, loc); !slices.Contains(got, "expire+0/-1") || slices.Contains(got, "commit-1/-1") {
			t.Fatalf("ledger: %v", got)
		}

		// By the sweep: only what is due, once.
		reserve("exp-s1", 2, 30)
		reserve("exp-s2", 3, 30)
		f.clock.Advance(31 * time.Second)
		if n, err := f.svc.ExpireReservations(ctx); err != nil || n != 2 {
			t.Fatalf("sweep: %d, %v (want 2)", n, err)
		}
		if n, err := f.svc.ExpireReservations(ctx); err != nil || n != 0 {
			t.Fatalf("second sweep: %d, %v (want 0)", n, err)
		}
		f.wantLevel(t, p, loc, 10, 1)
		long, err := f.svc.GetReservation(ctx, "exp-long")
		must(t, err)
		if long.Status != ReservationActive {
			t.Fatalf("long reservation: %+v", long)
		}
	})

	t.Run("overdue holds give way to new reservations", func(t *testing.T) {
		f := newFixture(t)
		p := f.product(t, "LAZY", 0)
		loc := f.location(t, "LAZY")
		f.receive(t, p, loc, 1)
		_, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "lazy-a", Items: []ReservationItem{{p, loc, 1}}, TTLSeconds: 10})
		must(t, err)
		if _, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "lazy-b", Items: []ReservationItem{{p, loc, 1}}}); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("while held: %v", err)
		}
		f.clock.Advance(11 * time.Second)
		// No sweep has run: the overdue hold is expired by the reserve that
		// needs its stock.
		b, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "lazy-b", Items: []ReservationItem{{p, loc, 1}}})
		must(t, err)
		if b.Status != ReservationActive {
			t.Fatalf("b: %+v", b)
		}
		var a reservationRow
		must(t, f.db.Where("id = ?", "lazy-a").Take(&a).Error)
		if a.Status != ReservationExpired {
			t.Fatalf("a is %s, want expired", a.Status)
		}
		f.wantLevel(t, p, loc, 1, 1)
	})

	t.Run("transfers", func(t *testing.T) {
		f := newFixture(t)
		p := f.product(t, "TRF", 0)
		wh, st := f.location(t, "WH"), f.location(t, "ST")
		f.receive(t, p, wh, 10)
		_, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "trf-hold", Items: []ReservationItem{{p, wh, 4}}})
		must(t, err)

		bad := []struct {
			name  string
			in    NewTransfer
			field string
		}{
			{"same location", NewTransfer{ProductID: p, FromLocationID: wh, ToLocationID: wh, Quantity: 1}, "to_location_id"},
			{"zero quantity", NewTransfer{ProductID: p, FromLocationID: wh, ToLocationID: st, Quantity: 0}, "quantity"},
			{"unknown from", NewTransfer{ProductID: p, FromLocationID: "loc_x", ToLocationID: st, Quantity: 1}, "from_location_id"},
			{"unknown to", NewTransfer{ProductID: p, FromLocationID: wh, ToLocationID: "loc_x", Quantity: 1}, "to_location_id"},
			{"unknown product", NewTransfer{ProductID: "prd_x", FromLocationID: wh, ToLocationID: st, Quantity: 1}, "product_id"},
		}
		for _, c := range bad {
			_, err := f.svc.CreateTransfer(ctx, c.in)
			wantErr(t, c.name, err, errs.Invalid, c.field)
		}

		tr, err := f.svc.CreateTransfer(ctx, NewTransfer{ProductID: p, FromLocationID: wh, ToLocationID: st, Quantity: 6, Note: "weekly top-up"})
		must(t, err)
		if tr.Status != TransferPending || tr.DecidedAt != nil || tr.Note != "weekly top-up" || !strings.HasPrefix(tr.ID, "trf_") {
			t.Fatalf("created %+v", tr)
		}
		f.wantLevel(t, p, wh, 10, 4) // nothing moves before approval
		for range 2 {
			ok, err := f.svc.ApproveTransfer(ctx, tr.ID)
			must(t, err)
			if ok.Status != TransferApproved || ok.DecidedAt == nil {
				t.Fatalf("approve: %+v", ok)
			}
		}
		f.wantLevel(t, p, wh, 4, 4)
		f.wantLevel(t, p, st, 6, 0)
		if _, err := f.svc.RejectTransfer(ctx, tr.ID); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("reject approved: %v", err)
		}
		if got := f.ledger(t, p, st); !slices.Equal(got, []string{"transfer_in+6/+0"}) {
			t.Fatalf("ledger at store: %v", got)
		}

		// Short: available (not on_hand) must cover it; nothing moves.
		short, err := f.svc.CreateTransfer(ctx, NewTransfer{ProductID: p, FromLocationID: wh, ToLocationID: st, Quantity: 1})
		must(t, err)
		before := f.movements(t)
		if _, err := f.svc.ApproveTransfer(ctx, short.ID); !errs.IsKind(err, errs.Conflict) || !strings.Contains(err.Error(), "0 available") {
			t.Fatalf("approve short: %v", err)
		}
		if after := f.movements(t); after != before {
			t.Fatalf("refused approval wrote %d ledger rows", after-before)
		}
		still, err := f.svc.GetTransfer(ctx, short.ID)
		must(t, err)
		if still.Status != TransferPending {
			t.Fatalf("refused approval changed the transfer: %+v", still)
		}
		f.wantLevel(t, p, wh, 4, 4)
		for range 2 {
			rej, err := f.svc.RejectTransfer(ctx, short.ID)
			must(t, err)
			if rej.Status != TransferRejected {
				t.Fatalf("reject: %+v", rej)
			}
		}
		if _, err := f.svc.ApproveTransfer(ctx, short.ID); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("approve rejected: %v", err)
		}
		if _, err := f.svc.GetTransfer(ctx, "trf_nope"); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("get unknown: %v", err)
		}
		if _, err := f.svc.ApproveTransfer(ctx, "trf_nope"); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("approve unknown: %v", err)
		}

		other := f.location(t, "OTHER")
		f.receive(t, p, other, 3)
		_, err = f.svc.CreateTransfer(ctx, NewTransfer{ProductID: p, FromLocationID: other, ToLocationID: st, Quantity: 1})
		must(t, err)
		lists := []struct {
			name  string
			f     TransferFilter
			total int64
		}{
			{"all", TransferFilter{}, 3},
			{"pending", TransferFilter{Status: TransferPending}, 1},
			{"approved", TransferFilter{Status: TransferApproved}, 1},
			{"from or to the warehouse", TransferFilter{LocationID: wh}, 2},
			{"from or to the store", TransferFilter{LocationID: st}, 3},
			{"other product", TransferFilter{ProductID: "prd_other"}, 0},
		}
		for _, c := range lists {
			res, err := f.svc.ListTransfers(ctx, c.f)
			if err != nil || res.Total != c.total || int64(len(res.Items)) != c.total {
				t.Errorf("%s: %+v, %v (want %d)", c.name, res, err, c.total)
			}
		}
		if _, err := f.svc.ListTransfers(ctx, TransferFilter{Status: "lost"}); !errs.IsKind(err, errs.Invalid) || !hasField(err, "status") {
			t.Fatalf("bad status filter: %v", err)
		}
	})

	t.Run("concurrent reservations of the last unit", func(t *testing.T) {
		f := newFixture(t)
		p := f.product(t, "LAST", 0)
		loc := f.location(t, "LAST")
		f.receive(t, p, loc, 1)
		const n = 50
		results := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				_, results[i] = f.svc.Reserve(ctx, NewReservation{ReservationID: fmt.Sprintf("last-%02d", i), Items: []ReservationItem{{p, loc, 1}}})
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range results {
			switch {
			case err == nil:
				won++
			case !errs.IsKind(err, errs.Conflict):
				t.Errorf("reserve %d: %v, want a conflict", i, err)
			}
		}
		if won != 1 {
			t.Fatalf("%d reservations of the last unit succeeded, want exactly 1", won)
		}
		f.wantLevel(t, p, loc, 1, 1)
	})

	t.Run("concurrent same reservation id", func(t *testing.T) {
		f := newFixture(t)
		p1, p2 := f.product(t, "SAME1", 0), f.product(t, "SAME2", 0)
		loc := f.location(t, "SAME")
		f.receive(t, p1, loc, 10)
		f.receive(t, p2, loc, 10)
		variants := [][]ReservationItem{{{p1, loc, 2}}, {{p2, loc, 3}}}
		const n = 20
		type result struct {
			r   Reservation
			err error
		}
		results := make([]result, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				r, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "sag_same", Items: variants[i%2]})
				results[i] = result{r, err}
			})
		}
		close(start)
		wg.Wait()
		stored, err := f.svc.GetReservation(ctx, "sag_same")
		must(t, err)
		winner := 0
		if stored.Items[0].ProductID == p2 {
			winner = 1
		}
		created := 0
		for i, res := range results {
			if i%2 == winner {
				if res.err != nil || res.r.ID != "sag_same" || !slices.Equal(res.r.Items, stored.Items) || !res.r.CreatedAt.Equal(stored.CreatedAt) {
					t.Errorf("caller %d with the winning items: %+v, %v", i, res.r, res.err)
				}
				if !res.r.replayed {
					created++
				}
				continue
			}
			if !errs.IsKind(res.err, errs.Conflict) {
				t.Errorf("caller %d with other items: %v, want a conflict", i, res.err)
			}
		}
		if f.local && created != 1 {
			t.Errorf("%d callers were told they created the reservation, want 1", created)
		}
		held := map[int]int64{0: 0, 1: 0}
		held[winner] = variants[winner][0].Quantity
		f.wantLevel(t, p1, loc, 10, held[0])
		f.wantLevel(t, p2, loc, 10, held[1])
	})

	t.Run("concurrent mixed operations keep the invariant", func(t *testing.T) {
		f := newFixture(t)
		locs := []string{f.location(t, "MIX-A"), f.location(t, "MIX-B")}
		prods := []string{f.product(t, "MIX1", 0), f.product(t, "MIX2", 0), f.product(t, "MIX3", 0)}
		for _, l := range locs {
			for _, p := range prods {
				f.receive(t, p, l, 8)
			}
		}
		const workers, ops = 6, 25
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 42))
				pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
				var mine []string
				for op := range ops {
					var err error
					switch k := rng.IntN(10); {
					case k < 2:
						delta := int64(1 + rng.IntN(3))
						if rng.IntN(2) == 0 {
							delta = -delta
						}
						_, err = f.svc.Adjust(ctx, Adjustment{ProductID: pick(prods), LocationID: pick(locs), Delta: delta, Reason: ReasonCorrection})
					case k < 6:
						id := fmt.Sprintf("mix-%d-%d", w, op)
						items := []ReservationItem{{pick(prods), locs[0], int64(1 + rng.IntN(3))}}
						if rng.IntN(2) == 0 {
							items = append(items, ReservationItem{prods[rng.IntN(len(prods))], locs[1], int64(1 + rng.IntN(3))})
						}
						if _, err = f.svc.Reserve(ctx, NewReservation{ReservationID: id, Items: items}); err == nil {
							mine = append(mine, id)
						}
					case k < 8 && len(mine) > 0:
						id := mine[0]
						mine = mine[1:]
						if rng.IntN(2) == 0 {
							_, err = f.svc.CommitReservation(ctx, id)
						} else {
							_, err = f.svc.ReleaseReservation(ctx, id)
						}
						if err != nil {
							t.Errorf("settle %s: %v", id, err)
						}
					default:
						var tr Transfer
						from := rng.IntN(2)
						tr, err = f.svc.CreateTransfer(ctx, NewTransfer{ProductID: pick(prods), FromLocationID: locs[from], ToLocationID: locs[1-from], Quantity: int64(1 + rng.IntN(4))})
						if err == nil {
							_, err = f.svc.ApproveTransfer(ctx, tr.ID)
						}
					}
					if err != nil && !errs.IsKind(err, errs.Conflict) {
						t.Errorf("worker %d op %d: %v", w, op, err)
					}
				}
			})
		}
		wg.Wait()
		res, err := f.svc.ListStock(ctx, StockFilter{})
		must(t, err)
		for _, lvl := range res.Items {
			if lvl.OnHand < 0 || lvl.Reserved < 0 || lvl.Available < 0 || lvl.OnHand != lvl.Available+lvl.Reserved {
				t.Errorf("broken level %+v", lvl)
			}
		}
		// checkInvariants (at cleanup) also ties every row to its ledger
		// and to the active reservations.
	})
}

// wantErr checks an error's kind and, when field is set, that it names the
// field.
func wantErr(t *testing.T, name string, err error, kind *errs.Kind, field string) {
	t.Helper()
	if !errs.IsKind(err, kind) {
		t.Errorf("%s: got %v, want kind %s", name, err, kind)
		return
	}
	if field != "" && !hasField(err, field) {
		t.Errorf("%s: error %v does not name field %q (fields %v)", name, err, field, errs.Fields(err))
	}
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

// TestLowStockScanIsBounded: a low_stock list that would filter more rows
// than the bound is refused with a field error, and narrowing it works.
func TestLowStockScanIsBounded(t *testing.T) {
	t.Parallel()
	catalog := product.New(testkit.OpenDB(t, testkit.SQLite, product.Name, product.Migrations))
	gdb := testkit.OpenDB(t, testkit.SQLite, Name, Migrations)
	f := &fixture{svc: NewWithOptions(gdb, catalog, Options{MaxLowStockScan: 150}), catalog: catalog, db: gdb}
	ctx := context.Background()
	locs := []string{f.location(t, "CAP-A"), f.location(t, "CAP-B")}
	for i := range 80 {
		p := f.product(t, fmt.Sprintf("CAP-%02d", i), 1)
		for _, l := range locs {
			f.receive(t, p, l, 1)
		}
	}
	_, err := f.svc.ListStock(ctx, StockFilter{LowStock: true})
	wantErr(t, "160 rows", err, errs.Invalid, "low_stock")
	res, err := f.svc.ListStock(ctx, StockFilter{LowStock: true, LocationID: locs[1]})
	must(t, err)
	if res.Total != 80 {
		t.Fatalf("narrowed to one location: total %d, want 80", res.Total)
	}
	checkInvariants(t, gdb)
}
