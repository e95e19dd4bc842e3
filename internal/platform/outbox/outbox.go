// Package outbox is the transactional outbox: a producer writes its events
// into a table of its own database in the same transaction as the state
// change (Add), and a Relay publishes them to the bus afterwards. The state
// change and its events therefore commit together or not at all.
//
// The relay publishes unpublished rows in position order and deletes them
// only after the bus accepted them: a crash in between publishes them again
// (consumers deduplicate on the event id; SQLBus and RedisBus also drop the
// repeat), never loses them.
//
// Published rows are deleted rather than marked and kept: a mark is an
// update of every index of the row (its published_at is in both partial
// indexes), and the copy would only duplicate what the bus keeps for its
// retention and the audit log keeps for ever. Under the checkout load this
// is one row update (and its WAL) less per event. Rows an earlier version
// marked published are deleted by migration 0002 and are never read: the
// relay reads only rows with no published_at.
//
// It deliberately keeps no "last published position" checkpoint. On
// PostgreSQL identity values are taken at insert but become visible at
// commit, in any order: a transaction holding position 7 can commit after
// the relay has already published 8, and a relay reading "position >
// checkpoint" would skip 7 for ever. The relay reads "published_at IS NULL
// ORDER BY position" instead, through a partial index that only holds the
// unpublished rows, so a late row is simply found on the next round.
//
// Several processes of one context (three cart instances) may each run a
// relay on the same database: on PostgreSQL a transaction-scoped advisory
// lock lets one of them work at a time, which also keeps publish order. On
// SQLite there is only ever one process per file.
//
// Usage, in the producer's own transaction:
//
//	err := gdb.Transaction(func(tx *gorm.DB) error {
//		if err := tx.Create(&sale).Error; err != nil { return err }
//		env, err := events.New(ctx, "sales.sale_completed", sale.ID, sale.Version, payload)
//		if err != nil { return err }
//		return outbox.Add(tx, env)
//	})
//	if err == nil { relay.Notify() }
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
)

// Migrations creates the outbox table. db.Migrate applies it to every
// context's database (so a context starts publishing without ceremony);
// it lives in package db for that reason and is re-exported here.
var Migrations = db.OutboxMigrations

// Set is the migration set name the outbox table is recorded under.
const Set = db.OutboxSet

// Add writes envs to the outbox inside tx, the producer's transaction.
// Nothing is published until tx commits; call Relay.Notify after the commit
// to have them published at once rather than at the next poll.
func Add(tx *gorm.DB, envs ...events.Envelope) error {
	rows, err := Values(envs...)
	if err != nil || len(rows) == 0 {
		return err
	}
	// In order, one statement per batch: positions follow the slice order.
	// Plain SQL rather than gorm's Create: every producer's transaction
	// runs this, and gorm's reflection over maps cost more than the insert.
	const perInsert = 100
	for start := 0; start < len(rows); start += perInsert {
		chunk := rows[start:min(start+perInsert, len(rows))]
		args := make([]any, 0, len(chunk)*len(chunk[0]))
		for _, r := range chunk {
			args = append(args, r...)
		}
		if err := tx.Exec("INSERT INTO outbox ("+Columns+") VALUES "+db.Tuples("(?, ?, ?, ?, ?)", len(chunk)), args...).Error; err != nil {
			if db.IsUniqueViolation(err) {
				return fmt.Errorf("outbox: event id already added: %w", errs.Conflict)
			}
			return fmt.Errorf("outbox add: %w", err)
		}
	}
	return nil
}

// Columns are the outbox columns a producer writes, in the order of the
// values Values gives: for a producer that adds its events inside a
// statement of its own (a data-modifying CTE on PostgreSQL) rather than
// through Add.
const Columns = "event_id, stream, event_type, envelope, created_at"

// Values validates and encodes envs as outbox rows, one slice of values in
// Columns order per envelope, stamped now. Insert them in the order given:
// positions follow it, and so does publishing.
func Values(envs ...events.Envelope) ([][]any, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	rows := make([][]any, len(envs))
	for i, e := range envs {
		if err := e.Validate(); err != nil {
			return nil, err
		}
		raw, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("outbox: encode %s: %w", e.EventID, err)
		}
		rows[i] = []any{e.EventID, e.Stream, e.EventType, string(raw), now}
	}
	return rows, nil
}

