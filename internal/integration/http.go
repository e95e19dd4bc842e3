package integration

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/httpx"
)

// Access rules (admin is always let in). Customers open claims on their own
// orders (the service checks the order is theirs); agents open them for
// customers on the phone; other contexts call as a service. The status is
// for whoever watches the platform; running the enrichment by hand is for
// agents and operators' tooling.
var (
	createAccess = httpx.CustomerOr(auth.RoleAgent, auth.RoleService)
	statusAccess = httpx.Staff(auth.RoleAgent, auth.RoleManager, auth.RoleService)
	runAccess    = httpx.Staff(auth.RoleAgent, auth.RoleService)
)

// Routes mounts the integration HTTP surface.
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	reg := func(id, method, path, summary string, status int, access httpx.Access) httpx.Op {
		return httpx.Op{Context: Name, ID: id, Method: method, Path: path, Summary: summary, Status: status, Access: access}
	}
	httpx.Register(api, reg("claim-from-order", http.MethodPost, "/integration/claims/from-order",
		"Open a claim on an order, enriched with the order and the customer's contact (202 with enrichment pending in degraded mode)",
		http.StatusCreated, createAccess), h.create)
	httpx.Register(api, reg("integration-status", http.MethodGet, "/integration/status",
		"Mode (full or degraded), each dependency as last observed, pending enrichments", 0, statusAccess), h.status)
	httpx.Register(api, reg("run-enrichments", http.MethodPost, "/integration/enrichments/run",
		"Complete the pending enrichments now (the background loop does it on its own)", 0, runAccess), h.run)
}

type handlers struct{ svc Service }

type createInput struct{ Body ClaimFromOrder }

func (h handlers) create(ctx context.Context, in *createInput) (*httpx.Reply[Result], error) {
	res, err := h.svc.CreateClaimFromOrder(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	// The claim exists either way; 202 says part of its processing (the
	// enrichment) is still to come.
	if res.Mode == ModeDegraded {
		return httpx.WithStatus(http.StatusAccepted, res), nil
	}
	return httpx.OK(res), nil
}

func (h handlers) status(ctx context.Context, _ *struct{}) (*httpx.Reply[Status], error) {
	st, err := h.svc.Status(ctx)
	if err != nil {
		return nil, err
	}
	return httpx.OK(st), nil
}

func (h handlers) run(ctx context.Context, _ *struct{}) (*httpx.Reply[EnrichmentRun], error) {
	n, err := h.svc.EnrichPending(ctx)
	if err != nil {
		return nil, err
	}
	return httpx.OK(EnrichmentRun{Enriched: n}), nil
}
