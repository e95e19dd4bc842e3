package payment

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
)

// Gateway is the port to a payment processor. Both calls carry an
// idempotency key, and an adapter must honour it: the same key with the
// same request is the same operation at the processor, whatever the number
// of calls, so the service may call again whenever it does not know how a
// previous call ended (a crash, a timeout).
//
// Errors carry an errs kind: errs.PaymentRequired is a decline (final, the
// processor said no); errs.Invalid or errs.Unprocessable means the request
// itself is wrong; anything else (errs.BadGateway, errs.Timeout,
// errs.Unavailable) is a failure of the processor or the way to it, after
// which the outcome is unknown and a retry with the same key is the way to
// learn it.
type Gateway interface {
	// Charge takes money.
	Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error)
	// Refund gives back money taken by an earlier Charge.
	Refund(ctx context.Context, req RefundRequest) (RefundResult, error)
}

// ChargeRequest asks the processor to take money.
type ChargeRequest struct {
	// IdempotencyKey is the payment's transaction id.
	IdempotencyKey string
	AmountCents    int64
	Currency       string
	Method         string
	Token          string
}

// ChargeResult is an approved charge.
type ChargeResult struct {
	// ChargeRef is the processor's id of the charge; refunds name it.
	ChargeRef string
	// AuthorizationCode is the issuer's approval code, printed on receipts.
	AuthorizationCode string
}

// RefundRequest asks the processor to give back part of a charge.
type RefundRequest struct {
	// IdempotencyKey is the caller's refund id.
	IdempotencyKey string
	// ChargeRef names the charge (ChargeResult.ChargeRef).
	ChargeRef   string
	AmountCents int64
	Currency    string
}

// RefundResult is an accepted refund.
type RefundResult struct {
	// RefundRef is the processor's id of the refund.
	RefundRef string
}

// Simulator tokens. Any other non-empty token approves.
const (
	// TokenDeclined is declined by the issuer (errs.PaymentRequired).
	TokenDeclined = "tok_declined"
	// TokenError makes the processor fail (errs.BadGateway).
	TokenError = "tok_error"
)

// SimulatorOptions configures the simulator.
type SimulatorOptions struct {
	// Latency is added to every call (default none), to watch timeouts,
	// waiting duplicates and the latency histogram at work.
	Latency time.Duration
}

// Simulator is a Gateway that needs no processor, for development, tests
// and load tests. It answers by token (TokenDeclined, TokenError, anything
// else approves) and keeps the processor's idempotency promise: its
// references and authorization codes are derived from the idempotency key,
// so a repeated call returns the same answer even after a restart, and a
// key reused with a different request is refused the way processors refuse
// it (errs.Unprocessable) while the process remembers the key.
type Simulator struct {
	latency time.Duration

	chargeCalls atomic.Int64
	refundCalls atomic.Int64

	mu      sync.Mutex
	charges map[string]simCharge // idempotency key → charge
	refunds map[string]simRefund // idempotency key → refund
	byRef   map[string]string    // charge ref → idempotency key
}

type simCharge struct {
	req      ChargeRequest
	res      ChargeResult
	refunded int64
}

type simRefund struct {
	req RefundRequest
	res RefundResult
}

var _ Gateway = (*Simulator)(nil)

// NewSimulator returns a fresh simulator.
func NewSimulator(o SimulatorOptions) *Simulator {
	return &Simulator{
		latency: o.Latency,
		charges: map[string]simCharge{},
		refunds: map[string]simRefund{},
		byRef:   map[string]string{},
	}
}

// SimulatorStats counts what the simulator was asked and did.
type SimulatorStats struct {
	// ChargeCalls and RefundCalls count every call, replays included.
	ChargeCalls, RefundCalls int64
	// Charges and Refunds count distinct approved operations: money that
	// moved at the "processor".
	Charges, Refunds int
}

// Stats reports the calls so far; tests use it to prove "charged once".
func (s *Simulator) Stats() SimulatorStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SimulatorStats{
		ChargeCalls: s.chargeCalls.Load(), RefundCalls: s.refundCalls.Load(),
		Charges: len(s.charges), Refunds: len(s.refunds),
	}
}

