package claims

import (
	"context"
	"sync"
)

// EventStore is the command side's persistence port: an append-only log of
// claim events, with optimistic concurrency per claim. Events are immutable:
// the port has no way to change or remove one (the SQL adapter also refuses
// UPDATE and DELETE in the database). Two adapters pass one contract suite:
// SQLEventStore (SQLite, PostgreSQL) and MongoEventStore.
type EventStore interface {
	// Append stores events as the next versions of the claim aggregateID,
	// which must be at expectedVersion (0: the claim does not exist yet).
	// events[i].Version must be expectedVersion+1+i and their ClaimID
	// aggregateID. When the claim is at another version, or a concurrent
	// append took the same version, it returns errs.Conflict and writes
	// nothing (MongoEventStore: see its doc for batches of several events).
	// Appending the same events again (same event ids, after a timeout
	// that hid a success) returns them as stored. The events come back
	// with their positions.
	Append(ctx context.Context, aggregateID string, expectedVersion int64, events []StoredEvent) ([]StoredEvent, error)
	// Load returns the claim's events with a version above afterVersion,
	// in version order; none for an unknown claim.
	Load(ctx context.Context, aggregateID string, afterVersion int64) ([]StoredEvent, error)
	// ReadAll returns up to limit events with a position above
	// afterPosition, in position order, across all claims: the input of a
	// rebuild. Events committed late may sit below a position already
	// read; the rebuild catches up on those (see Rebuild).
	ReadAll(ctx context.Context, afterPosition int64, limit int) ([]StoredEvent, error)
	// RelayBatch hands up to limit events that were never published, in
	// position order, to publish, and records them as published only after
	// publish returned nil. It returns how many it handed over. Each
	// adapter guarantees that an event whose append committed late is still
	// handed over (see the package doc for how).
	RelayBatch(ctx context.Context, limit int, publish func(context.Context, []StoredEvent) error) (int, error)
	// Appended is signalled after every append made through this value,
	// so an in-process relay publishes at once instead of at its next poll.
	Appended() <-chan struct{}
	// Ping checks the store answers (readiness).
	Ping(ctx context.Context) error
}

// signal is a level-triggered wake-up: Notify never blocks and one pending
// wake-up stands for any number of notifications.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func (s *signal) init() { s.once.Do(func() { s.ch = make(chan struct{}, 1) }) }

// Notify wakes the listener, or leaves a wake-up pending for it.
func (s *signal) Notify() {
	s.init()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// C is where the listener waits.
func (s *signal) C() <-chan struct{} {
	s.init()
	return s.ch
}
