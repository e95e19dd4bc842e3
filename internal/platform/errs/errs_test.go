package errs

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestKindTable: every kind maps to a status and back to itself, so an
// error that crossed HTTP is still errors.Is the same kind.
func TestKindTable(t *testing.T) {
	seen := map[int]*Kind{}
	for _, k := range kinds {
		if prev, dup := seen[k.Status()]; dup {
			t.Fatalf("%s and %s share status %d", prev, k, k.Status())
		}
		seen[k.Status()] = k
		if got := FromStatus(k.Status()); got != k {
			t.Errorf("FromStatus(%d) = %s, want %s", k.Status(), got, k)
		}
		wrapped := fmt.Errorf("reserve r1: %w", k)
		if KindOf(wrapped) != k || !IsKind(wrapped, k) {
			t.Errorf("kind lost through wrapping: %s", k)
		}
		remote := Remote(FromStatus(k.Status()), "detail", nil)
		if !errors.Is(remote, k) {
			t.Errorf("remote error is not %s", k)
		}
	}
	if FromStatus(418) != Invalid || FromStatus(599) != Internal {
		t.Fatal("unknown statuses must fall back to Invalid / Internal")
	}
	if KindOf(errors.New("plain")) != Internal {
		t.Fatal("an error without a kind is internal")
	}
}

func TestValidationFields(t *testing.T) {
	var v Validator
	v.Check(true, "ok", "never")
	v.Check(false, "quantity", "must be positive, got %d", -1)
	v.Check(false, "sku", "is required")
	err := fmt.Errorf("create: %w", v.Err())
	if !errors.Is(err, Invalid) {
		t.Fatal("validation error is not Invalid")
	}
	f := Fields(err)
	if len(f) != 2 || f[0].Field != "quantity" || f[0].Message != "must be positive, got -1" || f[1].Field != "sku" {
		t.Fatalf("fields: %+v", f)
	}
	var empty Validator
	if empty.Err() != nil {
		t.Fatal("no checks failed, yet an error")
	}
	remote := Remote(Invalid, "bad", f)
	if !errors.Is(remote, Invalid) || len(Fields(remote)) != 2 {
		t.Fatalf("fields lost over the wire: %v", Fields(remote))
	}
}

func TestRetryLater(t *testing.T) {
	err := RetryLater(1500*time.Millisecond, fmt.Errorf("slow down: %w", TooManyRequests))
	if !errors.Is(err, TooManyRequests) {
		t.Fatal("kind lost")
	}
	h := err.(interface{ GetHeaders() http.Header }).GetHeaders()
	if h.Get("Retry-After") != "2" {
		t.Fatalf("Retry-After %q, want 2 (rounded, at least 1)", h.Get("Retry-After"))
	}
}
