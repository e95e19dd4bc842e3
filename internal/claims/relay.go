package claims

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
)

// RelayOptions tune a Relay; zero values pick the defaults.
type RelayOptions struct {
	// PollInterval is how often the relay looks without being woken, for
	// events appended by other processes and for gaps to age (200ms).
	PollInterval time.Duration
	// BatchSize is how many events one publish takes (100).
	BatchSize int
	// Logger reports publish failures; nil uses slog.Default().
	Logger *slog.Logger
}

// Relay publishes the event store to the bus as claims.<Type> envelopes:
// the store is the claims outbox. It is woken by every append made through
// the same store value (EventStore.Appended) and by Notify, and polls
// otherwise. Delivery is at least once: what the store hands over is marked
// published only after the bus accepted it.
type Relay struct {
	store EventStore
	pub   events.Publisher
	o     RelayOptions
	log   *slog.Logger
	wake  signal
}

// NewRelay returns a relay from store to pub; start it with Run.
func NewRelay(store EventStore, pub events.Publisher, o RelayOptions) (*Relay, error) {
	if store == nil || pub == nil {
		return nil, fmt.Errorf("claims relay needs an event store and a publisher: %w", errs.Invalid)
	}
	if o.PollInterval == 0 {
		o.PollInterval = 200 * time.Millisecond
	}
	if o.BatchSize == 0 {
		o.BatchSize = 100
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PollInterval < 0 || o.BatchSize < 0 {
		return nil, fmt.Errorf("claims relay options must not be negative: %w", errs.Invalid)
	}
	return &Relay{store: store, pub: pub, o: o, log: o.Logger.With("component", "claims-relay")}, nil
}

// Notify asks the relay to look now rather than at its next poll (for
// appends it cannot see being made: another process, a restored backup).
// It never blocks.
func (r *Relay) Notify() { r.wake.Notify() }

// Run relays until ctx ends, then returns nil. Failures are logged and
// retried with backoff; nothing is marked published until a publish
// succeeded.
func (r *Relay) Run(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		n, err := r.Step(ctx)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			failures++
			r.log.Warn("claims relay failed; retrying", "err", err, "failures", failures)
			r.sleep(ctx, min(r.o.PollInterval<<min(failures, 6), 5*time.Second))
			continue
		}
		failures = 0
		if n == r.o.BatchSize {
			continue // more waiting: no pause
		}
		r.sleep(ctx, r.o.PollInterval)
	}
	return nil
}

// Step relays one batch and returns how many events it published.
func (r *Relay) Step(ctx context.Context) (int, error) {
	return r.store.RelayBatch(ctx, r.o.BatchSize, func(ctx context.Context, evs []StoredEvent) error {
		envs := make([]events.Envelope, len(evs))
		for i, e := range evs {
			env, err := envelopeOf(e)
			if err != nil {
				return err
			}
			envs[i] = env
		}
		return r.pub.Publish(ctx, envs...)
	})
}

// sleep waits d, or until ctx ends or an append or Notify wakes the relay.
func (r *Relay) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-r.wake.C():
	case <-r.store.Appended():
	case <-t.C:
	}
}

// envelopeOf is a stored event as it travels on the bus: its own id,
// version, time, correlation id and actor, the type prefixed with the
// stream.
func envelopeOf(e StoredEvent) (events.Envelope, error) {
	env := events.Envelope{
		EventID: e.EventID, EventType: Name + "." + e.EventType, Stream: Name,
		AggregateID: e.ClaimID, AggregateVersion: e.Version, OccurredAt: e.OccurredAt.UTC(),
		CorrelationID: e.CorrelationID, Actor: e.Actor, Data: e.Data,
	}
	if err := env.Validate(); err != nil {
		return events.Envelope{}, fmt.Errorf("claim event at position %d: %w", e.Position, err)
	}
	return env, nil
}
