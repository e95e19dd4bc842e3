package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// runHealthcheck runs `pos healthcheck args…` and returns its output and
// error (non-nil is exit status 1 through main).
func runHealthcheck(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	g := &globals{getenv: func(k string) string { return env[k] }, stdout: &out, stderr: &out}
	cmd := newHealthcheckCmd(g)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

func TestHealthcheckExitsByStatus(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health/ready" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	url := srv.URL + "/health/ready"

	if out, err := runHealthcheck(t, nil, "--url", url); err != nil || !strings.Contains(out, "200") {
		t.Fatalf("ready: err %v, output %q", err, out)
	}
	status.Store(http.StatusServiceUnavailable) // not ready, or draining
	if _, err := runHealthcheck(t, nil, "--url", url); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503 must fail, got %v", err)
	}
	status.Store(http.StatusOK)
	if _, err := runHealthcheck(t, nil, "--url", srv.URL+"/nope"); err == nil {
		t.Fatal("a 404 must fail")
	}
}

func TestHealthcheckFailsFastWhenNothingAnswers(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(hang)
	start := time.Now()
	if _, err := runHealthcheck(t, nil, "--url", slow.URL+"/health/ready", "--timeout", "200ms"); err == nil {
		t.Fatal("a hung server must fail the probe")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("probe took %v despite --timeout 200ms", d)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	if _, err := runHealthcheck(t, nil, "--url", url); err == nil {
		t.Fatal("a refused connection must fail the probe")
	}
}

func TestHealthcheckDefaultURLFollowsPOSAddr(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"":               "http://127.0.0.1:8080/health/ready",
		":9090":          "http://127.0.0.1:9090/health/ready",
		"0.0.0.0:8081":   "http://127.0.0.1:8081/health/ready",
		"[::]:8082":      "http://127.0.0.1:8082/health/ready",
		"10.1.2.3:8083":  "http://10.1.2.3:8083/health/ready",
		"[::1]:8084":     "http://[::1]:8084/health/ready",
		"not-an-address": "http://127.0.0.1:8080/health/ready",
	} {
		if got := defaultHealthURL(addr); got != want {
			t.Errorf("POS_ADDR=%q: %s, want %s", addr, got, want)
		}
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health/ready" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if _, err := runHealthcheck(t, map[string]string{"POS_ADDR": addr}); err != nil {
		t.Fatalf("probe of POS_ADDR=%s: %v", addr, err)
	}
}
