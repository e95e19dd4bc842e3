package notification

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/testkit/bustest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// busMode is one way the binary runs the consumer: the embedded SQL-log
// bus with the context on SQLite, or Redis Streams with the context on
// PostgreSQL (SQLite when the run has no PostgreSQL).
type busMode struct {
	name    string
	backend testkit.Backend
	open    func(t *testing.T, o events.Options) events.Bus
	// redelivers says a second publish of one envelope is delivered
	// again (Redis with its dedup window off); the SQL bus drops it.
	redelivers bool
}

func busModes(t *testing.T) []busMode {
	backends := testkit.Backends(t)
	return []busMode{
		{name: "embedded", backend: testkit.SQLite, open: func(t *testing.T, o events.Options) events.Bus { return bustest.SQL(t, o) }},
		{name: "fleet", backend: backends[len(backends)-1], redelivers: true, open: func(t *testing.T, o events.Options) events.Bus {
			o.DedupWindow = -1
			return bustest.Redis(t, o)
		}},
	}
}

// busOptions shorten the bus's intervals so a test runs in seconds; the
// generous MaxDeliveries keeps a message retried while a test holds a
// dependency down.
func busOptions(reg *prometheus.Registry) events.Options {
	return events.Options{
		Registry: reg, Logger: testkit.Logger(),
		BlockTime: 100 * time.Millisecond, RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond,
		ClaimMinIdle: 2 * time.Second, ClaimInterval: 100 * time.Millisecond, LagInterval: time.Second,
		TrimInterval: -1, MaxDeliveries: 50,
	}
}

