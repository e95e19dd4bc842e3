package deploy

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/retailco/pos/internal/platform/gateway"
	"github.com/retailco/pos/internal/platform/gateway/kongconf"
)

// kongYAML is the committed gateway configuration, read strictly. That it
// routes every operation of the binary to its context is checked in
// cmd/pos (TestKongConfigRoutesEveryOperation), where the route table is.
func kongYAML(t *testing.T) *kongconf.File {
	t.Helper()
	raw, err := os.ReadFile("kong/kong.yml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := kongconf.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestKongConfigKeepsTheGatewayRules(t *testing.T) {
	t.Parallel()
	for _, err := range kongconf.Lint(kongYAML(t)) {
		t.Error(err)
	}
}

// TestKongSendsToTheFleet: every host Kong proxies to is a pos container
// of compose.yaml running the service's context on the port Kong uses,
// and every instance of a balanced context is a target.
func TestKongSendsToTheFleet(t *testing.T) {
	t.Parallel()
	f, p := kongYAML(t), fleet(t)
	contextOf := map[string]string{}
	for _, s := range posServices(t, p) {
		contextOf[s.Name] = s.context
	}
	upstreams := map[string]kongconf.Upstream{}
	for _, u := range f.Upstreams {
		upstreams[u.Name] = u
	}
	for _, s := range f.Services {
		host := s.ServiceHost()
		if !strings.HasSuffix(s.URL, ":8080") {
			t.Errorf("kong service %s: %s is not the contexts' port 8080", s.Name, s.URL)
		}
		u, balanced := upstreams[host]
		if !balanced {
			if contextOf[host] != s.Name {
				t.Errorf("kong service %s sends to %s, which runs %q in compose.yaml", s.Name, host, contextOf[host])
			}
			continue
		}
		var targets, instances []string
		for _, tg := range u.Targets {
			h, port, err := net.SplitHostPort(tg.Target)
			if err != nil || port != "8080" || contextOf[h] != s.Name {
				t.Errorf("upstream %s: target %s is not a %s container on 8080", u.Name, tg.Target, s.Name)
			}
			targets = append(targets, h)
		}
		for name, c := range contextOf {
			if c == s.Name {
				instances = append(instances, name)
			}
		}
		slices.Sort(targets)
		slices.Sort(instances)
		if !slices.Equal(targets, instances) {
			t.Errorf("upstream %s balances over %v, compose runs %v", u.Name, targets, instances)
		}
	}
}

// TestKongContainer: DB-less, on the declarative file the entrypoint
// writes, admin API on loopback, status listener for the health check
// and Prometheus, proxy published on 8080.
func TestKongContainer(t *testing.T) {
	t.Parallel()
	p := fleet(t)
	k, ok := p.Services["kong"]
	if !ok {
		t.Fatal("no kong service")
	}
	want := map[string]string{
		"KONG_DATABASE":           "off",
		"KONG_DECLARATIVE_CONFIG": "/tmp/kong.yml",
		"KONG_ROUTER_FLAVOR":      "traditional_compatible", // what kongconf.Match models
		"KONG_PROXY_LISTEN":       "0.0.0.0:8000",
		"KONG_STATUS_LISTEN":      "0.0.0.0:8100",
	}
	for key, v := range want {
		if got := env(k, key); got != v {
			t.Errorf("kong: %s=%q, want %q", key, got, v)
		}
	}
	if admin := env(k, "KONG_ADMIN_LISTEN"); !strings.HasPrefix(admin, "127.0.0.1:") {
		t.Errorf("kong: admin API on %q; keep it on loopback", admin)
	}
	published := false
	for _, port := range k.Ports {
		if port.Target == 8000 && port.Published == "8080" {
			published = true
		}
		if port.Target == 8001 || port.Target == 8100 {
			t.Errorf("kong publishes internal port %d", port.Target)
		}
	}
	if !published {
		t.Errorf("kong: proxy 8000 not published on 8080 (%+v)", k.Ports)
	}
	if !slices.ContainsFunc(k.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Target == "/kong/kong.yml" && filepath.Base(v.Source) == "kong.yml" && v.ReadOnly
	}) {
		t.Errorf("kong: kong/kong.yml not mounted read-only at /kong/kong.yml (%+v)", k.Volumes)
	}
}

// TestKongEntrypointSubstitutesTheServiceKey runs the Kong container's
// start-up script (from compose.yaml, after compose's interpolation) on
// the committed kong.yml: a good key lands in the consumer's credential
// and nowhere else changes; a missing, short or unsafe key stops Kong
// from starting.
func TestKongEntrypointSubstitutesTheServiceKey(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"sh", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, tool+" not installed")
		}
	}
	k := fleet(t).Services["kong"]
	if !slices.Equal(k.Entrypoint, []string{"/bin/sh", "-ec"}) || len(k.Command) != 1 {
		t.Fatalf("kong: entrypoint %v command %v: want a /bin/sh -ec script", k.Entrypoint, k.Command)
	}
	script := k.Command[0]
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.yml"), filepath.Join(dir, "out.yml")
	committed, err := os.ReadFile("kong/kong.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, committed, 0o600); err != nil {
		t.Fatal(err)
	}
	// Point the script at temporary files and stop where it would start
	// Kong; each replaced piece must be there, or the script changed and
	// this test must follow.
	for _, r := range [][2]string{
		{"/kong/kong.yml", in},
		{"> /tmp/kong.yml", "> " + out},
		{"exec /docker-entrypoint.sh kong docker-start", "exit 0"},
	} {
		if !strings.Contains(script, r[0]) {
			t.Fatalf("kong start-up script no longer contains %q:\n%s", r[0], script)
		}
		script = strings.ReplaceAll(script, r[0], r[1])
	}
	run := func(key string) error {
		cmd := exec.CommandContext(t.Context(), "sh", "-ec", script)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "POS_SERVICE_KEY=" + key}
		return cmd.Run()
	}

	key := strings.Repeat("0123456789abcdef", 3) + "-._~"
	if err := run(key); err != nil {
		t.Fatalf("a good key was refused: %v", err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f, err := kongconf.Decode(bytes.NewReader(got))
	if err != nil {
		t.Fatalf("substituted file: %v", err)
	}
	if len(f.Consumers) != 1 || len(f.Consumers[0].KeyauthCredentials) != 1 || f.Consumers[0].KeyauthCredentials[0].Key != key {
		t.Fatalf("the consumer's key is not the service key: %+v", f.Consumers)
	}
	if want := bytes.ReplaceAll(committed, []byte(gateway.ServiceKeyPlaceholder), []byte(key)); !bytes.Equal(got, want) {
		t.Error("the script changed more than the placeholder")
	}
	for name, bad := range map[string]string{
		"missing":        "",
		"short":          "0123456789abcdef",
		"quote":          strings.Repeat("a", 32) + `"`,
		"space":          strings.Repeat("a", 32) + " b",
		"dollar":         strings.Repeat("a", 32) + "$x",
		"newline":        strings.Repeat("a", 32) + "\nkey: x",
		"yaml separator": strings.Repeat("a", 32) + ": x",
	} {
		_ = os.Remove(out)
		if err := run(bad); err == nil {
			t.Errorf("%s key accepted", name)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s key: a configuration was written", name)
		}
	}
}
