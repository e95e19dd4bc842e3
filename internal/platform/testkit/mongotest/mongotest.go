// Package mongotest starts an embedded FerretDB (the MongoDB wire protocol
// over SQLite) for tests of MongoDB adapters. MongoDB itself is not
// packaged on our machines; FerretDB speaks the same protocol, so the
// adapter under test talks to a real server over a real socket. It is a
// package of its own so that only those tests link FerretDB.
package mongotest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// URL starts a FerretDB on a free loopback port with its data in a
// temporary directory, stopped when the test ends, and returns a mongodb://
// URL to it. Each call is a server of its own, so tests run in parallel.
func URL(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: fmt.Sprintf("127.0.0.1:%d", port)},
		Handler:   "sqlite",
		SQLiteURL: (&url.URL{Scheme: "file", Path: dir + "/"}).String(),
	})
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
	addr := fmt.Sprintf("127.0.0.1:%d", port)
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
