package sales

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
)

// Access rules (admin is always let in; a manager is also a cashier, the
// roles are listed for the reader). Managers set up registers; the till
// is the cashier's; other contexts (reporting) read with the service key.
var (
	registerWriters = httpx.Staff(auth.RoleManager)
	tillUsers       = httpx.Staff(auth.RoleCashier, auth.RoleManager)
	tillReaders     = httpx.Staff(auth.RoleCashier, auth.RoleManager, auth.RoleService)
)

// Routes mounts the sales context's HTTP surface. Handlers pass the
// caller's role and store to the service as an Actor; the rules that use
// them (store ties, discounts, cross-store returns) live in the service.
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	reg := func(id, method, path, summary string, status int, access httpx.Access) httpx.Op {
		return httpx.Op{Context: Name, ID: id, Method: method, Path: path, Summary: summary, Status: status, Access: access}
	}
	httpx.Register(api, reg("create-register", http.MethodPost, "/registers",
		"Create a register at a store", http.StatusCreated, registerWriters), h.createRegister)
	httpx.Register(api, reg("list-registers", http.MethodGet, "/registers", "List registers", 0, tillReaders), h.listRegisters)
	httpx.Register(api, reg("get-register", http.MethodGet, "/registers/{id}", "Get a register", 0, tillReaders), h.getRegister)

	httpx.Register(api, reg("open-register-session", http.MethodPost, "/registers/{id}/sessions",
		"Open a session on a register with a cash float (409 if one is open)", http.StatusCreated, tillUsers), h.openSession)
	httpx.Register(api, reg("get-register-session", http.MethodGet, "/registers/{id}/sessions/{sid}",
		"Get a session with its Z report (closed) or its running figures (open)", 0, tillReaders), h.getSession)
	httpx.Register(api, reg("close-register-session", http.MethodPost, "/registers/{id}/sessions/{sid}/close",
		"Close a session with the counted cash: the Z report", 0, tillUsers), h.closeSession)

	httpx.Register(api, reg("create-sale", http.MethodPost, "/sales",
		"Ring up a sale (201; the same Idempotency-Key again answers 200 with the same sale)", http.StatusCreated, tillUsers), h.createSale)
	httpx.Register(api, reg("list-sales", http.MethodGet, "/sales", "List completed sales, newest first", 0, tillReaders), h.listSales)
	httpx.Register(api, reg("get-sale", http.MethodGet, "/sales/{id}", "Get a sale", 0, tillReaders), h.getSale)
	httpx.Register(api, reg("get-sale-receipt", http.MethodGet, "/sales/{id}/receipt",
		"A sale's receipt, 58 columns of text/plain (JSON when asked with Accept: application/json)", 0, tillUsers), h.receipt)
	httpx.Register(api, reg("create-return", http.MethodPost, "/sales/{id}/returns",
		"SaleReturn goods from a sale: refunded card first, then cash; restocked", http.StatusCreated, tillUsers), h.createReturn)
	httpx.Register(api, reg("list-returns", http.MethodGet, "/sales/{id}/returns", "List a sale's returns", 0, tillReaders), h.listReturns)
}

type handlers struct{ svc Service }

// actorFrom is the authenticated caller as the service's rules see it.
func actorFrom(ctx context.Context) Actor {
	p, _ := auth.FromContext(ctx)
	return Actor{Role: p.Role, LocationID: p.LocationID}
}

// idPath is every {id}; ids are plain tokens of at most 64 characters, so
// anything else is refused before a lookup.
type idPath struct {
	ID string `path:"id" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
}

type createRegisterInput struct{ Body NewRegister }

func (h handlers) createRegister(ctx context.Context, in *createRegisterInput) (*httpx.Reply[Register], error) {
	in.Body.Actor = actorFrom(ctx)
	r, err := h.svc.CreateRegister(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(r), nil
}

type listRegistersInput struct {
	httpx.PageQuery
	LocationID string `query:"location_id" maxLength:"64"`
}

func (h handlers) listRegisters(ctx context.Context, in *listRegistersInput) (*httpx.Reply[httpx.List[Register]], error) {
	f := RegisterFilter{LocationID: in.LocationID, Page: in.Request()}
	res, err := h.svc.ListRegisters(ctx, f)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, f.Page)), nil
}

func (h handlers) getRegister(ctx context.Context, in *idPath) (*httpx.Reply[Register], error) {
	r, err := h.svc.GetRegister(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(r), nil
}

type openSessionInput struct {
	ID   string `path:"id" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	Body SessionOpening
}

