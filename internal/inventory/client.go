package inventory

import (
	"context"
	"net/http"
	"net/url"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
)

// Client is the inventory over HTTP, for processes that do not host it
// (the checkout saga, sales, the cart in the fleet). Calls whose repeat is
// harmless — those carrying an idempotency key, and the commit, release,
// approve and reject that are idempotent by design — are retried by
// httpx.Client; creations without a key are not.
type Client struct{ c *httpx.Client }

var _ Service = (*Client)(nil)

// NewClient wraps an httpx.Client pointed at a process that hosts the
// inventory (or the gateway).
func NewClient(c *httpx.Client) *Client { return &Client{c: c} }

// CreateLocation implements Service.
func (c *Client) CreateLocation(ctx context.Context, in NewLocation) (Location, error) {
	var out Location
	return out, c.c.Do(ctx, http.MethodPost, "/locations", in, &out)
}

// GetLocation implements Service.
func (c *Client) GetLocation(ctx context.Context, id string) (Location, error) {
	var out Location
	return out, c.c.Do(ctx, http.MethodGet, "/locations/"+url.PathEscape(id), nil, &out)
}

// ListLocations implements Service.
func (c *Client) ListLocations(ctx context.Context, f LocationFilter) (page.Result[Location], error) {
	q := httpx.PageValues(f.Page)
	httpx.SetIf(q, "kind", f.Kind)
	httpx.SetIf(q, "province", f.Province)
	return list[Location](ctx, c, "/locations", q)
}

// ListStock implements Service.
func (c *Client) ListStock(ctx context.Context, f StockFilter) (page.Result[StockLevel], error) {
	q := httpx.PageValues(f.Page)
	httpx.SetIf(q, "location_id", f.LocationID)
	httpx.SetIf(q, "product_id", f.ProductID)
	if f.LowStock {
		q.Set("low_stock", "true")
	}
	return list[StockLevel](ctx, c, "/inventory", q)
}

// Adjust implements Service. Only an adjustment with an AdjustmentID is
// retried: without one a repeat would count twice.
func (c *Client) Adjust(ctx context.Context, in Adjustment) (StockLevel, error) {
	var out StockLevel
	var opts []httpx.CallOption
	if in.AdjustmentID != "" {
		opts = append(opts, httpx.Idempotent())
	}
	return out, c.c.Do(ctx, http.MethodPost, "/inventory/adjustments", in, &out, opts...)
}

// Reserve implements Service; the reservation id makes it safe to retry.
func (c *Client) Reserve(ctx context.Context, in NewReservation) (Reservation, error) {
	var out Reservation
	return out, c.c.Do(ctx, http.MethodPost, "/inventory/reservations", in, &out, httpx.Idempotent())
}

// GetReservation implements Service.
func (c *Client) GetReservation(ctx context.Context, id string) (Reservation, error) {
	var out Reservation
	return out, c.c.Do(ctx, http.MethodGet, reservationPath(id), nil, &out)
}

// CommitReservation implements Service.
func (c *Client) CommitReservation(ctx context.Context, id string) (Reservation, error) {
	var out Reservation
	return out, c.c.Do(ctx, http.MethodPost, reservationPath(id)+"/commit", nil, &out, httpx.Idempotent())
}

// ReleaseReservation implements Service.
func (c *Client) ReleaseReservation(ctx context.Context, id string) (Reservation, error) {
	var out Reservation
	return out, c.c.Do(ctx, http.MethodDelete, reservationPath(id), nil, &out)
}

// ExpireReservations implements Service.
func (c *Client) ExpireReservations(ctx context.Context) (int, error) {
	var out ExpireResult
	err := c.c.Do(ctx, http.MethodPost, "/inventory/reservations/expire", nil, &out, httpx.Idempotent())
	return out.Expired, err
}

// CreateTransfer implements Service.
func (c *Client) CreateTransfer(ctx context.Context, in NewTransfer) (Transfer, error) {
	var out Transfer
	return out, c.c.Do(ctx, http.MethodPost, "/inventory/transfers", in, &out)
}

// GetTransfer implements Service.
func (c *Client) GetTransfer(ctx context.Context, id string) (Transfer, error) {
	var out Transfer
	return out, c.c.Do(ctx, http.MethodGet, "/inventory/transfers/"+url.PathEscape(id), nil, &out)
}

// ListTransfers implements Service.
func (c *Client) ListTransfers(ctx context.Context, f TransferFilter) (page.Result[Transfer], error) {
	q := httpx.PageValues(f.Page)
	httpx.SetIf(q, "status", f.Status)
	httpx.SetIf(q, "location_id", f.LocationID)
	httpx.SetIf(q, "product_id", f.ProductID)
	return list[Transfer](ctx, c, "/inventory/transfers", q)
}

// ApproveTransfer implements Service.
func (c *Client) ApproveTransfer(ctx context.Context, id string) (Transfer, error) {
	var out Transfer
	return out, c.c.Do(ctx, http.MethodPost, "/inventory/transfers/"+url.PathEscape(id)+"/approve", nil, &out, httpx.Idempotent())
}

// RejectTransfer implements Service.
func (c *Client) RejectTransfer(ctx context.Context, id string) (Transfer, error) {
	var out Transfer
	return out, c.c.Do(ctx, http.MethodPost, "/inventory/transfers/"+url.PathEscape(id)+"/reject", nil, &out, httpx.Idempotent())
}

func reservationPath(id string) string { return "/inventory/reservations/" + url.PathEscape(id) }

// list fetches one page of a list endpoint.
func list[T any](ctx context.Context, c *Client, path string, q url.Values) (page.Result[T], error) {
	var out httpx.List[T]
	if err := c.c.Do(ctx, http.MethodGet, path, nil, &out, httpx.Query(q)); err != nil {
		return page.Result[T]{}, err
	}
	return page.Result[T]{Items: out.Data, Total: out.Meta.Total}, nil
}
