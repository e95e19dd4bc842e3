package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/retailco/pos/internal/platform/testkit"
)

// productionEnv is the production wiring in one process: every context on
// PostgreSQL (schemas of this test's own), carts and the event bus on
// Redis (keys of this test's own).
func productionEnv(t *testing.T) []string {
	t.Helper()
	redisURL, prefix := testkit.RedisURL(t)
	pg := os.Getenv("POS_TEST_POSTGRES_URL")
	if pg == "" {
		pg = testkit.PostgresURL(t) // skips or fails exactly as the store tests do
	}
	schema := strings.ToLower(strings.ReplaceAll(testkit.ID("t"), "-", "_"))
	t.Cleanup(func() { dropSchemas(t, pg, schema+"_") })
	return []string{"POS_DATABASE_URL=" + pg, "POS_DATABASE_SCHEMA_PREFIX=" + schema,
		"POS_REDIS_URL=" + redisURL, "POS_REDIS_PREFIX=" + prefix}
}

func dropSchemas(t *testing.T, pg, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, pg)
	if err != nil {
		t.Logf("drop schemas: %v", err)
		return
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, `SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)`, [][]byte{[]byte(prefix)}, nil, nil, nil).Read()
	for _, row := range res.Rows {
		_ = conn.Exec(ctx, `DROP SCHEMA IF EXISTS "`+string(row[0])+`" CASCADE`).Close()
	}
}

// TestMonolithOnPostgresAndRedis: the checkout and its invariants with the
// production stores.
func TestMonolithOnPostgresAndRedis(t *testing.T) {
	t.Parallel()
	s, p := newShop(t, productionEnv(t)...)
	for i := 0; i < 3; i++ {
		if code, out := s.checkout(p, 1, "tok_visa"); code != 201 {
			t.Fatalf("checkout %d: %d %v", i, code, out)
		}
	}
	if code, out := s.checkout(p, 1, "tok_declined"); code != 402 {
		t.Fatalf("declined: %d %v", code, out)
	}
	s.checkInvariants(p, 3)
}
