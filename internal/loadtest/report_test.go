package loadtest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// reportFixture is a finished summary with a gap second, an error, every
// kind of invariant and a hostile string where user data can appear.
func reportFixture() *Summary {
	s := summaryFixture()
	s.Scenario, s.Target, s.RunID, s.Model, s.Stages, s.MaxVUs, s.Think = "mixed", "http://127.0.0.1:8080", "abc123", "closed", "1s:2,2s:2", 2, "none"
	s.DurationS, s.PlannedS = 3, 3
	s.Series = []Point{
		{T: 0, VUs: 2, Requests: 40, P50: 2, P95: 5, P99: 9, Max: 12},
		{T: 1, VUs: 2}, // no request: a gap, not a zero
		{T: 2, VUs: 2, Requests: 60, Errors: 2, P50: 3, P95: 6, P99: 10, Max: 100},
	}
	s.Endpoints[0].Statuses = map[string]int64{"201": 9, "500": 1}
	s.Endpoints[0].ErrorLog = []string{"500: <script>alert(1)</script>"}
	s.Endpoints[0].Route = "POST /api/v1/checkout"
	s.Endpoints[1].Statuses = map[string]int64{"200": 90}
	s.Invariants = []InvariantResult{pass(invStock, "80 rows consistent"), fail(invMoney, "off by <b>5</b>"), notApplicable(invClaims, "none")}
	th, _ := ParseThreshold("p95<200ms")
	s.Thresholds = []ThresholdResult{th.Evaluate(s)}
	s.Baseline = "original: 91.3 req/s"
	s.judge(false, false)
	return s
}

func TestWriteJSON(t *testing.T) {
	s := reportFixture()
	path := filepath.Join(t.TempDir(), "run.json")
	if err := s.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Scenario  string  `json:"scenario"`
		Requests  int64   `json:"requests"`
		ErrorRate float64 `json:"error_rate"`
		RPS       float64 `json:"rps"`
		Latency   struct {
			P95 float64 `json:"p95"`
			Max float64 `json:"max"`
		} `json:"latency_ms"`
		Endpoints []struct {
			ID       string           `json:"id"`
			Route    string           `json:"route"`
			Statuses map[string]int64 `json:"statuses"`
		} `json:"endpoints"`
		Series     []map[string]float64 `json:"series"`
		Invariants []struct{ Name, Status, Detail string }
		Thresholds []struct {
			Expr   string  `json:"expr"`
			OK     bool    `json:"ok"`
			Actual float64 `json:"actual"`
		} `json:"thresholds"`
		Passed   bool     `json:"passed"`
		Failures []string `json:"failures"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if got.Scenario != "mixed" || got.Requests != 100 || got.ErrorRate != 0.02 || got.RPS != 50 || got.Latency.P95 != 95.05 || got.Latency.Max != 100 {
		t.Errorf("figures = %+v", got)
	}
	if len(got.Endpoints) != 2 || got.Endpoints[0].ID != "checkout" || got.Endpoints[0].Statuses["500"] != 1 {
		t.Errorf("endpoints = %+v", got.Endpoints)
	}
	if len(got.Series) != 3 || got.Series[2]["p95_ms"] != 6 || got.Series[2]["errors"] != 2 {
		t.Errorf("series = %+v", got.Series)
	}
	if len(got.Invariants) != 3 || got.Invariants[1].Status != "fail" || got.Invariants[2].Status != "not applicable" {
		t.Errorf("invariants = %+v", got.Invariants)
	}
	if len(got.Thresholds) != 1 || got.Thresholds[0].Expr != "p95<200ms" || !got.Thresholds[0].OK || got.Thresholds[0].Actual != 95.05 {
		t.Errorf("thresholds = %+v", got.Thresholds)
	}
	if got.Passed || len(got.Failures) != 1 {
		t.Errorf("verdict = %v %q", got.Passed, got.Failures)
	}
	if strings.Contains(string(raw), `"all"`) || strings.Contains(string(raw), "perEP") {
		t.Error("the raw samples leaked into the JSON")
	}
}

func TestHTMLIsSelfContained(t *testing.T) {
	page, err := reportFixture().HTML()
	if err != nil {
		t.Fatal(err)
	}
	h := string(page)
	if n := strings.Count(h, "<svg"); n != 2 {
		t.Errorf("%d charts, want 2 (latency, throughput)", n)
	}
	for _, want := range []string{"pos loadtest — mixed", "FAILED", "POST /api/v1/checkout", "money conserved", "p95&lt;200ms",
		"original: 91.3 req/s", "requests/s", "VUs (right axis)", `"p95_ms":6`} {
		if !strings.Contains(h, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Nothing is fetched: no external script, style, image or font.
	for _, re := range []string{`(?i)<script[^>]+src=`, `(?i)<link`, `(?i)<img`, `(?i)@import`, `(?i)url\(`, `(?i)(src|href)="https?:`} {
		if regexp.MustCompile(re).MatchString(h) {
			t.Errorf("the page loads something from outside (%s)", re)
		}
	}
	// User-controlled text is escaped.
	if strings.Contains(h, "<script>alert(1)") || strings.Contains(h, "<b>5</b>") {
		t.Error("an error message or invariant detail was not escaped")
	}
}

// TestChartLeavesGapsForEmptySeconds: a second without requests breaks
// the latency lines (a new M in the path) instead of plotting 0 ms.
func TestChartLeavesGapsForEmptySeconds(t *testing.T) {
	svg := string(svgChart("lat", "ms", "", 3, latencyLines(reportFixture().Series)))
	paths := regexp.MustCompile(`<path d="([^"]*)"`).FindAllStringSubmatch(svg, -1)
	if len(paths) != 3 {
		t.Fatalf("%d paths", len(paths))
	}
	for _, p := range paths {
		if strings.Count(p[1], "M") != 2 || strings.Contains(p[1], "L") {
			t.Errorf("path %q does not break at the empty second", p[1])
		}
	}
	for _, c := range []struct{ v, top, step float64 }{{0, 1, 1}, {7.3, 8, 2}, {130, 150, 50}, {230, 300, 100}, {6706, 8000, 2000}, {100, 100, 50}} {
		if top, step := axis(c.v); top != c.top || step != c.step {
			t.Errorf("axis(%v) = %v step %v, want %v step %v", c.v, top, step, c.top, c.step)
		}
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := reportFixture().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"scenario mixed", "checkout", "POST /api/v1/checkout", "201×9 500×1", "FAIL money conserved",
		"ok   stock conserved", "n/a  claims", "ok   p95<200ms (95.05ms)", "FAILED:", "for comparison, original"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	// The table has one row per endpoint and the total.
	var rows int
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "%") && (strings.Contains(l, "checkout") || strings.Contains(l, "list-products") || strings.HasPrefix(strings.TrimSpace(l), "all")) {
			rows++
		}
	}
	if rows != 3 {
		t.Errorf("%d table rows, want 3:\n%s", rows, out)
	}
	if fmtStatuses(map[string]int64{"timeout": 1, "404": 2, "200": 3}) != "200×3 404×2 timeout×1" {
		t.Error("statuses are not listed numbers first")
	}
}
