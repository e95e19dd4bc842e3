package order

import (
	"context"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
)

// Access rules (admin is always let in). Customers read their own orders;
// support agents read everyone's to answer questions; fulfilment (a
// manager, or a warehouse system with the service role) moves orders
// along; creating and cancelling are the checkout saga's, calling as a
// service (POST /orders/{id}/cancel, which refunds and restocks, belongs
// to the saga context).
var (
	readAccess    = httpx.CustomerOr(auth.RoleManager, auth.RoleAgent, auth.RoleService)
	staffReaders  = []auth.Role{auth.RoleManager, auth.RoleAgent, auth.RoleService}
	summaryAccess = httpx.Staff(auth.RoleManager, auth.RoleAgent, auth.RoleService)
	fulfilment    = httpx.Staff(auth.RoleManager, auth.RoleService)
	sagaAccess    = httpx.Staff(auth.RoleService)
)

// Routes mounts the order context's HTTP surface.
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	reg := func(id, method, path, summary string, status int, access httpx.Access) httpx.Op {
		return httpx.Op{Context: Name, ID: id, Method: method, Path: path, Summary: summary, Status: status, Access: access}
	}
	httpx.Register(api, reg("create-order", http.MethodPost, "/orders",
		"Record a paid order, confirmed (the checkout saga; idempotent on saga_id: a replay answers 200)",
		http.StatusCreated, sagaAccess), h.create)
	httpx.Register(api, reg("list-orders", http.MethodGet, "/orders",
		"List orders, newest first (a customer sees their own)", 0, readAccess), h.list)
	httpx.Register(api, reg("order-summary", http.MethodGet, "/orders/summary",
		"Count and sum orders by status for one currency", 0, summaryAccess), h.summary)
	httpx.Register(api, reg("get-order", http.MethodGet, "/orders/{id}",
		"Get an order (its customer or staff)", 0, readAccess), h.get)
	httpx.Register(api, reg("update-order-status", http.MethodPut, "/orders/{id}/status",
		"Move an order through fulfilment: confirmed → shipped → delivered", 0, fulfilment), h.updateStatus)
	httpx.Register(api, reg("mark-order-cancelled", http.MethodPut, "/orders/{id}/cancellation",
		"Mark an order cancelled, idempotently; it moves no money or stock (the saga's cancel flow does)",
		0, sagaAccess), h.markCancelled)
}

type handlers struct{ svc Service }

type createInput struct{ Body NewOrder }

func (h handlers) create(ctx context.Context, in *createInput) (*httpx.Reply[Order], error) {
	o, err := h.svc.CreateOrder(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	if o.Replayed() {
		return httpx.WithStatus(http.StatusOK, o), nil
	}
	return httpx.OK(o), nil
}

type listInput struct {
	httpx.PageQuery
	CustomerID string `query:"customer_id" maxLength:"64" doc:"A customer may leave it out (their own orders) or name themselves"`
	Status     string `query:"status" enum:"pending,confirmed,cancelled,shipped,delivered,"`
	SagaID     string `query:"saga_id" maxLength:"64"`
}

func (h handlers) list(ctx context.Context, in *listInput) (*httpx.Reply[httpx.List[Order]], error) {
	f := Filter{CustomerID: in.CustomerID, Status: Status(in.Status), SagaID: in.SagaID, Page: in.Request()}
	// A customer lists their own orders only: without customer_id the
	// filter becomes theirs; naming someone else is refused, not emptied,
	// so a client bug shows.
	if p, ok := auth.FromContext(ctx); ok && p.Role == auth.RoleCustomer {
		if f.CustomerID == "" {
			f.CustomerID = p.Subject
		}
		if err := httpx.Allow(ctx, f.CustomerID); err != nil {
			return nil, fmt.Errorf("customers list their own orders only: %w", errs.Forbidden)
		}
	}
	res, err := h.svc.ListOrders(ctx, f)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, f.Page)), nil
}

type summaryInput struct {
	Currency string `query:"currency" pattern:"^[A-Z]{3}$" doc:"ISO 4217 code, default CAD"`
}

func (h handlers) summary(ctx context.Context, in *summaryInput) (*httpx.Reply[OrderTotals], error) {
	t, err := h.svc.Totals(ctx, in.Currency)
	if err != nil {
		return nil, err
	}
	return httpx.OK(t), nil
}

type idPath struct {
	ID string `path:"id" maxLength:"64"`
}

func (h handlers) get(ctx context.Context, in *idPath) (*httpx.Reply[Order], error) {
	o, err := h.svc.GetOrder(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	if err := httpx.Allow(ctx, o.CustomerID, staffReaders...); err != nil {
		return nil, err
	}
	return httpx.OK(o), nil
}

// StatusUpdate is the body of PUT /orders/{id}/status.
type StatusUpdate struct {
	Status Status `json:"status" enum:"shipped,delivered"`
}

type updateStatusInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body StatusUpdate
}

func (h handlers) updateStatus(ctx context.Context, in *updateStatusInput) (*httpx.Reply[Order], error) {
	o, err := h.svc.UpdateStatus(ctx, in.ID, in.Body.Status)
	if err != nil {
		return nil, err
	}
	return httpx.OK(o), nil
}

func (h handlers) markCancelled(ctx context.Context, in *idPath) (*httpx.Reply[Order], error) {
	o, err := h.svc.MarkCancelled(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(o), nil
}
