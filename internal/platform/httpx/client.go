package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
)

// ClientConfig sets up the client one context uses to call another
// process.
type ClientConfig struct {
	// Context names the downstream context (breaker name, error text).
	Context string
	// BaseURL is the process or gateway, without /api/v1.
	BaseURL string
	// ServiceKey is sent as X-API-Key: contexts call each other with the
	// service role.
	ServiceKey string
	// Timeout bounds each attempt (default 5 s); the caller's deadline
	// bounds them all.
	Timeout time.Duration
	// Retries is how many more attempts an idempotent call gets after a
	// transient failure (default 2).
	Retries int
	// HTTP is the transport; nil gets a pooled default.
	HTTP *http.Client
}

// Client is the typed HTTP client under every context's Client adapter:
// JSON in and out, problem+json mapped back to errs kinds (so errors.Is
// works as if the call were local), the request id propagated, retries
// only where a repeat cannot do harm, and a circuit breaker so a dead
// downstream fails fast instead of tying up every caller.
type Client struct {
	cfg     ClientConfig
	http    *http.Client
	breaker *gobreaker.CircuitBreaker[struct{}]
}

// NewClient builds a Client.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	} else if cfg.Retries == 0 {
		cfg.Retries = 2
	}
	hc := cfg.HTTP
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		tr.IdleConnTimeout = 90 * time.Second
		hc = &http.Client{Transport: tr}
	}
	st := gobreaker.Settings{
		Name:        cfg.Context,
		MaxRequests: 1,
		Interval:    30 * time.Second,
		Timeout:     5 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 },
		// Only an outage trips the breaker; a 404 or a 409 is the
		// downstream working as designed.
		IsSuccessful: func(err error) bool { return err == nil || !isOutage(err) },
	}
	return &Client{cfg: cfg, http: hc, breaker: gobreaker.NewCircuitBreaker[struct{}](st)}
}

// CallOption adjusts one call.
type CallOption func(*call)

type call struct {
	query      url.Values
	idempotent bool
	header     http.Header
}

// Query adds query parameters.
func Query(q url.Values) CallOption { return func(c *call) { c.query = q } }

// Idempotent marks a POST as safe to repeat (its body carries an
// idempotency key), so it is retried like a GET.
func Idempotent() CallOption { return func(c *call) { c.idempotent = true } }

// Header adds a request header.
func Header(k, v string) CallOption {
	return func(c *call) {
		if c.header == nil {
			c.header = http.Header{}
		}
		c.header.Set(k, v)
	}
}

// Do calls method path (relative to /api/v1; escape path segments with
// url.PathEscape) with in as JSON body (nil for none) and decodes a 2xx
// body into out (nil to discard).
func (c *Client) Do(ctx context.Context, method, path string, in, out any, opts ...CallOption) error {
	var cl call
	for _, o := range opts {
		o(&cl)
	}
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode %s request: %w", c.cfg.Context, err)
		}
	}
	u := c.cfg.BaseURL + APIPrefix + path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	retryable := cl.idempotent || method == http.MethodGet || method == http.MethodPut ||
		method == http.MethodDelete || method == http.MethodHead
	attempts := 1
	if retryable {
		attempts += c.cfg.Retries
	}
	var err error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			// Exponential backoff with full jitter: 0–50 ms, 0–100 ms, …
			wait := time.Duration(rand.Int64N(int64(50*time.Millisecond) << (i - 1)))
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s %s: %w (%v)", method, path, errs.Timeout, ctx.Err())
			case <-time.After(wait):
			}
		}
		_, err = c.breaker.Execute(func() (struct{}, error) {
			return struct{}{}, c.once(ctx, method, u, body, out, cl.header)
		})
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			return fmt.Errorf("%s is failing, circuit open: %w", c.cfg.Context, errs.Unavailable)
		}
		if err == nil || !isOutage(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (c *Client) once(ctx context.Context, method, u string, body []byte, out any, header http.Header) error {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, u, rd)
	if err != nil {
		return fmt.Errorf("build %s request: %w", c.cfg.Context, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if id := correlation.From(ctx); id != "" {
		req.Header.Set(correlation.Header, id)
	}
	correlation.InjectTrace(ctx, req.Header)
	if c.cfg.ServiceKey != "" {
		req.Header.Set("X-API-Key", c.cfg.ServiceKey)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s %s: %w", c.cfg.Context, method, errs.Timeout)
		}
		return fmt.Errorf("%s unreachable: %w (%v)", c.cfg.Context, errs.Unavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeProblem(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s response: %w (%v)", c.cfg.Context, errs.BadGateway, err)
	}
	return nil
}

// Live checks that the downstream process answers its liveness probe; the
// caller's /health reports it. It bypasses the breaker and retries: a
// probe must see the truth, not a cached verdict.
func (c *Client) Live(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+"/health/live", nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s unreachable: %w (%v)", c.cfg.Context, errs.Unavailable, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answers %d: %w", c.cfg.Context, resp.StatusCode, errs.Unavailable)
	}
	return nil
}

// decodeProblem rebuilds the error the remote side returned.
func decodeProblem(resp *http.Response) error {
	var p Problem
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err := json.Unmarshal(raw, &p); err != nil || p.Status == 0 {
		p = Problem{Detail: http.StatusText(resp.StatusCode)}
	}
	return errs.Remote(errs.FromStatus(resp.StatusCode), p.Detail, p.Errors)
}

// isOutage separates "the downstream is not working" (retry, trip the
// breaker) from "the downstream said no" (a 4xx: neither).
func isOutage(err error) bool {
	return errs.IsKind(err, errs.Unavailable) || errs.IsKind(err, errs.Timeout) ||
		errs.IsKind(err, errs.BadGateway) || errs.IsKind(err, errs.Internal)
}
