package notification

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/inbox"
	"github.com/retailco/pos/internal/platform/page"
)

// notificationRow is the notifications table; domain types carry no gorm
// tags, and in_flight never leaves the store.
type notificationRow struct {
	ID            string `gorm:"primaryKey"`
	EventID       string
	EventType     string
	EventName     string
	AggregateID   string
	RecipientID   string
	Recipient     string
	Channel       string
	Subject       string
	Body          string
	Status        string
	Attempts      int
	InFlight      bool
	Error         string `gorm:"column:error"`
	CorrelationID string
	CreatedAt     time.Time
	SentAt        *time.Time
}

// TableName names the table for gorm.
func (notificationRow) TableName() string { return "notifications" }

func (r notificationRow) domain() Notification {
	n := Notification{
		ID: r.ID, EventID: r.EventID, EventType: r.EventType, AggregateID: r.AggregateID,
		RecipientID: r.RecipientID, Recipient: r.Recipient, Channel: Channel(r.Channel),
		Subject: r.Subject, Body: r.Body, Status: Status(r.Status), Attempts: r.Attempts,
		Error: r.Error, CorrelationID: r.CorrelationID, CreatedAt: r.CreatedAt.UTC(),
	}
	if r.SentAt != nil {
		at := r.SentAt.UTC()
		n.SentAt = &at
	}
	return n
}

// claimRow is our own claim → customer projection.
type claimRow struct {
	ClaimID    string `gorm:"primaryKey"`
	CustomerID string
	CreatedAt  time.Time
}

// TableName names the table for gorm.
func (claimRow) TableName() string { return "notification_claims" }

type store struct {
	db *gorm.DB
	// oneStatement: the engine (PostgreSQL) takes a recording as one
	// statement of data-modifying CTEs, one round trip instead of a
	// transaction's four.
	oneStatement bool
}

// newStore is the consumer's store on gdb.
func newStore(gdb *gorm.DB) *store {
	return &store{db: gdb, oneStatement: db.DialectOf(gdb) == db.Postgres}
}

// eventRows are the notifications one event calls for.
type eventRows struct {
	eventID string
	rows    []notificationRow
}

// byEvent returns the rows the given events produced, in a stable order.
func (s *store) byEvent(ctx context.Context, eventIDs ...string) ([]notificationRow, error) {
	var rows []notificationRow
	if err := s.db.WithContext(ctx).Where("event_id IN ?", eventIDs).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("notifications of events %s: %w", strings.Join(eventIDs, ", "), err)
	}
	return rows, nil
}

// record writes, for every event of evs the inbox has not seen, its inbox
// entry and its rows, all events at once (one statement on PostgreSQL,
// one transaction on SQLite), and returns the ids of the events recorded
// now. The others are repeats: their rows, written by an earlier or a
// concurrent delivery, are in the table, and nothing of theirs is
// written again. Each event's entry and rows commit together, which is
// what makes the record exactly once.
func (s *store) record(ctx context.Context, evs []eventRows) (map[string]bool, error) {
	// Inbox keys taken in one order by every writer: two batches sharing
	// events (a reclaim) then wait for each other instead of deadlocking.
	evs = slices.Clone(evs)
	slices.SortFunc(evs, func(a, b eventRows) int { return strings.Compare(a.eventID, b.eventID) })
	var (
		first map[string]bool
		err   error
	)
	if s.oneStatement {
		first, err = s.recordInOneStatement(ctx, evs)
	} else {
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			ids := make([]string, len(evs))
			for i, e := range evs {
				ids[i] = e.eventID
			}
			recorded, err := inbox.OnceEach(tx, Group, ids)
			if err != nil {
				return err
			}
			first = recorded
			var rows []notificationRow
			for _, e := range evs {
				if first[e.eventID] {
					rows = append(rows, e.rows...)
				}
			}
			if len(rows) == 0 {
				return nil
			}
			return tx.Create(&rows).Error
		})
	}
	if err != nil {
		if db.IsUniqueViolation(err) && len(evs) == 1 {
			// Only a writer that bypassed the inbox (its entry pruned, then
			// the event delivered again) gets here; the rows it wanted
			// exist. With several events there is no telling which one
			// collided, so the error stands and the bus hands each event
			// to Handle alone.
			return map[string]bool{}, nil
		}
		return nil, fmt.Errorf("record notifications of %d events (%s…): %w", len(evs), evs[0].eventID, err)
	}
	return first, nil
}

