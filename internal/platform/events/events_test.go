package events

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/testkit"
)

func TestNew(t *testing.T) {
	ctx := correlation.With(context.Background(), "req-42")
	env, err := New(ctx, "sales.sale_completed", "sale_1", 3, map[string]int{"total_cents": 1299})
	if err != nil {
		t.Fatal(err)
	}
	if env.Stream != "sales" || env.EventType != "sales.sale_completed" || env.AggregateID != "sale_1" ||
		env.AggregateVersion != 3 || env.CorrelationID != "req-42" || env.EventID == "" ||
		time.Since(env.OccurredAt) > time.Minute || env.OccurredAt.Location() != time.UTC {
		t.Fatalf("envelope = %+v", env)
	}
	var data struct {
		TotalCents int64 `json:"total_cents"`
	}
	if err := env.Decode(&data); err != nil || data.TotalCents != 1299 {
		t.Fatalf("decode = %+v, %v", data, err)
	}
	other, _ := New(ctx, "sales.sale_completed", "sale_1", 3, nil)
	if other.EventID == env.EventID || string(other.Data) != "null" {
		t.Errorf("second event %+v", other)
	}
	raw, _ := New(context.Background(), "claims.claim_opened", "c", 1, json.RawMessage(`{"a":1}`))
	if string(raw.Data) != `{"a":1}` || raw.CorrelationID != "" {
		t.Errorf("raw data event %+v", raw)
	}
	for _, bad := range []string{"", "sales", "Sales.x", "sales.", ".x", "sa les.x"} {
		if _, err := New(ctx, bad, "a", 1, nil); !errs.IsKind(err, errs.Invalid) {
			t.Errorf("New(%q): %v, want Invalid", bad, err)
		}
	}
	if _, err := New(ctx, "sales.x", "a", 1, json.RawMessage(`{`)); !errs.IsKind(err, errs.Invalid) {
		t.Errorf("invalid raw JSON accepted: %v", err)
	}
	if _, err := New(ctx, "sales.x", "a", 1, make(chan int)); err == nil {
		t.Error("unmarshalable data accepted")
	}
}

func TestOptions(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxDeliveries != 10 || o.BlockTime != time.Second || o.ClaimMinIdle <= o.MaxRetryBackoff || o.Consumer == "" || o.Prefix != "pos:" {
		t.Errorf("defaults = %+v", o)
	}
	o2, _ := Options{}.withDefaults()
	if o.Consumer == o2.Consumer {
		t.Error("two buses got the same consumer name")
	}
	if _, err := (Options{ClaimMinIdle: time.Second, MaxRetryBackoff: 2 * time.Second}).withDefaults(); !errs.IsKind(err, errs.Invalid) {
		t.Errorf("ClaimMinIdle below MaxRetryBackoff accepted: %v", err)
	}
	// Backoff doubles from RetryBackoff and stops at MaxRetryBackoff.
	o.RetryBackoff, o.MaxRetryBackoff = 100*time.Millisecond, time.Second
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 9: time.Second} {
		if got := o.backoff(n, 0.5); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
	if lo, hi := o.backoff(1, 0), o.backoff(1, 1); lo != 80*time.Millisecond || hi != 120*time.Millisecond {
		t.Errorf("jitter bounds %s..%s, want 80ms..120ms", lo, hi)
	}
}

// TestSQLBusWakesOnPublish: with a poll interval of a minute, an in-process
// publish still reaches the subscriber at once, and Close does not wait for
// the poll either.
func TestSQLBusWakesOnPublish(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		o := testOptions()
		o.BlockTime = time.Minute
		o.ClaimInterval = time.Hour
		o.ClaimMinIdle = 2 * time.Hour
		bus, err := OpenSQLBus(context.Background(), b.Options(t, "bus"), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bus.Close() })
		rec := newRecorder()
		subscribe(t, bus, "notification", []string{"orders"}, rec.handler())
		time.Sleep(100 * time.Millisecond) // waiting on the poll by now
		evs := makeEvents(t, context.Background(), "orders", 3)
		publish(t, bus, evs...)
		// Far below the one-minute poll: only the wake-up explains it.
		waitFor(t, 20*time.Second, "delivery woken by the publish", func() bool { return rec.okCount() == 3 })
		start := time.Now()
		if err := bus.Close(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("close took %s", d)
		}
		rec.checkExactlyOnce(t, "notification", evs)
	})
}

// TestSQLBusUndecodableEntryDeadLettered: an entry that does not decode
// goes straight to the dead letters, without a handler call.
func TestSQLBusUndecodableEntryDeadLettered(t *testing.T) {
	t.Parallel()
	o := testOptions()
	ctx := context.Background()
	bus, err := OpenSQLBus(ctx, testkit.SQLite.Options(t, "bus"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	evs := makeEvents(t, ctx, "sales", 3)
	publish(t, bus, evs...)
	// An entry damaged by hand: the consumer cannot decode it, must not
	// stall on it, and must keep it for a human.
	if err := bus.db.Exec(`UPDATE bus_messages SET envelope = '{broken' WHERE event_id = ?`, evs[1].EventID).Error; err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	subscribe(t, bus, "audit", []string{"sales"}, rec.handler())
	var dl []DeadLetter
	waitFor(t, 10*time.Second, "the broken entry dead-lettered", func() bool {
		dl, _ = bus.DeadLetters(ctx, "audit", 10)
		return len(dl) == 1 && rec.okCount() == 2
	})
	if dl[0].Raw != "{broken" || dl[0].Deliveries != 1 || dl[0].Error == "" {
		t.Errorf("dead letter %+v", dl[0])
	}
	if rec.callsOf(evs[1].EventID) != 0 {
		t.Error("handler called with an undecodable entry")
	}
}
