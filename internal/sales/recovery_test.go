package sales

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestRecovery leaves behind what a crash leaves at each step of a sale
// (and of a return) and proves Resume settles it: the sale completes if and
// only if its stock left, and the stock invariant holds throughout.
func TestRecovery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		stages := []struct {
			name string
			// crash does what the process did before dying.
			crash      func(t *testing.T, f *fixture, sale Sale)
			wantStatus string
			// taken is the coffee that left the store.
			taken int64
		}{
			{"before reserve", func(*testing.T, *fixture, Sale) {}, StatusVoided, 0},
			{"after reserve", func(t *testing.T, f *fixture, sale Sale) {
				_, err := f.stock.Reserve(ctx, f.local.reservation(sale))
				must(t, err)
			}, StatusCompleted, 2},
			{"after commit", func(t *testing.T, f *fixture, sale Sale) {
				_, err := f.stock.Reserve(ctx, f.local.reservation(sale))
				must(t, err)
				_, err = f.stock.CommitReservation(ctx, sale.ID)
				must(t, err)
			}, StatusCompleted, 2},
			{"after reserve, the hold expired", func(t *testing.T, f *fixture, sale Sale) {
				_, err := f.stock.Reserve(ctx, f.local.reservation(sale))
				must(t, err)
				f.invClock.Advance(f.local.ttl + time.Second)
			}, StatusVoided, 0},
		}
		for _, st := range stages {
			t.Run(st.name, func(t *testing.T) {
				f := newFixture(t, b, false)
				reg, ss := f.till(t, f.mtl)
				sale, found, err := f.local.begin(ctx, saleAt(reg, []SaleLineInput{line(f.coffee, 2, 0)}, cash(5000)))
				must(t, err)
				if found || sale.Status != StatusPending {
					t.Fatalf("begin: found %v, %+v", found, sale)
				}
				st.crash(t, f, sale)

				// Within the grace the sale may still be in its owner's
				// hands: recovery leaves it, and the drawer cannot close.
				r, err := f.local.Resume(ctx)
				must(t, err)
				if r != (Resumed{}) {
					t.Fatalf("Resume within the grace settled %+v", r)
				}
				_, err = f.svc.CloseSession(ctx, reg.ID, ss.ID, SessionClosing{CountedCashCents: 10000, Actor: cashier})
				wantKind(t, err, errs.Conflict, "")
				if n := f.completedSales(t, SaleFilter{}); n != 0 {
					t.Fatalf("a pending sale is listed")
				}

				f.clock.Advance(f.local.grace + time.Second)
				r, err = f.local.Resume(ctx)
				must(t, err)
				want := Resumed{Voided: 1}
				if st.wantStatus == StatusCompleted {
					want = Resumed{Completed: 1}
				}
				if r != want {
					t.Fatalf("Resume settled %+v, want %+v", r, want)
				}
				got, err := f.svc.GetSale(ctx, sale.ID)
				must(t, err)
				if got.Status != st.wantStatus {
					t.Fatalf("sale %s, want %s", got.Status, st.wantStatus)
				}
				f.wantStock(t, f.coffee.ID, f.mtl.ID, mtlCoffee-st.taken, 0)
				// Settled once: a second round finds nothing.
				if r, err := f.local.Resume(ctx); err != nil || r != (Resumed{}) {
					t.Fatalf("second Resume: %+v, %v", r, err)
				}
				closed, err := f.svc.CloseSession(ctx, reg.ID, ss.ID, SessionClosing{CountedCashCents: 10000, Actor: cashier})
				must(t, err)
				wantSales := int64(0)
				if st.wantStatus == StatusCompleted {
					wantSales = 1
				}
				if closed.Report.SalesCount != wantSales || closed.Report.SalesTotalCents != wantSales*sale.TotalCents {
					t.Fatalf("Z report counts %d sales for %d cents", closed.Report.SalesCount, closed.Report.SalesTotalCents)
				}
				if n := f.completedSales(t, SaleFilter{}); n != wantSales {
					t.Fatalf("%d sales listed, want %d", n, wantSales)
				}
			})
		}

		t.Run("closing settles an abandoned sale", func(t *testing.T) {
			f := newFixture(t, b, false)
			reg, ss := f.till(t, f.mtl)
			sale, _, err := f.local.begin(ctx, saleAt(reg, []SaleLineInput{line(f.coffee, 1, 0)}, card(2183)))
			must(t, err)
			_, err = f.stock.Reserve(ctx, f.local.reservation(sale))
			must(t, err)
			f.clock.Advance(f.local.grace + time.Second)
			closed, err := f.svc.CloseSession(ctx, reg.ID, ss.ID, SessionClosing{CountedCashCents: 10000, Actor: cashier})
			must(t, err)
			if closed.Report.SalesCount != 1 || closed.Report.Tenders[1].TakenCents != 2183 {
				t.Fatalf("Z report of a settled sale: %+v", closed.Report)
			}
			f.wantStock(t, f.coffee.ID, f.mtl.ID, mtlCoffee-1, 0)
		})

		t.Run("a retry with the same key finishes an interrupted sale", func(t *testing.T) {
			f := newFixture(t, b, false)
			reg, _ := f.till(t, f.mtl)
			in := saleAt(reg, []SaleLineInput{line(f.coffee, 2, 0)}, cash(5000))
			in.IdempotencyKey = "retry-1"
			sale, _, err := f.local.begin(ctx, in)
			must(t, err)
			_, err = f.stock.Reserve(ctx, f.local.reservation(sale))
			must(t, err)
			got, err := f.svc.CreateSale(ctx, in)
			must(t, err)
			if got.ID != sale.ID || got.Status != StatusCompleted {
				t.Fatalf("retry: %+v", got)
			}
			f.wantStock(t, f.coffee.ID, f.mtl.ID, mtlCoffee-2, 0)
		})

		t.Run("a sale voided while its stock was taken gives the stock back", func(t *testing.T) {
			f := newFixture(t, b, false)
			reg, _ := f.till(t, f.mtl)
			sale, _, err := f.local.begin(ctx, saleAt(reg, []SaleLineInput{line(f.coffee, 2, 0), line(f.mug, 1, 0)}, cash(5000)))
			must(t, err)
			// Recovery gave up on it (its reservation was missing) while
			// its owner was stalled; the owner then carries on.
			ok, err := f.local.store.voidSale(ctx, sale.ID, "interrupted before its stock was reserved", f.local.now())
			must(t, err)
			if !ok {
				t.Fatal("void did not apply")
			}
			_, err = f.local.drive(ctx, sale)
			wantKind(t, err, errs.Conflict, "")
			f.wantStock(t, f.coffee.ID, f.mtl.ID, mtlCoffee, 0)
			f.wantStock(t, f.mug.ID, f.mtl.ID, mtlMug, 0)
			got, err := f.svc.GetSale(ctx, sale.ID)
			must(t, err)
			if got.Status != StatusVoided {
				t.Fatalf("sale %s", got.Status)
			}
			// A crash between flagging and putting back: Resume puts it
			// back, once.
			must(t, f.local.store.setStockToRestore(ctx, sale.ID, true, f.local.now()))
			for range 2 {
				_, err := f.local.Resume(ctx)
				must(t, err)
			}
			f.wantStock(t, f.coffee.ID, f.mtl.ID, mtlCoffee, 0)
			left, err := f.local.store.salesToRestore(ctx, 10)
			must(t, err)
			if len(left) != 0 {
				t.Fatalf("still to restore: %v", left)
			}
		})

		t.Run("an interrupted restock is finished once", func(t *testing.T) {
			f := newFixture(t, b, false)
			reg, _ := f.till(t, f.mtl)
			sale, err := f.svc.CreateSale(ctx, saleAt(reg, []SaleLineInput{line(f.mug, 3, 0)}, cash(2000)))
			must(t, err)
			in := NewSaleReturn{RegisterID: reg.ID, Reason: "chipped", Lines: []SaleReturnLineInput{{ProductID: f.mug.ID, Quantity: 2}},
				IdempotencyKey: "ret-crash", Actor: cashier}
			ret, err := f.local.recordReturn(ctx, sale.ID, in) // the process dies before restocking
			must(t, err)
			if ret.Restocked {
				t.Fatal("recorded return claims to be restocked")
			}
			f.wantStock(t, f.mug.ID, f.mtl.ID, mtlMug-3, 0)
			r, err := f.local.Resume(ctx)
			must(t, err)
			if r.Restocked != 1 {
				t.Fatalf("Resume: %+v", r)
			}
			f.wantStock(t, f.mug.ID, f.mtl.ID, mtlMug-1, 0)
			// Neither another round nor the client's retry restocks again.
			r, err = f.local.Resume(ctx)
			must(t, err)
			again, err := f.svc.CreateReturn(ctx, sale.ID, in)
			must(t, err)
			if r.Restocked != 0 || again.ID != ret.ID || !again.Restocked {
				t.Fatalf("second round %+v, retry %+v", r, again)
			}
			f.wantStock(t, f.mug.ID, f.mtl.ID, mtlMug-1, 0)
		})
	})
}

