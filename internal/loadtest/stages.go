package loadtest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Limits that keep every run bounded whatever the flags say: a typo such
// as --vus 100000 or --stages 5h:15 is refused rather than obeyed.
const (
	// MaxVUs bounds the virtual users of a run (and the open model's
	// concurrency).
	MaxVUs = 2000
	// MaxRunDuration bounds the load phase of a run.
	MaxRunDuration = 2 * time.Hour
	// MaxRate bounds the open model's arrival rate, in iterations a second.
	MaxRate = 20000
)

// Stage is one step of a closed-model profile, as in k6's `stages`: over
// Duration the number of virtual users moves linearly from the previous
// stage's Target (0 before the first stage) to this one's. A zero
// Duration jumps to Target at once.
type Stage struct {
	Duration time.Duration `json:"duration"`
	Target   int           `json:"target"`
}

// Profile is a sequence of stages: the shape of a closed-model run.
type Profile []Stage

// ParseStages reads "30s:15,5m:15,30s:0": comma-separated
// duration:target pairs.
func ParseStages(s string) (Profile, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("stages: empty (want e.g. 30s:15,5m:15,30s:0)")
	}
	var p Profile
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		d, t, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("stages: %q is not duration:target (e.g. 30s:15)", part)
		}
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil || dur < 0 {
			return nil, fmt.Errorf("stages: %q: bad duration %q", part, d)
		}
		target, err := strconv.Atoi(strings.TrimSpace(t))
		if err != nil || target < 0 {
			return nil, fmt.Errorf("stages: %q: target %q is not a whole number ≥ 0", part, t)
		}
		p = append(p, Stage{Duration: dur, Target: target})
	}
	return p, p.Validate()
}

// Validate checks that the profile is bounded and does something.
func (p Profile) Validate() error {
	if len(p) == 0 {
		return fmt.Errorf("stages: none")
	}
	if p.Total() <= 0 {
		return fmt.Errorf("stages: total duration is zero")
	}
	if p.Total() > MaxRunDuration {
		return fmt.Errorf("stages: total %v exceeds the %v limit", p.Total(), MaxRunDuration)
	}
	if p.Peak() == 0 {
		return fmt.Errorf("stages: every target is 0, no virtual user would run")
	}
	if p.Peak() > MaxVUs {
		return fmt.Errorf("stages: peak of %d VUs exceeds the %d limit", p.Peak(), MaxVUs)
	}
	return nil
}

// String formats the profile the way ParseStages reads it.
func (p Profile) String() string {
	parts := make([]string, len(p))
	for i, s := range p {
		parts[i] = fmt.Sprintf("%s:%d", s.Duration, s.Target)
	}
	return strings.Join(parts, ",")
}

// Total is the duration of the whole profile.
func (p Profile) Total() time.Duration {
	var t time.Duration
	for _, s := range p {
		t += s.Duration
	}
	return t
}

// Peak is the largest target of the profile: how many VUs may run at once.
func (p Profile) Peak() int {
	peak := 0
	for _, s := range p {
		peak = max(peak, s.Target)
	}
	return peak
}

// VUsAt is the number of virtual users the profile asks for at elapsed
// time t. Between two targets the count follows the straight line and
// changes when the line crosses a whole number, as k6 does: ramping up
// from 0 to 10 over 10 s gives the first VU at 1 s, ramping down from 10
// to 0 stops the first VU at 1 s. So the count is the line rounded toward
// the stage's starting value. Past the end it is the last target.
func (p Profile) VUsAt(t time.Duration) int {
	from := 0
	var start time.Duration
	for _, s := range p {
		end := start + s.Duration
		if t < end {
			frac := float64(t-start) / float64(s.Duration)
			v := float64(from) + float64(s.Target-from)*frac
			// A tiny epsilon absorbs float error at exact crossings
			// (e.g. 0.3*10 = 2.9999999999999996).
			if s.Target >= from {
				return int(math.Floor(v + 1e-9))
			}
			return int(math.Ceil(v - 1e-9))
		}
		from, start = s.Target, end
	}
	return from
}