// gatewayError is a processor's answer: its text is what the processor
// said, its kind what the caller can do about it.
type gatewayError struct {
	kind *errs.Kind
	msg  string
}

func (e *gatewayError) Error() string { return e.msg }
func (e *gatewayError) Unwrap() error { return e.kind }

// Charge implements Gateway.
func (s *Simulator) Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error) {
	s.chargeCalls.Add(1)
	if err := s.wait(ctx); err != nil {
		return ChargeResult{}, err
	}
	switch {
	case req.IdempotencyKey == "":
		return ChargeResult{}, &gatewayError{errs.Invalid, "idempotency key is required"}
	case req.Token == "":
		return ChargeResult{}, &gatewayError{errs.Invalid, "token is required"}
	case req.AmountCents <= 0:
		return ChargeResult{}, &gatewayError{errs.Invalid, "amount must be positive"}
	case req.Token == TokenDeclined:
		return ChargeResult{}, &gatewayError{errs.PaymentRequired, "card declined by the issuer"}
	case req.Token == TokenError:
		return ChargeResult{}, &gatewayError{errs.BadGateway, "processor error: the issuer did not answer"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.charges[req.IdempotencyKey]; ok {
		if prev.req != req {
			return ChargeResult{}, &gatewayError{errs.Unprocessable, "idempotency key reused with a different charge"}
		}
		return prev.res, nil
	}
	res := ChargeResult{
		ChargeRef:         "sim_ch_" + digest("charge", req.IdempotencyKey)[:24],
		AuthorizationCode: authCode(req.IdempotencyKey),
	}
	s.charges[req.IdempotencyKey] = simCharge{req: req, res: res}
	s.byRef[res.ChargeRef] = req.IdempotencyKey
	return res, nil
}

// Refund implements Gateway. A charge this process does not remember (made
// before a restart) is trusted: the service's own books already cap
// refunds at what was captured.
func (s *Simulator) Refund(ctx context.Context, req RefundRequest) (RefundResult, error) {
	s.refundCalls.Add(1)
	if err := s.wait(ctx); err != nil {
		return RefundResult{}, err
	}
	switch {
	case req.IdempotencyKey == "":
		return RefundResult{}, &gatewayError{errs.Invalid, "idempotency key is required"}
	case req.ChargeRef == "":
		return RefundResult{}, &gatewayError{errs.Invalid, "charge reference is required"}
	case req.AmountCents <= 0:
		return RefundResult{}, &gatewayError{errs.Invalid, "amount must be positive"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.refunds[req.IdempotencyKey]; ok {
		if prev.req != req {
			return RefundResult{}, &gatewayError{errs.Unprocessable, "idempotency key reused with a different refund"}
		}
		return prev.res, nil
	}
	if key, ok := s.byRef[req.ChargeRef]; ok {
		ch := s.charges[key]
		if ch.refunded+req.AmountCents > ch.req.AmountCents {
			return RefundResult{}, &gatewayError{errs.Unprocessable, fmt.Sprintf(
				"refund of %d exceeds the %d left on the charge", req.AmountCents, ch.req.AmountCents-ch.refunded)}
		}
		ch.refunded += req.AmountCents
		s.charges[key] = ch
	}
	res := RefundResult{RefundRef: "sim_re_" + digest("refund", req.IdempotencyKey)[:24]}
	s.refunds[req.IdempotencyKey] = simRefund{req: req, res: res}
	return res, nil
}

// wait applies the configured latency, giving up with the caller.
func (s *Simulator) wait(ctx context.Context) error {
	if s.latency <= 0 {
		return nil
	}
	t := time.NewTimer(s.latency)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("simulated processor: %w (%v)", errs.Timeout, ctx.Err())
	}
}

func digest(kind, key string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + key))
	return hex.EncodeToString(sum[:])
}

// authCode is six characters from the key's digest: stable per key, like a
// real approval code on a replayed charge.
func authCode(key string) string {
	sum := sha256.Sum256([]byte("auth\x00" + key))
	return base32.StdEncoding.EncodeToString(sum[:])[:6]
}
