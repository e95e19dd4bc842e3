package sales

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
)

// Client is the sales context over HTTP, for processes that do not host
// it. The Actor fields of inputs are not sent: the server decides from
// the key the Client presents. Sales and returns carrying an idempotency
// key are retried by httpx.Client after a transient failure (the key makes
// the repeat the same sale); without one they are not.
type Client struct{ c *httpx.Client }

var _ Service = (*Client)(nil)

// NewClient wraps an httpx.Client pointed at a process that hosts sales
// (or the gateway).
func NewClient(c *httpx.Client) *Client { return &Client{c: c} }

// CreateRegister implements Service.
func (c *Client) CreateRegister(ctx context.Context, in NewRegister) (Register, error) {
	var out Register
	return out, c.c.Do(ctx, http.MethodPost, "/registers", in, &out)
}

// GetRegister implements Service.
func (c *Client) GetRegister(ctx context.Context, id string) (Register, error) {
	var out Register
	return out, c.c.Do(ctx, http.MethodGet, "/registers/"+url.PathEscape(id), nil, &out)
}

// ListRegisters implements Service.
func (c *Client) ListRegisters(ctx context.Context, f RegisterFilter) (page.Result[Register], error) {
	q := httpx.PageValues(f.Page)
	httpx.SetIf(q, "location_id", f.LocationID)
	return list[Register](ctx, c, "/registers", q)
}

// OpenSession implements Service.
func (c *Client) OpenSession(ctx context.Context, registerID string, in SessionOpening) (RegisterSession, error) {
	var out RegisterSession
	return out, c.c.Do(ctx, http.MethodPost, sessionsPath(registerID), in, &out)
}

// GetSession implements Service.
func (c *Client) GetSession(ctx context.Context, registerID, sessionID string) (RegisterSession, error) {
	var out RegisterSession
	return out, c.c.Do(ctx, http.MethodGet, sessionsPath(registerID)+"/"+url.PathEscape(sessionID), nil, &out)
}

// CloseSession implements Service. Closing is idempotent for the same
// count, so it is retried.
func (c *Client) CloseSession(ctx context.Context, registerID, sessionID string, in SessionClosing) (RegisterSession, error) {
	var out RegisterSession
	return out, c.c.Do(ctx, http.MethodPost, sessionsPath(registerID)+"/"+url.PathEscape(sessionID)+"/close", in, &out, httpx.Idempotent())
}

// CreateSale implements Service.
func (c *Client) CreateSale(ctx context.Context, in NewSale) (Sale, error) {
	var out Sale
	return out, c.c.Do(ctx, http.MethodPost, "/sales", in, &out, keyed(in.IdempotencyKey)...)
}

// GetSale implements Service.
func (c *Client) GetSale(ctx context.Context, id string) (Sale, error) {
	var out Sale
	return out, c.c.Do(ctx, http.MethodGet, salePath(id), nil, &out)
}

// ListSales implements Service.
func (c *Client) ListSales(ctx context.Context, f SaleFilter) (page.Result[Sale], error) {
	q := httpx.PageValues(f.Page)
	httpx.SetIf(q, "location_id", f.LocationID)
	httpx.SetIf(q, "register_id", f.RegisterID)
	httpx.SetIf(q, "session_id", f.SessionID)
	if !f.From.IsZero() {
		q.Set("from", f.From.UTC().Format(time.RFC3339Nano))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.UTC().Format(time.RFC3339Nano))
	}
	return list[Sale](ctx, c, "/sales", q)
}

// Receipt implements Service; the server answers JSON because the client
// asks for it.
func (c *Client) Receipt(ctx context.Context, saleID string) (SaleReceipt, error) {
	var out SaleReceipt
	return out, c.c.Do(ctx, http.MethodGet, salePath(saleID)+"/receipt", nil, &out)
}

// CreateReturn implements Service.
func (c *Client) CreateReturn(ctx context.Context, saleID string, in NewSaleReturn) (SaleReturn, error) {
	var out SaleReturn
	return out, c.c.Do(ctx, http.MethodPost, salePath(saleID)+"/returns", in, &out, keyed(in.IdempotencyKey)...)
}

// ListReturns implements Service.
func (c *Client) ListReturns(ctx context.Context, saleID string) ([]SaleReturn, error) {
	var out httpx.List[SaleReturn]
	if err := c.c.Do(ctx, http.MethodGet, salePath(saleID)+"/returns", nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// keyed sends an idempotency key, and makes the call retryable when there
// is one.
func keyed(key string) []httpx.CallOption {
	if key == "" {
		return nil
	}
	return []httpx.CallOption{httpx.Header("Idempotency-Key", key), httpx.Idempotent()}
}

func sessionsPath(registerID string) string {
	return "/registers/" + url.PathEscape(registerID) + "/sessions"
}

func salePath(id string) string { return "/sales/" + url.PathEscape(id) }

// list fetches one page of a list endpoint.
func list[T any](ctx context.Context, c *Client, path string, q url.Values) (page.Result[T], error) {
	var out httpx.List[T]
	if err := c.c.Do(ctx, http.MethodGet, path, nil, &out, httpx.Query(q)); err != nil {
		return page.Result[T]{}, err
	}
	return page.Result[T]{Items: out.Data, Total: out.Meta.Total}, nil
}
