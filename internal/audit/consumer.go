package audit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	pm "github.com/retailco/pos/internal/platform/metrics"
)

// Consumer writes every event it is given to the trail. Subscribe its
// Handle under Group to Streams.
type Consumer struct {
	store   *store
	o       Options
	log     *slog.Logger
	latency *prometheus.HistogramVec
}

// NewConsumer builds the consumer on gdb (migrated with Migrate).
func NewConsumer(gdb *gorm.DB, o Options) *Consumer {
	o = o.withDefaults()
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "audit_latency_seconds",
		Help: "Time from an event's occurrence to its audit record, by stream (each event observed once).",
		// From a busy in-process bus (milliseconds) to a consumer catching
		// up after an outage (minutes).
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900},
	}, []string{"stream"})
	if o.Registerer != nil {
		latency = pm.Register(o.Registerer, latency)
	}
	return &Consumer{store: &store{db: gdb}, o: o, log: o.Logger.With("context", Name), latency: latency}
}

// Handle records env in the trail, once: a redelivery finds the event id
// taken and returns nil without writing. Only a database failure is an
// error (the bus retries), or an envelope without the time it happened
// (errs.Invalid: the bus dead-letters it after its retries, where it stays
// visible).
func (c *Consumer) Handle(ctx context.Context, env events.Envelope) error {
	r, err := c.entry(env, c.o.now())
	if err != nil {
		return err
	}
	first, err := c.store.insert(ctx, r)
	if err != nil {
		return err
	}
	if first {
		c.latency.WithLabelValues(r.Stream).Observe(max(r.AuditedAt.Sub(r.OccurredAt), 0).Seconds())
	} else {
		c.log.DebugContext(ctx, "event already audited", "event_id", env.EventID, "attempt", events.Attempt(ctx))
	}
	return nil
}

// HandleBatch records envs as Handle records each of them, in one
// statement. Subscribe it with events.WithBatch beside Handle: when it
// fails (an envelope without its time), nothing is written and the bus
// hands the events to Handle one by one.
func (c *Consumer) HandleBatch(ctx context.Context, envs []events.Envelope) error {
	now := c.o.now()
	rows := make([]entryRow, len(envs))
	for i, env := range envs {
		r, err := c.entry(env, now)
		if err != nil {
			return err
		}
		rows[i] = r
	}
	first, err := c.store.insertEach(ctx, rows)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if first[r.EventID] {
			delete(first, r.EventID) // an event given twice is observed once
			c.latency.WithLabelValues(r.Stream).Observe(max(r.AuditedAt.Sub(r.OccurredAt), 0).Seconds())
		}
	}
	return nil
}

// entry is the trail's row for env, audited at now.
func (c *Consumer) entry(env events.Envelope, now time.Time) (entryRow, error) {
	if err := env.Validate(); err != nil {
		return entryRow{}, err
	}
	if env.OccurredAt.IsZero() {
		return entryRow{}, fmt.Errorf("event %s (%s) has no occurred_at: %w", env.EventID, env.EventType, errs.Invalid)
	}
	occurred := env.OccurredAt.UTC().Truncate(time.Microsecond)
	latency := max(now.Sub(occurred), 0) // the producer's clock may run ahead of ours
	data := string(env.Data)
	if data == "" {
		data = "null"
	}
	_, name, found := strings.Cut(env.EventType, ".")
	if !found {
		name = env.EventType
	}
	return entryRow{
		EventID: env.EventID, EventType: env.EventType, EventName: name, Stream: env.Stream, // Validate saw it is a plain, non-empty name
		AggregateID: env.AggregateID, AggregateVersion: env.AggregateVersion, Actor: env.Actor,
		CorrelationID: env.CorrelationID, OccurredAt: occurred, AuditedAt: now,
		LatencyMs: latency.Milliseconds(), Data: data,
	}, nil
}