// TestOverBus publishes catalog events through real buses and checks what
// the subscribed consumer makes of them: each notification once, none for
// ClaimStarted, redeliveries harmless, an unreachable customer context
// waited out, an unknown customer recorded once.
func TestOverBus(t *testing.T) {
	t.Parallel()
	customers := newCustomers(t)
	ann := register(t, customers, "Ann", testkit.ID("ann")+"@example.com", "+1 514-555-0100")
	bob := register(t, customers, "Bob", testkit.ID("bob")+"@example.com", "")
	ctx := context.Background()

	for _, mode := range busModes(t) {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()

			t.Run("each notification once, redeliveries harmless", func(t *testing.T) {
				gdb := openDB(t, mode.backend)
				spy := newSpy(NewLogSender(testkit.Logger(), nil))
				c := NewConsumer(gdb, customers, spy, Options{Logger: testkit.Logger()})
				reg := prometheus.NewRegistry()
				bus := mode.open(t, busOptions(reg))

				ectx := eventCtx("corr-bus-" + mode.name)
				claim := testkit.ID("clm")
				envs := []events.Envelope{
					claimCreated(t, ectx, claim, ann.ID),
					claimAssigned(t, ectx, claim, "agent-7"),
					claimStarted(t, ectx, claim),
					claimResolved(t, ectx, claim, "Replaced."),
					claimClosed(t, ectx, claim),
					orderConfirmed(t, ectx, testkit.ID("ord"), bob.ID, 12345),
					orderCancelled(t, ectx, testkit.ID("ord"), ann.ID, 999),
				}
				wantRows := map[string]int{envs[0].EventID: 2, envs[1].EventID: 3, envs[2].EventID: 0,
					envs[3].EventID: 2, envs[4].EventID: 2, envs[5].EventID: 1, envs[6].EventID: 2}
				must(t, bus.Publish(ctx, envs...))

				// The first subscription is killed between handling the
				// ClaimCreated (committed, sent) and acknowledging it.
				victim := envs[0].EventID
				calls := newCallCounter()
				subCtx, kill := context.WithCancel(ctx)
				killed := make(chan struct{})
				var killOnce sync.Once
				handler := func(hctx context.Context, env events.Envelope) error {
					calls.add(env.EventID)
					if err := c.Handle(hctx, env); err != nil {
						return err
					}
					stop := false
					if env.EventID == victim {
						killOnce.Do(func() { stop = true })
					}
					if stop {
						kill()
						<-hctx.Done() // the subscription is stopping: no ack will follow
						close(killed)
						return errors.New("killed between handle and ack")
					}
					return nil
				}
				sub, err := bus.Subscribe(subCtx, Group, Streams, handler)
				must(t, err)
				waitClosed(t, killed, "the first subscription to handle its victim")
				waitClosed(t, sub.Done(), "the first subscription to stop")

				sub2, err := bus.Subscribe(ctx, Group, Streams, handler)
				must(t, err)
				t.Cleanup(func() { _ = sub2.Close() })
				if mode.redelivers {
					must(t, bus.Publish(ctx, envs[5])) // the same envelope again
				}

				waitFor(t, 60*time.Second, "every event handled and every notification final", func() bool {
					for _, env := range envs {
						if calls.of(env.EventID) == 0 {
							return false
						}
					}
					if calls.of(victim) < 2 || (mode.redelivers && calls.of(envs[5].EventID) < 2) {
						return false
					}
					for _, env := range envs {
						rows := rowsOf(t, gdb, env.EventID)
						if len(rows) != wantRows[env.EventID] {
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
						if r.Status != string(StatusSent) || r.CorrelationID != "corr-bus-"+mode.name {
							t.Errorf("%s → %s %s: status %s, correlation %q", r.EventType, r.Channel, r.Recipient, r.Status, r.CorrelationID)
						}
					}
				}
				// 12 rows, of which one is the agent's inbox: 11 messages.
				if spy.total() != 11 || len(spy.duplicates()) > 0 {
					t.Fatalf("%d messages sent (duplicates %v), want 11", spy.total(), spy.duplicates())
				}
				if dl, err := bus.DeadLetters(ctx, Group, 10); err != nil || len(dl) > 0 {
					t.Fatalf("dead letters: %v %v", dl, err)
				}
			})

			t.Run("customer context down, then back", func(t *testing.T) {
				gdb := openDB(t, mode.backend)
				spy := newSpy(NewLogSender(testkit.Logger(), nil))
				sw := newSwitchable(customers)
				c := NewConsumer(gdb, sw, spy, Options{Logger: testkit.Logger()})
				reg := prometheus.NewRegistry()
				bus := mode.open(t, busOptions(reg))
				sub, err := bus.Subscribe(ctx, Group, Streams, c.Handle)
				must(t, err)
				t.Cleanup(func() { _ = sub.Close() })

				sw.down.Store(true)
				env := orderConfirmed(t, eventCtx("corr-down"), testkit.ID("ord"), ann.ID, 4200)
				must(t, bus.Publish(ctx, env))
				waitFor(t, 30*time.Second, "three attempts while the customer context is down", func() bool {
					return sw.callsFor(ann.ID) >= 3
				})
				if rows := rowsOf(t, gdb, env.EventID); len(rows) != 0 || spy.calls() != 0 {
					t.Fatalf("while down: %d rows, %d sends", len(rows), spy.calls())
				}
				sw.down.Store(false)
				waitFor(t, 30*time.Second, "the notifications once the customer context is back", func() bool {
					rows := rowsOf(t, gdb, env.EventID)
					return len(rows) == 2 && rows[0].Status == string(StatusSent) && rows[1].Status == string(StatusSent)
				})
				if spy.total() != 2 || len(spy.duplicates()) > 0 {
					t.Fatalf("%d sends (duplicates %v), want 2", spy.total(), spy.duplicates())
				}
				if n := processed(t, reg, events.OutcomeRetry); n < 2 {
					t.Fatalf("%v retries counted by the bus, want at least 2", n)
				}
				if dl, err := bus.DeadLetters(ctx, Group, 10); err != nil || len(dl) > 0 {
					t.Fatalf("dead letters: %v %v", dl, err)
				}
			})

			t.Run("unknown customer: a failed row, no retries", func(t *testing.T) {
				gdb := openDB(t, mode.backend)
				spy := newSpy(NewLogSender(testkit.Logger(), nil))
				sw := newSwitchable(customers)
				c := NewConsumer(gdb, sw, spy, Options{Logger: testkit.Logger()})
				reg := prometheus.NewRegistry()
				bus := mode.open(t, busOptions(reg))
				sub, err := bus.Subscribe(ctx, Group, Streams, c.Handle)
				must(t, err)
				t.Cleanup(func() { _ = sub.Close() })

				ectx := eventCtx("corr-ghost")
				ghost := orderConfirmed(t, ectx, testkit.ID("ord"), "cus_ghost", 100)
				// The sentinel follows on the same stream: once it is done,
				// the ghost's first delivery is behind us, and a failure of
				// it would have been counted as a retry already.
				sentinel := orderConfirmed(t, ectx, testkit.ID("ord"), bob.ID, 200)
				must(t, bus.Publish(ctx, ghost, sentinel))
				waitFor(t, 30*time.Second, "the sentinel's notification", func() bool {
					rows := rowsOf(t, gdb, sentinel.EventID)
					return len(rows) == 1 && rows[0].Status == string(StatusSent)
				})
				rows := rowsOf(t, gdb, ghost.EventID)
				if len(rows) != 1 || rows[0].Status != string(StatusFailed) || rows[0].Error == "" {
					t.Fatalf("ghost rows: %+v", rows)
				}
				if n := sw.callsFor("cus_ghost"); n != 1 {
					t.Fatalf("unknown customer looked up %d times, want 1", n)
				}
				if n := processed(t, reg, events.OutcomeRetry); n != 0 {
					t.Fatalf("%v retries, want none", n)
				}
				if spy.total() != 1 {
					t.Fatalf("%d sends, want the sentinel's only", spy.total())
				}
			})
		})
	}
}

// callCounter counts handler calls per event id.
type callCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func newCallCounter() *callCounter { return &callCounter{n: map[string]int{}} }

func (c *callCounter) add(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[id]++
}

func (c *callCounter) of(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

// waitClosed waits for ch with a generous deadline.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// processed sums events_processed_total of the notification group with
// outcome.
func processed(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "events_processed_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["consumer"] == Group && labels["outcome"] == outcome {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
