package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/retailco/pos/internal/platform/errs"
)

// Tokens issues and verifies customer JWTs (HS256). Every process that
// serves customer routes holds the same secret, so verification needs no
// call to the customer context.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

// NewTokens builds a token issuer/verifier. The secret must have at least
// 32 bytes.
func NewTokens(secret []byte, ttl time.Duration) (*Tokens, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("jwt secret: need at least 32 bytes, got %d", len(secret))
	}
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	return &Tokens{secret: secret, ttl: ttl, now: time.Now}, nil
}

// TTL is how long issued tokens live.
func (t *Tokens) TTL() time.Duration { return t.ttl }

type customerClaims struct {
	Email string `json:"email"`
	jwt.RegisteredClaims
}

const issuer = "pos"

// Issue signs a token for a customer.
func (t *Tokens) Issue(customerID, email string) (string, error) {
	now := t.now()
	claims := customerClaims{
		Email: email,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   customerID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
		},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.secret)
}

// Verify checks a token and returns its customer principal.
func (t *Tokens) Verify(token string) (Principal, error) {
	var claims customerClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(issuer), jwt.WithTimeFunc(t.now), jwt.WithExpirationRequired())
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Principal{}, fmt.Errorf("token expired: %w", errs.Unauthorized)
		}
		return Principal{}, fmt.Errorf("invalid token: %w", errs.Unauthorized)
	}
	if claims.Subject == "" {
		return Principal{}, fmt.Errorf("token without subject: %w", errs.Unauthorized)
	}
	return Principal{Role: RoleCustomer, Subject: claims.Subject, Name: claims.Email}, nil
}

// LoadSecret finds the JWT secret: the value itself, else the file it names,
// else a secret generated on first start and kept in dataDir so tokens
// survive a restart of the embedded default.
func LoadSecret(value, file, dataDir string) ([]byte, error) {
	if value != "" {
		return []byte(value), nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("jwt secret file: %w", err)
		}
		return []byte(strings.TrimSpace(string(b))), nil
	}
	path := filepath.Join(dataDir, "jwt.secret")
	if b, err := os.ReadFile(path); err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	secret := hex.EncodeToString(raw[:])
	// O_EXCL: two processes starting on one data dir agree on one secret.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if os.IsExist(err) {
			return LoadSecret("", path, dataDir)
		}
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(secret + "\n"); err != nil {
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	return []byte(secret), nil
}
