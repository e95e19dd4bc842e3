package payment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
	"github.com/retailco/pos/internal/platform/page"
)

// Options tunes the local service. Zero values pick the defaults.
type Options struct {
	// Registerer receives the context's metrics; nil: not exported.
	Registerer prometheus.Registerer
	// GatewayTimeout bounds one gateway call (default 10 s).
	GatewayTimeout time.Duration
	// Lease is how long a pending attempt belongs to the process that
	// started it; after that a retry of the same transaction or refund id
	// takes it over (default GatewayTimeout + 5 s). It must outlast a
	// gateway call, or a slow owner and its taker would both call the
	// gateway — harmless with an idempotent gateway, but wasteful.
	Lease time.Duration
	// WaitTimeout bounds how long a duplicate request waits for the
	// attempt in flight before it answers errs.Unavailable with
	// Retry-After (default 3 s, under the HTTP client's 5 s per attempt).
	WaitTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.GatewayTimeout <= 0 {
		o.GatewayTimeout = 10 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = o.GatewayTimeout + 5*time.Second
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = 3 * time.Second
	}
	return o
}

type service struct {
	store   *store
	gw      Gateway
	opts    Options
	metrics *metrics
	now     func() time.Time
	// waiting, when set (tests only), is told each time a duplicate
	// request starts waiting for an attempt in flight.
	waiting func()
}

var _ Service = (*service)(nil)

// New returns the local payment service on gdb (already migrated), taking
// money through gw.
func New(gdb *gorm.DB, gw Gateway, opts Options) Service {
	opts = opts.withDefaults()
	return &service{
		store:   &store{db: gdb},
		gw:      gw,
		opts:    opts,
		metrics: newMetrics(opts.Registerer),
		now:     func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	}
}

// maxAmountCents keeps amounts (and the sums of them) far from int64
// overflow: ten million dollars in one payment is beyond any basket.
const maxAmountCents = 1_000_000_000

