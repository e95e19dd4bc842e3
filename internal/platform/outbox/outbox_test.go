package outbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/inbox"
	"github.com/retailco/pos/internal/platform/testkit"
)

// producerDB is a producing context's database: its own table and the
// outbox, as a context would migrate them.
func producerDB(t *testing.T, b testkit.Backend) *gorm.DB {
	t.Helper()
	ctx := context.Background()
	gdb, err := db.Open(ctx, b.Options(t, "sales"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	if err := db.MigrateSet(ctx, gdb, Set, Migrations); err != nil {
		t.Fatal(err)
	}
	if err := gdb.Exec(`CREATE TABLE sales (id TEXT PRIMARY KEY, total_cents BIGINT NOT NULL)`).Error; err != nil {
		t.Fatal(err)
	}
	return gdb
}

// sell is a producer's write: the state change and its event in one
// transaction.
func sell(ctx context.Context, gdb *gorm.DB, id string, total int64, fail bool) (events.Envelope, error) {
	env, err := events.New(ctx, "sales.sale_completed", id, 1, map[string]int64{"total_cents": total})
	if err != nil {
		return env, err
	}
	err = gdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`INSERT INTO sales (id, total_cents) VALUES (?, ?)`, id, total).Error; err != nil {
			return err
		}
		if err := Add(tx, env); err != nil {
			return err
		}
		if fail {
			return errors.New("payment declined") // rolls back the sale and its event
		}
		return nil
	})
	return env, err
}

