package notification

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestHandleBatch pins what HandleBatch does, and what Handle does after a
// batch failed (the bus's fallback: each event alone, with the batch's
// delivery count), called directly with a context such as the bus gives a
// first delivery, on every database engine.
func TestHandleBatch(t *testing.T) {
	t.Parallel()
	customers := newCustomers(t)
	ann := register(t, customers, "Ann", testkit.ID("ann")+"@example.com", "+1 514-555-0100")
	bob := register(t, customers, "Bob", testkit.ID("bob")+"@example.com", "")
	first := firstDelivery(t)
	redelivery := context.Background() // no delivery count: read before planning

	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		setup := func(t *testing.T, o Options) (*Consumer, *spySender, *switchableCustomers, *store) {
			gdb := openDB(t, b)
			spy := newSpy(NewLogSender(testkit.Logger(), nil))
			sw := newSwitchable(customers)
			o.Logger = testkit.Logger()
			return NewConsumer(gdb, sw, spy, o), spy, sw, &store{db: gdb}
		}
		ectx := eventCtx("corr-batch")
		// orders is n OrderConfirmed for ann (an e-mail and an SMS each).
		orders := func(n int) []events.Envelope {
			envs := make([]events.Envelope, n)
			for i := range envs {
				envs[i] = orderConfirmed(t, ectx, testkit.ID("ord"), ann.ID, int64(1000+i))
			}
			return envs
		}
		// rowsOfAll reads the rows of every env, in envs' order.
		rowsOfAll := func(t *testing.T, st *store, envs []events.Envelope) []notificationRow {
			var all []notificationRow
			for _, env := range envs {
				rows, err := st.byEvent(context.Background(), env.EventID)
				must(t, err)
				all = append(all, rows...)
			}
			return all
		}

		t.Run("records and sends every event's notifications once", func(t *testing.T) {
			c, spy, sw, st := setup(t, Options{})
			claim := testkit.ID("clm")
			envs := []events.Envelope{
				orderConfirmed(t, ectx, testkit.ID("ord"), ann.ID, 4200),
				orderConfirmed(t, ectx, testkit.ID("ord"), bob.ID, 1000),
				claimCreated(t, ectx, claim, ann.ID),
				// Its customer comes from the ClaimCreated just before it.
				claimAssigned(t, ectx, claim, "agent-7"),
				claimStarted(t, ectx, claim),
				orderConfirmed(t, ectx, testkit.ID("ord"), "cus_ghost", 100),
			}
			want := []int{2, 1, 2, 3, 0, 1}
			envs = append(envs, envs[0]) // published twice, read together
			must(t, c.HandleBatch(first, envs))
			for i, n := range want {
				rows := rowsOf(t, st.db, envs[i].EventID)
				if len(rows) != n {
					t.Fatalf("%s: %d rows, want %d", envs[i].EventType, len(rows), n)
				}
				for _, r := range rows {
					wantStatus := StatusSent
					if r.Recipient == "customer:cus_ghost" {
						wantStatus = StatusFailed
					}
					if Status(r.Status) != wantStatus || r.InFlight || r.CorrelationID != "corr-batch" {
						t.Errorf("%s → %s: %+v", r.EventType, r.Channel, r)
					}
				}
			}
			// 9 rows: one failed (nobody to tell), one the agent's inbox.
			if spy.total() != 7 || len(spy.duplicates()) > 0 {
				t.Fatalf("%d sends (duplicates %v), want 7", spy.total(), spy.duplicates())
			}

			// Delivered again, whole or one by one: nothing is sent again,
			// and a delivery the bus counts as a redelivery asks nobody.
			lookups := sw.callsFor(ann.ID)
			must(t, c.HandleBatch(redelivery, envs))
			for _, env := range envs {
				must(t, c.Handle(redelivery, env))
			}
			if n := sw.callsFor(ann.ID); n != lookups {
				t.Errorf("redeliveries looked the customer up %d times", n-lookups)
			}
			// A repeat the bus counts as a first delivery (after a failed
			// batch) plans, finds the event recorded and sends nothing.
			must(t, c.HandleBatch(first, envs))
			for _, env := range envs {
				must(t, c.Handle(first, env))
			}
			if spy.calls() != 7 {
				t.Fatalf("%d send attempts after the redeliveries, want 7", spy.calls())
			}
		})

		t.Run("an event handled before is not sent again", func(t *testing.T) {
			c, spy, _, st := setup(t, Options{})
			envs := orders(3)
			must(t, c.Handle(first, envs[1]))
			before := rowsOf(t, st.db, envs[1].EventID)
			must(t, c.HandleBatch(first, envs))
			if spy.total() != 6 || len(spy.duplicates()) > 0 {
				t.Fatalf("%d sends (duplicates %v), want 6", spy.total(), spy.duplicates())
			}
			after := rowsOf(t, st.db, envs[1].EventID)
			for i := range after {
				if after[i].ID != before[i].ID || after[i].Attempts != 1 || !after[i].SentAt.Equal(*before[i].SentAt) {
					t.Errorf("the handled event's row changed: %+v → %+v", before[i], after[i])
				}
			}
			for _, r := range rowsOfAll(t, st, envs) {
				if r.Status != string(StatusSent) {
					t.Errorf("%s: %s", r.Channel, r.Status)
				}
			}
		})

		t.Run("a refused send waits, the others are sent, the fallback sends only it", func(t *testing.T) {
			c, spy, sw, st := setup(t, Options{})
			envs := orders(3)
			var refusedID string
			spy.fail = func(_ int, m Message) error {
				if refusedID == "" && m.Channel == ChannelSMS {
					refusedID = m.ID
					return fmt.Errorf("sms gateway busy: %w", errs.Unavailable)
				}
				return nil
			}
			if err := c.HandleBatch(first, envs); !errs.IsKind(err, errs.Unavailable) {
				t.Fatalf("batch: %v, want Unavailable so the bus tries again", err)
			}
			for _, r := range rowsOfAll(t, st, envs) {
				switch {
				case r.ID == refusedID:
					if r.Status != string(StatusPending) || r.InFlight || r.Attempts != 1 || !strings.Contains(r.Error, "gateway busy") {
						t.Errorf("refused row: %+v", r)
					}
				case r.Status != string(StatusSent) || r.InFlight || r.Attempts != 1:
					t.Errorf("accepted row: %+v", r)
				}
			}
			if spy.total() != 5 {
				t.Fatalf("%d sends, want 5", spy.total())
			}
			// The bus hands each event to Handle. The customer context is
			// down meanwhile: recorded events need it no more.
			sw.down.Store(true)
			for _, env := range envs {
				must(t, c.Handle(first, env))
			}
			for _, r := range rowsOfAll(t, st, envs) {
				if r.Status != string(StatusSent) || (r.ID == refusedID) != (r.Attempts == 2) {
					t.Errorf("after the fallback: %+v", r)
				}
			}
			if spy.total() != 6 || spy.calls() != 7 || len(spy.duplicates()) > 0 {
				t.Fatalf("%d sends in %d attempts (duplicates %v), want 6 in 7", spy.total(), spy.calls(), spy.duplicates())
			}
		})

		t.Run("the claim is committed before the send", func(t *testing.T) {
			c, spy, _, st := setup(t, Options{})
			var seen []notificationRow
			spy.fail = func(_ int, m Message) error {
				// Another connection's view of the row while it is sent.
				var r notificationRow
				must(t, st.db.Where("id = ?", m.ID).Take(&r).Error)
				seen = append(seen, r)
				return nil
			}
			envs := orders(3)
			must(t, c.Handle(first, envs[0]))
			must(t, c.HandleBatch(first, envs[1:]))
			if len(seen) != 6 {
				t.Fatalf("%d sends seen, want 6", len(seen))
			}
			for _, r := range seen {
				if !r.InFlight || r.Status != string(StatusPending) || r.Attempts != 1 {
					t.Errorf("row during its send: %+v", r)
				}
			}
		})

		t.Run("a shutdown hands back the rows not sent, their budget untouched", func(t *testing.T) {
			// One attempt each: an interrupted one must not fail a row.
			c, spy, _, st := setup(t, Options{MaxAttempts: 1})
			hctx, stop := context.WithCancel(first)
			spy.fail = func(n int, _ Message) error {
				if n == 1 {
					stop() // the process is told to stop during the first send
				}
				return nil
			}
			envs := orders(2)
			if err := c.HandleBatch(hctx, envs); !errors.Is(err, context.Canceled) {
				t.Fatalf("batch: %v, want the cancellation", err)
			}
			rows := rowsOfAll(t, st, envs)
			for i, r := range rows {
				// The log sender refuses a send whose context has ended.
				wantAttempts := 0
				if i == 0 {
					wantAttempts = 1
				}
				if r.Status != string(StatusPending) || r.InFlight || r.Attempts != wantAttempts {
					t.Errorf("row %d after the shutdown: %+v", i, r)
				}
			}
			if spy.total() != 0 || spy.calls() != 1 {
				t.Fatalf("%d sends in %d attempts, want none in 1", spy.total(), spy.calls())
			}
			spy.fail = nil
			must(t, c.HandleBatch(first, envs)) // the next start
			if spy.total() != 4 || len(spy.duplicates()) > 0 {
				t.Fatalf("%d sends (duplicates %v), want 4", spy.total(), spy.duplicates())
			}
			for _, r := range rowsOfAll(t, st, envs) {
				if r.Status != string(StatusSent) {
					t.Errorf("after the restart: %+v", r)
				}
			}
		})

		t.Run("a panicking sender loses only the row it panicked on", func(t *testing.T) {
			c, spy, _, st := setup(t, Options{})
			c.sender = &panicOnSecond{spy: spy}
			envs := orders(2)
			func() {
				defer func() {
					if recover() == nil {
						t.Fatal("the sender did not panic")
					}
				}()
				_ = c.HandleBatch(first, envs)
			}()
			rows := rowsOfAll(t, st, envs)
			if len(rows) != 4 {
				t.Fatalf("%d rows", len(rows))
			}
			if rows[0].Status != string(StatusSent) {
				t.Errorf("sent before the panic: %+v", rows[0])
			}
			if !rows[1].InFlight || rows[1].Status != string(StatusPending) || rows[1].Attempts != 1 {
				t.Errorf("the row the sender panicked on: %+v", rows[1])
			}
			for _, r := range rows[2:] {
				if r.InFlight || r.Status != string(StatusPending) || r.Attempts != 0 {
					t.Errorf("a row the sender never reached: %+v", r)
				}
			}
			c.sender = spy
			for _, env := range envs {
				must(t, c.Handle(first, env)) // the bus's fallback
			}
			rows = rowsOfAll(t, st, envs)
			if rows[1].Status != string(StatusFailed) || rows[1].Error != reasonUnknown {
				t.Errorf("the row of unknown outcome: %+v", rows[1])
			}
			for _, r := range append(rows[:1:1], rows[2:]...) {
				if r.Status != string(StatusSent) || spy.sentCount(r.ID) != 1 {
					t.Errorf("%+v sent %d times", r, spy.sentCount(r.ID))
				}
			}
			if len(spy.duplicates()) > 0 {
				t.Fatalf("duplicates %v", spy.duplicates())
			}
		})

		t.Run("a plan that fails fails the batch, with nothing written", func(t *testing.T) {
			c, spy, sw, st := setup(t, Options{})
			envs := orders(2)
			sw.down.Store(true)
			if err := c.HandleBatch(first, envs); !errs.IsKind(err, errs.Unavailable) {
				t.Fatalf("batch while the customer context is down: %v, want Unavailable", err)
			}
			if rows := rowsOfAll(t, st, envs); len(rows) != 0 || spy.calls() != 0 {
				t.Fatalf("%d rows, %d sends", len(rows), spy.calls())
			}
			sw.down.Store(false)
			must(t, c.HandleBatch(first, envs))
			if spy.total() != 4 {
				t.Fatalf("%d sends, want 4", spy.total())
			}
		})

		t.Run("concurrent batches and single deliveries send once", func(t *testing.T) {
			c, spy, _, st := setup(t, Options{})
			envs := orders(4)
			// Seven callers at most: beyond the SQLite pool (8), writers
			// waiting for the write lock can hold every connection while
			// gorm's statement cache waits for one to prepare a statement
			// the lock holder needs, until busy_timeout fails someone.
			calls := []func() error{
				func() error { return c.HandleBatch(first, envs) },
				func() error { return c.HandleBatch(first, []events.Envelope{envs[3], envs[2], envs[1]}) },
				func() error { return c.HandleBatch(redelivery, envs) },
				func() error { return c.Handle(first, envs[0]) },
				func() error { return c.Handle(first, envs[2]) },
				func() error { return c.Handle(redelivery, envs[1]) },
				func() error { return c.Handle(redelivery, envs[3]) },
			}
			var wg sync.WaitGroup
			errCh := make(chan error, len(calls))
			for _, call := range calls {
				wg.Go(func() { errCh <- call() })
			}
			wg.Wait()
			close(errCh)
			for err := range errCh {
				must(t, err)
			}
			rows := rowsOfAll(t, st, envs)
			if len(rows) != 8 || spy.total() != 8 || len(spy.duplicates()) > 0 {
				t.Fatalf("%d rows, %d sends (duplicates %v), want 8 and 8", len(rows), spy.total(), spy.duplicates())
			}
			for _, r := range rows {
				if r.Status != string(StatusSent) {
					t.Errorf("%+v", r)
				}
			}
		})
	})
}

