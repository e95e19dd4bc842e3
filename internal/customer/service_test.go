package customer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/testkit"
)

// These tests look inside the local service: what only it can show (the
// retry delay it computes, the hashes it stores). The behaviour every
// adapter shares is in suite_test.go.

func TestLoginRetryAfter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newTestClock()
	svc := newLocal(t, testkit.SQLite, newTokens(t), clock)
	for range 5 {
		_, _ = svc.Login(ctx, Credentials{Email: "a@example.com", Password: "guess"})
		clock.Advance(time.Minute)
	}
	// Failures at 0..4 min; now is 5 min: the first leaves the window at 15.
	_, err := svc.Login(ctx, Credentials{Email: "a@example.com", Password: "guess"})
	var h interface{ GetHeaders() http.Header }
	if !errs.IsKind(err, errs.TooManyRequests) || !errors.As(err, &h) {
		t.Fatalf("6th attempt: %v", err)
	}
	if got := h.GetHeaders().Get("Retry-After"); got != "600" {
		t.Fatalf("Retry-After %s, want 600", got)
	}
	clock.Advance(10*time.Minute + time.Second)
	// One failure aged out: one more attempt is allowed, then refused
	// until the second one ages out, 59 s later.
	if _, err := svc.Login(ctx, Credentials{Email: "a@example.com", Password: "guess"}); !errs.IsKind(err, errs.Unauthorized) {
		t.Fatalf("after the oldest failure aged out: %v", err)
	}
	_, err = svc.Login(ctx, Credentials{Email: "a@example.com", Password: "guess"})
	if !errors.As(err, &h) || h.GetHeaders().Get("Retry-After") != "59" {
		t.Fatalf("sliding window: %v", err)
	}
}

// TestConcurrentGuesses: guesses racing each other get no more password
// checks than the limit, because an attempt is counted when it starts.
func TestConcurrentGuesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := newLocal(t, testkit.SQLite, newTokens(t), newTestClock())
	_, err := svc.Register(ctx, Registration{Email: "a@example.com", Password: "correct horse", FirstName: "A", LastName: "B"})
	must(t, err)
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		unauthorized, too int
	)
	for range 20 {
		wg.Go(func() {
			_, err := svc.Login(ctx, Credentials{Email: "a@example.com", Password: "guess", ClientIP: "192.0.2.1"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errs.IsKind(err, errs.Unauthorized):
				unauthorized++
			case errs.IsKind(err, errs.TooManyRequests):
				too++
			default:
				t.Errorf("guess: %v", err)
			}
		})
	}
	wg.Wait()
	if unauthorized != 5 || too != 15 {
		t.Fatalf("%d passwords checked, %d refused; want 5 and 15", unauthorized, too)
	}
}

// TestLoginUpgradesHashCost: raising the configured cost re-hashes a
// password at its owner's next login, and the dummy hash follows the
// configured cost so unknown e-mails cost the same time.
func TestLoginUpgradesHashCost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gdb := testkit.OpenDB(t, testkit.SQLite, Name, Migrations)
	tokens := newTokens(t)
	old := New(gdb, tokens, Options{BcryptCost: bcrypt.MinCost})
	c, err := old.Register(ctx, Registration{Email: "a@example.com", Password: "correct horse", FirstName: "A", LastName: "B"})
	must(t, err)
	stronger := New(gdb, tokens, Options{BcryptCost: bcrypt.MinCost + 1}).(*service)
	if cost, _ := bcrypt.Cost(stronger.dummyHash); cost != bcrypt.MinCost+1 {
		t.Fatalf("dummy hash cost %d", cost)
	}
	_, err = stronger.Login(ctx, Credentials{Email: "a@example.com", Password: "correct horse"})
	must(t, err)
	cred, err := stronger.store.credentials(ctx, "a@example.com")
	must(t, err)
	if cost, _ := bcrypt.Cost([]byte(cred.hash)); cost != bcrypt.MinCost+1 || cred.id != c.ID {
		t.Fatalf("hash cost %d after login", cost)
	}
	if _, err := old.Login(ctx, Credentials{Email: "a@example.com", Password: "correct horse"}); err != nil {
		t.Fatalf("login with the re-hashed password: %v", err)
	}
}

func TestLoginWithoutTokens(t *testing.T) {
	t.Parallel()
	svc := New(testkit.OpenDB(t, testkit.SQLite, Name, Migrations), nil, Options{BcryptCost: bcrypt.MinCost})
	_, err := svc.Login(context.Background(), Credentials{Email: "a@example.com", Password: "whatever1"})
	if !errs.IsKind(err, errs.Unavailable) {
		t.Fatalf("login without a token issuer: %v", err)
	}
}

func TestPasswordsStayOutOfPrints(t *testing.T) {
	t.Parallel()
	for _, v := range []any{
		Credentials{Email: "a@example.com", Password: "s3cret-pass"},
		Registration{Email: "a@example.com", Password: "s3cret-pass"},
		LoginRequest{Email: "a@example.com", Password: "s3cret-pass"},
	} {
		for _, format := range []string{"%v", "%+v", "%s"} {
			if out := fmt.Sprintf(format, v); strings.Contains(out, "s3cret") || !strings.Contains(out, "a@example.com") {
				t.Errorf("%T printed as %s", v, out)
			}
		}
	}
	if raw, _ := json.Marshal(Credentials{Password: "s3cret-pass"}); strings.Contains(string(raw), "s3cret") {
		t.Errorf("credentials marshal their password: %s", raw)
	}
}

// BenchmarkLogin measures a successful login at the lowest bcrypt cost:
// the store lookup, the limiter and token signing, without the hashing
// that dominates in production.
func BenchmarkLogin(b *testing.B) {
	ctx := context.Background()
	svc := newLocal(b, testkit.SQLite, newTokens(b), newTestClock())
	_, err := svc.Register(ctx, Registration{Email: "bench@example.com", Password: "correct horse", FirstName: "B", LastName: "M"})
	must(b, err)
	for b.Loop() {
		if _, err := svc.Login(ctx, Credentials{Email: "bench@example.com", Password: "correct horse", ClientIP: "192.0.2.1"}); err != nil {
			b.Fatal(err)
		}
	}
}
