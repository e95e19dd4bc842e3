package product

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
	"github.com/retailco/pos/internal/platform/page"
)

// DefaultCurrency is used when a product names none.
const DefaultCurrency = "CAD"

type service struct {
	store *store
	now   func() time.Time
}

var _ Service = (*service)(nil)

// New returns the local catalog on gdb (already migrated).
func New(gdb *gorm.DB) Service {
	return &service{store: newStore(gdb), now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
}

var (
	skuPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

// maxPriceCents keeps prices (and the totals built from them) far from
// int64 overflow: a million dollars a unit is beyond any shelf.
const maxPriceCents = 100_000_000

func (s *service) CreateProduct(ctx context.Context, in NewProduct) (Product, error) {
	in.SKU = strings.TrimSpace(in.SKU)
	in.Name = strings.TrimSpace(in.Name)
	if in.Currency == "" {
		in.Currency = DefaultCurrency
	}
	var v errs.Validator
	checkSKU(&v, in.SKU)
	checkName(&v, in.Name)
	v.Check(utf8.RuneCountInString(in.Description) <= 2000, "description", "must be at most 2000 characters")
	v.Check(in.PriceCents >= 0, "price_cents", "must not be negative")
	v.Check(in.PriceCents <= maxPriceCents, "price_cents", "must be at most %d", maxPriceCents)
	v.Check(currencyPattern.MatchString(in.Currency), "currency", "must be an ISO 4217 code such as CAD")
	v.Check(in.AlertThreshold >= 0, "alert_threshold", "must not be negative")
	if err := v.Err(); err != nil {
		return Product{}, err
	}
	if err := s.checkCategory(ctx, in.CategoryID); err != nil {
		return Product{}, err
	}
	now := s.now()
	p := Product{
		ID: ids.New("prd"), SKU: in.SKU, Name: in.Name, Description: in.Description,
		CategoryID: in.CategoryID, PriceCents: in.PriceCents, Currency: in.Currency,
		AlertThreshold: in.AlertThreshold, Active: in.Active == nil || *in.Active,
		Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	if err := s.store.insertProduct(ctx, p); err != nil {
		return Product{}, err
	}
	return p, nil
}

func (s *service) GetProduct(ctx context.Context, id string) (Product, error) {
	return s.store.product(ctx, id)
}

func (s *service) ListProducts(ctx context.Context, f Filter) (page.Result[Product], error) {
	f.Page = f.Page.Normalize()
	f.Search = strings.TrimSpace(f.Search)
	if len(f.IDs) > page.MaxPerPage {
		return page.Result[Product]{}, errs.Field("ids", "at most %d ids at once", page.MaxPerPage)
	}
	return s.store.listProducts(ctx, f)
}

func (s *service) UpdateProduct(ctx context.Context, id string, in ProductUpdate) (Product, error) {
	var v errs.Validator
	if in.SKU != nil {
		*in.SKU = strings.TrimSpace(*in.SKU)
		checkSKU(&v, *in.SKU)
	}
	if in.Name != nil {
		*in.Name = strings.TrimSpace(*in.Name)
		checkName(&v, *in.Name)
	}
	if in.Description != nil {
		v.Check(utf8.RuneCountInString(*in.Description) <= 2000, "description", "must be at most 2000 characters")
	}
	if in.PriceCents != nil {
		v.Check(*in.PriceCents >= 0, "price_cents", "must not be negative")
		v.Check(*in.PriceCents <= maxPriceCents, "price_cents", "must be at most %d", maxPriceCents)
	}
	if in.Currency != nil {
		v.Check(currencyPattern.MatchString(*in.Currency), "currency", "must be an ISO 4217 code such as CAD")
	}
	if in.AlertThreshold != nil {
		v.Check(*in.AlertThreshold >= 0, "alert_threshold", "must not be negative")
	}
	if err := v.Err(); err != nil {
		return Product{}, err
	}
	if in.CategoryID != nil {
		if err := s.checkCategory(ctx, *in.CategoryID); err != nil {
			return Product{}, err
		}
	}
	return s.store.updateProduct(ctx, id, func(p *Product) error {
		if in.Version != nil && *in.Version != p.Version {
			return fmt.Errorf("product %s is at version %d, not %d: %w", id, p.Version, *in.Version, errs.Conflict)
		}
		apply(&p.SKU, in.SKU)
		apply(&p.Name, in.Name)
		apply(&p.Description, in.Description)
		apply(&p.CategoryID, in.CategoryID)
		apply(&p.PriceCents, in.PriceCents)
		apply(&p.Currency, in.Currency)
		apply(&p.AlertThreshold, in.AlertThreshold)
		apply(&p.Active, in.Active)
		p.Version++
		p.UpdatedAt = s.now()
		return nil
	})
}

func (s *service) DeleteProduct(ctx context.Context, id string) error {
	_, err := s.store.updateProduct(ctx, id, func(p *Product) error {
		if !p.Active {
			return errNoChange // archiving twice is a no-op, not an error
		}
		p.Active = false
		p.Version++
		p.UpdatedAt = s.now()
		return nil
	})
	return err
}

func (s *service) CreateCategory(ctx context.Context, in NewCategory) (Category, error) {
	in.Name = strings.TrimSpace(in.Name)
	var v errs.Validator
	v.Check(in.Name != "", "name", "is required")
	v.Check(utf8.RuneCountInString(in.Name) <= 100, "name", "must be at most 100 characters")
	v.Check(utf8.RuneCountInString(in.Description) <= 1000, "description", "must be at most 1000 characters")
	if err := v.Err(); err != nil {
		return Category{}, err
	}
	if in.ParentID != "" {
		if _, err := s.store.category(ctx, in.ParentID); err != nil {
			return Category{}, errs.Field("parent_id", "no category %q", in.ParentID)
		}
	}
	c := Category{ID: ids.New("cat"), Name: in.Name, Description: in.Description, ParentID: in.ParentID, CreatedAt: s.now()}
	if err := s.store.insertCategory(ctx, c); err != nil {
		return Category{}, err
	}
	return c, nil
}

func (s *service) ListCategories(ctx context.Context) ([]Category, error) {
	return s.store.listCategories(ctx)
}

func (s *service) checkCategory(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	if _, err := s.store.category(ctx, id); err != nil {
		if errs.IsKind(err, errs.NotFound) {
			return errs.Field("category_id", "no category %q", id)
		}
		return err
	}
	return nil
}

func checkSKU(v *errs.Validator, sku string) {
	v.Check(skuPattern.MatchString(sku), "sku", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
}

func checkName(v *errs.Validator, name string) {
	v.Check(name != "", "name", "is required")
	v.Check(utf8.RuneCountInString(name) <= 200, "name", "must be at most 200 characters")
}

func apply[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
