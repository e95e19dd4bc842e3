package claims

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
)

// Client is the claims context over HTTP, for processes that do not host
// it (the integration context in the fleet).
type Client struct{ c *httpx.Client }

var _ Service = (*Client)(nil)

// NewClient wraps an httpx.Client pointed at a process that hosts claims
// (or the gateway).
func NewClient(c *httpx.Client) *Client { return &Client{c: c} }

func claimPath(id string, action string) string {
	p := "/claims/" + url.PathEscape(id)
	if action != "" {
		p += "/" + action
	}
	return p
}

// CreateClaim implements Service. With a claim id it is idempotent, and
// therefore retried after a transient failure like a GET.
func (c *Client) CreateClaim(ctx context.Context, in NewClaim) (Claim, error) {
	var out Claim
	var opts []httpx.CallOption
	if in.ClaimID != "" {
		opts = append(opts, httpx.Idempotent())
	}
	return out, c.c.Do(ctx, http.MethodPost, "/claims", in, &out, opts...)
}

// AssignClaim implements Service.
func (c *Client) AssignClaim(ctx context.Context, id string, in Assignment) (Claim, error) {
	var out Claim
	return out, c.c.Do(ctx, http.MethodPost, claimPath(id, "assign"), in, &out)
}

// StartClaim implements Service.
func (c *Client) StartClaim(ctx context.Context, id string) (Claim, error) {
	var out Claim
	return out, c.c.Do(ctx, http.MethodPost, claimPath(id, "start"), nil, &out)
}

// ResolveClaim implements Service.
func (c *Client) ResolveClaim(ctx context.Context, id string, in Resolution) (Claim, error) {
	var out Claim
	return out, c.c.Do(ctx, http.MethodPost, claimPath(id, "resolve"), in, &out)
}

// CloseClaim implements Service.
func (c *Client) CloseClaim(ctx context.Context, id string) (Claim, error) {
	var out Claim
	return out, c.c.Do(ctx, http.MethodPost, claimPath(id, "close"), nil, &out)
}

// EnrichClaim implements Service.
func (c *Client) EnrichClaim(ctx context.Context, id string, in Enrichment) (Claim, error) {
	var out Claim
	return out, c.c.Do(ctx, http.MethodPost, claimPath(id, "enrich"), in, &out)
}

// ClaimEvents implements Service.
func (c *Client) ClaimEvents(ctx context.Context, id string) ([]StoredEvent, error) {
	var out httpx.List[StoredEvent]
	if err := c.c.Do(ctx, http.MethodGet, claimPath(id, "events"), nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// ReplayClaim implements Service.
func (c *Client) ReplayClaim(ctx context.Context, id string) (Claim, error) {
	var out Claim
	return out, c.c.Do(ctx, http.MethodGet, claimPath(id, "replay"), nil, &out)
}

// GetClaim implements Service.
func (c *Client) GetClaim(ctx context.Context, id string) (Claim, error) {
	var out Claim
	return out, c.c.Do(ctx, http.MethodGet, claimPath(id, ""), nil, &out)
}

// ListClaims implements Service.
func (c *Client) ListClaims(ctx context.Context, f Filter) (page.Result[Claim], error) {
	f.Page = f.Page.Normalize()
	q := url.Values{}
	q.Set("page", strconv.Itoa(f.Page.Page))
	q.Set("per_page", strconv.Itoa(f.Page.PerPage))
	httpx.SetIf(q, "status", string(f.Status))
	httpx.SetIf(q, "customer_id", f.CustomerID)
	httpx.SetIf(q, "agent_id", f.AgentID)
	httpx.SetIf(q, "claim_type", string(f.ClaimType))
	var out httpx.List[Claim]
	if err := c.c.Do(ctx, http.MethodGet, "/claims", nil, &out, httpx.Query(q)); err != nil {
		return page.Result[Claim]{}, err
	}
	return page.Result[Claim]{Items: out.Data, Total: out.Meta.Total}, nil
}

// Stats implements Service.
func (c *Client) Stats(ctx context.Context, q StatsQuery) (Stats, error) {
	v := url.Values{}
	if q.TopCustomers != 0 {
		v.Set("top", strconv.Itoa(q.TopCustomers))
	}
	var out Stats
	return out, c.c.Do(ctx, http.MethodGet, "/claims/stats", nil, &out, httpx.Query(v))
}
