// Package bustest gives consumer tests a real event bus of their own: the
// embedded SQL log on a fresh SQLite database, or Redis Streams under a
// key prefix of the test's own. It is a package apart from testkit because
// the events package's own tests use testkit.
package bustest

import (
	"context"
	"testing"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// SQL is the embedded bus (what `pos serve --all` runs) on a fresh SQLite
// database, closed when the test ends.
func SQL(t testing.TB, o events.Options) events.Bus {
	t.Helper()
	ctx := context.Background()
	gdb, err := db.Open(ctx, testkit.SQLite.Options(t, "bus"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	bus, err := events.NewSQLBus(ctx, gdb, o)
	if err != nil {
		t.Fatalf("sql bus: %v", err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}

// Redis is Redis Streams (the fleet's bus) under a prefix of the test's
// own, skipped or failed like every Redis test when POS_TEST_REDIS_URL is
// unset. o.Prefix is overwritten.
func Redis(t testing.TB, o events.Options) events.Bus {
	t.Helper()
	url, prefix := testkit.RedisURL(t)
	o.Prefix = prefix
	bus, err := events.NewRedisBus(context.Background(), url, o)
	if err != nil {
		t.Fatalf("redis bus: %v", err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}
