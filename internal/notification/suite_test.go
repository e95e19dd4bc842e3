package notification

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
)

// fixture is one adapter of Service under test, over a database the
// consumer fills from events (the only way notifications are written).
type fixture struct {
	svc      Service
	consumer *Consumer
}

// TestService runs one suite against every adapter of Service: the local
// implementation on each database engine, and Client over HTTP (as an
// agent). The same assertions hold for all, errors included.
func TestService(t *testing.T) {
	t.Parallel()
	customers := newCustomers(t)
	newConsumer := func(gdb *gorm.DB) *Consumer {
		return NewConsumer(gdb, customers, NewLogSender(testkit.Logger(), nil), Options{Logger: testkit.Logger(), Now: newStepClock().Now})
	}
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		runSuite(t, customers, func(t *testing.T) fixture {
			gdb := openDB(t, b)
			return fixture{svc: New(gdb), consumer: newConsumer(gdb)}
		})
	})
	t.Run("client", func(t *testing.T) {
		runSuite(t, customers, func(t *testing.T) fixture {
			gdb := openDB(t, testkit.SQLite)
			local := New(gdb)
			h := testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, local) })
			return fixture{svc: NewClient(h.Client(Name, h.Keys.Agent)), consumer: newConsumer(gdb)}
		})
	})
}

