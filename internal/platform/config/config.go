// Package config reads the process configuration from POS_* environment
// variables (12-factor); cmd/pos lets flags override each value. Nothing here
// knows which contexts exist: per-context settings are looked up by name.
package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is everything a process needs to wire its contexts.
type Config struct {
	// Addr is the listen address of the HTTP server.
	Addr string
	// DataDir holds the embedded default's files: one SQLite file per
	// context and the generated JWT secret.
	DataDir string
	// DatabaseURL, when set, is used by every context that has no URL of its
	// own (POS_<CONTEXT>_DATABASE_URL). Empty means SQLite under DataDir.
	DatabaseURL string
	// RedisURL selects Redis for carts and the event bus; empty means the
	// embedded SQL and in-process adapters.
	RedisURL string
	// ReportingTimeZone is the zone whose calendar days the reports count
	// in (POS_REPORTING_TIMEZONE, default America/Toronto).
	ReportingTimeZone string
	// DBMaxConns bounds each context's PostgreSQL pool (POS_DB_MAX_CONNS;
	// 0 keeps the default of 6, which keeps the monolith's fourteen pools
	// under PostgreSQL's default 100 connections). A context running alone
	// in the fleet can take more: the saga gains most.
	DBMaxConns int
	// DatabaseSchemaPrefix prefixes every context's PostgreSQL schema
	// (POS_DATABASE_SCHEMA_PREFIX): <prefix>_<context> instead of <context>.
	DatabaseSchemaPrefix string
	// RedisPrefix starts every Redis key this deployment writes (carts and
	// streams), so several deployments can share one Redis (POS_REDIS_PREFIX,
	// default "pos:").
	RedisPrefix string
	// EventsRedisURL selects Redis Streams for the event bus
	// (POS_EVENTS_REDIS_URL, default RedisURL); empty means the SQL log.
	EventsRedisURL string
	// SMTPURL sends notification e-mail over SMTP
	// (smtp://user:pass@host:port?from=…); empty logs them instead.
	SMTPURL string
	// MongoURL selects MongoDB for the claims event store.
	MongoURL string
	// GatewayURL is where contexts this process does not host are reached,
	// unless POS_<CONTEXT>_URL names a more specific address.
	GatewayURL string
	// ServiceKey is the API key contexts present to each other in the fleet;
	// every process accepts it with the service role.
	ServiceKey string
	// JWTSecret signs customer tokens; JWTSecretFile is read when it is
	// empty; when both are empty a secret is generated under DataDir.
	JWTSecret     string
	JWTSecretFile string
	// TokenTTL is how long a customer token lives.
	TokenTTL time.Duration
	// InstanceID names this process in logs and in X-Served-By.
	InstanceID string
	// RateLimit is the sustained requests per second allowed to one client
	// (API key, customer or IP); RateBurst the bucket size. 0 disables it.
	RateLimit float64
	RateBurst int
	// LogLevel is debug, info, warn or error; LogFormat json or text.
	LogLevel  string
	LogFormat string
	// ShutdownTimeout bounds the graceful drain on SIGTERM.
	ShutdownTimeout time.Duration
	// BcryptCost is the password hashing cost (tests lower it).
	BcryptCost int
	// PaymentLatency is the simulated payment gateway's delay per call.
	PaymentLatency time.Duration
	// FaultKillAt is a fault-injection knob for crash tests
	// (POS_FAULT_KILL_AT=<saga step>:<point>); never set in production.
	FaultKillAt string
	// TrustProxy takes client IPs from X-Forwarded-For (set it behind Kong).
	TrustProxy bool
	// AccessLog writes one log line per request.
	AccessLog bool
	// Pprof serves the Go profiler to admins (POS_PPROF=true).
	Pprof bool

	getenv func(string) string
}