// TestMetrics checks the business metrics count each outcome once.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, testkit.SQLite, false)
	reg, _ := f.till(t, f.mtl)
	in := saleAt(reg, []SaleLineInput{line(f.coffee, 2, 0)}, cash(3000), card(2000))
	in.IdempotencyKey = "m-1"
	sale, err := f.svc.CreateSale(ctx, in)
	must(t, err)
	_, err = f.svc.CreateSale(ctx, in) // a replay counts nothing
	must(t, err)
	_, err = f.svc.CreateReturn(ctx, sale.ID, NewSaleReturn{RegisterID: reg.ID, Reason: "x", Lines: []SaleReturnLineInput{{ProductID: f.coffee.ID, Quantity: 1}}, Actor: cashier})
	must(t, err)
	got := gather(t, f.reg)
	loc := `location="` + f.mtl.ID + `"`
	want := map[string]float64{
		"sales_total{" + loc + "}":                            1,
		"sales_amount_cents_total{" + loc + `,tender="card"}`: 2000,
		"sales_amount_cents_total{" + loc + `,tender="cash"}`: float64(3000 - sale.ChangeCents),
		"returns_total":          1,
		"register_sessions_open": 1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// gather flattens a registry into "name{labels}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if len(m.GetLabel()) > 0 {
				key += "{"
				for i, l := range m.GetLabel() {
					if i > 0 {
						key += ","
					}
					key += l.GetName() + `="` + l.GetValue() + `"`
				}
				key += "}"
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}

