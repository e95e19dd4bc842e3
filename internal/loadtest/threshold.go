package loadtest

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Threshold is a pass/fail criterion on the run's figures, as in k6:
// `p95<200ms`, `errors<1%`, `rps>100`, optionally for one endpoint:
// `checkout:p95<300ms` (by operation id) or `GET /api/v1/products:p99<50ms`.
//
// Metrics: p<N> (any percentile, e.g. p50, p99.9), min, avg (or mean),
// med (= p50) and max are latencies, given with a unit (us, ms, s; a bare
// number is milliseconds, as in k6); errors and checks are failure rates,
// given as a percentage (1%) or a fraction (0.01); rps is requests per
// second; requests is a count; dropped counts the open model's dropped
// arrivals. Operators: <, <=, >, >=, ==, !=.
type Threshold struct {
	// Raw is the expression as given.
	Raw string `json:"expr"`
	// Endpoint is the operation id the threshold is limited to, empty for
	// the whole run.
	Endpoint string `json:"endpoint,omitempty"`
	// Metric is p95, max, errors, rps…
	Metric string `json:"metric"`
	// Op is the comparison.
	Op string `json:"op"`
	// Value is the bound, normalised: milliseconds for latencies, a
	// fraction for rates, a plain number otherwise.
	Value float64 `json:"value"`
}

var thresholdRE = regexp.MustCompile(`^\s*([A-Za-z][A-Za-z0-9.]*)\s*(<=|>=|==|!=|<|>)\s*([0-9.]+)\s*([A-Za-zµ%/]*)\s*$`)

// metric kinds
const (
	kindLatency = iota
	kindRate
	kindNumber
)

func metricKind(m string) (int, bool) {
	switch m {
	case "min", "max", "avg", "mean", "med":
		return kindLatency, true
	case "errors", "checks":
		return kindRate, true
	case "rps", "requests", "dropped":
		return kindNumber, true
	}
	if p, ok := percentileOf(m); ok && p > 0 && p < 100 {
		return kindLatency, true
	}
	return 0, false
}

// percentileOf reads "p95" or "p99.9" as 95 or 99.9.
func percentileOf(m string) (float64, bool) {
	if !strings.HasPrefix(m, "p") {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1:], 64)
	return v, err == nil
}

// ParseThreshold reads one threshold expression.
func ParseThreshold(s string) (Threshold, error) {
	t := Threshold{Raw: strings.TrimSpace(s)}
	expr := t.Raw
	// The endpoint selector ends at the last ':' (route templates hold
	// none; the expression after it holds none either).
	if i := strings.LastIndex(expr, ":"); i >= 0 {
		sel := strings.TrimSpace(expr[:i])
		o, ok := lookupOp(sel)
		if !ok {
			return t, fmt.Errorf("threshold %q: unknown endpoint %q (use an operation id such as list-products or checkout, or \"GET /api/v1/products\")", s, sel)
		}
		t.Endpoint, expr = o.ID, expr[i+1:]
	}
	m := thresholdRE.FindStringSubmatch(expr)
	if m == nil {
		return t, fmt.Errorf("threshold %q: want [endpoint:]metric<op>value, e.g. p95<200ms or errors<1%%", s)
	}
	t.Metric, t.Op = strings.ToLower(m[1]), m[2]
	kind, ok := metricKind(t.Metric)
	if !ok {
		return t, fmt.Errorf("threshold %q: unknown metric %q (p50, p95, p99, p99.9, min, avg, med, max, errors, checks, rps, requests, dropped)", s, m[1])
	}
	if t.Endpoint != "" && (t.Metric == "checks" || t.Metric == "dropped") {
		return t, fmt.Errorf("threshold %q: %s is a figure of the whole run, not of one endpoint", s, t.Metric)
	}
	v, err := strconv.ParseFloat(m[3], 64)
	if err != nil || math.IsInf(v, 0) {
		return t, fmt.Errorf("threshold %q: bad number %q", s, m[3])
	}
	unit := m[4]
	switch kind {
	case kindLatency:
		switch unit {
		case "", "ms":
		case "us", "µs":
			v /= 1e3
		case "s":
			v *= 1e3
		case "m":
			v *= 60e3
		default:
			return t, fmt.Errorf("threshold %q: %s is a latency: use us, ms or s, not %q", s, t.Metric, unit)
		}
	case kindRate:
		switch {
		case unit == "%":
			v /= 100
		case unit != "":
			return t, fmt.Errorf("threshold %q: %s is a rate: give a percentage (1%%) or a fraction (0.01), not %q", s, t.Metric, unit)
		case v > 1:
			return t, fmt.Errorf("threshold %q: %s is a rate: %v is more than 100%%; did you mean %v%%?", s, t.Metric, v, v)
		}
	case kindNumber:
		if unit != "" && !(t.Metric == "rps" && unit == "/s") {
			return t, fmt.Errorf("threshold %q: %s takes a plain number, not %q", s, t.Metric, unit)
		}
	}
	t.Value = v
	return t, nil
}

