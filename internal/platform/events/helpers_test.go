package events

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/inbox"
	"github.com/retailco/pos/internal/platform/testkit"
)

// opener opens another bus instance on one test's storage: to the bus, each
// instance is a separate process. Instances are closed when the test ends.
type opener func(t *testing.T, o Options) Bus

// adapter makes fresh, empty storage for one test.
type adapter struct {
	name    string
	storage func(t *testing.T) opener
}

// adapters are the buses the contract runs on: SQLBus on every database
// engine of the run, and RedisBus (skipped, or failed in CI, without Redis).
func adapters(t *testing.T) []adapter {
	var out []adapter
	for _, b := range testkit.Backends(t) {
		out = append(out, adapter{name: "sql-" + b.Name, storage: func(t *testing.T) opener {
			dbo := b.Options(t, "bus")
			return func(t *testing.T, o Options) Bus {
				t.Helper()
				bus, err := OpenSQLBus(context.Background(), dbo, o)
				if err != nil {
					t.Fatalf("open sql bus: %v", err)
				}
				t.Cleanup(func() { _ = bus.Close() })
				return bus
			}
		}})
	}
	out = append(out, adapter{name: "redis", storage: func(t *testing.T) opener {
		url, prefix := testkit.RedisURL(t)
		t.Cleanup(func() { deleteKeys(t, url, prefix) })
		return func(t *testing.T, o Options) Bus {
			t.Helper()
			o.Prefix = prefix
			bus, err := NewRedisBus(context.Background(), url, o)
			if err != nil {
				t.Fatalf("open redis bus: %v", err)
			}
			t.Cleanup(func() { _ = bus.Close() })
			return bus
		}
	}})
	return out
}

// deleteKeys removes a test's keys from the shared Redis.
func deleteKeys(t *testing.T, url, prefix string) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
}

// testOptions shortens every interval so the suite runs in seconds.
func testOptions() Options {
	return Options{
		Registry:        prometheus.NewRegistry(),
		Logger:          testkit.Logger(),
		BlockTime:       100 * time.Millisecond,
		RetryBackoff:    5 * time.Millisecond,
		MaxRetryBackoff: 40 * time.Millisecond,
		ClaimMinIdle:    400 * time.Millisecond,
		ClaimInterval:   100 * time.Millisecond,
		LagInterval:     100 * time.Millisecond,
		TrimInterval:    -1, // tests trim by hand
	}
}

// recorder remembers what a group's handlers saw.
type recorder struct {
	mu       sync.Mutex
	calls    map[string]int // handler calls per event id
	ok       map[string]int // calls that returned nil
	envs     map[string]Envelope
	attempts map[string][]int
	problems []string
}

func newRecorder() *recorder {
	return &recorder{calls: map[string]int{}, ok: map[string]int{}, envs: map[string]Envelope{}, attempts: map[string][]int{}}
}

func (r *recorder) call(ctx context.Context, env Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[env.EventID]++
	r.envs[env.EventID] = env
	r.attempts[env.EventID] = append(r.attempts[env.EventID], Attempt(ctx))
}

func (r *recorder) done(env Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ok[env.EventID]++
}

func (r *recorder) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// handler records and succeeds.
func (r *recorder) handler() Handler {
	return func(ctx context.Context, env Envelope) error {
		r.call(ctx, env)
		r.done(env)
		return nil
	}
}

func (r *recorder) okCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ok)
}

func (r *recorder) callsOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

func (r *recorder) okOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok[id]
}

func (r *recorder) attemptsOf(id string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.attempts[id]...)
}

// checkExactlyOnce fails unless every id in want was handled successfully
// exactly once and nothing else was.
func (r *recorder) checkExactlyOnce(t *testing.T, who string, want []Envelope) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	wantIDs := map[string]bool{}
	lost := 0
	for _, e := range want {
		wantIDs[e.EventID] = true
		switch n := r.ok[e.EventID]; {
		case n == 0:
			lost++
		case n > 1:
			t.Errorf("%s: event %s handled %d times, want once", who, e.EventID, n)
		}
	}
	if lost > 0 {
		t.Errorf("%s: %d of %d events lost", who, lost, len(want))
	}
	for id := range r.ok {
		if !wantIDs[id] {
			t.Errorf("%s: received event %s that it should not have", who, id)
		}
	}
	for _, p := range r.problems {
		t.Errorf("%s: %s", who, p)
	}
}

// waitFor polls cond until it holds or the (generous) deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// makeEvents builds n envelopes on stream, in order.
func makeEvents(t *testing.T, ctx context.Context, stream string, n int) []Envelope {
	t.Helper()
	out := make([]Envelope, n)
	for i := range out {
		env, err := New(ctx, stream+".thing_happened", fmt.Sprintf("agg-%d", i), int64(i+1), map[string]any{"n": i, "stream": stream})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = env
	}
	return out
}

func publish(t *testing.T, bus Bus, envs ...Envelope) {
	t.Helper()
	if err := bus.Publish(context.Background(), envs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func subscribe(t *testing.T, bus Bus, group string, streams []string, h Handler, opts ...SubscribeOption) *Subscription {
	t.Helper()
	sub, err := bus.Subscribe(context.Background(), group, streams, h, opts...)
	if err != nil {
		t.Fatalf("subscribe %s: %v", group, err)
	}
	return sub
}

// metricValue sums the samples of a metric family whose labels include
// the given ones.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

// consumerDB is a consumer context's own database: the inbox and a table
// of effects without a unique key, so a repeated effect would show.
func consumerDB(t *testing.T) *gorm.DB {
	t.Helper()
	ctx := context.Background()
	gdb, err := db.Open(ctx, testkit.SQLite.Options(t, "consumer"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	if err := db.MigrateSet(ctx, gdb, inbox.Set, inbox.Migrations); err != nil {
		t.Fatal(err)
	}
	if err := gdb.Exec(`CREATE TABLE effects (event_id TEXT NOT NULL)`).Error; err != nil {
		t.Fatal(err)
	}
	return gdb
}

// apply is an idempotent consumer's handler body: its own transaction,
// Once first, then the effect.
func apply(ctx context.Context, gdb *gorm.DB, consumer string, env Envelope) error {
	return gdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		first, err := inbox.Once(tx, consumer, env.EventID)
		if err != nil || !first {
			return err
		}
		return tx.Exec(`INSERT INTO effects (event_id) VALUES (?)`, env.EventID).Error
	})
}

// effects returns how often each event's effect was applied.
func effects(t *testing.T, gdb *gorm.DB) map[string]int {
	t.Helper()
	var rows []struct {
		EventID string
		N       int
	}
	if err := gdb.Raw(`SELECT event_id, COUNT(*) AS n FROM effects GROUP BY event_id`).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.EventID] = r.N
	}
	return out
}

func checkEffectsOnce(t *testing.T, gdb *gorm.DB, want []Envelope) {
	t.Helper()
	got := effects(t, gdb)
	for _, e := range want {
		if got[e.EventID] != 1 {
			t.Errorf("effect of %s applied %d times, want exactly once", e.EventID, got[e.EventID])
		}
	}
	if len(got) != len(want) {
		ids := make([]string, 0, len(got))
		for id := range got {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		t.Errorf("effects of %d events, want %d: %v", len(got), len(want), ids)
	}
}
