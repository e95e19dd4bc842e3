package sales

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/product"
)

// testClock is a clock a test moves by hand, so grace periods and
// reservation expiry are exact, never slept through.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
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

// Actors of the tests.
var (
	manager = Actor{Role: auth.RoleManager}
	cashier = Actor{Role: auth.RoleCashier}
)

// fixture is a sales service with the real catalog and inventory it
// depends on, two stores stocked with a few products, and handles on
// everything the assertions need.
type fixture struct {
	// svc is the Service under test: the local one, or Client over HTTP.
	svc Service
	// local is the local implementation (behind svc when svc is a Client).
	local *service
	// catalog and stock are the real product and inventory services.
	catalog product.Service
	stock   inventory.Service
	// clock drives the sales service, invClock the inventory's.
	clock, invClock *testClock
	db              *gorm.DB
	reg             *prometheus.Registry
	// mtl is a Québec store (GST + QST), tor an Ontario one (HST).
	mtl, tor inventory.Location
	// coffee, mug, grinder, tea are on sale; stocked at mtl (tea: 1 unit)
	// and coffee at tor.
	coffee, mug, grinder, tea product.Product
}

const (
	mtlCoffee, mtlMug, mtlGrinder, mtlTea = 50, 50, 10, 1
	torCoffee                             = 20
)

func newFixture(t testing.TB, b testkit.Backend, overHTTP bool) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{clock: newClock(), invClock: newClock(), reg: prometheus.NewRegistry()}
	f.catalog = product.New(testkit.OpenDB(t, testkit.SQLite, product.Name, product.Migrations))
	invDB := testkit.OpenDB(t, b, inventory.Name, inventory.Migrations)
	f.stock = inventory.NewWithOptions(invDB, f.catalog, inventory.Options{Now: f.invClock.Now})
	f.db = testkit.OpenDB(t, b, Name, Migrations)
	f.local = New(f.db, f.catalog, f.stock, Options{Registerer: f.reg, Now: f.clock.Now, Logger: testkit.Logger()}).(*service)
	f.svc = f.local
	if overHTTP {
		h := testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, f.local) })
		f.svc = NewClient(h.Client(Name, h.Keys.Admin))
	}
	var err error
	f.mtl, err = f.stock.CreateLocation(ctx, inventory.NewLocation{Code: "MTL-01", Name: "Montréal Centre-Ville",
		Kind: inventory.KindStore, Province: "QC", Address: "1000 rue Sainte-Catherine Ouest, Montréal QC H3B 1A1"})
	must(t, err)
	f.tor, err = f.stock.CreateLocation(ctx, inventory.NewLocation{Code: "TOR-01", Name: "Toronto Queen West",
		Kind: inventory.KindStore, Province: "ON", Address: "500 Queen St W, Toronto ON"})
	must(t, err)
	f.coffee = f.product(t, "COF-1", "Coffee beans 1 kg, medium roast", 1899)
	f.mug = f.product(t, "MUG-1", "Mug", 500)
	f.grinder = f.product(t, "GRN-1", "Burr grinder", 12345)
	f.tea = f.product(t, "TEA-1", "Tea tin", 299)
	f.receive(t, f.coffee.ID, f.mtl.ID, mtlCoffee)
	f.receive(t, f.mug.ID, f.mtl.ID, mtlMug)
	f.receive(t, f.grinder.ID, f.mtl.ID, mtlGrinder)
	f.receive(t, f.tea.ID, f.mtl.ID, mtlTea)
	f.receive(t, f.coffee.ID, f.tor.ID, torCoffee)
	// Registered after the databases open, so it runs before they close:
	// whatever a test did, the stock invariant must hold at its end.
	t.Cleanup(func() { f.checkStock(t) })
	return f
}

func (f *fixture) product(t testing.TB, sku, name string, price int64) product.Product {
	t.Helper()
	p, err := f.catalog.CreateProduct(context.Background(), product.NewProduct{SKU: sku, Name: name, PriceCents: price})
	must(t, err)
	return p
}

