package payment

import (
	"context"
	"net/http"
	"net/url"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
)

// Client is the payment context over HTTP, for processes that do not host
// it (the saga in the fleet).
type Client struct{ c *httpx.Client }

var _ Service = (*Client)(nil)

// NewClient wraps an httpx.Client pointed at a process that hosts the
// payment context (or the gateway).
func NewClient(c *httpx.Client) *Client { return &Client{c: c} }

// Charge implements Service. The call is retried on outages: its
// transaction id makes a repeat the same payment, never a second charge.
func (c *Client) Charge(ctx context.Context, in NewPayment) (ChargeOutcome, error) {
	var out ChargeOutcome
	if err := c.c.Do(ctx, http.MethodPost, "/payments", in, &out, httpx.Idempotent()); err != nil {
		return ChargeOutcome{}, err
	}
	return out, nil
}

// GetPayment implements Service.
func (c *Client) GetPayment(ctx context.Context, id string) (Payment, error) {
	var out Payment
	if err := c.c.Do(ctx, http.MethodGet, "/payments/"+url.PathEscape(id), nil, &out); err != nil {
		return Payment{}, err
	}
	return out, nil
}

// GetPaymentByTransaction implements Service.
func (c *Client) GetPaymentByTransaction(ctx context.Context, transactionID string) (Payment, error) {
	var out Payment
	if err := c.c.Do(ctx, http.MethodGet, "/payments/by-transaction/"+url.PathEscape(transactionID), nil, &out); err != nil {
		return Payment{}, err
	}
	return out, nil
}

// ListPayments implements Service.
func (c *Client) ListPayments(ctx context.Context, f Filter) (page.Result[Payment], error) {
	f.Page = f.Page.Normalize()
	q := httpx.PageValues(f.Page)
	httpx.SetIf(q, "order_id", f.OrderID)
	httpx.SetIf(q, "customer_id", f.CustomerID)
	httpx.SetIf(q, "status", string(f.Status))
	httpx.SetIf(q, "transaction_id", f.TransactionID)
	var out httpx.List[Payment]
	if err := c.c.Do(ctx, http.MethodGet, "/payments", nil, &out, httpx.Query(q)); err != nil {
		return page.Result[Payment]{}, err
	}
	return page.Result[Payment]{Items: out.Data, Total: out.Meta.Total}, nil
}

// Refund implements Service; like Charge, retried on outages under its
// refund id.
func (c *Client) Refund(ctx context.Context, paymentID string, in NewRefund) (RefundOutcome, error) {
	var out RefundOutcome
	path := "/payments/" + url.PathEscape(paymentID) + "/refunds"
	if err := c.c.Do(ctx, http.MethodPost, path, in, &out, httpx.Idempotent()); err != nil {
		return RefundOutcome{}, err
	}
	return out, nil
}

// ListRefunds implements Service.
func (c *Client) ListRefunds(ctx context.Context, paymentID string, p page.Request) (page.Result[Refund], error) {
	var out httpx.List[Refund]
	path := "/payments/" + url.PathEscape(paymentID) + "/refunds"
	if err := c.c.Do(ctx, http.MethodGet, path, nil, &out, httpx.Query(httpx.PageValues(p.Normalize()))); err != nil {
		return page.Result[Refund]{}, err
	}
	return page.Result[Refund]{Items: out.Data, Total: out.Meta.Total}, nil
}

// Summary implements Service.
func (c *Client) Summary(ctx context.Context, currency string) (Summary, error) {
	q := url.Values{}
	httpx.SetIf(q, "currency", currency)
	var out Summary
	if err := c.c.Do(ctx, http.MethodGet, "/payments/summary", nil, &out, httpx.Query(q)); err != nil {
		return Summary{}, err
	}
	return out, nil
}
