package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is the outcome of a run: what --out writes as JSON, what the
// table and the HTML page show, what the thresholds are evaluated on.
// Latencies are in milliseconds, rates are fractions.
type Summary struct {
	Scenario  string    `json:"scenario"`
	Target    string    `json:"target"`
	RunID     string    `json:"run_id"`
	Seed      uint64    `json:"seed"`
	StartedAt time.Time `json:"started_at"`
	// Model is closed (VUs) or open (arrival rate).
	Model  string  `json:"model"`
	Stages string  `json:"stages,omitempty"`
	Rate   float64 `json:"rate_per_s,omitempty"`
	MaxVUs int     `json:"max_vus"`
	Think  string  `json:"think"`
	// PlannedS is the profile's length in seconds.
	PlannedS float64 `json:"planned_s"`

	Setup PhaseSummary `json:"setup"`
	Post  PhaseSummary `json:"post_run"`

	// The load phase.
	DurationS float64 `json:"duration_s"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	// Interrupted counts requests cut by the hard stop: neither successes nor errors.
	Interrupted int64             `json:"interrupted"`
	RPS         float64           `json:"rps"`
	Latency     Latency           `json:"latency_ms"`
	Iterations  Iterations        `json:"iterations"`
	Endpoints   []EndpointSummary `json:"endpoints"`
	Checks      []CheckSummary    `json:"checks"`
	Series      []Point           `json:"series"`

	Invariants []InvariantResult `json:"invariants"`
	Thresholds []ThresholdResult `json:"thresholds"`
	Baseline   string            `json:"baseline,omitempty"`
	Notes      []string          `json:"notes,omitempty"`
	Passed     bool              `json:"passed"`
	Failures   []string          `json:"failures,omitempty"`

	// The sorted samples, for percentiles the summary does not list.
	all   []time.Duration
	perEP map[string][]time.Duration
}

// percentile of the whole load phase, in ms.
func (s *Summary) percentile(p float64) float64 {
	if s.all != nil {
		return ms(Percentile(s.all, p))
	}
	return listedPercentile(s.Latency, p)
}

// endpointPercentile of one endpoint, in ms.
func (s *Summary) endpointPercentile(id string, p float64) float64 {
	if sorted, ok := s.perEP[id]; ok {
		return ms(Percentile(sorted, p))
	}
	for _, e := range s.Endpoints {
		if e.ID == id {
			return listedPercentile(e.Latency, p)
		}
	}
	return math.NaN()
}

// listedPercentile reads a percentile off a Latency (a summary read back
// from JSON has no samples); an unlisted one is NaN, which no comparison
// passes.
func listedPercentile(l Latency, p float64) float64 {
	switch p {
	case 50:
		return l.P50
	case 90:
		return l.P90
	case 95:
		return l.P95
	case 99:
		return l.P99
	}
	return math.NaN()
}

// WriteJSON writes the summary to path, atomically (a reader never sees
// half a file).
func (s *Summary) WriteJSON(path string) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(raw, '\n'))
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WriteText writes the report people read at the end of a run: the run's
// shape, a table per endpoint, checks, invariants, thresholds, verdict.
func (s *Summary) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	p := ew.printf
	p("\npos loadtest — scenario %s against %s (run %s, seed %d)\n", s.Scenario, s.Target, s.RunID, s.Seed)
	if s.Model == "open" {
		p("model: open, %.6g journeys/s for %s on up to %d VUs\n", s.Rate, secs(s.PlannedS), s.MaxVUs)
	} else {
		p("model: closed, stages %s (peak %d VUs), think time %s\n", s.Stages, s.MaxVUs, s.Think)
	}
	p("setup: %d requests in %s (%d errors); post-run checks: %d requests in %s (%d errors)\n",
		s.Setup.Requests, secs(s.Setup.DurationS), s.Setup.Errors, s.Post.Requests, secs(s.Post.DurationS), s.Post.Errors)
	p("load:  %s, %d requests, %.1f req/s, %d errors (%.2f%%), %d interrupted by the stop\n",
		secs(s.DurationS), s.Requests, s.RPS, s.Errors, s.ErrorRate*100, s.Interrupted)
	var js []string
	for _, j := range s.Iterations.ByJourney {
		js = append(js, fmt.Sprintf("%s %d (%d failed)", j.Name, j.Completed+j.Failed, j.Failed))
	}
	p("journeys: %s; %.1f/s", strings.Join(js, ", "), s.Iterations.PerSecond)
	if s.Model == "open" {
		p("; %d arrivals dropped (every VU busy)", s.Iterations.Dropped)
	}
	p("\n\n")

	tw := tabwriter.NewWriter(ew, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "endpoint\troute\tcount\treq/s\tp50\tp95\tp99\tmax\terrors\t")
	for _, e := range s.Endpoints {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%s\t%s\t%s\t%s\t%.2f%%\t\n", e.ID, e.Route, e.Count, e.RPS,
			fmtMS(e.Latency.P50), fmtMS(e.Latency.P95), fmtMS(e.Latency.P99), fmtMS(e.Latency.Max), e.ErrorRate*100)
	}
	fmt.Fprintf(tw, "all\t\t%d\t%.1f\t%s\t%s\t%s\t%s\t%.2f%%\t\n", s.Requests, s.RPS,
		fmtMS(s.Latency.P50), fmtMS(s.Latency.P95), fmtMS(s.Latency.P99), fmtMS(s.Latency.Max), s.ErrorRate*100)
	if err := tw.Flush(); err != nil {
		return err
	}
	p("\nstatus codes:\n")
	for _, e := range s.Endpoints {
		p("  %-24s %s\n", e.ID, fmtStatuses(e.Statuses))
		for _, msg := range e.ErrorLog {
			p("  %-24s   e.g. %s\n", "", msg)
		}
	}
	if len(s.Checks) > 0 {
		p("\nchecks:\n")
		for _, c := range s.Checks {
			mark := "ok  "
			if c.Fails > 0 {
				mark = "FAIL"
			}
			p("  %s %s: %d/%d", mark, c.Name, c.Passes, c.Passes+c.Fails)
			if c.Sample != "" {
				p(" (e.g. %s)", c.Sample)
			}
			p("\n")
		}
	}
	p("\ninvariants:\n")
	for _, inv := range s.Invariants {
		mark := map[string]string{InvariantPass: "ok  ", InvariantFail: "FAIL", InvariantNA: "n/a "}[inv.Status]
		p("  %s %s: %s\n", mark, inv.Name, inv.Detail)
	}
	if len(s.Thresholds) > 0 {
		p("\nthresholds:\n")
		for _, t := range s.Thresholds {
			mark, got := "ok  ", t.Shown
			if !t.OK {
				mark = "FAIL"
			}
			if t.Detail != "" {
				got = t.Detail
			}
			p("  %s %s (%s)\n", mark, t.Raw, got)
		}
	}
	for _, n := range append(append([]string(nil), s.Setup.ErrorLog...), s.Post.ErrorLog...) {
		p("\nsetup/post-run error: %s", n)
	}
	for _, n := range s.Notes {
		p("\nnote: %s", n)
	}
	if s.Baseline != "" {
		p("\nfor comparison, %s", s.Baseline)
	}
	if s.Passed {
		p("\n\nPASSED\n")
	} else {
		p("\n\nFAILED:\n")
		for _, f := range s.Failures {
			p("  - %s\n", f)
		}
	}
	return ew.err
}

// fmtStatuses lists status counts, numbers first.
func fmtStatuses(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, aerr := strconv.Atoi(keys[i])
		b, berr := strconv.Atoi(keys[j])
		switch {
		case aerr == nil && berr == nil:
			return a < b
		case aerr == nil:
			return true
		case berr == nil:
			return false
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func secs(s float64) string {
	d := time.Duration(s * float64(time.Second))
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// errWriter keeps the first write error, so the report is written
// without an error check per line.
type errWriter struct {
	w   io.Writer
	err error
}

// Write writes through until the first error, then refuses.
func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, a ...any) { fmt.Fprintf(e, format, a...) }
