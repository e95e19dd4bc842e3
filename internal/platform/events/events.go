// Package events is the platform event bus: the envelope every context
// publishes, the ports (Publisher, Subscriber, Bus) and two adapters with the
// same at-least-once contract:
//
//   - RedisBus, Redis Streams (production, POS_REDIS_URL): one stream per
//     producing context, one consumer group per subscribing context;
//   - SQLBus, a small log in a SQL database of its own (the embedded default,
//     <data-dir>/bus.db; it also runs on PostgreSQL, which is how its tests
//     cover both engines).
//
// # Contract
//
// Every event published to a stream reaches every consumer group subscribed
// to it, at least once. A message is acknowledged only after the handler
// returned nil, and the handler commits its own transaction before returning,
// so a crash anywhere means redelivery, never loss; consumers make redelivery
// harmless with inbox.Once. A failed attempt is retried with exponential
// backoff by the consumer that owns it while other messages keep flowing; the
// broker counts deliveries, so the count survives restarts, and the attempt
// that makes MaxDeliveries (10) failures moves the message to the group's
// dead-letter stream (Redis) or table (SQL) and acknowledges it in the same
// step. A consumer that dies holding messages loses them to another consumer
// of its group once they have been idle for ClaimMinIdle (XAUTOCLAIM on Redis,
// a compare-and-set on the pending row in SQL); a consumer that shuts down
// cleanly hands its unfinished messages back at once. Order is per stream as
// published, but a retried message is handled after later ones: handlers
// must tolerate reordering (aggregate_version tells which state is newer).
//
// # Why not watermill
//
// watermill v1.5.1 and watermill-redisstream v1.4.5 are in go.mod and their
// model (router, Retry and PoisonQueue middlewares, consumer groups, claims)
// is the right one, but they do not fit this contract closely enough:
//
//   - their retry count lives in the Retry middleware's memory, so a message
//     that crashes its consumer is retried forever and a restart resets the
//     count; we count with the broker (the PEL delivery counter in Redis, a
//     column in SQL), which also lets a crash-looping message be dead-lettered
//     without running its handler an eleventh time;
//   - a Nack makes the redisstream subscriber resend the same message at once
//     and block the stream behind it; we park it with backoff and read on;
//   - its claims use XPENDING+XCLAIM one message at a time, its publisher
//     trims with approximate MAXLEN (which drops unacknowledged entries once
//     the backlog outgrows it), and Close closes the Redis client it was given;
//   - there is no SQL-log subscriber with the semantics above for the
//     embedded mode, so the router would have to be adapted anyway;
//   - and, practically, their packages need modules that are not in go.sum
//     (github.com/pkg/errors, Rican7/retry, vmihailenco/msgpack,
//     sony/gobreaker v1), which this change may not add.
//
// So the router (router.go), retry, dead-lettering and claims are written
// here once over a small transport interface that each adapter implements;
// the Redis adapter uses go-redis directly.
//
// # Redis durability
//
// "Nothing acknowledged is ever lost" holds on Redis only if an XADD that
// returned is on disk: run Redis with appendonly yes and appendfsync always
// (everysec may lose the last second of publishes in a crash; the outbox has
// already marked them published by then).
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
)

// Envelope is one event as it travels: the fields DESIGN.md lists, plus the
// stream it belongs to. Data is the event's own payload, opaque to the bus.
type Envelope struct {
	// EventID is unique per event; consumers deduplicate on it.
	EventID string `json:"event_id"`
	// EventType is "<stream>.<Name>", e.g. "sales.SaleCompleted".
	EventType string `json:"event_type"`
	// Stream is the producing context's stream ("sales", "claims", …);
	// New derives it from the event type's prefix.
	Stream string `json:"stream"`
	// AggregateID names the entity the event is about.
	AggregateID string `json:"aggregate_id"`
	// AggregateVersion is the entity's version after the change, so a
	// consumer can tell an old event from a newer state.
	AggregateVersion int64 `json:"aggregate_version"`
	// OccurredAt is when the change happened (UTC).
	OccurredAt time.Time `json:"occurred_at"`
	// CorrelationID ties the event to the request that caused it.
	CorrelationID string `json:"correlation_id,omitempty"`
	// Actor is who caused it ("<role>:<subject>", e.g. "agent:key_01…" or
	// "customer:cus_01…"), taken from the request's principal; empty for
	// work the system does on its own. The audit trail records it.
	Actor string `json:"actor,omitempty"`
	// Data is the JSON payload.
	Data json.RawMessage `json:"data"`
}

