package reporting

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/inbox"
	pm "github.com/retailco/pos/internal/platform/metrics"
)

// Outcomes of Consumer.Handle, the label of reporting_events_total.
const (
	outcomeApplied   = "applied"
	outcomeDuplicate = "duplicate"
	outcomeSkipped   = "skipped"
)

// Consumer applies events to the read model. Subscribe its Handle under
// Group to Streams.
type Consumer struct {
	db     *gorm.DB
	o      Options
	p      planner
	log    *slog.Logger
	events *prometheus.CounterVec
}

// NewConsumer builds the consumer on gdb (migrated with Migrations). Give
// it the Options (Location, Currency) the Service on gdb has.
func NewConsumer(gdb *gorm.DB, o Options) *Consumer {
	o = o.withDefaults()
	counter := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reporting_events_total",
		Help: "Events handled by the reporting consumer, by event type and outcome (applied, duplicate, skipped).",
	}, []string{"event_type", "outcome"})
	if o.Registerer != nil {
		counter = pm.Register(o.Registerer, counter)
	}
	return &Consumer{db: gdb, o: o, p: o.planner(), log: o.Logger.With("context", Name), events: counter}
}

// Handle applies env once, however often it is delivered: in one
// transaction it records the event (inbox.Once, then the journal) and
// updates the aggregates, so a redelivery finds it recorded and changes
// nothing, and a failure leaves no trace. Event types that do not feed the
// read model are acknowledged and skipped. An error means "deliver again
// later": errs.Invalid for an event reporting cannot use (dead-lettered
// after the bus's retries), errs.Unavailable for a database that does not
// answer or an order cancelled before its confirmation was applied.
func (c *Consumer) Handle(ctx context.Context, env events.Envelope) error {
	if !consumed(env.EventType) {
		c.events.WithLabelValues(env.EventType, outcomeSkipped).Inc()
		return nil
	}
	if err := env.Validate(); err != nil {
		return err
	}
	applied := false
	err := c.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		first, err := inbox.Once(tx, Group, env.EventID)
		if err != nil {
			return dbErr("inbox", err)
		}
		if !first {
			return nil
		}
		if first, err = journal(tx, env, c.o.now()); err != nil || !first {
			return err
		}
		eff := newEffects()
		if err := c.p.add(eff, env, dbOrders{tx: tx}); err != nil {
			return err
		}
		if err := eff.flush(tx); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if err != nil {
		return dbErr("apply event "+env.EventID, err)
	}
	if applied {
		c.events.WithLabelValues(env.EventType, outcomeApplied).Inc()
	} else {
		c.events.WithLabelValues(env.EventType, outcomeDuplicate).Inc()
		c.log.DebugContext(ctx, "event already applied", "event_id", env.EventID, "attempt", events.Attempt(ctx))
	}
	return nil
}

// HandleBatch applies envs as Handle applies each of them, in one
// transaction: one inbox statement, one journal statement and one write
// per aggregate table for the whole batch. Subscribe it with
// events.WithBatch beside Handle: when it fails (an event reporting cannot
// use, an order cancelled before its confirmation), nothing is written and
// the bus hands the events to Handle one by one.
func (c *Consumer) HandleBatch(ctx context.Context, envs []events.Envelope) error {
	use := make([]events.Envelope, 0, len(envs))
	skipped := make([]string, 0)
	for _, env := range envs {
		if !consumed(env.EventType) {
			skipped = append(skipped, env.EventType)
			continue
		}
		if err := env.Validate(); err != nil {
			return err
		}
		use = append(use, env)
	}
	var applied []events.Envelope
	if len(use) > 0 {
		err := c.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			applied = applied[:0]
			ids := make([]string, len(use))
			for i, env := range use {
				ids[i] = env.EventID
			}
			first, err := inbox.OnceEach(tx, Group, ids)
			if err != nil {
				return dbErr("inbox", err)
			}
			fresh := make([]events.Envelope, 0, len(first))
			for _, env := range use {
				if first[env.EventID] {
					fresh = append(fresh, env)
					delete(first, env.EventID) // an event given twice is applied once
				}
			}
			journaled, err := journalEach(tx, fresh, c.o.now())
			if err != nil {
				return err
			}
			eff := newEffects()
			for _, env := range fresh {
				if !journaled[env.EventID] {
					continue
				}
				if err := c.p.add(eff, env, dbOrders{tx: tx}); err != nil {
					return err
				}
				applied = append(applied, env)
			}
			return eff.flush(tx)
		})
		if err != nil {
			return dbErr(fmt.Sprintf("apply %d events", len(use)), err)
		}
	}
	for _, typ := range skipped {
		c.events.WithLabelValues(typ, outcomeSkipped).Inc()
	}
	done := make(map[string]bool, len(applied))
	for _, env := range applied {
		done[env.EventID] = true
	}
	for _, env := range use {
		if done[env.EventID] {
			c.events.WithLabelValues(env.EventType, outcomeApplied).Inc()
			delete(done, env.EventID)
		} else {
			c.events.WithLabelValues(env.EventType, outcomeDuplicate).Inc()
		}
	}
	return nil
}
