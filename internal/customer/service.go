package customer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
	"github.com/retailco/pos/internal/platform/page"
)

// Options tune the local service; zero values take the defaults.
type Options struct {
	// BcryptCost is the password hashing cost (default bcrypt.DefaultCost;
	// the binary passes config.BcryptCost, tests bcrypt.MinCost).
	BcryptCost int
	// Now is the clock (default time.Now); tests move it to age out login
	// failures.
	Now func() time.Time
	// Limits bound failed logins per account and per client address.
	Limits LoginLimits
}

// Limits of the data this context keeps.
const (
	// DefaultCountry is the country of an address that names none, and the
	// only one served: provinces and postal codes are Canadian.
	DefaultCountry = "CA"
	// MaxAddresses bounds the addresses of one customer; the list is not
	// paged, so it must stay small.
	MaxAddresses = 20
	// keyTouchInterval is how stale last_used_at may get: writing it on
	// every request would turn each authenticated read into a write.
	keyTouchInterval = time.Minute
)

type service struct {
	store   *store
	tokens  *auth.Tokens
	cost    int
	now     func() time.Time
	limits  LoginLimits
	limiter *failureLimiter
	// dummyHash is compared against when the e-mail is unknown, so that a
	// wrong e-mail costs the same bcrypt time as a wrong password and
	// response timing does not reveal which accounts exist.
	dummyHash []byte
}

var _ Service = (*service)(nil)

// New returns the local customer context on gdb (already migrated). tokens
// issues the customer tokens that every process verifies.
func New(gdb *gorm.DB, tokens *auth.Tokens, opts Options) Service {
	cost := opts.BcryptCost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	cost = min(max(cost, bcrypt.MinCost), bcrypt.MaxCost)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	limits := opts.Limits.withDefaults()
	s := &service{
		store:   newStore(gdb),
		tokens:  tokens,
		cost:    cost,
		now:     func() time.Time { return now().UTC().Truncate(time.Microsecond) },
		limits:  limits,
		limiter: newFailureLimiter(limits.Window, limits.MaxTracked),
	}
	// A random password nobody knows, hashed at the same cost as real ones.
	// The cost is clamped above, so GenerateFromPassword cannot fail.
	s.dummyHash, _ = bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	return s
}

// errBadCredentials is the one answer to a wrong e-mail or a wrong
// password: the caller must not learn which it was.
var errBadCredentials = fmt.Errorf("invalid email or password: %w", errs.Unauthorized)

