package loadtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTarget answers the reads the invariants make, from state a test
// sets: stock rows, the payment and order summaries, saga counts by
// state and claim statuses.
type fakeTarget struct {
	mu     sync.Mutex
	stock  []stockRow
	pay    paySummary
	orders orderTotals
	sagas  map[string]int64
	claims map[string]string
}

func (f *fakeTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("X-API-Key") != "admin" {
		w.WriteHeader(401)
		return
	}
	total := func(n int64) map[string]any { return map[string]any{"page": 1, "per_page": 100, "total": n} }
	var body any
	switch p := r.URL.Path; {
	case p == "/api/v1/inventory":
		var rows []stockRow
		for _, row := range f.stock {
			if row.LocationID == r.URL.Query().Get("location_id") {
				rows = append(rows, row)
			}
		}
		body = map[string]any{"data": rows, "meta": total(int64(len(rows)))}
	case p == "/api/v1/payments/summary":
		body = f.pay
	case p == "/api/v1/orders/summary":
		body = f.orders
	case p == "/api/v1/sagas":
		body = map[string]any{"data": []any{}, "meta": total(f.sagas[r.URL.Query().Get("status")])}
	case strings.HasPrefix(p, "/api/v1/claims/"):
		st, ok := f.claims[strings.TrimPrefix(p, "/api/v1/claims/")]
		if !ok {
			w.WriteHeader(404)
			return
		}
		body = map[string]any{"status": st}
	default:
		w.WriteHeader(404)
		return
	}
	_ = json.NewEncoder(w).Encode(body)
}

