package order

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
)

// Client is the order context over HTTP, for processes that do not host
// it (the saga in the fleet).
type Client struct{ c *httpx.Client }

var _ Service = (*Client)(nil)

// NewClient wraps an httpx.Client pointed at a process that hosts the
// order context (or the gateway).
func NewClient(c *httpx.Client) *Client { return &Client{c: c} }

// CreateOrder implements Service. It is retried on outages: the saga id
// makes a repeat the same order.
func (c *Client) CreateOrder(ctx context.Context, in NewOrder) (Order, error) {
	var out Order
	if err := c.c.Do(ctx, http.MethodPost, "/orders", in, &out, httpx.Idempotent()); err != nil {
		return Order{}, err
	}
	return out, nil
}

// GetOrder implements Service.
func (c *Client) GetOrder(ctx context.Context, id string) (Order, error) {
	var out Order
	if err := c.c.Do(ctx, http.MethodGet, "/orders/"+url.PathEscape(id), nil, &out); err != nil {
		return Order{}, err
	}
	return out, nil
}

// ListOrders implements Service.
func (c *Client) ListOrders(ctx context.Context, f Filter) (page.Result[Order], error) {
	f.Page = f.Page.Normalize()
	q := url.Values{}
	q.Set("page", strconv.Itoa(f.Page.Page))
	q.Set("per_page", strconv.Itoa(f.Page.PerPage))
	httpx.SetIf(q, "customer_id", f.CustomerID)
	httpx.SetIf(q, "status", string(f.Status))
	httpx.SetIf(q, "saga_id", f.SagaID)
	var out httpx.List[Order]
	if err := c.c.Do(ctx, http.MethodGet, "/orders", nil, &out, httpx.Query(q)); err != nil {
		return page.Result[Order]{}, err
	}
	return page.Result[Order]{Items: out.Data, Total: out.Meta.Total}, nil
}

// UpdateStatus implements Service.
func (c *Client) UpdateStatus(ctx context.Context, id string, to Status) (Order, error) {
	var out Order
	if err := c.c.Do(ctx, http.MethodPut, "/orders/"+url.PathEscape(id)+"/status", StatusUpdate{Status: to}, &out); err != nil {
		return Order{}, err
	}
	return out, nil
}

// MarkCancelled implements Service.
func (c *Client) MarkCancelled(ctx context.Context, id string) (Order, error) {
	var out Order
	if err := c.c.Do(ctx, http.MethodPut, "/orders/"+url.PathEscape(id)+"/cancellation", nil, &out); err != nil {
		return Order{}, err
	}
	return out, nil
}

// Totals implements Service.
func (c *Client) Totals(ctx context.Context, currency string) (OrderTotals, error) {
	var out OrderTotals
	q := url.Values{}
	httpx.SetIf(q, "currency", currency)
	if err := c.c.Do(ctx, http.MethodGet, "/orders/summary", nil, &out, httpx.Query(q)); err != nil {
		return OrderTotals{}, err
	}
	return out, nil
}
