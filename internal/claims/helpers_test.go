package claims

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
	"github.com/retailco/pos/internal/platform/testkit/mongotest"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// openReadDB opens a fresh claims database on b with every schema the
// claims context needs (the SQL event store's too, whether used or not).
func openReadDB(t testing.TB, b testkit.Backend) *gorm.DB {
	t.Helper()
	ctx := context.Background()
	gdb, err := db.Open(ctx, b.Options(t, Name))
	if err != nil {
		t.Fatalf("open claims db on %s: %v", b.Name, err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	must(t, Migrate(ctx, gdb, true))
	return gdb
}

// mongoURL is an embedded FerretDB of the test's own.
func mongoURL(t testing.TB) string {
	t.Helper()
	return mongotest.URL(t)
}

// openMongo starts an embedded FerretDB for the test and returns the store
// on a database of its own; more stores on the same server come from
// mongoOn.
func openMongo(t testing.TB, o MongoOptions) *MongoEventStore {
	t.Helper()
	return mongoOn(t, mongoURL(t), "claims_test", o)
}

func mongoOn(t testing.TB, url, dbName string, o MongoOptions) *MongoEventStore {
	t.Helper()
	s, err := OpenMongoEventStore(context.Background(), url, dbName, o)
	if err != nil {
		t.Fatalf("open mongo event store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// lastBackend is the most production-like SQL engine of the run:
// PostgreSQL when available, else SQLite.
func lastBackend(t testing.TB) testkit.Backend {
	bs := testkit.Backends(t)
	return bs[len(bs)-1]
}

// busOptions shortens every interval so tests run in seconds.
func busOptions() events.Options {
	return events.Options{
		Registry:        prometheus.NewRegistry(),
		Logger:          testkit.Logger(),
		BlockTime:       100 * time.Millisecond,
		RetryBackoff:    5 * time.Millisecond,
		MaxRetryBackoff: 40 * time.Millisecond,
		ClaimMinIdle:    400 * time.Millisecond,
		ClaimInterval:   100 * time.Millisecond,
		LagInterval:     time.Second,
		TrimInterval:    -1,
	}
}

// stackConfig picks the components of a test stack.
type stackConfig struct {
	// backend holds the read model, and the event store unless mongo.
	backend testkit.Backend
	// mongo selects the MongoDB event store: an embedded FerretDB on
	// SQLite (mongotest), or the server mongoURL starts.
	mongo    bool
	mongoURL func(testing.TB) string
	// redis selects the Redis Streams bus instead of the SQL-log bus.
	redis bool
	// busOpts adjust the bus options (nil: busOptions as is).
	busOpts func(*events.Options)
	// now is the service clock (nil: time.Now).
	now func() time.Time
	// noRelay leaves the relay to the test.
	noRelay bool
	// published, delivered and handled, when set, see every event the
	// relay published, the projector was handed, the projector applied.
	published, delivered, handled func(events.Envelope)
}

func (c stackConfig) name() string {
	store := "sql-" + c.backend.Name
	if c.mongo {
		store = "mongo"
	}
	bus := "sqlbus"
	if c.redis {
		bus = "redis"
	}
	return store + "+" + bus
}

// stack is the claims context as a monolith process runs it: event store,
// service, HTTP routes, relay to a real bus, projector subscribed to it.
type stack struct {
	cfg       stackConfig
	store     EventStore
	readDB    *gorm.DB
	bus       events.Bus
	svc       Service
	h         *testkit.HTTP
	projector *Projector
	pub       *publishLog
	seen      *handledLog
	mongoURL  string
	relayStop func()
}

// newStack builds and starts a stack; everything stops when the test ends.
func newStack(t testing.TB, cfg stackConfig) *stack {
	t.Helper()
	ctx := context.Background()
	st := &stack{cfg: cfg, readDB: openReadDB(t, cfg.backend)}
	if cfg.mongo {
		urlOf := mongoURL
		if cfg.mongoURL != nil {
			urlOf = cfg.mongoURL
		}
		st.mongoURL = urlOf(t)
		st.store = mongoOn(t, st.mongoURL, "claims_test", MongoOptions{GapGrace: time.Second})
	} else {
		st.store = NewSQLEventStore(st.readDB)
	}
	o := busOptions()
	if cfg.busOpts != nil {
		cfg.busOpts(&o)
	}
	if cfg.redis {
		url, prefix := testkit.RedisURL(t)
		t.Cleanup(func() { deleteRedisKeys(url, prefix) })
		o.Prefix = prefix
		bus, err := events.NewRedisBus(ctx, url, o)
		must(t, err)
		st.bus = bus
	} else {
		bus, err := events.OpenSQLBus(ctx, cfg.backend.Options(t, "bus"), o)
		must(t, err)
		st.bus = bus
	}
	t.Cleanup(func() { _ = st.bus.Close() })
	st.svc = New(st.store, st.readDB, Options{Registerer: prometheus.NewRegistry(), Now: cfg.now})
	st.h = testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, st.svc) })
	st.pub = &publishLog{next: st.bus, count: map[string]int{}, hook: cfg.published}
	st.projector = NewProjector(st.readDB)
	st.seen = &handledLog{count: map[string]int{}, envs: map[string]events.Envelope{}}
	sub, err := st.bus.Subscribe(ctx, ProjectionGroup, Streams, func(ctx context.Context, env events.Envelope) error {
		if cfg.delivered != nil {
			cfg.delivered(env)
		}
		if err := st.projector.Handle(ctx, env); err != nil {
			return err
		}
		st.seen.add(env)
		if cfg.handled != nil {
			cfg.handled(env)
		}
		return nil
	})
	must(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	if !cfg.noRelay {
		st.startRelay(t, st.pub)
	}
	return st
}

// startRelay runs a relay from the stack's store to pub until the test
// ends or relayStop is called.
func (st *stack) startRelay(t testing.TB, pub events.Publisher) *Relay {
	t.Helper()
	r, err := NewRelay(st.store, pub, RelayOptions{PollInterval: 50 * time.Millisecond, Logger: testkit.Logger()})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	var once sync.Once
	st.relayStop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(st.relayStop)
	return r
}

// allEvents reads the whole store in position order.
func allEvents(t testing.TB, s EventStore) []StoredEvent {
	t.Helper()
	var out []StoredEvent
	var after int64
	for {
		batch, err := s.ReadAll(context.Background(), after, 500)
		must(t, err)
		if len(batch) == 0 {
			return out
		}
		out = append(out, batch...)
		after = batch[len(batch)-1].Position
	}
}

// settle waits until the read model agrees with the event store on every
// claim (the relay and the projector have caught up).
func (st *stack) settle(t testing.TB) {
	t.Helper()
	waitFor(t, 60*time.Second, func() (bool, string) {
		diffs, err := Compare(context.Background(), st.store, st.readDB)
		if err != nil {
			return false, err.Error()
		}
		if len(diffs) > 0 {
			return false, fmt.Sprintf("%d claims differ, first %s", len(diffs), asJSON(diffs[0]))
		}
		return true, ""
	})
}

// waitFor polls cond until it holds or the deadline passes. The deadline
// is generous: it only bounds a failing run, a passing one returns as soon
// as the condition holds.
func waitFor(t testing.TB, deadline time.Duration, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("condition not met after %s: %s", deadline, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// publishLog counts what was published per event id.
type publishLog struct {
	next events.Publisher
	mu   sync.Mutex
	// count is the number of successful publishes per event id.
	count map[string]int
	hook  func(events.Envelope)
}

func (p *publishLog) Publish(ctx context.Context, envs ...events.Envelope) error {
	if err := p.next.Publish(ctx, envs...); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range envs {
		p.count[e.EventID]++
		if p.hook != nil {
			p.hook(e)
		}
	}
	return nil
}

func (p *publishLog) snapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.count))
	for k, v := range p.count {
		out[k] = v
	}
	return out
}

// handledLog counts the projector's successful calls per event id and
// keeps the envelopes it got.
type handledLog struct {
	mu    sync.Mutex
	count map[string]int
	envs  map[string]events.Envelope
}

func (h *handledLog) add(env events.Envelope) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.count[env.EventID]++
	h.envs[env.EventID] = env
}

func (h *handledLog) get(id string) (events.Envelope, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.envs[id], h.count[id]
}

func (h *handledLog) snapshot() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.count))
	for k, v := range h.count {
		out[k] = v
	}
	return out
}

// deleteRedisKeys removes a test's keys from the shared Redis.
func deleteRedisKeys(url, prefix string) {
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

// readRows returns the read model's rows ordered by id, every column.
func readRows(t testing.TB, gdb *gorm.DB) []claimRow {
	t.Helper()
	var rows []claimRow
	must(t, gdb.Raw(`SELECT * FROM claims ORDER BY id`).Scan(&rows).Error)
	return rows
}

// processed lists the event ids the projector recorded in its inbox.
func processed(t testing.TB, gdb *gorm.DB) map[string]bool {
	t.Helper()
	var ids []string
	must(t, gdb.Raw(`SELECT event_id FROM processed_events WHERE consumer = ?`, ProjectionGroup).Scan(&ids).Error)
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}
