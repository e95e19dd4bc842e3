// Package mongotest starts an embedded FerretDB (the MongoDB wire protocol
// over SQLite or PostgreSQL) for tests of MongoDB adapters. MongoDB itself
// is not packaged on our machines; FerretDB speaks the same protocol, so
// the adapter under test talks to a real server over a real socket. It is a
// package of its own so that only those tests link FerretDB.
package mongotest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/retailco/pos/internal/platform/testkit"
)

// starts serialises ferretdb.New: it writes a package variable of
// FerretDB's without a lock, which the race detector rightly reports when
// parallel tests start servers at once. A package-level lock is the only
// place that can guard another package's global.
var starts sync.Mutex

// URL starts a FerretDB on a free loopback port with its data in SQLite
// files in a temporary directory, stopped when the test ends, and returns a
// mongodb:// URL to it. Each call is a server of its own, so tests run in
// parallel. Its SQLite handler scans a collection for most queries: right
// for correctness tests, wrong for benchmarks (see PostgresURL).
func URL(t testing.TB) string {
	t.Helper()
	return start(t, ferretdb.Config{
		Handler:   "sqlite",
		SQLiteURL: (&url.URL{Scheme: "file", Path: t.TempDir() + "/"}).String(),
	})
}

// PostgresURL starts a FerretDB whose data lives in the PostgreSQL at
// pgURL (each MongoDB database a schema of its name); its handler pushes
// filters down to SQL the way MongoDB uses indexes, so benchmarks measure
// the adapter rather than a scan. The schemas of databases are dropped when
// the test ends.
func PostgresURL(t testing.TB, pgURL string, databases ...string) string {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgconn.Connect(ctx, pgURL)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		for _, d := range databases {
			_ = conn.Exec(ctx, `DROP SCHEMA IF EXISTS "`+d+`" CASCADE`).Close()
		}
	})
	return start(t, ferretdb.Config{Handler: "postgresql", PostgreSQLURL: pgURL})
}

func start(t testing.TB, cfg ferretdb.Config) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.Listener = ferretdb.ListenerConfig{TCP: addr}
	cfg.Logger = testkit.Logger()
	starts.Lock()
	f, err := ferretdb.New(&cfg)
	starts.Unlock()
	if err != nil {
		t.Fatalf("ferretdb: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Logf("ferretdb did not stop in 10s")
		}
	})
	// Run binds asynchronously: wait until the port answers.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("ferretdb exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ferretdb not listening on %s after 15s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	uri := f.MongoDBURI()
	if !strings.HasPrefix(uri, "mongodb://") {
		t.Fatalf("ferretdb uri %q", uri)
	}
	return uri
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
