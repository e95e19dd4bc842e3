package claims

import (
	"context"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
)

// staff are the roles that work claims (admin always may): agents, and
// other contexts through the service key (integration creates and enriches
// claims from orders).
var staff = []auth.Role{auth.RoleAgent, auth.RoleService}

// Routes mounts the claims HTTP surface. Customers create claims for
// themselves and read their own; agents run every command and query;
// managers also see the statistics.
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	reg := func(id, method, path, summary string, status int, access httpx.Access) httpx.Op {
		return httpx.Op{Context: Name, ID: id, Method: method, Path: path, Summary: summary, Status: status, Access: access}
	}
	httpx.Register(api, reg("create-claim", http.MethodPost, "/claims", "Open a claim (ClaimCreated)", http.StatusCreated, httpx.CustomerOr(staff...)), h.create)
	httpx.Register(api, reg("list-claims", http.MethodGet, "/claims", "List claims from the read model (a customer sees their own)", 0, httpx.CustomerOr(staff...)), h.list)
	httpx.Register(api, reg("claim-stats", http.MethodGet, "/claims/stats", "Claim counts by status, type, agent and customer; mean time to resolve", 0, httpx.Staff(auth.RoleAgent, auth.RoleManager, auth.RoleService)), h.stats)
	httpx.Register(api, reg("get-claim", http.MethodGet, "/claims/{id}", "Get a claim from the read model", 0, httpx.CustomerOr(staff...)), h.get)
	httpx.Register(api, reg("assign-claim", http.MethodPost, "/claims/{id}/assign", "Assign a created claim to an agent (ClaimAssigned)", 0, httpx.Staff(staff...)), h.assign)
	httpx.Register(api, reg("start-claim", http.MethodPost, "/claims/{id}/start", "Start work on an assigned claim (ClaimStarted)", 0, httpx.Staff(staff...)), h.start)
	httpx.Register(api, reg("resolve-claim", http.MethodPost, "/claims/{id}/resolve", "Resolve a claim in progress (ClaimResolved)", 0, httpx.Staff(staff...)), h.resolve)
	httpx.Register(api, reg("close-claim", http.MethodPost, "/claims/{id}/close", "Close a resolved claim (ClaimClosed)", 0, httpx.Staff(staff...)), h.close)
	httpx.Register(api, reg("enrich-claim", http.MethodPost, "/claims/{id}/enrich", "Attach order and customer context (ClaimEnriched)", 0, httpx.Staff(staff...)), h.enrich)
	httpx.Register(api, reg("claim-events", http.MethodGet, "/claims/{id}/events", "The claim's stored events, in version order", 0, httpx.Staff(staff...)), h.events)
	httpx.Register(api, reg("replay-claim", http.MethodGet, "/claims/{id}/replay", "The claim rebuilt from the event store", 0, httpx.Staff(staff...)), h.replay)
}

type handlers struct{ svc Service }

type idPath struct {
	ID string `path:"id" maxLength:"64"`
}

type createInput struct{ Body NewClaim }

func (h handlers) create(ctx context.Context, in *createInput) (*httpx.Reply[Claim], error) {
	// A customer claims for themselves: left out, the customer id is
	// theirs; naming someone else is refused.
	if p, ok := auth.FromContext(ctx); ok && p.Role == auth.RoleCustomer {
		if in.Body.CustomerID == "" {
			in.Body.CustomerID = p.Subject
		}
		if !p.IsCustomer(in.Body.CustomerID) {
			return nil, fmt.Errorf("customers open claims for themselves only: %w", errs.Forbidden)
		}
	}
	c, err := h.svc.CreateClaim(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	if c.Replayed() {
		return httpx.WithStatus(http.StatusOK, c), nil
	}
	return httpx.OK(c), nil
}

type listInput struct {
	httpx.PageQuery
	Status     string `query:"status" enum:"created,assigned,in_progress,resolved,closed," doc:"Keep claims in this status"`
	CustomerID string `query:"customer_id" maxLength:"64" doc:"A customer may leave it out (their own claims) or name themselves"`
	AgentID    string `query:"agent_id" maxLength:"64"`
	ClaimType  string `query:"claim_type" enum:"product_defect,delivery_issue,billing_error,service_complaint,"`
}

func (h handlers) list(ctx context.Context, in *listInput) (*httpx.Reply[httpx.List[Claim]], error) {
	f := Filter{Status: Status(in.Status), CustomerID: in.CustomerID, AgentID: in.AgentID, ClaimType: ClaimType(in.ClaimType), Page: in.Request()}
	if p, ok := auth.FromContext(ctx); ok && p.Role == auth.RoleCustomer {
		if f.CustomerID == "" {
			f.CustomerID = p.Subject
		}
		// Refused rather than emptied, so a client bug shows.
		if !p.IsCustomer(f.CustomerID) {
			return nil, fmt.Errorf("customers list their own claims only: %w", errs.Forbidden)
		}
	}
	res, err := h.svc.ListClaims(ctx, f)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, f.Page)), nil
}

type statsInput struct {
	Top int `query:"top" minimum:"1" maximum:"100" default:"10" doc:"How many customers the top list keeps"`
}

func (h handlers) stats(ctx context.Context, in *statsInput) (*httpx.Reply[Stats], error) {
	st, err := h.svc.Stats(ctx, StatsQuery{TopCustomers: in.Top})
	if err != nil {
		return nil, err
	}
	return httpx.OK(st), nil
}

func (h handlers) get(ctx context.Context, in *idPath) (*httpx.Reply[Claim], error) {
	c, err := h.svc.GetClaim(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	if err := httpx.Allow(ctx, c.CustomerID, staff...); err != nil {
		return nil, err
	}
	return httpx.OK(c), nil
}

type assignInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body Assignment
}

func (h handlers) assign(ctx context.Context, in *assignInput) (*httpx.Reply[Claim], error) {
	return reply(h.svc.AssignClaim(ctx, in.ID, in.Body))
}

func (h handlers) start(ctx context.Context, in *idPath) (*httpx.Reply[Claim], error) {
	return reply(h.svc.StartClaim(ctx, in.ID))
}

type resolveInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body Resolution
}

func (h handlers) resolve(ctx context.Context, in *resolveInput) (*httpx.Reply[Claim], error) {
	return reply(h.svc.ResolveClaim(ctx, in.ID, in.Body))
}

func (h handlers) close(ctx context.Context, in *idPath) (*httpx.Reply[Claim], error) {
	return reply(h.svc.CloseClaim(ctx, in.ID))
}

type enrichInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body Enrichment
}

func (h handlers) enrich(ctx context.Context, in *enrichInput) (*httpx.Reply[Claim], error) {
	return reply(h.svc.EnrichClaim(ctx, in.ID, in.Body))
}

func (h handlers) events(ctx context.Context, in *idPath) (*httpx.Reply[httpx.List[StoredEvent]], error) {
	evs, err := h.svc.ClaimEvents(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	// A claim has a handful of events: one page holds them all.
	return httpx.OK(httpx.NewList(evs, 1, len(evs), int64(len(evs)))), nil
}

func (h handlers) replay(ctx context.Context, in *idPath) (*httpx.Reply[Claim], error) {
	return reply(h.svc.ReplayClaim(ctx, in.ID))
}

func reply(c Claim, err error) (*httpx.Reply[Claim], error) {
	if err != nil {
		return nil, err
	}
	return httpx.OK(c), nil
}