// Scale reshapes the profile: durations are stretched so the total is
// duration (when > 0) and targets so the peak is peak (when > 0), which is
// how --duration and --vus adapt a scenario's default shape without
// losing its ramps. A non-zero target never scales to 0.
func (p Profile) Scale(duration time.Duration, peak int) Profile {
	out := make(Profile, len(p))
	copy(out, p)
	if duration > 0 && p.Total() > 0 {
		f := float64(duration) / float64(p.Total())
		var sum time.Duration
		for i := range out {
			// Whole milliseconds: the profile prints as people write it.
			out[i].Duration = time.Duration(math.Round(float64(p[i].Duration)*f/1e6)) * time.Millisecond
			sum += out[i].Duration
		}
		// Rounding must not change the total the user asked for.
		for i := len(out) - 1; i >= 0 && sum != duration; i-- {
			if out[i].Duration > 0 {
				out[i].Duration += duration - sum
				sum = duration
			}
		}
	}
	if peak > 0 && p.Peak() > 0 {
		f := float64(peak) / float64(p.Peak())
		for i := range out {
			if p[i].Target == 0 {
				continue
			}
			out[i].Target = max(1, int(math.Round(float64(p[i].Target)*f)))
		}
	}
	return out
}

// ThinkRange is the pause a virtual user takes between actions: uniform
// between Min and Max. The zero value means no pause.
type ThinkRange struct {
	Min, Max time.Duration
}

// ParseThink reads "50ms-1s", a single duration ("200ms"), or "0"/"none"
// for no think time.
func ParseThink(s string) (ThinkRange, error) {
	s = strings.TrimSpace(s)
	if s == "0" || strings.EqualFold(s, "none") || strings.EqualFold(s, "off") {
		return ThinkRange{}, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	minD, err := time.ParseDuration(strings.TrimSpace(lo))
	if err != nil || minD < 0 {
		return ThinkRange{}, fmt.Errorf("think: %q is not a duration or a range such as 50ms-1s", s)
	}
	maxD := minD
	if isRange {
		if maxD, err = time.ParseDuration(strings.TrimSpace(hi)); err != nil || maxD < minD {
			return ThinkRange{}, fmt.Errorf("think: %q: the upper bound must be a duration ≥ the lower one", s)
		}
	}
	if maxD > time.Minute {
		return ThinkRange{}, fmt.Errorf("think: %q: at most 1m", s)
	}
	return ThinkRange{Min: minD, Max: maxD}, nil
}

// String formats the range the way ParseThink reads it.
func (r ThinkRange) String() string {
	switch {
	case r.Max == 0:
		return "none"
	case r.Min == r.Max:
		return r.Min.String()
	}
	return r.Min.String() + "-" + r.Max.String()
}

// ParseRate reads an arrival rate: "50", "50/s", "3000/m" or "10/100ms",
// returned in iterations per second.
func ParseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	num, per, hasPer := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return 0, fmt.Errorf("rate: %q is not a positive number of iterations per unit (e.g. 50/s)", s)
	}
	unit := time.Second
	if hasPer {
		per = strings.TrimSpace(per)
		switch per {
		case "s", "sec":
		case "m", "min":
			unit = time.Minute
		case "h":
			unit = time.Hour
		default:
			if unit, err = time.ParseDuration(per); err != nil || unit <= 0 {
				return 0, fmt.Errorf("rate: %q: unknown unit %q (s, m, h or a duration such as 100ms)", s, per)
			}
		}
	}
	r := n / unit.Seconds()
	if r > MaxRate {
		return 0, fmt.Errorf("rate: %q is %.0f/s, above the %d/s limit", s, r, MaxRate)
	}
	return r, nil
}
