package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/retailco/pos/internal/loadtest"
)

// newLoadtestCmd is `pos loadtest`: the built-in load generator. It only
// parses flags and writes the outputs; the runs, the scenarios and the
// checks live in internal/loadtest.
func newLoadtestCmd(g *globals) *cobra.Command {
	var (
		target, scenario, stages, rate, apiKey, think, jsonOut, htmlOut string
		vus                                                             int
		duration, timeout, gracefulStop, settle                         time.Duration
		short, allowRemote                                              bool
		thresholds                                                      []string
		seed                                                            uint64
	)
	cmd := &cobra.Command{
		Use:   "loadtest --scenario NAME [--short] [flags]",
		Short: "Load-test a running pos through its API, then check the business invariants",
		Long: `Drive a running pos (the monolith or the fleet behind its gateway) with
virtual users following realistic journeys, through the public API only,
and report latency and throughput per endpoint. The scenario seeds what it
needs through the API with an admin key (products LT-0001…, stock, registers,
one customer per VU, per-run API keys it revokes at the end). After the load
it checks through the API that stock and money were conserved and that every
saga is final, beside the latency figures.

Scenarios:
` + loadtest.ScenarioHelp() + `
Closed model (default): VUs follow the scenario's stages; --vus rescales the
peak, --duration the length, --stages replaces the profile (k6 syntax:
30s:15,5m:15,30s:0 ramps linearly from 0 to 15 VUs in 30 s, holds 5 min,
ramps down). Open model: --rate 50/s starts journeys at a fixed rate on up to
--vus VUs for --duration; arrivals finding every VU busy are dropped and
counted.

Thresholds (repeatable), as in k6; the command fails when one is crossed:
  p95<200ms  p99<=1s  max<2s  avg<50ms  p99.9<500ms   latency (us, ms, s)
  errors<1%  errors<0.01  checks<0.1%                  failure rates
  rps>100  requests>1000  dropped==0                   numbers
  checkout:p95<300ms  "GET /api/v1/products:p99<50ms" one endpoint (operation id or route)

Exit status: non-zero when a threshold is crossed, an invariant breaks, the
target lacks a context the scenario needs, or seeding fails.`,
		Example: `  pos loadtest --api-key $ADMIN --scenario catalog-15vu --short --threshold 'p95<200ms' --threshold 'errors<1%'
  pos loadtest --api-key $ADMIN --scenario catalog-100vu --stages 0s:100,20s:100 --think 0 --out run.json --html run.html
  pos loadtest --api-key $ADMIN --scenario checkout --rate 20/s --duration 1m --vus 50
  pos loadtest --api-key $ADMIN --scenario mixed --short --threshold 'checkout:p95<300ms'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := loadtest.Config{Target: target, Scenario: scenario, APIKey: apiKey, Short: short, VUs: vus,
				Duration: duration, Timeout: timeout, GracefulStop: gracefulStop, SettleTimeout: settle,
				AllowRemote: allowRemote, Seed: seed, Progress: g.stderr, ProgressInPlace: isTerminal(g.stderr)}
			if cfg.APIKey == "" {
				cfg.APIKey = g.getenv("POS_LOADTEST_API_KEY")
			}
			var err error
			if stages != "" {
				if cfg.Stages, err = loadtest.ParseStages(stages); err != nil {
					return err
				}
			}
			if rate != "" {
				if cfg.Rate, err = loadtest.ParseRate(rate); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("think") {
				tr, err := loadtest.ParseThink(think)
				if err != nil {
					return err
				}
				cfg.Think = &tr
			}
			for _, expr := range thresholds {
				t, err := loadtest.ParseThreshold(expr)
				if err != nil {
					return err
				}
				cfg.Thresholds = append(cfg.Thresholds, t)
			}
			s, err := loadtest.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if err := s.WriteText(g.stdout); err != nil {
				return err
			}
			if jsonOut != "" {
				if err := s.WriteJSON(jsonOut); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
			}
			if htmlOut != "" {
				if err := s.WriteHTML(htmlOut); err != nil {
					return fmt.Errorf("--html: %w", err)
				}
			}
			return s.FailureError()
		},
	}
	f := cmd.Flags()
	f.StringVar(&target, "target", "http://127.0.0.1:8080", "base URL of the pos to load")
	f.StringVar(&scenario, "scenario", "", "workload: catalog-15vu, catalog-100vu, checkout, pos, claims or mixed")
	f.StringVar(&apiKey, "api-key", "", "admin API key of the target, for seeding and checks (POS_LOADTEST_API_KEY)")
	f.BoolVar(&short, "short", false, "the scenario's short profile (30 s, for CI)")
	f.IntVar(&vus, "vus", 0, "peak virtual users (rescales the profile); open model: the VU pool")
	f.StringVar(&stages, "stages", "", "profile replacing the scenario's, e.g. 30s:15,5m:15,30s:0")
	f.DurationVar(&duration, "duration", 0, "length of the run (rescales the profile); open model: how long arrivals come")
	f.StringVar(&rate, "rate", "", "open model: journeys started per unit, e.g. 50/s or 600/m")
	f.StringVar(&think, "think", "", "replace every think time: a range (50ms-1s), a duration, or 0 for none")
	f.StringArrayVar(&thresholds, "threshold", nil, "pass/fail criterion such as 'p95<200ms' or 'errors<1%' (repeatable)")
	f.StringVar(&jsonOut, "out", "", "write the JSON summary to this file")
	f.StringVar(&htmlOut, "html", "", "write a self-contained HTML report to this file")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "timeout of each request")
	f.DurationVar(&gracefulStop, "graceful-stop", 0, "time journeys in flight get to finish after the profile (default 30s, 10s with --short)")
	f.DurationVar(&settle, "settle-timeout", 0, "how long sagas and read models may take to settle after the load (default 60s, 20s with --short)")
	f.BoolVar(&allowRemote, "allow-remote", false, "allow a target that is not this machine")
	f.Uint64Var(&seed, "seed", 0, "seed of the journeys' random choices, to repeat a run (0: random)")
	_ = cmd.MarkFlagRequired("scenario")
	return cmd
}

// isTerminal tells whether w is a terminal, where the progress line is
// rewritten in place rather than printed once a second.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
