package customer

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
)

// Client is the customer context over HTTP, for processes that do not host
// it. Reads and Login work with the service key; customer and address
// writes and the API-key operations are the admin's (see Routes), so a
// Client that does them must present an admin key.
type Client struct{ c *httpx.Client }

var (
	_ Service       = (*Client)(nil)
	_ auth.KeyStore = (*Client)(nil)
)

// NewClient wraps an httpx.Client pointed at a process that hosts the
// customer context (or the gateway).
func NewClient(c *httpx.Client) *Client { return &Client{c: c} }

// Register implements Service.
func (c *Client) Register(ctx context.Context, in Registration) (Customer, error) {
	var out Customer
	return out, c.c.Do(ctx, http.MethodPost, "/auth/register", in, &out)
}

// Login implements Service. The shopper's address travels in
// ClientIPHeader, which the server believes from a service key only.
func (c *Client) Login(ctx context.Context, in Credentials) (Session, error) {
	var opts []httpx.CallOption
	if in.ClientIP != "" {
		opts = append(opts, httpx.Header(ClientIPHeader, in.ClientIP))
	}
	var out Session
	return out, c.c.Do(ctx, http.MethodPost, "/auth/login", LoginRequest{Email: in.Email, Password: in.Password}, &out, opts...)
}

// GetCustomer implements Service.
func (c *Client) GetCustomer(ctx context.Context, id string) (Customer, error) {
	var out Customer
	return out, c.c.Do(ctx, http.MethodGet, "/customers/"+url.PathEscape(id), nil, &out)
}

// ListCustomers implements Service.
func (c *Client) ListCustomers(ctx context.Context, f Filter) (page.Result[Customer], error) {
	f.Page = f.Page.Normalize()
	q := url.Values{}
	q.Set("page", strconv.Itoa(f.Page.Page))
	q.Set("per_page", strconv.Itoa(f.Page.PerPage))
	if f.Search != "" {
		q.Set("search", f.Search)
	}
	var out httpx.List[Customer]
	if err := c.c.Do(ctx, http.MethodGet, "/customers", nil, &out, httpx.Query(q)); err != nil {
		return page.Result[Customer]{}, err
	}
	return page.Result[Customer]{Items: out.Data, Total: out.Meta.Total}, nil
}

// UpdateCustomer implements Service.
func (c *Client) UpdateCustomer(ctx context.Context, id string, in CustomerUpdate) (Customer, error) {
	var out Customer
	return out, c.c.Do(ctx, http.MethodPut, "/customers/"+url.PathEscape(id), in, &out)
}

// ListAddresses implements Service.
func (c *Client) ListAddresses(ctx context.Context, customerID string) ([]Address, error) {
	var out httpx.List[Address]
	if err := c.c.Do(ctx, http.MethodGet, addressesPath(customerID), nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// AddAddress implements Service. It is not retried: a repeat would add the
// address twice.
func (c *Client) AddAddress(ctx context.Context, customerID string, in NewAddress) (Address, error) {
	var out Address
	return out, c.c.Do(ctx, http.MethodPost, addressesPath(customerID), in, &out)
}

// UpdateAddress implements Service.
func (c *Client) UpdateAddress(ctx context.Context, customerID, addressID string, in AddressUpdate) (Address, error) {
	var out Address
	return out, c.c.Do(ctx, http.MethodPut, addressesPath(customerID)+"/"+url.PathEscape(addressID), in, &out)
}

// DeleteAddress implements Service.
func (c *Client) DeleteAddress(ctx context.Context, customerID, addressID string) error {
	return c.c.Do(ctx, http.MethodDelete, addressesPath(customerID)+"/"+url.PathEscape(addressID), nil, nil)
}

// CreateAPIKey implements Service.
func (c *Client) CreateAPIKey(ctx context.Context, in NewAPIKey) (CreatedAPIKey, error) {
	var out CreatedAPIKey
	return out, c.c.Do(ctx, http.MethodPost, "/api-keys", in, &out)
}

// ListAPIKeys implements Service.
func (c *Client) ListAPIKeys(ctx context.Context, p page.Request) (page.Result[APIKey], error) {
	p = p.Normalize()
	q := url.Values{}
	q.Set("page", strconv.Itoa(p.Page))
	q.Set("per_page", strconv.Itoa(p.PerPage))
	var out httpx.List[APIKey]
	if err := c.c.Do(ctx, http.MethodGet, "/api-keys", nil, &out, httpx.Query(q)); err != nil {
		return page.Result[APIKey]{}, err
	}
	return page.Result[APIKey]{Items: out.Data, Total: out.Meta.Total}, nil
}

// RevokeAPIKey implements Service.
func (c *Client) RevokeAPIKey(ctx context.Context, id string) error {
	return c.c.Do(ctx, http.MethodDelete, "/api-keys/"+url.PathEscape(id), nil, nil)
}

// AuthenticateKey implements auth.KeyStore the way fleet processes
// validate staff keys: it asks GET /auth/whoami presenting the key being
// checked (replacing the client's own service key for this one call), and
// the customer process answers with that key's principal or 401. Wrap it
// in auth.NewCached: without a cache every staff request would cost a hop.
func (c *Client) AuthenticateKey(ctx context.Context, key string) (auth.Principal, error) {
	if key == "" {
		// An empty header would fall back to no key at all, and whoami
		// would then describe nobody: refuse here.
		return auth.Principal{}, fmt.Errorf("empty api key: %w", errs.Unauthorized)
	}
	var p auth.Principal
	if err := c.c.Do(ctx, http.MethodGet, "/auth/whoami", nil, &p, httpx.Header("X-API-Key", key)); err != nil {
		return auth.Principal{}, err
	}
	if p.Role == auth.RoleCustomer || !p.Role.Valid() {
		// A key must resolve to a staff role; anything else means the
		// answer did not describe the key (a misrouted call).
		return auth.Principal{}, fmt.Errorf("whoami answered role %q for an api key: %w", p.Role, errs.BadGateway)
	}
	return p, nil
}

func addressesPath(customerID string) string {
	return "/customers/" + url.PathEscape(customerID) + "/addresses"
}
