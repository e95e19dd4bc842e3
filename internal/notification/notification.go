// Package notification tells people what happened to their claims and
// orders. It consumes the "claims" and "orders" streams (consumer group
// "notification"), renders one message per recipient and channel, sends it
// through a Sender and keeps a row per message, so agents can see what was
// sent to whom (GET /notifications) and how it went (GET
// /notifications/stats).
//
// # Who is told what
//
// Customers are reached by e-mail, and also by SMS when their record in the
// customer context has a phone number. Agents have no address anywhere in
// the platform (they are API keys), so their messages go to the in-app
// "inbox" channel: the notification row is the delivery, read through GET
// /notifications?recipient=<agent id>.
//
//	event                   customer (email, + sms with a phone)    agent (inbox)
//	claims.ClaimCreated     we received your claim                  —
//	claims.ClaimAssigned    an agent is on your claim               claim assigned to you
//	claims.ClaimStarted     — (nobody: "an agent is on it" was      —
//	                          already said at assignment)
//	claims.ClaimResolved    your claim is resolved, with the        —
//	                          resolution
//	claims.ClaimClosed      your claim is closed                    —
//	orders.OrderConfirmed   order confirmation with the total       —
//	orders.OrderCancelled   your order was cancelled                —
//
// Other event types on these streams are acknowledged and ignored; the
// sales and inventory streams are not subscribed to.
//
// Claim events after ClaimCreated carry only the claim id (docs/events.md),
// so the consumer keeps a small claim → customer table of its own, filled
// from ClaimCreated (a customer_id on a later event, should producers add
// one, is used directly). An event about a claim whose ClaimCreated has not
// been handled yet fails with errs.Unavailable and the bus retries it: the
// bus does not order a retried message before later ones.
//
// # Delivery guarantees
//
// The bus delivers at least once. Handle makes that exactly once for the
// record and at most once for the send:
//
//  1. Recipients are resolved first. The customer context being unreachable
//     (errs.Unavailable, errs.Timeout) fails the whole event, nothing is
//     written and the bus redelivers it later. (The bus gives up after its
//     MaxDeliveries, 10 by default, roughly 45 s of backoff: an outage
//     longer than that moves the event to the group's dead letters.) An
//     unknown customer (errs.NotFound) is recorded as a failed
//     notification with the reason, and the event is done: retrying would
//     not make the customer exist. A payload without the ids it needs is
//     errs.Invalid, retried by the bus and then dead-lettered, where a
//     producer's bug belongs.
//  2. One atomic write records the event in the inbox and writes one row
//     per (event, recipient, channel), status pending; a unique key on
//     that triple backs it up. Rows of the agents' "inbox" channel are
//     written as sent: committing the row is their delivery. A delivery
//     that finds the event in the inbox writes nothing and sends the
//     rows already there.
//  3. The pending rows are claimed together (attempts+1, in_flight set,
//     one committed statement), sent one by one, then the accepted ones
//     marked sent together — and, when the sender says a message was not
//     accepted, its row released as pending (a transient error: the event
//     fails and the bus redelivers it) or marked failed (a permanent
//     error, or MaxAttempts used up). A shutdown during the sends hands
//     the rows not yet sent back, their attempt not counted.
//
// Consumer.HandleBatch does the same for the events of one bus read at
// once: one recording for all of them, one claim, one mark.
//
// The send itself is AT MOST ONCE. A crash between the claim and the mark
// leaves the claimed rows pending with in_flight set; the redelivery
// cannot know whether their messages went out, so it does not send them
// again: it marks them failed, "outcome unknown", for an operator to look
// at. A duplicate e-mail or SMS to a customer is the worse failure here,
// and the window is the delivery's sends (one network round trip each). A
// sender error, on the other hand, means "not accepted" (Sender's
// contract) and is retried, up to MaxAttempts per row.
// One consequence: a consumer must finish a delivery's sends (a batch's,
// under HandleBatch) well within the bus's ClaimMinIdle (60 s by
// default), or a second consumer of the group may take the events over
// and find their rows in flight; SendTimeout (30 s by default) bounds
// each send.
//
// # Senders
//
// LogSender, the default, writes each message to the log and counts it:
// in the embedded mode the notification row is the record and the log is
// the outbox. SMTPSender (POS_SMTP_URL, smtp://user:pass@host:port?from=…)
// sends e-mail only; NewSender pairs it with a LogSender for SMS, since the
// platform has no SMS gateway.
package notification