// RelayOptions tune a Relay; zero values pick the defaults.
type RelayOptions struct {
	// Name is the producing context, the label of the backlog gauge.
	Name string
	// PollInterval is how often the relay looks without a Notify, for rows
	// committed by other processes or a Notify that was missed (200ms).
	PollInterval time.Duration
	// BatchSize is how many rows one publish takes (100).
	BatchSize int
	// Registry receives the outbox_backlog gauge; nil keeps it unexported.
	Registry *prometheus.Registry
	// Logger reports publish failures; nil uses slog.Default().
	Logger *slog.Logger
}

// Relay publishes one producer database's outbox to the bus.
type Relay struct {
	db      *gorm.DB
	dialect db.Dialect
	pub     events.Publisher
	o       RelayOptions
	log     *slog.Logger
	backlog prometheus.Gauge
	wake    chan struct{}
}

// NewRelay returns a relay for the outbox in gdb (already migrated with
// Migrations), publishing to pub. Start it with Run.
func NewRelay(gdb *gorm.DB, pub events.Publisher, o RelayOptions) (*Relay, error) {
	if pub == nil || o.Name == "" {
		return nil, fmt.Errorf("outbox relay needs a publisher and a name: %w", errs.Invalid)
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
		return nil, fmt.Errorf("outbox relay options must not be negative: %w", errs.Invalid)
	}
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "outbox_backlog", Help: "Outbox rows committed but not yet published, per producing context.",
	}, []string{"producer"})
	if o.Registry != nil {
		if err := o.Registry.Register(gauge); err != nil {
			// Every relay of the process shares the one family.
			var are prometheus.AlreadyRegisteredError
			existing, ok := (*prometheus.GaugeVec)(nil), false
			if errors.As(err, &are) {
				existing, ok = are.ExistingCollector.(*prometheus.GaugeVec)
			}
			if !ok {
				return nil, fmt.Errorf("register outbox metrics: %w", err)
			}
			gauge = existing
		}
	}
	return &Relay{
		db: gdb, dialect: db.DialectOf(gdb), pub: pub, o: o,
		log:     o.Logger.With("component", "outbox", "producer", o.Name),
		backlog: gauge.WithLabelValues(o.Name),
		wake:    make(chan struct{}, 1),
	}, nil
}

// Notify tells the relay that rows were just committed, so it publishes
// now instead of at the next poll. It never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is already pending; one is enough
	}
}

// Run relays until ctx ends, then returns nil. Publish failures are logged
// and retried with backoff; rows stay unpublished until a publish succeeds.
func (r *Relay) Run(ctx context.Context) error {
	failures := 0
	var lastMeasure time.Time
	for ctx.Err() == nil {
		n, drained, err := r.relayBatch(ctx)
		if ctx.Err() != nil {
			break
		}
		switch {
		case err == nil && drained:
			// Its read found every row there was: nothing to count.
			r.backlog.Set(0)
			lastMeasure = time.Now()
		case time.Since(lastMeasure) >= time.Second:
			// Measured on failures too (a growing backlog while the bus is
			// down is what the gauge is for), but at most once a second:
			// counting a large backlog after every batch would cost more
			// than relaying it.
			r.measure(ctx)
			lastMeasure = time.Now()
		}
		if err != nil {
			failures++
			r.log.Warn("outbox relay failed; retrying", "err", err, "failures", failures)
			wait := min(r.o.PollInterval<<min(failures, 6), 5*time.Second)
			sleep(ctx, wait, nil)
			continue
		}
		failures = 0
		if n == r.o.BatchSize {
			continue // more waiting: no pause
		}
		sleep(ctx, r.o.PollInterval, r.wake)
	}
	return nil
}

// sleep waits d, or until ctx ends or wake fires.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-t.C:
	}
}

// outboxRow is a row as the relay reads it.
type outboxRow struct {
	Position int64
	EventID  string
	Envelope string
}

