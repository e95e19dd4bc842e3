// Package correlation carries the request id of the call that started a
// piece of work, across HTTP hops and into events, so one id ties together
// the logs, the audit trail and the events of one customer action.
package correlation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// Header is where the id travels between processes; Kong's correlation-id
// plugin writes the same header.
const Header = "X-Request-ID"

type key struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the id carried by ctx, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// NewID makes a fresh 128-bit id.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Valid accepts ids a client may pass in: short and printable, so a header
// cannot be used to inject into logs.
func Valid(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}
