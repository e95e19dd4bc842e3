// Package inbox makes event consumers idempotent. The bus delivers at least
// once: after a crash between a handler's commit and its ack, the same
// event comes again. A consumer that records the event id in the same
// transaction as its own writes (Once) turns that second delivery into a
// no-op, so the effect happens exactly once.
//
// The table lives in the consumer's own database, as the migration set
// "inbox", which db.Migrate applies to every context's database.
package inbox

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
)

// Migrations creates processed_events(consumer, event_id, processed_at);
// it lives in package db, which applies it to every context's database.
var Migrations = db.InboxMigrations

// Set is the migration set name the table is recorded under.
const Set = db.InboxSet

// Once records that consumer processed eventID and reports whether this is
// the first time. Call it first inside the transaction that applies the
// event and skip the work when first is false; because the record commits
// or rolls back with that work, a failed attempt leaves no trace and a
// successful one cannot be repeated.
//
// On PostgreSQL two concurrent deliveries of one event serialise on the
// primary key: the second waits for the first transaction and then sees
// first == false (or true, if the first rolled back).
func Once(tx *gorm.DB, consumer, eventID string) (first bool, err error) {
	if consumer == "" || eventID == "" {
		return false, fmt.Errorf("inbox: consumer and event id are required: %w", errs.Invalid)
	}
	res := tx.Exec(`INSERT INTO processed_events (consumer, event_id, processed_at) VALUES (?, ?, ?)
		ON CONFLICT (consumer, event_id) DO NOTHING`, consumer, eventID, time.Now().UTC().Truncate(time.Microsecond))
	if res.Error != nil {
		return false, fmt.Errorf("inbox %s %s: %w", consumer, eventID, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// onceChunk bounds the rows of one OnceEach statement (3 parameters each),
// well under both engines' limits on bound parameters.
const onceChunk = 500

// OnceEach is Once for several events in one statement per 500: it
// records every id of eventIDs not yet processed by consumer and returns
// the set of those it recorded now, the ones whose work the caller must
// do in tx. An id given twice is recorded (and returned) once.
func OnceEach(tx *gorm.DB, consumer string, eventIDs []string) (first map[string]bool, err error) {
	first = make(map[string]bool, len(eventIDs))
	now := time.Now().UTC().Truncate(time.Microsecond)
	for start := 0; start < len(eventIDs); start += onceChunk {
		chunk := eventIDs[start:min(start+onceChunk, len(eventIDs))]
		q, args, err := RecordStatement(consumer, chunk, now)
		if err != nil {
			return nil, err
		}
		var recorded []string
		if err := tx.Raw(q, args...).Scan(&recorded).Error; err != nil {
			return nil, fmt.Errorf("inbox %s: %d events: %w", consumer, len(chunk), err)
		}
		for _, id := range recorded {
			first[id] = true
		}
	}
	return first, nil
}

// RecordStatement is the statement OnceEach runs for one chunk, for a
// consumer that records its events inside a statement of its own (a
// data-modifying CTE on PostgreSQL): it records eventIDs (at most 500) for
// consumer at at, and answers, as event_id, those recorded now. The
// placeholders are "?".
func RecordStatement(consumer string, eventIDs []string, at time.Time) (string, []any, error) {
	if consumer == "" {
		return "", nil, fmt.Errorf("inbox: consumer is required: %w", errs.Invalid)
	}
	args := make([]any, 0, 3*len(eventIDs))
	for _, id := range eventIDs {
		if id == "" {
			return "", nil, fmt.Errorf("inbox: event id is required: %w", errs.Invalid)
		}
		args = append(args, consumer, id, at)
	}
	return `INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ` + db.Tuples("(?, ?, ?)", len(eventIDs)) +
		` ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id`, args, nil
}

// Prune forgets events processed more than olderThan ago, so the table does
// not grow forever. olderThan must exceed the longest time a message can
// wait for redelivery (the bus retention, 24h by default): an event pruned
// and then redelivered would be applied again.
func Prune(ctx context.Context, gdb *gorm.DB, olderThan time.Duration) (int64, error) {
	if olderThan <= 0 {
		return 0, fmt.Errorf("inbox prune: olderThan must be positive: %w", errs.Invalid)
	}
	res := gdb.WithContext(ctx).Exec(`DELETE FROM processed_events WHERE processed_at < ?`,
		time.Now().UTC().Add(-olderThan).Truncate(time.Microsecond))
	if res.Error != nil {
		return 0, fmt.Errorf("inbox prune: %w", res.Error)
	}
	return res.RowsAffected, nil
}
