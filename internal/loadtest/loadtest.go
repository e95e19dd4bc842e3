// Package loadtest is `pos loadtest`, the platform's own load generator
// (k6's licence rules it out): it drives a running pos — the monolith or
// the fleet behind its gateway — through the public REST API only, with
// realistic journeys (catalog browsing, web checkouts through the saga,
// cashier shifts at the registers, claim lifecycles), measures every
// request, and afterwards checks through the same API that the business
// invariants held under load: stock conserved, money conserved, every
// saga final.
//
// # Models
//
// The closed model runs virtual users (VUs) following a profile of
// stages, as k6's `stages`: the VU count ramps linearly from one target
// to the next, each VU runs journeys back to back with think time in
// between. The open model (--rate) starts journeys at a fixed arrival
// rate, paced by vegeta's constant pacer, on a bounded pool of VUs;
// arrivals that find every VU busy are dropped and counted, never queued,
// so a slow target shows as latency and drops rather than being hidden by
// the generator (coordinated omission).
//
// # Phases
//
// A run has three phases, each with its own figures: setup (preflight,
// probes that fail the run clearly when the target lacks a context the
// scenario needs, seeding through the API with the admin key), load (what
// the report and the thresholds are about), and post-run checks (sagas
// settle, invariants, keys revoked).
package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Config is one run's settings, as `pos loadtest` flags give them.
type Config struct {
	// Target is the base URL of the pos to load (scheme, host, port).
	Target string
	// Scenario is the workload's name (Scenarios lists them).
	Scenario string
	// APIKey is an admin key of the target, for seeding and the checks.
	APIKey string
	// Short selects the scenario's short profile (CI-sized).
	Short bool
	// Stages replaces the scenario's profile; VUs and Duration must then
	// be zero.
	Stages Profile
	// VUs scales the scenario's profile to this peak; in the open model
	// it is the pool of VUs the arrivals run on.
	VUs int
	// Duration scales the scenario's profile to this length; in the open
	// model it is how long arrivals come.
	Duration time.Duration
	// Rate selects the open model: journeys started per second.
	Rate float64
	// Think replaces every think time of the scenario; a zero range turns
	// think time off. Nil keeps the scenario's.
	Think *ThinkRange
	// Thresholds are the pass/fail criteria.
	Thresholds []Threshold
	// Timeout bounds each request (default 30 s).
	Timeout time.Duration
	// GracefulStop is how long journeys in flight at the end of the
	// profile get to finish before the hard stop (default 30 s, 10 s
	// with Short).
	GracefulStop time.Duration
	// SettleTimeout bounds the wait for sagas and read models to settle
	// after the load (default 60 s, 20 s with Short).
	SettleTimeout time.Duration
	// AllowRemote lets Target be something else than this machine. Off by
	// default, so a mistyped URL never load-tests production.
	AllowRemote bool
	// Seed makes the journeys' random choices reproducible; 0 picks one.
	Seed uint64
	// Progress receives the live progress line every second; nil for
	// none. ProgressInPlace rewrites one line (a terminal) instead of
	// printing one a second (a log).
	Progress        io.Writer
	ProgressInPlace bool
}

// run is the state of one run.
type run struct {
	cfg           Config
	sc            *Scenario
	runID         string
	seed          uint64
	profile       Profile // closed model
	openModel     bool
	duration      time.Duration // open model
	maxVUs        int
	thinkOverride *ThinkRange

	client    *client
	setupRec  *Recorder
	load      *Recorder
	post      *Recorder
	loadStart time.Time

	fx        *fixtures
	led       *ledger
	registers *registerPool

	active           atomic.Int64
	dropped          atomic.Int64
	gracefulTimedOut atomic.Bool
	counts           journeyCounts
}