func (f *fakeTarget) set(fn func(f *fakeTarget)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

// invariantRun is a run of scenario name against f, with two products
// and a store and the web shop.
func invariantRun(t *testing.T, f *fakeTarget, name string) *run {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	sc, err := lookupScenario(name)
	if err != nil {
		t.Fatal(err)
	}
	return &run{cfg: Config{APIKey: "admin", SettleTimeout: 300 * time.Millisecond}, sc: sc, led: newLedger(),
		client: newClient(srv.URL, 2, time.Second), post: NewRecorder(time.Now()), setupRec: NewRecorder(time.Now()),
		fx: &fixtures{products: []productFx{{ID: "p1", SKU: "LT-0001"}, {ID: "p2", SKU: "LT-0002"}},
			stores: []locationFx{{ID: "s1", Code: "MTL-01"}}, online: locationFx{ID: "web", Code: "WEB"}}}
}

func rows(vals ...int64) []stockRow {
	// vals: on_hand, reserved for p1@s1, p2@s1, p1@web, p2@web
	keys := []stockKey{{"p1", "s1"}, {"p2", "s1"}, {"p1", "web"}, {"p2", "web"}}
	var out []stockRow
	for i, k := range keys {
		on, res := vals[2*i], vals[2*i+1]
		out = append(out, stockRow{ProductID: k.product, LocationID: k.location, OnHand: on, Reserved: res, Available: on - res})
	}
	return out
}

func TestStockInvariant(t *testing.T) {
	f := &fakeTarget{stock: rows(100, 0, 100, 0, 100, 0, 100, 0)}
	r := invariantRun(t, f, "mixed")
	ctx := t.Context()
	before, err := r.readStock(ctx, r.setupRec)
	if err != nil || len(before) != 4 {
		t.Fatalf("before: %v %v", before, err)
	}
	snap := snapshotState{stock: before}
	// The run sold 3 of p1 at the store, returned 1, and an order took 2
	// of p2 from the web shop.
	r.led.saleCompleted(&saleRec{id: "sale1", location: "s1", lines: []saleLine{{product: "p1", sold: 3, returnable: 3}}})
	r.led.returned("s1", "p1")
	r.led.orderCompleted(&orderRec{id: "o1", location: "web", total: 500, lines: []line{{"p2", 2}}})

	f.set(func(f *fakeTarget) { f.stock = rows(98, 0, 100, 0, 100, 0, 98, 0) })
	if res := r.checkStock(ctx, snap); res.Status != InvariantPass || !strings.Contains(res.Detail, "-4 units over 2 rows") {
		t.Errorf("exact movement: %+v", res)
	}
	// One unit too many left the store.
	f.set(func(f *fakeTarget) { f.stock = rows(97, 0, 100, 0, 100, 0, 98, 0) })
	if res := r.checkStock(ctx, snap); res.Status != InvariantFail || !strings.Contains(res.Detail, "LT-0001 at MTL-01: on_hand moved by -3, the run accounts for -2") {
		t.Errorf("a lost unit: %+v", res)
	}
	// A reservation left behind.
	f.set(func(f *fakeTarget) { f.stock = rows(98, 0, 100, 0, 100, 0, 98, 2) })
	if res := r.checkStock(ctx, snap); res.Status != InvariantFail || !strings.Contains(res.Detail, "2 reserved after the run, 0 before") {
		t.Errorf("a leftover reservation: %+v", res)
	}
	// A row that does not add up, or goes negative, fails whatever the
	// ledger says.
	f.set(func(f *fakeTarget) {
		f.stock = rows(98, 0, 100, 0, 100, 0, 98, 0)
		f.stock[1].Available = 99
	})
	if res := r.checkStock(ctx, snap); res.Status != InvariantFail || !strings.Contains(res.Detail, "available 99") {
		t.Errorf("on_hand ≠ available + reserved: %+v", res)
	}
	// An outcome the run lost makes that row's movement not computable,
	// not wrong; the row must still be consistent.
	r.led.unsure("s1", []line{{"p1", 1}})
	f.set(func(f *fakeTarget) { f.stock = rows(97, 0, 100, 0, 100, 0, 98, 0) })
	if res := r.checkStock(ctx, snap); res.Status != InvariantPass || !strings.Contains(res.Detail, "not computable for 1 rows") {
		t.Errorf("an ambiguous row: %+v", res)
	}
	cat := invariantRun(t, f, "catalog-15vu")
	if res := cat.checkStock(ctx, snap); res.Status != InvariantNA {
		t.Errorf("catalog: %+v", res)
	}
}

func TestMoneyInvariant(t *testing.T) {
	f := &fakeTarget{pay: paySummary{Captured: 10_000, Refunded: 1_000}, orders: orderTotals{PaidCents: 9_000}}
	r := invariantRun(t, f, "checkout")
	ctx := t.Context()
	before := snapshotState{pay: f.pay, orders: f.orders}
	r.led.orderCompleted(&orderRec{id: "o1", location: "web", total: 1_500})
	r.led.orderCompleted(&orderRec{id: "o2", location: "web", total: 700})
	r.led.orderCancelled("o2")

	f.set(func(f *fakeTarget) {
		f.pay = paySummary{Captured: 12_200, Refunded: 1_700}
		f.orders = orderTotals{PaidCents: 10_500}
	})
	if res := r.checkMoney(ctx, before); res.Status != InvariantPass || !strings.Contains(res.Detail, "$15.00") {
		t.Errorf("balanced: %+v", res)
	}
	// The refund of the cancelled order never happened.
	f.set(func(f *fakeTarget) { f.pay = paySummary{Captured: 12_200, Refunded: 1_000} })
	if res := r.checkMoney(ctx, before); res.Status != InvariantFail || !strings.Contains(res.Detail, "moved by 2200") {
		t.Errorf("a missing refund: %+v", res)
	}
	if res := invariantRun(t, f, "pos").checkMoney(ctx, before); res.Status != InvariantNA {
		t.Errorf("pos: %+v", res)
	}
}

func TestSagasInvariantWaitsThenFails(t *testing.T) {
	f := &fakeTarget{sagas: map[string]int64{"COMPENSATING_PAYMENT": 2, "PENDING": 1}}
	r := invariantRun(t, f, "checkout")
	ctx := t.Context()
	start := time.Now()
	res := r.checkSagas(ctx)
	if res.Status != InvariantFail || !strings.Contains(res.Detail, "2 COMPENSATING_PAYMENT, 1 PENDING") {
		t.Errorf("stuck sagas: %+v", res)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("gave up after %v, the settle timeout is 300ms", took)
	}
	// Sagas that finish within the settle timeout pass.
	time.AfterFunc(100*time.Millisecond, func() { f.set(func(f *fakeTarget) { f.sagas = nil }) })
	f.set(func(f *fakeTarget) { f.sagas = map[string]int64{"PENDING": 1} })
	r.cfg.SettleTimeout = 5 * time.Second
	if res := r.checkSagas(ctx); res.Status != InvariantPass {
		t.Errorf("settling sagas: %+v", res)
	}
}

func TestClaimsAndDrawersInvariants(t *testing.T) {
	f := &fakeTarget{claims: map[string]string{"clm_a": "closed", "clm_b": "resolved"}}
	r := invariantRun(t, f, "mixed")
	ctx := t.Context()
	r.led.claimCreated("clm_a")
	r.led.claimCreated("clm_b")
	if res := r.checkClaims(ctx); res.Status != InvariantFail || !strings.Contains(res.Detail, "clm_b (resolved)") {
		t.Errorf("a claim the projection never closed: %+v", res)
	}
	f.set(func(f *fakeTarget) { f.claims["clm_b"] = "closed" })
	if res := r.checkClaims(ctx); res.Status != InvariantPass {
		t.Errorf("closed claims: %+v", res)
	}

	r.led.sessionOpened("MTL-01-R1", "ses_1")
	r.led.sessionClosed("MTL-01-R1", 0, "ses_1")
	if res := r.checkDrawers(); res.Status != InvariantPass {
		t.Errorf("balanced drawers: %+v", res)
	}
	r.led.sessionOpened("MTL-01-R2", "ses_2")
	r.led.sessionOpened("MTL-01-R3", "ses_3")
	r.led.sessionClosed("MTL-01-R3", -25, "ses_3")
	res := r.checkDrawers()
	if res.Status != InvariantFail || !strings.Contains(res.Detail, "ses_3") || !strings.Contains(res.Detail, "left open on MTL-01-R2") {
		t.Errorf("unbalanced and open drawers: %+v", res)
	}
}

// TestReturnsNeverExceedWhatWasSold: the ledger hands out each sold unit
// once, however many VUs ask, and takes a failed return's unit back.
func TestReturnsNeverExceedWhatWasSold(t *testing.T) {
	l := newLedger()
	s := &saleRec{id: "s", location: "a", lines: []saleLine{{product: "p", sold: 3, returnable: 3}}}
	l.saleCompleted(s)
	rng := testRun(nil).newVU(0).rng
	var got int
	for range 10 {
		if _, _, ok := l.takeReturnable(rng, []*saleRec{s}, false, "a"); ok {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("%d units handed out of 3 sold", got)
	}
	l.giveBack(s, "p")
	if _, _, ok := l.takeReturnable(rng, nil, true, "b"); !ok {
		t.Error("a unit given back is not returnable from another store")
	}
	if _, _, ok := l.takeReturnable(rng, nil, true, "a"); ok {
		t.Error("a cross-store return picked a sale of its own store")
	}
}
