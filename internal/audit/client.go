package audit

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
)

// Client is the trail's query side over HTTP, for processes that do not
// host it.
type Client struct{ c *httpx.Client }

var _ Service = (*Client)(nil)

// NewClient wraps an httpx.Client pointed at a process that hosts the
// context (or the gateway).
func NewClient(c *httpx.Client) *Client { return &Client{c: c} }

// ListEntries implements Service.
func (c *Client) ListEntries(ctx context.Context, f Filter) (page.Result[Entry], error) {
	f.Page = f.Page.Normalize()
	q := url.Values{}
	q.Set("page", strconv.Itoa(f.Page.Page))
	q.Set("per_page", strconv.Itoa(f.Page.PerPage))
	httpx.SetIf(q, "aggregate_id", f.AggregateID)
	httpx.SetIf(q, "event_type", f.EventType)
	httpx.SetIf(q, "correlation_id", f.CorrelationID)
	httpx.SetIf(q, "stream", f.Stream)
	httpx.SetIf(q, "actor", f.Actor)
	if !f.From.IsZero() {
		q.Set("from", f.From.Format(time.RFC3339Nano))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.Format(time.RFC3339Nano))
	}
	if f.Newest {
		q.Set("order", "desc")
	}
	var out httpx.List[Entry]
	if err := c.c.Do(ctx, http.MethodGet, "/audit", nil, &out, httpx.Query(q)); err != nil {
		return page.Result[Entry]{}, err
	}
	return page.Result[Entry]{Items: out.Data, Total: out.Meta.Total}, nil
}

// Stats implements Service.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var out Stats
	return out, c.c.Do(ctx, http.MethodGet, "/audit/stats", nil, &out)
}
