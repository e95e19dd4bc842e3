package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
)

// sagaRow is the sagas table. The engine works on it directly: it is the
// saga's whole persistent state, and every change to it is one
// version-checked write.
type sagaRow struct {
	ID            string `gorm:"primaryKey"`
	Kind          string
	Status        string
	Version       int
	CustomerID    string
	SessionID     string
	LocationID    string
	ReservationID string
	PaymentID     string
	OrderID       string
	TotalCents    int64
	Currency      string
	Data          string
	PaymentToken  string
	FailedStep    string
	Error         string
	ErrorKind     string
	ErrorStatus   int
	LockKey       *string
	Owner         string
	LeaseUntil    *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
	FinishedAt    *time.Time
}

func (sagaRow) TableName() string { return "sagas" }

// mutable are the columns a saga write may change.
var mutable = []string{"status", "version", "reservation_id", "payment_id", "order_id", "total_cents", "currency",
	"data", "payment_token", "failed_step", "error", "error_kind", "error_status", "lock_key", "owner",
	"lease_until", "updated_at", "finished_at"}

// stepRow is the saga_steps table.
type stepRow struct {
	SagaID       string `gorm:"primaryKey"`
	Seq          int    `gorm:"primaryKey"`
	Step         string
	Compensation bool
	Status       string
	Attempts     int
	Request      string
	Response     string
	Error        string
	ErrorKind    string
	StartedAt    time.Time
	AttemptedAt  time.Time
	FinishedAt   *time.Time
}

func (stepRow) TableName() string { return "saga_steps" }

// keyRow is the checkout_keys table.
type keyRow struct {
	Scope       string `gorm:"primaryKey"`
	IdemKey     string `gorm:"primaryKey"`
	RequestHash string
	SagaID      string
	CreatedAt   time.Time
}

func (keyRow) TableName() string { return "checkout_keys" }

func (r sagaRow) domain(steps []stepRow, now time.Time) Saga {
	s := Saga{
		ID: r.ID, Kind: r.Kind, Status: r.Status, CustomerID: r.CustomerID, SessionID: r.SessionID,
		LocationID: r.LocationID, ReservationID: r.ReservationID, PaymentID: r.PaymentID, OrderID: r.OrderID,
		TotalCents: r.TotalCents, Currency: r.Currency, FailedStep: r.FailedStep, Error: r.Error,
		ErrorKind: r.ErrorKind, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		Steps: []SagaStep{}, Compensations: []SagaStep{},
	}
	end := now
	if r.FinishedAt != nil {
		f := r.FinishedAt.UTC()
		s.FinishedAt, end = &f, f
	}
	s.DurationMS = end.Sub(s.CreatedAt).Milliseconds()
	for _, st := range steps {
		d := st.domain()
		if d.Compensation {
			s.Compensations = append(s.Compensations, d)
		} else {
			s.Steps = append(s.Steps, d)
		}
	}
	return s
}

func (r stepRow) domain() SagaStep {
	s := SagaStep{
		Seq: r.Seq, Step: r.Step, Compensation: r.Compensation, Status: r.Status, Attempts: r.Attempts,
		Request: rawJSON(r.Request), Response: rawJSON(r.Response), Error: r.Error, ErrorKind: r.ErrorKind,
		StartedAt: r.StartedAt.UTC(),
	}
	end := r.AttemptedAt
	if r.FinishedAt != nil {
		f := r.FinishedAt.UTC()
		s.FinishedAt, end = &f, f
	}
	s.DurationMS = end.Sub(r.StartedAt).Milliseconds()
	return s
}

func rawJSON(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

type store struct{ db *gorm.DB }

var (
	// errLostLease: the saga's version or owner is not what this
	// orchestrator wrote last; another one drives it now.
	errLostLease = errors.New("saga: lease lost to another orchestrator")
	// errKeyTaken: the idempotency key is already used in its scope.
	errKeyTaken = errors.New("saga: idempotency key taken")
	// errLocked: another live saga holds the lock key (the cart is being
	// checked out, the order is being cancelled).
	errLocked = errors.New("saga: lock key taken")
)

// insert writes a new saga and, when the caller gave one, its idempotency
// key, in one transaction. The saga goes first: two requests with the same
// key and body race on the saga's lock key and the loser, once the winner
// commits, finds the key and replays.
func (s *store) insert(ctx context.Context, row sagaRow, key *keyRow) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			if db.IsUniqueViolation(err) {
				return errLocked
			}
			return fmt.Errorf("insert saga: %w", err)
		}
		if key != nil {
			if err := tx.Create(key).Error; err != nil {
				if db.IsUniqueViolation(err) {
					return errKeyTaken
				}
				return fmt.Errorf("insert idempotency key: %w", err)
			}
		}
		return nil
	})
	return err
}

func (s *store) key(ctx context.Context, scope, key string) (keyRow, error) {
	var row keyRow
	err := s.db.WithContext(ctx).Where("scope = ? AND idem_key = ?", scope, key).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return keyRow{}, fmt.Errorf("idempotency key: %w", errs.NotFound)
	}
	if err != nil {
		return keyRow{}, fmt.Errorf("get idempotency key: %w", err)
	}
	return row, nil
}