func (f *fixture) receive(t testing.TB, productID, locationID string, qty int64) {
	t.Helper()
	_, err := f.stock.Adjust(context.Background(), inventory.Adjustment{ProductID: productID, LocationID: locationID,
		Delta: qty, Reason: inventory.ReasonReceipt})
	must(t, err)
}

// level reads one stock row from the inventory.
func (f *fixture) level(t testing.TB, productID, locationID string) inventory.StockLevel {
	t.Helper()
	res, err := f.stock.ListStock(context.Background(), inventory.StockFilter{ProductID: productID, LocationID: locationID})
	must(t, err)
	if len(res.Items) != 1 {
		t.Fatalf("%d stock rows for %s at %s", len(res.Items), productID, locationID)
	}
	return res.Items[0]
}

func (f *fixture) wantStock(t testing.TB, productID, locationID string, onHand, reserved int64) {
	t.Helper()
	lvl := f.level(t, productID, locationID)
	if lvl.OnHand != onHand || lvl.Reserved != reserved {
		t.Fatalf("stock of %s at %s: on_hand %d reserved %d, want %d/%d", productID, locationID, lvl.OnHand, lvl.Reserved, onHand, reserved)
	}
}

// checkStock holds the inventory invariant at every stock row: on_hand =
// available + reserved, none negative.
func (f *fixture) checkStock(t testing.TB) {
	t.Helper()
	res, err := f.stock.ListStock(context.Background(), inventory.StockFilter{Page: page.Request{PerPage: page.MaxPerPage}})
	if err != nil {
		t.Errorf("list stock: %v", err)
		return
	}
	for _, l := range res.Items {
		if l.OnHand != l.Available+l.Reserved || l.OnHand < 0 || l.Reserved < 0 || l.Available < 0 {
			t.Errorf("stock invariant broken at %s/%s: %+v", l.LocationID, l.ProductID, l)
		}
	}
}

// register creates a register at loc.
func (f *fixture) register(t testing.TB, loc inventory.Location, name string) Register {
	t.Helper()
	r, err := f.svc.CreateRegister(context.Background(), NewRegister{LocationID: loc.ID, Name: name, Actor: manager})
	must(t, err)
	return r
}

// open opens a session on a register.
func (f *fixture) open(t testing.TB, reg Register, float int64) RegisterSession {
	t.Helper()
	ss, err := f.svc.OpenSession(context.Background(), reg.ID, SessionOpening{CashierID: "c-17", OpeningFloatCents: float, Actor: cashier})
	must(t, err)
	return ss
}

// till is a register with an open session.
func (f *fixture) till(t testing.TB, loc inventory.Location) (Register, RegisterSession) {
	t.Helper()
	reg := f.register(t, loc, "Till")
	return reg, f.open(t, reg, 10000)
}

// saleAt builds a sale request at a register.
func saleAt(reg Register, lines []SaleLineInput, payments ...Tender) NewSale {
	return NewSale{LocationID: reg.LocationID, RegisterID: reg.ID, CashierID: "c-17", Lines: lines, Payments: payments, Actor: manager}
}

func line(p product.Product, qty int64, discount int) SaleLineInput {
	return SaleLineInput{ProductID: p.ID, Quantity: qty, DiscountPercent: discount}
}

func cash(c int64) Tender { return Tender{Method: MethodCash, AmountCents: c} }
func card(c int64) Tender { return Tender{Method: MethodCard, AmountCents: c} }

// completedSales counts the completed sales the service lists.
func (f *fixture) completedSales(t testing.TB, filter SaleFilter) int64 {
	t.Helper()
	res, err := f.svc.ListSales(context.Background(), filter)
	must(t, err)
	return res.Total
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantKind asserts err's kind (the one that decides the HTTP status) and,
// when field is set, that it names field.
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
