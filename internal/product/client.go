package product

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
)

// Client is the catalog over HTTP, for processes that do not host it.
type Client struct{ c *httpx.Client }

var _ Service = (*Client)(nil)

// NewClient wraps an httpx.Client pointed at a process that hosts the
// catalog (or the gateway).
func NewClient(c *httpx.Client) *Client { return &Client{c: c} }

// CreateProduct implements Service.
func (c *Client) CreateProduct(ctx context.Context, in NewProduct) (Product, error) {
	var out Product
	return out, c.c.Do(ctx, http.MethodPost, "/products", in, &out)
}

// GetProduct implements Service.
func (c *Client) GetProduct(ctx context.Context, id string) (Product, error) {
	var out Product
	return out, c.c.Do(ctx, http.MethodGet, "/products/"+url.PathEscape(id), nil, &out)
}

// ListProducts implements Service.
func (c *Client) ListProducts(ctx context.Context, f Filter) (page.Result[Product], error) {
	q := url.Values{}
	f.Page = f.Page.Normalize()
	q.Set("page", strconv.Itoa(f.Page.Page))
	q.Set("per_page", strconv.Itoa(f.Page.PerPage))
	httpx.SetIf(q, "search", f.Search)
	httpx.SetIf(q, "category_id", f.CategoryID)
	httpx.SetIf(q, "sku", f.SKU)
	if f.Active != nil {
		q.Set("active", strconv.FormatBool(*f.Active))
	}
	if f.IDs != nil {
		if len(f.IDs) == 0 {
			return page.Result[Product]{Items: []Product{}}, nil
		}
		q.Set("ids", strings.Join(f.IDs, ","))
	}
	var out httpx.List[Product]
	if err := c.c.Do(ctx, http.MethodGet, "/products", nil, &out, httpx.Query(q)); err != nil {
		return page.Result[Product]{}, err
	}
	return page.Result[Product]{Items: out.Data, Total: out.Meta.Total}, nil
}

// UpdateProduct implements Service.
func (c *Client) UpdateProduct(ctx context.Context, id string, in ProductUpdate) (Product, error) {
	var out Product
	return out, c.c.Do(ctx, http.MethodPut, "/products/"+url.PathEscape(id), in, &out)
}

// DeleteProduct implements Service.
func (c *Client) DeleteProduct(ctx context.Context, id string) error {
	return c.c.Do(ctx, http.MethodDelete, "/products/"+url.PathEscape(id), nil, nil)
}

// CreateCategory implements Service.
func (c *Client) CreateCategory(ctx context.Context, in NewCategory) (Category, error) {
	var out Category
	return out, c.c.Do(ctx, http.MethodPost, "/categories", in, &out)
}

// ListCategories implements Service.
func (c *Client) ListCategories(ctx context.Context) ([]Category, error) {
	var out httpx.List[Category]
	if err := c.c.Do(ctx, http.MethodGet, "/categories", nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}
