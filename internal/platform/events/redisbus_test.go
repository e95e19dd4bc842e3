package events

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retailco/pos/internal/platform/testkit"
)

// privateRedis is a redis-server of the test's own, so the test can kill
// and restart it without touching the shared one.
type privateRedis struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if testkit.RequireInfra() {
			t.Fatalf("redis-server not found but POS_TEST_REQUIRE_INFRA=1: %v", err)
		}
		t.Skipf("redis-server not installed: skipping the restart test; POS_TEST_REQUIRE_INFRA=1 (CI) fails instead (%v)", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	r := &privateRedis{t: t, bin: bin, port: port, dir: t.TempDir()}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// start runs the server with an append-only file fsynced on every write:
// what was acknowledged before a crash is there after it.
func (r *privateRedis) start() {
	r.t.Helper()
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--dir", r.dir)
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.mu.Lock()
	r.cmd = cmd
	r.mu.Unlock()
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.t.Fatal("private redis-server did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runID tells one server process from the next.
func (r *privateRedis) runID() string {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	defer c.Close()
	info, err := c.Info(context.Background(), "server").Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v
		}
	}
	return ""
}

// kill is a crash: SIGKILL, no chance to flush anything.
func (r *privateRedis) kill() {
	r.mu.Lock()
	cmd := r.cmd
	r.cmd = nil
	r.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// TestRedisRestart crashes Redis in the middle of a run: publishes that
// fail are retried (as the outbox relay does), consumers ride out the
// outage, and every event is applied exactly once in the end.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	srv := startPrivateRedis(t)
	o := testOptions()
	o.Prefix = "restart:"
	ctx := context.Background()
	bus, err := NewRedisBus(ctx, srv.url(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })

	gdb := consumerDB(t)
	rec := newRecorder()
	subscribe(t, bus, "reporting", []string{"sales", "orders"}, func(hctx context.Context, env Envelope) error {
		rec.call(hctx, env)
		time.Sleep(2 * time.Millisecond) // keep some messages in flight when Redis dies
		if err := apply(hctx, gdb, "reporting", env); err != nil {
			return err
		}
		rec.done(env)
		return nil
	})
	// publishRetrying is what the relay does: keep trying until Redis
	// takes the event (and only then consider it published).
	var failedPublishes atomic.Int64
	publishRetrying := func(envs []Envelope) error {
		deadline := time.Now().Add(30 * time.Second)
		for _, e := range envs {
			for {
				err := bus.Publish(ctx, e)
				if err == nil {
					break
				}
				failedPublishes.Add(1)
				if time.Now().After(deadline) {
					return err
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		return nil
	}
	before := append(makeEvents(t, ctx, "sales", 30), makeEvents(t, ctx, "orders", 30)...)
	during := makeEvents(t, ctx, "orders", 30)
	after := makeEvents(t, ctx, "sales", 30)
	if err := publishRetrying(before); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "consumption to start", func() bool { return rec.okCount() >= 5 })

	firstRun := srv.runID()
	srv.kill()
	done := make(chan error, 1)
	go func() { done <- publishRetrying(during) }()
	// Longer than go-redis's own retries of a command, so publishes and
	// reads really fail for a while.
	time.Sleep(1500 * time.Millisecond)
	srv.start()
	if err := <-done; err != nil {
		t.Fatalf("publishing across the restart: %v", err)
	}
	if runID := srv.runID(); runID == firstRun || runID == "" {
		t.Fatalf("redis run id %q after the restart, was %q: no restart happened", runID, firstRun)
	}
	t.Logf("%d publishes failed during the outage and were retried", failedPublishes.Load())
	if err := publishRetrying(after); err != nil {
		t.Fatal(err)
	}
	all := append(append(append([]Envelope(nil), before...), during...), after...)
	waitFor(t, 30*time.Second, "every event after the restart", func() bool { return len(effects(t, gdb)) == len(all) })
	if err := bus.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	checkEffectsOnce(t, gdb, all)
	for _, e := range all {
		if rec.okOf(e.EventID) == 0 {
			t.Errorf("event %s never handled successfully", e.EventID)
		}
	}
}

// TestRedisPrefixIsolation: two buses with different prefixes on one Redis
// share nothing, even with the same stream and group names.
func TestRedisPrefixIsolation(t *testing.T) {
	t.Parallel()
	url, p1 := testkit.RedisURL(t)
	_, p2 := testkit.RedisURL(t)
	t.Cleanup(func() { deleteKeys(t, url, p1); deleteKeys(t, url, p2) })
	ctx := context.Background()
	open := func(prefix string) *RedisBus {
		o := testOptions()
		o.Prefix = prefix
		b, err := NewRedisBus(ctx, url, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	b1, b2 := open(p1), open(p2)
	r1, r2 := newRecorder(), newRecorder()
	subscribe(t, b1, "audit", []string{"sales"}, r1.handler())
	subscribe(t, b2, "audit", []string{"sales"}, r2.handler())
	e1, e2 := makeEvents(t, ctx, "sales", 5), makeEvents(t, ctx, "sales", 5)
	publish(t, b1, e1...)
	publish(t, b2, e2...)
	waitFor(t, 10*time.Second, "both buses' events", func() bool { return r1.okCount() == 5 && r2.okCount() == 5 })
	_ = b1.Close()
	_ = b2.Close()
	r1.checkExactlyOnce(t, "bus 1", e1)
	r2.checkExactlyOnce(t, "bus 2", e2)
}

// TestRedisDedupWindowOff: with dedup turned off a repeated publish is a
// second entry, which the consumer's inbox then absorbs.
func TestRedisDedupWindowOff(t *testing.T) {
	t.Parallel()
	url, prefix := testkit.RedisURL(t)
	t.Cleanup(func() { deleteKeys(t, url, prefix) })
	o := testOptions()
	o.Prefix, o.DedupWindow = prefix, -1
	ctx := context.Background()
	bus, err := NewRedisBus(ctx, url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	gdb := consumerDB(t)
	rec := newRecorder()
	subscribe(t, bus, "audit", []string{"claims"}, func(hctx context.Context, env Envelope) error {
		rec.call(hctx, env)
		return apply(hctx, gdb, "audit", env)
	})
	evs := makeEvents(t, ctx, "claims", 2)
	publish(t, bus, evs[0])
	publish(t, bus, evs[0])
	publish(t, bus, evs[1])
	waitFor(t, 10*time.Second, "three deliveries", func() bool { return rec.callsOf(evs[0].EventID) == 2 && rec.callsOf(evs[1].EventID) == 1 })
	checkEffectsOnce(t, gdb, evs)
}

func TestStreamIDs(t *testing.T) {
	cases := []struct{ in, next string }{
		{"0-0", "0-1"},
		{"1700000000000-5", "1700000000000-6"},
		{"5-18446744073709551615", "6-0"},
	}
	for _, c := range cases {
		id, ok := parseID(c.in)
		if !ok || id.String() != c.in || id.next().String() != c.next {
			t.Errorf("parseID(%q) = %v %v, next %v; want next %s", c.in, id, ok, id.next(), c.next)
		}
	}
	a, _ := parseID("10-2")
	b, _ := parseID("9-100")
	if minID(a, b) != b || minID(b, a) != b {
		t.Errorf("minID(10-2, 9-100) wrong")
	}
	if _, ok := parseID("nonsense"); ok {
		t.Error("parseID accepted nonsense")
	}
}
