package notification

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
)

// Client is the notification context's query side over HTTP, for
// processes that do not host it.
type Client struct{ c *httpx.Client }

var _ Service = (*Client)(nil)

// NewClient wraps an httpx.Client pointed at a process that hosts the
// context (or the gateway).
func NewClient(c *httpx.Client) *Client { return &Client{c: c} }

// ListNotifications implements Service.
func (c *Client) ListNotifications(ctx context.Context, f Filter) (page.Result[Notification], error) {
	f.Page = f.Page.Normalize()
	q := url.Values{}
	q.Set("page", strconv.Itoa(f.Page.Page))
	q.Set("per_page", strconv.Itoa(f.Page.PerPage))
	httpx.SetIf(q, "recipient", f.Recipient)
	httpx.SetIf(q, "event_type", f.EventType)
	httpx.SetIf(q, "status", string(f.Status))
	httpx.SetIf(q, "channel", string(f.Channel))
	var out httpx.List[Notification]
	if err := c.c.Do(ctx, http.MethodGet, "/notifications", nil, &out, httpx.Query(q)); err != nil {
		return page.Result[Notification]{}, err
	}
	return page.Result[Notification]{Items: out.Data, Total: out.Meta.Total}, nil
}

// Stats implements Service.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var out Stats
	return out, c.c.Do(ctx, http.MethodGet, "/notifications/stats", nil, &out)
}
