package auth

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/retailco/pos/internal/platform/errs"
)

func TestTokens(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	tok, err := NewTokens(secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := tok.Issue("cus_1", "a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	p, err := tok.Verify(signed)
	if err != nil || p.Role != RoleCustomer || p.Subject != "cus_1" || p.Name != "a@example.com" {
		t.Fatalf("verify: %+v %v", p, err)
	}

	other, _ := NewTokens([]byte(strings.Repeat("o", 32)), time.Hour)
	if _, err := other.Verify(signed); !errors.Is(err, errs.Unauthorized) {
		t.Fatalf("token of another secret: %v", err)
	}
	tok.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := tok.Verify(signed); !errors.Is(err, errs.Unauthorized) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
	tok.now = time.Now
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "cus_1", "iss": "pos", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if _, err := tok.Verify(none); !errors.Is(err, errs.Unauthorized) {
		t.Fatalf("alg none accepted: %v", err)
	}
	if _, err := NewTokens([]byte("short"), time.Hour); err == nil {
		t.Fatal("a short secret was accepted")
	}
}

// TestVerifiedTokensRemembered: a token verified once is answered from
// memory until it expires, and only that exact token: a copy with a
// changed signature or claims is still refused, and the memory stays
// bounded.
func TestVerifiedTokensRemembered(t *testing.T) {
	tok, err := NewTokens([]byte(strings.Repeat("s", 32)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := tok.Issue("cus_1", "a@example.com")
	if _, err := tok.Verify(signed); err != nil {
		t.Fatal(err)
	}
	// Another signature: its first character changed. (Not its last: of
	// the last character of 32 bytes in unpadded base64 only 4 bits are
	// data, and a decoder that ignores the other 2 reads some changes there
	// as the same signature, which made this test fail now and then.)
	parts := strings.Split(signed, ".")
	first := byte('A')
	if parts[2][0] == 'A' {
		first = 'B'
	}
	other := parts[0] + "." + parts[1] + "." + string(first) + parts[2][1:]
	if _, err := tok.Verify(other); !errors.Is(err, errs.Unauthorized) {
		t.Fatalf("a token with another signature was accepted after the real one: %v", err)
	}
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "cus_2", "iss": "pos",
		"exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(strings.Repeat("x", 32)))
	if _, err := tok.Verify(strings.Split(forged, ".")[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]); !errors.Is(err, errs.Unauthorized) {
		t.Fatalf("other claims under a remembered signature were accepted: %v", err)
	}
	for i := range maxVerified + 10 {
		s, _ := tok.Issue(fmt.Sprintf("cus_%d", i), "")
		if p, err := tok.Verify(s); err != nil || p.Subject != fmt.Sprintf("cus_%d", i) {
			t.Fatalf("token %d: %+v %v", i, p, err)
		}
	}
	if n := len(tok.verified); n > maxVerified {
		t.Fatalf("%d tokens remembered, the bound is %d", n, maxVerified)
	}
	if p, err := tok.Verify(signed); err != nil || p.Subject != "cus_1" {
		t.Fatalf("a token forgotten when the memory was emptied must verify again: %+v %v", p, err)
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadSecret("", "", dir)
	if err != nil || len(a) < 32 {
		t.Fatalf("generate: %q %v", a, err)
	}
	b, err := LoadSecret("", "", dir)
	if err != nil || string(a) != string(b) {
		t.Fatal("the generated secret did not survive a restart")
	}
	c, err := LoadSecret("", filepath.Join(dir, "jwt.secret"), t.TempDir())
	if err != nil || string(c) != string(a) {
		t.Fatalf("secret file: %v", err)
	}
	if v, _ := LoadSecret("explicit", "", dir); string(v) != "explicit" {
		t.Fatal("an explicit secret must win")
	}
}

func TestRoles(t *testing.T) {
	cases := []struct {
		p    Principal
		role Role
		want bool
	}{
		{Principal{Role: RoleAdmin}, RoleCashier, true},
		{Principal{Role: RoleManager}, RoleCashier, true},
		{Principal{Role: RoleCashier}, RoleManager, false},
		{Principal{Role: RoleAgent}, RoleCashier, false},
		{Principal{Role: RoleCustomer}, RoleService, false},
	}
	for _, c := range cases {
		if got := c.p.Is(c.role); got != c.want {
			t.Errorf("%s is %s: %v, want %v", c.p.Role, c.role, got, c.want)
		}
	}
	if !RoleService.Valid() || RoleCustomer.Valid() {
		t.Fatal("customer is not a key role; service is")
	}
}

type countingStore struct {
	calls int
	err   error
	p     Principal
}

func (s *countingStore) AuthenticateKey(context.Context, string) (Principal, error) {
	s.calls++
	return s.p, s.err
}

func TestCachedAndChain(t *testing.T) {
	ctx := context.Background()
	key := NewAPIKey()
	if !LooksLikeKey(key) || LooksLikeKey("nope") || HashKey(key) == HashKey(NewAPIKey()) {
		t.Fatal("key format")
	}
	inner := &countingStore{p: Principal{Role: RoleCashier, Subject: "k1"}}
	c := NewCached(inner, time.Minute)
	now := time.Now()
	c.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if p, err := c.AuthenticateKey(ctx, key); err != nil || p.Subject != "k1" {
			t.Fatal(p, err)
		}
	}
	if inner.calls != 1 {
		t.Fatalf("cache missed: %d calls", inner.calls)
	}
	// Revoked upstream: refused once the entry is older than the TTL.
	inner.err = fmt.Errorf("revoked: %w", errs.Unauthorized)
	now = now.Add(2 * time.Minute)
	if _, err := c.AuthenticateKey(ctx, key); !errors.Is(err, errs.Unauthorized) {
		t.Fatalf("revoked key still accepted: %v", err)
	}
	// An outage is not remembered: the next call asks again.
	other := NewAPIKey()
	inner.err = fmt.Errorf("down: %w", errs.Unavailable)
	_, _ = c.AuthenticateKey(ctx, other)
	inner.err = nil
	if _, err := c.AuthenticateKey(ctx, other); err != nil {
		t.Fatalf("an outage was cached as a refusal: %v", err)
	}

	static := StaticKey{Key: "pos_static_service_key_000000", Principal: Principal{Role: RoleService}}
	chain := Chain{static, &countingStore{err: fmt.Errorf("no: %w", errs.Unauthorized)}}
	if p, err := chain.AuthenticateKey(ctx, "pos_static_service_key_000000"); err != nil || p.Role != RoleService {
		t.Fatal(p, err)
	}
	if _, err := chain.AuthenticateKey(ctx, "pos_unknown_key_0000000000000"); !errors.Is(err, errs.Unauthorized) {
		t.Fatal(err)
	}
	broken := Chain{&countingStore{err: fmt.Errorf("down: %w", errs.Unavailable)}, static}
	if _, err := broken.AuthenticateKey(ctx, "pos_static_service_key_000000"); !errors.Is(err, errs.Unavailable) {
		t.Fatalf("an outage must stop the chain, not fall through: %v", err)
	}
}
