package testkit

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/httpx"
)

// Keys are the API keys a test server accepts, one per role.
type Keys struct {
	Admin, Manager, Cashier, Agent, Service string
}

// HTTP is a running test server with the whole middleware chain.
type HTTP struct {
	// URL is the base address (no /api/v1).
	URL string
	// Server is the platform server behind it.
	Server *httpx.Server
	// Keys authenticate as each role.
	Keys Keys
	// Tokens issues customer tokens the server accepts.
	Tokens *auth.Tokens
}

// Serve starts an httptest server; mount registers the contexts under test
// on it. Keys are static (auth.StaticKey), a real KeyStore implementation
// that needs no customer context.
func Serve(t testing.TB, mount func(s *httpx.Server)) *HTTP {
	t.Helper()
	keys := Keys{
		Admin: auth.NewAPIKey(), Manager: auth.NewAPIKey(), Cashier: auth.NewAPIKey(),
		Agent: auth.NewAPIKey(), Service: auth.NewAPIKey(),
	}
	store := auth.Chain{
		auth.StaticKey{Key: keys.Admin, Principal: auth.Principal{Role: auth.RoleAdmin, Subject: "key-admin", Name: "test admin"}},
		auth.StaticKey{Key: keys.Manager, Principal: auth.Principal{Role: auth.RoleManager, Subject: "key-manager", Name: "test manager"}},
		auth.StaticKey{Key: keys.Cashier, Principal: auth.Principal{Role: auth.RoleCashier, Subject: "key-cashier", Name: "test cashier"}},
		auth.StaticKey{Key: keys.Agent, Principal: auth.Principal{Role: auth.RoleAgent, Subject: "key-agent", Name: "test agent"}},
		auth.StaticKey{Key: keys.Service, Principal: auth.Principal{Role: auth.RoleService, Subject: "key-service", Name: "test service"}},
	}
	tokens, err := auth.NewTokens([]byte("test-secret-test-secret-test-secret-0123"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv := httpx.NewServer(httpx.ServerConfig{
		Title: "pos test", Version: "test", InstanceID: "test",
		Logger: Logger(), Registry: prometheus.NewRegistry(),
		Keys: store, Tokens: tokens,
	})
	mount(srv)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &HTTP{URL: ts.URL, Server: srv, Keys: keys, Tokens: tokens}
}

// Client is an httpx.Client to the test server presenting key, the way one
// context calls another in the fleet (there with the service key).
func (h *HTTP) Client(contextName, key string) *httpx.Client {
	return httpx.NewClient(httpx.ClientConfig{Context: contextName, BaseURL: h.URL, ServiceKey: key, Retries: -1})
}

// Response is what Call got back.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Call sends one request to the test server. body is sent as is when it is
// a string or []byte (to test malformed input) and as JSON otherwise; nil
// sends none. headers are name, value pairs (e.g. "X-API-Key", key).
func (h *HTTP) Call(t testing.TB, method, path string, body any, headers ...string) Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Problem asserts the response is an RFC 9457 problem with the given
// status and decodes it.
func (r Response) Problem(t testing.TB, status int) httpx.Problem {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, httpx.ProblemContentType) {
		t.Fatalf("content type %q, want %s: %s", ct, httpx.ProblemContentType, r.Body)
	}
	var p httpx.Problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("decode problem: %v: %s", err, r.Body)
	}
	if p.Status != status || p.Type == "" || p.Title == "" {
		t.Fatalf("incomplete problem: %s", r.Body)
	}
	return p
}

// JSON asserts the status and decodes the body into v.
func (r Response) JSON(t testing.TB, status int, v any) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if v != nil {
		if err := json.Unmarshal(r.Body, v); err != nil {
			t.Fatalf("decode: %v: %s", err, r.Body)
		}
	}
}

// HasField tells whether a problem names field among its errors.
func HasField(p httpx.Problem, field string) bool {
	for _, f := range p.Errors {
		if f.Field == field {
			return true
		}
	}
	return false
}