// plan validates the config and works out the run's shape.
func plan(cfg Config) (*run, error) {
	sc, err := lookupScenario(cfg.Scenario)
	if err != nil {
		return nil, err
	}
	if err := checkTarget(cfg.Target, cfg.AllowRemote); err != nil {
		return nil, err
	}
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("an admin API key is needed (--api-key or POS_LOADTEST_API_KEY): the scenario seeds through the API and checks invariants with it")
	}
	if cfg.VUs < 0 || cfg.VUs > MaxVUs {
		return nil, fmt.Errorf("--vus %d: between 1 and %d", cfg.VUs, MaxVUs)
	}
	if cfg.Duration < 0 || cfg.Duration > MaxRunDuration {
		return nil, fmt.Errorf("--duration %v: at most %v", cfg.Duration, MaxRunDuration)
	}
	r := &run{cfg: cfg, sc: sc, thinkOverride: cfg.Think, led: newLedger(), fx: &fixtures{}}
	base := sc.Full
	if cfg.Short {
		base = sc.Short
	}
	switch {
	case cfg.Rate > 0:
		if len(cfg.Stages) > 0 {
			return nil, fmt.Errorf("--stages shape VUs (closed model) and --rate sets arrivals (open model): give one")
		}
		if cfg.Rate > MaxRate {
			return nil, fmt.Errorf("--rate %v/s: at most %d/s", cfg.Rate, MaxRate)
		}
		r.openModel = true
		r.duration = cmpOr(cfg.Duration, base.Total())
		r.maxVUs = cmpOr(cfg.VUs, max(base.Peak(), int(cfg.Rate)))
	case len(cfg.Stages) > 0:
		if cfg.VUs != 0 || cfg.Duration != 0 {
			return nil, fmt.Errorf("--stages gives the whole profile: leave --vus and --duration out")
		}
		if err := cfg.Stages.Validate(); err != nil {
			return nil, err
		}
		r.profile = cfg.Stages
	default:
		r.profile = base.Scale(cfg.Duration, cfg.VUs)
		if err := r.profile.Validate(); err != nil {
			return nil, err
		}
	}
	if !r.openModel {
		r.maxVUs = r.profile.Peak()
	}
	for _, t := range cfg.Thresholds {
		if t.Metric == "dropped" && !r.openModel {
			return nil, fmt.Errorf("threshold %q: dropped arrivals exist only in the open model (--rate)", t.Raw)
		}
	}
	if r.cfg.Timeout <= 0 {
		r.cfg.Timeout = 30 * time.Second
	}
	if r.cfg.GracefulStop <= 0 {
		r.cfg.GracefulStop = 30 * time.Second
		if cfg.Short {
			r.cfg.GracefulStop = 10 * time.Second
		}
	}
	if r.cfg.SettleTimeout <= 0 {
		r.cfg.SettleTimeout = 60 * time.Second
		if cfg.Short {
			r.cfg.SettleTimeout = 20 * time.Second
		}
	}
	r.seed = cfg.Seed
	if r.seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		r.seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	r.runID = newRunID()
	return r, nil
}

func cmpOr[T comparable](v, fallback T) T {
	var zero T
	if v == zero {
		return fallback
	}
	return v
}

// newRunID names the run in everything it makes: time-ordered, short
// enough for every id pattern of the API.
func newRunID() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x%04x", time.Now().Unix()&0xffffff, binary.LittleEndian.Uint16(b[:]))
}

// checkTarget refuses a target that is not an http(s) URL of this
// machine, unless remote targets are allowed.
func checkTarget(target string, allowRemote bool) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--target %q: want a URL such as http://127.0.0.1:8080", target)
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("--target %q: give the server's base URL, without a path (routes live under %s)", target, apiPrefix)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--target %q is not this machine: a load test against another host needs --allow-remote", target)
}

