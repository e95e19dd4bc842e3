package notification

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/httpx"
)

// readers may read notifications: support agents (API.md), and admin, who
// is always let in. Customers are not: a notification row holds another
// channel's address and the text sent, and their own mailbox has it.
var readers = httpx.Staff(auth.RoleAgent)

// Routes mounts the context's HTTP surface: two reads.
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	httpx.Register(api, httpx.Op{Context: Name, ID: "list-notifications", Method: http.MethodGet, Path: "/notifications",
		Summary: "List notifications, newest first", Access: readers}, h.list)
	httpx.Register(api, httpx.Op{Context: Name, ID: "notification-stats", Method: http.MethodGet, Path: "/notifications/stats",
		Summary: "Count notifications by status, channel and event type", Access: readers}, h.stats)
}

type handlers struct{ svc Service }

type listInput struct {
	httpx.PageQuery
	Recipient string `query:"recipient" maxLength:"254" doc:"An e-mail address, phone number, customer id or agent id"`
	EventType string `query:"event_type" maxLength:"200" doc:"claims.ClaimCreated, or just ClaimCreated"`
	Status    string `query:"status" enum:"pending,sent,failed,"`
	Channel   string `query:"channel" enum:"email,sms,inbox,"`
}

func (h handlers) list(ctx context.Context, in *listInput) (*httpx.Reply[httpx.List[Notification]], error) {
	f := Filter{Recipient: in.Recipient, EventType: in.EventType, Status: Status(in.Status), Channel: Channel(in.Channel), Page: in.Request()}
	res, err := h.svc.ListNotifications(ctx, f)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, f.Page)), nil
}

func (h handlers) stats(ctx context.Context, _ *struct{}) (*httpx.Reply[Stats], error) {
	st, err := h.svc.Stats(ctx)
	if err != nil {
		return nil, err
	}
	return httpx.OK(st), nil
}
