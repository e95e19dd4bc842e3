package order

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestOrderEvents: confirming and cancelling an order each leave one event
// in the outbox with the order's figures; a replayed create and a repeated
// cancel leave none.
func TestOrderEvents(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		gdb := testkit.OpenDB(t, b, Name, Migrations)
		svc := New(gdb)
		o, err := svc.CreateOrder(ctx, newOrder(t, "saga-evt-1", "cus_evt"))
		must(t, err)
		_, err = svc.CreateOrder(ctx, newOrder(t, "saga-evt-1", "cus_evt"))
		must(t, err)
		_, err = svc.MarkCancelled(ctx, o.ID)
		must(t, err)
		_, err = svc.MarkCancelled(ctx, o.ID)
		must(t, err)

		var rows []struct{ Envelope string }
		must(t, gdb.Raw(`SELECT envelope FROM outbox ORDER BY position`).Scan(&rows).Error)
		if len(rows) != 2 {
			t.Fatalf("%d events, want OrderConfirmed then OrderCancelled", len(rows))
		}
		for i, want := range []string{OrderConfirmedEvent, OrderCancelledEvent} {
			var env events.Envelope
			must(t, json.Unmarshal([]byte(rows[i].Envelope), &env))
			var data OrderEvent
			must(t, env.Decode(&data))
			if env.EventType != want || env.AggregateID != o.ID || data.TotalCents != o.TotalCents ||
				data.CustomerID != "cus_evt" || len(data.Lines) != len(o.Lines) || env.AggregateVersion != int64(i+1) {
				t.Fatalf("event %d: %+v %+v", i, env, data)
			}
		}
	})
}