// TestStatementsPerEvent pins what the consumer costs the notification
// database for an OrderConfirmed (an e-mail and an SMS) on its first
// delivery, alone and in a batch of 8; BEGIN and COMMIT count. On
// PostgreSQL: one statement records, one claims, one marks sent.
func TestStatementsPerEvent(t *testing.T) {
	t.Parallel()
	customers := newCustomers(t)
	ann := register(t, customers, "Ann", testkit.ID("ann")+"@example.com", "+1 514-555-0100")
	first := firstDelivery(t)
	// SQLite records in a transaction: BEGIN, inbox, rows, COMMIT.
	want := map[string]int64{"sqlite": 6, "postgres": 3}
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		gdb, n := countStatements(openDB(t, b))
		c := NewConsumer(gdb, customers, newSpy(NewLogSender(testkit.Logger(), nil)), Options{Logger: testkit.Logger()})
		envs := make([]events.Envelope, 9)
		for i := range envs {
			envs[i] = orderConfirmed(t, eventCtx("corr-count"), testkit.ID("ord"), ann.ID, 1000)
		}
		n.Store(0)
		must(t, c.Handle(first, envs[0]))
		if got := n.Load(); got != want[b.Name] {
			t.Errorf("Handle: %d statements, want %d", got, want[b.Name])
		}
		n.Store(0)
		must(t, c.HandleBatch(first, envs[1:]))
		if got := n.Load(); got != want[b.Name] {
			t.Errorf("HandleBatch of 8: %d statements, want %d", got, want[b.Name])
		}
		for _, env := range envs {
			for _, r := range rowsOf(t, gdb, env.EventID) {
				if r.Status != string(StatusSent) {
					t.Errorf("%+v", r)
				}
			}
		}
	})
}

