package reporting

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/retailco/pos/internal/platform/httpx"
)

// Client is the reporting context over HTTP, for processes that do not
// host it. Queries are sent as given: the defaults (range, limit) and the
// checks are the server's, so a Client answers as the local service does.
type Client struct{ c *httpx.Client }

var _ Service = (*Client)(nil)

// NewClient wraps an httpx.Client pointed at a process that hosts
// reporting (or the gateway); its key needs the manager role, admin for
// Rebuild.
func NewClient(c *httpx.Client) *Client { return &Client{c: c} }

// SalesReport implements Service.
func (c *Client) SalesReport(ctx context.Context, q SalesQuery) (SalesReport, error) {
	v := url.Values{}
	httpx.SetIf(v, "from", q.From)
	httpx.SetIf(v, "to", q.To)
	httpx.SetIf(v, "location_id", q.LocationID)
	httpx.SetIf(v, "channel", q.Channel)
	var out SalesReport
	return out, c.c.Do(ctx, http.MethodGet, "/reports/sales", nil, &out, httpx.Query(v))
}

// TopProducts implements Service.
func (c *Client) TopProducts(ctx context.Context, q TopQuery) (TopProducts, error) {
	v := url.Values{}
	httpx.SetIf(v, "from", q.From)
	httpx.SetIf(v, "to", q.To)
	httpx.SetIf(v, "channel", q.Channel)
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out TopProducts
	return out, c.c.Do(ctx, http.MethodGet, "/reports/products/top", nil, &out, httpx.Query(v))
}

// InventoryReport implements Service.
func (c *Client) InventoryReport(ctx context.Context, q InventoryQuery) (InventoryReport, error) {
	v := url.Values{}
	httpx.SetIf(v, "location_id", q.LocationID)
	var out InventoryReport
	return out, c.c.Do(ctx, http.MethodGet, "/reports/inventory", nil, &out, httpx.Query(v))
}

// Dashboard implements Service.
func (c *Client) Dashboard(ctx context.Context) (Dashboard, error) {
	var out Dashboard
	return out, c.c.Do(ctx, http.MethodGet, "/dashboard", nil, &out)
}

// Totals implements Service.
func (c *Client) Totals(ctx context.Context) (Totals, error) {
	var out Totals
	return out, c.c.Do(ctx, http.MethodGet, "/reports/totals", nil, &out)
}

// Rebuild implements Service. It is not retried: a rebuild that timed out
// may still be running, and a second one would only wait for it.
func (c *Client) Rebuild(ctx context.Context) (RebuildResult, error) {
	var out RebuildResult
	return out, c.c.Do(ctx, http.MethodPost, "/reports/rebuild", nil, &out)
}
