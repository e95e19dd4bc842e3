package loadtest

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseThreshold(t *testing.T) {
	cases := []struct {
		in                   string
		endpoint, metric, op string
		value                float64
	}{
		{"p95<200ms", "", "p95", "<", 200},
		{" p99 <= 1.5s ", "", "p99", "<=", 1500},
		{"p99.9<500us", "", "p99.9", "<", 0.5},
		{"max<2", "", "max", "<", 2}, // a bare latency is milliseconds, as in k6
		{"avg<50ms", "", "avg", "<", 50},
		{"med<5ms", "", "med", "<", 5},
		{"errors<1%", "", "errors", "<", 0.01},
		{"errors<0.01", "", "errors", "<", 0.01},
		{"errors==0", "", "errors", "==", 0},
		{"checks<0.5%", "", "checks", "<", 0.005},
		{"rps>100", "", "rps", ">", 100},
		{"rps>=100/s", "", "rps", ">=", 100},
		{"requests>1000", "", "requests", ">", 1000},
		{"dropped==0", "", "dropped", "==", 0},
		{"checkout:p95<300ms", "checkout", "p95", "<", 300},
		{"GET /api/v1/products:p99<50ms", "list-products", "p99", "<", 50},
		{"list-products:errors<1%", "list-products", "errors", "<", 0.01},
		{"create-sale:rps>5", "create-sale", "rps", ">", 5},
	}
	for _, c := range cases {
		th, err := ParseThreshold(c.in)
		if err != nil {
			t.Errorf("ParseThreshold(%q): %v", c.in, err)
			continue
		}
		if th.Endpoint != c.endpoint || th.Metric != c.metric || th.Op != c.op || math.Abs(th.Value-c.value) > 1e-12 {
			t.Errorf("ParseThreshold(%q) = %+v", c.in, th)
		}
	}
	bad := map[string]string{
		"p95":                   "want",
		"p95<":                  "want",
		"p95<fast":              "want",
		"latency<200ms":         "unknown metric",
		"p95<200kg":             "latency",
		"errors<5":              "more than 100%",
		"errors<1ms":            "rate",
		"rps>100ms":             "plain number",
		"nope:p95<200ms":        "unknown endpoint",
		"checkout:dropped==0":   "whole run",
		"p100<1ms":              "unknown metric",
		"p95<200ms; rm -rf /":   "want",
		"GET /nothing:p95<50ms": "unknown endpoint",
	}
	for in, msg := range bad {
		_, err := ParseThreshold(in)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseThreshold(%q) = %v, want an error about %q", in, err, msg)
		}
	}
}

// summaryFixture is a summary with 100 samples of 1..100 ms, 2 errors in
// 100 requests, an endpoint of its own, checks and dropped arrivals.
func summaryFixture() *Summary {
	var all []time.Duration
	for i := 1; i <= 100; i++ {
		all = append(all, time.Duration(i)*time.Millisecond)
	}
	lat := summarize(all, 100, 5050*time.Millisecond, time.Millisecond, 100*time.Millisecond)
	co := all[90:]
	return &Summary{
		Requests: 100, Errors: 2, ErrorRate: 0.02, RPS: 50, Latency: lat,
		Endpoints: []EndpointSummary{
			{ID: "checkout", Count: 10, RPS: 5, ErrorRate: 0.1, Latency: summarize(co, 10, 955*time.Millisecond, 91*time.Millisecond, 100*time.Millisecond)},
			{ID: "list-products", Count: 90, RPS: 45, Latency: summarize(all[:90], 90, 0, time.Millisecond, 90*time.Millisecond)},
		},
		Checks:     []CheckSummary{{Name: "a", Passes: 99, Fails: 1}},
		Iterations: Iterations{Dropped: 3},
		all:        all,
		perEP:      map[string][]time.Duration{"checkout": co, "list-products": all[:90]},
	}
}

