package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

// TestStartFailureIsAnError: when a database cannot be reached the
// command fails with the reason, closing what it had opened, instead of
// panicking on the way out (newWiring's cleanup once ran on the nil it
// returns).
func TestStartFailureIsAnError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	env := map[string]string{
		"POS_DATA_DIR":               t.TempDir(),
		"POS_DATABASE_URL":           "postgres://postgres@" + addr + "/test?sslmode=disable&connect_timeout=2",
		"POS_DATABASE_SCHEMA_PREFIX": "unreachable",
	}
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"seed"}, func(k string) string { return env[k] }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("seed against an unreachable database: %v, want an error naming %s", err, addr)
	}
}
