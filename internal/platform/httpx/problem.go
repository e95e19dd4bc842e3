package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/labstack/echo/v4"

	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
)

// ProblemContentType is the media type of every error response (RFC 9457).
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem document. Errors lists the fields at fault
// for validation errors.
type Problem struct {
	Type      string            `json:"type"`
	Title     string            `json:"title"`
	Status    int               `json:"status"`
	Detail    string            `json:"detail,omitempty"`
	Instance  string            `json:"instance,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
	Errors    []errs.FieldError `json:"errors,omitempty"`
}

// Error makes a Problem an error (huma.StatusError).
func (p *Problem) Error() string { return p.Detail }

// GetStatus implements huma.StatusError.
func (p *Problem) GetStatus() int { return p.Status }

// ContentType makes huma write problems as application/problem+json.
func (p *Problem) ContentType(string) string { return ProblemContentType }

// problemType is the stable URI of a kind of problem.
func problemType(k *errs.Kind) string { return "urn:pos:problem:" + k.Name() }

// NewProblem builds the problem for an error of kind k.
func NewProblem(k *errs.Kind, detail string, fields []errs.FieldError) *Problem {
	return &Problem{
		Type:   problemType(k),
		Title:  http.StatusText(k.Status()),
		Status: k.Status(),
		Detail: detail,
		Errors: fields,
	}
}

// ProblemFor turns any error into the problem a client sees. Errors without a
// kind are bugs: the client gets a bare 500 and the log gets the detail.
func ProblemFor(ctx context.Context, err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	k := errs.KindOf(err)
	detail := err.Error()
	if k == errs.Internal {
		slog.ErrorContext(ctx, "internal error", "err", err, "request_id", correlation.From(ctx))
		detail = "internal error; the request id identifies it in the logs"
	}
	prob := NewProblem(k, detail, errs.Fields(err))
	prob.RequestID = correlation.From(ctx)
	return prob
}

var installHumaErrors sync.Once

// useProblemsInHuma makes huma speak our problem type. huma exposes its error
// constructor as a package variable, so this is process-wide by necessity;
// it is idempotent and installs the same function every time.
func useProblemsInHuma() {
	installHumaErrors.Do(func() {
		huma.NewError = func(status int, msg string, details ...error) huma.StatusError {
			return humaProblem(context.Background(), status, msg, details)
		}
		huma.NewErrorWithContext = func(hctx huma.Context, status int, msg string, details ...error) huma.StatusError {
			var ctx context.Context = context.Background()
			if hctx != nil {
				ctx = hctx.Context()
			}
			p := humaProblem(ctx, status, msg, details)
			if hctx != nil {
				p.Instance = hctx.URL().Path
			}
			return p
		}
	})
}

// humaProblem converts huma's own errors (validation, malformed bodies) and
// errors our handlers return (which huma hands over as a 500 with the error
// as detail) into problems.
func humaProblem(ctx context.Context, status int, msg string, details []error) *Problem {
	if status == http.StatusInternalServerError && len(details) == 1 {
		// A handler returned an error: it carries its own kind.
		return ProblemFor(ctx, details[0])
	}
	var fields []errs.FieldError
	for _, d := range details {
		if d == nil {
			continue
		}
		var ed *huma.ErrorDetail
		if errors.As(d, &ed) {
			fields = append(fields, errs.FieldError{Field: fieldName(ed.Location, ed.Message), Message: ed.Message})
			continue
		}
		fields = append(fields, errs.FieldError{Field: "body", Message: d.Error()})
	}
	// huma answers validation failures with 422; in this API 422 is reserved
	// for "well-formed but cannot be processed" (an idempotency key reused
	// with another body), and every field-level error is a 400.
	if status == http.StatusUnprocessableEntity {
		status = http.StatusBadRequest
	}
	k := errs.FromStatus(status)
	p := NewProblem(k, msg, fields)
	p.Status = status // keep statuses our table does not name (405, 406, …)
	p.Title = http.StatusText(status)
	p.RequestID = correlation.From(ctx)
	return p
}

// fieldName turns huma's "body.lines[0].quantity" into "lines[0].quantity"
// and "query.page" into "page": clients name fields, not locations. A
// missing property is reported by huma at its parent object, with the name
// only in the message; we name the missing field itself.
func fieldName(location, message string) string {
	if m := missingProperty.FindStringSubmatch(message); m != nil {
		if location == "body" || location == "" {
			return m[1]
		}
		location += "." + m[1]
	}
	for _, prefix := range []string{"body.", "query.", "path.", "header."} {
		if strings.HasPrefix(location, prefix) {
			return strings.TrimPrefix(location, prefix)
		}
	}
	return location
}

var missingProperty = regexp.MustCompile(`^expected required property (\S+) to be present$`)

// writeProblem writes a problem outside huma (echo-level errors: unknown
// routes, body limit, auth and rate-limit middleware).
func writeProblem(c echo.Context, p *Problem) error {
	if p.Instance == "" {
		p.Instance = c.Request().URL.Path
	}
	if p.RequestID == "" {
		p.RequestID = correlation.From(c.Request().Context())
	}
	c.Response().Header().Set(echo.HeaderContentType, ProblemContentType)
	return c.JSON(p.Status, p)
}

// errorHandler is echo's last word on errors that escaped a handler.
func errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	var p *Problem
	switch {
	case errors.As(err, &p):
	case errors.As(err, &he):
		detail := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			detail = m
		}
		p = NewProblem(errs.FromStatus(he.Code), detail, nil)
		p.Status, p.Title = he.Code, http.StatusText(he.Code)
	default:
		p = ProblemFor(c.Request().Context(), err)
	}
	_ = writeProblem(c, p)
}
