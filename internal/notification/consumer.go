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

	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/ids"
	pm "github.com/retailco/pos/internal/platform/metrics"
)

// Consumer turns claim and order events into notifications. Subscribe its
// Handle under Group to Streams, with HandleBatch given as
// events.WithBatch; see the package doc for what it promises.
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
		store: newStore(gdb), customers: customers, sender: sender, o: o,
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
	return c.apply(ctx, []events.Envelope{env})
}

// HandleBatch applies envs as Handle applies each of them, sharing the
// statements: one recording for every event (one statement on
// PostgreSQL), one claim of every row to send, the sends, and one
// statement marking every accepted send. Subscribe it with
// events.WithBatch beside Handle.
//
// The recording is all or none, as the bus asks; the sends cannot be, so
// an error may come after some messages went out (a send refused for now,
// a database error while recording the outcomes). The bus then hands each
// event to Handle, which sends none of them again: the events are in the
// inbox, so Handle reads their rows instead of recording new ones; a sent
// row was marked sent before HandleBatch returned, and a row whose mark
// failed is still in flight, which Handle gives up as "outcome unknown"
// without sending. What Handle does send is what HandleBatch left
// pending: rows refused for now (their next attempt comes at once rather
// than after the bus's backoff), rows never claimed (the claim failed)
// and rows handed back unsent (a sender that panicked). Handle runs after
// HandleBatch has returned (the bus handles one message or batch at a
// time per subscription), so none of this races with the batch's sends.
func (c *Consumer) HandleBatch(ctx context.Context, envs []events.Envelope) error {
	return c.apply(ctx, envs)
}