func testBus(t *testing.T, o events.Options) events.Bus {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testkit.Logger()
	}
	o.BlockTime, o.RetryBackoff, o.MaxRetryBackoff = 50*time.Millisecond, 5*time.Millisecond, 40*time.Millisecond
	o.ClaimMinIdle, o.ClaimInterval, o.TrimInterval = 400*time.Millisecond, 100*time.Millisecond, -1
	bus, err := events.OpenSQLBus(context.Background(), testkit.SQLite.Options(t, "bus"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}

func redisBus(t *testing.T, o events.Options) events.Bus {
	t.Helper()
	url, prefix := testkit.RedisURL(t)
	t.Cleanup(func() {
		opt, _ := redis.ParseURL(url)
		c := redis.NewClient(opt)
		defer c.Close()
		iter := c.Scan(context.Background(), 0, prefix+"*", 500).Iterator()
		for iter.Next(context.Background()) {
			c.Del(context.Background(), iter.Val())
		}
	})
	o.Prefix, o.Logger = prefix, testkit.Logger()
	o.BlockTime, o.RetryBackoff, o.MaxRetryBackoff = 50*time.Millisecond, 5*time.Millisecond, 40*time.Millisecond
	o.ClaimMinIdle, o.ClaimInterval, o.TrimInterval = 400*time.Millisecond, 100*time.Millisecond, -1
	bus, err := events.NewRedisBus(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}

// startRelay runs r until the test ends (or stop is called).
func startRelay(t *testing.T, r *Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("relay: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// sink collects what a consumer group receives, in order.
type sink struct {
	mu    sync.Mutex
	order []string
	calls map[string]int
}

func newSink() *sink { return &sink{calls: map[string]int{}} }

func (s *sink) handler(next func(context.Context, events.Envelope) error) events.Handler {
	return func(ctx context.Context, env events.Envelope) error {
		s.mu.Lock()
		s.calls[env.EventID]++
		s.mu.Unlock()
		if next != nil {
			if err := next(ctx, env); err != nil {
				return err
			}
		}
		s.mu.Lock()
		s.order = append(s.order, env.EventID)
		s.mu.Unlock()
		return nil
	}
}

func (s *sink) has(ids ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, id := range s.order {
		seen[id] = true
	}
	for _, id := range ids {
		if !seen[id] {
			return false
		}
	}
	return true
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

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

func ids(envs []events.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.EventID
	}
	return out
}

func gauge(t *testing.T, reg *prometheus.Registry, name, label, value string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// TestRelay: committed events reach the bus in insertion order, rolled-back
// ones never do, and the backlog drains.
func TestRelay(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		t.Parallel()
		ctx := context.Background()
		gdb := producerDB(t, b)
		bus := testBus(t, events.Options{})
		reg := prometheus.NewRegistry()
		relay, err := NewRelay(gdb, bus, RelayOptions{Name: "sales", PollInterval: 20 * time.Millisecond, BatchSize: 7, Registry: reg, Logger: testkit.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		got := newSink()
		if _, err := bus.Subscribe(ctx, "reporting", []string{"sales"}, got.handler(nil)); err != nil {
			t.Fatal(err)
		}
		var committed []events.Envelope
		for i := 0; i < 40; i++ {
			env, err := sell(ctx, gdb, fmt.Sprintf("sale-%d", i), int64(100+i), i%5 == 4)
			if i%5 == 4 {
				if err == nil {
					t.Fatal("the failing sale committed")
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			committed = append(committed, env)
		}
		if n, err := relay.Backlog(ctx); err != nil || n != int64(len(committed)) {
			t.Fatalf("backlog before the relay = %d (%v), want %d", n, err, len(committed))
		}
		startRelay(t, relay)
		waitFor(t, 20*time.Second, "every committed event", func() bool { return got.count() >= len(committed) })
		got.mu.Lock()
		order := append([]string(nil), got.order...)
		got.mu.Unlock()
		want := ids(committed)
		if fmt.Sprint(order) != fmt.Sprint(want) {
			t.Errorf("received %v\nwant (insertion order) %v", order, want)
		}
		waitFor(t, 10*time.Second, "the backlog gauge to read 0", func() bool {
			v, ok := gauge(t, reg, "outbox_backlog", "producer", "sales")
			return ok && v == 0
		})
		if n, _ := relay.Backlog(ctx); n != 0 {
			t.Errorf("backlog after the relay = %d", n)
		}
	})
}

// crashingPublisher publishes through the real bus, then dies before the
// relay can mark the rows: it cancels the relay's context and reports an
// error, as a killed process would leave things.
type crashingPublisher struct {
	real  events.Publisher
	kill  context.CancelFunc
	calls atomic.Int64
}

func (p *crashingPublisher) Publish(ctx context.Context, envs ...events.Envelope) error {
	p.calls.Add(1)
	if err := p.real.Publish(ctx, envs...); err != nil {
		return err
	}
	p.kill()
	return errors.New("killed after publish, before mark")
}

// TestRelayCrashBetweenPublishAndMark: the rows stay unpublished, the next
// relay publishes them again, nothing is lost, and the consumer's inbox
// makes the effect happen once. On the SQL bus (and Redis with dedup) the
// repeat is dropped at the bus; with Redis dedup off the consumer sees it.
func TestRelayCrashBetweenPublishAndMark(t *testing.T) {
	t.Parallel()
	buses := map[string]func(t *testing.T) (events.Bus, bool){
		"sql bus":            func(t *testing.T) (events.Bus, bool) { return testBus(t, events.Options{}), false },
		"redis bus no dedup": func(t *testing.T) (events.Bus, bool) { return redisBus(t, events.Options{DedupWindow: -1}), true },
	}
	for name, newBus := range buses {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
				ctx := context.Background()
				bus, dupsReachConsumer := newBus(t)
				gdb := producerDB(t, b)
				consumer := consumerDB(t)
				got := newSink()
				_, err := bus.Subscribe(ctx, "notification", []string{"sales"}, got.handler(func(hctx context.Context, env events.Envelope) error {
					return applyOnce(hctx, consumer, env)
				}))
				if err != nil {
					t.Fatal(err)
				}
				var committed []events.Envelope
				for i := 0; i < 12; i++ {
					env, err := sell(ctx, gdb, fmt.Sprintf("s%d", i), 10, false)
					if err != nil {
						t.Fatal(err)
					}
					committed = append(committed, env)
				}
				rctx, kill := context.WithCancel(ctx)
				crash := &crashingPublisher{real: bus, kill: kill}
				r1, err := NewRelay(gdb, crash, RelayOptions{Name: "sales", PollInterval: 20 * time.Millisecond, BatchSize: 5, Logger: testkit.Logger()})
				if err != nil {
					t.Fatal(err)
				}
				if err := r1.Run(rctx); err != nil {
					t.Fatal(err)
				}
				if crash.calls.Load() != 1 {
					t.Fatalf("crashed relay published %d times", crash.calls.Load())
				}
				// The first batch was published but not marked.
				if n, _ := r1.Backlog(ctx); n != int64(len(committed)) {
					t.Fatalf("backlog after the crash = %d, want %d (nothing marked)", n, len(committed))
				}
				r2, err := NewRelay(gdb, bus, RelayOptions{Name: "sales", PollInterval: 20 * time.Millisecond, BatchSize: 5, Logger: testkit.Logger()})
				if err != nil {
					t.Fatal(err)
				}
				startRelay(t, r2)
				waitFor(t, 20*time.Second, "every event applied", func() bool { return len(effectsOf(t, consumer)) == len(committed) })
				if dupsReachConsumer {
					waitFor(t, 20*time.Second, "the republished batch to reach the consumer", func() bool {
						got.mu.Lock()
						defer got.mu.Unlock()
						for _, e := range committed[:5] {
							if got.calls[e.EventID] != 2 {
								return false
							}
						}
						return true
					})
				}
				eff := effectsOf(t, consumer)
				for _, e := range committed {
					if eff[e.EventID] != 1 {
						t.Errorf("event %s applied %d times, want once", e.EventID, eff[e.EventID])
					}
				}
				if !dupsReachConsumer {
					got.mu.Lock()
					for _, e := range committed {
						if n := got.calls[e.EventID]; n != 1 {
							t.Errorf("event %s delivered %d times; the bus should drop the republish", e.EventID, n)
						}
					}
					got.mu.Unlock()
				}
			})
		})
	}
}

// TestLateCommitNotSkipped provokes the checkpoint relay's bug: a
// transaction holding a lower position commits after a higher one was
// already published. PostgreSQL only: SQLite has one writer at a time, so
// positions always commit in order there.
func TestLateCommitNotSkipped(t *testing.T) {
	t.Parallel()
	b := testkit.Backend{Name: "postgres"}
	testkit.PostgresURL(t) // skips (or fails in CI) without PostgreSQL
	ctx := context.Background()
	gdb := producerDB(t, b)
	bus := testBus(t, events.Options{})
	got := newSink()
	if _, err := bus.Subscribe(ctx, "audit", []string{"sales"}, got.handler(nil)); err != nil {
		t.Fatal(err)
	}
	relay, err := NewRelay(gdb, bus, RelayOptions{Name: "sales", PollInterval: 20 * time.Millisecond, Logger: testkit.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	startRelay(t, relay)

	// The long transaction takes its position first...
	slow, _ := events.New(ctx, "sales.sale_completed", "slow", 1, nil)
	fast, _ := events.New(ctx, "sales.sale_completed", "fast", 1, nil)
	long := gdb.WithContext(ctx).Begin()
	if err := Add(long, slow); err != nil {
		t.Fatal(err)
	}
	var slowPos int64
	if err := db.ScanRow(long.Raw(`SELECT position FROM outbox WHERE event_id = ?`, slow.EventID), &slowPos); err != nil {
		t.Fatal(err)
	}
	// ...a short one takes the next and commits...
	if err := gdb.Transaction(func(tx *gorm.DB) error { return Add(tx, fast) }); err != nil {
		t.Fatal(err)
	}
	var fastPos int64
	if err := db.ScanRow(gdb.Raw(`SELECT position FROM outbox WHERE event_id = ?`, fast.EventID), &fastPos); err != nil {
		t.Fatal(err)
	}
	if fastPos <= slowPos {
		t.Fatalf("positions %d (fast) ≤ %d (slow): the scenario did not happen", fastPos, slowPos)
	}
	// ...and is published while the lower position is still invisible.
	waitFor(t, 20*time.Second, "the later position to be published", func() bool { return got.has(fast.EventID) })
	if got.has(slow.EventID) {
		t.Fatal("uncommitted event published")
	}
	if err := long.Commit().Error; err != nil {
		t.Fatal(err)
	}
	relay.Notify()
	waitFor(t, 20*time.Second, "the late-committed event", func() bool { return got.has(slow.EventID) })
}

// countingPublisher counts how often each event was handed to the bus.
type countingPublisher struct {
	real events.Publisher
	mu   sync.Mutex
	n    map[string]int
}

func (p *countingPublisher) Publish(ctx context.Context, envs ...events.Envelope) error {
	if err := p.real.Publish(ctx, envs...); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range envs {
		p.n[e.EventID]++
	}
	return nil
}

// TestTwoRelaysOneOutbox: two processes of one context each run a relay on
// the shared PostgreSQL database; the advisory lock lets one work at a
// time, so nothing is published twice (and nothing is missed).
func TestTwoRelaysOneOutbox(t *testing.T) {
	t.Parallel()
	testkit.PostgresURL(t) // skips (or fails in CI) without PostgreSQL
	ctx := context.Background()
	gdb := producerDB(t, testkit.Backend{Name: "postgres"})
	pub := &countingPublisher{real: testBus(t, events.Options{}), n: map[string]int{}}
	var committed []events.Envelope
	for i := 0; i < 60; i++ {
		env, err := sell(ctx, gdb, fmt.Sprintf("s%d", i), 1, false)
		if err != nil {
			t.Fatal(err)
		}
		committed = append(committed, env)
	}
	for i := 0; i < 2; i++ {
		r, err := NewRelay(gdb, pub, RelayOptions{Name: "sales", PollInterval: 5 * time.Millisecond, BatchSize: 3, Logger: testkit.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		startRelay(t, r)
	}
	waitFor(t, 20*time.Second, "the outbox to drain", func() bool {
		var n int64
		_ = db.ScanRow(gdb.Raw(`SELECT COUNT(*) FROM outbox WHERE published_at IS NULL`), &n)
		return n == 0
	})
	pub.mu.Lock()
	defer pub.mu.Unlock()
	for _, e := range committed {
		if pub.n[e.EventID] != 1 {
			t.Errorf("event %s published %d times by two relays, want once", e.EventID, pub.n[e.EventID])
		}
	}
}

// TestNotifyWakesRelay: with a one-hour poll, Notify after a commit is what
// gets the event out.
func TestNotifyWakesRelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gdb := producerDB(t, testkit.SQLite)
	bus := testBus(t, events.Options{})
	got := newSink()
	if _, err := bus.Subscribe(ctx, "notification", []string{"sales"}, got.handler(nil)); err != nil {
		t.Fatal(err)
	}
	relay, err := NewRelay(gdb, bus, RelayOptions{Name: "sales", PollInterval: time.Hour, Logger: testkit.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRelay(t, relay)
	time.Sleep(100 * time.Millisecond) // past its first round, asleep for an hour
	env, err := sell(ctx, gdb, "s1", 5, false)
	if err != nil {
		t.Fatal(err)
	}
	relay.Notify()
	relay.Notify() // a second one while one is pending must not block
	waitFor(t, 20*time.Second, "the notified event", func() bool { return got.has(env.EventID) })
	start := time.Now()
	stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stopping the relay took %s", d)
	}
}

// blockingPublisher never returns until its context ends: Run must still
// stop promptly.
type blockingPublisher struct{ entered chan struct{} }

func (p blockingPublisher) Publish(ctx context.Context, envs ...events.Envelope) error {
	close(p.entered)
	<-ctx.Done()
	return ctx.Err()
}

func TestRunStopsPromptlyAndKeepsRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gdb := producerDB(t, testkit.SQLite)
	if _, err := sell(ctx, gdb, "s1", 5, false); err != nil {
		t.Fatal(err)
	}
	pub := blockingPublisher{entered: make(chan struct{})}
	relay, err := NewRelay(gdb, pub, RelayOptions{Name: "sales", Logger: testkit.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRelay(t, relay)
	<-pub.entered
	start := time.Now()
	stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stopping a relay stuck in publish took %s", d)
	}
	if n, _ := relay.Backlog(ctx); n != 1 {
		t.Errorf("backlog = %d, want 1: an interrupted publish must not mark the row", n)
	}
}

// failingPublisher is a bus that is down.
type failingPublisher struct{}

func (failingPublisher) Publish(context.Context, ...events.Envelope) error {
	return fmt.Errorf("bus down: %w", errs.Unavailable)
}

func TestBacklogGaugeWhileBusDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gdb := producerDB(t, testkit.SQLite)
	for i := 0; i < 3; i++ {
		if _, err := sell(ctx, gdb, fmt.Sprintf("s%d", i), 5, false); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	// Two relays on one registry share the family.
	relay, err := NewRelay(gdb, failingPublisher{}, RelayOptions{Name: "sales", PollInterval: 10 * time.Millisecond, Registry: reg, Logger: testkit.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRelay(gdb, failingPublisher{}, RelayOptions{Name: "orders", Registry: reg}); err != nil {
		t.Fatalf("second relay on one registry: %v", err)
	}
	startRelay(t, relay)
	waitFor(t, 10*time.Second, "outbox_backlog{sales} = 3", func() bool {
		v, ok := gauge(t, reg, "outbox_backlog", "producer", "sales")
		return ok && v == 3
	})
}

// TestPublishedRowsAreDeleted: the outbox holds only what is still to be
// published; rows an earlier version marked published and kept are deleted
// by migration 0002, and rows it had not published yet stay for the relay.
func TestPublishedRowsAreDeleted(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		gdb, err := db.Open(ctx, b.Options(t, "sales"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close(gdb) })
		// The outbox as the first migration left it, with one row an
		// earlier relay marked published and one it had not reached.
		first := fstest.MapFS{}
		for _, name := range []string{"0001_outbox.postgres.sql", "0001_outbox.sqlite.sql"} {
			raw, err := fs.ReadFile(Migrations, name)
			if err != nil {
				t.Fatal(err)
			}
			first[name] = &fstest.MapFile{Data: raw}
		}
		if err := db.MigrateSet(ctx, gdb, Set, first); err != nil {
			t.Fatal(err)
		}
		if err := gdb.Exec(`CREATE TABLE sales (id TEXT PRIMARY KEY, total_cents BIGINT NOT NULL)`).Error; err != nil {
			t.Fatal(err)
		}
		old, _ := sell(ctx, gdb, "old", 5, false)
		pending, _ := sell(ctx, gdb, "pending", 5, false)
		if err := gdb.Exec(`UPDATE outbox SET published_at = ? WHERE event_id = ?`, time.Now().UTC(), old.EventID).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.MigrateSet(ctx, gdb, Set, Migrations); err != nil {
			t.Fatal(err)
		}
		if got := outboxIDs(t, gdb); len(got) != 1 || got[0] != pending.EventID {
			t.Fatalf("after migration 0002 the outbox holds %v, want only the unpublished %s", got, pending.EventID)
		}

		bus := testBus(t, events.Options{})
		got := newSink()
		if _, err := bus.Subscribe(ctx, "reporting", []string{"sales"}, got.handler(nil)); err != nil {
			t.Fatal(err)
		}
		relay, err := NewRelay(gdb, bus, RelayOptions{Name: "sales", PollInterval: 10 * time.Millisecond, Logger: testkit.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		fresh, _ := sell(ctx, gdb, "fresh", 5, false)
		startRelay(t, relay)
		waitFor(t, 10*time.Second, "the pending and fresh events to reach the consumer", func() bool {
			return got.has(pending.EventID) && got.has(fresh.EventID)
		})
		waitFor(t, 10*time.Second, "the published rows to leave the outbox", func() bool { return len(outboxIDs(t, gdb)) == 0 })
		if got.has(old.EventID) {
			t.Error("an event an earlier version had published was published again")
		}
	})
}

// outboxIDs are the event ids in the outbox, published or not.
func outboxIDs(t *testing.T, gdb *gorm.DB) []string {
	t.Helper()
	var ids []string
	if err := gdb.Raw(`SELECT event_id FROM outbox ORDER BY position`).Scan(&ids).Error; err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestAdd(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		gdb := producerDB(t, b)
		env, _ := events.New(ctx, "sales.sale_completed", "a", 1, nil)
		if err := gdb.Transaction(func(tx *gorm.DB) error { return Add(tx, env) }); err != nil {
			t.Fatal(err)
		}
		err := gdb.Transaction(func(tx *gorm.DB) error { return Add(tx, env) })
		if !errs.IsKind(err, errs.Conflict) {
			t.Errorf("adding an event id twice: %v, want Conflict", err)
		}
		bad := env
		bad.EventID, bad.Stream = "evt_x", "Not A Stream"
		if err := gdb.Transaction(func(tx *gorm.DB) error { return Add(tx, bad) }); !errs.IsKind(err, errs.Invalid) {
			t.Errorf("invalid envelope: %v, want Invalid", err)
		}
		if err := Add(gdb); err != nil {
			t.Errorf("adding nothing: %v", err)
		}
		// Positions follow the order of the call.
		var batch []events.Envelope
		for i := 0; i < 5; i++ {
			e, _ := events.New(ctx, "sales.line_added", "a", int64(i), nil)
			batch = append(batch, e)
		}
		if err := gdb.Transaction(func(tx *gorm.DB) error { return Add(tx, batch...) }); err != nil {
			t.Fatal(err)
		}
		var order []string
		gdb.Raw(`SELECT event_id FROM outbox WHERE event_type = 'sales.line_added' ORDER BY position`).Scan(&order)
		if fmt.Sprint(order) != fmt.Sprint(ids(batch)) {
			t.Errorf("positions order %v, want %v", order, ids(batch))
		}
	})
}

// consumerDB is a consumer's database with the inbox and an effects table
// without a unique key, so a repeated effect would show.
func consumerDB(t *testing.T) *gorm.DB {
	t.Helper()
	ctx := context.Background()
	gdb, err := db.Open(ctx, testkit.SQLite.Options(t, "notification"))
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

func applyOnce(ctx context.Context, gdb *gorm.DB, env events.Envelope) error {
	return gdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		first, err := inbox.Once(tx, "notification", env.EventID)
		if err != nil || !first {
			return err
		}
		return tx.Exec(`INSERT INTO effects (event_id) VALUES (?)`, env.EventID).Error
	})
}

func effectsOf(t *testing.T, gdb *gorm.DB) map[string]int {
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
