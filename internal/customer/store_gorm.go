package customer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/readcache"
)

// customerRow is the customers table. It alone carries the password hash;
// domain() drops it, so nothing above the store ever holds it by accident.
type customerRow struct {
	ID           string `gorm:"primaryKey"`
	Email        string
	PasswordHash string
	FirstName    string
	LastName     string
	Phone        string
	Version      int
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

func (customerRow) TableName() string { return "customers" }

func (r customerRow) domain() Customer {
	return Customer{
		ID: r.ID, Email: r.Email, FirstName: r.FirstName, LastName: r.LastName, Phone: r.Phone,
		Version: r.Version, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

// credentials is what login needs and nothing else reads.
type credentials struct {
	id, email, hash string
}

type addressRow struct {
	ID         string `gorm:"primaryKey"`
	CustomerID string
	Label      string
	Line1      string `gorm:"column:line1"`
	Line2      string `gorm:"column:line2"`
	City       string
	Province   string
	PostalCode string
	Country    string
	IsDefault  bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

func (addressRow) TableName() string { return "addresses" }

func (r addressRow) domain() Address {
	return Address{
		ID: r.ID, CustomerID: r.CustomerID, Label: r.Label, Line1: r.Line1, Line2: r.Line2, City: r.City,
		Province: r.Province, PostalCode: r.PostalCode, Country: r.Country, IsDefault: r.IsDefault,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

func toAddressRow(a Address) addressRow {
	return addressRow{
		ID: a.ID, CustomerID: a.CustomerID, Label: a.Label, Line1: a.Line1, Line2: a.Line2, City: a.City,
		Province: a.Province, PostalCode: a.PostalCode, Country: a.Country, IsDefault: a.IsDefault,
		CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
}

// keyRow is the api_keys table: the key itself is never stored, only its
// hash, so a copy of the database grants nothing.
type keyRow struct {
	ID         string `gorm:"primaryKey"`
	Name       string
	Role       string
	LocationID *string
	KeyHash    string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

func (keyRow) TableName() string { return "api_keys" }

func (r keyRow) domain() APIKey {
	k := APIKey{ID: r.ID, Name: r.Name, Role: auth.Role(r.Role), CreatedAt: r.CreatedAt.UTC()}
	if r.LocationID != nil {
		k.LocationID = *r.LocationID
	}
	if r.LastUsedAt != nil {
		t := r.LastUsedAt.UTC()
		k.LastUsedAt = &t
	}
	if r.RevokedAt != nil {
		t := r.RevokedAt.UTC()
		k.RevokedAt = &t
	}
	return k
}

type store struct {
	db *gorm.DB
	// sqlDB is the pool under db, for the hot reads that go around gorm
	// (see queries); nil when gorm has none, and then gorm serves them.
	sqlDB *sql.DB
	q     queries
	pages *readcache.Versioned[Filter, page.Result[Customer]]
	// version and keys share reads among concurrent requests (see
	// readcache.Coalescer): the list's version, and API keys by hash.
	version *readcache.Coalescer[struct{}, int64]
	keys    *readcache.Coalescer[string, APIKey]
}

// queries are the statements of the hot reads, in the engine's
// placeholder syntax: they run on database/sql directly, because gorm's
// statement building and reflective scanning cost as much CPU as the
// queries themselves (catalog-100vu profile: a customer read spent half
// its time in gorm).
type queries struct {
	customer, activeKey string
}

func newStore(gdb *gorm.DB) *store {
	s := &store{db: gdb, pages: readcache.NewVersioned[Filter](clonePage)}
	if sqlDB, err := gdb.DB(); err == nil {
		s.sqlDB = sqlDB
	}
	s.version = readcache.TableVersion(s.sqlDB, "customers_version")
	s.keys = readcache.NewCoalescer(readcache.SharedReadTimeout, s.readKey)
	d := db.DialectOf(gdb)
	s.q = queries{
		customer: db.Rebind(d, `SELECT id, email, first_name, last_name, phone, version, created_at, updated_at FROM customers WHERE id = ?`),
		// An active key has no revoked_at, and key_hash is what was asked.
		activeKey: db.Rebind(d, `SELECT id, name, role, location_id, created_at, last_used_at FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL`),
	}
	return s
}

// errEmailTaken says no more than that: not whose, not since when.
var errEmailTaken = fmt.Errorf("this email is already registered: %w", errs.Conflict)

func (s *store) insertCustomer(ctx context.Context, c Customer, hash string) error {
	row := customerRow{
		ID: c.ID, Email: c.Email, PasswordHash: hash, FirstName: c.FirstName, LastName: c.LastName,
		Phone: c.Phone, Version: c.Version, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		if db.IsUniqueViolation(err) {
			return errEmailTaken
		}
		return fmt.Errorf("insert customer: %w", err)
	}
	return nil
}

func (s *store) customer(ctx context.Context, id string) (Customer, error) {
	var row customerRow
	var err error
	if s.sqlDB != nil {
		err = s.sqlDB.QueryRowContext(ctx, s.q.customer, id).Scan(&row.ID, &row.Email, &row.FirstName, &row.LastName,
			&row.Phone, &row.Version, &row.CreatedAt, &row.UpdatedAt)
	} else {
		err = s.db.WithContext(ctx).Omit("password_hash").Where("id = ?", id).Take(&row).Error
	}
	if errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, sql.ErrNoRows) {
		return Customer{}, fmt.Errorf("customer %q: %w", id, errs.NotFound)
	}
	if err != nil {
		return Customer{}, fmt.Errorf("get customer: %w", err)
	}
	return row.domain(), nil
}

func (s *store) credentials(ctx context.Context, email string) (credentials, error) {
	var row customerRow
	err := s.db.WithContext(ctx).Select("id", "email", "password_hash").Where("email = ?", email).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return credentials{}, fmt.Errorf("no customer with that email: %w", errs.NotFound)
	}
	if err != nil {
		return credentials{}, fmt.Errorf("read credentials: %w", err)
	}
	return credentials{id: row.ID, email: row.Email, hash: row.PasswordHash}, nil
}

// setPasswordHash replaces oldHash only: a password changed in between is
// never overwritten with the re-hash of the previous one.
func (s *store) setPasswordHash(ctx context.Context, id, oldHash, newHash string) error {
	err := s.db.WithContext(ctx).Model(&customerRow{}).Where("id = ? AND password_hash = ?", id, oldHash).
		Update("password_hash", newHash).Error
	if err != nil {
		return fmt.Errorf("store password hash: %w", err)
	}
	return nil
}

// listCustomers serves a page from the cache when the customers have not
// changed since it was read (see readcache.Versioned), else from the database.
func (s *store) listCustomers(ctx context.Context, f Filter) (page.Result[Customer], error) {
	if s.sqlDB == nil {
		return s.queryCustomers(ctx, f)
	}
	return s.pages.Through(ctx, s.version, f, func(ctx context.Context) (page.Result[Customer], error) {
		return s.queryCustomers(ctx, f)
	})
}

func (s *store) queryCustomers(ctx context.Context, f Filter) (page.Result[Customer], error) {
	q := s.db.WithContext(ctx).Model(&customerRow{})
	if f.Search != "" {
		like := "%" + escapeLike(strings.ToLower(f.Search)) + "%"
		q = q.Where(`(LOWER(email) LIKE ? ESCAPE '\' OR LOWER(first_name) LIKE ? ESCAPE '\' OR LOWER(last_name) LIKE ? ESCAPE '\'`+
			` OR LOWER(first_name || ' ' || last_name) LIKE ? ESCAPE '\' OR phone LIKE ? ESCAPE '\')`, like, like, like, like, like)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[Customer]{}, fmt.Errorf("count customers: %w", err)
	}
	var rows []customerRow
	if total > 0 {
		err := q.Omit("password_hash").Order("last_name, first_name, id").
			Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error
		if err != nil {
			return page.Result[Customer]{}, fmt.Errorf("list customers: %w", err)
		}
	}
	out := make([]Customer, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return page.Result[Customer]{Items: out, Total: total}, nil
}

// updateCustomer reads, changes and writes one customer in a transaction;
// the write is conditional on the version read, so a concurrent update in
// between is caught on both engines without row locks.
func (s *store) updateCustomer(ctx context.Context, id string, change func(*Customer) error) (Customer, error) {
	var out Customer
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row customerRow
		err := tx.Omit("password_hash").Where("id = ?", id).Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("customer %q: %w", id, errs.NotFound)
		}
		if err != nil {
			return fmt.Errorf("get customer: %w", err)
		}
		c := row.domain()
		if err := change(&c); err != nil {
			return err
		}
		res := tx.Model(&customerRow{}).Where("id = ? AND version = ?", id, row.Version).Updates(map[string]any{
			"email": c.Email, "first_name": c.FirstName, "last_name": c.LastName, "phone": c.Phone,
			"version": c.Version, "updated_at": c.UpdatedAt,
		})
		if res.Error != nil {
			if db.IsUniqueViolation(res.Error) {
				return errEmailTaken
			}
			return fmt.Errorf("update customer: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("customer %s changed concurrently: %w", id, errs.Conflict)
		}
		out = c
		return nil
	})
	return out, err
}

// lockCustomer takes the customer's row lock for the rest of tx (SQLite
// needs none: its write transactions are serialised already). Every
// address change goes through it, so two concurrent changes for one
// customer cannot both see "no default yet" or both promote a default.
func lockCustomer(tx *gorm.DB, id string) error {
	var row customerRow
	err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Select("id").Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("customer %q: %w", id, errs.NotFound)
	}
	if err != nil {
		return fmt.Errorf("lock customer: %w", err)
	}
	return nil
}

func (s *store) addresses(ctx context.Context, customerID string) ([]Address, error) {
	var rows []addressRow
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var c customerRow
		err := tx.Select("id").Where("id = ?", customerID).Take(&c).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("customer %q: %w", customerID, errs.NotFound)
		}
		if err != nil {
			return fmt.Errorf("get customer: %w", err)
		}
		if err := tx.Where("customer_id = ?", customerID).Order("is_default DESC, created_at, id").Find(&rows).Error; err != nil {
			return fmt.Errorf("list addresses: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Address, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, nil
}

// unsetDefault clears the customer's default, before another takes it: the
// partial unique index admits one default per customer at any moment.
func unsetDefault(tx *gorm.DB, customerID string, now time.Time) error {
	err := tx.Model(&addressRow{}).Where("customer_id = ? AND is_default", customerID).
		Updates(map[string]any{"is_default": false, "updated_at": now}).Error
	if err != nil {
		return fmt.Errorf("unset default address: %w", err)
	}
	return nil
}

func (s *store) addAddress(ctx context.Context, a Address) (Address, error) {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockCustomer(tx, a.CustomerID); err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&addressRow{}).Where("customer_id = ?", a.CustomerID).Count(&n).Error; err != nil {
			return fmt.Errorf("count addresses: %w", err)
		}
		if n >= MaxAddresses {
			return fmt.Errorf("customer %s has %d addresses, the most allowed: %w", a.CustomerID, n, errs.Conflict)
		}
		switch {
		case n == 0:
			a.IsDefault = true // the first address is the default
		case a.IsDefault:
			if err := unsetDefault(tx, a.CustomerID, a.CreatedAt); err != nil {
				return err
			}
		}
		row := toAddressRow(a)
		if err := tx.Create(&row).Error; err != nil {
			return addressWriteError("insert", err)
		}
		return nil
	})
	if err != nil {
		return Address{}, err
	}
	return a, nil
}

// address reads one address of the customer inside tx. An address of
// another customer is NotFound, like one that does not exist.
func address(tx *gorm.DB, customerID, addressID string) (addressRow, error) {
	var row addressRow
	err := tx.Where("id = ? AND customer_id = ?", addressID, customerID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return row, fmt.Errorf("address %q of customer %q: %w", addressID, customerID, errs.NotFound)
	}
	if err != nil {
		return row, fmt.Errorf("get address: %w", err)
	}
	return row, nil
}

// addressWriteError classifies a failed address write. The customer lock
// makes a clash on the one-default index impossible; should it happen all
// the same (a writer that skipped the lock), it is a conflict to retry,
// not a crash.
func addressWriteError(op string, err error) error {
	if db.IsUniqueViolation(err) {
		return fmt.Errorf("%s address: changed concurrently, retry: %w", op, errs.Conflict)
	}
	return fmt.Errorf("%s address: %w", op, err)
}

func (s *store) updateAddress(ctx context.Context, customerID, addressID string, change func(*Address) error) (Address, error) {
	var out Address
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockCustomer(tx, customerID); err != nil {
			return err
		}
		row, err := address(tx, customerID, addressID)
		if err != nil {
			return err
		}
		a := row.domain()
		if err := change(&a); err != nil {
			return err
		}
		if a.IsDefault && !row.IsDefault {
			if err := unsetDefault(tx, customerID, a.UpdatedAt); err != nil {
				return err
			}
		}
		err = tx.Model(&addressRow{}).Where("id = ?", addressID).Updates(map[string]any{
			"label": a.Label, "line1": a.Line1, "line2": a.Line2, "city": a.City, "province": a.Province,
			"postal_code": a.PostalCode, "country": a.Country, "is_default": a.IsDefault, "updated_at": a.UpdatedAt,
		}).Error
		if err != nil {
			return addressWriteError("update", err)
		}
		out = a
		return nil
	})
	return out, err
}

