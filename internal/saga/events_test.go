package saga

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestCheckoutOutcomeEvents: a completed and a declined checkout each leave
// exactly one outcome event in the saga's outbox.
func TestCheckoutOutcomeEvents(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		e := newEnv(t, b, testOptions(Options{}))
		p := e.addProduct(testkit.ID("EVT"), 1500, 10)
		ok, err := e.saga.Checkout(ctx, "key-ok", request(e.fillCart(line{p, 2}), "cus_evt", "tok_visa"))
		must(t, err)
		if _, err := e.saga.Checkout(ctx, "key-declined", request(e.fillCart(line{p, 1}), "cus_evt", "tok_declined")); err == nil {
			t.Fatal("declined card completed")
		}

		var rows []struct{ Envelope string }
		must(t, e.sagaDB.Raw(`SELECT envelope FROM outbox ORDER BY position`).Scan(&rows).Error)
		if len(rows) != 2 {
			t.Fatalf("%d outcome events, want 2", len(rows))
		}
		var first, second events.Envelope
		must(t, json.Unmarshal([]byte(rows[0].Envelope), &first))
		must(t, json.Unmarshal([]byte(rows[1].Envelope), &second))
		var done CheckoutCompleted
		must(t, first.Decode(&done))
		if first.EventType != CheckoutCompletedEvent || done.SagaID != ok.SagaID || done.OrderID != ok.OrderID || done.TotalCents != expectedTotal(t, line{p, 2}) {
			t.Fatalf("completed event: %+v %+v", first, done)
		}
		// The event carries the version of the write that made the saga
		// final, which is the version the row still has.
		var stored int64
		must(t, e.sagaDB.Raw(`SELECT version FROM sagas WHERE id = ?`, ok.SagaID).Scan(&stored).Error)
		if first.AggregateVersion != stored {
			t.Errorf("completed event at version %d, saga row at %d", first.AggregateVersion, stored)
		}
		var failed CheckoutFailed
		must(t, second.Decode(&failed))
		if second.EventType != CheckoutFailedEvent || failed.FailedStep != "payment" {
			t.Fatalf("failed event: %+v %+v", second, failed)
		}
	})
}
