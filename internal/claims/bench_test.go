package claims

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/platform/testkit/mongotest"
)

// BenchmarkClaimCommands measures commands through the whole HTTP stack
// (Client → routes → service → event store) and the lag from a command's
// answer to the read model showing its event (relay → bus → projector), on
// the embedded deployment (SQLite, SQL-log bus) and the fleet's (MongoDB
// event store, Redis Streams, read model on PostgreSQL when available).
// Each op is one command; 16 goroutines walk claims through their
// lifecycle.
//
//   - max: as fast as the stack goes: cmd/s is the throughput; the lag
//     there is mostly the queue of a projector outrun by the commands.
//
//   - at-500: the same load paced to 500 commands/s, the rate the issue
//     sets: the lag there is the answer to "how stale is the read model".
//
//     go test -run '^$' -bench ClaimCommands -benchtime 3000x ./internal/claims/
func BenchmarkClaimCommands(b *testing.B) {
	cfgs := []struct {
		name string
		cfg  stackConfig
	}{
		{"sqlbus-sqlite", stackConfig{backend: testkit.SQLite}},
		{"redis-mongo", stackConfig{backend: lastBackend(b), mongo: true, redis: true, mongoURL: ferretOnPostgres}},
	}
	for _, c := range cfgs {
		b.Run(c.name+"/max", func(b *testing.B) { benchCommands(b, c.cfg, 0) })
		b.Run(c.name+"/at-500", func(b *testing.B) { benchCommands(b, c.cfg, 500) })
	}
}

// ferretOnPostgres is a FerretDB on the test PostgreSQL for the time of
// the benchmark (see mongotest.PostgresURL for why not SQLite); without
// PostgreSQL it falls back to mongotest's embedded one.
func ferretOnPostgres(tb testing.TB) string {
	base := os.Getenv("POS_TEST_POSTGRES_URL")
	if base == "" {
		return mongotest.URL(tb)
	}
	return mongotest.PostgresURL(tb, base, "claims_test")
}

// benchCommands runs b.N commands, paced to perSecond when it is not 0.
func benchCommands(b *testing.B, cfg stackConfig, perSecond float64) {
	var (
		mu sync.Mutex
		// claim@version → when the command was answered, the relay
		// published its event, the projector got it and applied it.
		issued, published, delivered, applied = map[string]time.Time{}, map[string]time.Time{}, map[string]time.Time{}, map[string]time.Time{}
		total                                 atomic.Int64
	)
	key := func(id string, v int64) string { return fmt.Sprintf("%s@%d", id, v) }
	stamp := func(m map[string]time.Time) func(events.Envelope) {
		return func(env events.Envelope) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if _, ok := m[key(env.AggregateID, env.AggregateVersion)]; !ok {
				m[key(env.AggregateID, env.AggregateVersion)] = now
			}
		}
	}
	cfg.published, cfg.delivered, cfg.handled = stamp(published), stamp(delivered), stamp(applied)
	// A quieter bus: the defaults of busOptions poll far more often than
	// production and would measure the test harness.
	cfg.busOpts = func(o *events.Options) { o.BlockTime = time.Second }
	st := newStack(b, cfg)
	client := NewClient(st.h.Client(Name, st.h.Keys.Agent))
	ctx := context.Background()
	var cmdLat []time.Duration
	pace := rate.NewLimiter(rate.Inf, 1)
	if perSecond > 0 {
		pace = rate.NewLimiter(rate.Limit(perSecond), 1)
	}

	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var (
			cur   Claim
			local []time.Duration
		)
		step := func() (Claim, error) {
			switch cur.Status {
			case StatusCreated:
				return client.AssignClaim(ctx, cur.ClaimID, Assignment{AgentID: "agt_bench"})
			case StatusAssigned:
				return client.StartClaim(ctx, cur.ClaimID)
			case StatusInProgress:
				return client.ResolveClaim(ctx, cur.ClaimID, Resolution{Resolution: "done"})
			case StatusResolved:
				return client.CloseClaim(ctx, cur.ClaimID)
			}
			return client.CreateClaim(ctx, NewClaim{CustomerID: "cus_bench", ClaimType: ProductDefect, Description: "bench"})
		}
		for pb.Next() {
			if err := pace.Wait(ctx); err != nil {
				b.Error(err)
				return
			}
			t0 := time.Now()
			c, err := step()
			if err != nil {
				b.Error(err)
				return
			}
			done := time.Now()
			local = append(local, done.Sub(t0))
			cur = c
			if cur.Status == StatusClosed {
				cur = Claim{}
			}
			mu.Lock()
			issued[key(c.ClaimID, c.Version)] = done
			mu.Unlock()
			total.Add(1)
		}
		mu.Lock()
		cmdLat = append(cmdLat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	n := int(total.Load())
	if n == 0 {
		return
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		caught := len(applied) >= len(issued)
		mu.Unlock()
		if caught {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("read model did not catch up: %d of %d events", len(applied), len(issued))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Where the lag comes from: the relay (command answered → on the bus),
	// the bus (→ handed to the projector), the projector (→ applied).
	mu.Lock()
	var lags, toBus, onBus []time.Duration
	for k, at := range issued {
		lags = append(lags, max(0, applied[k].Sub(at)))
		toBus = append(toBus, max(0, published[k].Sub(at)))
		onBus = append(onBus, max(0, delivered[k].Sub(published[k])))
	}
	mu.Unlock()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "cmd/s")
	b.ReportMetric(percentile(cmdLat, 0.95), "cmd-p95-ms")
	b.ReportMetric(percentile(toBus, 0.95), "relay-p95-ms")
	b.ReportMetric(percentile(onBus, 0.95), "bus-p95-ms")
	b.ReportMetric(percentile(lags, 0.50), "lag-p50-ms")
	b.ReportMetric(percentile(lags, 0.95), "lag-p95-ms")
}

// percentile is the p-th latency in milliseconds.
func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return float64(ds[int(float64(len(ds)-1)*p)].Microseconds()) / 1000
}
