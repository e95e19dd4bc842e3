package customer

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/labstack/echo/v4"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
)

// ClientIPHeader carries the shopper's address when another process logs
// a customer in on their behalf (Client.Login). It is believed only from a
// caller holding the service role; from anyone else it is ignored, so a
// client cannot pick a fresh address to escape the per-address limit.
const ClientIPHeader = "X-POS-Client-IP"

// Who may read customer records besides the customer: staff who serve
// customers, and the contexts that need a name or a shipping address.
// Writes are the customer's own, or an admin's.
var (
	customerReaders = []auth.Role{auth.RoleAdmin, auth.RoleManager, auth.RoleAgent, auth.RoleService}
	customerWriters = []auth.Role{auth.RoleAdmin}
)

// Routes mounts the customer context's HTTP surface. Access rules let the
// right kinds of callers in; handlers then check ownership with
// httpx.Allow, so a customer only ever reaches their own records.
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	anyone := httpx.Access{Customer: true, Roles: auth.StaffRoles}
	reg := func(op httpx.Op) httpx.Op { op.Context = Name; return op }

	httpx.Register(api, reg(httpx.Op{ID: "register-customer", Method: http.MethodPost, Path: "/auth/register",
		Summary: "Open a customer account", Status: http.StatusCreated, Access: httpx.Public}), h.register)
	httpx.Register(api, reg(httpx.Op{ID: "login-customer", Method: http.MethodPost, Path: "/auth/login",
		Summary: "Log a customer in and get a bearer token", Access: httpx.Public}), h.login)
	httpx.Register(api, reg(httpx.Op{ID: "whoami", Method: http.MethodGet, Path: "/auth/whoami",
		Summary: "Describe the caller's credentials (how other processes validate API keys)", Access: anyone}), h.whoami)

	httpx.Register(api, reg(httpx.Op{ID: "get-my-customer", Method: http.MethodGet, Path: "/customers/me",
		Summary: "Get the logged-in customer", Access: httpx.CustomerOr()}), h.me)
	httpx.Register(api, reg(httpx.Op{ID: "list-customers", Method: http.MethodGet, Path: "/customers",
		Summary: "List customers", Access: httpx.Staff(auth.RoleManager, auth.RoleAgent, auth.RoleService)}), h.list)
	httpx.Register(api, reg(httpx.Op{ID: "get-customer", Method: http.MethodGet, Path: "/customers/{id}",
		Summary: "Get a customer", Access: httpx.CustomerOr(customerReaders...)}), h.get)
	httpx.Register(api, reg(httpx.Op{ID: "update-customer", Method: http.MethodPut, Path: "/customers/{id}",
		Summary: "Update a customer (fields left out keep their value)", Access: httpx.CustomerOr(customerWriters...)}), h.update)

	httpx.Register(api, reg(httpx.Op{ID: "list-addresses", Method: http.MethodGet, Path: "/customers/{id}/addresses",
		Summary: "List a customer's addresses, the default first", Access: httpx.CustomerOr(customerReaders...)}), h.listAddresses)
	httpx.Register(api, reg(httpx.Op{ID: "add-address", Method: http.MethodPost, Path: "/customers/{id}/addresses",
		Summary: "Add an address", Status: http.StatusCreated, Access: httpx.CustomerOr(customerWriters...)}), h.addAddress)
	httpx.Register(api, reg(httpx.Op{ID: "update-address", Method: http.MethodPut, Path: "/customers/{id}/addresses/{aid}",
		Summary: "Update an address (fields left out keep their value)", Access: httpx.CustomerOr(customerWriters...)}), h.updateAddress)
	httpx.Register(api, reg(httpx.Op{ID: "delete-address", Method: http.MethodDelete, Path: "/customers/{id}/addresses/{aid}",
		Summary: "Delete an address", Status: http.StatusNoContent, Access: httpx.CustomerOr(customerWriters...)}), h.deleteAddress)

	httpx.Register(api, reg(httpx.Op{ID: "create-api-key", Method: http.MethodPost, Path: "/api-keys",
		Summary: "Create an API key (the key is returned once)", Status: http.StatusCreated, Access: httpx.Admin}), h.createKey)
	httpx.Register(api, reg(httpx.Op{ID: "list-api-keys", Method: http.MethodGet, Path: "/api-keys",
		Summary: "List API keys (never the keys themselves)", Access: httpx.Admin}), h.listKeys)
	httpx.Register(api, reg(httpx.Op{ID: "revoke-api-key", Method: http.MethodDelete, Path: "/api-keys/{id}",
		Summary: "Revoke an API key", Status: http.StatusNoContent, Access: httpx.Admin}), h.revokeKey)
}

type handlers struct{ svc Service }

type registerInput struct{ Body Registration }

