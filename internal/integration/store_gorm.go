package integration

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/errs"
)

// Row states of the enrichments table.
const (
	statePending = "pending"
	stateDone    = "done"
	stateFailed  = "failed"
)

// enrichmentRow is one pending (or finished) enrichment; domain types never
// carry gorm tags.
type enrichmentRow struct {
	ClaimID    string `gorm:"primaryKey"`
	OrderID    string
	CustomerID string
	Verified   bool
	State      string
	Outcome    string
	Attempts   int
	LastError  string
	LeaseUntil *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt *time.Time
}

func (enrichmentRow) TableName() string { return "enrichments" }

type store struct{ db *gorm.DB }

// insert records a pending enrichment.
func (s *store) insert(ctx context.Context, r enrichmentRow) error {
	if err := s.db.WithContext(ctx).Create(&r).Error; err != nil {
		return dbErr("record pending enrichment of "+r.ClaimID, err)
	}
	return nil
}

// remove deletes a pending record whose claim was surely not created.
func (s *store) remove(ctx context.Context, claimID string) error {
	err := s.db.WithContext(ctx).Where("claim_id = ? AND state = ?", claimID, statePending).Delete(&enrichmentRow{}).Error
	if err != nil {
		return dbErr("remove pending enrichment of "+claimID, err)
	}
	return nil
}

// due lists up to limit pending rows nobody holds, oldest first.
func (s *store) due(ctx context.Context, now time.Time, limit int) ([]enrichmentRow, error) {
	var rows []enrichmentRow
	err := s.db.WithContext(ctx).
		Where("state = ? AND (lease_until IS NULL OR lease_until < ?)", statePending, now).
		Order("created_at, claim_id").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, dbErr("list pending enrichments", err)
	}
	return rows, nil
}

// lease takes the row for this process until until; false when another
// round took it first or it is no longer pending. The conditional update
// is the arbiter: of two rounds racing, one changes the row.
func (s *store) lease(ctx context.Context, claimID string, now, until time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&enrichmentRow{}).
		Where("claim_id = ? AND state = ? AND (lease_until IS NULL OR lease_until < ?)", claimID, statePending, now).
		Updates(map[string]any{"lease_until": until, "attempts": gorm.Expr("attempts + 1"), "updated_at": now})
	if res.Error != nil {
		return false, dbErr("lease enrichment of "+claimID, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// release gives the row back for a later round, noting why it could not
// finish now: due at once when until is nil, else not before until.
func (s *store) release(ctx context.Context, claimID, why string, now time.Time, until *time.Time) error {
	err := s.db.WithContext(ctx).Model(&enrichmentRow{}).
		Where("claim_id = ? AND state = ?", claimID, statePending).
		Updates(map[string]any{"lease_until": until, "last_error": truncate(why, 500), "updated_at": now}).Error
	if err != nil {
		return dbErr("release enrichment of "+claimID, err)
	}
	return nil
}

// finish closes the row as done or failed, with the outcome that closed it.
func (s *store) finish(ctx context.Context, claimID, state, outcome, why string, now time.Time) error {
	err := s.db.WithContext(ctx).Model(&enrichmentRow{}).
		Where("claim_id = ? AND state = ?", claimID, statePending).
		Updates(map[string]any{"state": state, "outcome": outcome, "last_error": truncate(why, 500),
			"lease_until": nil, "updated_at": now, "finished_at": now}).Error
	if err != nil {
		return dbErr("finish enrichment of "+claimID, err)
	}
	return nil
}

// get reads one row (tests and diagnostics).
func (s *store) get(ctx context.Context, claimID string) (enrichmentRow, bool, error) {
	var rows []enrichmentRow
	if err := s.db.WithContext(ctx).Where("claim_id = ?", claimID).Limit(1).Find(&rows).Error; err != nil {
		return enrichmentRow{}, false, dbErr("get enrichment of "+claimID, err)
	}
	if len(rows) == 0 {
		return enrichmentRow{}, false, nil
	}
	return rows[0], true, nil
}

// counts returns how many rows are pending and failed.
func (s *store) counts(ctx context.Context) (pending, failed int64, err error) {
	type count struct {
		State string
		N     int64
	}
	var cs []count
	err = s.db.WithContext(ctx).Model(&enrichmentRow{}).Select("state, COUNT(*) AS n").
		Where("state IN ?", []string{statePending, stateFailed}).Group("state").Scan(&cs).Error
	if err != nil {
		return 0, 0, dbErr("count enrichments", err)
	}
	for _, c := range cs {
		switch c.State {
		case statePending:
			pending = c.N
		case stateFailed:
			failed = c.N
		}
	}
	return pending, failed, nil
}

// truncate keeps at most n bytes of s, cut on a character boundary
// (PostgreSQL refuses half a UTF-8 sequence).
// dbErr wraps a failure of this context's own database: for a caller the
// context is unavailable, which is what the error says (not a bug, 500).
func dbErr(what string, err error) error {
	return fmt.Errorf("%s: %w (%v)", what, errs.Unavailable, err)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := 0
	for i := range s {
		if i > n {
			break
		}
		cut = i
	}
	return s[:cut]
}
