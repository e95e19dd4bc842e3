package sales

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestService runs one suite against every adapter of Service: the local
// implementation on each database engine (with the real catalog and
// inventory), and Client over HTTP. The same assertions hold for all,
// errors included.
func TestService(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		runSuite(t, func(t *testing.T) *fixture { return newFixture(t, b, false) })
	})
	t.Run("client", func(t *testing.T) {
		runSuite(t, func(t *testing.T) *fixture { return newFixture(t, testkit.SQLite, true) })
	})
}

func runSuite(t *testing.T, newF func(t *testing.T) *fixture) {
	ctx := context.Background()

	t.Run("a day at the till", func(t *testing.T) {
		f := newF(t)
		reg := f.register(t, f.mtl, "Front")
		if reg.ID != "MTL-01-R1" || reg.LocationID != f.mtl.ID {
			t.Fatalf("generated register: %+v", reg)
		}
		ss := f.open(t, reg, 20000)
		if ss.Status != SessionOpen || ss.LocationID != f.mtl.ID {
			t.Fatalf("session: %+v", ss)
		}

		// Three sales: cash with change, split tender by SKU, discounts.
		s1, err := f.svc.CreateSale(ctx, saleAt(reg, []SaleLineInput{line(f.coffee, 2, 0)}, cash(5000)))
		must(t, err)
		s2, err := f.svc.CreateSale(ctx, saleAt(reg, []SaleLineInput{line(f.mug, 3, 0), {SKU: "GRN-1", Quantity: 1}},
			card(10000), cash(10000)))
		must(t, err)
		s3, err := f.svc.CreateSale(ctx, saleAt(reg, []SaleLineInput{line(f.coffee, 1, 10), line(f.grinder, 1, 25)}, card(12610)))
		must(t, err)
		sales := []Sale{s1, s2, s3}
		for _, s := range sales {
			checkSaleArithmetic(t, s)
			if s.Status != StatusCompleted || s.SessionID != ss.ID || s.Province != "QC" || s.StoreName != f.mtl.Name {
				t.Fatalf("sale %s: %+v", s.ID, s)
			}
		}
		// Hand-computed anchors (QC: GST 5 %, QST 9.975 %, half-up per line).
		if s1.TotalCents != 4367 || s1.ChangeCents != 633 {
			t.Fatalf("s1 total %d change %d, want 4367 and 633", s1.TotalCents, s1.ChangeCents)
		}
		if s2.TotalCents != 15918 || s2.ChangeCents != 4082 || s2.Lines[1].ProductID != f.grinder.ID {
			t.Fatalf("s2 total %d change %d lines %+v", s2.TotalCents, s2.ChangeCents, s2.Lines)
		}
		if s3.DiscountCents != 190+3086 || s3.TotalCents != 12610 || taxOf(s3.Taxes, "GST") != 548 || taxOf(s3.Taxes, "QST") != 1094 {
			t.Fatalf("s3 discount %d total %d taxes %+v", s3.DiscountCents, s3.TotalCents, s3.Taxes)
		}
		// Prices come from the catalog.
		if s1.Lines[0].UnitPriceCents != f.coffee.PriceCents || s1.Lines[0].Name != f.coffee.Name {
			t.Fatalf("line not priced from the catalog: %+v", s1.Lines[0])
		}
		f.wantStock(t, f.coffee.ID, f.mtl.ID, mtlCoffee-3, 0)
		f.wantStock(t, f.grinder.ID, f.mtl.ID, mtlGrinder-2, 0)

		// One return from the split-tender sale: card first, then cash.
		ret, err := f.svc.CreateReturn(ctx, s2.ID, NewSaleReturn{RegisterID: reg.ID, Reason: "changed mind",
			Lines: []SaleReturnLineInput{{ProductID: f.mug.ID, Quantity: 2}, {ProductID: f.grinder.ID, Quantity: 1}}, Actor: cashier})
		must(t, err)
		if ret.TotalCents != 15343 || sumMethod(ret.Refunds, MethodCard) != 10000 || sumMethod(ret.Refunds, MethodCash) != 5343 || !ret.Restocked {
			t.Fatalf("return: total %d refunds %+v restocked %v", ret.TotalCents, ret.Refunds, ret.Restocked)
		}
		f.wantStock(t, f.grinder.ID, f.mtl.ID, mtlGrinder-1, 0)
		f.wantStock(t, f.mug.ID, f.mtl.ID, mtlMug-1, 0)

		// The Z report equals the sums of the sale and return records.
		listed, err := f.svc.ListSales(ctx, SaleFilter{SessionID: ss.ID, Page: page.Request{PerPage: 100}})
		must(t, err)
		if listed.Total != 3 {
			t.Fatalf("%d sales listed in the session", listed.Total)
		}
		want := expectedReport(t, 20000, listed.Items, []SaleReturn{ret})
		counted := want.ExpectedCashCents - 150
		closed, err := f.svc.CloseSession(ctx, reg.ID, ss.ID, SessionClosing{CountedCashCents: counted, Actor: cashier})
		must(t, err)
		if closed.Status != SessionClosed || closed.Report == nil {
			t.Fatalf("closed session: %+v", closed)
		}
		compareReport(t, *closed.Report, want)
		rep := *closed.Report
		if rep.CountedCashCents == nil || *rep.CountedCashCents != counted || *rep.OverShortCents != -150 {
			t.Fatalf("counted %v over/short %v", rep.CountedCashCents, rep.OverShortCents)
		}
		// Hand-computed anchors of the whole day.
		if rep.NetSalesCents != 15266 || rep.TaxCents != 2286 || rep.TotalCents != 17552 || rep.ExpectedCashCents != 24942 {
			t.Fatalf("Z report: net %d tax %d total %d expected cash %d", rep.NetSalesCents, rep.TaxCents, rep.TotalCents, rep.ExpectedCashCents)
		}
		var tenderNet int64
		for _, tn := range rep.Tenders {
			tenderNet += tn.NetCents
		}
		if tenderNet != rep.TotalCents || rep.NetSalesCents+rep.TaxCents != rep.TotalCents {
			t.Fatalf("Z report does not add up: tenders %d, net+tax %d, total %d", tenderNet, rep.NetSalesCents+rep.TaxCents, rep.TotalCents)
		}
		// Later reads answer the same report; closing again with the same
		// count is the same close, with another count a conflict.
		again, err := f.svc.GetSession(ctx, reg.ID, ss.ID)
		must(t, err)
		compareReport(t, *again.Report, *closed.Report)
		_, err = f.svc.CloseSession(ctx, reg.ID, ss.ID, SessionClosing{CountedCashCents: counted, Actor: cashier})
		must(t, err)
		_, err = f.svc.CloseSession(ctx, reg.ID, ss.ID, SessionClosing{CountedCashCents: counted + 1, Actor: cashier})
		wantKind(t, err, errs.Conflict, "")
		// A closed session takes no more sales.
		_, err = f.svc.CreateSale(ctx, saleAt(reg, []SaleLineInput{line(f.mug, 1, 0)}, cash(1000)))
		wantKind(t, err, errs.Conflict, "")

		// The receipt: 58 columns, the totals, the tender, the change.
		rc, err := f.svc.Receipt(ctx, s3.ID)
		must(t, err)
		checkReceipt(t, rc, s3)
		rc, err = f.svc.Receipt(ctx, s1.ID)
		must(t, err)
		checkReceipt(t, rc, s1)
		if !strings.Contains(rc.Text, "Change") || !strings.HasSuffix(lineWith(t, rc.Text, "Change"), money(633)) {
			t.Fatalf("receipt change line:\n%s", rc.Text)
		}
	})

	t.Run("bad requests write nothing", func(t *testing.T) {
		f := newF(t)
		reg, _ := f.till(t, f.mtl)
		closedReg := f.register(t, f.mtl, "Closed")
		torReg := f.register(t, f.tor, "Toronto")
		ok := []SaleLineInput{line(f.mug, 1, 0)}
		cases := []struct {
			name  string
			in    NewSale
			kind  *errs.Kind
			field string
		}{
			{"unknown register", NewSale{LocationID: f.mtl.ID, RegisterID: "NOPE-R9", CashierID: "c", Lines: ok, Payments: []Tender{cash(1000)}}, errs.NotFound, "register_id"},
			{"no open session", saleAt(closedReg, ok, cash(1000)), errs.Conflict, ""},
			{"register at another store", NewSale{LocationID: f.mtl.ID, RegisterID: torReg.ID, CashierID: "c", Lines: ok, Payments: []Tender{cash(1000)}}, errs.Invalid, "register_id"},
			{"tender short", saleAt(reg, ok, cash(574)), errs.Invalid, "payments"},
			{"no tender", saleAt(reg, ok), errs.Invalid, "payments"},
			{"card over the total", saleAt(reg, ok, card(576)), errs.Invalid, "payments"},
			{"unknown product", saleAt(reg, []SaleLineInput{{ProductID: "prd_nope", Quantity: 1}}, cash(1000)), errs.Invalid, "lines[0].product_id"},
			{"unknown sku", saleAt(reg, []SaleLineInput{{SKU: "NOPE", Quantity: 1}}, cash(1000)), errs.Invalid, "lines[0].sku"},
			{"neither id nor sku", saleAt(reg, []SaleLineInput{{Quantity: 1}}, cash(1000)), errs.Invalid, "lines[0].product_id"},
			{"zero quantity", saleAt(reg, []SaleLineInput{line(f.mug, 0, 0)}, cash(1000)), errs.Invalid, "lines[0].quantity"},
			{"negative quantity", saleAt(reg, []SaleLineInput{line(f.mug, -2, 0)}, cash(1000)), errs.Invalid, "lines[0].quantity"},
			{"discount over 100", saleAt(reg, []SaleLineInput{line(f.mug, 1, 101)}, cash(1000)), errs.Invalid, "lines[0].discount_percent"},
			{"same product twice", saleAt(reg, []SaleLineInput{line(f.mug, 1, 0), {SKU: "MUG-1", Quantity: 1}}, cash(2000)), errs.Invalid, "lines[1]"},
			{"bad tender method", saleAt(reg, ok, Tender{Method: "cheque", AmountCents: 1000}), errs.Invalid, "payments[0].method"},
			{"sql in cashier", NewSale{LocationID: f.mtl.ID, RegisterID: reg.ID, CashierID: "x'; DROP TABLE sales; --", Lines: ok, Payments: []Tender{cash(1000)}}, errs.Invalid, "cashier_id"},
			{"more than the store holds", saleAt(reg, []SaleLineInput{line(f.grinder, mtlGrinder+1, 0)}, cash(100_000_000)), errs.Conflict, ""},
		}
		for _, c := range cases {
			_, err := f.svc.CreateSale(ctx, c.in)
			if err == nil || errs.KindOf(err) != c.kind {
				t.Errorf("%s: got %v, want %s", c.name, err, c.kind.Name())
				continue
			}
			if c.field != "" && !names(err, c.field) {
				t.Errorf("%s: %v does not name %q", c.name, err, c.field)
			}
		}
		if n := f.completedSales(t, SaleFilter{}); n != 0 {
			t.Fatalf("%d sales recorded by refused requests", n)
		}
		f.wantStock(t, f.grinder.ID, f.mtl.ID, mtlGrinder, 0)
		f.wantStock(t, f.mug.ID, f.mtl.ID, mtlMug, 0)

		// Sessions: unknown register, a second open session, another
		// register's session.
		_, err := f.svc.OpenSession(ctx, "NOPE-R9", SessionOpening{CashierID: "c", Actor: cashier})
		wantKind(t, err, errs.NotFound, "")
		_, err = f.svc.OpenSession(ctx, reg.ID, SessionOpening{CashierID: "c", Actor: cashier})
		wantKind(t, err, errs.Conflict, "")
		open, err := f.local.store.openSessionOf(ctx, reg.ID)
		must(t, err)
		_, err = f.svc.GetSession(ctx, closedReg.ID, open.ID)
		wantKind(t, err, errs.NotFound, "")
		_, err = f.svc.CreateRegister(ctx, NewRegister{LocationID: "loc_nope", Name: "x", Actor: manager})
		wantKind(t, err, errs.Invalid, "location_id")
		_, err = f.svc.CreateRegister(ctx, NewRegister{ID: reg.ID, LocationID: f.mtl.ID, Name: "dup", Actor: manager})
		wantKind(t, err, errs.Conflict, "")
		_, err = f.svc.GetSale(ctx, "sal_nope")
		wantKind(t, err, errs.NotFound, "")
	})

	t.Run("idempotent sale", func(t *testing.T) {
		f := newF(t)
		reg, ss := f.till(t, f.mtl)
		in := saleAt(reg, []SaleLineInput{line(f.coffee, 2, 0)}, cash(5000))
		in.IdempotencyKey = "reg1-000042"
		first, err := f.svc.CreateSale(ctx, in)
		must(t, err)
		second, err := f.svc.CreateSale(ctx, in)
		must(t, err)
		if second.ID != first.ID || second.TotalCents != first.TotalCents {
			t.Fatalf("replay made another sale: %s then %s", first.ID, second.ID)
		}
		if n := f.completedSales(t, SaleFilter{SessionID: ss.ID}); n != 1 {
			t.Fatalf("%d sales for one key", n)
		}
		// One stock movement: taken once, under the sale's reservation.
		f.wantStock(t, f.coffee.ID, f.mtl.ID, mtlCoffee-2, 0)
		res, err := f.stock.GetReservation(ctx, first.ID)
		must(t, err)
		if res.Status != inventory.ReservationCommitted {
			t.Fatalf("reservation %s", res.Status)
		}
		// The same key with another body is refused, and takes nothing.
		other := in
		other.Lines = []SaleLineInput{line(f.coffee, 3, 0)}
		_, err = f.svc.CreateSale(ctx, other)
		wantKind(t, err, errs.Unprocessable, "")
		f.wantStock(t, f.coffee.ID, f.mtl.ID, mtlCoffee-2, 0)
		// Another register may use the same key for its own sale.
		reg2, _ := f.till(t, f.mtl)
		in2 := saleAt(reg2, in.Lines, in.Payments...)
		in2.IdempotencyKey = in.IdempotencyKey
		third, err := f.svc.CreateSale(ctx, in2)
		must(t, err)
		if third.ID == first.ID {
			t.Fatal("keys of two registers collided")
		}
	})

	t.Run("returns never exceed the sale and refund exactly what was paid", func(t *testing.T) {
		f := newF(t)
		reg, _ := f.till(t, f.mtl)
		odd := f.product(t, "ODD-1", "Odd price", 333)
		f.receive(t, odd.ID, f.mtl.ID, 5)
		// 3 × 3.33 at 10 % off, half by card: every third refunds a
		// different number of cents.
		sale, err := f.svc.CreateSale(ctx, saleAt(reg, []SaleLineInput{line(odd, 3, 10)}, card(500), cash(1000)))
		must(t, err)
		f.wantStock(t, odd.ID, f.mtl.ID, 2, 0)
		_, err = f.svc.CreateReturn(ctx, sale.ID, NewSaleReturn{RegisterID: reg.ID, Reason: "too many",
			Lines: []SaleReturnLineInput{{ProductID: odd.ID, Quantity: 4}}, Actor: cashier})
		wantKind(t, err, errs.Conflict, "")
		_, err = f.svc.CreateReturn(ctx, sale.ID, NewSaleReturn{RegisterID: reg.ID, Reason: "not sold",
			Lines: []SaleReturnLineInput{{ProductID: f.mug.ID, Quantity: 1}}, Actor: cashier})
		wantKind(t, err, errs.Invalid, "lines[0].product_id")
		var refunded, byCard, byCash int64
		for i := 0; i < 3; i++ {
			ret, err := f.svc.CreateReturn(ctx, sale.ID, NewSaleReturn{RegisterID: reg.ID, Reason: "one at a time",
				Lines: []SaleReturnLineInput{{ProductID: odd.ID, Quantity: 1}}, Actor: cashier})
			must(t, err)
			if sumMethod(ret.Refunds, MethodCard)+sumMethod(ret.Refunds, MethodCash) != ret.TotalCents || ret.TotalCents != ret.SubtotalCents+ret.TaxCents {
				t.Fatalf("return %d does not add up: %+v", i, ret)
			}
			refunded += ret.TotalCents
			byCard += sumMethod(ret.Refunds, MethodCard)
			byCash += sumMethod(ret.Refunds, MethodCash)
		}
		if refunded != sale.TotalCents || byCard != 500 || byCash != sale.TotalCents-500 {
			t.Fatalf("refunded %d (card %d, cash %d) of a %d sale paid 500 by card", refunded, byCard, byCash, sale.TotalCents)
		}
		_, err = f.svc.CreateReturn(ctx, sale.ID, NewSaleReturn{RegisterID: reg.ID, Reason: "again",
			Lines: []SaleReturnLineInput{{ProductID: odd.ID, Quantity: 1}}, Actor: cashier})
		wantKind(t, err, errs.Conflict, "")
		got, err := f.svc.GetSale(ctx, sale.ID)
		must(t, err)
		if got.Lines[0].ReturnedQuantity != 3 || got.RefundedCardCents+got.RefundedCashCents != got.TotalCents {
			t.Fatalf("sale after returns: %+v", got)
		}
		rets, err := f.svc.ListReturns(ctx, sale.ID)
		must(t, err)
		if len(rets) != 3 {
			t.Fatalf("%d returns listed", len(rets))
		}
		f.wantStock(t, odd.ID, f.mtl.ID, 5, 0)

		// A return under an idempotency key is made once, restocked once.
		sale2, err := f.svc.CreateSale(ctx, saleAt(reg, []SaleLineInput{line(f.mug, 2, 0)}, cash(2000)))
		must(t, err)
		in := NewSaleReturn{RegisterID: reg.ID, Reason: "broken", Lines: []SaleReturnLineInput{{ProductID: f.mug.ID, Quantity: 1}},
			IdempotencyKey: "ret-key-1", Actor: cashier}
		r1, err := f.svc.CreateReturn(ctx, sale2.ID, in)
		must(t, err)
		r2, err := f.svc.CreateReturn(ctx, sale2.ID, in)
		must(t, err)
		if r1.ID != r2.ID {
			t.Fatalf("replayed return made another: %s, %s", r1.ID, r2.ID)
		}
		f.wantStock(t, f.mug.ID, f.mtl.ID, mtlMug-1, 0)
	})

	t.Run("lists filter by place, register, session and time", func(t *testing.T) {
		f := newF(t)
		regA, ssA := f.till(t, f.mtl)
		regB, _ := f.till(t, f.mtl)
		regT, _ := f.till(t, f.tor)
		var made []Sale
		for _, reg := range []Register{regA, regB, regA, regT} {
			lines := []SaleLineInput{line(f.coffee, 1, 0)}
			s, err := f.svc.CreateSale(ctx, saleAt(reg, lines, cash(3000)))
			must(t, err)
			made = append(made, s)
			f.clock.Advance(time.Hour + time.Microsecond)
		}
		// A refused sale is not listed.
		_, err := f.svc.CreateSale(ctx, saleAt(regT, []SaleLineInput{line(f.coffee, torCoffee, 0)}, cash(100_000_000)))
		wantKind(t, err, errs.Conflict, "")
		at := func(i int) time.Time { return made[i].CreatedAt }
		cases := []struct {
			name string
			f    SaleFilter
			want []Sale // newest first
		}{
			{"all", SaleFilter{}, []Sale{made[3], made[2], made[1], made[0]}},
			{"store", SaleFilter{LocationID: f.mtl.ID}, []Sale{made[2], made[1], made[0]}},
			{"register", SaleFilter{RegisterID: regA.ID}, []Sale{made[2], made[0]}},
			{"session", SaleFilter{SessionID: ssA.ID}, []Sale{made[2], made[0]}},
			{"from is inclusive, to exclusive", SaleFilter{From: at(1), To: at(2)}, []Sale{made[1]}},
			{"to a microsecond later", SaleFilter{From: at(1), To: at(1).Add(time.Microsecond)}, []Sale{made[1]}},
			{"from a microsecond later", SaleFilter{From: at(1).Add(time.Microsecond), To: at(2).Add(time.Microsecond)}, []Sale{made[2]}},
			{"paged", SaleFilter{Page: page.Request{Page: 2, PerPage: 3}}, []Sale{made[0]}},
		}
		for _, c := range cases {
			res, err := f.svc.ListSales(ctx, c.f)
			must(t, err)
			if len(res.Items) != len(c.want) {
				t.Fatalf("%s: %d sales, want %d", c.name, len(res.Items), len(c.want))
			}
			for i := range c.want {
				if res.Items[i].ID != c.want[i].ID || len(res.Items[i].Lines) != 1 || len(res.Items[i].Payments) != 1 {
					t.Fatalf("%s: item %d is %s, want %s", c.name, i, res.Items[i].ID, c.want[i].ID)
				}
			}
		}
		_, err = f.svc.ListSales(ctx, SaleFilter{From: at(2), To: at(1)})
		wantKind(t, err, errs.Invalid, "to")
		regs, err := f.svc.ListRegisters(ctx, RegisterFilter{LocationID: f.mtl.ID})
		must(t, err)
		if regs.Total != 2 || regs.Items[0].ID != "MTL-01-R1" || regs.Items[1].ID != "MTL-01-R2" {
			t.Fatalf("registers at mtl: %+v", regs)
		}
	})

	t.Run("concurrent sales of the last unit", func(t *testing.T) {
		f := newF(t)
		regA, _ := f.till(t, f.mtl)
		regB, _ := f.till(t, f.mtl)
		errsOut := make([]error, 2)
		var wg sync.WaitGroup
		for i, reg := range []Register{regA, regB} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errsOut[i] = f.svc.CreateSale(ctx, saleAt(reg, []SaleLineInput{line(f.tea, 1, 0)}, cash(1000)))
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errsOut {
			switch {
			case err == nil:
				won++
			case errs.KindOf(err) != errs.Conflict:
				t.Fatalf("loser got %v, want a conflict", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d sales of the last unit succeeded", won)
		}
		f.wantStock(t, f.tea.ID, f.mtl.ID, 0, 0)
		if n := f.completedSales(t, SaleFilter{LocationID: f.mtl.ID}); n != 1 {
			t.Fatalf("%d sales recorded", n)
		}
	})

	t.Run("concurrent returns of the last unit", func(t *testing.T) {
		f := newF(t)
		reg, _ := f.till(t, f.mtl)
		sale, err := f.svc.CreateSale(ctx, saleAt(reg, []SaleLineInput{line(f.mug, 2, 0)}, cash(2000)))
		must(t, err)
		_, err = f.svc.CreateReturn(ctx, sale.ID, NewSaleReturn{RegisterID: reg.ID, Reason: "first", Lines: []SaleReturnLineInput{{ProductID: f.mug.ID, Quantity: 1}}, Actor: cashier})
		must(t, err)
		errsOut := make([]error, 2)
		var wg sync.WaitGroup
		for i := range errsOut {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errsOut[i] = f.svc.CreateReturn(ctx, sale.ID, NewSaleReturn{RegisterID: reg.ID, Reason: fmt.Sprint("race ", i),
					Lines: []SaleReturnLineInput{{ProductID: f.mug.ID, Quantity: 1}}, Actor: cashier})
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errsOut {
			switch {
			case err == nil:
				won++
			case errs.KindOf(err) != errs.Conflict:
				t.Fatalf("loser got %v, want a conflict", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d returns of the last unit succeeded", won)
		}
		got, err := f.svc.GetSale(ctx, sale.ID)
		must(t, err)
		if got.Lines[0].ReturnedQuantity != 2 || got.RefundedCashCents != got.TotalCents {
			t.Fatalf("after the race: returned %d, refunded %d of %d", got.Lines[0].ReturnedQuantity, got.RefundedCashCents, got.TotalCents)
		}
		f.wantStock(t, f.mug.ID, f.mtl.ID, mtlMug, 0)
	})
}

// checkSaleArithmetic holds a sale's totals together from its lines.
func checkSaleArithmetic(t *testing.T, s Sale) {
	t.Helper()
	var gross, disc, net, taxCents int64
	for _, l := range s.Lines {
		if l.GrossCents != l.UnitPriceCents*l.Quantity || l.NetCents != l.GrossCents-l.DiscountCents {
			t.Fatalf("line %d of %s does not add up: %+v", l.LineNo, s.ID, l)
		}
		var lt int64
		for _, tx := range l.Taxes {
			lt += tx.AmountCents
		}
		if lt != l.TaxCents {
			t.Fatalf("line %d of %s: taxes %d, tax_cents %d", l.LineNo, s.ID, lt, l.TaxCents)
		}
		gross, disc, net, taxCents = gross+l.GrossCents, disc+l.DiscountCents, net+l.NetCents, taxCents+l.TaxCents
	}
	var saleTax, paid int64
	for _, tx := range s.Taxes {
		saleTax += tx.AmountCents
	}
	for _, p := range s.Payments {
		paid += p.AmountCents
	}
	if gross != s.GrossCents || disc != s.DiscountCents || net != s.SubtotalCents || taxCents != s.TaxCents ||
		saleTax != s.TaxCents || s.TotalCents != s.SubtotalCents+s.TaxCents || paid != s.TenderedCents ||
		s.TenderedCents-s.ChangeCents != s.TotalCents || s.ChangeCents > sumMethod(s.Payments, MethodCash) {
		t.Fatalf("sale %s does not add up: %+v", s.ID, s)
	}
}

// expectedReport sums the records the way a Z report must.
func expectedReport(t *testing.T, float int64, sales []Sale, returns []SaleReturn) ZReport {
	t.Helper()
	want := ZReport{SalesCount: int64(len(sales)), ReturnsCount: int64(len(returns)), OpeningFloatCents: float}
	var cashIn, cardIn, change, cashOut, cardOut int64
	taxes := map[string][2]int64{}
	for _, s := range sales {
		want.GrossSalesCents += s.GrossCents
		want.DiscountCents += s.DiscountCents
		want.SalesTotalCents += s.TotalCents
		cashIn += sumMethod(s.Payments, MethodCash)
		cardIn += sumMethod(s.Payments, MethodCard)
		change += s.ChangeCents
		for _, tx := range s.Taxes {
			v := taxes[tx.Name]
			v[0] += tx.AmountCents
			taxes[tx.Name] = v
		}
	}
	for _, r := range returns {
		want.ReturnsCents += r.SubtotalCents
		want.RefundsTotalCents += r.TotalCents
		cashOut += sumMethod(r.Refunds, MethodCash)
		cardOut += sumMethod(r.Refunds, MethodCard)
		for _, tx := range r.Taxes {
			v := taxes[tx.Name]
			v[1] += tx.AmountCents
			taxes[tx.Name] = v
		}
	}
	want.NetSalesCents = want.GrossSalesCents - want.DiscountCents - want.ReturnsCents
	want.TotalCents = want.SalesTotalCents - want.RefundsTotalCents
	want.ChangeGivenCents = change
	want.Tenders = []ZTender{
		{Method: MethodCash, TakenCents: cashIn, RefundedCents: cashOut, NetCents: cashIn - change - cashOut},
		{Method: MethodCard, TakenCents: cardIn, RefundedCents: cardOut, NetCents: cardIn - cardOut},
	}
	want.ExpectedCashCents = float + cashIn - change - cashOut
	for name, v := range taxes {
		want.Taxes = append(want.Taxes, ZTax{Name: name, CollectedCents: v[0], RefundedCents: v[1], NetCents: v[0] - v[1]})
		want.TaxCents += v[0] - v[1]
	}
	return want
}

// compareReport compares the figures of two reports (not ids or times).
func compareReport(t *testing.T, got, want ZReport) {
	t.Helper()
	type figures struct {
		sales, returns, gross, discount, returnsCents, net, tax, salesTotal, refunds, total, change, float, expected int64
	}
	fig := func(r ZReport) figures {
		return figures{r.SalesCount, r.ReturnsCount, r.GrossSalesCents, r.DiscountCents, r.ReturnsCents, r.NetSalesCents,
			r.TaxCents, r.SalesTotalCents, r.RefundsTotalCents, r.TotalCents, r.ChangeGivenCents, r.OpeningFloatCents, r.ExpectedCashCents}
	}
	if fig(got) != fig(want) {
		t.Fatalf("Z report figures\n got %+v\nwant %+v", fig(got), fig(want))
	}
	if len(got.Tenders) != len(want.Tenders) {
		t.Fatalf("tenders %+v, want %+v", got.Tenders, want.Tenders)
	}
	for i := range want.Tenders {
		if got.Tenders[i] != want.Tenders[i] {
			t.Fatalf("tender %d: got %+v, want %+v", i, got.Tenders[i], want.Tenders[i])
		}
	}
	if len(got.Taxes) != len(want.Taxes) {
		t.Fatalf("taxes %+v, want %+v", got.Taxes, want.Taxes)
	}
	for _, w := range want.Taxes {
		found := false
		for _, g := range got.Taxes {
			if g.Name == w.Name {
				found = g.CollectedCents == w.CollectedCents && g.RefundedCents == w.RefundedCents && g.NetCents == w.NetCents
			}
		}
		if !found {
			t.Fatalf("tax %s: got %+v, want %+v", w.Name, got.Taxes, w)
		}
	}
}

// checkReceipt holds the printer's width and the sale's figures.
func checkReceipt(t *testing.T, rc SaleReceipt, s Sale) {
	t.Helper()
	if rc.SaleID != s.ID || rc.Width != ReceiptWidth {
		t.Fatalf("receipt header: %+v", rc)
	}
	full := 0
	for _, l := range strings.Split(strings.TrimSuffix(rc.Text, "\n"), "\n") {
		n := utf8.RuneCountInString(l)
		if n > ReceiptWidth {
			t.Fatalf("receipt line of %d characters: %q", n, l)
		}
		if n == ReceiptWidth {
			full++
		}
	}
	if full < 3 {
		t.Fatalf("receipt has %d full-width lines:\n%s", full, rc.Text)
	}
	total := lineWith(t, rc.Text, "TOTAL CAD")
	if !strings.HasSuffix(total, money(s.TotalCents)) || utf8.RuneCountInString(total) != ReceiptWidth {
		t.Fatalf("total line %q, want %s right-aligned", total, money(s.TotalCents))
	}
	for _, want := range []string{s.ID, s.RegisterID, s.CashierID, "Subtotal", money(s.SubtotalCents), "Change", "Montréal"} {
		if !strings.Contains(rc.Text, want) {
			t.Fatalf("receipt lacks %q:\n%s", want, rc.Text)
		}
	}
	for _, tx := range s.Taxes {
		if !strings.HasSuffix(lineWith(t, rc.Text, tx.Name+" "+tx.Rate), money(tx.AmountCents)) {
			t.Fatalf("receipt tax line for %s:\n%s", tx.Name, rc.Text)
		}
	}
	for _, l := range s.Lines {
		if !strings.Contains(rc.Text, fmt.Sprintf("%d x %s", l.Quantity, money(l.UnitPriceCents))) {
			t.Fatalf("receipt lacks line %d:\n%s", l.LineNo, rc.Text)
		}
	}
}

// lineWith returns the first receipt line starting with prefix.
func lineWith(t *testing.T, text, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line starting %q in:\n%s", prefix, text)
	return ""
}

func taxOf(taxes []SaleTax, name string) int64 {
	for _, tx := range taxes {
		if tx.Name == name {
			return tx.AmountCents
		}
	}
	return -1
}

func names(err error, field string) bool {
	for _, fe := range errs.Fields(err) {
		if fe.Field == field {
			return true
		}
	}
	return false
}