// apply is Handle and HandleBatch. It plans before it knows whether an
// event is new, since on a first delivery reading the event's rows first
// would find nothing; when the bus says the delivery is not the first
// (events.Attempt, or a call from outside the bus), the rows are read
// first, and an event already recorded is sent as recorded, without
// asking the customer context again.
func (c *Consumer) apply(ctx context.Context, envs []events.Envelope) error {
	todo := make([]events.Envelope, 0, len(envs))
	seen := make(map[string]bool, len(envs))
	for _, env := range envs {
		if notifies(env.EventType) && !seen[env.EventID] {
			seen[env.EventID] = true // an event given twice is applied once
			todo = append(todo, env)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	firstDelivery := events.Attempt(ctx) == 1
	var rows []notificationRow
	if !firstDelivery {
		var err error
		if rows, err = c.store.byEvent(ctx, eventIDs(todo)...); err != nil {
			return err
		}
		todo = unrecorded(todo, rows)
	}
	planned := make([]eventRows, 0, len(todo))
	for _, env := range todo {
		// The envelope's correlation id goes with the customer lookup (a
		// batch's context carries none).
		p, err := c.plan(correlation.With(ctx, env.CorrelationID), env)
		if err == nil {
			planned = append(planned, eventRows{eventID: env.EventID, rows: p})
			continue
		}
		if firstDelivery {
			// A first delivery by the bus's count may still find its event
			// recorded (a batch recorded it and then failed, or a producer
			// published it twice): its rows are sent without a plan, as on
			// any redelivery.
			recorded, rerr := c.store.byEvent(ctx, env.EventID)
			if rerr == nil && len(recorded) > 0 {
				rows = append(rows, recorded...)
				continue
			}
		}
		// Nothing is written yet (but the claim → customer row, which
		// is harmless): a batch fails whole and the bus hands each event
		// to Handle.
		return err
	}
	if len(planned) > 0 {
		first, err := c.store.record(ctx, planned)
		if err != nil {
			return err
		}
		var repeats []string
		for _, p := range planned {
			if !first[p.eventID] {
				repeats = append(repeats, p.eventID)
				continue
			}
			// Recorded now: the rows to send are exactly the planned ones.
			for _, r := range p.rows {
				if Status(r.Status) != StatusPending {
					c.outcomes.WithLabelValues(r.EventType, r.Channel, r.Status).Inc()
				}
			}
			rows = append(rows, p.rows...)
		}
		if len(repeats) > 0 {
			// A concurrent delivery recorded these first: its rows, not
			// the planned ones (never written), are the ones to send.
			recorded, err := c.store.byEvent(ctx, repeats...)
			if err != nil {
				return err
			}
			rows = append(rows, recorded...)
		}
	}
	return c.deliver(ctx, rows)
}

// eventIDs are the ids of envs.
func eventIDs(envs []events.Envelope) []string {
	ids := make([]string, len(envs))
	for i, env := range envs {
		ids[i] = env.EventID
	}
	return ids
}

// unrecorded keeps the envelopes of envs that have no row among rows.
func unrecorded(envs []events.Envelope, rows []notificationRow) []events.Envelope {
	recorded := make(map[string]bool, len(rows))
	for _, r := range rows {
		recorded[r.EventID] = true
	}
	out := envs[:0]
	for _, env := range envs {
		if !recorded[env.EventID] {
			out = append(out, env)
		}
	}
	return out
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

// deliver sends the pending rows given, of one event or of several. A
// row found in flight is given up as "outcome unknown". The others are
// claimed together, the claim committed before the first send, then sent
// one by one, and the outcomes recorded by settle. Rows whose send fails
// for now stay pending and make the call fail, so the bus delivers the
// event again.
//
// Claiming together means that a crash (a killed process, not a
// shutdown) during a send leaves every claimed row not yet settled in
// flight, and the redelivery gives all of them up as "outcome unknown",
// not just the one being sent: the price of one claim per delivery
// instead of one per row. A panicking sender is not such a crash (the bus
// recovers the panic), and the rows it never reached are handed back.
func (c *Consumer) deliver(ctx context.Context, rows []notificationRow) error {
	var sendable []notificationRow
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
		sendable = append(sendable, r)
	}
	if len(sendable) == 0 {
		return nil
	}
	taken, err := c.store.claim(ctx, rowIDs(sendable))
	if err != nil {
		return err
	}
	mine := sendable[:0] // the rest: another consumer has them, or they are done
	for _, r := range sendable {
		if taken[r.ID] {
			mine = append(mine, r)
		}
	}
	results, untried := c.sendAll(ctx, mine)
	return c.settle(ctx, results, untried)
}

// sendAll sends the claimed rows one by one until ctx ends, and returns
// how each send went and the rows it never handed to the sender.
func (c *Consumer) sendAll(ctx context.Context, rows []notificationRow) (results []sendResult, untried []notificationRow) {
	handed := 0
	defer func() {
		if p := recover(); p != nil {
			// The row the sender panicked on stays in flight (whether it
			// went out is unknown); the outcomes known are recorded and
			// the rows after it handed back, so a redelivery sends them.
			_ = c.settle(ctx, results, rows[handed:])
			panic(p)
		}
	}()
	for handed < len(rows) && ctx.Err() == nil {
		r := rows[handed]
		handed++
		results = append(results, c.send(ctx, r))
	}
	return results, rows[handed:]
}

// sendResult is how one send went.
type sendResult struct {
	row notificationRow
	err error // nil: accepted
	// interrupted: ctx had ended when the send returned, so err says
	// "cut short", not "refused".
	interrupted bool
}

// send makes one attempt at one claimed row.
func (c *Consumer) send(ctx context.Context, r notificationRow) sendResult {
	sctx, cancel := context.WithTimeout(ctx, c.o.SendTimeout)
	defer cancel()
	err := c.sender.Send(sctx, Message{ID: r.ID, Channel: Channel(r.Channel), To: r.Recipient, Subject: r.Subject, Body: r.Body})
	return sendResult{row: r, err: err, interrupted: err != nil && ctx.Err() != nil}
}

// settle records how the sends went: every accepted send in one
// statement, then each refusal (it carries its own reason), then the
// claimed rows never handed to the sender, given back whole. It records
// even when ctx has ended (shutdown): the sends happened or not
// regardless, and a row left in flight would be given up as "outcome
// unknown" by the next delivery. The error joins everything that calls
// for a redelivery; errors.Join keeps every error's kind visible to
// errors.Is.
func (c *Consumer) settle(ctx context.Context, results []sendResult, untried []notificationRow) error {
	var retry []error
	var sent []string
	for _, res := range results {
		if res.err == nil {
			sent = append(sent, res.row.ID)
		}
	}
	if len(sent) > 0 {
		rctx, cancel := recordContext(ctx)
		changed, err := c.store.markSent(rctx, sent, c.now())
		cancel()
		if err != nil {
			retry = append(retry, err)
		}
		for _, res := range results {
			if changed[res.row.ID] {
				c.outcomes.WithLabelValues(res.row.EventType, res.row.Channel, string(StatusSent)).Inc()
			}
		}
	}
	for _, res := range results {
		if res.err != nil {
			if err := c.refused(ctx, res); err != nil {
				retry = append(retry, err)
			}
		}
	}
	if len(untried) > 0 {
		rctx, cancel := recordContext(ctx)
		err := c.store.unclaim(rctx, rowIDs(untried))
		cancel()
		if err != nil {
			retry = append(retry, err)
		}
		retry = append(retry, fmt.Errorf("%d notifications not sent: %w", len(untried), context.Cause(ctx)))
	}
	return errors.Join(retry...)
}

// refused records a send that was not accepted; the error, if any, calls
// for a redelivery.
func (c *Consumer) refused(ctx context.Context, res sendResult) error {
	r, sendErr := res.row, res.err
	attempt := r.Attempts + 1 // the claim counted it
	rctx, cancel := recordContext(ctx)
	defer cancel()
	switch {
	case res.interrupted:
		// Interrupted, not refused: hand the row back, without failing it
		// for its attempts' budget on a shutdown.
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

// recordContext bounds one write of settle, on a context that outlives
// ctx's end.
func recordContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

// rowIDs are the ids of rows.
func rowIDs(rows []notificationRow) []string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids
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
