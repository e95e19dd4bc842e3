package claims

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/inbox"
)

//go:embed eventstore_migrations/*.sql
var eventStoreMigrations embed.FS

// EventStoreSet is the migration set the SQL event store's tables are
// recorded under, beside the read model's "main" set.
const EventStoreSet = "claims_events"

// Migrate applies every schema the claims SQL database needs: the read
// model, the projector's inbox and, when sqlEventStore is true (no MongoDB
// configured), the event store. It is safe to run on every start.
func Migrate(ctx context.Context, gdb *gorm.DB, sqlEventStore bool) error {
	if err := db.Migrate(ctx, gdb, Migrations); err != nil {
		return fmt.Errorf("migrate claims read model: %w", err)
	}
	if err := db.MigrateSet(ctx, gdb, inbox.Set, inbox.Migrations); err != nil {
		return fmt.Errorf("migrate claims inbox: %w", err)
	}
	if !sqlEventStore {
		return nil
	}
	sub, err := fs.Sub(eventStoreMigrations, "eventstore_migrations")
	if err != nil {
		return err
	}
	if err := db.MigrateSet(ctx, gdb, EventStoreSet, sub); err != nil {
		return fmt.Errorf("migrate claims event store: %w", err)
	}
	return nil
}

// SQLEventStore is the event store in the claims SQL database (SQLite in
// the embedded default, PostgreSQL in production without MongoDB). See the
// package doc for how its relay never skips a late commit.
type SQLEventStore struct {
	db      *gorm.DB
	dialect db.Dialect
	sig     signal
	// beforeCommit, when set, runs inside the append's transaction just
	// before it commits; tests hold a transaction open with it to commit
	// positions out of order.
	beforeCommit func()
}

var _ EventStore = (*SQLEventStore)(nil)

// NewSQLEventStore returns the event store on gdb, migrated with
// Migrate(ctx, gdb, true).
func NewSQLEventStore(gdb *gorm.DB) *SQLEventStore {
	return &SQLEventStore{db: gdb, dialect: db.DialectOf(gdb)}
}

// eventRow is one row of claim_events.
type eventRow struct {
	Position      int64
	EventID       string
	AggregateID   string
	Version       int64
	EventType     string
	OccurredAt    time.Time
	CorrelationID string
	Actor         string
	Data          string
}

func (r eventRow) event() StoredEvent {
	return StoredEvent{
		EventID: r.EventID, EventType: r.EventType, ClaimID: r.AggregateID, Version: r.Version, Position: r.Position,
		OccurredAt: r.OccurredAt.UTC(), CorrelationID: r.CorrelationID, Actor: r.Actor, Data: []byte(r.Data),
	}
}

const eventColumns = `position, event_id, aggregate_id, version, event_type, occurred_at, correlation_id, actor, data`

// Append implements EventStore.
func (s *SQLEventStore) Append(ctx context.Context, aggregateID string, expectedVersion int64, evs []StoredEvent) ([]StoredEvent, error) {
	if err := checkAppend(aggregateID, expectedVersion, evs); err != nil {
		return nil, err
	}
	out := make([]StoredEvent, len(evs))
	var stale bool
	unlock := writeLock(s.db)
	err := retryTransient(ctx, func() error {
		stale = false
		return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var head int64
			if err := db.ScanRow(tx.Raw(`SELECT COALESCE(MAX(version), 0) FROM claim_events WHERE aggregate_id = ?`, aggregateID), &head); err != nil {
				return err
			}
			if head != expectedVersion {
				stale = true
				return nil
			}
			for i, e := range evs {
				var pos int64
				err := db.ScanRow(tx.Raw(`INSERT INTO claim_events (event_id, aggregate_id, version, event_type, occurred_at, correlation_id, actor, data)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING position`,
					e.EventID, aggregateID, e.Version, e.EventType, e.OccurredAt.UTC(), e.CorrelationID, e.Actor, string(e.Data)), &pos)
				if err != nil {
					return err
				}
				if err := tx.Exec(`INSERT INTO claim_events_unpublished (position) VALUES (?)`, pos).Error; err != nil {
					return err
				}
				out[i] = e
				out[i].ClaimID, out[i].Position, out[i].OccurredAt = aggregateID, pos, e.OccurredAt.UTC()
			}
			if s.beforeCommit != nil {
				s.beforeCommit()
			}
			return nil
		})
	})
	unlock()
	switch {
	case err == nil && !stale:
		s.sig.Notify()
		return out, nil
	case err == nil || db.IsUniqueViolation(err):
		// Someone else holds these versions, or we do already (a retry of
		// an append whose success we did not hear about).
		return alreadyAppended(ctx, s, aggregateID, expectedVersion, evs)
	default:
		return nil, fmt.Errorf("append to claim %s: %w", aggregateID, storeErr(err))
	}
}

