package deploy

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// promConfig models the part of prometheus.yml this deployment writes;
// it is decoded strictly, so a field out of place fails here as well as
// in promtool.
type promConfig struct {
	Global struct {
		ScrapeInterval     string            `yaml:"scrape_interval"`
		EvaluationInterval string            `yaml:"evaluation_interval"`
		ExternalLabels     map[string]string `yaml:"external_labels"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// alertRules models alerts.yml.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestPrometheusScrapesTheFleet: every pos container and Kong's status
// listener are scraped, labelled with their context, and nothing else
// that compose.yaml does not run.
func TestPrometheusScrapesTheFleet(t *testing.T) {
	t.Parallel()
	var cfg promConfig
	decodeStrict(t, "prometheus/prometheus.yml", &cfg)
	p := fleet(t)

	scraped := map[string]string{} // target → service label
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				scraped[target] = st.Labels["service"]
				host, _, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("job %s: target %q", sc.JobName, target)
					continue
				}
				if _, ok := p.Services[host]; !ok && host != "localhost" {
					t.Errorf("job %s scrapes %s, which compose.yaml does not run", sc.JobName, target)
				}
			}
		}
	}
	for _, s := range posServices(t, p) {
		if label, ok := scraped[s.Name+":8080"]; !ok || label != s.context {
			t.Errorf("pos container %s (%s) is not scraped with service=%s (label %q)", s.Name, s.context, s.context, label)
		}
	}
	k := p.Services["kong"]
	_, statusPort, _ := net.SplitHostPort(env(k, "KONG_STATUS_LISTEN"))
	if _, ok := scraped["kong:"+statusPort]; !ok {
		t.Errorf("Kong's status listener kong:%s (its /metrics) is not scraped", statusPort)
	}
	for _, f := range cfg.RuleFiles {
		if _, err := os.Stat("prometheus/" + f); err != nil {
			t.Errorf("rule file %s: %v", f, err)
		}
	}
}

// TestAlertsCoverTheBriefAndUseRealMetrics: the alerts asked for exist,
// each has a severity and a summary, and every series they read is one
// the code exports.
func TestAlertsCoverTheBriefAndUseRealMetrics(t *testing.T) {
	t.Parallel()
	var rules alertRules
	decodeStrict(t, "prometheus/alerts.yml", &rules)
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: severity, summary and description are required", r.Alert)
			}
			if bad := unknownMetrics(t, r.Expr); len(bad) > 0 {
				t.Errorf("alert %s reads %v, which nothing exports", r.Alert, bad)
			}
		}
	}
	for _, want := range []string{"HighErrorRate", "HighLatencyP95", "CheckoutSagaFailureRate", "EventConsumerLag", "EventsDeadLettered", "InstanceDown"} {
		if !slices.Contains(names, want) {
			t.Errorf("alert %s missing", want)
		}
	}
	// Every alert is exercised by promtool's unit tests.
	raw, err := os.ReadFile("prometheus/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !strings.Contains(string(raw), "alertname: "+n+"\n") {
			t.Errorf("alert %s has no case in alerts_test.yml", n)
		}
	}
}

// TestPromtool runs promtool on the configuration, the rules and the
// rules' unit tests. Without promtool (Debian package prometheus) it
// skips, unless POS_TEST_REQUIRE_INFRA=1.
func TestPromtool(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("promtool"); err != nil {
		skipOrFail(t, "promtool not installed (apt-get install prometheus)")
	}
	for _, args := range [][]string{
		{"check", "config", "prometheus/prometheus.yml"},
		{"check", "rules", "prometheus/alerts.yml"},
		{"test", "rules", "prometheus/alerts_test.yml"},
	} {
		out, err := exec.CommandContext(t.Context(), "promtool", args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
