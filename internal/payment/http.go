package payment

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/httpx"
)

// Access rules. Taking and giving back money is for the saga, calling as
// a service (in the monolith it calls the Service directly and never comes
// here); reading is also open to managers and support agents, who answer
// "was I charged?" questions.
var (
	writeAccess = httpx.Staff(auth.RoleService)
	readAccess  = httpx.Staff(auth.RoleService, auth.RoleManager, auth.RoleAgent)
)

// Routes mounts the payment context's HTTP surface.
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	httpx.Register(api, httpx.Op{Context: Name, ID: "create-payment", Method: http.MethodPost, Path: "/payments",
		Summary: "Charge a payment (idempotent on transaction_id: a replay answers 200 with the stored payment)",
		Status:  http.StatusCreated, Access: writeAccess}, h.charge)
	httpx.Register(api, httpx.Op{Context: Name, ID: "list-payments", Method: http.MethodGet, Path: "/payments",
		Summary: "List payments, newest first", Access: readAccess}, h.list)
	httpx.Register(api, httpx.Op{Context: Name, ID: "payment-summary", Method: http.MethodGet, Path: "/payments/summary",
		Summary: "Captured and refunded totals of one currency", Access: readAccess}, h.summary)
	httpx.Register(api, httpx.Op{Context: Name, ID: "get-payment-by-transaction", Method: http.MethodGet,
		Path: "/payments/by-transaction/{transaction_id}", Summary: "Get the payment of a transaction id", Access: readAccess}, h.byTransaction)
	httpx.Register(api, httpx.Op{Context: Name, ID: "get-payment", Method: http.MethodGet, Path: "/payments/{id}",
		Summary: "Get a payment", Access: readAccess}, h.get)
	httpx.Register(api, httpx.Op{Context: Name, ID: "create-refund", Method: http.MethodPost, Path: "/payments/{id}/refunds",
		Summary: "Refund part or all of a captured payment (idempotent on refund_id)",
		Status:  http.StatusCreated, Access: writeAccess}, h.refund)
	httpx.Register(api, httpx.Op{Context: Name, ID: "list-refunds", Method: http.MethodGet, Path: "/payments/{id}/refunds",
		Summary: "List a payment's refunds, oldest first", Access: readAccess}, h.listRefunds)
}

type handlers struct{ svc Service }

type chargeInput struct{ Body NewPayment }

func (h handlers) charge(ctx context.Context, in *chargeInput) (*httpx.Reply[ChargeOutcome], error) {
	out, err := h.svc.Charge(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	if out.Replayed {
		return httpx.WithStatus(http.StatusOK, out), nil
	}
	return httpx.OK(out), nil
}

type listInput struct {
	httpx.PageQuery
	OrderID       string `query:"order_id" maxLength:"64"`
	CustomerID    string `query:"customer_id" maxLength:"64"`
	Status        string `query:"status" enum:"pending,captured,partially_refunded,refunded,declined,failed,"`
	TransactionID string `query:"transaction_id" maxLength:"128"`
}

func (h handlers) list(ctx context.Context, in *listInput) (*httpx.Reply[httpx.List[Payment]], error) {
	f := Filter{OrderID: in.OrderID, CustomerID: in.CustomerID, Status: Status(in.Status),
		TransactionID: in.TransactionID, Page: in.Request()}
	res, err := h.svc.ListPayments(ctx, f)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, f.Page)), nil
}

type summaryInput struct {
	Currency string `query:"currency" pattern:"^[A-Z]{3}$" doc:"ISO 4217 code, default CAD"`
}

func (h handlers) summary(ctx context.Context, in *summaryInput) (*httpx.Reply[Summary], error) {
	s, err := h.svc.Summary(ctx, in.Currency)
	if err != nil {
		return nil, err
	}
	return httpx.OK(s), nil
}

type idPath struct {
	ID string `path:"id" maxLength:"64"`
}

func (h handlers) get(ctx context.Context, in *idPath) (*httpx.Reply[Payment], error) {
	p, err := h.svc.GetPayment(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(p), nil
}

type transactionPath struct {
	TransactionID string `path:"transaction_id" maxLength:"128"`
}

func (h handlers) byTransaction(ctx context.Context, in *transactionPath) (*httpx.Reply[Payment], error) {
	p, err := h.svc.GetPaymentByTransaction(ctx, in.TransactionID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(p), nil
}

type refundInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body NewRefund
}

func (h handlers) refund(ctx context.Context, in *refundInput) (*httpx.Reply[RefundOutcome], error) {
	out, err := h.svc.Refund(ctx, in.ID, in.Body)
	if err != nil {
		return nil, err
	}
	if out.Replayed {
		return httpx.WithStatus(http.StatusOK, out), nil
	}
	return httpx.OK(out), nil
}

type listRefundsInput struct {
	httpx.PageQuery
	ID string `path:"id" maxLength:"64"`
}

func (h handlers) listRefunds(ctx context.Context, in *listRefundsInput) (*httpx.Reply[httpx.List[Refund]], error) {
	req := in.Request()
	res, err := h.svc.ListRefunds(ctx, in.ID, req)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, req)), nil
}