// Load implements EventStore.
func (s *SQLEventStore) Load(ctx context.Context, aggregateID string, afterVersion int64) ([]StoredEvent, error) {
	var rows []eventRow
	err := s.db.WithContext(ctx).Raw(`SELECT `+eventColumns+` FROM claim_events WHERE aggregate_id = ? AND version > ? ORDER BY version`,
		aggregateID, afterVersion).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("load claim %s: %w", aggregateID, storeErr(err))
	}
	return toEvents(rows), nil
}

// ReadAll implements EventStore.
func (s *SQLEventStore) ReadAll(ctx context.Context, afterPosition int64, limit int) ([]StoredEvent, error) {
	var rows []eventRow
	err := s.db.WithContext(ctx).Raw(`SELECT `+eventColumns+` FROM claim_events WHERE position > ? ORDER BY position LIMIT ?`,
		afterPosition, limit).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("read claim events: %w", storeErr(err))
	}
	return toEvents(rows), nil
}

// RelayBatch implements EventStore: the oldest rows of the unpublished
// table, published, then deleted.
func (s *SQLEventStore) RelayBatch(ctx context.Context, limit int, publish func(context.Context, []StoredEvent) error) (int, error) {
	if s.dialect != db.Postgres {
		// One process per SQLite file: no lock needed, and holding a write
		// transaction across the publish would stall every command.
		return s.relayBatch(ctx, s.db.WithContext(ctx), limit, publish)
	}
	var n int
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// One relay per database at a time across processes, which also
		// keeps publish order; the lock dies with the transaction.
		var mine bool
		if err := db.ScanRow(tx.Raw(`SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.claims_relay'))`), &mine); err != nil {
			return err
		}
		if !mine {
			return nil
		}
		var err error
		n, err = s.relayBatch(ctx, tx, limit, publish)
		return err
	})
	return n, err
}

func (s *SQLEventStore) relayBatch(ctx context.Context, q *gorm.DB, limit int, publish func(context.Context, []StoredEvent) error) (int, error) {
	var rows []eventRow
	err := q.Raw(`SELECT e.position, e.event_id, e.aggregate_id, e.version, e.event_type, e.occurred_at, e.correlation_id, e.actor, e.data
		FROM claim_events_unpublished u JOIN claim_events e ON e.position = u.position
		ORDER BY u.position LIMIT ?`, limit).Scan(&rows).Error
	if err != nil {
		return 0, fmt.Errorf("read unpublished claim events: %w", storeErr(err))
	}
	if len(rows) == 0 {
		return 0, nil
	}
	evs := toEvents(rows)
	if err := publish(ctx, evs); err != nil {
		return 0, err
	}
	// Only now: a crash before this line publishes them again, never loses.
	positions := make([]int64, len(rows))
	for i, r := range rows {
		positions[i] = r.Position
	}
	unlock := writeLock(s.db)
	err = q.Exec(`DELETE FROM claim_events_unpublished WHERE position IN ?`, positions).Error
	unlock()
	if err != nil {
		return 0, fmt.Errorf("mark claim events published: %w", storeErr(err))
	}
	return len(rows), nil
}

// Appended implements EventStore.
func (s *SQLEventStore) Appended() <-chan struct{} { return s.sig.C() }

// Ping implements EventStore.
func (s *SQLEventStore) Ping(ctx context.Context) error { return db.Ping(ctx, s.db) }

func toEvents(rows []eventRow) []StoredEvent {
	out := make([]StoredEvent, len(rows))
	for i, r := range rows {
		out[i] = r.event()
	}
	return out
}

