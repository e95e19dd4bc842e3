package notification

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/ids"
	pm "github.com/retailco/pos/internal/platform/metrics"
)

// Consumer turns claim and order events into notifications. Subscribe its
// Handle under Group to Streams; see the package doc for what it promises.
type Consumer struct {
	store     *store
	customers Customers
	sender    Sender
	o         Options
	log       *slog.Logger
	outcomes  *prometheus.CounterVec
}

// NewConsumer builds the consumer on gdb (migrated with Migrate), looking
// recipients up in customers and sending through sender.
func NewConsumer(gdb *gorm.DB, customers Customers, sender Sender, o Options) *Consumer {
	o = o.withDefaults()
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "notifications_total",
		Help: "Notifications that reached a final status (sent, failed), by event type and channel.",
	}, []string{"event_type", "channel", "status"})
	if o.Registerer != nil {
		outcomes = pm.Register(o.Registerer, outcomes)
	}
	return &Consumer{
		store: &store{db: gdb}, customers: customers, sender: sender, o: o,
		log: o.Logger.With("context", Name), outcomes: outcomes,
	}
}

// reasonUnknown is recorded when a redelivery finds a send that started
// and was never recorded: the at-most-once choice of the package doc.
const reasonUnknown = "delivery outcome unknown: the consumer stopped between sending and recording; " +
	"not sent again, to avoid a duplicate"

// Handle applies one event: it records the notifications the event calls
// for (once, however often it is delivered) and sends those still pending.
// An error means "deliver the event again later"; see the package doc for
// which failures are errors and which are recorded.
func (c *Consumer) Handle(ctx context.Context, env events.Envelope) error {
	if !notifies(env.EventType) {
		return nil
	}
	rows, err := c.store.byEvent(ctx, env.EventID)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		// First delivery (or an earlier one that failed before recording):
		// look the recipients up and record what to send.
		planned, err := c.plan(ctx, env)
		if err != nil {
			return err
		}
		first, err := c.store.record(ctx, env.EventID, planned)
		if err != nil {
			return err
		}
		if first {
			for _, r := range planned {
				if Status(r.Status) != StatusPending {
					c.outcomes.WithLabelValues(r.EventType, r.Channel, r.Status).Inc()
				}
			}
		}
		// Read back: a concurrent delivery may have recorded first, and
		// its rows are the ones to send.
		if rows, err = c.store.byEvent(ctx, env.EventID); err != nil {
			return err
		}
	}
	return c.deliver(ctx, rows)
}

// plan decides who is told what about env.
func (c *Consumer) plan(ctx context.Context, env events.Envelope) ([]notificationRow, error) {
	now := c.now()
	switch env.EventType {
	case evOrderConfirmed, evOrderCancelled:
		var e orderEvent
		if err := env.Decode(&e); err != nil {
			return nil, fmt.Errorf("%v: %w", err, errs.Invalid)
		}
		if e.OrderID == "" {
			e.OrderID = env.AggregateID
		}
		if e.CustomerID == "" || e.OrderID == "" {
			return nil, fmt.Errorf("event %s (%s) names no order or customer: %w", env.EventID, env.EventType, errs.Invalid)
		}
		return c.customerRows(ctx, env, e.CustomerID, now, func(name string) content {
			return orderContent(env.EventType, e, name)
		})
	default: // a claims event that notifies
		var e claimEvent
		if err := env.Decode(&e); err != nil {
			return nil, fmt.Errorf("%v: %w", err, errs.Invalid)
		}
		if e.ClaimID == "" {
			e.ClaimID = env.AggregateID
		}
		if e.ClaimID == "" {
			return nil, fmt.Errorf("event %s (%s) names no claim: %w", env.EventID, env.EventType, errs.Invalid)
		}
		customerID := e.CustomerID
		if env.EventType == evClaimCreated {
			if customerID == "" {
				return nil, fmt.Errorf("event %s (%s) names no customer: %w", env.EventID, env.EventType, errs.Invalid)
			}
			// Remember the claim before anything can fail, so the later
			// events of this claim find its customer even while this one
			// waits for the customer context.
			if err := c.store.rememberClaim(ctx, e.ClaimID, customerID, now); err != nil {
				return nil, err
			}
		} else if customerID == "" {
			id, err := c.store.claimCustomer(ctx, e.ClaimID)
			if errs.IsKind(err, errs.NotFound) {
				return nil, fmt.Errorf("claim %s is not known yet (its ClaimCreated has not been handled): %w",
					e.ClaimID, errs.Unavailable)
			}
			if err != nil {
				return nil, err
			}
			customerID = id
		}
		rows, err := c.customerRows(ctx, env, customerID, now, func(name string) content {
			return claimContent(env.EventType, e, name)
		})
		if err != nil {
			return nil, err
		}
		if env.EventType == evClaimAssigned && e.AgentID != "" {
			msg := agentContent(e, customerID)
			r := c.row(env, e.AgentID, e.AgentID, ChannelInbox, msg.subject, msg.body, now)
			// The inbox row is its own delivery: sent when it commits.
			r.Status, r.Attempts, r.SentAt = string(StatusSent), 1, &now
			rows = append(rows, r)
		}
		return rows, nil
	}
}

