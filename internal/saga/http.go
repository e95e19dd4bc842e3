package saga

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/httpx"
)

// Access rules (admin is always let in). A customer checks out for
// themselves and cancels their own orders; in the fleet a front end may
// call on a customer's behalf with the service role. Staff read sagas to
// follow and support checkouts; a customer may read their own saga (the
// 202 of a slow checkout points there).
var (
	checkoutAccess = httpx.CustomerOr(auth.RoleService)
	cancelAccess   = httpx.CustomerOr(auth.RoleManager, auth.RoleService)
	readAccess     = httpx.CustomerOr(auth.RoleManager, auth.RoleAgent, auth.RoleService)
	listAccess     = httpx.Staff(auth.RoleManager, auth.RoleAgent, auth.RoleService)
	staffReaders   = []auth.Role{auth.RoleManager, auth.RoleAgent, auth.RoleService}
)

// Routes mounts the saga context's HTTP surface. POST
// /orders/{id}/cancel lives here, not in the order context: cancelling
// refunds and restocks, which is a saga; its operation names this context,
// so the gateway routes it here.
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	reg := func(id, method, path, summary string, status int, access httpx.Access) httpx.Op {
		return httpx.Op{Context: Name, ID: id, Method: method, Path: path, Summary: summary, Status: status, Access: access}
	}
	httpx.Register(api, reg("checkout", http.MethodPost, "/checkout",
		"Check a cart out: 201 COMPLETED, 202 while running, or a 402/409/5xx problem naming saga_id, saga_status FAILED and failed_step (idempotent with Idempotency-Key)",
		http.StatusCreated, checkoutAccess), h.checkout)
	httpx.Register(api, reg("cancel-order", http.MethodPost, "/orders/{id}/cancel",
		"Cancel a confirmed order: refund and restock (idempotent; 409 once shipped)", 0, cancelAccess), h.cancel)
	httpx.Register(api, reg("list-sagas", http.MethodGet, "/sagas", "List sagas, newest first", 0, listAccess), h.list)
	httpx.Register(api, reg("get-saga", http.MethodGet, "/sagas/{id}",
		"Get a saga: state, steps with timings and attempts, compensations, error", 0, readAccess), h.get)
}

type handlers struct{ svc Service }

// FailedProblem is the problem document of a saga that ran and failed: an
// RFC 9457 problem (its status member is the HTTP status, as in every
// problem of this API) extended with the saga's id, its final state
// (saga_status, always FAILED) and the step that failed, so a client can
// follow up with GET /sagas/{id}.
type FailedProblem struct {
	httpx.Problem
	SagaID     string `json:"saga_id"`
	SagaStatus string `json:"saga_status"`
	FailedStep string `json:"failed_step"`
	OrderID    string `json:"order_id,omitempty"`
}

// failedProblem turns a failed saga into its problem document; other
// errors pass through to the platform's mapping.
func failedProblem(ctx context.Context, err error, instance, orderID string) error {
	var fe *FailedError
	if !errors.As(err, &fe) {
		return err
	}
	p := httpx.NewProblem(fe.Kind, fe.Error(), nil)
	p.Instance, p.RequestID = instance, correlation.From(ctx)
	return &FailedProblem{Problem: *p, SagaID: fe.SagaID, SagaStatus: StateFailed, FailedStep: fe.FailedStep, OrderID: orderID}
}

type checkoutInput struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Same key and body answer the first checkout's outcome; same key, other body: 422"`
	Body           CheckoutRequest
}

func (h handlers) checkout(ctx context.Context, in *checkoutInput) (*httpx.Reply[CheckoutResult], error) {
	// A customer checks out for themselves only.
	if err := httpx.Allow(ctx, in.Body.CustomerID, auth.RoleService); err != nil {
		return nil, err
	}
	res, err := h.svc.Checkout(ctx, in.IdempotencyKey, in.Body)
	if err != nil {
		return nil, failedProblem(ctx, err, httpx.APIPrefix+"/checkout", "")
	}
	if res.Status != StateCompleted {
		return httpx.WithStatus(http.StatusAccepted, res), nil
	}
	return httpx.OK(res), nil
}

type idPath struct {
	ID string `path:"id" maxLength:"64"`
}

func (h handlers) cancel(ctx context.Context, in *idPath) (*httpx.Reply[CancelResult], error) {
	res, err := h.svc.CancelOrder(ctx, in.ID)
	if err != nil {
		return nil, failedProblem(ctx, err, httpx.APIPrefix+"/orders/"+in.ID+"/cancel", in.ID)
	}
	if res.Status != StateCompleted {
		return httpx.WithStatus(http.StatusAccepted, res), nil
	}
	return httpx.OK(res), nil
}

type listInput struct {
	httpx.PageQuery
	Status     string `query:"status" maxLength:"32" doc:"A state, e.g. FAILED or COMPENSATING_PAYMENT"`
	Kind       string `query:"kind" enum:"checkout,cancel,"`
	CustomerID string `query:"customer_id" maxLength:"64"`
	OrderID    string `query:"order_id" maxLength:"64"`
}

func (h handlers) list(ctx context.Context, in *listInput) (*httpx.Reply[httpx.List[Saga]], error) {
	f := Filter{Status: in.Status, Kind: in.Kind, CustomerID: in.CustomerID, OrderID: in.OrderID, Page: in.Request()}
	res, err := h.svc.ListSagas(ctx, f)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, f.Page)), nil
}

func (h handlers) get(ctx context.Context, in *idPath) (*httpx.Reply[Saga], error) {
	s, err := h.svc.GetSaga(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	if err := httpx.Allow(ctx, s.CustomerID, staffReaders...); err != nil {
		return nil, err
	}
	return httpx.OK(s), nil
}
