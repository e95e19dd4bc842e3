package deploy

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
)

func TestValidContextsCoverWiredContexts(t *testing.T) {
	t.Parallel()
	for _, c := range wiredContexts(t) {
		if !slices.Contains(validContexts, c) {
			t.Errorf("cmd/pos wires context %q, which deploy/ does not know: add it to validContexts and give it a service in compose.yaml", c)
		}
	}
}

// TestComposeRequiresSecrets: with .env.example as it is committed
// (secrets empty) compose refuses to load, naming the variable.
func TestComposeRequiresSecrets(t *testing.T) {
	t.Parallel()
	for secret := range testSecrets {
		env := map[string]string{}
		for k, v := range testSecrets {
			if k != secret {
				env[k] = v
			}
		}
		_, err := loadCompose(t.Context(), env)
		if err == nil || !strings.Contains(err.Error(), secret) {
			t.Errorf("compose loads without %s: %v", secret, err)
		}
	}
	example, err := dotenv.GetEnvFromFile(map[string]string{}, []string{".env.example"})
	if err != nil {
		t.Fatal(err)
	}
	for secret := range testSecrets {
		v, listed := example[secret]
		if !listed {
			t.Errorf(".env.example does not list %s", secret)
		} else if v != "" {
			t.Errorf(".env.example carries a value for secret %s: commit only empty placeholders", secret)
		}
	}
}

func TestComposeEveryServiceHasAHealthcheck(t *testing.T) {
	t.Parallel()
	p := fleet(t)
	for _, name := range sortedNames(p) {
		hc := p.Services[name].HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") {
			t.Errorf("service %s: no usable healthcheck (%+v)", name, hc)
			continue
		}
		if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
			t.Errorf("service %s: healthcheck needs interval, timeout and retries", name)
		}
	}
}

// TestComposeStartsInOrder: every dependency on a service that has a
// healthcheck waits for it to be healthy, not merely started, and there
// is no cycle.
func TestComposeStartsInOrder(t *testing.T) {
	t.Parallel()
	p := fleet(t)
	for _, name := range sortedNames(p) {
		for dep, d := range p.Services[name].DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
				continue
			}
			if target.HealthCheck != nil && !target.HealthCheck.Disable && d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s depends on %s with condition %q, want service_healthy", name, dep, d.Condition)
			}
		}
	}
	// A cycle would keep `docker compose up` waiting forever.
	state := map[string]int{}
	var visit func(string, []string)
	visit = func(n string, path []string) {
		switch state[n] {
		case 1:
			t.Errorf("dependency cycle: %s", strings.Join(append(path, n), " → "))
			return
		case 2:
			return
		}
		state[n] = 1
		for dep := range p.Services[n].DependsOn {
			visit(dep, append(path, n))
		}
		state[n] = 2
	}
	for _, n := range sortedNames(p) {
		visit(n, nil)
	}
}

func TestComposeHostPortsAreUnique(t *testing.T) {
	t.Parallel()
	p := fleet(t)
	seen := map[string]string{}
	for _, name := range sortedNames(p) {
		for _, port := range p.Services[name].Ports {
			if port.Published == "" {
				continue
			}
			// One host port cannot be bound twice, whatever the address.
			key := port.Published + "/" + port.Protocol
			if other, dup := seen[key]; dup {
				t.Errorf("host port %s published by %s and %s", key, other, name)
			}
			seen[key] = name
		}
	}
	if len(seen) == 0 {
		t.Error("nothing published: the gateway must be reachable")
	}
}