func runSuite(t *testing.T, customers customer.Service, newFixture func(t *testing.T) fixture) {
	ctx := context.Background()
	t.Run("queries", func(t *testing.T) {
		f := newFixture(t)
		ann := register(t, customers, "Ann", testkit.ID("ann")+"@example.com", "+1 514-555-0100")
		bob := register(t, customers, "Bob", testkit.ID("bob")+"@example.com", "")
		ectx := eventCtx("corr-suite-1")
		claim := testkit.ID("clm")
		envs := []events.Envelope{
			claimCreated(t, ectx, claim, ann.ID),
			claimAssigned(t, ectx, claim, "agent-7"),
			claimStarted(t, ectx, claim),
			claimResolved(t, ectx, claim, "Replacement kettle shipped."),
			claimClosed(t, ectx, claim),
			orderConfirmed(t, ectx, "ord_bob_1", bob.ID, 12345),
			orderCancelled(t, ectx, "ord_ann_2", ann.ID, 5000),
			orderConfirmed(t, ectx, "ord_ghost_3", "cus_nobody", 999),
		}
		for _, env := range envs {
			must(t, f.consumer.Handle(ctx, env))
		}

		stats, err := f.svc.Stats(ctx)
		must(t, err)
		want := Stats{
			Total:     13,
			ByStatus:  map[string]int64{"sent": 12, "failed": 1},
			ByChannel: map[string]int64{"email": 7, "sms": 5, "inbox": 1},
			ByEventType: map[string]int64{"claims.ClaimCreated": 2, "claims.ClaimAssigned": 3, "claims.ClaimResolved": 2,
				"claims.ClaimClosed": 2, "orders.OrderConfirmed": 2, "orders.OrderCancelled": 2},
		}
		if !reflect.DeepEqual(stats, want) {
			t.Fatalf("stats\n got %+v\nwant %+v", stats, want)
		}

		cases := []struct {
			name  string
			f     Filter
			total int64
			items int
		}{
			{"all, first page", Filter{}, 13, 13},
			{"paged", Filter{Page: page.Request{Page: 4, PerPage: 4}}, 13, 1},
			{"by e-mail address", Filter{Recipient: ann.Email}, 5, 5},
			{"by phone", Filter{Recipient: ann.Phone}, 5, 5},
			{"by customer id: e-mail and sms", Filter{Recipient: ann.ID}, 10, 10},
			{"by agent", Filter{Recipient: "agent-7"}, 1, 1},
			{"full event type", Filter{EventType: "claims.ClaimAssigned"}, 3, 3},
			{"event name only", Filter{EventType: "ClaimAssigned"}, 3, 3},
			{"wrong stream", Filter{EventType: "orders.ClaimAssigned"}, 0, 0},
			{"started notifies nobody", Filter{EventType: "ClaimStarted"}, 0, 0},
			{"failed", Filter{Status: StatusFailed}, 1, 1},
			{"sms", Filter{Channel: ChannelSMS}, 5, 5},
			{"combined", Filter{Recipient: ann.ID, EventType: "OrderCancelled", Channel: ChannelEmail, Status: StatusSent}, 1, 1},
			{"quote is literal", Filter{Recipient: "x' OR '1'='1"}, 0, 0},
		}
		for _, c := range cases {
			res, err := f.svc.ListNotifications(ctx, c.f)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if res.Total != c.total || len(res.Items) != c.items {
				t.Errorf("%s: total %d items %d, want %d and %d", c.name, res.Total, len(res.Items), c.total, c.items)
			}
		}

		// Newest first: the last event's row leads, the first event's
		// rows close the list.
		all, err := f.svc.ListNotifications(ctx, Filter{})
		must(t, err)
		if all.Items[0].EventID != envs[7].EventID || all.Items[12].EventID != envs[0].EventID {
			t.Errorf("order: first %s last %s", all.Items[0].EventType, all.Items[12].EventType)
		}
		for _, n := range all.Items {
			if n.EventType == evClaimStarted {
				t.Errorf("ClaimStarted notified %s", n.Recipient)
			}
			if n.CorrelationID != "corr-suite-1" || n.CreatedAt.IsZero() || !strings.HasPrefix(n.ID, "ntf_") {
				t.Errorf("row fields: %+v", n)
			}
			switch n.Status {
			case StatusSent:
				if n.SentAt == nil || n.Attempts != 1 || n.Error != "" {
					t.Errorf("sent row: %+v", n)
				}
			case StatusFailed:
				if n.SentAt != nil || n.Error == "" {
					t.Errorf("failed row: %+v", n)
				}
			default:
				t.Errorf("row left %s: %+v", n.Status, n)
			}
		}

		// What each row says.
		get := func(fl Filter) Notification {
			t.Helper()
			res, err := f.svc.ListNotifications(ctx, fl)
			must(t, err)
			if len(res.Items) != 1 {
				t.Fatalf("%+v: %d rows, want 1", fl, len(res.Items))
			}
			return res.Items[0]
		}
		created := get(Filter{Recipient: ann.Email, EventType: "ClaimCreated"})
		if created.Subject != "We received your claim "+claim || !strings.Contains(created.Body, "Hello Ann") ||
			!strings.Contains(created.Body, "The kettle leaks.") || created.AggregateID != claim || created.RecipientID != ann.ID {
			t.Errorf("claim created e-mail: %+v", created)
		}
		resolved := get(Filter{Recipient: ann.Phone, EventType: "ClaimResolved"})
		if !strings.Contains(resolved.Body, claim) || !strings.Contains(resolved.Body, "Replacement kettle shipped.") {
			t.Errorf("claim resolved sms: %+v", resolved)
		}
		agent := get(Filter{Recipient: "agent-7"})
		if agent.Channel != ChannelInbox || agent.Status != StatusSent || !strings.Contains(agent.Body, ann.ID) {
			t.Errorf("agent inbox: %+v", agent)
		}
		confirmed := get(Filter{Recipient: bob.Email})
		if confirmed.Channel != ChannelEmail || !strings.Contains(confirmed.Body, "Total: 123.45 CAD") ||
			!strings.Contains(confirmed.Subject, "ord_bob_1") {
			t.Errorf("order confirmed e-mail: %+v", confirmed)
		}
		ghost := get(Filter{Status: StatusFailed})
		if ghost.Recipient != "customer:cus_nobody" || ghost.RecipientID != "cus_nobody" || !strings.Contains(ghost.Error, "not found") ||
			ghost.Attempts != 0 || ghost.EventID != envs[7].EventID {
			t.Errorf("unknown customer row: %+v", ghost)
		}
	})

	t.Run("invalid filters", func(t *testing.T) {
		f := newFixture(t)
		cases := []struct {
			name  string
			f     Filter
			field string
		}{
			{"status", Filter{Status: "bogus"}, "status"},
			{"channel", Filter{Channel: "fax"}, "channel"},
			{"event type", Filter{EventType: "not a type!"}, "event_type"},
			{"recipient", Filter{Recipient: strings.Repeat("r", 255)}, "recipient"},
		}
		for _, c := range cases {
			_, err := f.svc.ListNotifications(ctx, c.f)
			if !errs.IsKind(err, errs.Invalid) || !hasField(err, c.field) {
				t.Errorf("%s: got %v (fields %v), want Invalid naming %q", c.name, err, errs.Fields(err), c.field)
			}
		}
	})

	t.Run("empty", func(t *testing.T) {
		f := newFixture(t)
		st, err := f.svc.Stats(ctx)
		must(t, err)
		if st.Total != 0 || len(st.ByStatus) != 0 || st.ByChannel == nil {
			t.Fatalf("empty stats: %+v", st)
		}
		res, err := f.svc.ListNotifications(ctx, Filter{})
		must(t, err)
		if res.Total != 0 || len(res.Items) != 0 {
			t.Fatalf("empty list: %+v", res)
		}
	})
}
