package loadtest

import (
	"strings"
	"testing"
	"time"
)

func TestParseStages(t *testing.T) {
	p, err := ParseStages("30s:15, 5m:15,30s:0")
	if err != nil {
		t.Fatal(err)
	}
	want := Profile{{30 * time.Second, 15}, {5 * time.Minute, 15}, {30 * time.Second, 0}}
	if len(p) != len(want) {
		t.Fatalf("got %v", p)
	}
	for i := range want {
		if p[i] != want[i] {
			t.Errorf("stage %d = %+v, want %+v", i, p[i], want[i])
		}
	}
	if p.Total() != 6*time.Minute || p.Peak() != 15 {
		t.Errorf("total %v peak %d", p.Total(), p.Peak())
	}
	if got := p.String(); got != "30s:15,5m0s:15,30s:0" {
		t.Errorf("String() = %q", got)
	}
	for _, bad := range []string{"", "30s", "30s:x", "x:15", "-1s:5", "30s:-1", "10s:0", "0s:5", "3h:5", "10s:5000"} {
		if _, err := ParseStages(bad); err == nil {
			t.Errorf("ParseStages(%q) accepted", bad)
		}
	}
}

// TestVUsAtFollowsK6 pins the ramp to k6's: the count changes when the
// straight line crosses a whole number, rounding toward the stage's start.
func TestVUsAtFollowsK6(t *testing.T) {
	p := mustStages("10s:10,10s:10,10s:0")
	cases := []struct {
		at   time.Duration
		want int
	}{
		{0, 0},
		{999 * time.Millisecond, 0},
		{time.Second, 1},
		{1500 * time.Millisecond, 1},
		{3 * time.Second, 3}, // 0.3*10 is 2.9999… in floats
		{9999 * time.Millisecond, 9},
		{10 * time.Second, 10},
		{15 * time.Second, 10},
		{20 * time.Second, 10},
		{20*time.Second + time.Millisecond, 10}, // ramping down: still 10 until the line crosses 9
		{21 * time.Second, 9},
		{29999 * time.Millisecond, 1},
		{30 * time.Second, 0},
		{time.Hour, 0},
	}
	for _, c := range cases {
		if got := p.VUsAt(c.at); got != c.want {
			t.Errorf("VUsAt(%v) = %d, want %d", c.at, got, c.want)
		}
	}
	// A zero-duration stage jumps; ramps between non-zero targets work.
	q := mustStages("0s:5,10s:15")
	if got := q.VUsAt(0); got != 5 {
		t.Errorf("jump: VUsAt(0) = %d, want 5", got)
	}
	if got := q.VUsAt(5 * time.Second); got != 10 {
		t.Errorf("5→15 at half: %d, want 10", got)
	}
}

// TestVUsAtIsMonotonicWithinStages checks every millisecond of a ramp:
// never outside the stage's bounds, never moving against its direction.
func TestVUsAtIsMonotonicWithinStages(t *testing.T) {
	p := mustStages("7s:13,3s:2,0s:20,5s:20")
	prev := 0
	var start time.Duration
	from := 0
	for _, s := range p {
		for at := start; at < start+s.Duration; at += time.Millisecond {
			v := p.VUsAt(at)
			lo, hi := min(from, s.Target), max(from, s.Target)
			if v < lo || v > hi {
				t.Fatalf("VUsAt(%v) = %d outside [%d, %d]", at, v, lo, hi)
			}
			if at > start && ((s.Target >= from && v < prev) || (s.Target < from && v > prev)) {
				t.Fatalf("VUsAt(%v) = %d moves against the ramp (previous %d)", at, v, prev)
			}
			prev = v
		}
		start += s.Duration
		from = s.Target
	}
}

func TestScale(t *testing.T) {
	p := mustStages("1m:100,5m:100,1m:0")
	q := p.Scale(20*time.Second, 0)
	if q.Total() != 20*time.Second || q.Peak() != 100 {
		t.Fatalf("scaled to %v: total %v peak %d", q, q.Total(), q.Peak())
	}
	if q[1].Duration <= q[0].Duration*4 {
		t.Errorf("the shape was not kept: %v", q)
	}
	for _, s := range q {
		if s.Duration%time.Millisecond != 0 {
			t.Errorf("stage %v is not whole milliseconds", s.Duration)
		}
	}
	r := mustStages("5s:3,20s:15,5s:0").Scale(0, 5)
	if r.Peak() != 5 || r[0].Target != 1 || r[2].Target != 0 || r.Total() != 30*time.Second {
		t.Errorf("scaled to peak 5: %v", r)
	}
	// Neither scale: unchanged, and the original is not modified.
	s := p.Scale(0, 0)
	s[0].Target = 1
	if p[0].Target != 100 {
		t.Error("Scale modified its receiver")
	}
}

