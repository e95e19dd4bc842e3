package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// call is one request: the operation it counts under, the concrete path
// (after /api/v1, query included), its body and credentials, the
// statuses that count as success, and where to decode the answer.
type call struct {
	op     Op
	path   string
	body   any
	apiKey string
	bearer string
	// idem is the Idempotency-Key header, for the calls that take one.
	idem string
	// expect lists the statuses that are not errors; empty means any 2xx.
	expect []int
	// out receives the JSON answer of a successful call; nil discards it
	// without parsing (the catalog pages, which would only cost the
	// generator CPU the target needs).
	out any
	// decodeErrors decodes unexpected answers into out too, for the
	// calls whose every answer moves the ledger (a checkout answered 201
	// where 402 was expected still created an order).
	decodeErrors bool
}

// httpError is a request that failed: no answer, or an unexpected status.
type httpError struct {
	Op     Op
	Status int
	Kind   string // transport failure kind, when no answer came
	Detail string
}

// Error says what failed and how, for logs and error samples.
func (e *httpError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s: %s: %s", e.Op.Name(), e.Kind, e.Detail)
	}
	if e.Detail != "" {
		return fmt.Sprintf("%s: %d: %s", e.Op.Name(), e.Status, e.Detail)
	}
	return fmt.Sprintf("%s: %d", e.Op.Name(), e.Status)
}

// statusOf is the HTTP status of a failed call, 0 for a transport error.
func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

// client sends calls to the target and records them.
type client struct {
	base string
	hc   *http.Client
}

// newClient pools one keep-alive connection per virtual user (and some
// spare), so the run measures the target rather than TCP handshakes, and
// asks for no compression: decompressing would cost the generator CPU on
// the same machine, and k6 does not ask for it either.
func newClient(base string, conns int, timeout time.Duration) *client {
	tr := &http.Transport{
		Proxy:               nil, // a load test talks to its target, never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &client{base: strings.TrimRight(base, "/"), hc: &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// maxErrorBody bounds what is read of an error answer for its detail.
const maxErrorBody = 8 << 10

// do sends k, records it in rec and returns the status. The error is an
// *httpError for a transport failure or an unexpected status, or the
// context's error when the run was stopped (the request then counts as
// interrupted, not as an error of the target). The latency runs from
// sending to the last byte of the answer; decoding it is the generator's
// time and is left out.
func (c *client) do(ctx context.Context, rec *Recorder, k call) (int, error) {
	var rd io.Reader
	if k.body != nil {
		raw, err := json.Marshal(k.body)
		if err != nil {
			return 0, fmt.Errorf("%s: encode body: %w", k.op.Name(), err)
		}
		rd = bytes.NewReader(raw)
	}
	url := c.base + k.path
	if !strings.HasPrefix(k.path, "/health") {
		url = c.base + apiPrefix + k.path
	}
	req, err := http.NewRequestWithContext(ctx, k.op.Method, url, rd)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", k.op.Name(), err)
	}
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if k.apiKey != "" {
		req.Header.Set("X-API-Key", k.apiKey)
	}
	if k.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+k.bearer)
	}
	if k.idem != "" {
		req.Header.Set("Idempotency-Key", k.idem)
	}

	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			rec.Interrupted()
			return 0, ctx.Err()
		}
		end := time.Now()
		kind := transportKind(err)
		rec.Add(k.op, Outcome{Err: kind, Failed: true, Detail: err.Error()}, end.Sub(start), end)
		return 0, &httpError{Op: k.op, Kind: kind, Detail: err.Error()}
	}
	defer resp.Body.Close()
	ok := expected(resp.StatusCode, k.expect)
	var body []byte
	switch {
	case ok && k.out == nil:
		_, err = io.Copy(io.Discard, resp.Body)
	case ok:
		body, err = io.ReadAll(resp.Body)
	default:
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	end := time.Now()
	if err != nil {
		if ctx.Err() != nil {
			rec.Interrupted()
			return 0, ctx.Err()
		}
		kind := transportKind(err)
		rec.Add(k.op, Outcome{Status: resp.StatusCode, Err: kind, Failed: true, Detail: err.Error()}, end.Sub(start), end)
		return resp.StatusCode, &httpError{Op: k.op, Status: resp.StatusCode, Kind: kind, Detail: "reading the answer: " + err.Error()}
	}
	if !ok {
		if k.decodeErrors && k.out != nil {
			_ = json.Unmarshal(body, k.out) // best effort: the error is what counts
		}
		detail := problemDetail(body)
		rec.Add(k.op, Outcome{Status: resp.StatusCode, Failed: true, Detail: detail}, end.Sub(start), end)
		return resp.StatusCode, &httpError{Op: k.op, Status: resp.StatusCode, Detail: detail}
	}
	rec.Add(k.op, Outcome{Status: resp.StatusCode}, end.Sub(start), end)
	if k.out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, k.out); err != nil {
			rec.Check("answers decode as JSON", false, fmt.Sprintf("%s: %v", k.op.Name(), err))
			return resp.StatusCode, fmt.Errorf("%s: decode answer: %w", k.op.Name(), err)
		}
	}
	return resp.StatusCode, nil
}

// expected tells whether status counts as success for a call.
func expected(status int, want []int) bool {
	if len(want) == 0 {
		return status >= 200 && status < 300
	}
	return slices.Contains(want, status)
}

// problemDetail extracts the useful part of an error answer: the
// problem's title and detail (API.md), else the start of the body.
func problemDetail(body []byte) string {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Errors []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &p) == nil && (p.Title != "" || p.Detail != "") {
		s := p.Detail
		if s == "" || s == p.Title {
			s = p.Title
		}
		for _, e := range p.Errors {
			s += fmt.Sprintf("; %s %s", e.Field, e.Message)
		}
		return truncate(s, 300)
	}
	return truncate(strings.TrimSpace(string(body)), 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// transportKind names a failure that left no answer, for the status
// column: what an operator does about a timeout differs from a refusal.
func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no-port"
	}
	return "transport"
}