// notificationColumns are the columns recordInOneStatement writes, in the
// order of notificationValues; the casts type the VALUES list, which
// PostgreSQL would otherwise read as text.
const notificationColumns = `id, event_id, event_type, event_name, aggregate_id, recipient_id, recipient, channel,
 subject, body, status, attempts, in_flight, error, correlation_id, created_at, sent_at`

const notificationValues = `(?::text, ?::text, ?::text, ?::text, ?::text, ?::text, ?::text, ?::text, ?::text, ?::text,
 ?::text, ?::integer, ?::boolean, ?::text, ?::text, ?::timestamptz, ?::timestamptz)`

// recordInOneStatement is record as one PostgreSQL statement: the inbox
// entries go in first (inbox.RecordStatement, what inbox.OnceEach runs),
// and only the rows of the events they answer are inserted. Two deliveries of one event serialise on the
// inbox key: the second waits for the first statement and then inserts
// nothing.
func (s *store) recordInOneStatement(ctx context.Context, evs []eventRows) (map[string]bool, error) {
	ids := make([]string, len(evs))
	var rows []notificationRow
	for i, e := range evs {
		ids[i] = e.eventID
		rows = append(rows, e.rows...)
	}
	record, args, err := inbox.RecordStatement(Group, ids, time.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return nil, err
	}
	var q strings.Builder
	q.WriteString(`WITH ins AS (` + record + `)`)
	if len(rows) > 0 {
		q.WriteString(`, n AS (INSERT INTO notifications (` + notificationColumns + `) SELECT v.* FROM (VALUES ` +
			db.Tuples(notificationValues, len(rows)) + `) AS v (` + notificationColumns + `) WHERE v.event_id IN (SELECT event_id FROM ins))`)
		for _, r := range rows {
			args = append(args, r.ID, r.EventID, r.EventType, r.EventName, r.AggregateID, r.RecipientID, r.Recipient,
				r.Channel, r.Subject, r.Body, r.Status, r.Attempts, r.InFlight, r.Error, r.CorrelationID, r.CreatedAt, r.SentAt)
		}
	}
	q.WriteString(` SELECT event_id FROM ins`)
	var recorded []string
	if err := s.db.WithContext(ctx).Raw(q.String(), args...).Scan(&recorded).Error; err != nil {
		return nil, err
	}
	return setOf(recorded), nil
}

// rememberClaim records who filed a claim; a repeat changes nothing.
func (s *store) rememberClaim(ctx context.Context, claimID, customerID string, at time.Time) error {
	err := s.db.WithContext(ctx).Exec(`INSERT INTO notification_claims (claim_id, customer_id, created_at)
		VALUES (?, ?, ?) ON CONFLICT (claim_id) DO NOTHING`, claimID, customerID, at).Error
	if err != nil {
		return fmt.Errorf("remember claim %s: %w", claimID, err)
	}
	return nil
}

// claimCustomer is the customer who filed claimID; errs.NotFound when its
// ClaimCreated has not been handled.
func (s *store) claimCustomer(ctx context.Context, claimID string) (string, error) {
	var row claimRow
	err := s.db.WithContext(ctx).Where("claim_id = ?", claimID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", fmt.Errorf("claim %s: %w", claimID, errs.NotFound)
	}
	if err != nil {
		return "", fmt.Errorf("claim %s: %w", claimID, err)
	}
	return row.CustomerID, nil
}

// claim takes the rows of ids that are pending and not in flight, for one
// send attempt each, in one statement, and returns the ids it took. The
// compare-and-set on in_flight is what lets only one consumer send a row;
// the claim commits before any send, so a crash during one leaves it
// visible.
func (s *store) claim(ctx context.Context, ids []string) (map[string]bool, error) {
	var taken []string
	err := s.db.WithContext(ctx).Raw(`UPDATE notifications SET attempts = attempts + 1, in_flight = ?
		WHERE id IN ? AND status = ? AND in_flight = ? RETURNING id`, true, ids, StatusPending, false).Scan(&taken).Error
	if err != nil {
		return nil, fmt.Errorf("claim %d notifications (%s…): %w", len(ids), ids[0], err)
	}
	return setOf(taken), nil
}