var (
	// namePattern is what stream and group names look like: they become
	// Redis keys and SQL values, so keep them plain.
	namePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	// eventTypePattern: "<stream>.<Name>", the name in the domain's own
	// words (claims.ClaimCreated, sales.SaleCompleted, orders.OrderConfirmed).
	eventTypePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}\.[A-Za-z0-9_.-]{1,120}$`)
)

// New builds an envelope for an event of eventType ("<stream>.<name>") about
// aggregateID at version, with data marshalled to JSON (json.RawMessage is
// taken as is). The correlation id comes from ctx.
func New(ctx context.Context, eventType, aggregateID string, version int64, data any) (Envelope, error) {
	if !eventTypePattern.MatchString(eventType) {
		return Envelope{}, fmt.Errorf("event type %q must be <stream>.<Name> with a lower-case stream: %w", eventType, errs.Invalid)
	}
	var raw json.RawMessage
	switch d := data.(type) {
	case json.RawMessage:
		raw = d
	case nil:
		raw = json.RawMessage("null")
	default:
		b, err := json.Marshal(data)
		if err != nil {
			return Envelope{}, fmt.Errorf("event %s data: %w", eventType, err)
		}
		raw = b
	}
	env := Envelope{
		EventID:          ids.New("evt"),
		EventType:        eventType,
		Stream:           eventType[:strings.IndexByte(eventType, '.')],
		AggregateID:      aggregateID,
		AggregateVersion: version,
		OccurredAt:       time.Now().UTC().Truncate(time.Microsecond),
		CorrelationID:    correlation.From(ctx),
		Data:             raw,
	}
	if p, ok := auth.FromContext(ctx); ok {
		env.Actor = string(p.Role) + ":" + p.Subject
	}
	return env, env.Validate()
}

// Validate checks what the bus relies on: an id, a type, a stream name that
// can be a key, and a payload that is JSON.
func (e Envelope) Validate() error {
	switch {
	case e.EventID == "" || len(e.EventID) > 200:
		return fmt.Errorf("event id %q: %w", e.EventID, errs.Invalid)
	case e.EventType == "" || len(e.EventType) > 200:
		return fmt.Errorf("event %s: event type %q: %w", e.EventID, e.EventType, errs.Invalid)
	case !namePattern.MatchString(e.Stream):
		return fmt.Errorf("event %s: stream %q is not a plain name: %w", e.EventID, e.Stream, errs.Invalid)
	case len(e.Data) > 0 && !json.Valid(e.Data):
		return fmt.Errorf("event %s: data is not JSON: %w", e.EventID, errs.Invalid)
	}
	return nil
}

// Decode unmarshals the payload into v.
func (e Envelope) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("decode %s %s: %w", e.EventType, e.EventID, err)
	}
	return nil
}

// Handler handles one event. It commits its own transaction before it
// returns nil (the bus acknowledges only then), and it must be idempotent:
// the same event may come again after a crash (see inbox.Once). A non-nil
// error, or a panic, means "try again later".
type Handler func(ctx context.Context, env Envelope) error

// BatchHandler handles several events at once, all or none: it commits one
// transaction holding the effect of every envelope before it returns nil, or
// returns an error having changed nothing. Like a Handler it must be
// idempotent per event (inbox.Once), since any of them may come again.
//
// A consumer that applies each event in a transaction of its own pays a
// BEGIN, an inbox row, its writes and a COMMIT per event, and the bus an
// ack per event; under load that is most of a checkout's database work.
// With a BatchHandler the messages one read returns share all of it.
//
// When a batch fails, the bus hands each of its events to the
// subscription's Handler alone: a bad event is retried and dead-lettered
// by itself while the others go through, exactly as without batching.
type BatchHandler func(ctx context.Context, envs []Envelope) error

// SubscribeOption changes how a subscription consumes.
type SubscribeOption func(*subscribeConfig)

type subscribeConfig struct {
	batch BatchHandler
}

// WithBatch makes the subscription hand bh every group of two or more
// messages that one read returned (up to Options.BatchSize), and ack them
// together; single messages, retries and messages past their delivery
// limit still go through the Handler one by one.
func WithBatch(bh BatchHandler) SubscribeOption {
	return func(c *subscribeConfig) { c.batch = bh }
}

func subscribeOptions(opts []SubscribeOption) subscribeConfig {
	var c subscribeConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Publisher appends envelopes to their streams. Publish returns only once
// every envelope is durably in the bus; publishing an event id already in
// its stream is a no-op where the adapter can tell (SQLBus always, RedisBus
// within its dedup window).
type Publisher interface {
	Publish(ctx context.Context, envs ...Envelope) error
}

// Subscriber starts consumers. group names the subscribing context
// ("notification", "audit", …): each group receives every event of the
// streams it subscribes to, and consumers of one group (the same context in
// several processes) share the work. The group is created at the start of
// each stream if missing, so events published before the first subscription
// are delivered too (as far as the stream still holds them). The consumer
// runs until ctx ends or the Subscription (or the bus) is closed.
type Subscriber interface {
	Subscribe(ctx context.Context, group string, streams []string, h Handler, opts ...SubscribeOption) (*Subscription, error)
}

// Bus is what an adapter offers: publish, subscribe, inspect dead letters,
// shut down.
type Bus interface {
	Publisher
	Subscriber
	// DeadLetters lists up to limit messages the group gave up on, oldest
	// first.
	DeadLetters(ctx context.Context, group string, limit int) ([]DeadLetter, error)
	// Trim drops entries every group has acknowledged and that are older
	// than keep; it returns how many went. Unacknowledged entries always stay.
	Trim(ctx context.Context, keep time.Duration) (int64, error)
	// Close stops every subscription (promptly: in-flight handlers see their
	// context cancelled) and releases the bus's connections.
	Close() error
}

// DeadLetter is a message a consumer group gave up on after MaxDeliveries
// failed attempts (or one it could not decode).
type DeadLetter struct {
	// Group is the consumer group that failed.
	Group string `json:"group"`
	// Stream and MessageID say where the message was (Redis entry id or
	// SQL sequence number).
	Stream    string `json:"stream"`
	MessageID string `json:"message_id"`
	// Envelope is the event, when it could be decoded.
	Envelope Envelope `json:"envelope"`
	// Raw is the stored payload, kept for messages that did not decode.
	Raw string `json:"raw,omitempty"`
	// Deliveries is how many times the group was handed the message.
	Deliveries int `json:"deliveries"`
	// Error is the last handler error.
	Error string `json:"error"`
	// DeadAt is when the message was moved.
	DeadAt time.Time `json:"dead_at"`
}

type attemptKey struct{}

// Attempt tells a handler which delivery of its event this is (1 for the
// first); 0 outside a handler. Useful in logs and to spot redeliveries.
func Attempt(ctx context.Context) int {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n
}

func decodeEnvelope(raw string) (Envelope, error) {
	var env Envelope
	if err := json.Unmarshal([]byte(raw), &env); err != nil {
		return Envelope{}, fmt.Errorf("undecodable envelope: %w", err)
	}
	if err := env.Validate(); err != nil {
		return Envelope{}, err
	}
	return env, nil
}

func validateSubscription(group string, streams []string, h Handler) error {
	if !namePattern.MatchString(group) {
		return fmt.Errorf("consumer group %q is not a plain name: %w", group, errs.Invalid)
	}
	if len(streams) == 0 {
		return fmt.Errorf("subscription %s names no stream: %w", group, errs.Invalid)
	}
	seen := map[string]bool{}
	for _, s := range streams {
		if !namePattern.MatchString(s) {
			return fmt.Errorf("stream %q is not a plain name: %w", s, errs.Invalid)
		}
		if seen[s] {
			return fmt.Errorf("stream %q named twice: %w", s, errs.Invalid)
		}
		seen[s] = true
	}
	if h == nil {
		return fmt.Errorf("subscription %s has no handler: %w", group, errs.Invalid)
	}
	return nil
}
