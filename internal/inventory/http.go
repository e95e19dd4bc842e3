package inventory

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/httpx"
)

// Access rules (admin is always let in). Reservations are the checkout's
// business, so only services call them; managers adjust and approve;
// cashiers read stock and ask for transfers.
var (
	locationReaders    = httpx.Staff(auth.RoleCashier, auth.RoleManager, auth.RoleAgent, auth.RoleService)
	stockReaders       = httpx.Staff(auth.RoleCashier, auth.RoleManager, auth.RoleService)
	stockAdjusters     = httpx.Staff(auth.RoleManager, auth.RoleService)
	reservationCallers = httpx.Staff(auth.RoleService)
	transferRequesters = httpx.Staff(auth.RoleCashier, auth.RoleManager, auth.RoleService)
	transferDeciders   = httpx.Staff(auth.RoleManager)
)

// Routes mounts the inventory's HTTP surface.
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	// reg builds an Op of this context; status 0 keeps the default 200.
	reg := func(id, method, path, summary string, status int, access httpx.Access) httpx.Op {
		return httpx.Op{Context: Name, ID: id, Method: method, Path: path, Summary: summary, Status: status, Access: access}
	}
	httpx.Register(api, reg("list-locations", http.MethodGet, "/locations", "List locations", 0, locationReaders), h.listLocations)
	httpx.Register(api, reg("create-location", http.MethodPost, "/locations", "Create a location", http.StatusCreated, httpx.Admin), h.createLocation)
	httpx.Register(api, reg("get-location", http.MethodGet, "/locations/{id}", "Get a location", 0, locationReaders), h.getLocation)

	httpx.Register(api, reg("list-stock", http.MethodGet, "/inventory", "List stock levels", 0, stockReaders), h.listStock)
	httpx.Register(api, reg("adjust-stock", http.MethodPost, "/inventory/adjustments",
		"Adjust on-hand stock (receipt, count, damage, theft, return, correction)", 0, stockAdjusters), h.adjust)

	httpx.Register(api, reg("create-reservation", http.MethodPost, "/inventory/reservations",
		"Reserve stock, all lines or none (201; the same reservation_id again answers 200 with the same body)",
		http.StatusCreated, reservationCallers), h.reserve)
	httpx.Register(api, reg("expire-reservations", http.MethodPost, "/inventory/reservations/expire",
		"Release every active reservation past its expiry", 0, reservationCallers), h.expire)
	httpx.Register(api, reg("get-reservation", http.MethodGet, "/inventory/reservations/{id}", "Get a reservation", 0, reservationCallers), h.getReservation)
	httpx.Register(api, reg("commit-reservation", http.MethodPost, "/inventory/reservations/{id}/commit",
		"Commit a reservation: the stock leaves (idempotent; 409 if released, 410 if expired)", 0, reservationCallers), h.commit)
	httpx.Register(api, reg("release-reservation", http.MethodDelete, "/inventory/reservations/{id}",
		"Release a reservation (idempotent; 409 if committed)", 0, reservationCallers), h.release)

	httpx.Register(api, reg("list-transfers", http.MethodGet, "/inventory/transfers", "List transfers", 0, transferRequesters), h.listTransfers)
	httpx.Register(api, reg("create-transfer", http.MethodPost, "/inventory/transfers",
		"Request a transfer between locations", http.StatusCreated, transferRequesters), h.createTransfer)
	httpx.Register(api, reg("get-transfer", http.MethodGet, "/inventory/transfers/{id}", "Get a transfer", 0, transferRequesters), h.getTransfer)
	httpx.Register(api, reg("approve-transfer", http.MethodPost, "/inventory/transfers/{id}/approve",
		"Approve a transfer: the stock moves (idempotent; 409 if rejected or short)", 0, transferDeciders), h.approve)
	httpx.Register(api, reg("reject-transfer", http.MethodPost, "/inventory/transfers/{id}/reject",
		"Reject a transfer (idempotent; 409 if approved)", 0, transferDeciders), h.reject)
}

type handlers struct{ svc Service }

// idPath is every {id} in a path; ids are at most 64 characters, so a
// longer one is refused before any lookup.
type idPath struct {
	ID string `path:"id" maxLength:"64"`
}

type listLocationsInput struct {
	httpx.PageQuery
	Kind     string `query:"kind" enum:"store,warehouse,online,"`
	Province string `query:"province" maxLength:"2"`
}