func (h handlers) openSession(ctx context.Context, in *openSessionInput) (*httpx.Reply[RegisterSession], error) {
	in.Body.Actor = actorFrom(ctx)
	ss, err := h.svc.OpenSession(ctx, in.ID, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(ss), nil
}

type sessionPath struct {
	ID  string `path:"id" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	SID string `path:"sid" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
}

func (h handlers) getSession(ctx context.Context, in *sessionPath) (*httpx.Reply[RegisterSession], error) {
	ss, err := h.svc.GetSession(ctx, in.ID, in.SID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(ss), nil
}

type closeSessionInput struct {
	ID   string `path:"id" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	SID  string `path:"sid" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	Body SessionClosing
}

func (h handlers) closeSession(ctx context.Context, in *closeSessionInput) (*httpx.Reply[RegisterSession], error) {
	in.Body.Actor = actorFrom(ctx)
	ss, err := h.svc.CloseSession(ctx, in.ID, in.SID, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(ss), nil
}

type createSaleInput struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"128" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$" doc:"Makes a retry the same sale"`
	Body           NewSale
}

func (h handlers) createSale(ctx context.Context, in *createSaleInput) (*httpx.Reply[Sale], error) {
	in.Body.IdempotencyKey, in.Body.Actor = in.IdempotencyKey, actorFrom(ctx)
	s, err := h.svc.CreateSale(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	if s.replayed {
		return httpx.WithStatus(http.StatusOK, s), nil
	}
	return httpx.OK(s), nil
}

type listSalesInput struct {
	httpx.PageQuery
	LocationID string `query:"location_id" maxLength:"64"`
	RegisterID string `query:"register_id" maxLength:"64"`
	SessionID  string `query:"session_id" maxLength:"64"`
	From       string `query:"from" maxLength:"40" doc:"RFC 3339; sales at or after"`
	To         string `query:"to" maxLength:"40" doc:"RFC 3339; sales before"`
}

func (h handlers) listSales(ctx context.Context, in *listSalesInput) (*httpx.Reply[httpx.List[Sale]], error) {
	f := SaleFilter{LocationID: in.LocationID, RegisterID: in.RegisterID, SessionID: in.SessionID, Page: in.Request()}
	var v errs.Validator
	f.From = parseTime(&v, "from", in.From)
	f.To = parseTime(&v, "to", in.To)
	if err := v.Err(); err != nil {
		return nil, err
	}
	res, err := h.svc.ListSales(ctx, f)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, f.Page)), nil
}

func parseTime(v *errs.Validator, field, s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	v.Check(err == nil, field, "must be an RFC 3339 time such as 2025-01-31T00:00:00Z")
	return t
}

func (h handlers) getSale(ctx context.Context, in *idPath) (*httpx.Reply[Sale], error) {
	s, err := h.svc.GetSale(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(s), nil
}

type receiptInput struct {
	ID     string `path:"id" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	Accept string `header:"Accept"`
}

// receiptOutput is written as is: huma sends a []byte body untouched,
// with the Content-Type set here.
type receiptOutput struct {
	ContentType string `header:"Content-Type"`
	Body        []byte
}

// receipt answers text/plain, what a printer or a browser wants; a client
// that asks for JSON only (the Client does) gets the SaleReceipt as JSON.
func (h handlers) receipt(ctx context.Context, in *receiptInput) (*receiptOutput, error) {
	r, err := h.svc.Receipt(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	if strings.Contains(in.Accept, "application/json") && !strings.Contains(in.Accept, "text/plain") {
		raw, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encode receipt: %w", err)
		}
		return &receiptOutput{ContentType: "application/json", Body: raw}, nil
	}
	return &receiptOutput{ContentType: "text/plain; charset=utf-8", Body: []byte(r.Text)}, nil
}

type createReturnInput struct {
	ID             string `path:"id" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$"`
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"128" pattern:"^[A-Za-z0-9][A-Za-z0-9._:-]*$" doc:"Makes a retry the same return"`
	Body           NewSaleReturn
}

func (h handlers) createReturn(ctx context.Context, in *createReturnInput) (*httpx.Reply[SaleReturn], error) {
	in.Body.IdempotencyKey, in.Body.Actor = in.IdempotencyKey, actorFrom(ctx)
	r, err := h.svc.CreateReturn(ctx, in.ID, in.Body)
	if err != nil {
		return nil, err
	}
	if r.replayed {
		return httpx.WithStatus(http.StatusOK, r), nil
	}
	return httpx.OK(r), nil
}

func (h handlers) listReturns(ctx context.Context, in *idPath) (*httpx.Reply[httpx.List[SaleReturn]], error) {
	rs, err := h.svc.ListReturns(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.NewList(rs, 1, len(rs), int64(len(rs)))), nil
}
