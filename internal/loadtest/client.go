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
	"sync"
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
	base    string
	hc      *http.Client
	timeout time.Duration
	// raw is the target for the VUs' own connections (rawhttp.go); nil
	// when the target is not plain http, and then net/http serves all.
	raw    *rawTarget
	dialer *net.Dialer

	mu     sync.Mutex
	conns  map[*rawConn]struct{} // the VUs' connections, closed with the client
	closed bool
}

// newClient pools one keep-alive connection per virtual user (and some
// spare), so the run measures the target rather than TCP handshakes, and
// asks for no compression: decompressing would cost the generator CPU on
// the same machine, and k6 does not ask for it either.
func newClient(base string, conns int, timeout time.Duration) *client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               nil, // a load test talks to its target, never through a proxy
		DialContext:         dialer.DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	base = strings.TrimRight(base, "/")
	return &client{base: base, timeout: timeout, raw: newRawTarget(base), dialer: dialer, conns: map[*rawConn]struct{}{},
		hc: &http.Client{Transport: tr, Timeout: timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// close closes every connection, the VUs' own included.
func (c *client) close() {
	c.hc.CloseIdleConnections()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for rc := range c.conns {
		_ = rc.nc.Close()
	}
	clear(c.conns)
}

// maxErrorBody bounds what is read of an error answer for its detail.
const maxErrorBody = 8 << 10

// keep is how much of the body of an answer with status the call needs:
// all of a success it decodes (-1), the start of an error's for its
// detail, nothing of the rest.
func (k call) keep(status int) int {
	switch ok := expected(status, k.expect); {
	case ok && k.out != nil:
		return -1
	case ok:
		return 0
	default:
		return maxErrorBody
	}
}

// exchange is one request as the transport saw it.
type exchange struct {
	// status is the answer's, 0 when none came.
	status int
	// body is what the call keeps of the answer's body (call.keep).
	body []byte
	// err is a transport failure: before any answer (status 0) or while
	// reading the answer's body.
	err        error
	start, end time.Time
}

// do sends k, records it in rec and returns the status. The error is an
// *httpError for a transport failure or an unexpected status, or the
// context's error when the run was stopped (the request then counts as
// interrupted, not as an error of the target). The latency runs from
// sending to the last byte of the answer; decoding it is the generator's
// time and is left out.
func (c *client) do(ctx context.Context, rec *Recorder, k call) (int, error) {
	return c.send(ctx, rec, k, nil)
}

// send is do, on the VU's own connection *conn when the call allows it
// (rawEligible) and conn is not nil.
func (c *client) send(ctx context.Context, rec *Recorder, k call, conn **rawConn) (int, error) {
	var ex exchange
	if conn != nil && c.raw != nil && rawEligible(k) {
		var body []byte
		if k.body != nil {
			var err error
			if body, err = json.Marshal(k.body); err != nil {
				return 0, fmt.Errorf("%s: encode body: %w", k.op.Name(), err)
			}
		}
		ex = c.exchangeRaw(ctx, k, body, conn)
	} else {
		var err error
		if ex, err = c.exchange(ctx, k); err != nil {
			return 0, err
		}
	}
	if ex.err != nil {
		if ctx.Err() != nil {
			rec.Interrupted()
			return 0, ctx.Err()
		}
		kind := transportKind(ex.err)
		rec.Add(k.op, Outcome{Status: ex.status, Err: kind, Failed: true, Detail: ex.err.Error()}, ex.end.Sub(ex.start), ex.end)
		if ex.status == 0 {
			return 0, &httpError{Op: k.op, Kind: kind, Detail: ex.err.Error()}
		}
		return ex.status, &httpError{Op: k.op, Status: ex.status, Kind: kind, Detail: "reading the answer: " + ex.err.Error()}
	}
	if !expected(ex.status, k.expect) {
		if k.decodeErrors && k.out != nil {
			_ = json.Unmarshal(ex.body, k.out) // best effort: the error is what counts
		}
		detail := problemDetail(ex.body)
		rec.Add(k.op, Outcome{Status: ex.status, Failed: true, Detail: detail}, ex.end.Sub(ex.start), ex.end)
		return ex.status, &httpError{Op: k.op, Status: ex.status, Detail: detail}
	}
	rec.Add(k.op, Outcome{Status: ex.status}, ex.end.Sub(ex.start), ex.end)
	if k.out != nil && len(ex.body) > 0 {
		if err := json.Unmarshal(ex.body, k.out); err != nil {
			rec.Check("answers decode as JSON", false, fmt.Sprintf("%s: %v", k.op.Name(), err))
			return ex.status, fmt.Errorf("%s: decode answer: %w", k.op.Name(), err)
		}
	}
	return ex.status, nil
}

// exchange sends k through net/http. Its error is for a request that
// could not be made at all (its body does not encode): nothing was sent
// and nothing is recorded.
func (c *client) exchange(ctx context.Context, k call) (exchange, error) {
	var rd io.Reader
	if k.body != nil {
		raw, err := json.Marshal(k.body)
		if err != nil {
			return exchange{}, fmt.Errorf("%s: encode body: %w", k.op.Name(), err)
		}
		rd = bytes.NewReader(raw)
	}
	url := c.base + k.path
	if !isHealthPath(k.path) {
		url = c.base + apiPrefix + k.path
	}
	req, err := http.NewRequestWithContext(ctx, k.op.Method, url, rd)
	if err != nil {
		return exchange{}, fmt.Errorf("%s: %w", k.op.Name(), err)
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

	ex := exchange{start: time.Now()}
	resp, err := c.hc.Do(req)
	if err != nil {
		ex.err, ex.end = err, time.Now()
		return ex, nil
	}
	defer resp.Body.Close()
	ex.status = resp.StatusCode
	switch keep := k.keep(resp.StatusCode); {
	case keep < 0:
		ex.body, ex.err = io.ReadAll(resp.Body)
	case keep == 0:
		_, ex.err = io.Copy(io.Discard, resp.Body)
	default:
		ex.body, ex.err = io.ReadAll(io.LimitReader(resp.Body, int64(keep)))
		if ex.err == nil {
			_, ex.err = io.Copy(io.Discard, resp.Body)
		}
	}
	ex.end = time.Now()
	return ex, nil
}

// isHealthPath tells the probes, which live outside /api/v1.
func isHealthPath(p string) bool { return strings.HasPrefix(p, "/health") }

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