func (h handlers) register(ctx context.Context, in *registerInput) (*httpx.Reply[Customer], error) {
	c, err := h.svc.Register(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(c), nil
}

// loginInput takes the client address from the connection, through
// Resolve, never from the body.
type loginInput struct {
	Body     LoginRequest
	clientIP string
}

// Resolve implements huma.Resolver: it runs after the body is parsed, with
// the request at hand.
func (in *loginInput) Resolve(hctx huma.Context) []error {
	in.clientIP = clientAddress(hctx)
	return nil
}

func (h handlers) login(ctx context.Context, in *loginInput) (*httpx.Reply[Session], error) {
	s, err := h.svc.Login(ctx, Credentials{Email: in.Body.Email, Password: in.Body.Password, ClientIP: in.clientIP})
	if err != nil {
		return nil, err
	}
	return httpx.OK(s), nil
}

// clientAddress is the address a login is charged to. It is echo's
// RealIP, which follows the server's IP extractor: the TCP peer by
// default, X-Forwarded-For only when the server is configured to trust a
// proxy (httpx.ServerConfig.TrustProxy). A service caller may name the
// shopper's address in ClientIPHeader.
func clientAddress(hctx huma.Context) string {
	if v := strings.TrimSpace(hctx.Header(ClientIPHeader)); v != "" {
		if p, ok := auth.FromContext(hctx.Context()); ok && p.Is(auth.RoleService) {
			if addr, err := netip.ParseAddr(v); err == nil {
				return addr.String()
			}
		}
	}
	if ec := echoContext(hctx); ec != nil {
		return ec.RealIP()
	}
	host, _, err := net.SplitHostPort(hctx.RemoteAddr())
	if err != nil {
		return hctx.RemoteAddr()
	}
	return host
}

// echoContext finds the echo context under a huma context without
// humaecho.Unwrap's panic on other adapters.
func echoContext(hctx huma.Context) echo.Context {
	c := hctx
	for {
		u, ok := c.(interface{ Unwrap() huma.Context })
		if !ok {
			break
		}
		c = u.Unwrap()
	}
	if e, ok := c.(interface{ Unwrap() echo.Context }); ok {
		return e.Unwrap()
	}
	return nil
}

func (h handlers) whoami(ctx context.Context, _ *struct{}) (*httpx.Reply[auth.Principal], error) {
	p, ok := auth.FromContext(ctx)
	if !ok { // the access rule already refused anonymous callers
		return nil, errs.Unauthorized
	}
	return httpx.OK(p), nil
}

func (h handlers) me(ctx context.Context, _ *struct{}) (*httpx.Reply[Customer], error) {
	p, ok := auth.FromContext(ctx)
	if !ok || p.Role != auth.RoleCustomer {
		return nil, errs.Forbidden
	}
	c, err := h.svc.GetCustomer(ctx, p.Subject)
	if err != nil {
		return nil, err
	}
	return httpx.OK(c), nil
}

type listInput struct {
	httpx.PageQuery
	Search string `query:"search" maxLength:"200" doc:"Matches e-mail, name or phone"`
}

func (h handlers) list(ctx context.Context, in *listInput) (*httpx.Reply[httpx.List[Customer]], error) {
	f := Filter{Search: in.Search, Page: in.Request()}
	res, err := h.svc.ListCustomers(ctx, f)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, f.Page)), nil
}

type idPath struct {
	ID string `path:"id" maxLength:"64"`
}

func (h handlers) get(ctx context.Context, in *idPath) (*httpx.Reply[Customer], error) {
	if err := httpx.Allow(ctx, in.ID, customerReaders...); err != nil {
		return nil, err
	}
	c, err := h.svc.GetCustomer(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(c), nil
}

type updateInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body CustomerUpdate
}

func (h handlers) update(ctx context.Context, in *updateInput) (*httpx.Reply[Customer], error) {
	if err := httpx.Allow(ctx, in.ID, customerWriters...); err != nil {
		return nil, err
	}
	c, err := h.svc.UpdateCustomer(ctx, in.ID, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(c), nil
}

func (h handlers) listAddresses(ctx context.Context, in *idPath) (*httpx.Reply[httpx.List[Address]], error) {
	if err := httpx.Allow(ctx, in.ID, customerReaders...); err != nil {
		return nil, err
	}
	as, err := h.svc.ListAddresses(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.NewList(as, 1, MaxAddresses, int64(len(as)))), nil
}

type addAddressInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body NewAddress
}

func (h handlers) addAddress(ctx context.Context, in *addAddressInput) (*httpx.Reply[Address], error) {
	if err := httpx.Allow(ctx, in.ID, customerWriters...); err != nil {
		return nil, err
	}
	a, err := h.svc.AddAddress(ctx, in.ID, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(a), nil
}

type addressPath struct {
	ID  string `path:"id" maxLength:"64"`
	AID string `path:"aid" maxLength:"64"`
}

type updateAddressInput struct {
	ID   string `path:"id" maxLength:"64"`
	AID  string `path:"aid" maxLength:"64"`
	Body AddressUpdate
}

func (h handlers) updateAddress(ctx context.Context, in *updateAddressInput) (*httpx.Reply[Address], error) {
	if err := httpx.Allow(ctx, in.ID, customerWriters...); err != nil {
		return nil, err
	}
	a, err := h.svc.UpdateAddress(ctx, in.ID, in.AID, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(a), nil
}

func (h handlers) deleteAddress(ctx context.Context, in *addressPath) (*httpx.NoContent, error) {
	if err := httpx.Allow(ctx, in.ID, customerWriters...); err != nil {
		return nil, err
	}
	return nil, h.svc.DeleteAddress(ctx, in.ID, in.AID)
}

type createKeyInput struct{ Body NewAPIKey }

func (h handlers) createKey(ctx context.Context, in *createKeyInput) (*httpx.Reply[CreatedAPIKey], error) {
	k, err := h.svc.CreateAPIKey(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(k), nil
}

type listKeysInput struct{ httpx.PageQuery }

func (h handlers) listKeys(ctx context.Context, in *listKeysInput) (*httpx.Reply[httpx.List[APIKey]], error) {
	req := in.Request()
	res, err := h.svc.ListAPIKeys(ctx, req)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, req)), nil
}

func (h handlers) revokeKey(ctx context.Context, in *idPath) (*httpx.NoContent, error) {
	return nil, h.svc.RevokeAPIKey(ctx, in.ID)
}