// TestComposeRunsEveryContext: one container per context (the cart
// several), each naming a real context, each with the environment its
// context needs, pointing at services that exist, and waiting for them.
func TestComposeRunsEveryContext(t *testing.T) {
	t.Parallel()
	p := fleet(t)
	pos := posServices(t, p)
	byContext := map[string][]string{}
	for _, s := range pos {
		byContext[s.context] = append(byContext[s.context], s.Name)
		if !slices.Contains(validContexts, s.context) {
			t.Errorf("service %s runs unknown context %q", s.Name, s.context)
		}
	}
	for _, c := range validContexts {
		if len(byContext[c]) == 0 {
			t.Errorf("no service runs context %s", c)
		}
	}
	if n := len(byContext["cart"]); n < 2 {
		t.Errorf("cart runs on %d instances; the gateway balances it over several", n)
	}

	pg := p.Services["postgres"]
	databases := strings.Fields(env(pg, "POS_DATABASES"))
	instanceIDs := map[string]bool{}
	image := ""
	for _, s := range pos {
		if image == "" {
			image = s.Image
		}
		if s.Image != image || s.Build == nil || filepath.Base(s.Build.Dockerfile) != "Dockerfile" {
			t.Errorf("%s: image %q built from %+v; every context runs the one pos image", s.Name, s.Image, s.Build)
		}
		check := func(key string, cond bool, format string, a ...any) {
			if !cond {
				t.Errorf("%s: %s=%q: %s", s.Name, key, env(s.ServiceConfig, key), fmt.Sprintf(format, a...))
			}
		}
		id := env(s.ServiceConfig, "POS_INSTANCE_ID")
		check("POS_INSTANCE_ID", id == s.Name && !instanceIDs[id], "want the service name, unique")
		instanceIDs[id] = true
		check("POS_TRUST_PROXY", env(s.ServiceConfig, "POS_TRUST_PROXY") == "true", "behind Kong client IPs come from X-Forwarded-For")
		check("POS_SERVICE_KEY", env(s.ServiceConfig, "POS_SERVICE_KEY") == testSecrets["POS_SERVICE_KEY"], "must come from the env file")
		check("POS_JWT_SECRET", env(s.ServiceConfig, "POS_JWT_SECRET") == testSecrets["POS_JWT_SECRET"], "must come from the env file")
		check("POS_GATEWAY_URL", env(s.ServiceConfig, "POS_GATEWAY_URL") == "http://kong:8000", "contexts reach each other through Kong's proxy listener")

		_, port, err := net.SplitHostPort(env(s.ServiceConfig, "POS_ADDR"))
		check("POS_ADDR", err == nil && port == "8080", "the gateway and Prometheus reach contexts on 8080")
		if hc := s.HealthCheck; hc == nil || !slices.Contains(hc.Test, "healthcheck") || !slices.ContainsFunc(hc.Test, func(a string) bool { return strings.HasPrefix(a, "http://127.0.0.1:8080/health/ready") }) {
			t.Errorf("%s: healthcheck %v must be `pos healthcheck` on /health/ready", s.Name, s.HealthCheck)
		}

		// Each store URL must name a service of the fleet, which the
		// context then waits for.
		needs := func(key, scheme string) *url.URL {
			u, err := url.Parse(env(s.ServiceConfig, key))
			if err != nil || u.Scheme != scheme || u.Hostname() == "" {
				t.Errorf("%s: %s=%q is not a %s:// URL", s.Name, key, env(s.ServiceConfig, key), scheme)
				return nil
			}
			host := u.Hostname()
			if _, ok := p.Services[host]; !ok {
				t.Errorf("%s: %s points at %s, which is not a service", s.Name, key, host)
			} else if d, ok := s.DependsOn[host]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: uses %s (%s) without waiting for it to be healthy", s.Name, host, key)
			}
			return u
		}
		if u := needs("POS_DATABASE_URL", "postgres"); u != nil {
			db := strings.TrimPrefix(u.Path, "/")
			pw, _ := u.User.Password()
			if db != s.context || !slices.Contains(databases, db) {
				t.Errorf("%s: database %q; each context has its own, created by postgres (POS_DATABASES %v)", s.Name, db, databases)
			}
			if pw != testSecrets["POSTGRES_PASSWORD"] {
				t.Errorf("%s: database password does not come from the env file", s.Name)
			}
		}
		if u := needs("POS_EVENTS_REDIS_URL", "redis"); u != nil {
			cmd := strings.Join(p.Services[u.Hostname()].Command, " ")
			if !strings.Contains(cmd, "--appendonly yes") || !strings.Contains(cmd, "--appendfsync always") {
				t.Errorf("%s: the event streams' Redis (%s) runs %q; the bus needs appendonly with appendfsync always", s.Name, u.Hostname(), cmd)
			}
		}
		switch s.context {
		case "cart":
			if u := needs("POS_REDIS_URL", "redis"); u != nil && u.Hostname() == "redis-events" {
				t.Errorf("%s: carts and event streams share one Redis", s.Name)
			}
		case "claims":
			needs("POS_MONGO_URL", "mongodb")
		}
	}
	for _, db := range databases {
		if !slices.Contains(validContexts, db) {
			t.Errorf("postgres creates database %q, which no context owns", db)
		}
	}
}