func TestParseThink(t *testing.T) {
	cases := map[string]ThinkRange{
		"50ms-1s": {50 * time.Millisecond, time.Second},
		"200ms":   {200 * time.Millisecond, 200 * time.Millisecond},
		"0":       {},
		"none":    {},
	}
	for in, want := range cases {
		got, err := ParseThink(in)
		if err != nil || got != want {
			t.Errorf("ParseThink(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"1s-50ms", "fast", "2m", "-1s"} {
		if _, err := ParseThink(bad); err == nil {
			t.Errorf("ParseThink(%q) accepted", bad)
		}
	}
	if s := (ThinkRange{50 * time.Millisecond, time.Second}).String(); s != "50ms-1s" {
		t.Errorf("String() = %q", s)
	}
}

func TestParseRate(t *testing.T) {
	cases := map[string]float64{"50": 50, "50/s": 50, "600/m": 10, "3600/h": 1, "5/100ms": 50, "0.5/s": 0.5}
	for in, want := range cases {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-5/s", "5/fortnight", "1000000/s", "x/s"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestPacerForKeepsTheRate(t *testing.T) {
	for _, rate := range []float64{1, 50, 12.5, 0.5} {
		p := pacerFor(rate)
		// Count the hits the pacer lets through in 10 simulated seconds.
		var hits uint64
		for el := time.Duration(0); el < 10*time.Second; {
			wait, stop := p.Pace(el, hits)
			if stop {
				t.Fatalf("rate %v: the pacer stopped", rate)
			}
			if wait > 0 {
				el += wait
				continue
			}
			hits++
		}
		// The first arrival comes one interval after the start.
		if want := uint64(rate * 10); hits < want-1 || hits > want {
			t.Errorf("rate %v: %d hits in 10s, want %d", rate, hits, want)
		}
	}
}

func TestPlanShapesTheRun(t *testing.T) {
	base := Config{Target: "http://127.0.0.1:8080", APIKey: "k", Scenario: "catalog-100vu"}
	r, err := plan(withShort(base))
	if err != nil {
		t.Fatal(err)
	}
	if r.profile.Total() != 30*time.Second || r.maxVUs != 100 || r.openModel {
		t.Errorf("short catalog-100vu: %v, %d VUs", r.profile, r.maxVUs)
	}
	c := withShort(base)
	c.Duration = 8 * time.Second
	if r, _ = plan(c); r.profile.Total() != 8*time.Second {
		t.Errorf("--duration 8s: %v", r.profile)
	}
	c = base
	c.Rate, c.Duration = 40, 10*time.Second
	if r, err = plan(c); err != nil || !r.openModel || r.duration != 10*time.Second || r.maxVUs != 100 {
		t.Errorf("open model: %+v %v", r, err)
	}
	bad := []func(c *Config){
		func(c *Config) { c.Scenario = "nope" },
		func(c *Config) { c.APIKey = "" },
		func(c *Config) { c.Target = "http://example.com:8080" },
		func(c *Config) { c.Target = "127.0.0.1:8080" },
		func(c *Config) { c.Target = "http://127.0.0.1:8080/api/v1" },
		func(c *Config) { c.Stages = mustStages("10s:5"); c.VUs = 3 },
		func(c *Config) { c.Stages = mustStages("10s:5"); c.Rate = 3 },
		func(c *Config) { c.VUs = MaxVUs + 1 },
		func(c *Config) {
			c.Thresholds = []Threshold{{Raw: "dropped==0", Metric: "dropped", Op: "==", Value: 0}}
		},
	}
	for i, mutate := range bad {
		c := base
		mutate(&c)
		if _, err := plan(c); err == nil {
			t.Errorf("bad config %d accepted", i)
		}
	}
	c = base
	c.Target, c.AllowRemote = "http://example.com:8080", true
	if _, err := plan(c); err != nil {
		t.Errorf("--allow-remote refused: %v", err)
	}
	for _, ok := range []string{"http://localhost:1", "http://[::1]:8080", "https://127.0.0.2:9"} {
		if err := checkTarget(ok, false); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	if err := checkTarget("http://10.0.0.1:8080", false); err == nil || !strings.Contains(err.Error(), "--allow-remote") {
		t.Errorf("a remote target was not refused with the flag's name: %v", err)
	}
}

func withShort(c Config) Config { c.Short = true; return c }
