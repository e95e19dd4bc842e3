package events

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/errs"
)

// Options tune a bus. The zero value is the production default; tests
// shorten the intervals.
type Options struct {
	// Registry receives the bus metrics; nil keeps them unexported.
	Registry *prometheus.Registry
	// Logger reports errors the bus recovers from; nil uses slog.Default().
	Logger *slog.Logger
	// Consumer names this bus instance within its consumer groups (it shows
	// in XINFO CONSUMERS and in bus_pending). Unset, a name unique to the
	// instance (host-pid-random) is made up; two live instances must never
	// share one. What a crashed instance held is reclaimed by the others,
	// or by its successor, after ClaimMinIdle.
	Consumer string
	// Prefix starts every Redis key (default "pos:"); tests isolate with it.
	Prefix string

	// MaxDeliveries is how many failed deliveries send a message to the
	// dead letters (default 10).
	MaxDeliveries int
	// BatchSize is how many messages one read takes (default 16).
	BatchSize int
	// BlockTime is how long one read waits for new messages: Redis BLOCK,
	// and the SQL poll fallback when no in-process publish wakes it
	// (default 1s). It bounds how long Close takes.
	BlockTime time.Duration
	// RetryBackoff is the wait before the second delivery; it doubles per
	// failure up to MaxRetryBackoff (defaults 200ms and 10s).
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// MaxRetrying caps the messages one subscription keeps waiting for a
	// retry; at the cap it stops reading new ones (default 256).
	MaxRetrying int
	// ClaimMinIdle is how long a message may sit with a consumer, unacked
	// and untouched, before another consumer of the group takes it over
	// (default 60s). It must exceed MaxRetryBackoff and the longest handler
	// run, or live consumers lose messages to each other (harmless, but
	// wasted work).
	ClaimMinIdle time.Duration
	// ClaimInterval is how often a subscription looks for such messages
	// (default 10s).
	ClaimInterval time.Duration
	// LagInterval is how often the consumer lag gauge is refreshed
	// (default 15s).
	LagInterval time.Duration
	// Retention keeps acknowledged entries this long, so a group created
	// later and an operator replay still find them (default 24h).
	Retention time.Duration
	// TrimInterval is how often the bus trims its streams; negative turns
	// automatic trimming off (default 1m).
	TrimInterval time.Duration
	// DedupWindow is how long RedisBus remembers a published event id to
	// drop a second publish of it; negative turns it off (default 1h).
	DedupWindow time.Duration
	// ConsumerTTL removes Redis consumers idle this long that hold no
	// messages: every restart with a made-up name leaves one behind
	// (default 24h).
	ConsumerTTL time.Duration
}

// withDefaults fills the zero fields and checks the combination.
func (o Options) withDefaults() (Options, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Consumer == "" {
		o.Consumer = defaultConsumerName()
	}
	if o.Prefix == "" {
		o.Prefix = "pos:"
	}
	if o.MaxDeliveries == 0 {
		o.MaxDeliveries = 10
	}
	if o.BatchSize == 0 {
		o.BatchSize = 16
	}
	if o.MaxRetrying == 0 {
		o.MaxRetrying = 256
	}
	def(&o.BlockTime, time.Second)
	def(&o.RetryBackoff, 200*time.Millisecond)
	def(&o.MaxRetryBackoff, 10*time.Second)
	def(&o.ClaimMinIdle, time.Minute)
	def(&o.ClaimInterval, 10*time.Second)
	def(&o.LagInterval, 15*time.Second)
	def(&o.Retention, 24*time.Hour)
	def(&o.TrimInterval, time.Minute)
	def(&o.DedupWindow, time.Hour)
	def(&o.ConsumerTTL, 24*time.Hour)
	switch {
	case o.MaxDeliveries < 1 || o.BatchSize < 1 || o.MaxRetrying < 1:
		return o, fmt.Errorf("bus options: MaxDeliveries, BatchSize and MaxRetrying must be positive: %w", errs.Invalid)
	case o.BlockTime < time.Millisecond || o.RetryBackoff <= 0 || o.MaxRetryBackoff < o.RetryBackoff:
		return o, fmt.Errorf("bus options: BlockTime ≥ 1ms, 0 < RetryBackoff ≤ MaxRetryBackoff: %w", errs.Invalid)
	case o.ClaimMinIdle <= o.MaxRetryBackoff:
		// A message waiting out its backoff would be taken from a healthy
		// consumer by another one.
		return o, fmt.Errorf("bus options: ClaimMinIdle (%s) must exceed MaxRetryBackoff (%s): %w", o.ClaimMinIdle, o.MaxRetryBackoff, errs.Invalid)
	case o.ClaimInterval <= 0 || o.LagInterval <= 0 || o.Retention < 0:
		return o, fmt.Errorf("bus options: intervals must be positive: %w", errs.Invalid)
	case len(o.Consumer) > 200:
		return o, fmt.Errorf("bus options: consumer name %q too long: %w", o.Consumer, errs.Invalid)
	}
	return o, nil
}

// defaultConsumerName is unique per bus instance: two processes (or two
// buses in one test) must never pose as the same consumer.
func defaultConsumerName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "pos"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// backoff is the wait after the n-th failed delivery: RetryBackoff doubled
// per failure, capped, with ±20% jitter so a burst of failures does not
// retry in lockstep.
func (o Options) backoff(n int, jitter float64) time.Duration {
	d := o.RetryBackoff
	for i := 1; i < n && d < o.MaxRetryBackoff; i++ {
		d *= 2
	}
	d = min(d, o.MaxRetryBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*jitter))
}
