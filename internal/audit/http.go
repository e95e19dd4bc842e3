package audit

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/httpx"
)

// Access (admin is always let in): the trail is for support agents
// (API.md); managers see its statistics, which name no one.
var (
	trailReaders = httpx.Staff(auth.RoleAgent)
	statsReaders = httpx.Staff(auth.RoleAgent, auth.RoleManager)
)

// Routes mounts the context's HTTP surface: two reads, nothing else (the
// trail is written only from events).
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	httpx.Register(api, httpx.Op{Context: Name, ID: "list-audit", Method: http.MethodGet, Path: "/audit",
		Summary: "List audited events, in the order they happened (order=desc: newest first)", Access: trailReaders}, h.list)
	httpx.Register(api, httpx.Op{Context: Name, ID: "audit-stats", Method: http.MethodGet, Path: "/audit/stats",
		Summary: "Count audited events by stream and type; latency p50/p95 over the last hour", Access: statsReaders}, h.stats)
}

type handlers struct{ svc Service }

type listInput struct {
	httpx.PageQuery
	AggregateID   string    `query:"aggregate_id" maxLength:"200"`
	EventType     string    `query:"event_type" maxLength:"200" doc:"claims.ClaimCreated, or just ClaimCreated (any stream)"`
	CorrelationID string    `query:"correlation_id" maxLength:"128"`
	Stream        string    `query:"stream" maxLength:"63" doc:"claims, orders, sales or inventory"`
	Actor         string    `query:"actor" maxLength:"200" doc:"<role>:<subject>, e.g. agent:key_01…"`
	From          time.Time `query:"from" doc:"RFC 3339; events that occurred at or after it"`
	To            time.Time `query:"to" doc:"RFC 3339; events that occurred before it"`
	Order         string    `query:"order" enum:"asc,desc," doc:"asc (default): oldest first; desc: newest first"`
}

func (h handlers) list(ctx context.Context, in *listInput) (*httpx.Reply[httpx.List[Entry]], error) {
	f := Filter{
		AggregateID: in.AggregateID, EventType: in.EventType, CorrelationID: in.CorrelationID,
		Stream: in.Stream, Actor: in.Actor, From: in.From, To: in.To, Newest: in.Order == "desc",
		Page: in.Request(),
	}
	res, err := h.svc.ListEntries(ctx, f)
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