func (s *service) Register(ctx context.Context, in Registration) (Customer, error) {
	c := Customer{
		Email:     normalizeEmail(in.Email),
		FirstName: strings.TrimSpace(in.FirstName),
		LastName:  strings.TrimSpace(in.LastName),
		Phone:     strings.TrimSpace(in.Phone),
	}
	var v errs.Validator
	checkEmail(&v, c.Email)
	checkPassword(&v, in.Password)
	checkName(&v, "first_name", c.FirstName)
	checkName(&v, "last_name", c.LastName)
	checkPhone(&v, c.Phone)
	if err := v.Err(); err != nil {
		return Customer{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(in.Password), s.cost)
	if err != nil {
		return Customer{}, fmt.Errorf("hash password: %w", err)
	}
	now := s.now()
	c.ID, c.Version, c.CreatedAt, c.UpdatedAt = ids.New("cus"), 1, now, now
	if err := s.store.insertCustomer(ctx, c, string(hash)); err != nil {
		return Customer{}, err
	}
	return c, nil
}

func (s *service) Login(ctx context.Context, in Credentials) (Session, error) {
	email := normalizeEmail(in.Email)
	var v errs.Validator
	v.Check(email != "", "email", "is required")
	v.Check(len(email) <= 254, "email", "must be at most 254 bytes")
	v.Check(in.Password != "", "password", "is required")
	v.Check(len(in.Password) <= 72, "password", "must be at most 72 bytes")
	if err := v.Err(); err != nil {
		return Session{}, err
	}
	if s.tokens == nil {
		return Session{}, fmt.Errorf("login: no token issuer configured: %w", errs.Unavailable)
	}

	keys := []limitKey{{accountKey(email), s.limits.AccountFailures}}
	ipKey := ""
	if in.ClientIP != "" {
		ipKey = addressKey(in.ClientIP)
		keys = append(keys, limitKey{ipKey, s.limits.IPFailures})
	}
	at := s.now()
	if wait, ok := s.limiter.attempt(at, keys...); !ok {
		return Session{}, errs.RetryLater(wait, fmt.Errorf("login: too many failed attempts for this account or address: %w", errs.TooManyRequests))
	}
	// forgiveAll takes the attempt back when it did not test a password.
	forgiveAll := func() {
		for _, k := range keys {
			s.limiter.forgive(k.key, at)
		}
	}

	cred, err := s.store.credentials(ctx, email)
	found := err == nil
	if err != nil && !errs.IsKind(err, errs.NotFound) {
		forgiveAll()
		return Session{}, err
	}
	hash := s.dummyHash
	if found {
		hash = []byte(cred.hash)
	}
	cmp := bcrypt.CompareHashAndPassword(hash, []byte(in.Password))
	if !found || errors.Is(cmp, bcrypt.ErrMismatchedHashAndPassword) {
		return Session{}, errBadCredentials // the charged failure stays
	}
	if cmp != nil {
		forgiveAll()
		return Session{}, fmt.Errorf("login: stored hash of %s unusable: %w", cred.id, cmp)
	}

	// Only the account is cleared: an address that found one good password
	// must not reset its budget for guessing others.
	s.limiter.reset(accountKey(email))
	if ipKey != "" {
		s.limiter.forgive(ipKey, at)
	}
	s.upgradeHash(ctx, cred, in.Password)
	token, err := s.tokens.Issue(cred.id, cred.email)
	if err != nil {
		return Session{}, fmt.Errorf("issue token: %w", err)
	}
	return Session{Token: token, TokenType: "Bearer", ExpiresIn: int(s.tokens.TTL() / time.Second), CustomerID: cred.id}, nil
}

// upgradeHash re-hashes a password stored at another cost than configured,
// while the plain password is at hand: raising POS_BCRYPT_COST then
// strengthens every account as its owner logs in. It is best effort: the
// login already succeeded and the old hash still works, so a failure here
// is not the caller's problem and the next login tries again.
func (s *service) upgradeHash(ctx context.Context, cred credentials, password string) {
	if cost, err := bcrypt.Cost([]byte(cred.hash)); err != nil || cost == s.cost {
		return
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return
	}
	_ = s.store.setPasswordHash(ctx, cred.id, cred.hash, string(hash))
}

func (s *service) GetCustomer(ctx context.Context, id string) (Customer, error) {
	return s.store.customer(ctx, id)
}

func (s *service) ListCustomers(ctx context.Context, f Filter) (page.Result[Customer], error) {
	f.Page = f.Page.Normalize()
	f.Search = strings.TrimSpace(f.Search)
	if utf8.RuneCountInString(f.Search) > 200 {
		return page.Result[Customer]{}, errs.Field("search", "must be at most 200 characters")
	}
	return s.store.listCustomers(ctx, f)
}

func (s *service) UpdateCustomer(ctx context.Context, id string, in CustomerUpdate) (Customer, error) {
	var v errs.Validator
	if in.Email != nil {
		*in.Email = normalizeEmail(*in.Email)
		checkEmail(&v, *in.Email)
	}
	if in.FirstName != nil {
		*in.FirstName = strings.TrimSpace(*in.FirstName)
		checkName(&v, "first_name", *in.FirstName)
	}
	if in.LastName != nil {
		*in.LastName = strings.TrimSpace(*in.LastName)
		checkName(&v, "last_name", *in.LastName)
	}
	if in.Phone != nil {
		*in.Phone = strings.TrimSpace(*in.Phone)
		checkPhone(&v, *in.Phone)
	}
	if in.Version != nil {
		v.Check(*in.Version >= 1, "version", "must be at least 1")
	}
	if err := v.Err(); err != nil {
		return Customer{}, err
	}
	return s.store.updateCustomer(ctx, id, func(c *Customer) error {
		if in.Version != nil && *in.Version != c.Version {
			return fmt.Errorf("customer %s is at version %d, not %d: %w", id, c.Version, *in.Version, errs.Conflict)
		}
		apply(&c.Email, in.Email)
		apply(&c.FirstName, in.FirstName)
		apply(&c.LastName, in.LastName)
		apply(&c.Phone, in.Phone)
		c.Version++
		c.UpdatedAt = s.now()
		return nil
	})
}

func (s *service) ListAddresses(ctx context.Context, customerID string) ([]Address, error) {
	return s.store.addresses(ctx, customerID)
}

func (s *service) AddAddress(ctx context.Context, customerID string, in NewAddress) (Address, error) {
	a := Address{
		Label: strings.TrimSpace(in.Label), Line1: strings.TrimSpace(in.Line1), Line2: strings.TrimSpace(in.Line2),
		City: strings.TrimSpace(in.City), Province: normalizeProvince(in.Province),
		PostalCode: normalizePostalCode(in.PostalCode), Country: strings.ToUpper(strings.TrimSpace(in.Country)),
		IsDefault: in.IsDefault,
	}
	if a.Country == "" {
		a.Country = DefaultCountry
	}
	var v errs.Validator
	checkAddress(&v, a)
	if err := v.Err(); err != nil {
		return Address{}, err
	}
	now := s.now()
	a.ID, a.CustomerID, a.CreatedAt, a.UpdatedAt = ids.New("adr"), customerID, now, now
	return s.store.addAddress(ctx, a)
}

func (s *service) UpdateAddress(ctx context.Context, customerID, addressID string, in AddressUpdate) (Address, error) {
	trim := func(p *string, norm func(string) string) {
		if p != nil {
			*p = norm(*p)
		}
	}
	trim(in.Label, strings.TrimSpace)
	trim(in.Line1, strings.TrimSpace)
	trim(in.Line2, strings.TrimSpace)
	trim(in.City, strings.TrimSpace)
	trim(in.Province, normalizeProvince)
	trim(in.PostalCode, normalizePostalCode)
	trim(in.Country, func(c string) string { return strings.ToUpper(strings.TrimSpace(c)) })
	return s.store.updateAddress(ctx, customerID, addressID, func(a *Address) error {
		if in.IsDefault != nil && !*in.IsDefault && a.IsDefault {
			return errs.Field("is_default", "the default address stays the default until another address is made the default")
		}
		apply(&a.Label, in.Label)
		apply(&a.Line1, in.Line1)
		apply(&a.Line2, in.Line2)
		apply(&a.City, in.City)
		apply(&a.Province, in.Province)
		apply(&a.PostalCode, in.PostalCode)
		apply(&a.Country, in.Country)
		if in.IsDefault != nil && *in.IsDefault {
			a.IsDefault = true
		}
		// The merged address is validated as a whole, so the rules are
		// exactly those of AddAddress.
		var v errs.Validator
		checkAddress(&v, *a)
		if err := v.Err(); err != nil {
			return err
		}
		a.UpdatedAt = s.now()
		return nil
	})
}

func (s *service) DeleteAddress(ctx context.Context, customerID, addressID string) error {
	return s.store.deleteAddress(ctx, customerID, addressID, s.now())
}

func (s *service) CreateAPIKey(ctx context.Context, in NewAPIKey) (CreatedAPIKey, error) {
	in.Name = strings.TrimSpace(in.Name)
	in.LocationID = strings.TrimSpace(in.LocationID)
	var v errs.Validator
	checkText(&v, "name", in.Name, true, 100)
	v.Check(in.Role.Valid(), "role", "must be one of admin, manager, cashier, agent, service")
	checkText(&v, "location_id", in.LocationID, false, 64)
	if err := v.Err(); err != nil {
		return CreatedAPIKey{}, err
	}
	key := auth.NewAPIKey()
	k := APIKey{ID: ids.New("key"), Name: in.Name, Role: in.Role, LocationID: in.LocationID, CreatedAt: s.now()}
	if err := s.store.insertKey(ctx, k, auth.HashKey(key)); err != nil {
		return CreatedAPIKey{}, err
	}
	return CreatedAPIKey{APIKey: k, Key: key}, nil
}

func (s *service) ListAPIKeys(ctx context.Context, p page.Request) (page.Result[APIKey], error) {
	return s.store.listKeys(ctx, p.Normalize())
}

func (s *service) RevokeAPIKey(ctx context.Context, id string) error {
	return s.store.revokeKey(ctx, id, s.now())
}

func (s *service) AuthenticateKey(ctx context.Context, key string) (auth.Principal, error) {
	// Garbage never reaches the database.
	if !auth.LooksLikeKey(key) {
		return auth.Principal{}, fmt.Errorf("unknown api key: %w", errs.Unauthorized)
	}
	k, err := s.store.activeKey(ctx, auth.HashKey(key))
	if errs.IsKind(err, errs.NotFound) {
		return auth.Principal{}, fmt.Errorf("unknown or revoked api key: %w", errs.Unauthorized)
	}
	if err != nil {
		return auth.Principal{}, err
	}
	if now := s.now(); k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= keyTouchInterval {
		// Best effort: a lost usage timestamp must not turn away a valid
		// key, and the next request past the interval writes it again.
		_ = s.store.touchKey(ctx, k.ID, now, now.Add(-keyTouchInterval))
	}
	return auth.Principal{Role: k.Role, Subject: k.ID, Name: k.Name, LocationID: k.LocationID}, nil
}

// normalizeEmail is the one form e-mails are stored and looked up in, so
// " Ann@Example.COM" and "ann@example.com" are one account.
func normalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func checkEmail(v *errs.Validator, e string) {
	v.Check(validEmail(e), "email", "must be an e-mail address such as name@example.com")
}

// validEmail accepts plain addresses (no display names, no quoted or
// commented parts, no control characters) with a dotted domain: what a
// shop can actually send mail to.
func validEmail(e string) bool {
	if len(e) < 3 || len(e) > 254 {
		return false
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Name != "" || a.Address != e {
		return false
	}
	local, domain, ok := strings.Cut(e, "@")
	return ok && local != "" && len(local) <= 64 && strings.Contains(domain, ".") &&
		!strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".") &&
		!strings.ContainsAny(e, " \t\r\n\"`;\\<>")
}

func checkPassword(v *errs.Validator, p string) {
	// bcrypt reads at most 72 bytes: a longer password would be silently
	// truncated, so it is refused instead.
	v.Check(len(p) >= 8, "password", "must be at least 8 bytes")
	v.Check(len(p) <= 72, "password", "must be at most 72 bytes")
}

func checkName(v *errs.Validator, field, name string) {
	checkText(v, field, name, true, 100)
}

// checkText holds the rules every free-text field shares: a length bound
// and no control characters (they serve no purpose in a name and would
// let a value forge lines in logs and receipts).
func checkText(v *errs.Validator, field, s string, required bool, maxRunes int) {
	if required {
		v.Check(s != "", field, "is required")
	}
	v.Check(utf8.ValidString(s), field, "must be valid UTF-8")
	v.Check(utf8.RuneCountInString(s) <= maxRunes, field, "must be at most %d characters", maxRunes)
	v.Check(!strings.ContainsFunc(s, unicode.IsControl), field, "must not contain control characters")
}

var phonePattern = regexp.MustCompile(`^\+?[0-9 ().-]{7,32}$`)

func checkPhone(v *errs.Validator, p string) {
	if p == "" {
		return // optional
	}
	digits := 0
	for _, r := range p {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	v.Check(phonePattern.MatchString(p) && digits >= 7 && digits <= 15, "phone", "must be a phone number: 7 to 15 digits, optionally with + ( ) . - and spaces")
}

// provinces are the Canadian provinces and territories (ISO 3166-2:CA).
var provinces = map[string]bool{
	"AB": true, "BC": true, "MB": true, "NB": true, "NL": true, "NS": true, "NT": true,
	"NU": true, "ON": true, "PE": true, "QC": true, "SK": true, "YT": true,
}

func normalizeProvince(p string) string { return strings.ToUpper(strings.TrimSpace(p)) }

// postalPattern is Canada Post's format without the space: letters D F I
// O Q U never appear, and W Z never lead.
var postalPattern = regexp.MustCompile(`^[ABCEGHJ-NPRSTVXY][0-9][ABCEGHJ-NPRSTV-Z][0-9][ABCEGHJ-NPRSTV-Z][0-9]$`)

// normalizePostalCode turns " h2x-1y4" into "H2X 1Y4"; anything that does
// not fit the format is returned upper-cased for the validator to refuse.
func normalizePostalCode(p string) string {
	compact := strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(strings.TrimSpace(p)))
	if postalPattern.MatchString(compact) {
		return compact[:3] + " " + compact[3:]
	}
	return compact
}

func checkAddress(v *errs.Validator, a Address) {
	checkText(v, "label", a.Label, false, 50)
	checkText(v, "line1", a.Line1, true, 200)
	checkText(v, "line2", a.Line2, false, 200)
	checkText(v, "city", a.City, true, 100)
	v.Check(provinces[a.Province], "province", "must be a Canadian province or territory code such as QC or ON")
	v.Check(len(a.PostalCode) == 7 && postalPattern.MatchString(strings.Replace(a.PostalCode, " ", "", 1)),
		"postal_code", "must be a Canadian postal code such as H2X 1Y4")
	v.Check(a.Country == DefaultCountry, "country", "must be CA: only Canadian addresses are served")
}

func apply[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
