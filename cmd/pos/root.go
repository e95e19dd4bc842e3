package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/retailco/pos/internal/platform/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// globals are the flags every command shares; each mirrors a POS_*
// variable, and a flag given on the command line wins.
type globals struct {
	getenv         func(string) string
	stdout, stderr io.Writer

	dataDir, databaseURL, redisURL, mongoURL, gatewayURL, logLevel string
}

func newRootCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{getenv: getenv, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "pos",
		Short:         "Point-of-sale and e-commerce platform for a retail chain",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.dataDir, "data-dir", "", "directory of the embedded databases (POS_DATA_DIR, default ./data)")
	pf.StringVar(&g.databaseURL, "database-url", "", "PostgreSQL URL for every context (POS_DATABASE_URL); empty: SQLite under --data-dir")
	pf.StringVar(&g.redisURL, "redis-url", "", "Redis URL for carts and events (POS_REDIS_URL)")
	pf.StringVar(&g.mongoURL, "mongo-url", "", "MongoDB URL for the claims event store (POS_MONGO_URL)")
	pf.StringVar(&g.gatewayURL, "gateway-url", "", "where contexts not hosted here are reached (POS_GATEWAY_URL)")
	pf.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (POS_LOG_LEVEL)")

	root.AddCommand(newServeCmd(g), newMigrateCmd(g), newSeedCmd(g), newAPIKeyCmd(g), newGatewayCmd(g), newHealthcheckCmd(g), newClaimsCmd(g), newReportCmd(g), newReportingCmd(g), newLoadtestCmd(g), newVersionCmd(g))
	return root
}

// config loads POS_* variables and applies the flags given.
func (g *globals) config() (config.Config, error) {
	cfg, err := config.Load(g.getenv)
	if err != nil {
		return cfg, err
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.DataDir, g.dataDir)
	set(&cfg.DatabaseURL, g.databaseURL)
	set(&cfg.RedisURL, g.redisURL)
	if g.redisURL != "" && g.getenv("POS_EVENTS_REDIS_URL") == "" {
		cfg.EventsRedisURL = g.redisURL // the bus follows --redis-url unless told otherwise
	}
	set(&cfg.MongoURL, g.mongoURL)
	set(&cfg.GatewayURL, strings.TrimRight(g.gatewayURL, "/"))
	set(&cfg.LogLevel, g.logLevel)
	return cfg, nil
}

// logger writes structured logs to stderr: JSON for machines (default),
// text for people at a terminal (POS_LOG_FORMAT=text).
func (g *globals) logger(cfg config.Config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(g.stderr, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(g.stderr, opts)
	}
	return slog.New(h).With("instance", cfg.InstanceID)
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(g.stdout, "pos", version)
			return err
		},
	}
}
