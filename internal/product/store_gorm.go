package product

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/readcache"
)

// productRow is the products table; domain types never carry gorm tags.
type productRow struct {
	ID             string `gorm:"primaryKey"`
	SKU            string `gorm:"column:sku"`
	Name           string
	Description    string
	CategoryID     *string
	PriceCents     int64
	Currency       string
	AlertThreshold int
	Active         bool
	Version        int
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

func (productRow) TableName() string { return "products" }

func (r productRow) domain() Product {
	p := Product{
		ID: r.ID, SKU: r.SKU, Name: r.Name, Description: r.Description, PriceCents: r.PriceCents,
		Currency: r.Currency, AlertThreshold: r.AlertThreshold, Active: r.Active, Version: r.Version,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if r.CategoryID != nil {
		p.CategoryID = *r.CategoryID
	}
	return p
}

func toProductRow(p Product) productRow {
	r := productRow{
		ID: p.ID, SKU: p.SKU, Name: p.Name, Description: p.Description, PriceCents: p.PriceCents,
		Currency: p.Currency, AlertThreshold: p.AlertThreshold, Active: p.Active, Version: p.Version,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	if p.CategoryID != "" {
		r.CategoryID = &p.CategoryID
	}
	return r
}

type categoryRow struct {
	ID          string `gorm:"primaryKey"`
	Name        string
	Description string
	ParentID    *string
	CreatedAt   time.Time
}

func (categoryRow) TableName() string { return "categories" }

func (r categoryRow) domain() Category {
	c := Category{ID: r.ID, Name: r.Name, Description: r.Description, CreatedAt: r.CreatedAt.UTC()}
	if r.ParentID != nil {
		c.ParentID = *r.ParentID
	}
	return c
}

type store struct {
	db *gorm.DB
	// sqlDB is the pool under db, for the catalog version; nil turns the
	// page cache off.
	sqlDB *sql.DB
	pages *readcache.Versioned[pageKey, page.Result[Product]]
	// byID keeps products by id under the same version: carts price
	// every line they add with one.
	byID *readcache.Versioned[string, Product]
	// version shares the reads of the catalog version among concurrent
	// lists (see readcache.Coalescer).
	version *readcache.Coalescer[struct{}, int64]
}

func newStore(gdb *gorm.DB) *store {
	s := &store{db: gdb, pages: readcache.NewVersioned[pageKey](clonePage),
		// Product holds only values: a copy shares nothing.
		byID: readcache.NewVersioned[string](func(p Product) Product { return p })}
	if sqlDB, err := gdb.DB(); err == nil {
		s.sqlDB = sqlDB
	}
	s.version = readcache.TableVersion(s.sqlDB, "catalog_version")
	return s
}

// errNoChange lets an update callback say "nothing to write".
var errNoChange = errors.New("no change")

func (s *store) insertProduct(ctx context.Context, p Product) error {
	row := toProductRow(p)
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		if db.IsUniqueViolation(err) {
			return fmt.Errorf("sku %q is taken: %w", p.SKU, errs.Conflict)
		}
		return fmt.Errorf("insert product: %w", err)
	}
	return nil
}

// product serves a product from the cache when the catalog has not
// changed since it was read (see readcache.Versioned), else from the
// database. A missing product is never cached: it is read again.
func (s *store) product(ctx context.Context, id string) (Product, error) {
	if s.sqlDB == nil {
		return s.queryProduct(ctx, id)
	}
	return s.byID.Through(ctx, s.version, id, func(ctx context.Context) (Product, error) {
		return s.queryProduct(ctx, id)
	})
}

func (s *store) queryProduct(ctx context.Context, id string) (Product, error) {
	var row productRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Product{}, fmt.Errorf("product %q: %w", id, errs.NotFound)
	}
	if err != nil {
		return Product{}, fmt.Errorf("get product: %w", err)
	}
	return row.domain(), nil
}

// listProducts serves a page from the cache when the catalog has not
// changed since it was read (see readcache.Versioned), else from the database.
func (s *store) listProducts(ctx context.Context, f Filter) (page.Result[Product], error) {
	if s.sqlDB == nil {
		return s.queryProducts(ctx, f)
	}
	return s.pages.Through(ctx, s.version, keyOf(f), func(ctx context.Context) (page.Result[Product], error) {
		return s.queryProducts(ctx, f)
	})
}

func (s *store) queryProducts(ctx context.Context, f Filter) (page.Result[Product], error) {
	q := s.db.WithContext(ctx).Model(&productRow{})
	if f.Search != "" {
		like := "%" + escapeLike(strings.ToLower(f.Search)) + "%"
		q = q.Where(`(LOWER(name) LIKE ? ESCAPE '\' OR LOWER(sku) LIKE ? ESCAPE '\' OR LOWER(description) LIKE ? ESCAPE '\')`, like, like, like)
	}
	if f.CategoryID != "" {
		q = q.Where("category_id = ?", f.CategoryID)
	}
	if f.Active != nil {
		q = q.Where("active = ?", *f.Active)
	}
	if f.SKU != "" {
		q = q.Where("sku = ?", f.SKU)
	}
	if f.IDs != nil {
		q = q.Where("id IN ?", f.IDs)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[Product]{}, fmt.Errorf("count products: %w", err)
	}
	var rows []productRow
	if total > 0 {
		err := q.Order("name, id").Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error
		if err != nil {
			return page.Result[Product]{}, fmt.Errorf("list products: %w", err)
		}
	}
	out := make([]Product, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return page.Result[Product]{Items: out, Total: total}, nil
}

// updateProduct reads, changes and writes one product in a transaction.
// The write is conditional on the version read, so a concurrent update in
// between is caught on both engines without row locks.
func (s *store) updateProduct(ctx context.Context, id string, change func(*Product) error) (Product, error) {
	var out Product
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row productRow
		err := tx.Where("id = ?", id).Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("product %q: %w", id, errs.NotFound)
		}
		if err != nil {
			return fmt.Errorf("get product: %w", err)
		}
		p := row.domain()
		if err := change(&p); err != nil {
			return err
		}
		next := toProductRow(p)
		res := tx.Model(&productRow{}).Where("id = ? AND version = ?", id, row.Version).Select("*").Omit("id", "created_at").Updates(&next)
		if res.Error != nil {
			if db.IsUniqueViolation(res.Error) {
				return fmt.Errorf("sku %q is taken: %w", p.SKU, errs.Conflict)
			}
			return fmt.Errorf("update product: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("product %s changed concurrently: %w", id, errs.Conflict)
		}
		out = p
		return nil
	})
	if errors.Is(err, errNoChange) {
		return s.product(ctx, id)
	}
	return out, err
}

func (s *store) insertCategory(ctx context.Context, c Category) error {
	row := categoryRow{ID: c.ID, Name: c.Name, Description: c.Description, CreatedAt: c.CreatedAt}
	if c.ParentID != "" {
		row.ParentID = &c.ParentID
	}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		if db.IsUniqueViolation(err) {
			return fmt.Errorf("category %q exists: %w", c.Name, errs.Conflict)
		}
		return fmt.Errorf("insert category: %w", err)
	}
	return nil
}

func (s *store) category(ctx context.Context, id string) (Category, error) {
	var row categoryRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Category{}, fmt.Errorf("category %q: %w", id, errs.NotFound)
	}
	if err != nil {
		return Category{}, fmt.Errorf("get category: %w", err)
	}
	return row.domain(), nil
}

func (s *store) listCategories(ctx context.Context) ([]Category, error) {
	var rows []categoryRow
	if err := s.db.WithContext(ctx).Order("name, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list categories: %w", err)
	}
	out := make([]Category, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, nil
}

// escapeLike makes user text literal inside a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
