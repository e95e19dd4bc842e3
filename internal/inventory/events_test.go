package inventory

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestStockChangedEvents: every stock write leaves one StockChanged event
// in the outbox, in the same transaction, carrying the row as it is after
// the change and a version that orders the events of one row; a refused
// change leaves none.
func TestStockChangedEvents(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		f := newFixture(t, b, false)
		p := f.product(t, "EVT-1", 2)
		l := f.location(t, "EVT")
		f.receive(t, p, l, 5)
		if _, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "evt-r1", Items: []ReservationItem{{ProductID: p, LocationID: l, Quantity: 2}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "evt-r2", Items: []ReservationItem{{ProductID: p, LocationID: l, Quantity: 9}}}); err == nil {
			t.Fatal("over-reservation accepted")
		}
		if _, err := f.svc.CommitReservation(ctx, "evt-r1"); err != nil {
			t.Fatal(err)
		}

		var rows []struct{ Envelope string }
		if err := f.db.Raw(`SELECT envelope FROM outbox ORDER BY position`).Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		want := []StockChanged{
			{OnHand: 5, Reserved: 0, Available: 5, DeltaOnHand: 5, Reason: ReasonReceipt},
			{OnHand: 5, Reserved: 2, Available: 3, DeltaReserved: 2},
			{OnHand: 3, Reserved: 0, Available: 3, DeltaOnHand: -2, DeltaReserved: -2},
		}
		if len(rows) != len(want) {
			t.Fatalf("%d events in the outbox, want %d", len(rows), len(want))
		}
		for i, r := range rows {
			var env events.Envelope
			if err := json.Unmarshal([]byte(r.Envelope), &env); err != nil {
				t.Fatal(err)
			}
			var got StockChanged
			if err := env.Decode(&got); err != nil {
				t.Fatal(err)
			}
			w := want[i]
			if env.EventType != StockChangedEvent || env.Stream != "inventory" || env.AggregateID != p+"@"+l || env.AggregateVersion != int64(i+1) {
				t.Errorf("event %d envelope: %+v", i, env)
			}
			if got.ProductID != p || got.LocationID != l || got.OnHand != w.OnHand || got.Reserved != w.Reserved ||
				got.Available != w.Available || got.DeltaOnHand != w.DeltaOnHand || got.DeltaReserved != w.DeltaReserved {
				t.Errorf("event %d data: %+v, want %+v", i, got, w)
			}
		}
	})
}
