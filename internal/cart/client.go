package cart

import (
	"context"
	"net/http"
	"net/url"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
)

// Client is the cart over HTTP, for processes that do not host it (the
// checkout saga in the fleet). It calls with the process's service key,
// which may use any cart.
type Client struct{ c *httpx.Client }

var _ Service = (*Client)(nil)

// NewClient wraps an httpx.Client pointed at a process that hosts the cart
// (or the gateway).
func NewClient(c *httpx.Client) *Client { return &Client{c: c} }

// Get implements Service.
func (c *Client) Get(ctx context.Context, sessionID string) (Cart, error) {
	var out Cart
	if err := checkPath(sessionID); err != nil {
		return out, err
	}
	return out, c.c.Do(ctx, http.MethodGet, cartPath(sessionID), nil, &out)
}

// AddItem implements Service. It is not retried: a repeated add would add
// twice.
func (c *Client) AddItem(ctx context.Context, sessionID string, in NewItem) (Cart, error) {
	var out Cart
	if err := checkPath(sessionID); err != nil {
		return out, err
	}
	return out, c.c.Do(ctx, http.MethodPost, cartPath(sessionID)+"/items", in, &out)
}

// SetQuantity implements Service.
func (c *Client) SetQuantity(ctx context.Context, sessionID, productID string, quantity int) (Cart, error) {
	var out Cart
	if err := checkItemPath(sessionID, productID); err != nil {
		return out, err
	}
	return out, c.c.Do(ctx, http.MethodPut, itemPathOf(sessionID, productID), QuantityUpdate{Quantity: quantity}, &out)
}

// RemoveItem implements Service.
func (c *Client) RemoveItem(ctx context.Context, sessionID, productID string) (Cart, error) {
	var out Cart
	if err := checkItemPath(sessionID, productID); err != nil {
		return out, err
	}
	return out, c.c.Do(ctx, http.MethodDelete, itemPathOf(sessionID, productID), nil, &out)
}

// Clear implements Service.
func (c *Client) Clear(ctx context.Context, sessionID string) error {
	if err := checkPath(sessionID); err != nil {
		return err
	}
	return c.c.Do(ctx, http.MethodDelete, cartPath(sessionID), nil, nil)
}

// Calculate implements Service. The POST changes nothing, so it is retried
// like a GET.
func (c *Client) Calculate(ctx context.Context, sessionID, province string) (Quote, error) {
	var out Quote
	if err := checkPath(sessionID); err != nil {
		return out, err
	}
	return out, c.c.Do(ctx, http.MethodPost, cartPath(sessionID)+"/calculate", nil, &out,
		httpx.Query(url.Values{"province": {province}}), httpx.Idempotent())
}

// AttachCustomer implements Service.
func (c *Client) AttachCustomer(ctx context.Context, sessionID, customerID string) (Cart, error) {
	var out Cart
	if err := checkPath(sessionID); err != nil {
		return out, err
	}
	return out, c.c.Do(ctx, http.MethodPut, cartPath(sessionID)+"/customer", CustomerRef{CustomerID: customerID}, &out)
}

// checkPath refuses ids that cannot make a URL path the server routes
// (an empty one would reach another route), with the error the local
// service gives for them.
func checkPath(sessionID string) error {
	var v errs.Validator
	checkSession(&v, sessionID)
	return v.Err()
}

// checkItemPath is checkPath for the paths that name a line.
func checkItemPath(sessionID, productID string) error {
	var v errs.Validator
	checkSession(&v, sessionID)
	checkID(&v, "product_id", productID)
	return v.Err()
}

func cartPath(sessionID string) string { return "/carts/" + url.PathEscape(sessionID) }

func itemPathOf(sessionID, productID string) string {
	return cartPath(sessionID) + "/items/" + url.PathEscape(productID)
}
