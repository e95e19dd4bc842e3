package customer

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// testClock is a clock the test moves by hand, so login failures can age
// out of their window without sleeping.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTokens(t testing.TB) *auth.Tokens {
	t.Helper()
	tokens, err := auth.NewTokens([]byte("customer-test-secret-0123456789abcdef"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

// newLocal is the local service on a fresh database of backend b.
func newLocal(t testing.TB, b testkit.Backend, tokens *auth.Tokens, clock *testClock) Service {
	t.Helper()
	return New(testkit.OpenDB(t, b, Name, Migrations), tokens, Options{BcryptCost: bcrypt.MinCost, Now: clock.Now})
}

// testServer is svc behind the platform server with the whole middleware
// chain. Unlike testkit.Serve (whose key store holds static keys only),
// its key store is auth.Chain{static admin, static service, svc}, as in
// the binary: keys svc issues authenticate later requests.
type testServer struct {
	URL        string
	AdminKey   string
	ServiceKey string
	Tokens     *auth.Tokens
}

// serve starts the server for svc; the key stores in more are consulted
// after svc (a fleet process's remote key store).
func serve(t testing.TB, svc Service, tokens *auth.Tokens, trustProxy bool, more ...auth.KeyStore) *testServer {
	t.Helper()
	ts := &testServer{AdminKey: auth.NewAPIKey(), ServiceKey: auth.NewAPIKey(), Tokens: tokens}
	keys := auth.Chain{
		auth.StaticKey{Key: ts.AdminKey, Principal: auth.Principal{Role: auth.RoleAdmin, Subject: "key-admin", Name: "test admin"}},
		auth.StaticKey{Key: ts.ServiceKey, Principal: auth.Principal{Role: auth.RoleService, Subject: "key-service", Name: "test service"}},
		svc,
	}
	keys = append(keys, more...)
	srv := httpx.NewServer(httpx.ServerConfig{
		Title: "customer test", Version: "test", InstanceID: "test", Logger: testkit.Logger(),
		Keys: keys, Tokens: tokens, TrustProxy: trustProxy,
	})
	Routes(srv.API, svc)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	ts.URL = hs.URL
	return ts
}

// client is a Client to ts presenting key.
func (ts *testServer) client(key string) *Client {
	return NewClient(httpx.NewClient(httpx.ClientConfig{Context: Name, BaseURL: ts.URL, ServiceKey: key, Retries: -1}))
}

// response is one raw HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// call sends a raw request: tests of the HTTP surface must be able to send
// what no typed client would.
func (ts *testServer) call(t testing.TB, method, path string, header map[string]string, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, ts.URL+httpx.APIPrefix+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, resp.Body); err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: buf.Bytes()}
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

func apiKey(key string) map[string]string { return map[string]string{"X-API-Key": key} }

func hasField(err error, field string) bool {
	for _, f := range errs.Fields(err) {
		if f.Field == field {
			return true
		}
	}
	return false
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }
