// Package product is the catalog both channels sell from: products with a
// unique SKU, a price in integer cents and a low-stock alert threshold,
// grouped in categories. Every other context reads prices and names from
// here; none keeps its own copy of the truth.
package product

import (
	"context"
	"embed"
	"time"

	"github.com/retailco/pos/internal/platform/page"
)

// Name is the context's name: its database, its metrics label, its
// --only value.
const Name = "product"

// Migrations is the context's versioned schema.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Product is one sellable item.
type Product struct {
	ID             string    `json:"id"`
	SKU            string    `json:"sku"`
	Name           string    `json:"name"`
	Description    string    `json:"description"`
	CategoryID     string    `json:"category_id,omitempty"`
	PriceCents     int64     `json:"price_cents"`
	Currency       string    `json:"currency"`
	AlertThreshold int       `json:"alert_threshold"`
	Active         bool      `json:"active"`
	Version        int       `json:"version" doc:"Incremented by every change; send it back on update to detect lost updates"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// NewProduct is what creating a product takes.
type NewProduct struct {
	SKU            string `json:"sku" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$" doc:"Unique stock-keeping unit"`
	Name           string `json:"name" minLength:"1" maxLength:"200"`
	Description    string `json:"description,omitempty" maxLength:"2000"`
	CategoryID     string `json:"category_id,omitempty" maxLength:"64"`
	PriceCents     int64  `json:"price_cents" minimum:"0" maximum:"100000000" doc:"Unit price in cents"`
	Currency       string `json:"currency,omitempty" pattern:"^[A-Z]{3}$" doc:"ISO 4217 code, default CAD"`
	AlertThreshold int    `json:"alert_threshold,omitempty" minimum:"0" maximum:"1000000" doc:"Stock at or below this is low"`
	Active         *bool  `json:"active,omitempty" doc:"Default true"`
}

// ProductUpdate changes the fields it sets and keeps the others. Version,
// when set, must match the stored version (optimistic concurrency).
type ProductUpdate struct {
	SKU            *string `json:"sku,omitempty" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$"`
	Name           *string `json:"name,omitempty" minLength:"1" maxLength:"200"`
	Description    *string `json:"description,omitempty" maxLength:"2000"`
	CategoryID     *string `json:"category_id,omitempty" maxLength:"64"`
	PriceCents     *int64  `json:"price_cents,omitempty" minimum:"0" maximum:"100000000"`
	Currency       *string `json:"currency,omitempty" pattern:"^[A-Z]{3}$"`
	AlertThreshold *int    `json:"alert_threshold,omitempty" minimum:"0" maximum:"1000000"`
	Active         *bool   `json:"active,omitempty"`
	Version        *int    `json:"version,omitempty" minimum:"1"`
}

// Filter narrows a product list. Zero values do not filter.
type Filter struct {
	// Search matches name, SKU or description, case-insensitively.
	Search string
	// CategoryID keeps one category.
	CategoryID string
	// Active keeps active (true) or archived (false) products.
	Active *bool
	// SKU keeps the product with exactly this SKU.
	SKU string
	// IDs keeps these products (batch lookups by other contexts).
	IDs []string
	// Page selects the page.
	Page page.Request
}

// Category groups products.
type Category struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	ParentID    string    `json:"parent_id,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// NewCategory is what creating a category takes.
type NewCategory struct {
	Name        string `json:"name" minLength:"1" maxLength:"100"`
	Description string `json:"description,omitempty" maxLength:"1000"`
	ParentID    string `json:"parent_id,omitempty" maxLength:"64"`
}

// Service is the catalog's contract, satisfied by the local implementation
// (New) and by Client over HTTP.
type Service interface {
	// CreateProduct adds a product; a taken SKU is errs.Conflict.
	CreateProduct(ctx context.Context, in NewProduct) (Product, error)
	// GetProduct returns one product, archived ones included.
	GetProduct(ctx context.Context, id string) (Product, error)
	// ListProducts returns one page of products, ordered by name.
	ListProducts(ctx context.Context, f Filter) (page.Result[Product], error)
	// UpdateProduct changes a product; a stale Version is errs.Conflict.
	UpdateProduct(ctx context.Context, id string, in ProductUpdate) (Product, error)
	// DeleteProduct archives a product: it stays readable for the orders
	// and sales that name it, and can no longer be sold.
	DeleteProduct(ctx context.Context, id string) error
	// CreateCategory adds a category; a taken name is errs.Conflict.
	CreateCategory(ctx context.Context, in NewCategory) (Category, error)
	// ListCategories returns every category, ordered by name.
	ListCategories(ctx context.Context) ([]Category, error)
}