var (
	keyPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

func (s *service) Charge(ctx context.Context, in NewPayment) (ChargeOutcome, error) {
	in.Currency = strings.TrimSpace(in.Currency)
	if in.Currency == "" {
		in.Currency = DefaultCurrency
	}
	var v errs.Validator
	checkKey(&v, "transaction_id", in.TransactionID, 128, true)
	checkAmount(&v, in.AmountCents)
	v.Check(currencyPattern.MatchString(in.Currency), "currency", "must be an ISO 4217 code such as CAD")
	v.Check(slices.Contains(Methods, in.Method), "method", "must be one of %s", strings.Join(Methods, ", "))
	checkKey(&v, "token", in.Token, 128, true)
	checkKey(&v, "order_id", in.OrderID, 64, false)
	checkKey(&v, "customer_id", in.CustomerID, 64, false)
	if err := v.Err(); err != nil {
		return ChargeOutcome{}, err
	}
	now := s.now()
	lease := now.Add(s.opts.Lease)
	row := paymentRow{
		ID: ids.New("pay"), TransactionID: in.TransactionID, OrderID: in.OrderID, CustomerID: in.CustomerID,
		Status: string(StatusPending), AmountCents: in.AmountCents, Currency: in.Currency, Method: in.Method,
		TokenHash: tokenHash(in.Token), Attempts: 1, LeaseExpiresAt: &lease, CreatedAt: now, UpdatedAt: now,
	}
	err := s.store.insertPayment(ctx, row)
	if err == nil {
		return s.attemptCharge(ctx, row, in)
	}
	if !errors.Is(err, errDuplicate) {
		return ChargeOutcome{}, err
	}
	return s.settleCharge(ctx, in)
}

// settleCharge answers a transaction id that is already in the table: the
// stored outcome when there is one, a new attempt when the last one failed
// or its owner is gone, and otherwise a bounded wait for the owner. A
// request that waited for an attempt takes that attempt's outcome as its
// own, failure included, so concurrent duplicates all answer alike; only a
// request that arrives to find a failure retries it.
func (s *service) settleCharge(ctx context.Context, in NewPayment) (ChargeOutcome, error) {
	deadline := time.Now().Add(s.opts.WaitTimeout)
	delay := 5 * time.Millisecond
	waited := 0 // the attempt this request saw in flight
	for {
		row, err := s.store.paymentByTransaction(ctx, in.TransactionID)
		if err != nil {
			return ChargeOutcome{}, err
		}
		if err := s.sameCharge(row, in); err != nil {
			return ChargeOutcome{}, err
		}
		st := Status(row.Status)
		switch {
		case st.Captured():
			return ChargeOutcome{Payment: row.domain(), Replayed: true}, nil
		case st == StatusDeclined:
			return ChargeOutcome{}, declined(row)
		case st == StatusFailed && row.Attempts == waited:
			return ChargeOutcome{}, chargeFailed(row)
		case st == StatusFailed || leaseOver(row.LeaseExpiresAt, s.now()):
			// A failed attempt may be retried (the outcome at the processor
			// is unknown, and the idempotency key makes asking again safe);
			// an expired lease means the owner crashed mid-attempt.
			now := s.now()
			won, err := s.store.claimPayment(ctx, row.ID, row.Attempts, now.Add(s.opts.Lease), now)
			if err != nil {
				return ChargeOutcome{}, err
			}
			if won {
				row.Attempts++
				row.Status = string(StatusPending)
				return s.attemptCharge(ctx, row, in)
			}
			// Another request claimed it first: wait for its outcome.
		default:
			if waited != row.Attempts && s.waiting != nil {
				s.waiting()
			}
			waited = row.Attempts
		}
		if time.Now().After(deadline) {
			return ChargeOutcome{}, errs.RetryLater(time.Second, fmt.Errorf(
				"payment for transaction %s is still being processed; retry with the same transaction id: %w",
				in.TransactionID, errs.Unavailable))
		}
		if err := sleep(ctx, delay); err != nil {
			return ChargeOutcome{}, fmt.Errorf("waiting for payment of transaction %s: %w (%v)", in.TransactionID, errs.Timeout, err)
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// attemptCharge calls the gateway for a pending row this request owns and
// records the outcome. The gateway call runs outside any database
// transaction (no connection or lock is held across the network), and
// neither it nor the write after it is cut short when the caller hangs up:
// once money may have moved, it must be written down.
func (s *service) attemptCharge(ctx context.Context, row paymentRow, in NewPayment) (ChargeOutcome, error) {
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.GatewayTimeout)
	defer cancel()
	start := time.Now()
	res, gerr := s.gw.Charge(gctx, ChargeRequest{
		IdempotencyKey: row.TransactionID, AmountCents: row.AmountCents,
		Currency: row.Currency, Method: row.Method, Token: in.Token,
	})
	var o chargeOutcome
	switch {
	case gerr == nil:
		o = chargeOutcome{status: StatusCaptured, authorizationCode: res.AuthorizationCode, chargeRef: res.ChargeRef}
	case errs.IsKind(gerr, errs.PaymentRequired):
		o = chargeOutcome{status: StatusDeclined, failureReason: reason(gerr)}
	default:
		o = chargeOutcome{status: StatusFailed, failureReason: reason(gerr)}
	}
	s.metrics.gatewayCall("charge", string(o.status), time.Since(start))

	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.GatewayTimeout)
	defer wcancel()
	now := s.now()
	won, err := s.store.completePayment(wctx, row.ID, row.Attempts, o, now)
	if err != nil {
		// The row stays pending; when its lease runs out a retry of the
		// same transaction asks the gateway again and records the answer.
		return ChargeOutcome{}, fmt.Errorf("record outcome of payment %s (%s): %w", row.ID, o.status, err)
	}
	if !won {
		// Our lease ran out and a retry took the attempt over: its outcome
		// is the one on record (the gateway told it the same, by key).
		return s.settleCharge(ctx, in)
	}
	row.Status, row.AuthorizationCode, row.ChargeRef, row.FailureReason = string(o.status), o.authorizationCode, o.chargeRef, o.failureReason
	row.LeaseExpiresAt, row.UpdatedAt = nil, now
	s.metrics.payment(row)
	switch o.status {
	case StatusCaptured:
		return ChargeOutcome{Payment: row.domain()}, nil
	case StatusDeclined:
		return ChargeOutcome{}, declined(row)
	}
	return ChargeOutcome{}, chargeFailed(row)
}

// sameCharge tells a replay from a reuse of the transaction id with another
// body. The id is also the gateway's idempotency key, and a processor
// refuses a key reused with other parameters; so do we, naming the field.
func (s *service) sameCharge(row paymentRow, in NewPayment) error {
	field := ""
	switch {
	case row.AmountCents != in.AmountCents:
		field = "amount_cents"
	case row.Currency != in.Currency:
		field = "currency"
	case row.Method != in.Method:
		field = "method"
	case row.TokenHash != tokenHash(in.Token):
		field = "token"
	case row.OrderID != in.OrderID:
		field = "order_id"
	case row.CustomerID != in.CustomerID:
		field = "customer_id"
	default:
		return nil
	}
	s.metrics.conflicts.Inc()
	return fmt.Errorf("transaction %s was already used with a different %s; use a new transaction id for a new payment: %w",
		in.TransactionID, field, errs.Conflict)
}

func (s *service) GetPayment(ctx context.Context, id string) (Payment, error) {
	row, err := s.store.payment(ctx, id)
	if err != nil {
		return Payment{}, err
	}
	return row.domain(), nil
}

func (s *service) GetPaymentByTransaction(ctx context.Context, transactionID string) (Payment, error) {
	row, err := s.store.paymentByTransaction(ctx, transactionID)
	if err != nil {
		return Payment{}, err
	}
	return row.domain(), nil
}

func (s *service) ListPayments(ctx context.Context, f Filter) (page.Result[Payment], error) {
	f.Page = f.Page.Normalize()
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		return page.Result[Payment]{}, errs.Field("status", "must be one of %s", joinStatuses())
	}
	return s.store.listPayments(ctx, f)
}

func (s *service) Refund(ctx context.Context, paymentID string, in NewRefund) (RefundOutcome, error) {
	in.Reason = strings.TrimSpace(in.Reason)
	var v errs.Validator
	checkKey(&v, "refund_id", in.RefundID, 128, true)
	checkAmount(&v, in.AmountCents)
	v.Check(in.Reason != "", "reason", "is required")
	v.Check(utf8.RuneCountInString(in.Reason) <= 500, "reason", "must be at most 500 characters")
	if err := v.Err(); err != nil {
		return RefundOutcome{}, err
	}
	// A known refund id is a replay (or a conflict) whatever the payment
	// has become since: check it before the payment's state, or a replay
	// of a full refund would be refused as "nothing left to refund".
	if _, err := s.store.refundByRefundID(ctx, in.RefundID); err == nil {
		return s.settleRefund(ctx, paymentID, in)
	} else if !errs.IsKind(err, errs.NotFound) {
		return RefundOutcome{}, err
	}
	now := s.now()
	lease := now.Add(s.opts.Lease)
	row := refundRow{
		ID: ids.New("rfd"), RefundID: in.RefundID, PaymentID: paymentID, AmountCents: in.AmountCents,
		Reason: in.Reason, Status: string(RefundPending), Attempts: 1, LeaseExpiresAt: &lease,
		CreatedAt: now, UpdatedAt: now,
	}
	pay, err := s.store.insertRefund(ctx, &row)
	if err == nil {
		return s.attemptRefund(ctx, row, pay, in)
	}
	if !errors.Is(err, errDuplicate) {
		return RefundOutcome{}, err
	}
	return s.settleRefund(ctx, paymentID, in)
}

// settleRefund is settleCharge for refunds.
func (s *service) settleRefund(ctx context.Context, paymentID string, in NewRefund) (RefundOutcome, error) {
	deadline := time.Now().Add(s.opts.WaitTimeout)
	delay := 5 * time.Millisecond
	waited := 0
	for {
		row, err := s.store.refundByRefundID(ctx, in.RefundID)
		if err != nil {
			return RefundOutcome{}, err
		}
		if err := s.sameRefund(row, paymentID, in); err != nil {
			return RefundOutcome{}, err
		}
		st := RefundStatus(row.Status)
		switch {
		case st == RefundSucceeded:
			return RefundOutcome{Refund: row.domain(), Replayed: true}, nil
		case st == RefundFailed && row.Attempts == waited:
			return RefundOutcome{}, refundFailed(row)
		case st == RefundFailed || leaseOver(row.LeaseExpiresAt, s.now()):
			now := s.now()
			pay, won, err := s.store.claimRefund(ctx, row, now.Add(s.opts.Lease), now)
			if err != nil {
				return RefundOutcome{}, err
			}
			if won {
				row.Attempts++
				row.Status = string(RefundPending)
				return s.attemptRefund(ctx, row, pay, in)
			}
		default:
			waited = row.Attempts
		}
		if time.Now().After(deadline) {
			return RefundOutcome{}, errs.RetryLater(time.Second, fmt.Errorf(
				"refund %s is still being processed; retry with the same refund id: %w", in.RefundID, errs.Unavailable))
		}
		if err := sleep(ctx, delay); err != nil {
			return RefundOutcome{}, fmt.Errorf("waiting for refund %s: %w (%v)", in.RefundID, errs.Timeout, err)
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// attemptRefund calls the gateway for a pending refund this request owns,
// its amount already reserved on the payment. Success keeps the
// reservation; failure releases it, so the money is not held hostage by
// a refund that did not happen, and a retry with the same refund id
// reserves again.
func (s *service) attemptRefund(ctx context.Context, row refundRow, pay paymentRow, in NewRefund) (RefundOutcome, error) {
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.GatewayTimeout)
	defer cancel()
	start := time.Now()
	res, gerr := s.gw.Refund(gctx, RefundRequest{
		IdempotencyKey: row.RefundID, ChargeRef: pay.ChargeRef, AmountCents: row.AmountCents, Currency: pay.Currency,
	})
	outcome := string(RefundSucceeded)
	if gerr != nil {
		outcome = string(RefundFailed)
	}
	s.metrics.gatewayCall("refund", outcome, time.Since(start))

	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.GatewayTimeout)
	defer wcancel()
	now := s.now()
	var (
		won bool
		err error
	)
	if gerr == nil {
		won, err = s.store.completeRefund(wctx, row, res.RefundRef, now)
	} else {
		won, err = s.store.failRefund(wctx, row, reason(gerr), now)
	}
	if err != nil {
		return RefundOutcome{}, fmt.Errorf("record outcome of refund %s (%s): %w", row.RefundID, outcome, err)
	}
	if !won {
		return s.settleRefund(ctx, row.PaymentID, in)
	}
	row.Status, row.LeaseExpiresAt, row.UpdatedAt = outcome, nil, now
	if gerr != nil {
		row.FailureReason = reason(gerr)
	}
	s.metrics.refund(row)
	if gerr != nil {
		return RefundOutcome{}, refundFailed(row)
	}
	return RefundOutcome{Refund: row.domain()}, nil
}

// sameRefund tells a replay of a refund id from its reuse for another
// refund.
func (s *service) sameRefund(row refundRow, paymentID string, in NewRefund) error {
	field := ""
	switch {
	case row.PaymentID != paymentID:
		field = "payment"
	case row.AmountCents != in.AmountCents:
		field = "amount_cents"
	case row.Reason != in.Reason:
		field = "reason"
	default:
		return nil
	}
	s.metrics.conflicts.Inc()
	return fmt.Errorf("refund id %s was already used with a different %s; use a new refund id for a new refund: %w",
		in.RefundID, field, errs.Conflict)
}

func (s *service) ListRefunds(ctx context.Context, paymentID string, p page.Request) (page.Result[Refund], error) {
	// An unknown payment is a 404, not an empty list: the caller has the
	// wrong id and should hear it.
	if _, err := s.store.payment(ctx, paymentID); err != nil {
		return page.Result[Refund]{}, err
	}
	return s.store.listRefunds(ctx, paymentID, p.Normalize())
}

func (s *service) Summary(ctx context.Context, currency string) (Summary, error) {
	currency = strings.TrimSpace(currency)
	if currency == "" {
		currency = DefaultCurrency
	}
	if !currencyPattern.MatchString(currency) {
		return Summary{}, errs.Field("currency", "must be an ISO 4217 code such as CAD")
	}
	return s.store.summary(ctx, currency)
}

// declined is the error of a declined payment, the same on the first
// answer and on every replay.
func declined(row paymentRow) error {
	return fmt.Errorf("payment %s for transaction %s was declined (%s); use another card with a new transaction id: %w",
		row.ID, row.TransactionID, row.FailureReason, errs.PaymentRequired)
}

// chargeFailed is the error of a failed attempt, the same for its owner
// and for every request that waited for it. Every gateway failure is a 502,
// whatever the gateway's own kind (a timeout, an outage, a request it
// found invalid): to the caller the processor misbehaved, and the remedy is
// the same: retry with the same transaction id. The gateway's words are in
// the detail.
func chargeFailed(row paymentRow) error {
	return fmt.Errorf("payment %s for transaction %s failed at the gateway (%s); retry with the same transaction id: %w",
		row.ID, row.TransactionID, row.FailureReason, errs.BadGateway)
}

// refundFailed is chargeFailed for refunds.
func refundFailed(row refundRow) error {
	return fmt.Errorf("refund %s of payment %s failed at the gateway (%s); retry with the same refund id: %w",
		row.RefundID, row.PaymentID, row.FailureReason, errs.BadGateway)
}

// reason is the gateway's own words, bounded for storage.
func reason(err error) string {
	msg := err.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	return msg
}

// tokenHash is what is kept of a token: enough to recognise a replay,
// nothing a thief could charge with.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// leaseOver tells whether a pending attempt's owner is presumed gone.
func leaseOver(expires *time.Time, now time.Time) bool {
	return expires == nil || !now.Before(*expires)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func checkKey(v *errs.Validator, field, value string, maxLen int, required bool) {
	if value == "" {
		v.Check(!required, field, "is required")
		return
	}
	v.Check(len(value) <= maxLen && keyPattern.MatchString(value), field,
		"must be 1-%d letters, digits, '.', '_', ':' or '-', starting with a letter or digit", maxLen)
}

func checkAmount(v *errs.Validator, amount int64) {
	v.Check(amount > 0, "amount_cents", "must be positive")
	v.Check(amount <= maxAmountCents, "amount_cents", "must be at most %d", maxAmountCents)
}

func joinStatuses() string {
	parts := make([]string, len(Statuses))
	for i, s := range Statuses {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}