func (h handlers) listLocations(ctx context.Context, in *listLocationsInput) (*httpx.Reply[httpx.List[Location]], error) {
	f := LocationFilter{Kind: in.Kind, Province: in.Province, Page: in.Request()}
	res, err := h.svc.ListLocations(ctx, f)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, f.Page)), nil
}

type createLocationInput struct{ Body NewLocation }

func (h handlers) createLocation(ctx context.Context, in *createLocationInput) (*httpx.Reply[Location], error) {
	l, err := h.svc.CreateLocation(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(l), nil
}

func (h handlers) getLocation(ctx context.Context, in *idPath) (*httpx.Reply[Location], error) {
	l, err := h.svc.GetLocation(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(l), nil
}

type listStockInput struct {
	httpx.PageQuery
	LocationID string `query:"location_id" maxLength:"64"`
	ProductID  string `query:"product_id" maxLength:"64"`
	LowStock   bool   `query:"low_stock" doc:"Only rows whose available stock is at or below the product's alert threshold"`
}

// listStock passes the filters through; the service validates them, so a
// local caller gets the same answers as an HTTP one.
func (h handlers) listStock(ctx context.Context, in *listStockInput) (*httpx.Reply[httpx.List[StockLevel]], error) {
	f := StockFilter{LocationID: in.LocationID, ProductID: in.ProductID, LowStock: in.LowStock, Page: in.Request()}
	res, err := h.svc.ListStock(ctx, f)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, f.Page)), nil
}

type adjustInput struct{ Body Adjustment }

func (h handlers) adjust(ctx context.Context, in *adjustInput) (*httpx.Reply[StockLevel], error) {
	lvl, err := h.svc.Adjust(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(lvl), nil
}

type reserveInput struct{ Body NewReservation }

func (h handlers) reserve(ctx context.Context, in *reserveInput) (*httpx.Reply[Reservation], error) {
	r, err := h.svc.Reserve(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	if r.replayed {
		// Same body as the first answer, but nothing new was created.
		return httpx.WithStatus(http.StatusOK, r), nil
	}
	return httpx.OK(r), nil
}

// ExpireResult is the answer of a sweep.
type ExpireResult struct {
	Expired int `json:"expired" doc:"Reservations this call expired"`
}

// expire is the sweep on demand, for an operator or a scheduler in a
// process that does not run RunExpiry.
func (h handlers) expire(ctx context.Context, _ *struct{}) (*httpx.Reply[ExpireResult], error) {
	n, err := h.svc.ExpireReservations(ctx)
	if err != nil {
		return nil, err
	}
	return httpx.OK(ExpireResult{Expired: n}), nil
}

func (h handlers) getReservation(ctx context.Context, in *idPath) (*httpx.Reply[Reservation], error) {
	r, err := h.svc.GetReservation(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(r), nil
}

func (h handlers) commit(ctx context.Context, in *idPath) (*httpx.Reply[Reservation], error) {
	r, err := h.svc.CommitReservation(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(r), nil
}

// release answers 200 with the reservation rather than 204: the caller
// learns whether the hold was released or had already expired.
func (h handlers) release(ctx context.Context, in *idPath) (*httpx.Reply[Reservation], error) {
	r, err := h.svc.ReleaseReservation(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(r), nil
}

type listTransfersInput struct {
	httpx.PageQuery
	Status     string `query:"status" enum:"pending,approved,rejected,"`
	LocationID string `query:"location_id" maxLength:"64" doc:"Transfers from or to this location"`
	ProductID  string `query:"product_id" maxLength:"64"`
}

func (h handlers) listTransfers(ctx context.Context, in *listTransfersInput) (*httpx.Reply[httpx.List[Transfer]], error) {
	f := TransferFilter{Status: in.Status, LocationID: in.LocationID, ProductID: in.ProductID, Page: in.Request()}
	res, err := h.svc.ListTransfers(ctx, f)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, f.Page)), nil
}

type createTransferInput struct{ Body NewTransfer }

func (h handlers) createTransfer(ctx context.Context, in *createTransferInput) (*httpx.Reply[Transfer], error) {
	t, err := h.svc.CreateTransfer(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(t), nil
}

func (h handlers) getTransfer(ctx context.Context, in *idPath) (*httpx.Reply[Transfer], error) {
	t, err := h.svc.GetTransfer(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(t), nil
}

func (h handlers) approve(ctx context.Context, in *idPath) (*httpx.Reply[Transfer], error) {
	t, err := h.svc.ApproveTransfer(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(t), nil
}

func (h handlers) reject(ctx context.Context, in *idPath) (*httpx.Reply[Transfer], error) {
	t, err := h.svc.RejectTransfer(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(t), nil
}
