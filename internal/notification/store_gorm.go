package notification

import (
	"context"
	"errors"
	"fmt"
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

type store struct{ db *gorm.DB }

// byEvent returns the rows an event produced, in a stable order.
func (s *store) byEvent(ctx context.Context, eventID string) ([]notificationRow, error) {
	var rows []notificationRow
	if err := s.db.WithContext(ctx).Where("event_id = ?", eventID).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("notifications of event %s: %w", eventID, err)
	}
	return rows, nil
}

// record writes the rows of a first delivery in one transaction with the
// inbox entry; on a repeat (the inbox already has the event) it writes
// nothing and reports false.
func (s *store) record(ctx context.Context, eventID string, rows []notificationRow) (bool, error) {
	var first bool
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if first, err = inbox.Once(tx, Group, eventID); err != nil || !first {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		return tx.Create(&rows).Error
	})
	if err != nil {
		if db.IsUniqueViolation(err) {
			// Only a second writer that bypassed the inbox gets here; the
			// rows it wanted exist.
			return false, nil
		}
		return false, fmt.Errorf("record notifications of event %s: %w", eventID, err)
	}
	return first, nil
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

// begin claims a pending row for one send attempt: the compare-and-set on
// in_flight is what lets only one consumer send it. The claim commits
// before the send, so a crash during the send leaves it visible.
func (s *store) begin(ctx context.Context, id string) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`UPDATE notifications SET attempts = attempts + 1, in_flight = ?
		WHERE id = ? AND status = ? AND in_flight = ?`, true, id, StatusPending, false)
	if res.Error != nil {
		return false, fmt.Errorf("claim notification %s: %w", id, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// markSent records an accepted send. It does not require in_flight: if
// another consumer gave the row up as "outcome unknown" meanwhile, the
// truth (it was sent) wins.
func (s *store) markSent(ctx context.Context, id string, at time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`UPDATE notifications SET status = ?, in_flight = ?, sent_at = ?, error = ''
		WHERE id = ? AND status <> ?`, StatusSent, false, at, id, StatusSent)
	if res.Error != nil {
		return false, fmt.Errorf("mark notification %s sent: %w", id, res.Error)
	}
	return res.RowsAffected == 1, nil
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
