package customer

import (
	"net/netip"
	"sync"
	"time"
)

// LoginLimits bound password guessing. Zero fields take the defaults.
type LoginLimits struct {
	// AccountFailures is how many failed logins one e-mail may collect in
	// Window before further attempts are refused (default 5).
	AccountFailures int
	// IPFailures is the same per client address (default 20): it stops one
	// machine trying a few passwords on many accounts.
	IPFailures int
	// Window is the sliding period failures are counted in (default 15 min).
	Window time.Duration
	// MaxTracked bounds how many accounts and addresses are remembered at
	// once (default 100 000, a few tens of MB at worst).
	MaxTracked int
}

func (l LoginLimits) withDefaults() LoginLimits {
	if l.AccountFailures <= 0 {
		l.AccountFailures = 5
	}
	if l.IPFailures <= 0 {
		l.IPFailures = 20
	}
	if l.Window <= 0 {
		l.Window = 15 * time.Minute
	}
	if l.MaxTracked <= 0 {
		l.MaxTracked = 100_000
	}
	return l
}

// failureLimiter counts failed logins per key (an account or a client
// address) over a sliding window.
//
// It lives in memory, so in the fleet it is per customer-service instance:
// with N instances behind the gateway an attacker gets at most N times the
// budget (Kong's own per-IP limit sits in front). That is an accepted bound;
// a global count would need a shared store such as Redis.
//
// An attempt is counted when it starts, not when it fails: concurrent
// guesses cannot all slip through between the check and the bcrypt
// comparison. A success then takes its own count back (address) or clears
// the account.
type failureLimiter struct {
	window time.Duration
	max    int

	mu        sync.Mutex
	entries   map[string][]time.Time // failure times, oldest first, never longer than the key's limit
	lastSweep time.Time
}

// limitKey is one counter an attempt is charged to, with its own limit.
type limitKey struct {
	key   string
	limit int
}

func newFailureLimiter(window time.Duration, maxTracked int) *failureLimiter {
	return &failureLimiter{window: window, max: maxTracked, entries: map[string][]time.Time{}}
}

// attempt charges one attempt at now to every key, unless one of them is
// already at its limit: then nothing is charged and wait says when the
// oldest failure of the most constrained key leaves the window.
func (l *failureLimiter) attempt(now time.Time, keys ...limitKey) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= l.window {
		l.sweep(now)
	}
	for _, k := range keys {
		times := l.live(k.key, now)
		if len(times) >= k.limit {
			// The attempt becomes possible again when enough old failures
			// have aged out to leave room for one more.
			if w := times[len(times)-k.limit].Add(l.window).Sub(now); w > wait {
				wait = w
			}
		}
	}
	if wait > 0 {
		return wait, false
	}
	for _, k := range keys {
		times, tracked := l.entries[k.key]
		if !tracked {
			l.makeRoom(now)
		}
		l.entries[k.key] = append(times, now)
	}
	return 0, true
}

// forgive takes back the attempt charged to key at at (a success, or an
// attempt that failed for reasons of ours, such as a database outage).
func (l *failureLimiter) forgive(key string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	times := l.entries[key]
	for i := len(times) - 1; i >= 0; i-- {
		if times[i].Equal(at) {
			times = append(times[:i], times[i+1:]...)
			break
		}
	}
	if len(times) == 0 {
		delete(l.entries, key)
		return
	}
	l.entries[key] = times
}

// reset forgets every failure of key: a successful login proves the
// account holder is at the keyboard.
func (l *failureLimiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, key)
}

// tracked is how many keys are remembered (tests check the bound).
func (l *failureLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// live drops the failures of key that left the window and returns the rest.
func (l *failureLimiter) live(key string, now time.Time) []time.Time {
	times, ok := l.entries[key]
	if !ok {
		return nil
	}
	cut := 0
	for cut < len(times) && !times[cut].After(now.Add(-l.window)) {
		cut++
	}
	if cut == len(times) {
		delete(l.entries, key)
		return nil
	}
	if cut > 0 {
		times = append(times[:0], times[cut:]...)
		l.entries[key] = times
	}
	return times
}

// sweep forgets keys whose every failure left the window. It runs at most
// once a window on the request path, so its cost is amortised.
func (l *failureLimiter) sweep(now time.Time) {
	for k, times := range l.entries {
		if !times[len(times)-1].After(now.Add(-l.window)) {
			delete(l.entries, k)
		}
	}
	l.lastSweep = now
}

// makeRoom keeps the table under its bound before a new key goes in. When
// live entries alone fill it (a flood from very many addresses) the
// quietest of a few random entries goes: memory stays bounded, and what is
// forgotten first is what matters least. Map iteration order is random, so
// sampling costs O(1).
func (l *failureLimiter) makeRoom(now time.Time) {
	if len(l.entries) < l.max {
		return
	}
	if now.Sub(l.lastSweep) >= time.Second {
		l.sweep(now)
	}
	for len(l.entries) >= l.max {
		var (
			victim string
			oldest time.Time
			n      int
		)
		for k, times := range l.entries {
			last := times[len(times)-1]
			if n == 0 || last.Before(oldest) {
				victim, oldest = k, last
			}
			if n++; n == 8 {
				break
			}
		}
		delete(l.entries, victim)
	}
}

// addressKey is the counter key of a client address. IPv6 clients usually
// hold a whole /64, so counting single IPv6 addresses would let one client
// rotate through billions of fresh counters; they are counted per /64.
// Anything unparsable is kept as given, bounded in length.
func addressKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		if len(ip) > 64 {
			ip = ip[:64]
		}
		return "ip:" + ip
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return "ip:" + p.String()
	}
	return "ip:" + addr.String()
}

// accountKey is the counter key of an e-mail. Unknown e-mails are counted
// too, so a refusal says nothing about whether the account exists.
func accountKey(email string) string { return "acct:" + email }
