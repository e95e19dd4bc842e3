package httpx

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
)

// APIPrefix is where every route lives, on every process (API.md).
const APIPrefix = "/api/v1"

// Access says who may call an operation. The HTTP layer enforces it before
// the input is even read; ownership ("a customer sees only their own
// records") is checked in the handler with Allow, which knows the record.
type Access struct {
	// Public operations need no credentials.
	Public bool
	// Customer lets a logged-in customer in (the handler checks ownership).
	Customer bool
	// Roles lists the staff roles let in; admin always is.
	Roles []auth.Role
}

// The usual access rules.
var (
	// Public: anyone, no credentials.
	Public = Access{Public: true}
	// Admin: admin keys only.
	Admin = Access{Roles: []auth.Role{auth.RoleAdmin}}
)

// Staff lets in API keys with one of roles (and admin).
func Staff(roles ...auth.Role) Access { return Access{Roles: roles} }

// CustomerOr lets in customers (their own records) and staff with roles.
func CustomerOr(roles ...auth.Role) Access { return Access{Customer: true, Roles: roles} }

// String is the form kept in the OpenAPI document and the gateway config.
func (a Access) String() string {
	if a.Public {
		return "public"
	}
	parts := []string{}
	if a.Customer {
		parts = append(parts, "customer")
	}
	for _, r := range a.Roles {
		parts = append(parts, string(r))
	}
	return strings.Join(parts, ",")
}

func (a Access) check(ctx context.Context) error {
	if a.Public {
		return nil
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		return fmt.Errorf("credentials required: %w", errs.Unauthorized)
	}
	if a.Customer && p.Role == auth.RoleCustomer {
		return nil
	}
	if p.Role == auth.RoleAdmin || p.IsAny(a.Roles...) {
		return nil
	}
	return fmt.Errorf("role %s may not do this: %w", p.Role, errs.Forbidden)
}

// Allow is the ownership check: the caller is the customer customerID, an
// admin, or staff with one of roles. It is what keeps one customer out of another's
// carts, orders and claims.
func Allow(ctx context.Context, customerID string, roles ...auth.Role) error {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return fmt.Errorf("credentials required: %w", errs.Unauthorized)
	}
	if p.IsCustomer(customerID) || p.Role == auth.RoleAdmin || (p.Role != auth.RoleCustomer && p.IsAny(roles...)) {
		return nil
	}
	return fmt.Errorf("not yours: %w", errs.Forbidden)
}

// Op describes one operation of a context's HTTP surface.
type Op struct {
	// Context is the owning context; it labels metrics and routes the
	// gateway.
	Context string
	// ID is the OpenAPI operationId, unique across the API.
	ID string
	// Method and Path (relative to /api/v1, with {param} placeholders).
	Method, Path string
	// Summary is the one-line description shown in /docs.
	Summary string
	// Status is the success status when it is not 200 (201, 204, …).
	Status int
	// Access says who may call it.
	Access Access
}

// Metadata keys set on every operation, read by metrics and the gateway
// generator.
const (
	MetaContext = "pos-context"
	MetaAccess  = "pos-access"
)

// Register adds one typed operation: huma derives the OpenAPI schema,
// validates the input and writes the output; we add the access check and
// the labels. Handlers return errors with an errs kind; the problem mapping
// is central.
func Register[I, O any](api huma.API, op Op, handler func(context.Context, *I) (*O, error)) {
	hop := huma.Operation{
		OperationID:   op.ID,
		Method:        op.Method,
		Path:          APIPrefix + op.Path,
		Summary:       op.Summary,
		Tags:          []string{op.Context},
		DefaultStatus: op.Status,
		Metadata:      map[string]any{MetaContext: op.Context, MetaAccess: op.Access.String()},
	}
	if !op.Access.Public {
		hop.Security = []map[string][]string{{"apiKey": {}}, {"bearer": {}}}
	}
	if hop.DefaultStatus == 0 {
		hop.DefaultStatus = http.StatusOK
	}
	access := op.Access
	hop.Middlewares = huma.Middlewares{func(hctx huma.Context, next func(huma.Context)) {
		if err := access.check(hctx.Context()); err != nil {
			p := ProblemFor(hctx.Context(), err)
			p.Instance = hctx.URL().Path
			_ = huma.WriteErr(api, hctx, p.Status, p.Detail)
			return
		}
		next(hctx)
	}}
	status := hop.DefaultStatus
	huma.Register(api, hop, func(ctx context.Context, in *I) (*O, error) {
		out, err := handler(ctx, in)
		if err != nil {
			return nil, err
		}
		// huma writes a Status field as it is, zero included.
		if r, ok := any(out).(statusDefaulter); ok {
			r.defaultStatus(status)
		}
		return out, nil
	})
}

type statusDefaulter interface{ defaultStatus(int) }

// Reply is the usual output: a JSON body and, when Status is set, a status
// other than the operation's default (the 200 of an idempotent replay of a
// 201, for instance).
type Reply[T any] struct {
	Status int
	Body   T
}

func (r *Reply[T]) defaultStatus(s int) {
	if r.Status == 0 {
		r.Status = s
	}
}

// OK wraps body with the operation's default status.
func OK[T any](body T) *Reply[T] { return &Reply[T]{Body: body} }

// WithStatus wraps body with an explicit status.
func WithStatus[T any](status int, body T) *Reply[T] { return &Reply[T]{Status: status, Body: body} }

// NoContent is the output of operations that answer 204.
type NoContent struct{}