// panicOnSecond sends through spy and panics right after the second send,
// as a buggy sender would; the bus recovers such a panic and delivers the
// event again.
type panicOnSecond struct {
	spy *spySender
	mu  sync.Mutex
	n   int
}

func (p *panicOnSecond) Send(ctx context.Context, m Message) error {
	if err := p.spy.Send(ctx, m); err != nil {
		return err
	}
	p.mu.Lock()
	p.n++
	n := p.n
	p.mu.Unlock()
	if n == 2 {
		panic(errCrashed)
	}
	return nil
}

// TestOverBusBatched subscribes HandleBatch beside Handle, as the binary
// does, and publishes before subscribing, so that reads return several
// events at once. One SMS is refused once: its batch fails, the bus hands
// the batch's events to Handle one by one, and still every message goes
// out exactly once.
func TestOverBusBatched(t *testing.T) {
	t.Parallel()
	customers := newCustomers(t)
	ann := register(t, customers, "Ann", testkit.ID("ann")+"@example.com", "+1 514-555-0100")
	bob := register(t, customers, "Bob", testkit.ID("bob")+"@example.com", "")
	ctx := context.Background()

	for _, mode := range busModes(t) {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			gdb := openDB(t, mode.backend)
			spy := newSpy(NewLogSender(testkit.Logger(), nil))
			var refused atomic.Bool
			spy.fail = func(_ int, m Message) error {
				if m.Channel == ChannelSMS && refused.CompareAndSwap(false, true) {
					return fmt.Errorf("sms gateway busy: %w", errs.Unavailable)
				}
				return nil
			}
			c := NewConsumer(gdb, customers, spy, Options{Logger: testkit.Logger()})
			bus := mode.open(t, busOptions(prometheus.NewRegistry()))

			corr := "corr-batched-" + mode.name
			ectx := eventCtx(corr)
			claim := testkit.ID("clm")
			envs := []events.Envelope{
				orderConfirmed(t, ectx, testkit.ID("ord"), ann.ID, 4200),
				orderConfirmed(t, ectx, testkit.ID("ord"), bob.ID, 1000),
				claimCreated(t, ectx, claim, ann.ID),
				claimAssigned(t, ectx, claim, "agent-7"),
				orderCancelled(t, ectx, testkit.ID("ord"), ann.ID, 999),
				orderConfirmed(t, ectx, testkit.ID("ord"), ann.ID, 12345),
			}
			want := []int{2, 1, 2, 3, 2, 2}
			must(t, bus.Publish(ctx, envs...))

			var batches, failed atomic.Int64
			batch := func(hctx context.Context, envs []events.Envelope) error {
				batches.Add(1)
				err := c.HandleBatch(hctx, envs)
				if err != nil {
					failed.Add(1)
				}
				return err
			}
			sub, err := bus.Subscribe(ctx, Group, Streams, c.Handle, events.WithBatch(batch))
			must(t, err)
			t.Cleanup(func() { _ = sub.Close() })

			waitFor(t, 60*time.Second, "every notification final", func() bool {
				for i, env := range envs {
					rows := rowsOf(t, gdb, env.EventID)
					if len(rows) != want[i] {
						return false
					}
					for _, r := range rows {
						if r.Status == string(StatusPending) {
							return false
						}
					}
				}
				return true
			})
			for _, env := range envs {
				for _, r := range rowsOf(t, gdb, env.EventID) {
					if r.Status != string(StatusSent) || r.CorrelationID != corr {
						t.Errorf("%s → %s: status %s, correlation %q", r.EventType, r.Channel, r.Status, r.CorrelationID)
					}
				}
			}
			// 12 rows, one of them the agent's inbox; the refused SMS was
			// tried twice.
			if spy.total() != 11 || spy.calls() != 12 || len(spy.duplicates()) > 0 {
				t.Fatalf("%d messages sent in %d attempts (duplicates %v), want 11 in 12", spy.total(), spy.calls(), spy.duplicates())
			}
			// Every read takes several events of a stream, so the refusal
			// happens in a batch, and the fallback is what sends it.
			if batches.Load() == 0 || failed.Load() != 1 {
				t.Errorf("%d batches, %d failed; want some, one failed", batches.Load(), failed.Load())
			}
			if dl, err := bus.DeadLetters(ctx, Group, 10); err != nil || len(dl) > 0 {
				t.Fatalf("dead letters: %v %v", dl, err)
			}
		})
	}
}