func (s *store) load(ctx context.Context, id string) (sagaRow, error) {
	var row sagaRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return sagaRow{}, fmt.Errorf("saga %q: %w", id, errs.NotFound)
	}
	if err != nil {
		return sagaRow{}, fmt.Errorf("get saga: %w", err)
	}
	return row, nil
}

// byLock finds the live saga holding a lock key.
func (s *store) byLock(ctx context.Context, lockKey string) (sagaRow, error) {
	var row sagaRow
	err := s.db.WithContext(ctx).Where("lock_key = ?", lockKey).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return sagaRow{}, fmt.Errorf("saga holding %q: %w", lockKey, errs.NotFound)
	}
	if err != nil {
		return sagaRow{}, fmt.Errorf("get saga by lock: %w", err)
	}
	return row, nil
}

func (s *store) steps(ctx context.Context, id string) ([]stepRow, error) {
	var rows []stepRow
	if err := s.db.WithContext(ctx).Where("saga_id = ?", id).Order("seq").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("get saga steps: %w", err)
	}
	return rows, nil
}

// claim makes owner the driver of an unfinished saga whose lease is free:
// expired, never set, or already owner's (the same orchestrator,
// restarted). It bumps the version so a previous driver's next write
// fails.
func (s *store) claim(ctx context.Context, id, owner string, leaseUntil, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&sagaRow{}).
		Where("id = ? AND finished_at IS NULL AND (owner = ? OR owner = '' OR lease_until IS NULL OR lease_until < ?)", id, owner, now).
		Updates(map[string]any{"owner": owner, "lease_until": leaseUntil, "version": gorm.Expr("version + 1"), "updated_at": now})
	if res.Error != nil {
		return false, fmt.Errorf("claim saga %s: %w", id, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// save writes the saga's mutable columns, conditional on the version this
// orchestrator read and on its ownership; row.Version moves on.
func saveTx(tx *gorm.DB, row *sagaRow, owner string) error {
	var was string
	if row.Kind == KindCheckout && Final(row.Status) {
		if err := tx.Raw(`SELECT status FROM sagas WHERE id = ?`, row.ID).Scan(&was).Error; err != nil {
			return fmt.Errorf("read saga %s: %w", row.ID, err)
		}
	}
	prev := row.Version
	row.Version++
	res := tx.Model(&sagaRow{}).Where("id = ? AND version = ? AND owner = ?", row.ID, prev, owner).Select(mutable).Updates(row)
	if res.Error != nil {
		row.Version = prev
		return fmt.Errorf("update saga %s: %w", row.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		row.Version = prev
		return errLostLease
	}
	if row.Kind == KindCheckout && Final(row.Status) && !Final(was) {
		return publishOutcome(tx, row) // exactly once: only the write that makes it final
	}
	return nil
}

func (s *store) save(ctx context.Context, row *sagaRow, owner string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return saveTx(tx, row, owner) })
}

// saveWithStep writes the saga and one of its steps in one transaction:
// a step's outcome and the state it leads to are recorded together, so a
// crash can never leave a step done and the saga not knowing it. A new
// step is inserted (its Seq given by the caller, who knows the saga's
// steps: only the lease holder writes them, and a stale number fails on
// the primary key), an existing one updated.
func (s *store) saveWithStep(ctx context.Context, row *sagaRow, owner string, st *stepRow, insert bool) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := saveTx(tx, row, owner); err != nil {
			return err
		}
		if insert {
			if err := tx.Create(st).Error; err != nil {
				return fmt.Errorf("insert saga step: %w", err)
			}
			return nil
		}
		err := tx.Model(&stepRow{}).Where("saga_id = ? AND seq = ?", st.SagaID, st.Seq).
			Select("status", "attempts", "request", "response", "error", "error_kind", "attempted_at", "finished_at").
			Updates(st).Error
		if err != nil {
			return fmt.Errorf("update saga step: %w", err)
		}
		return nil
	})
}

func (s *store) list(ctx context.Context, f Filter) (page.Result[sagaRow], error) {
	q := s.db.WithContext(ctx).Model(&sagaRow{})
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Kind != "" {
		q = q.Where("kind = ?", f.Kind)
	}
	if f.CustomerID != "" {
		q = q.Where("customer_id = ?", f.CustomerID)
	}
	if f.OrderID != "" {
		q = q.Where("order_id = ?", f.OrderID)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[sagaRow]{}, fmt.Errorf("count sagas: %w", err)
	}
	var rows []sagaRow
	if total > 0 {
		if err := q.Order("created_at DESC, id DESC").Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error; err != nil {
			return page.Result[sagaRow]{}, fmt.Errorf("list sagas: %w", err)
		}
	}
	return page.Result[sagaRow]{Items: rows, Total: total}, nil
}

// unfinished lists sagas not in a final state, oldest first, with the
// lease columns Resume needs to decide which it may claim.
func (s *store) unfinished(ctx context.Context, limit int) ([]sagaRow, error) {
	var rows []sagaRow
	err := s.db.WithContext(ctx).Select("id", "owner", "lease_until").Where("finished_at IS NULL").
		Order("created_at, id").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list unfinished sagas: %w", err)
	}
	return rows, nil
}