// relayBatch publishes the oldest unpublished rows and deletes them. It
// returns how many rows it read, and whether its read left nothing
// unpublished (it held the relay lock and took every row there was).
func (r *Relay) relayBatch(ctx context.Context) (n int, drained bool, err error) {
	var rows []outboxRow
	if r.dialect != db.Postgres {
		// One process per SQLite file: no lock to take.
		q := r.db.WithContext(ctx)
		err := q.Raw(`SELECT position, event_id, envelope FROM outbox WHERE published_at IS NULL ORDER BY position LIMIT ?`,
			r.o.BatchSize).Scan(&rows).Error
		if err != nil {
			return 0, false, fmt.Errorf("read outbox: %w", err)
		}
		positions, err := r.publish(ctx, rows)
		if err != nil {
			return 0, false, err
		}
		if len(positions) > 0 {
			// Only now: a crash before this line republishes, never loses.
			if err := q.Exec(`DELETE FROM outbox WHERE position IN ?`, positions).Error; err != nil {
				return 0, false, fmt.Errorf("delete published outbox rows: %w", err)
			}
		}
		return len(rows), len(rows) < r.o.BatchSize && len(positions) == len(rows), nil
	}
	// On PostgreSQL, one relay per outbox at a time, across processes: a
	// transaction-scoped advisory lock, which a relay that dies releases.
	// The lock and the read go with the BEGIN in one round trip, as two
	// statements: the read must take its snapshot after the lock is
	// granted, or it could still see rows the lock's previous holder
	// deleted just before releasing it, and publish them a second time.
	// The DELETE goes with the COMMIT: two round trips a batch, the
	// publish between them.
	err = db.InPipeline(ctx, r.db, func(p *db.Pipeline) error {
		rows, n, drained = rows[:0], 0, false
		mine := false
		err := p.Send(
			db.Stmt{SQL: `SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.outbox_relay'))`,
				Scan: func(row db.RowScanner) error { return row.Scan(&mine) }},
			db.Stmt{SQL: `SELECT position, event_id, envelope FROM outbox WHERE published_at IS NULL ORDER BY position LIMIT ?`,
				Args: []any{r.o.BatchSize}, Scan: func(row db.RowScanner) error {
					var o outboxRow
					if err := row.Scan(&o.Position, &o.EventID, &o.Envelope); err != nil {
						return err
					}
					rows = append(rows, o)
					return nil
				}},
		)
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		if !mine {
			return nil // another relay's turn: what it read is not ours to publish
		}
		positions, err := r.publish(ctx, rows)
		if err != nil {
			return err
		}
		if len(positions) > 0 {
			// Only now: a crash before this commits republishes, never loses.
			p.Queue(`DELETE FROM outbox WHERE position = ANY(?)`, positions)
		}
		n, drained = len(rows), len(rows) < r.o.BatchSize && len(positions) == len(rows)
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("relay outbox batch: %w", err)
	}
	return n, drained, nil
}

// publish decodes rows and publishes them, and returns the positions of
// those published, for the caller to delete once the bus took them.
func (r *Relay) publish(ctx context.Context, rows []outboxRow) ([]int64, error) {
	envs := make([]events.Envelope, 0, len(rows))
	positions := make([]int64, 0, len(rows))
	for _, row := range rows {
		var env events.Envelope
		if err := json.Unmarshal([]byte(row.Envelope), &env); err != nil {
			// Add wrote valid JSON, so this row was edited by hand; leave
			// it for a human rather than stop every other event.
			r.log.Error("outbox row does not decode; skipped", "position", row.Position, "event_id", row.EventID, "err", err)
			continue
		}
		envs = append(envs, env)
		positions = append(positions, row.Position)
	}
	if len(envs) == 0 {
		return nil, nil
	}
	if err := r.pub.Publish(ctx, envs...); err != nil {
		return nil, fmt.Errorf("publish outbox: %w", err)
	}
	return positions, nil
}

// Backlog counts the rows not yet published.
func (r *Relay) Backlog(ctx context.Context) (int64, error) {
	var n int64
	err := db.ScanRow(r.db.WithContext(ctx).Raw(`SELECT COUNT(*) FROM outbox WHERE published_at IS NULL`), &n)
	return n, err
}

func (r *Relay) measure(ctx context.Context) {
	if n, err := r.Backlog(ctx); err == nil {
		r.backlog.Set(float64(n))
	}
}
