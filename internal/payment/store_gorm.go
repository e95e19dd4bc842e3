package payment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
)

// paymentRow is the payments table; domain types never carry gorm tags.
type paymentRow struct {
	ID                string `gorm:"primaryKey"`
	TransactionID     string
	OrderID           string
	CustomerID        string
	Status            string
	AmountCents       int64
	RefundedCents     int64
	Currency          string
	Method            string
	TokenHash         string
	AuthorizationCode string
	ChargeRef         string
	FailureReason     string
	// Attempts numbers the gateway attempts; completing or taking over an
	// attempt is conditional on it, so a stale owner cannot overwrite the
	// outcome of a newer one.
	Attempts int
	// LeaseExpiresAt is when a pending row's owner is presumed dead.
	LeaseExpiresAt *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

func (paymentRow) TableName() string { return "payments" }

func (r paymentRow) domain() Payment {
	return Payment{
		ID: r.ID, TransactionID: r.TransactionID, OrderID: r.OrderID, CustomerID: r.CustomerID,
		Status: Status(r.Status), AmountCents: r.AmountCents, RefundedCents: r.RefundedCents,
		Currency: r.Currency, Method: r.Method, AuthorizationCode: r.AuthorizationCode,
		FailureReason: r.FailureReason, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

// refundRow is the refunds table.
type refundRow struct {
	ID             string `gorm:"primaryKey"`
	RefundID       string
	PaymentID      string
	AmountCents    int64
	Currency       string
	Reason         string
	Status         string
	RefundRef      string
	FailureReason  string
	Attempts       int
	LeaseExpiresAt *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

func (refundRow) TableName() string { return "refunds" }

func (r refundRow) domain() Refund {
	return Refund{
		ID: r.ID, RefundID: r.RefundID, PaymentID: r.PaymentID, AmountCents: r.AmountCents,
		Currency: r.Currency, Reason: r.Reason, Status: RefundStatus(r.Status),
		FailureReason: r.FailureReason, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

type store struct{ db *gorm.DB }

// errDuplicate says an idempotency key (transaction id, refund id) is
// already in the table: the caller turns it into a replay or a conflict.
var errDuplicate = errors.New("duplicate idempotency key")

// insertPayment writes the pending row that makes its writer the owner of
// the charge. It commits on its own, before the gateway is called, so that
// every concurrent duplicate sees it.
func (s *store) insertPayment(ctx context.Context, r paymentRow) error {
	if err := s.db.WithContext(ctx).Create(&r).Error; err != nil {
		if db.IsUniqueViolation(err) {
			return errDuplicate
		}
		return fmt.Errorf("insert payment: %w", err)
	}
	return nil
}

func (s *store) payment(ctx context.Context, id string) (paymentRow, error) {
	return findPayment(s.db.WithContext(ctx), "id = ?", id)
}

func (s *store) paymentByTransaction(ctx context.Context, transactionID string) (paymentRow, error) {
	return findPayment(s.db.WithContext(ctx), "transaction_id = ?", transactionID)
}

func findPayment(q *gorm.DB, cond, arg string) (paymentRow, error) {
	var row paymentRow
	err := q.Where(cond, arg).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return paymentRow{}, fmt.Errorf("payment %q: %w", arg, errs.NotFound)
	}
	if err != nil {
		return paymentRow{}, fmt.Errorf("get payment: %w", err)
	}
	return row, nil
}

// claimPayment makes the caller the owner of a new attempt on a failed
// payment, or on a pending one whose owner's lease ran out. The attempt
// counter is the guard: of several callers that read the same row, one
// moves it on, the others see zero rows affected.
func (s *store) claimPayment(ctx context.Context, id string, attempts int, lease, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`UPDATE payments
		SET status = ?, attempts = attempts + 1, lease_expires_at = ?, failure_reason = '', updated_at = ?
		WHERE id = ? AND attempts = ? AND status IN (?, ?)`,
		string(StatusPending), lease, now, id, attempts, string(StatusPending), string(StatusFailed))
	if res.Error != nil {
		return false, fmt.Errorf("claim payment %s: %w", id, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// chargeOutcome is what an attempt learned from the gateway.
type chargeOutcome struct {
	status            Status
	authorizationCode string
	chargeRef         string
	failureReason     string
}

// completePayment records an attempt's outcome, if the attempt is still
// the current one (false otherwise: a retry took over after the lease ran
// out, and its outcome is the one that counts).
func (s *store) completePayment(ctx context.Context, id string, attempts int, o chargeOutcome, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`UPDATE payments
		SET status = ?, authorization_code = ?, charge_ref = ?, failure_reason = ?, lease_expires_at = NULL, updated_at = ?
		WHERE id = ? AND attempts = ? AND status = ?`,
		string(o.status), o.authorizationCode, o.chargeRef, o.failureReason, now, id, attempts, string(StatusPending))
	if res.Error != nil {
		return false, fmt.Errorf("complete payment %s: %w", id, res.Error)
	}
	return res.RowsAffected == 1, nil
}

func (s *store) listPayments(ctx context.Context, f Filter) (page.Result[Payment], error) {
	q := s.db.WithContext(ctx).Model(&paymentRow{})
	if f.OrderID != "" {
		q = q.Where("order_id = ?", f.OrderID)
	}
	if f.CustomerID != "" {
		q = q.Where("customer_id = ?", f.CustomerID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", string(f.Status))
	}
	if f.TransactionID != "" {
		q = q.Where("transaction_id = ?", f.TransactionID)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[Payment]{}, fmt.Errorf("count payments: %w", err)
	}
	var rows []paymentRow
	if total > 0 {
		err := q.Order("created_at DESC, id DESC").Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error
		if err != nil {
			return page.Result[Payment]{}, fmt.Errorf("list payments: %w", err)
		}
	}
	out := make([]Payment, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return page.Result[Payment]{Items: out, Total: total}, nil
}

// insertRefund writes a pending refund and reserves its amount on the
// payment, in one transaction: either both happen or neither. The
// reservation is the one conditional UPDATE that keeps refunds within the
// captured amount under any concurrency: PostgreSQL re-checks the WHERE
// clause on the row version it waited for, SQLite runs writers one at a
// time. It returns the payment as reserved, for the gateway call.
func (s *store) insertRefund(ctx context.Context, r *refundRow) (paymentRow, error) {
	var pay paymentRow
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if pay, err = findPayment(tx, "id = ?", r.PaymentID); err != nil {
			return err
		}
		r.Currency = pay.Currency
		if err := tx.Create(r).Error; err != nil {
			if db.IsUniqueViolation(err) {
				return errDuplicate
			}
			return fmt.Errorf("insert refund: %w", err)
		}
		pay, err = reserve(tx, r.PaymentID, r.AmountCents, r.UpdatedAt)
		return err
	})
	return pay, err
}

// reserve adds amount to the payment's refunded_cents if it stays within
// the captured amount, and moves the status to partially_refunded or
// refunded in the same statement.
func reserve(tx *gorm.DB, paymentID string, amount int64, now time.Time) (paymentRow, error) {
	res := tx.Exec(`UPDATE payments
		SET refunded_cents = refunded_cents + ?,
		    status = CASE WHEN refunded_cents + ? = amount_cents THEN ? ELSE ? END,
		    updated_at = ?
		WHERE id = ? AND status IN (?, ?, ?) AND refunded_cents + ? <= amount_cents`,
		amount, amount, string(StatusRefunded), string(StatusPartiallyRefunded), now,
		paymentID, string(StatusCaptured), string(StatusPartiallyRefunded), string(StatusRefunded), amount)
	if res.Error != nil {
		return paymentRow{}, fmt.Errorf("reserve refund on payment %s: %w", paymentID, res.Error)
	}
	pay, err := findPayment(tx, "id = ?", paymentID)
	if err != nil {
		return paymentRow{}, err
	}
	if res.RowsAffected == 1 {
		return pay, nil
	}
	// Nothing was reserved: say why, from the row as it is now.
	if !Status(pay.Status).Captured() {
		return paymentRow{}, fmt.Errorf("payment %s is %s; only a captured payment can be refunded: %w", paymentID, pay.Status, errs.Conflict)
	}
	return paymentRow{}, fmt.Errorf("refund of %d exceeds the %d not yet refunded on payment %s: %w",
		amount, pay.AmountCents-pay.RefundedCents, paymentID, errs.Conflict)
}

// release gives a failed refund's reservation back to the payment.
func release(tx *gorm.DB, paymentID string, amount int64, now time.Time) error {
	res := tx.Exec(`UPDATE payments
		SET refunded_cents = refunded_cents - ?,
		    status = CASE WHEN refunded_cents - ? = 0 THEN ? ELSE ? END,
		    updated_at = ?
		WHERE id = ? AND refunded_cents >= ?`,
		amount, amount, string(StatusCaptured), string(StatusPartiallyRefunded), now, paymentID, amount)
	if res.Error != nil {
		return fmt.Errorf("release refund on payment %s: %w", paymentID, res.Error)
	}
	if res.RowsAffected != 1 {
		// A reservation is only released once (the refund's status guards
		// it), so this is a broken invariant, not a user error.
		return fmt.Errorf("release %d on payment %s: less than that is reserved", amount, paymentID)
	}
	return nil
}

func (s *store) refundByRefundID(ctx context.Context, refundID string) (refundRow, error) {
	var row refundRow
	err := s.db.WithContext(ctx).Where("refund_id = ?", refundID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return refundRow{}, fmt.Errorf("refund %q: %w", refundID, errs.NotFound)
	}
	if err != nil {
		return refundRow{}, fmt.Errorf("get refund: %w", err)
	}
	return row, nil
}

// claimRefund makes the caller the owner of a new attempt on a refund:
// a failed one (whose reservation was released, so it reserves again, and
// may find the money gone: errs.Conflict) or a pending one whose owner's
// lease ran out (still reserved). Like claimPayment, the attempt counter
// lets exactly one of several claimants through.
func (s *store) claimRefund(ctx context.Context, r refundRow, lease, now time.Time) (paymentRow, bool, error) {
	var (
		pay paymentRow
		won bool
	)
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE refunds
			SET status = ?, attempts = attempts + 1, lease_expires_at = ?, failure_reason = '', updated_at = ?
			WHERE id = ? AND attempts = ? AND status = ?`,
			string(RefundPending), lease, now, r.ID, r.Attempts, r.Status)
		if res.Error != nil {
			return fmt.Errorf("claim refund %s: %w", r.ID, res.Error)
		}
		if res.RowsAffected == 0 {
			return nil
		}
		won = true
		var err error
		if RefundStatus(r.Status) == RefundFailed {
			pay, err = reserve(tx, r.PaymentID, r.AmountCents, now)
			return err
		}
		pay, err = findPayment(tx, "id = ?", r.PaymentID)
		return err
	})
	if err != nil {
		return paymentRow{}, false, err
	}
	return pay, won, nil
}

// completeRefund records a successful attempt, if it is still the current
// one.
func (s *store) completeRefund(ctx context.Context, r refundRow, refundRef string, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`UPDATE refunds
		SET status = ?, refund_ref = ?, lease_expires_at = NULL, updated_at = ?
		WHERE id = ? AND attempts = ? AND status = ?`,
		string(RefundSucceeded), refundRef, now, r.ID, r.Attempts, string(RefundPending))
	if res.Error != nil {
		return false, fmt.Errorf("complete refund %s: %w", r.ID, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// failRefund records a failed attempt and releases its reservation, in one
// transaction, if the attempt is still the current one.
func (s *store) failRefund(ctx context.Context, r refundRow, reason string, now time.Time) (bool, error) {
	won := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE refunds
			SET status = ?, failure_reason = ?, lease_expires_at = NULL, updated_at = ?
			WHERE id = ? AND attempts = ? AND status = ?`,
			string(RefundFailed), reason, now, r.ID, r.Attempts, string(RefundPending))
		if res.Error != nil {
			return fmt.Errorf("fail refund %s: %w", r.ID, res.Error)
		}
		if res.RowsAffected == 0 {
			return nil
		}
		won = true
		return release(tx, r.PaymentID, r.AmountCents, now)
	})
	return won, err
}

func (s *store) listRefunds(ctx context.Context, paymentID string, p page.Request) (page.Result[Refund], error) {
	q := s.db.WithContext(ctx).Model(&refundRow{}).Where("payment_id = ?", paymentID)
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[Refund]{}, fmt.Errorf("count refunds: %w", err)
	}
	var rows []refundRow
	if total > 0 {
		if err := q.Order("created_at, id").Offset(p.Offset()).Limit(p.Limit()).Find(&rows).Error; err != nil {
			return page.Result[Refund]{}, fmt.Errorf("list refunds: %w", err)
		}
	}
	out := make([]Refund, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return page.Result[Refund]{Items: out, Total: total}, nil
}

// summary totals one currency. Captured and refunded come from one
// statement over the payments table, so they are consistent with each
// other whatever runs beside it.
func (s *store) summary(ctx context.Context, currency string) (Summary, error) {
	out := Summary{Currency: currency, Payments: map[Status]int64{}, Refunds: map[RefundStatus]int64{}}
	for _, st := range Statuses {
		out.Payments[st] = 0
	}
	for _, st := range RefundStatuses {
		out.Refunds[st] = 0
	}
	var pays []struct {
		Status   string
		N        int64
		Amount   int64
		Refunded int64
	}
	err := s.db.WithContext(ctx).Raw(`SELECT status, COUNT(*) AS n,
			COALESCE(SUM(amount_cents), 0) AS amount, COALESCE(SUM(refunded_cents), 0) AS refunded
		FROM payments WHERE currency = ? GROUP BY status`, currency).Scan(&pays).Error
	if err != nil {
		return Summary{}, fmt.Errorf("sum payments: %w", err)
	}
	for _, p := range pays {
		st := Status(p.Status)
		out.Payments[st] = p.N
		if st.Captured() {
			out.CapturedCents += p.Amount
			out.RefundedCents += p.Refunded
		}
	}
	out.NetCents = out.CapturedCents - out.RefundedCents
	var refs []struct {
		Status string
		N      int64
	}
	err = s.db.WithContext(ctx).Raw(`SELECT status, COUNT(*) AS n FROM refunds WHERE currency = ? GROUP BY status`, currency).Scan(&refs).Error
	if err != nil {
		return Summary{}, fmt.Errorf("count refunds: %w", err)
	}
	for _, r := range refs {
		out.Refunds[RefundStatus(r.Status)] = r.N
	}
	return out, nil
}
