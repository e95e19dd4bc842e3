package integration

import (
	"context"
	"net/http"

	"github.com/retailco/pos/internal/platform/httpx"
)

// Client is the integration context over HTTP, for processes that do not
// host it (and for operators' tooling).
type Client struct{ c *httpx.Client }

var _ Service = (*Client)(nil)

// NewClient wraps an httpx.Client pointed at a process that hosts the
// integration context (or the gateway).
func NewClient(c *httpx.Client) *Client { return &Client{c: c} }

// CreateClaimFromOrder implements Service. It is not retried: the claim
// id is chosen by the server, so a repeat would open a second claim.
func (c *Client) CreateClaimFromOrder(ctx context.Context, in ClaimFromOrder) (Result, error) {
	var out Result
	if err := c.c.Do(ctx, http.MethodPost, "/integration/claims/from-order", in, &out); err != nil {
		return Result{}, err
	}
	return out, nil
}

// Status implements Service.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	if err := c.c.Do(ctx, http.MethodGet, "/integration/status", nil, &out); err != nil {
		return Status{}, err
	}
	return out, nil
}

// EnrichPending implements Service. A round may be repeated freely (no
// claim is enriched twice), so it is retried like a GET.
func (c *Client) EnrichPending(ctx context.Context) (int, error) {
	var out EnrichmentRun
	if err := c.c.Do(ctx, http.MethodPost, "/integration/enrichments/run", nil, &out, httpx.Idempotent()); err != nil {
		return 0, err
	}
	return out.Enriched, nil
}