// Run runs a load test and returns its summary. The error is for a run
// that could not be made (bad config, unreachable target, a context the
// scenario needs is not served, seeding failed); a run that was made but
// crossed a threshold or broke an invariant answers a summary with Passed
// false and the reasons in Failures.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	r, err := plan(cfg)
	if err != nil {
		return nil, err
	}
	r.client = newClient(cfg.Target, r.maxVUs, r.cfg.Timeout)
	defer r.client.close()
	started := time.Now()
	r.setupRec = NewRecorder(started)

	// Setup: everything the scenario needs, through the API.
	r.say("pos loadtest: scenario %s against %s (run %s): checking the target and seeding through the API…", r.sc.Name, cfg.Target, r.runID)
	if err := r.preflight(ctx); err != nil {
		return nil, err
	}
	if err := r.checkServed(ctx); err != nil {
		return nil, err
	}
	// Keys made before a failure are revoked whatever happens next; a run
	// that gets to its checks revokes them there and reports failures.
	revoked := false
	defer func() {
		if !revoked {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			r.revokeKeys(rctx, r.setupRec)
		}
	}()
	if err := r.seedAll(ctx); err != nil {
		return nil, fmt.Errorf("seeding scenario %s: %w", r.sc.Name, err)
	}
	if r.sc.needs&needPOS != 0 {
		r.registers = newRegisterPool(r.fx.registers)
	}
	before, err := r.snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the state before the run: %w", err)
	}
	setupDur := time.Since(started)
	r.say("pos loadtest: setup done in %s (%d customers, %d registers); load starts", setupDur.Round(time.Millisecond), len(r.fx.customers), len(r.fx.registers))

	// Load.
	r.loadStart = time.Now()
	r.load = NewRecorder(r.loadStart)
	stopProgress := r.startProgress()
	var loadDur time.Duration
	if r.openModel {
		loadDur = r.runOpen(ctx, r.cfg.Rate, r.duration, r.maxVUs, r.cfg.GracefulStop)
	} else {
		loadDur = r.runClosed(ctx, r.profile, r.cfg.GracefulStop)
	}
	stopProgress()
	r.load.closeAll(0)
	interrupted := ctx.Err() != nil

	// Post-run: settle and check, even after an interrupt, within bounds.
	r.say("pos loadtest: load done in %s; waiting for the target to settle and checking invariants…", loadDur.Round(time.Millisecond))
	postBudget := r.cfg.SettleTimeout + 2*time.Minute
	if interrupted {
		// Someone pressed Ctrl-C and waits: a short look, not the full
		// settle time (a second Ctrl-C is no longer seen by the process).
		r.cfg.SettleTimeout = min(r.cfg.SettleTimeout, 10*time.Second)
		postBudget = 30 * time.Second
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), postBudget)
	defer cancel()
	r.post = NewRecorder(time.Now())
	postStart := time.Now()
	invariants := r.checkInvariants(pctx, before)
	if failed := r.revokeKeys(pctx, r.post); len(failed) > 0 {
		r.fx.notes = append(r.fx.notes, fmt.Sprintf("could not revoke the run's API keys %s (named loadtest-%s-*): revoke them by hand", strings.Join(failed, ", "), r.runID))
	}
	revoked = true
	postDur := time.Since(postStart)

	s := r.summarize(started, setupDur, loadDur, postDur)
	s.Invariants = invariants
	for _, t := range cfg.Thresholds {
		s.Thresholds = append(s.Thresholds, t.Evaluate(s))
	}
	s.judge(interrupted, r.gracefulTimedOut.Load())
	return s, nil
}

// say prints a line of the run's progress, when there is somewhere to.
func (r *run) say(format string, a ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, format+"\n", a...)
	}
}