import (
	"context"
	"embed"
	"time"

	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/platform/page"
)

// Name is the context's name: its database, its metrics label, its
// --only value.
const Name = "notification"

// Group is the consumer group the binary subscribes Consumer.Handle (and
// Consumer.HandleBatch) under.
const Group = "notification"

// Streams are the streams Consumer.Handle must be subscribed to.
var Streams = []string{"claims", "orders"}

// Migrations is the context's own schema (migration set "main"). The
// consumer also needs the inbox table: Migrate applies both.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Channel is how a message travels.
type Channel string

// The channels.
const (
	// ChannelEmail goes to the customer's e-mail address.
	ChannelEmail Channel = "email"
	// ChannelSMS goes to the customer's phone number.
	ChannelSMS Channel = "sms"
	// ChannelInbox is the in-app list agents read (GET /notifications);
	// the row is the delivery, no Sender is involved.
	ChannelInbox Channel = "inbox"
)

// Valid tells whether c is a known channel.
func (c Channel) Valid() bool {
	return c == ChannelEmail || c == ChannelSMS || c == ChannelInbox
}

// Status is where a notification stands.
type Status string

// The statuses.
const (
	// StatusPending: recorded, not (known to be) sent yet.
	StatusPending Status = "pending"
	// StatusSent: the sender accepted it (or, for the inbox, it was
	// recorded).
	StatusSent Status = "sent"
	// StatusFailed: given up on; Error says why.
	StatusFailed Status = "failed"
)

// Valid tells whether s is a known status.
func (s Status) Valid() bool {
	return s == StatusPending || s == StatusSent || s == StatusFailed
}

// Notification is one message to one recipient over one channel, caused by
// one event. (EventID, Recipient, Channel) is unique.
type Notification struct {
	ID        string `json:"id"`
	EventID   string `json:"event_id"`
	EventType string `json:"event_type" doc:"Full event type, e.g. claims.ClaimCreated"`
	// AggregateID is the claim or order the event was about.
	AggregateID string `json:"aggregate_id"`
	// RecipientID is the customer or agent id; Recipient is the address
	// used (e-mail, phone, agent id for the inbox, or customer:<id> when
	// the customer could not be found).
	RecipientID   string     `json:"recipient_id"`
	Recipient     string     `json:"recipient"`
	Channel       Channel    `json:"channel" enum:"email,sms,inbox"`
	Subject       string     `json:"subject"`
	Body          string     `json:"body"`
	Status        Status     `json:"status" enum:"pending,sent,failed"`
	Attempts      int        `json:"attempts" doc:"Send attempts made"`
	Error         string     `json:"error,omitempty" doc:"Why the last attempt failed, or why it was not sent"`
	CorrelationID string     `json:"correlation_id,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	SentAt        *time.Time `json:"sent_at,omitempty"`
}

// Filter narrows a notification list. Zero values do not filter.
type Filter struct {
	// Recipient matches the address or the recipient id (a customer's id
	// finds their e-mails and SMS alike).
	Recipient string
	// EventType is a full type ("claims.ClaimCreated") or just the name
	// ("ClaimCreated").
	EventType string
	// Status keeps one status.
	Status Status
	// Channel keeps one channel.
	Channel Channel
	// Page selects the page.
	Page page.Request
}

// Stats counts notifications. Every map holds only keys with a count.
type Stats struct {
	Total       int64            `json:"total"`
	ByStatus    map[string]int64 `json:"by_status"`
	ByChannel   map[string]int64 `json:"by_channel"`
	ByEventType map[string]int64 `json:"by_event_type"`
}

// Service is the context's query side, satisfied by the local
// implementation (New) and by Client over HTTP. Notifications are written
// only by Consumer, from events; there is no command to send one.
type Service interface {
	// ListNotifications returns one page of notifications, newest first.
	ListNotifications(ctx context.Context, f Filter) (page.Result[Notification], error)
	// Stats counts every notification by status, channel and event type.
	Stats(ctx context.Context) (Stats, error)
}

// Customers is what the consumer needs from the customer context: a
// recipient's e-mail and phone. customer.Service and customer.Client
// satisfy it.
type Customers interface {
	// GetCustomer returns one customer; errs.NotFound when there is none.
	GetCustomer(ctx context.Context, id string) (customer.Customer, error)
}

var _ Customers = customer.Service(nil)
