// Package testkit gives tests real components: a fresh SQLite file, a fresh
// PostgreSQL schema, a Redis key prefix, an HTTP server with the whole
// middleware chain. Each test gets its own, so tests run in parallel.
//
// PostgreSQL and Redis come from POS_TEST_POSTGRES_URL and
// POS_TEST_REDIS_URL. Unset, the tests that need them skip with a message;
// with POS_TEST_REQUIRE_INFRA=1 (CI sets it) a missing server fails instead,
// so a green CI always means they ran.
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
)

// Backend is one database engine a store test runs on. Every OpenDB on it
// gets fresh, empty storage: a new SQLite file or a new PostgreSQL schema.
type Backend struct {
	// Name is "sqlite" or "postgres" (the subtest name).
	Name string
}

// SQLite is the embedded engine, always available.
var SQLite = Backend{Name: "sqlite"}

// Options returns where a fresh database for contextName lives on b, kept
// until the test ends; open it with db.Open (tests that restart a process
// open the same Options twice).
func (b Backend) Options(t testing.TB, contextName string) db.Options {
	t.Helper()
	if b.Name == "postgres" {
		return db.Options{Context: contextName, URL: PostgresURL(t)}
	}
	return db.Options{Context: contextName, DataDir: t.TempDir()}
}

// RequireInfra tells whether missing infrastructure must fail the test.
func RequireInfra() bool { return os.Getenv("POS_TEST_REQUIRE_INFRA") == "1" }

// needInfra skips (locally) or fails (CI) a test whose server is missing.
func needInfra(t testing.TB, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if RequireInfra() {
			t.Fatalf("%s is not set but POS_TEST_REQUIRE_INFRA=1: %s tests must run", env, what)
		}
		t.Skipf("%s not set: skipping %s tests (set it to run them)", env, what)
	}
	return v
}

// Backends lists the engines available to this run: SQLite always,
// PostgreSQL when POS_TEST_POSTGRES_URL is set (required in CI).
func Backends(t testing.TB) []Backend {
	t.Helper()
	out := []Backend{SQLite}
	if os.Getenv("POS_TEST_POSTGRES_URL") != "" || RequireInfra() {
		needInfra(t, "POS_TEST_POSTGRES_URL", "PostgreSQL")
		out = append(out, Backend{Name: "postgres"})
	} else {
		t.Log("POS_TEST_POSTGRES_URL not set: running on SQLite only")
	}
	return out
}

// PostgresBackend is PostgreSQL, for a test about it alone (row locks,
// commit order, pipelining): without POS_TEST_POSTGRES_URL the test is
// skipped, why saying what it needs PostgreSQL for, and under
// POS_TEST_REQUIRE_INFRA=1 (CI) it fails instead.
func PostgresBackend(t testing.TB, why string) Backend {
	t.Helper()
	if os.Getenv("POS_TEST_POSTGRES_URL") == "" && !RequireInfra() {
		t.Skipf("%s: set POS_TEST_POSTGRES_URL (CI does)", why)
	}
	needInfra(t, "POS_TEST_POSTGRES_URL", "PostgreSQL")
	return Backend{Name: "postgres"}
}

// ForEachBackend runs fn as a subtest per engine.
func ForEachBackend(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// PostgresURL returns a URL whose search_path is a fresh schema, dropped
// when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := needInfra(t, "POS_TEST_POSTGRES_URL", "PostgreSQL")
	schema := "t_" + randomHex(8)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("POS_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgconn.Connect(ctx, base)
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`).Close(); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	return u.String()
}

// OpenDB opens a fresh database for contextName on backend b, applies
// migrations and closes it when the test ends.
func OpenDB(t testing.TB, b Backend, contextName string, migrations fs.FS) *gorm.DB {
	t.Helper()
	ctx := context.Background()
	gdb, err := db.Open(ctx, b.Options(t, contextName))
	if err != nil {
		t.Fatalf("open %s on %s: %v", contextName, b.Name, err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	if err := db.Migrate(ctx, gdb, migrations); err != nil {
		t.Fatalf("migrate %s on %s: %v", contextName, b.Name, err)
	}
	return gdb
}

// RedisURL returns the test Redis and a key prefix of the test's own; the
// keys under the prefix are deleted when the test ends.
func RedisURL(t testing.TB) (redisURL, prefix string) {
	t.Helper()
	redisURL, prefix = needInfra(t, "POS_TEST_REDIS_URL", "Redis"), "test:"+randomHex(6)+":"
	t.Cleanup(func() { deleteKeys(redisURL, prefix) })
	return redisURL, prefix
}

func deleteKeys(redisURL, prefix string) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
}

// Logger discards logs unless POS_TEST_VERBOSE is set.
func Logger() *slog.Logger {
	if os.Getenv("POS_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// ID makes a unique id for test data.
func ID(prefix string) string { return prefix + "-" + randomHex(6) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(hex.EncodeToString(b))
}
