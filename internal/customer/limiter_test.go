package customer

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiterIsBounded(t *testing.T) {
	t.Parallel()
	l := newFailureLimiter(15*time.Minute, 100)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10_000 {
		if _, ok := l.attempt(now, limitKey{fmt.Sprintf("acct:%d", i), 5}); !ok {
			t.Fatalf("fresh key %d refused", i)
		}
		now = now.Add(time.Millisecond)
	}
	if n := l.tracked(); n > 100 {
		t.Fatalf("%d keys tracked, bound is 100", n)
	}
	// Once the window has passed, a single new attempt sweeps the rest.
	l.attempt(now.Add(16*time.Minute), limitKey{"acct:new", 5})
	if n := l.tracked(); n != 1 {
		t.Fatalf("%d keys tracked after the window", n)
	}
}

func TestLimiterForgiveAndReset(t *testing.T) {
	t.Parallel()
	l := newFailureLimiter(time.Minute, 10)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	k := limitKey{"ip:192.0.2.1", 2}
	l.attempt(now, k)
	at := now.Add(time.Second)
	l.attempt(at, k)
	if _, ok := l.attempt(at, k); ok {
		t.Fatal("third attempt within the limit of 2")
	}
	l.forgive(k.key, at)
	if _, ok := l.attempt(at, k); !ok {
		t.Fatal("forgiven attempt still counted")
	}
	l.reset(k.key)
	if l.tracked() != 0 {
		t.Fatal("reset left the key")
	}
}

func TestAddressKey(t *testing.T) {
	t.Parallel()
	same := [][2]string{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"}, // one /64
		{"::ffff:192.0.2.1", "192.0.2.1"},           // mapped IPv4
		{"fe80::1%eth0", "fe80::1"},                 // zone
	}
	for _, p := range same {
		if addressKey(p[0]) != addressKey(p[1]) {
			t.Errorf("%s and %s counted apart", p[0], p[1])
		}
	}
	differ := [][2]string{{"2001:db8:1:2::1", "2001:db8:1:3::1"}, {"192.0.2.1", "192.0.2.2"}}
	for _, p := range differ {
		if addressKey(p[0]) == addressKey(p[1]) {
			t.Errorf("%s and %s counted together", p[0], p[1])
		}
	}
	if k := addressKey(string(make([]byte, 500))); len(k) > 80 {
		t.Errorf("unparsable address kept at %d bytes", len(k))
	}
}