// checkAppend enforces the arguments Append documents; a caller breaking
// them is a bug, reported as Invalid rather than stored.
func checkAppend(aggregateID string, expectedVersion int64, evs []StoredEvent) error {
	switch {
	case aggregateID == "" || len(aggregateID) > 64:
		return fmt.Errorf("append: aggregate id %q: %w", aggregateID, errs.Invalid)
	case expectedVersion < 0:
		return fmt.Errorf("append: expected version %d: %w", expectedVersion, errs.Invalid)
	case len(evs) == 0:
		return fmt.Errorf("append to %s: no events: %w", aggregateID, errs.Invalid)
	}
	for i, e := range evs {
		switch {
		case e.Version != expectedVersion+1+int64(i):
			return fmt.Errorf("append to %s: event %d has version %d, want %d: %w", aggregateID, i, e.Version, expectedVersion+1+int64(i), errs.Invalid)
		case e.ClaimID != "" && e.ClaimID != aggregateID:
			return fmt.Errorf("append to %s: event %d is about %s: %w", aggregateID, i, e.ClaimID, errs.Invalid)
		case e.EventID == "" || e.EventType == "" || e.OccurredAt.IsZero():
			return fmt.Errorf("append to %s: event %d lacks an id, a type or a time: %w", aggregateID, i, errs.Invalid)
		}
	}
	return nil
}

// alreadyAppended resolves an append that found its versions taken: if
// they hold exactly these events (same ids) it was ours (a retry of an
// append whose success the caller did not hear about), and the stored
// events are the answer; otherwise the caller's view was stale.
func alreadyAppended(ctx context.Context, s EventStore, aggregateID string, expectedVersion int64, evs []StoredEvent) ([]StoredEvent, error) {
	stored, err := s.Load(ctx, aggregateID, 0)
	if err != nil {
		return nil, err
	}
	var head int64
	if n := len(stored); n > 0 {
		head = stored[n-1].Version
	}
	byVersion := make(map[int64]StoredEvent, len(stored))
	for _, e := range stored {
		byVersion[e.Version] = e
	}
	mine := make([]StoredEvent, 0, len(evs))
	for _, e := range evs {
		if got, ok := byVersion[e.Version]; ok && got.EventID == e.EventID {
			mine = append(mine, got)
		}
	}
	if len(mine) == len(evs) {
		return mine, nil
	}
	return nil, fmt.Errorf("claim %s is at version %d, not %d: %w", aggregateID, head, expectedVersion, errs.Conflict)
}

// sqliteWriters holds one mutex per SQLite database (by its *sql.DB) that
// this package's write transactions take before BEGIN: appends, the
// relay's marks, the projector, a rebuild. SQLite has one write lock, and
// a writer that finds it taken sleeps in steps of up to 100ms
// (busy_timeout); under load the projector, one goroutine against every
// command, kept losing that lottery and the read model fell seconds
// behind. Waiting on a Go mutex instead is first come, first served and
// wakes at once. It is package state because the event store and the
// projector are built separately on the same database; PostgreSQL needs
// none of it.
var sqliteWriters sync.Map

// writeLock takes gdb's writer mutex on SQLite (nothing on PostgreSQL)
// and returns its release.
func writeLock(gdb *gorm.DB) func() {
	if db.DialectOf(gdb) != db.SQLite {
		return func() {}
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return func() {}
	}
	m, _ := sqliteWriters.LoadOrStore(sqlDB, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// retryTransient repeats fn when the engine reports a transient conflict
// (PostgreSQL serialization failure or deadlock, SQLite busy beyond its
// timeout); the transaction is whole or absent, so repeating is safe.
func retryTransient(ctx context.Context, fn func() error) error {
	var err error
	for i := 0; i < 6; i++ {
		if err = fn(); err == nil || !db.IsSerializationFailure(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(time.Duration(5<<i) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
	return err
}

// storeErr gives a database failure its kind: a cancelled caller is a
// timeout, anything else the store being unavailable. Neither is a bug of
// ours, so neither may surface as a 500.
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errs.KindOf(err) != errs.Internal:
		return err
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %v", errs.Timeout, err)
	}
	return fmt.Errorf("%w: %v", errs.Unavailable, err)
}
