package testkit

import (
	"net/http/httptest"
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