// TestComposeBindMountsExist: every file or directory compose mounts from
// the repository is there.
func TestComposeBindMountsExist(t *testing.T) {
	t.Parallel()
	p := fleet(t)
	for _, name := range sortedNames(p) {
		for _, v := range p.Services[name].Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s: %v", name, v.Source, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s mounts %s writable; configuration is read-only", name, v.Source)
			}
		}
	}
}

// TestPostgresInitCreatesDatabases runs postgres/init-databases.sh (what
// the postgres image runs on first start) against a real server: it
// creates each database once, runs again without error, and refuses a
// name it would have to quote.
func TestPostgresInitCreatesDatabases(t *testing.T) {
	t.Parallel()
	raw := os.Getenv("POS_TEST_POSTGRES_URL")
	if raw == "" {
		skipOrFail(t, "POS_TEST_POSTGRES_URL not set")
	}
	if _, err := exec.LookPath("psql"); err != nil {
		skipOrFail(t, "psql not installed")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	base := append(os.Environ(), "PGHOST="+u.Hostname(), "PGPORT="+u.Port(), "PGPASSWORD="+pw, "POSTGRES_USER="+u.User.Username())
	prefix := fmt.Sprintf("pos_init_test_%d", os.Getpid())
	dbs := []string{prefix + "_a", prefix + "_b"}
	psql := func(sql string) string {
		cmd := exec.CommandContext(t.Context(), "psql", "-v", "ON_ERROR_STOP=1", "--username", u.User.Username(), "--dbname", "postgres", "-tAc", sql)
		cmd.Env = base
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("psql %q: %v\n%s", sql, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	t.Cleanup(func() {
		for _, db := range append(dbs, prefix+"_c") {
			cmd := exec.Command("psql", "--username", u.User.Username(), "--dbname", "postgres", "-c", `DROP DATABASE IF EXISTS "`+db+`"`)
			cmd.Env = base
			_ = cmd.Run()
		}
	})
	run := func(list string) error {
		cmd := exec.CommandContext(t.Context(), "sh", "postgres/init-databases.sh")
		cmd.Env = append(slices.Clone(base), "POS_DATABASES="+list)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	for range 2 { // the second run must find them and do nothing
		if err := run(strings.Join(dbs, " ")); err != nil {
			t.Fatal(err)
		}
	}
	if got := psql(fmt.Sprintf("SELECT count(*) FROM pg_database WHERE datname IN ('%s', '%s')", dbs[0], dbs[1])); got != "2" {
		t.Fatalf("%s databases of 2 created", got)
	}
	// Names are checked before any is created: a bad one in the list
	// leaves the server untouched.
	if err := run(prefix + `_c x"; DROP TABLE y; --`); err == nil {
		t.Fatal("a name needing quotes was accepted")
	}
	if got := psql(fmt.Sprintf("SELECT count(*) FROM pg_database WHERE datname LIKE '%s_c%%'", prefix)); got != "0" {
		t.Fatalf("a refused name created %s databases", got)
	}
}