// customerRows looks the customer up and renders one row per channel they
// can be reached on. An unreachable customer context is an error (the
// event is retried); an unknown customer is a failed row (it is not).
func (c *Consumer) customerRows(ctx context.Context, env events.Envelope, customerID string, now time.Time,
	render func(name string) content) ([]notificationRow, error) {
	cus, err := c.customers.GetCustomer(ctx, customerID)
	switch {
	case errs.IsKind(err, errs.NotFound):
		msg := render("")
		r := c.row(env, customerID, "customer:"+customerID, ChannelEmail, msg.subject, msg.body, now)
		r.Status, r.Error = string(StatusFailed), fmt.Sprintf("customer %s not found: nobody to notify", customerID)
		c.log.WarnContext(ctx, "notification for an unknown customer recorded as failed",
			"event_id", env.EventID, "event_type", env.EventType, "customer_id", customerID)
		return []notificationRow{r}, nil
	case err != nil:
		// errs.Unavailable and errs.Timeout above all: the kind is kept,
		// and the bus tries again later.
		return nil, fmt.Errorf("look up customer %s for event %s: %w", customerID, env.EventID, err)
	}
	msg := render(cus.FirstName)
	var rows []notificationRow
	if cus.Email != "" {
		rows = append(rows, c.row(env, customerID, cus.Email, ChannelEmail, msg.subject, msg.body, now))
	}
	if cus.Phone != "" {
		rows = append(rows, c.row(env, customerID, cus.Phone, ChannelSMS, msg.subject, msg.sms, now))
	}
	if len(rows) == 0 {
		r := c.row(env, customerID, "customer:"+customerID, ChannelEmail, msg.subject, msg.body, now)
		r.Status, r.Error = string(StatusFailed), "customer has neither an e-mail address nor a phone number"
		rows = append(rows, r)
	}
	return rows, nil
}

// row is a pending notification of env.
func (c *Consumer) row(env events.Envelope, recipientID, recipient string, ch Channel, subject, body string, now time.Time) notificationRow {
	return notificationRow{
		ID: ids.New("ntf"), EventID: env.EventID, EventType: env.EventType, EventName: eventName(env.EventType),
		AggregateID: env.AggregateID, RecipientID: recipientID, Recipient: recipient, Channel: string(ch),
		Subject: subject, Body: body, Status: string(StatusPending), CorrelationID: env.CorrelationID, CreatedAt: now,
	}
}

// deliver sends the pending rows of one event. Rows whose send fails for
// now stay pending and make the event fail, so the bus delivers it again.
func (c *Consumer) deliver(ctx context.Context, rows []notificationRow) error {
	var retry []error
	for _, r := range rows {
		if Status(r.Status) != StatusPending {
			continue
		}
		if r.InFlight {
			// A send started and was never recorded: a crash, or a consumer
			// that outlived ClaimMinIdle. Sending again could duplicate.
			changed, err := c.store.markFailed(ctx, r.ID, reasonUnknown)
			if err != nil {
				return err
			}
			if changed {
				c.outcomes.WithLabelValues(r.EventType, r.Channel, string(StatusFailed)).Inc()
				c.log.WarnContext(ctx, "notification outcome unknown; not resent", "notification_id", r.ID, "event_id", r.EventID)
			}
			continue
		}
		if err := c.send(ctx, r); err != nil {
			retry = append(retry, err)
		}
	}
	// errors.Join keeps every error's kind visible to errors.Is.
	return errors.Join(retry...)
}

// send makes one attempt at one row and records how it went.
func (c *Consumer) send(ctx context.Context, r notificationRow) error {
	mine, err := c.store.begin(ctx, r.ID)
	if err != nil || !mine {
		return err // !mine: another consumer has it, or it is done
	}
	attempt := r.Attempts + 1
	sctx, cancel := context.WithTimeout(ctx, c.o.SendTimeout)
	sendErr := c.sender.Send(sctx, Message{ID: r.ID, Channel: Channel(r.Channel), To: r.Recipient, Subject: r.Subject, Body: r.Body})
	cancel()
	// The outcome is recorded even when ctx ended meanwhile (shutdown): the
	// send happened or not regardless, and a row left in flight would be
	// given up as "outcome unknown" by the next delivery.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()
	switch {
	case sendErr == nil:
		changed, err := c.store.markSent(rctx, r.ID, c.now())
		if err != nil {
			return err
		}
		if changed {
			c.outcomes.WithLabelValues(r.EventType, r.Channel, string(StatusSent)).Inc()
		}
		return nil
	case ctx.Err() != nil:
		// Interrupted, not refused: hand the row back without using up
		// its attempts' budget on a shutdown.
		if err := c.store.release(rctx, r.ID, sendErr.Error()); err != nil {
			return err
		}
		return fmt.Errorf("send notification %s: %w", r.ID, sendErr)
	case permanent(sendErr) || attempt >= c.o.MaxAttempts:
		changed, err := c.store.markFailed(rctx, r.ID, fmt.Sprintf("attempt %d: %v", attempt, sendErr))
		if err != nil {
			return err
		}
		if changed {
			c.outcomes.WithLabelValues(r.EventType, r.Channel, string(StatusFailed)).Inc()
			c.log.WarnContext(ctx, "notification failed", "notification_id", r.ID, "event_id", r.EventID,
				"channel", r.Channel, "attempt", attempt, "err", sendErr)
		}
		return nil
	default:
		if err := c.store.release(rctx, r.ID, fmt.Sprintf("attempt %d: %v", attempt, sendErr)); err != nil {
			return err
		}
		return fmt.Errorf("send notification %s (attempt %d of %d): %w", r.ID, attempt, c.o.MaxAttempts, sendErr)
	}
}

// permanent tells a refusal that no retry can change (Sender's contract).
func permanent(err error) bool {
	return errs.IsKind(err, errs.Invalid) || errs.IsKind(err, errs.Unprocessable)
}

func (c *Consumer) now() time.Time { return c.o.Now().UTC().Truncate(time.Microsecond) }

// eventName is the part of an event type after its stream:
// "claims.ClaimCreated" → "ClaimCreated".
func eventName(eventType string) string {
	if _, name, ok := strings.Cut(eventType, "."); ok {
		return name
	}
	return eventType
}
