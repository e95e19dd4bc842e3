package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
)

// cartRow is the carts table; the lines are JSON in one column.
type cartRow struct {
	SessionID  string `gorm:"primaryKey"`
	CustomerID *string
	Lines      string
	Version    int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
	ExpiresAt  time.Time
}

func (cartRow) TableName() string { return "carts" }

func (r cartRow) doc() (doc, error) {
	d := doc{Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, ExpiresAt: r.ExpiresAt}
	if r.CustomerID != nil {
		d.CustomerID = *r.CustomerID
	}
	if err := json.Unmarshal([]byte(r.Lines), &d.Lines); err != nil {
		return doc{}, fmt.Errorf("decode cart %s: %w", r.SessionID, err)
	}
	return d, nil
}

type sqlStore struct {
	db *gorm.DB
	pg bool
}

// NewSQLStore keeps carts in the carts table of gdb (migrated with
// Migrations): the embedded default, one SQLite file, or PostgreSQL.
func NewSQLStore(gdb *gorm.DB) Store {
	return &sqlStore{db: gdb, pg: db.DialectOf(gdb) == db.Postgres}
}

func (s *sqlStore) load(ctx context.Context, sessionID string, now time.Time) (Cart, error) {
	var row cartRow
	err := s.db.WithContext(ctx).Where("session_id = ?", sessionID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Cart{}, notFound(sessionID)
	}
	if err != nil {
		return Cart{}, fmt.Errorf("get cart: %w", err)
	}
	// Expired rows linger until PurgeExpired; they are gone all the same.
	if !row.ExpiresAt.After(now) {
		return Cart{}, notFound(sessionID)
	}
	d, err := row.doc()
	if err != nil {
		return Cart{}, err
	}
	return d.cart(sessionID), nil
}

// update reads and writes the row in one transaction. PostgreSQL locks the
// row (FOR UPDATE) and SQLite takes its write lock at BEGIN, so writers to
// one cart queue up instead of failing; the write is still conditional on
// the version read, so a lost race can never overwrite silently, and the
// one race left (two first writers inserting the same new cart) is
// retried through the primary key.
func (s *sqlStore) update(ctx context.Context, sessionID string, now time.Time, change func(*Cart) error) (Cart, error) {
	var out Cart
	err := retry(ctx, sessionID, func() error {
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			q := tx
			if s.pg {
				q = q.Clauses(clause.Locking{Strength: "UPDATE"})
			}
			var row cartRow
			err := q.Where("session_id = ?", sessionID).Take(&row).Error
			exists := err == nil
			if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
				return fmt.Errorf("get cart: %w", err)
			}
			cur := fresh(sessionID)
			if exists && row.ExpiresAt.After(now) {
				d, err := row.doc()
				if err != nil {
					return err
				}
				cur = d.cart(sessionID)
			}
			next := clone(cur)
			switch err := change(&next); {
			case errors.Is(err, errNoChange):
				out = cur
				return nil
			case errors.Is(err, errDelete):
				out = fresh(sessionID)
				if !exists {
					return nil
				}
				return checkOne(tx.Exec(`DELETE FROM carts WHERE session_id = ? AND version = ?`, sessionID, row.Version), "delete cart")
			case err != nil:
				return err
			}
			// Versions grow from the row's, even past an expiry, so a
			// version once read never comes back.
			d := toDoc(next)
			d.Version = row.Version + 1
			lines, err := json.Marshal(d.Lines)
			if err != nil {
				return fmt.Errorf("encode cart %s: %w", sessionID, err)
			}
			var customer *string
			if d.CustomerID != "" {
				customer = &d.CustomerID
			}
			if exists {
				err = checkOne(tx.Exec(`UPDATE carts SET customer_id = ?, lines = ?, version = ?, created_at = ?, updated_at = ?, expires_at = ?
					WHERE session_id = ? AND version = ?`,
					customer, string(lines), d.Version, d.CreatedAt, d.UpdatedAt, d.ExpiresAt, sessionID, row.Version), "update cart")
			} else {
				err = tx.Exec(`INSERT INTO carts (session_id, customer_id, lines, version, created_at, updated_at, expires_at)
					VALUES (?, ?, ?, ?, ?, ?, ?)`,
					sessionID, customer, string(lines), d.Version, d.CreatedAt, d.UpdatedAt, d.ExpiresAt).Error
				if db.IsUniqueViolation(err) {
					err = errStale // another first writer created it: start over on theirs
				} else if err != nil {
					err = fmt.Errorf("insert cart: %w", err)
				}
			}
			if err != nil {
				return err
			}
			out = d.cart(sessionID)
			return nil
		})
		if db.IsSerializationFailure(err) {
			return errStale
		}
		return err
	})
	return out, err
}

// checkOne turns "no row matched the version" into errStale.
func checkOne(res *gorm.DB, what string) error {
	if res.Error != nil {
		return fmt.Errorf("%s: %w", what, res.Error)
	}
	if res.RowsAffected == 0 {
		return errStale
	}
	return nil
}

func (s *sqlStore) purge(ctx context.Context, now time.Time, limit int) (int, error) {
	// A subquery bounds the batch on both engines (PostgreSQL's DELETE
	// takes no LIMIT).
	res := s.db.WithContext(ctx).Exec(`DELETE FROM carts WHERE session_id IN
		(SELECT session_id FROM carts WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`, now, limit)
	if res.Error != nil {
		return 0, fmt.Errorf("purge carts: %w", res.Error)
	}
	return int(res.RowsAffected), nil
}

func notFound(sessionID string) error {
	return fmt.Errorf("no cart for session %s: %w", sessionID, errs.NotFound)
}
