package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/retailco/pos/internal/platform/gateway"
	"github.com/retailco/pos/internal/platform/gateway/kongconf"
)

// kongFile is the committed gateway configuration.
const kongFile = "../../deploy/kong/kong.yml"

// TestKongConfigIsUpToDate: the committed kong.yml is exactly what the
// route table generates, so a route added to any context cannot reach
// production without its gateway route.
func TestKongConfigIsUpToDate(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	g := &globals{getenv: func(string) string { return "" }, stdout: &out, stderr: &out}
	cmd := newGatewayCmd(g)
	cmd.SetArgs([]string{"kong"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(kongFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), committed) {
		t.Fatalf("deploy/kong/kong.yml is not what the route table generates; run\n\n\tgo run ./cmd/pos gateway kong > deploy/kong/kong.yml\n\nfirst difference: %s", firstDiff(committed, out.Bytes()))
	}
}

// TestKongConfigRoutesEveryOperation reads the committed kong.yml
// strictly and sends each operation the binary serves through a model of
// Kong's router: it must reach its own context's service, through the
// cart upstream for the cart, behind key-auth exactly when only the
// fleet may call it, and browsers' preflights must reach the cors plugin.
func TestKongConfigRoutesEveryOperation(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(kongFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := kongconf.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range kongconf.Lint(f) {
		t.Error(e)
	}
	ops := routeTable()
	if len(ops) == 0 {
		t.Fatal("empty route table")
	}
	opts := gateway.DefaultOptions()
	hit := map[string]bool{}
	for _, op := range ops {
		path := samplePath(op.Path)
		m, err := f.Match(op.Method, path)
		if err != nil {
			t.Errorf("%s %s (%s): %v", op.Method, op.Path, op.Context, err)
			continue
		}
		hit[m.Route] = true
		if m.Service != op.Context {
			t.Errorf("%s %s belongs to %s but Kong sends it to %s (route %s)", op.Method, path, op.Context, m.Service, m.Route)
		}
		if got := slices.Contains(m.Plugins, "key-auth"); got != op.MachineOnly() {
			t.Errorf("%s %s (access %q): key-auth at the gateway %v, want %v", op.Method, op.Path, op.Access, got, op.MachineOnly())
		}
		for _, p := range []string{"correlation-id", "cors", "prometheus", "rate-limiting", "request-size-limiting"} {
			if !slices.Contains(m.Plugins, p) {
				t.Errorf("%s %s: plugin %s does not run", op.Method, op.Path, p)
			}
		}
		if n := opts.Replicas[op.Context]; n > 0 {
			if m.Upstream == nil {
				t.Errorf("%s %s: %s has %d instances but Kong sends to the single host %s", op.Method, op.Path, op.Context, n, m.Host)
				continue
			}
			var targets []string
			for _, tg := range m.Upstream.Targets {
				targets = append(targets, tg.Target)
			}
			for i := 1; i <= n; i++ {
				if want := fmt.Sprintf("%s-%d:%d", op.Context, i, opts.Port); !slices.Contains(targets, want) {
					t.Errorf("upstream %s lacks target %s (has %v)", m.Upstream.Name, want, targets)
				}
			}
		} else if m.Upstream != nil || m.Host != op.Context {
			t.Errorf("%s %s: sent to host %s, want the container %s", op.Method, op.Path, m.Host, op.Context)
		}
		if !op.MachineOnly() {
			pm, err := f.Match("OPTIONS", path)
			if err != nil {
				t.Errorf("preflight OPTIONS %s: %v", path, err)
			} else {
				hit[pm.Route] = true
				if !slices.Contains(pm.Plugins, "cors") || slices.Contains(pm.Plugins, "key-auth") {
					t.Errorf("preflight OPTIONS %s reaches %s with plugins %v", path, pm.Route, pm.Plugins)
				}
			}
		}
	}
	// A route no operation reaches is stale: it would send traffic to a
	// context that no longer serves it.
	for _, s := range f.Services {
		for _, r := range s.Routes {
			if !hit[r.Name] {
				t.Errorf("route %s serves no operation of the route table", r.Name)
			}
		}
	}
}

// TestRouteTableCarriesContextAndAccess: the generator's input carries
// the context and access of every operation (the route table itself is
// checked against the wired monolith by TestMountRoutesCoversServedRoutes).
func TestRouteTableCarriesContextAndAccess(t *testing.T) {
	t.Parallel()
	ops := routeTable()
	seen := map[string]bool{}
	for _, op := range ops {
		key := op.Method + " " + op.Path
		if seen[key] {
			t.Errorf("%s listed twice", key)
		}
		seen[key] = true
		if op.Context == "" || op.Access == "" || !strings.HasPrefix(op.Path, "/api/v1/") {
			t.Errorf("%s: context %q, access %q", key, op.Context, op.Access)
		}
		if !slices.Contains(allContexts, op.Context) {
			t.Errorf("%s: context %q is not in allContexts", key, op.Context)
		}
	}
	for _, c := range allContexts {
		if !slices.ContainsFunc(ops, func(r gateway.Route) bool { return r.Context == c }) {
			t.Errorf("context %s has no operation in the route table", c)
		}
	}
}

// samplePath fills a template's parameters with values no literal segment
// uses, as a client's ids would.
func samplePath(template string) string {
	parts := strings.Split(template, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			parts[i] = "sample-" + strings.Trim(p, "{}")
		}
	}
	return strings.Join(parts, "/")
}

// firstDiff shows the first line where two files differ.
func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: committed %q, generated %q", i+1, x, y)
		}
	}
	return "none"
}