// failingCommits stands in front of the real inventory's HTTP surface and,
// while fail is set, answers 503 to reservation commits: the network blip
// between "stock reserved" and "stock gone".
type failingCommits struct {
	next http.Handler
	fail atomic.Bool
}

func (f *failingCommits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.fail.Load() && strings.HasSuffix(r.URL.Path, "/commit") {
		http.Error(w, "inventory unavailable", http.StatusServiceUnavailable)
		return
	}
	f.next.ServeHTTP(w, r)
}

// TestRetryAfterInventoryOutage: sales reaches the inventory over HTTP (as
// in the fleet); a commit fails, the sale stays pending with its stock
// held, and the register's retry with the same key completes it, once.
func TestRetryAfterInventoryOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, testkit.SQLite, false)
	inv := testkit.Serve(t, func(s *httpx.Server) { inventory.Routes(s.API, f.stock) })
	proxy := &failingCommits{next: inv.Server.Handler()}
	ts := httptest.NewServer(proxy)
	t.Cleanup(ts.Close)
	remote := inventory.NewClient(httpx.NewClient(httpx.ClientConfig{Context: inventory.Name, BaseURL: ts.URL,
		ServiceKey: inv.Keys.Service, Retries: -1}))
	svc := New(f.db, f.catalog, remote, Options{Now: f.clock.Now, Logger: testkit.Logger()})

	reg, ss := f.till(t, f.mtl)
	in := saleAt(reg, []SaleLineInput{line(f.coffee, 2, 0)}, cash(5000))
	in.IdempotencyKey = "blip-1"
	proxy.fail.Store(true)
	_, err := svc.CreateSale(ctx, in)
	wantKind(t, err, errs.Unavailable, "")
	f.wantStock(t, f.coffee.ID, f.mtl.ID, mtlCoffee, 2) // held, not gone
	if n := f.completedSales(t, SaleFilter{}); n != 0 {
		t.Fatal("a pending sale is listed")
	}
	_, err = svc.CloseSession(ctx, reg.ID, ss.ID, SessionClosing{CountedCashCents: 0, Actor: cashier})
	wantKind(t, err, errs.Conflict, "")

	proxy.fail.Store(false)
	sale, err := svc.CreateSale(ctx, in)
	must(t, err)
	if sale.Status != StatusCompleted {
		t.Fatalf("retry: %+v", sale)
	}
	again, err := svc.CreateSale(ctx, in)
	must(t, err)
	if again.ID != sale.ID {
		t.Fatalf("second retry made %s after %s", again.ID, sale.ID)
	}
	f.wantStock(t, f.coffee.ID, f.mtl.ID, mtlCoffee-2, 0)
	if n := f.completedSales(t, SaleFilter{}); n != 1 {
		t.Fatalf("%d sales", n)
	}
}