// ThresholdResult is a threshold evaluated against a run.
type ThresholdResult struct {
	Threshold
	// Actual is the run's figure, in the threshold's normalised unit.
	Actual float64 `json:"actual"`
	// Shown is Actual as a person reads it (7.8ms, 0.12%).
	Shown string `json:"shown"`
	// OK tells whether the threshold holds.
	OK bool `json:"ok"`
	// Detail explains a threshold that could not be evaluated.
	Detail string `json:"detail,omitempty"`
}

// Evaluate computes the threshold on a summary. A per-endpoint threshold
// whose endpoint made no request fails: a misspelt or unexercised
// endpoint must not pass silently.
func (t Threshold) Evaluate(s *Summary) ThresholdResult {
	res := ThresholdResult{Threshold: t}
	lat, errRate, rps, count := s.Latency, s.ErrorRate, s.RPS, s.Requests
	if t.Endpoint != "" {
		var ep *EndpointSummary
		for i := range s.Endpoints {
			if s.Endpoints[i].ID == t.Endpoint {
				ep = &s.Endpoints[i]
			}
		}
		if ep == nil || ep.Count == 0 {
			res.Detail = fmt.Sprintf("endpoint %s made no request in this run", t.Endpoint)
			return res
		}
		lat, errRate, rps, count = ep.Latency, ep.ErrorRate, ep.RPS, ep.Count
	}
	if count == 0 && t.Metric != "dropped" && t.Metric != "requests" {
		res.Detail = "the run made no request"
		return res
	}
	kind, _ := metricKind(t.Metric)
	switch t.Metric {
	case "min":
		res.Actual = lat.Min
	case "max":
		res.Actual = lat.Max
	case "avg", "mean":
		res.Actual = lat.Mean
	case "med":
		res.Actual = lat.P50
	case "errors":
		res.Actual = errRate
	case "checks":
		var pass, fail int64
		for _, c := range s.Checks {
			pass, fail = pass+c.Passes, fail+c.Fails
		}
		if pass+fail > 0 {
			res.Actual = float64(fail) / float64(pass+fail)
		}
	case "rps":
		res.Actual = rps
	case "requests":
		res.Actual = float64(count)
	case "dropped":
		res.Actual = float64(s.Iterations.Dropped)
	default:
		p, _ := percentileOf(t.Metric)
		if t.Endpoint == "" {
			res.Actual = s.percentile(p)
		} else {
			res.Actual = s.endpointPercentile(t.Endpoint, p)
		}
	}
	res.OK = compare(res.Actual, t.Op, t.Value)
	switch kind {
	case kindLatency:
		// Full precision: a p95 of 95.05ms against <95ms must not read
		// as 95.0ms.
		res.Shown = strconv.FormatFloat(round3(res.Actual), 'f', -1, 64) + "ms"
	case kindRate:
		res.Shown = fmt.Sprintf("%.2f%%", res.Actual*100)
	default:
		res.Shown = strconv.FormatFloat(round3(res.Actual), 'f', -1, 64)
	}
	return res
}

func compare(a float64, op string, b float64) bool {
	switch op {
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	case ">=":
		return a >= b
	case "==":
		return a == b
	case "!=":
		return a != b
	}
	return false
}

// fmtMS shows milliseconds the way the table does.
func fmtMS(v float64) string {
	d := time.Duration(v * float64(time.Millisecond))
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0fms", v)
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fms", v)
}
