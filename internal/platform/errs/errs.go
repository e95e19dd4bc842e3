// Package errs is the one vocabulary of failure shared by every context.
//
// An error carries a Kind (what went wrong, in terms a caller can act on) and
// context (which call, which id). Kinds are sentinel values, wrapped with
// fmt.Errorf("reserve %s: %w", id, errs.Conflict), so errors.Is works the
// same whether the call stayed in-process or went through an HTTP Client:
// httpx maps a Kind to an HTTP status on the way out and back to the same
// Kind on the way in, from the single table below.
package errs

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Kind classifies an error. Kinds compare by identity; wrap them, never
// compare their text.
type Kind struct {
	name   string
	status int
}

// Error makes a Kind usable as a sentinel error.
func (k *Kind) Error() string { return k.name }

// Status is the HTTP status this kind maps to.
func (k *Kind) Status() int { return k.status }

// Name is the stable, machine-readable name used in problem types.
func (k *Kind) Name() string { return k.name }

// The kinds. Each maps to exactly one HTTP status, and each status in the
// table maps back to exactly one kind.
var (
	// Invalid: the input is malformed or breaks a rule of its own (400).
	Invalid = &Kind{"invalid", http.StatusBadRequest}
	// Unauthorized: no or unusable credentials (401).
	Unauthorized = &Kind{"unauthorized", http.StatusUnauthorized}
	// PaymentRequired: a payment was declined (402).
	PaymentRequired = &Kind{"payment_declined", http.StatusPaymentRequired}
	// Forbidden: valid credentials without the right to do this (403).
	Forbidden = &Kind{"forbidden", http.StatusForbidden}
	// NotFound: the thing named does not exist (404).
	NotFound = &Kind{"not_found", http.StatusNotFound}
	// Conflict: the request clashes with current state (409): out of stock,
	// duplicate SKU, action out of order, same idempotency key other body.
	Conflict = &Kind{"conflict", http.StatusConflict}
	// Gone: the thing existed but has expired (410).
	Gone = &Kind{"gone", http.StatusGone}
	// TooLarge: the body is over the limit (413).
	TooLarge = &Kind{"too_large", http.StatusRequestEntityTooLarge}
	// Unprocessable: well-formed but cannot be processed (422), e.g. an
	// Idempotency-Key reused with a different body.
	Unprocessable = &Kind{"unprocessable", http.StatusUnprocessableEntity}
	// TooManyRequests: rate limited (429).
	TooManyRequests = &Kind{"rate_limited", http.StatusTooManyRequests}
	// Internal: a bug (500). Never returned on purpose.
	Internal = &Kind{"internal", http.StatusInternalServerError}
	// BadGateway: a downstream answered with an error it should not have (502).
	BadGateway = &Kind{"bad_gateway", http.StatusBadGateway}
	// Unavailable: a dependency is down or the circuit is open (503).
	Unavailable = &Kind{"unavailable", http.StatusServiceUnavailable}
	// Timeout: a dependency did not answer in time (504).
	Timeout = &Kind{"timeout", http.StatusGatewayTimeout}
)

var kinds = []*Kind{Invalid, Unauthorized, PaymentRequired, Forbidden, NotFound, Conflict, Gone,
	TooLarge, Unprocessable, TooManyRequests, Internal, BadGateway, Unavailable, Timeout}

// FromStatus is the inverse of Kind.Status: the kind for an HTTP status.
// Unknown 4xx map to Invalid, unknown 5xx to Internal.
func FromStatus(status int) *Kind {
	for _, k := range kinds {
		if k.status == status {
			return k
		}
	}
	if status >= 500 {
		return Internal
	}
	return Invalid
}

// KindOf finds the kind wrapped in err; Internal when there is none.
func KindOf(err error) *Kind {
	var k *Kind
	if errors.As(err, &k) {
		return k
	}
	return Internal
}

// FieldError names one input field and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError is an Invalid error that names the fields at fault, so a
// problem response can list them.
type ValidationError struct {
	Fields []FieldError
}

// Error lists the fields.
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, Invalid) true.
func (e *ValidationError) Unwrap() error { return Invalid }

// Field builds an Invalid error about one field.
func Field(field, format string, args ...any) error {
	return &ValidationError{Fields: []FieldError{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// Validator collects field errors so a handler reports all of them at once.
type Validator struct{ fields []FieldError }

// Check records message for field when ok is false.
func (v *Validator) Check(ok bool, field, format string, args ...any) {
	if !ok {
		v.fields = append(v.fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
}

// Err returns the collected errors as one ValidationError, or nil.
func (v *Validator) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return &ValidationError{Fields: v.fields}
}

// Fields returns the field errors carried by err, if any.
func Fields(err error) []FieldError {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Fields
	}
	return nil
}

// remote is an error that came back over HTTP: it keeps the detail text the
// server sent and unwraps to the kind its status maps to.
type remote struct {
	kind   *Kind
	detail string
	fields []FieldError
}

func (e *remote) Error() string { return e.detail }
func (e *remote) Unwrap() []error {
	if len(e.fields) > 0 {
		return []error{e.kind, &ValidationError{Fields: e.fields}}
	}
	return []error{e.kind}
}

// Remote rebuilds an error received from another process: errors.Is(err,
// kind) holds and the field errors survive the trip.
func Remote(kind *Kind, detail string, fields []FieldError) error {
	if detail == "" {
		detail = kind.name
	}
	return &remote{kind: kind, detail: detail, fields: fields}
}

// IsKind tells whether err is of kind k; a shorthand for errors.Is that
// reads well at call sites.
func IsKind(err error, k *Kind) bool { return errors.Is(err, k) }

// retryLater is an error that tells the client when to come back; the HTTP
// layer turns it into a Retry-After header.
type retryLater struct {
	err   error
	after time.Duration
}

func (e *retryLater) Error() string { return e.err.Error() }
func (e *retryLater) Unwrap() error { return e.err }

// GetHeaders is read by huma for errors returned from handlers.
func (e *retryLater) GetHeaders() http.Header {
	secs := int(e.after.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return http.Header{"Retry-After": []string{strconv.Itoa(secs)}}
}

// RetryLater wraps err (usually of kind TooManyRequests or Unavailable) with
// the time after which a retry may succeed.
func RetryLater(after time.Duration, err error) error { return &retryLater{err: err, after: after} }
