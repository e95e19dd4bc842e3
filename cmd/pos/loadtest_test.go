package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The load test's end-to-end tests start the real binary as the target
// (POS_RATE_LIMIT=0, so the server's per-client limiter does not turn a
// 15-VU run from one address into a run of 429s) and run `pos loadtest`
// against it, short runs with thresholds, then read the JSON summary.
// The load generator runs in the test process: the command is the same
// whichever process runs it, and so it is tested whether or not root.go
// lists it yet.

// runLoadtest runs `pos loadtest args…` and returns its output.
func runLoadtest(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCmd(os.Getenv, &stdout, &stderr)
	if c, _, err := root.Find([]string{"loadtest"}); err != nil || c.Name() != "loadtest" {
		root.AddCommand(newLoadtestCmd(&globals{getenv: os.Getenv, stdout: &stdout, stderr: &stderr}))
	}
	root.SetArgs(append([]string{"loadtest"}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return stdout.String() + "\n--- stderr ---\n" + stderr.String(), err
}

// ltSummary is what the tests read of the JSON summary.
type ltSummary struct {
	Scenario  string  `json:"scenario"`
	MaxVUs    int     `json:"max_vus"`
	DurationS float64 `json:"duration_s"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	RPS       float64 `json:"rps"`
	Latency   struct {
		P50, P95, P99, Max float64
	} `json:"latency_ms"`
	Iterations struct {
		Completed, Failed int64
		ByJourney         []struct {
			Name      string
			Completed int64
		} `json:"by_journey"`
	} `json:"iterations"`
	Endpoints []struct {
		ID       string
		Count    int64
		Statuses map[string]int64
	} `json:"endpoints"`
	Checks []struct {
		Name          string
		Passes, Fails int64
	} `json:"checks"`
	Series     []struct{ Requests int64 } `json:"series"`
	Invariants []struct{ Name, Status, Detail string }
	Thresholds []struct {
		Expr string `json:"expr"`
		OK   bool   `json:"ok"`
	} `json:"thresholds"`
	Passed bool `json:"passed"`
}

func readSummary(t *testing.T, path string) ltSummary {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s ltSummary
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("summary: %v\n%s", err, raw)
	}
	return s
}

func (s ltSummary) endpoint(id string) int64 {
	for _, e := range s.Endpoints {
		if e.ID == id {
			return e.Count
		}
	}
	return 0
}

// startLoadTarget starts a monolith for a load test and makes its admin
// key.
func startLoadTarget(t *testing.T, args ...string) (*proc, string) {
	t.Helper()
	env := []string{"POS_DATA_DIR=" + t.TempDir(), "POS_RATE_LIMIT=0"}
	admin := createKey(t, env, "admin")
	if len(args) == 0 {
		args = []string{"serve", "--all"}
	}
	return startPos(t, env, args...), admin
}

// TestLoadtestCatalogShort runs the original's 15-VU catalog test, cut to
// 6 s, with thresholds, and checks the summary's figures hang together.
func TestLoadtestCatalogShort(t *testing.T) {
	t.Parallel()
	p, admin := startLoadTarget(t)
	dir := t.TempDir()
	out, html := filepath.Join(dir, "run.json"), filepath.Join(dir, "run.html")
	log, err := runLoadtest(t, "--target", p.URL, "--api-key", admin, "--scenario", "catalog-15vu", "--short", "--duration", "6s",
		"--threshold", "p95<1s", "--threshold", "errors<1%", "--threshold", "checks==0", "--threshold", "get-my-customer:p99<2s",
		"--out", out, "--html", html)
	if err != nil {
		t.Fatalf("loadtest: %v\n%s", err, log)
	}
	s := readSummary(t, out)
	if !s.Passed || s.Scenario != "catalog-15vu" || s.MaxVUs != 15 {
		t.Fatalf("summary: %+v\n%s", s, log)
	}
	if s.Requests < 100 || s.Errors != 0 || s.RPS <= 0 || s.DurationS < 6 || s.DurationS > 20 {
		t.Errorf("figures: %d requests, %d errors, %.1f req/s over %.1fs", s.Requests, s.Errors, s.RPS, s.DurationS)
	}
	if !(0 < s.Latency.P50 && s.Latency.P50 <= s.Latency.P95 && s.Latency.P95 <= s.Latency.P99 && s.Latency.P99 <= s.Latency.Max) {
		t.Errorf("latency percentiles out of order: %+v", s.Latency)
	}
	// Every journey reads three product pages, a customer page and "me",
	// and the graceful stop lets every journey finish.
	me := s.endpoint("get-my-customer")
	if me == 0 || s.endpoint("list-products") != 3*me || s.endpoint("list-customers") != me || s.Iterations.Completed != me {
		t.Errorf("journey shape: %+v, %d journeys", s.Endpoints, s.Iterations.Completed)
	}
	var inSeries int64
	for _, pt := range s.Series {
		inSeries += pt.Requests
	}
	if inSeries != s.Requests || len(s.Series) < 6 {
		t.Errorf("the per-second series holds %d requests over %d s, the run %d", inSeries, len(s.Series), s.Requests)
	}
	if len(s.Thresholds) != 4 {
		t.Errorf("thresholds: %+v", s.Thresholds)
	}
	for _, inv := range s.Invariants {
		if inv.Status != "not applicable" {
			t.Errorf("a catalog run has no business invariant to break, got %+v", inv)
		}
	}
	page, err := os.ReadFile(html)
	if err != nil || !bytes.Contains(page, []byte("<svg")) || !bytes.Contains(page, []byte("list-products")) {
		t.Errorf("html report: %v, %d bytes", err, len(page))
	}
	if !strings.Contains(log, "PASSED") || !strings.Contains(log, "list-products") || !strings.Contains(log, "req/s") {
		t.Errorf("the printed report lacks its table or verdict:\n%s", log)
	}
}

// TestLoadtestFailsWhenAThresholdIsCrossed: a threshold no run can meet
// makes the command fail, and the summary says which.
func TestLoadtestFailsWhenAThresholdIsCrossed(t *testing.T) {
	t.Parallel()
	p, admin := startLoadTarget(t)
	out := filepath.Join(t.TempDir(), "run.json")
	log, err := runLoadtest(t, "--target", p.URL, "--api-key", admin, "--scenario", "catalog-15vu",
		"--stages", "0s:2,2s:2", "--threshold", "p50<1us", "--threshold", "errors<1%", "--out", out)
	if err == nil || !strings.Contains(err.Error(), "threshold crossed: p50<1us") {
		t.Fatalf("err = %v\n%s", err, log)
	}
	s := readSummary(t, out)
	if s.Passed || len(s.Thresholds) != 2 || s.Thresholds[0].OK || !s.Thresholds[1].OK {
		t.Errorf("summary: %+v", s)
	}
}

// TestLoadtestRefusesMissingContexts: a scenario whose contexts the
// target does not serve fails at once with a sentence naming them, not
// with a run of 404s.
func TestLoadtestRefusesMissingContexts(t *testing.T) {
	t.Parallel()
	p, admin := startLoadTarget(t, "serve", "--only=product,customer")
	log, err := runLoadtest(t, "--target", p.URL, "--api-key", admin, "--scenario", "checkout", "--short")
	if err == nil {
		t.Fatalf("the checkout scenario ran against a target without the checkout contexts:\n%s", log)
	}
	for _, want := range []string{"scenario checkout cannot run", "/api/v1/checkout (saga context) answers 404", "inventory context"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// mixedContexts are the contexts the mixed scenario needs in the binary.
var mixedContexts = []string{"product", "inventory", "customer", "payment", "cart", "order", "saga", "sales", "claims"}

// TestLoadtestMixedShort runs every journey at once for 12 s and requires
// the thresholds and every business invariant to hold. Until the binary
// builds every context it needs, the scenario must refuse to run and say
// which context is missing.
func TestLoadtestMixedShort(t *testing.T) {
	t.Parallel()
	p, admin := startLoadTarget(t)
	var missing []string
	for _, c := range mixedContexts {
		if !slices.Contains(allContexts, c) {
			missing = append(missing, c)
		}
	}
	out := filepath.Join(t.TempDir(), "run.json")
	log, err := runLoadtest(t, "--target", p.URL, "--api-key", admin, "--scenario", "mixed", "--short", "--duration", "12s", "--seed", "42",
		"--threshold", "errors<1%", "--threshold", "checks==0", "--threshold", "p95<2s", "--threshold", "checkout:p99<5s", "--out", out)
	if len(missing) > 0 {
		if err == nil || !strings.Contains(err.Error(), "does not serve") {
			t.Fatalf("contexts %v are not built, yet mixed did not refuse clearly: %v\n%s", missing, err, log)
		}
		t.Logf("mixed refused as expected while %v are missing from allContexts: %v", missing, err)
		return
	}
	if err != nil {
		t.Fatalf("loadtest: %v\n%s", err, log)
	}
	s := readSummary(t, out)
	if !s.Passed || s.Errors != 0 {
		t.Fatalf("summary: %+v\n%s", s, log)
	}
	for _, j := range s.Iterations.ByJourney {
		if j.Completed == 0 {
			t.Errorf("no %s journey completed:\n%s", j.Name, log)
		}
	}
	want := map[string]bool{"every saga final": true, "stock conserved": true, "money conserved": true,
		"claims reach their final state": true, "cash drawers balance": true}
	for _, inv := range s.Invariants {
		if want[inv.Name] && inv.Status != "pass" {
			t.Errorf("invariant %s: %s: %s", inv.Name, inv.Status, inv.Detail)
		}
		delete(want, inv.Name)
	}
	if len(want) > 0 {
		t.Errorf("invariants not reported: %v", want)
	}
	for _, c := range s.Checks {
		if c.Fails > 0 {
			t.Errorf("check %q failed %d times", c.Name, c.Fails)
		}
	}
	for _, id := range []string{"checkout", "create-sale", "close-register-session", "create-claim", "close-claim", "list-products"} {
		if s.endpoint(id) == 0 {
			t.Errorf("no %s request in a mixed run", id)
		}
	}
}