// startProgress prints the progress line every second until stopped.
func (r *run) startProgress() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last Point
		for {
			select {
			case <-done:
				if r.cfg.Progress != nil && r.cfg.ProgressInPlace {
					fmt.Fprintln(r.cfg.Progress)
				}
				return
			case now := <-t.C:
				if p, ok := r.load.CloseSeconds(now, int(r.active.Load())); ok {
					last = p
				}
				if r.cfg.Progress != nil {
					r.printProgress(now, last)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (r *run) printProgress(now time.Time, last Point) {
	reqs, errs := r.load.Totals()
	total := r.duration
	if !r.openModel {
		total = r.profile.Total()
	}
	rate := 0.0
	if reqs > 0 {
		rate = float64(errs) / float64(reqs) * 100
	}
	line := fmt.Sprintf("%s %5s/%-5s vus %4d  req/s %6d  p95 %8s  errors %d (%.2f%%)",
		r.sc.Name, fmt.Sprintf("%.0fs", now.Sub(r.loadStart).Seconds()), fmt.Sprintf("%.0fs", total.Seconds()), r.active.Load(), last.Requests, fmtMS(last.P95), errs, rate)
	if d := r.dropped.Load(); r.openModel && d > 0 {
		line += fmt.Sprintf("  dropped %d", d)
	}
	if r.cfg.ProgressInPlace {
		fmt.Fprintf(r.cfg.Progress, "\r%-100s", line)
		return
	}
	fmt.Fprintln(r.cfg.Progress, line)
}

// errInterrupted marks a run stopped before its end.
var errInterrupted = errors.New("interrupted")

// PhaseSummary is the figures of the setup or the post-run phase, which
// are not load but are reported so nothing the run sent is hidden.
type PhaseSummary struct {
	DurationS float64  `json:"duration_s"`
	Requests  int64    `json:"requests"`
	Errors    int64    `json:"errors"`
	ErrorLog  []string `json:"error_samples,omitempty"`
}

func phaseOf(rec *Recorder, d time.Duration) PhaseSummary {
	f := rec.summary(d)
	p := PhaseSummary{DurationS: round3(d.Seconds()), Requests: f.Requests, Errors: f.Errors}
	for _, e := range f.Endpoints {
		p.ErrorLog = append(p.ErrorLog, e.ErrorLog...)
	}
	return p
}

// summarize assembles the summary of the run's phases.
func (r *run) summarize(started time.Time, setupDur, loadDur, postDur time.Duration) *Summary {
	f := r.load.summary(loadDur)
	s := &Summary{
		Scenario: r.sc.Name, Target: r.cfg.Target, RunID: r.runID, Seed: r.seed, StartedAt: started.UTC(),
		Model: "closed", MaxVUs: r.maxVUs, Think: "scenario default",
		Setup: phaseOf(r.setupRec, setupDur), Post: phaseOf(r.post, postDur),
		DurationS: round3(loadDur.Seconds()), Requests: f.Requests, Errors: f.Errors, Interrupted: f.Interrupted,
		Latency: f.Latency, Endpoints: f.Endpoints, Checks: f.Checks, Series: f.Series, Baseline: r.sc.Baseline,
		Notes: r.fx.notes, all: f.all, perEP: f.perEP,
	}
	if r.openModel {
		s.Model, s.Rate, s.Stages = "open", r.cfg.Rate, ""
		s.PlannedS = round3(r.duration.Seconds())
	} else {
		s.Stages = r.profile.String()
		s.PlannedS = round3(r.profile.Total().Seconds())
	}
	if r.thinkOverride != nil {
		s.Think = r.thinkOverride.String()
	}
	if r.openModel {
		s.Think = "none (open model)"
	}
	if loadDur > 0 {
		s.RPS = round3(float64(f.Requests) / loadDur.Seconds())
	}
	if f.Requests > 0 {
		s.ErrorRate = round6(float64(f.Errors) / float64(f.Requests))
	}
	s.Iterations = r.counts.summary(r.sc.journeyNames())
	s.Iterations.Dropped = r.dropped.Load()
	if loadDur > 0 {
		s.Iterations.PerSecond = round3(float64(s.Iterations.Completed+s.Iterations.Failed) / loadDur.Seconds())
	}
	return s
}

// judge decides whether the run passed, and why not.
func (s *Summary) judge(interrupted, gracefulTimedOut bool) {
	if interrupted {
		s.Failures = append(s.Failures, "the run was "+errInterrupted.Error()+" before the end of its profile")
	}
	if s.Requests == 0 {
		s.Failures = append(s.Failures, "the load phase made no request")
	}
	if s.Iterations.Completed == 0 && s.Iterations.Failed > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("none of the %d journeys completed", s.Iterations.Failed))
	}
	if len(s.Thresholds) == 0 {
		s.Notes = append(s.Notes, "no --threshold given: the verdict covers the invariants only")
	}
	for _, inv := range s.Invariants {
		if inv.Status == InvariantFail {
			s.Failures = append(s.Failures, fmt.Sprintf("invariant broken: %s: %s", inv.Name, inv.Detail))
		}
	}
	for _, t := range s.Thresholds {
		if !t.OK {
			why := "got " + t.Shown
			if t.Detail != "" {
				why = t.Detail
			}
			s.Failures = append(s.Failures, fmt.Sprintf("threshold crossed: %s (%s)", t.Raw, why))
		}
	}
	if gracefulTimedOut {
		s.Notes = append(s.Notes, "some journeys were still running at the end of the graceful stop and were cut (see interrupted)")
	}
	s.Passed = len(s.Failures) == 0
}

// FailureError is the error of a run that did not pass, for the command's
// exit status.
func (s *Summary) FailureError() error {
	if s.Passed {
		return nil
	}
	return fmt.Errorf("load test %s failed: %s", s.Scenario, strings.Join(s.Failures, "; "))
}