// unclaim hands back claimed rows that were never handed to the sender
// (shutdown, or a sender that panicked on an earlier row), with the
// claim's attempt: none was made.
func (s *store) unclaim(ctx context.Context, ids []string) error {
	err := s.db.WithContext(ctx).Exec(`UPDATE notifications SET attempts = attempts - 1, in_flight = ?
		WHERE id IN ? AND status = ? AND in_flight = ?`, false, ids, StatusPending, true).Error
	if err != nil {
		return fmt.Errorf("hand back %d notifications (%s…): %w", len(ids), ids[0], err)
	}
	return nil
}

// markSent records accepted sends, all in one statement, and returns the
// ids it changed. It does not require in_flight: if another consumer gave
// a row up as "outcome unknown" meanwhile, the truth (it was sent) wins.
func (s *store) markSent(ctx context.Context, ids []string, at time.Time) (map[string]bool, error) {
	var changed []string
	err := s.db.WithContext(ctx).Raw(`UPDATE notifications SET status = ?, in_flight = ?, sent_at = ?, error = ''
		WHERE id IN ? AND status <> ? RETURNING id`, StatusSent, false, at, ids, StatusSent).Scan(&changed).Error
	if err != nil {
		return nil, fmt.Errorf("mark %d notifications (%s…) sent: %w", len(ids), ids[0], err)
	}
	return setOf(changed), nil
}

// setOf is ids as a set.
func setOf(ids []string) map[string]bool {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// markFailed gives a pending row up with reason.
func (s *store) markFailed(ctx context.Context, id, reason string) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`UPDATE notifications SET status = ?, in_flight = ?, error = ?
		WHERE id = ? AND status = ?`, StatusFailed, false, reason, id, StatusPending)
	if res.Error != nil {
		return false, fmt.Errorf("mark notification %s failed: %w", id, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// release hands a row whose send was not accepted back for another
// attempt, keeping the reason.
func (s *store) release(ctx context.Context, id, reason string) error {
	err := s.db.WithContext(ctx).Exec(`UPDATE notifications SET in_flight = ?, error = ?
		WHERE id = ? AND status = ? AND in_flight = ?`, false, reason, id, StatusPending, true).Error
	if err != nil {
		return fmt.Errorf("release notification %s: %w", id, err)
	}
	return nil
}

// filtered applies f's conditions to a query on notifications.
func filtered(q *gorm.DB, f Filter) *gorm.DB {
	if f.Recipient != "" {
		q = q.Where("(recipient = ? OR recipient_id = ?)", f.Recipient, f.Recipient)
	}
	if f.EventType != "" {
		if strings.Contains(f.EventType, ".") {
			q = q.Where("event_type = ?", f.EventType)
		} else {
			q = q.Where("event_name = ?", f.EventType)
		}
	}
	if f.Status != "" {
		q = q.Where("status = ?", string(f.Status))
	}
	if f.Channel != "" {
		q = q.Where("channel = ?", string(f.Channel))
	}
	return q
}

func (s *store) list(ctx context.Context, f Filter) (page.Result[Notification], error) {
	q := filtered(s.db.WithContext(ctx).Model(&notificationRow{}), f)
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[Notification]{}, fmt.Errorf("count notifications: %w", err)
	}
	var rows []notificationRow
	if total > 0 {
		// Ids are UUIDv7, so id breaks ties between rows of one instant
		// in creation order.
		err := q.Order("created_at DESC, id DESC").Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error
		if err != nil {
			return page.Result[Notification]{}, fmt.Errorf("list notifications: %w", err)
		}
	}
	out := make([]Notification, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return page.Result[Notification]{Items: out, Total: total}, nil
}

func (s *store) stats(ctx context.Context) (Stats, error) {
	st := Stats{ByStatus: map[string]int64{}, ByChannel: map[string]int64{}, ByEventType: map[string]int64{}}
	for _, g := range []struct {
		column string
		into   map[string]int64
	}{{"status", st.ByStatus}, {"channel", st.ByChannel}, {"event_type", st.ByEventType}} {
		var rows []struct {
			Grp string
			N   int64
		}
		// The column names are constants above, never input.
		err := s.db.WithContext(ctx).Raw(`SELECT ` + g.column + ` AS grp, COUNT(*) AS n FROM notifications GROUP BY ` + g.column).Scan(&rows).Error
		if err != nil {
			return Stats{}, fmt.Errorf("notification stats by %s: %w", g.column, err)
		}
		for _, r := range rows {
			g.into[r.Grp] = r.N
		}
	}
	for _, n := range st.ByStatus {
		st.Total += n
	}
	return st, nil
}