func TestThresholdEvaluate(t *testing.T) {
	s := summaryFixture()
	cases := []struct {
		expr  string
		ok    bool
		shown string
	}{
		{"p95<200ms", true, "95.05ms"},
		{"p95<95ms", false, "95.05ms"},
		{"p50<=50.5", true, "50.5ms"},
		{"p99.9<100ms", true, "99.901ms"}, // computed from the samples
		{"max<100ms", false, "100ms"},
		{"max<=100ms", true, "100ms"},
		{"min>=1ms", true, "1ms"},
		{"avg<50ms", false, "50.5ms"},
		{"errors<1%", false, "2.00%"},
		{"errors<=2%", true, "2.00%"},
		{"checks<2%", true, "1.00%"},
		{"checks==0", false, "1.00%"},
		{"rps>40", true, "50"},
		{"requests>=100", true, "100"},
		{"dropped==0", false, "3"},
		{"checkout:p95<300ms", true, "99.55ms"},
		{"checkout:errors<5%", false, "10.00%"},
		{"list-products:p99<50ms", false, "89.11ms"},
		{"list-products:rps>=45", true, "45"},
	}
	for _, c := range cases {
		th, err := ParseThreshold(c.expr)
		if err != nil {
			t.Fatal(err)
		}
		res := th.Evaluate(s)
		if res.OK != c.ok || res.Shown != c.shown {
			t.Errorf("%s: ok=%v shown=%q (actual %v), want ok=%v shown=%q", c.expr, res.OK, res.Shown, res.Actual, c.ok, c.shown)
		}
	}
}

// TestThresholdOnAbsentEndpointFails: an endpoint the run never called
// must not pass by default.
func TestThresholdOnAbsentEndpointFails(t *testing.T) {
	th, err := ParseThreshold("create-claim:p95<100ms")
	if err != nil {
		t.Fatal(err)
	}
	res := th.Evaluate(summaryFixture())
	if res.OK || !strings.Contains(res.Detail, "no request") {
		t.Errorf("got %+v", res)
	}
	empty := &Summary{}
	th, _ = ParseThreshold("p95<100ms")
	if res := th.Evaluate(empty); res.OK {
		t.Errorf("a run without requests passed p95: %+v", res)
	}
}

// TestThresholdFromJSONSummary: a summary without samples (read back from
// JSON) still evaluates the listed percentiles, and refuses others.
func TestThresholdFromJSONSummary(t *testing.T) {
	s := summaryFixture()
	s.all, s.perEP = nil, nil
	th, _ := ParseThreshold("p95<200ms")
	if res := th.Evaluate(s); !res.OK {
		t.Errorf("p95 from the listed figures: %+v", res)
	}
	th, _ = ParseThreshold("p99.9<200ms")
	if res := th.Evaluate(s); res.OK {
		t.Errorf("an unlisted percentile passed without samples: %+v", res)
	}
}

func TestJudge(t *testing.T) {
	s := summaryFixture()
	th, _ := ParseThreshold("p95<10ms")
	s.Thresholds = []ThresholdResult{th.Evaluate(s)}
	s.Invariants = []InvariantResult{pass(invStock, "fine"), fail(invMoney, "off by 5"), notApplicable(invClaims, "none")}
	s.judge(false, false)
	if s.Passed || len(s.Failures) != 2 {
		t.Fatalf("failures = %q", s.Failures)
	}
	err := s.FailureError()
	if err == nil || !strings.Contains(err.Error(), "p95<10ms") || !strings.Contains(err.Error(), "money conserved") {
		t.Errorf("error = %v", err)
	}
	ok := summaryFixture()
	ok.Iterations.Completed = 5
	ok.Invariants = []InvariantResult{notApplicable(invStock, "none")}
	ok.judge(false, false)
	if !ok.Passed || ok.FailureError() != nil {
		t.Errorf("a clean run failed: %q", ok.Failures)
	}
	ok.judge(true, false)
	if ok.Passed {
		t.Error("an interrupted run passed")
	}
	none := summaryFixture()
	none.Iterations = Iterations{Failed: 4}
	none.judge(false, false)
	if none.Passed {
		t.Error("a run where every journey failed passed")
	}
}
