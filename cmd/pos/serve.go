package main

import (
	"context"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

func newServeCmd(g *globals) *cobra.Command {
	var (
		addr      string
		all       bool
		only      string
		noMigrate bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the API: every context (--all, the default) or some (--only=a,b)",
		Long: `Serve the REST API on one port.

With --all (the default) every context runs in this process: a modular
monolith on the embedded default (one SQLite file per context under
--data-dir) unless POS_DATABASE_URL and friends point elsewhere.

With --only=cart,order just those contexts run here; the contexts they
depend on are reached over HTTP at POS_<CONTEXT>_URL or POS_GATEWAY_URL.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all && only != "" {
				return fmt.Errorf("--all and --only exclude each other")
			}
			cfg, err := g.config()
			if err != nil {
				return err
			}
			if addr != "" {
				cfg.Addr = addr
			}
			log := g.logger(cfg)
			tuneGC(g.getenv)
			hosted, err := parseOnly(only)
			if err != nil {
				return err
			}
			start := time.Now()
			w, err := newWiring(cmd.Context(), cfg, log, hosted, !noMigrate)
			if err != nil {
				return err
			}
			defer w.Close()
			srv := w.server()
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				return fmt.Errorf("listen %s: %w", cfg.Addr, err)
			}
			log.Info("serving", "addr", ln.Addr().String(), "contexts", strings.Join(hosted, ","),
				"startup_ms", time.Since(start).Milliseconds(), "version", version)

			// Background loops (reservation expiry, relays, consumers) stop
			// with the server and are waited for before the databases close.
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			var wg sync.WaitGroup
			for _, work := range w.workers {
				wg.Add(1)
				go func() { defer wg.Done(); work(ctx) }()
			}
			err = srv.Serve(cmd.Context(), ln, cfg.ShutdownTimeout)
			cancel()
			wg.Wait()
			log.Info("stopped", "err", err)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "", "listen address (POS_ADDR, default :8080)")
	f.BoolVar(&all, "all", false, "host every context (the default)")
	f.StringVar(&only, "only", "", "host only these contexts, comma-separated")
	f.BoolVar(&noMigrate, "no-migrate", false, "do not apply migrations at start-up")
	return cmd
}

func newMigrateCmd(g *globals) *cobra.Command {
	var only string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply every pending migration of the hosted contexts' databases",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			hosted, err := parseOnly(only)
			if err != nil {
				return err
			}
			w, err := newWiring(cmd.Context(), cfg, g.logger(cfg), hosted, true)
			if err != nil {
				return err
			}
			w.Close()
			_, err = fmt.Fprintf(g.stdout, "migrated: %s\n", strings.Join(hosted, ", "))
			return err
		},
	}
	cmd.Flags().StringVar(&only, "only", "", "migrate only these contexts, comma-separated")
	return cmd
}

// serverGCPercent is the collector's target when GOGC is not set. The
// server's live heap is small (tens of MB) and nearly all its garbage is
// per-request, so Go's default of 100 collects many times a second under
// load: ~10% of the server's CPU on the checkout path. 200 halves the
// collections for a heap that peaks at about three times the live one
// instead of twice.
const serverGCPercent = 200

// tuneGC sets serverGCPercent unless the environment sets GOGC, which
// then decides as usual.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(serverGCPercent)
	}
}
