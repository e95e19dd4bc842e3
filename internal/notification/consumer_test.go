package notification

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestConsumer pins what Handle does with each kind of delivery, called
// directly (the bus tests repeat the essentials through real buses), on
// every database engine.
func TestConsumer(t *testing.T) {
	t.Parallel()
	customers := newCustomers(t)
	ctx := context.Background()
	ann := register(t, customers, "Ann", testkit.ID("ann")+"@example.com", "+1 514-555-0100")
	bob := register(t, customers, "Bob", testkit.ID("bob")+"@example.com", "")

	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		// setup is a fresh database with a consumer whose sender records
		// what reaches the (real) log sender.
		setup := func(t *testing.T, o Options) (*Consumer, *spySender, *switchableCustomers, *store) {
			gdb := openDB(t, b)
			spy := newSpy(NewLogSender(testkit.Logger(), nil))
			sw := newSwitchable(customers)
			o.Logger = testkit.Logger()
			return NewConsumer(gdb, sw, spy, o), spy, sw, &store{db: gdb}
		}
		ectx := eventCtx("corr-consumer")

		t.Run("a redelivery sends nothing again", func(t *testing.T) {
			c, spy, sw, st := setup(t, Options{})
			env := claimCreated(t, ectx, testkit.ID("clm"), ann.ID)
			must(t, c.Handle(ctx, env))
			must(t, c.Handle(ctx, env))
			rows, _ := st.byEvent(ctx, env.EventID)
			if len(rows) != 2 || spy.total() != 2 || len(spy.duplicates()) > 0 {
				t.Fatalf("%d rows, %d sends (duplicates %v), want 2 and 2", len(rows), spy.total(), spy.duplicates())
			}
			if sw.callsFor(ann.ID) != 1 {
				t.Errorf("customer looked up %d times; a recorded event needs no lookup", sw.callsFor(ann.ID))
			}
		})

		t.Run("concurrent deliveries send once", func(t *testing.T) {
			c, spy, _, st := setup(t, Options{})
			env := orderCancelled(t, ectx, testkit.ID("ord"), ann.ID, 2500)
			var wg sync.WaitGroup
			errCh := make(chan error, 4)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errCh <- c.Handle(ctx, env)
				}()
			}
			wg.Wait()
			close(errCh)
			for err := range errCh {
				must(t, err)
			}
			rows, _ := st.byEvent(ctx, env.EventID)
			if len(rows) != 2 || spy.total() != 2 || len(spy.duplicates()) > 0 {
				t.Fatalf("%d rows, %d sends (duplicates %v), want 2 and 2", len(rows), spy.total(), spy.duplicates())
			}
			for _, r := range rows {
				if r.Status != string(StatusSent) {
					t.Errorf("row %s is %s", r.Channel, r.Status)
				}
			}
		})

		t.Run("a crash between send and mark is not resent", func(t *testing.T) {
			c, spy, _, st := setup(t, Options{})
			// The first send goes out, then the "process" dies before the
			// consumer records it.
			c.sender = crashAfterFirst{spy: spy}
			env := claimCreated(t, ectx, testkit.ID("clm"), ann.ID)
			func() {
				defer func() {
					if recover() == nil {
						t.Fatal("the crashing sender did not crash")
					}
				}()
				_ = c.Handle(ctx, env)
			}()
			rows, _ := st.byEvent(ctx, env.EventID)
			if len(rows) != 2 || !rows[0].InFlight || rows[0].Status != string(StatusPending) {
				t.Fatalf("after the crash: %+v", rows)
			}
			c.sender = spy
			must(t, c.Handle(ctx, env)) // the redelivery
			rows, _ = st.byEvent(ctx, env.EventID)
			email, sms := rows[0], rows[1]
			if email.Status != string(StatusFailed) || email.Error != reasonUnknown || email.InFlight || email.Attempts != 1 {
				t.Errorf("crashed row: %+v", email)
			}
			if sms.Status != string(StatusSent) {
				t.Errorf("untouched row: %+v", sms)
			}
			if spy.sentCount(email.ID) != 1 || spy.sentCount(sms.ID) != 1 {
				t.Errorf("sends: e-mail %d, sms %d, want 1 each", spy.sentCount(email.ID), spy.sentCount(sms.ID))
			}
		})

		t.Run("a refused send is retried by the next delivery", func(t *testing.T) {
			c, spy, _, st := setup(t, Options{})
			spy.fail = func(n int, m Message) error {
				if n == 1 {
					return fmt.Errorf("relay busy: %w", errs.Unavailable)
				}
				return nil
			}
			env := claimCreated(t, ectx, testkit.ID("clm"), ann.ID)
			if err := c.Handle(ctx, env); !errs.IsKind(err, errs.Unavailable) {
				t.Fatalf("first delivery: %v, want Unavailable so the bus retries", err)
			}
			rows, _ := st.byEvent(ctx, env.EventID)
			if rows[0].Status != string(StatusPending) || rows[0].InFlight || rows[0].Attempts != 1 || !strings.Contains(rows[0].Error, "relay busy") {
				t.Fatalf("refused row: %+v", rows[0])
			}
			if rows[1].Status != string(StatusSent) {
				t.Fatalf("the other channel waits for nothing: %+v", rows[1])
			}
			must(t, c.Handle(ctx, env))
			rows, _ = st.byEvent(ctx, env.EventID)
			if rows[0].Status != string(StatusSent) || rows[0].Attempts != 2 || rows[0].Error != "" || rows[0].SentAt == nil {
				t.Fatalf("retried row: %+v", rows[0])
			}
			if spy.total() != 2 || len(spy.duplicates()) > 0 {
				t.Fatalf("%d sends, duplicates %v", spy.total(), spy.duplicates())
			}
		})

		t.Run("a permanent refusal fails at once", func(t *testing.T) {
			c, spy, _, st := setup(t, Options{})
			spy.fail = func(_ int, m Message) error {
				if m.Channel == ChannelSMS {
					return fmt.Errorf("not a mobile number: %w", errs.Invalid)
				}
				return nil
			}
			env := claimClosedAfterCreate(t, c, ectx, ann.ID)
			must(t, c.Handle(ctx, env))
			rows, _ := st.byEvent(ctx, env.EventID)
			if rows[0].Status != string(StatusSent) || rows[1].Status != string(StatusFailed) || !strings.Contains(rows[1].Error, "not a mobile number") {
				t.Fatalf("rows: %+v", rows)
			}
			must(t, c.Handle(ctx, env))
			if spy.calls() != 4 { // two per event, the claim's ClaimCreated included; none on the redelivery
				t.Fatalf("%d send attempts, want 4", spy.calls())
			}
		})

		t.Run("attempts run out", func(t *testing.T) {
			c, spy, _, st := setup(t, Options{MaxAttempts: 3})
			spy.fail = func(int, Message) error { return fmt.Errorf("relay down: %w", errs.Unavailable) }
			env := orderConfirmed(t, ectx, testkit.ID("ord"), bob.ID, 1000)
			for i := 1; i <= 2; i++ {
				if err := c.Handle(ctx, env); !errs.IsKind(err, errs.Unavailable) {
					t.Fatalf("delivery %d: %v", i, err)
				}
			}
			must(t, c.Handle(ctx, env)) // the third attempt gives up
			must(t, c.Handle(ctx, env)) // nothing left to do
			rows, _ := st.byEvent(ctx, env.EventID)
			if len(rows) != 1 || rows[0].Status != string(StatusFailed) || rows[0].Attempts != 3 || !strings.Contains(rows[0].Error, "attempt 3") {
				t.Fatalf("rows: %+v", rows)
			}
			if spy.calls() != 3 {
				t.Fatalf("%d send attempts, want 3", spy.calls())
			}
		})

		t.Run("claim events wait for their ClaimCreated", func(t *testing.T) {
			c, _, _, st := setup(t, Options{})
			claim := testkit.ID("clm")
			resolved := claimResolved(t, ectx, claim, "Refunded.")
			if err := c.Handle(ctx, resolved); !errs.IsKind(err, errs.Unavailable) {
				t.Fatalf("resolved before created: %v, want Unavailable (retry)", err)
			}
			if rows, _ := st.byEvent(ctx, resolved.EventID); len(rows) != 0 {
				t.Fatalf("recorded before its claim was known: %+v", rows)
			}
			must(t, c.Handle(ctx, claimCreated(t, ectx, claim, ann.ID)))
			must(t, c.Handle(ctx, resolved))
			if rows, _ := st.byEvent(ctx, resolved.EventID); len(rows) != 2 {
				t.Fatalf("after ClaimCreated: %d rows", len(rows))
			}
			// A later event that names its customer needs no ClaimCreated.
			named := newEvent(t, ectx, evClaimClosed, "clm_other", 5, map[string]any{"claim_id": "clm_other", "customer_id": bob.ID})
			must(t, c.Handle(ctx, named))
			if rows, _ := st.byEvent(ctx, named.EventID); len(rows) != 1 || rows[0].Recipient != bob.Email {
				t.Fatalf("closed with customer_id: %+v", rows)
			}
		})

		t.Run("customer context unreachable", func(t *testing.T) {
			c, spy, sw, st := setup(t, Options{})
			env := orderConfirmed(t, ectx, testkit.ID("ord"), ann.ID, 4200)
			sw.down.Store(true)
			for i := 0; i < 2; i++ {
				if err := c.Handle(ctx, env); !errs.IsKind(err, errs.Unavailable) {
					t.Fatalf("while down: %v, want Unavailable", err)
				}
			}
			if rows, _ := st.byEvent(ctx, env.EventID); len(rows) != 0 || spy.calls() != 0 {
				t.Fatalf("while down: %d rows, %d sends", len(rows), spy.calls())
			}
			sw.down.Store(false)
			must(t, c.Handle(ctx, env))
			if rows, _ := st.byEvent(ctx, env.EventID); len(rows) != 2 || spy.total() != 2 {
				t.Fatalf("back up: %d rows, %d sends", len(rows), spy.total())
			}
		})

		t.Run("unknown customer is recorded, not retried", func(t *testing.T) {
			c, spy, sw, st := setup(t, Options{})
			env := orderConfirmed(t, ectx, testkit.ID("ord"), "cus_ghost", 100)
			must(t, c.Handle(ctx, env))
			must(t, c.Handle(ctx, env))
			rows, _ := st.byEvent(ctx, env.EventID)
			if len(rows) != 1 || rows[0].Status != string(StatusFailed) || !strings.Contains(rows[0].Error, "cus_ghost not found") {
				t.Fatalf("rows: %+v", rows)
			}
			if sw.callsFor("cus_ghost") != 1 || spy.calls() != 0 {
				t.Fatalf("%d lookups, %d sends; want 1 and 0", sw.callsFor("cus_ghost"), spy.calls())
			}
		})

		t.Run("malformed and ignored events", func(t *testing.T) {
			c, spy, _, st := setup(t, Options{})
			bad := newEvent(t, ectx, evOrderConfirmed, "ord_x", 1, map[string]any{"order_id": "ord_x", "total_cents": 5})
			if err := c.Handle(ctx, bad); !errs.IsKind(err, errs.Invalid) {
				t.Fatalf("no customer: %v, want Invalid (dead letter after the bus's retries)", err)
			}
			notJSONObject := newEvent(t, ectx, evClaimCreated, "clm_x", 1, []int{1, 2})
			if err := c.Handle(ctx, notJSONObject); !errs.IsKind(err, errs.Invalid) {
				t.Fatalf("array payload: %v, want Invalid", err)
			}
			for _, env := range []string{evClaimStarted, "claims.ClaimReopened", "sales.SaleCompleted"} {
				e := newEvent(t, ectx, env, "agg_1", 1, map[string]any{"claim_id": "agg_1", "customer_id": ann.ID})
				must(t, c.Handle(ctx, e))
				if rows, _ := st.byEvent(ctx, e.EventID); len(rows) != 0 {
					t.Errorf("%s notified: %+v", env, rows)
				}
			}
			if spy.calls() != 0 {
				t.Fatalf("%d sends", spy.calls())
			}
		})
	})
}

// claimClosedAfterCreate handles a ClaimCreated for customerID and returns
// the claim's ClaimClosed, not yet handled.
func claimClosedAfterCreate(t *testing.T, c *Consumer, ctx context.Context, customerID string) events.Envelope {
	t.Helper()
	claim := testkit.ID("clm")
	must(t, c.Handle(context.Background(), claimCreated(t, ctx, claim, customerID)))
	return claimClosed(t, ctx, claim)
}

// crashAfterFirst sends the first message through spy and then panics, as
// a process killed right after the send would stop; later calls panic
// without sending.
type crashAfterFirst struct{ spy *spySender }

var errCrashed = errors.New("simulated crash")

func (c crashAfterFirst) Send(ctx context.Context, m Message) error {
	if err := c.spy.Send(ctx, m); err != nil {
		return err
	}
	panic(errCrashed)
}
