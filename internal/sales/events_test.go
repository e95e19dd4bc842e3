package sales

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestSaleEvents: a completed sale and a return each leave one event in the
// outbox, written with the change, whose figures are the records' own; a
// sale refused for lack of stock leaves none.
func TestSaleEvents(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		f := newFixture(t, b, false)
		reg, _ := f.till(t, f.mtl)
		sale, err := f.svc.CreateSale(ctx, saleAt(reg, []SaleLineInput{line(f.coffee, 2, 10), line(f.mug, 1, 0)}, cash(10000)))
		must(t, err)
		if _, err := f.svc.CreateSale(ctx, saleAt(reg, []SaleLineInput{line(f.tea, 5, 0)}, cash(10000))); err == nil {
			t.Fatal("sale of more tea than the store holds was accepted")
		}
		ret, err := f.svc.CreateReturn(ctx, sale.ID, NewSaleReturn{RegisterID: reg.ID, Reason: "changed mind",
			Lines: []SaleReturnLineInput{{ProductID: f.mug.ID, Quantity: 1}}})
		must(t, err)

		var rows []struct{ Envelope string }
		must(t, f.db.Raw(`SELECT envelope FROM outbox ORDER BY position`).Scan(&rows).Error)
		if len(rows) != 2 {
			t.Fatalf("%d events, want SaleCompleted and SaleReturned", len(rows))
		}
		var envs [2]events.Envelope
		for i, r := range rows {
			must(t, json.Unmarshal([]byte(r.Envelope), &envs[i]))
		}
		var done SaleCompleted
		must(t, envs[0].Decode(&done))
		if envs[0].EventType != SaleCompletedEvent || envs[0].AggregateID != sale.ID || done.TotalCents != sale.TotalCents ||
			done.TaxCents != sale.TaxCents || done.LocationID != f.mtl.ID || len(done.Lines) != 2 || done.Lines[0].NetCents != sale.Lines[0].NetCents {
			t.Fatalf("SaleCompleted %+v %+v for sale %+v", envs[0], done, sale)
		}
		var back SaleReturned
		must(t, envs[1].Decode(&back))
		if envs[1].EventType != SaleReturnedEvent || back.ReturnID != ret.ID || back.RefundCents != ret.TotalCents ||
			len(back.Lines) != 1 || back.Lines[0].ProductID != f.mug.ID || envs[1].AggregateVersion <= envs[0].AggregateVersion {
			t.Fatalf("SaleReturned %+v %+v for return %+v", envs[1], back, ret)
		}
	})
}