// Load reads the configuration from getenv (os.Getenv in main, a map in
// tests) and fills in the embedded defaults.
func Load(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	host, _ := os.Hostname()
	c := Config{
		Addr:                 or(getenv("POS_ADDR"), ":8080"),
		DataDir:              or(getenv("POS_DATA_DIR"), "./data"),
		DatabaseURL:          getenv("POS_DATABASE_URL"),
		RedisURL:             getenv("POS_REDIS_URL"),
		MongoURL:             getenv("POS_MONGO_URL"),
		SMTPURL:              getenv("POS_SMTP_URL"),
		RedisPrefix:          or(getenv("POS_REDIS_PREFIX"), "pos:"),
		DatabaseSchemaPrefix: getenv("POS_DATABASE_SCHEMA_PREFIX"),
		ReportingTimeZone:    getenv("POS_REPORTING_TIMEZONE"),
		EventsRedisURL:       or(getenv("POS_EVENTS_REDIS_URL"), getenv("POS_REDIS_URL")),
		GatewayURL:           strings.TrimRight(getenv("POS_GATEWAY_URL"), "/"),
		ServiceKey:           getenv("POS_SERVICE_KEY"),
		JWTSecret:            getenv("POS_JWT_SECRET"),
		JWTSecretFile:        getenv("POS_JWT_SECRET_FILE"),
		InstanceID:           or(getenv("POS_INSTANCE_ID"), host),
		LogLevel:             or(getenv("POS_LOG_LEVEL"), "info"),
		LogFormat:            or(getenv("POS_LOG_FORMAT"), "json"),
		TokenTTL:             24 * time.Hour,
		RateLimit:            500,
		RateBurst:            1000,
		ShutdownTimeout:      15 * time.Second,
		BcryptCost:           10,
		TrustProxy:           getenv("POS_TRUST_PROXY") == "true",
		FaultKillAt:          getenv("POS_FAULT_KILL_AT"),
		AccessLog:            getenv("POS_ACCESS_LOG") != "false",
		Pprof:                getenv("POS_PPROF") == "true",
		getenv:               getenv,
	}
	var err error
	if c.RateLimit, err = floatEnv(getenv, "POS_RATE_LIMIT", c.RateLimit); err != nil {
		return c, err
	}
	if c.RateBurst, err = intEnv(getenv, "POS_RATE_BURST", c.RateBurst); err != nil {
		return c, err
	}
	if c.DBMaxConns, err = intEnv(getenv, "POS_DB_MAX_CONNS", 0); err != nil {
		return c, err
	}
	if c.BcryptCost, err = intEnv(getenv, "POS_BCRYPT_COST", c.BcryptCost); err != nil {
		return c, err
	}
	if c.TokenTTL, err = durationEnv(getenv, "POS_TOKEN_TTL", c.TokenTTL); err != nil {
		return c, err
	}
	if c.PaymentLatency, err = durationEnv(getenv, "POS_PAYMENT_LATENCY", 0); err != nil {
		return c, err
	}
	if c.ShutdownTimeout, err = durationEnv(getenv, "POS_SHUTDOWN_TIMEOUT", c.ShutdownTimeout); err != nil {
		return c, err
	}
	return c, nil
}

// DatabaseURLFor is the database of one context: POS_<CONTEXT>_DATABASE_URL,
// else POS_DATABASE_URL, else "" (SQLite under DataDir).
func (c Config) DatabaseURLFor(context string) string {
	if v := c.env("POS_" + strings.ToUpper(context) + "_DATABASE_URL"); v != "" {
		return v
	}
	return c.DatabaseURL
}

// ContextURL is where a context this process does not host answers:
// POS_<CONTEXT>_URL, else the gateway. Empty when neither is set.
func (c Config) ContextURL(context string) string {
	if v := c.env("POS_" + strings.ToUpper(context) + "_URL"); v != "" {
		return strings.TrimRight(v, "/")
	}
	return c.GatewayURL
}

func (c Config) env(key string) string {
	if c.getenv == nil {
		return os.Getenv(key)
	}
	return c.getenv(key)
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func intEnv(getenv func(string) string, key string, def int) (int, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: not an integer", key, v)
	}
	return n, nil
}

func floatEnv(getenv func(string) string, key string, def float64) (float64, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: not a number", key, v)
	}
	return n, nil
}

func durationEnv(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: not a duration", key, v)
	}
	return d, nil
}
