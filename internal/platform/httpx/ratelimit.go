package httpx

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiter holds one token bucket per client. Buckets idle for longer
// than it takes to refill are dropped, so memory follows active clients.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	if burst < 1 {
		burst = int(perSecond) + 1
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}, lastSweep: time.Now()}
}

// allow takes one token for client; when none is left it says how long
// until one is.
func (r *rateLimiter) allow(client string) (time.Duration, bool) {
	now := time.Now()
	r.mu.Lock()
	b, ok := r.buckets[client]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(r.limit, r.burst)}
		r.buckets[client] = b
	}
	b.seen = now
	if now.Sub(r.lastSweep) > time.Minute {
		r.sweep(now)
	}
	r.mu.Unlock()
	res := b.lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

func (r *rateLimiter) sweep(now time.Time) {
	idle := time.Duration(float64(r.burst)/float64(r.limit)*float64(time.Second)) + time.Minute
	for k, b := range r.buckets {
		if now.Sub(b.seen) > idle {
			delete(r.buckets, k)
		}
	}
	r.lastSweep = now
}