func (s *store) deleteAddress(ctx context.Context, customerID, addressID string, now time.Time) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockCustomer(tx, customerID); err != nil {
			return err
		}
		row, err := address(tx, customerID, addressID)
		if err != nil {
			return err
		}
		if err := tx.Where("id = ?", addressID).Delete(&addressRow{}).Error; err != nil {
			return fmt.Errorf("delete address: %w", err)
		}
		if !row.IsDefault {
			return nil
		}
		// The default went: the oldest remaining address takes over, so a
		// customer with addresses always has exactly one default.
		var next addressRow
		err = tx.Where("customer_id = ?", customerID).Order("created_at, id").Take(&next).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("find next default address: %w", err)
		}
		err = tx.Model(&addressRow{}).Where("id = ?", next.ID).
			Updates(map[string]any{"is_default": true, "updated_at": now}).Error
		if err != nil {
			return fmt.Errorf("promote default address: %w", err)
		}
		return nil
	})
}

func (s *store) insertKey(ctx context.Context, k APIKey, hash string) error {
	row := keyRow{ID: k.ID, Name: k.Name, Role: string(k.Role), KeyHash: hash, CreatedAt: k.CreatedAt}
	if k.LocationID != "" {
		row.LocationID = &k.LocationID
	}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

func (s *store) listKeys(ctx context.Context, p page.Request) (page.Result[APIKey], error) {
	q := s.db.WithContext(ctx).Model(&keyRow{})
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[APIKey]{}, fmt.Errorf("count api keys: %w", err)
	}
	var rows []keyRow
	if total > 0 {
		// key_hash is left out: it is no one's business either.
		err := q.Omit("key_hash").Order("created_at, id").Offset(p.Offset()).Limit(p.Limit()).Find(&rows).Error
		if err != nil {
			return page.Result[APIKey]{}, fmt.Errorf("list api keys: %w", err)
		}
	}
	out := make([]APIKey, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return page.Result[APIKey]{Items: out, Total: total}, nil
}

// activeKey runs on every request that carries an API key; concurrent
// requests with the same key share a lookup that began after they asked,
// so a revocation committed before a request is always seen.
func (s *store) activeKey(ctx context.Context, hash string) (APIKey, error) {
	return s.keys.Get(ctx, hash)
}

func (s *store) readKey(ctx context.Context, hash string) (APIKey, error) {
	var row keyRow
	var err error
	if s.sqlDB != nil {
		err = s.sqlDB.QueryRowContext(ctx, s.q.activeKey, hash).Scan(&row.ID, &row.Name, &row.Role, &row.LocationID,
			&row.CreatedAt, &row.LastUsedAt)
	} else {
		err = s.db.WithContext(ctx).Where("key_hash = ? AND revoked_at IS NULL", hash).Take(&row).Error
	}
	if errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, fmt.Errorf("api key: %w", errs.NotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("get api key: %w", err)
	}
	return row.domain(), nil
}

// touchKey records a use unless one at or after staleBefore is recorded
// already: concurrent requests of one key write once between them.
func (s *store) touchKey(ctx context.Context, id string, now, staleBefore time.Time) error {
	err := s.db.WithContext(ctx).Model(&keyRow{}).
		Where("id = ? AND (last_used_at IS NULL OR last_used_at < ?)", id, staleBefore).
		Update("last_used_at", now).Error
	if err != nil {
		return fmt.Errorf("record api key use: %w", err)
	}
	return nil
}

func (s *store) revokeKey(ctx context.Context, id string, now time.Time) error {
	res := s.db.WithContext(ctx).Model(&keyRow{}).Where("id = ? AND revoked_at IS NULL", id).Update("revoked_at", now)
	if res.Error != nil {
		return fmt.Errorf("revoke api key: %w", res.Error)
	}
	if res.RowsAffected > 0 {
		return nil
	}
	// Nothing changed: revoked already (fine, revoking is idempotent) or
	// no such key.
	var n int64
	if err := s.db.WithContext(ctx).Model(&keyRow{}).Where("id = ?", id).Count(&n).Error; err != nil {
		return fmt.Errorf("find api key: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("api key %q: %w", id, errs.NotFound)
	}
	return nil
}

// escapeLike makes user text literal inside a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
