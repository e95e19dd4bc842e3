package cart

import (
	"context"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
)

// Routes mounts the cart's HTTP surface on the local service. The routes
// are public because anonymous carts are (the session id is the key); who
// may use an attached cart is decided per cart, by the service, on the
// cart as it reads it inside the change: a check here before the call
// could pass just before a concurrent attach and let the write through.
// An unknown (or expired) session is a 404 on every route but DELETE
// /carts/{session_id}, which is idempotent and answers 204: the checkout
// saga clears carts and must be able to retry.
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	httpx.Register(api, httpx.Op{Context: Name, ID: "get-cart", Method: http.MethodGet, Path: "/carts/{session_id}",
		Summary: "Get a cart (404 when the session has none)", Access: httpx.Public}, h.get)
	httpx.Register(api, httpx.Op{Context: Name, ID: "clear-cart", Method: http.MethodDelete, Path: "/carts/{session_id}",
		Summary: "Delete a cart (idempotent)", Status: http.StatusNoContent, Access: httpx.Public}, h.clear)
	httpx.Register(api, httpx.Op{Context: Name, ID: "add-cart-item", Method: http.MethodPost, Path: "/carts/{session_id}/items",
		Summary: "Add a product to a cart, priced from the catalog", Access: httpx.Public}, h.addItem)
	httpx.Register(api, httpx.Op{Context: Name, ID: "set-cart-item", Method: http.MethodPut, Path: "/carts/{session_id}/items/{product_id}",
		Summary: "Set the quantity of a line (1-999; DELETE removes it)", Access: httpx.Public}, h.setQuantity)
	httpx.Register(api, httpx.Op{Context: Name, ID: "remove-cart-item", Method: http.MethodDelete, Path: "/carts/{session_id}/items/{product_id}",
		Summary: "Remove a line (idempotent)", Access: httpx.Public}, h.removeItem)
	httpx.Register(api, httpx.Op{Context: Name, ID: "calculate-cart", Method: http.MethodPost, Path: "/carts/{session_id}/calculate",
		Summary: "Price a cart with the taxes of a province", Access: httpx.Public}, h.calculate)
	httpx.Register(api, httpx.Op{Context: Name, ID: "attach-cart-customer", Method: http.MethodPut, Path: "/carts/{session_id}/customer",
		Summary: "Make a cart a customer's (customers attach themselves; the checkout saga anyone)",
		Access:  httpx.CustomerOr(auth.RoleService)}, h.attach)
}

type handlers struct{ svc Service }

// The path parameters mirror checkSession and checkID, so the OpenAPI
// document states the rules and a bad id is refused before the handler
// runs. They are repeated in each input rather than embedded: huma cannot
// set the fields of an embedded unexported struct.

type sessionPath struct {
	SessionID string `path:"session_id" minLength:"16" maxLength:"128" pattern:"^[A-Za-z0-9_-]+$" doc:"Made by the client: 16-128 letters, digits, '_' or '-'"`
}

type itemPath struct {
	SessionID string `path:"session_id" minLength:"16" maxLength:"128" pattern:"^[A-Za-z0-9_-]+$" doc:"Made by the client: 16-128 letters, digits, '_' or '-'"`
	ProductID string `path:"product_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9_-]+$"`
}

func (h handlers) get(ctx context.Context, in *sessionPath) (*httpx.Reply[Cart], error) {
	c, err := h.svc.Get(fromHTTP(ctx), in.SessionID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(c), nil
}

func (h handlers) clear(ctx context.Context, in *sessionPath) (*httpx.NoContent, error) {
	return nil, h.svc.Clear(fromHTTP(ctx), in.SessionID)
}

type addItemInput struct {
	SessionID string `path:"session_id" minLength:"16" maxLength:"128" pattern:"^[A-Za-z0-9_-]+$" doc:"Made by the client: 16-128 letters, digits, '_' or '-'"`
	Body      NewItem
}

func (h handlers) addItem(ctx context.Context, in *addItemInput) (*httpx.Reply[Cart], error) {
	c, err := h.svc.AddItem(fromHTTP(ctx), in.SessionID, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(c), nil
}

// QuantityUpdate is the body of PUT /carts/{session_id}/items/{product_id}.
type QuantityUpdate struct {
	Quantity int `json:"quantity" minimum:"1" maximum:"999"`
}

type setQuantityInput struct {
	SessionID string `path:"session_id" minLength:"16" maxLength:"128" pattern:"^[A-Za-z0-9_-]+$" doc:"Made by the client: 16-128 letters, digits, '_' or '-'"`
	ProductID string `path:"product_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9_-]+$"`
	Body      QuantityUpdate
}

func (h handlers) setQuantity(ctx context.Context, in *setQuantityInput) (*httpx.Reply[Cart], error) {
	c, err := h.svc.SetQuantity(fromHTTP(ctx), in.SessionID, in.ProductID, in.Body.Quantity)
	if err != nil {
		return nil, err
	}
	return httpx.OK(c), nil
}

func (h handlers) removeItem(ctx context.Context, in *itemPath) (*httpx.Reply[Cart], error) {
	c, err := h.svc.RemoveItem(fromHTTP(ctx), in.SessionID, in.ProductID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(c), nil
}

type calculateInput struct {
	SessionID string `path:"session_id" minLength:"16" maxLength:"128" pattern:"^[A-Za-z0-9_-]+$" doc:"Made by the client: 16-128 letters, digits, '_' or '-'"`
	Province  string `query:"province" required:"true" minLength:"2" maxLength:"2" doc:"AB, BC, MB, NB, NL, NS, NT, NU, ON, PE, QC, SK or YT"`
}

func (h handlers) calculate(ctx context.Context, in *calculateInput) (*httpx.Reply[Quote], error) {
	q, err := h.svc.Calculate(fromHTTP(ctx), in.SessionID, in.Province)
	if err != nil {
		return nil, err
	}
	return httpx.OK(q), nil
}

// CustomerRef is the body of PUT /carts/{session_id}/customer.
type CustomerRef struct {
	CustomerID string `json:"customer_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9_-]+$"`
}

type attachInput struct {
	SessionID string `path:"session_id" minLength:"16" maxLength:"128" pattern:"^[A-Za-z0-9_-]+$" doc:"Made by the client: 16-128 letters, digits, '_' or '-'"`
	Body      CustomerRef
}

func (h handlers) attach(ctx context.Context, in *attachInput) (*httpx.Reply[Cart], error) {
	// A customer may give a cart to nobody but themselves.
	if p, ok := auth.FromContext(ctx); ok && p.Role == auth.RoleCustomer && p.Subject != in.Body.CustomerID {
		return nil, fmt.Errorf("customers attach carts to themselves only: %w", errs.Forbidden)
	}
	c, err := h.svc.AttachCustomer(fromHTTP(ctx), in.SessionID, in.Body.CustomerID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(c), nil
}
