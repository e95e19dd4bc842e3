package events

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
)

// TestBusContract runs one suite against every adapter: SQLBus on SQLite
// and PostgreSQL, RedisBus. The same assertions hold for all.
func TestBusContract(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, open opener)
	}{
		{"every group receives every event", testEveryGroupReceivesAll},
		{"fails twice then succeeds", testRetryThenSuccess},
		{"poison event dead-lettered after 10 tries", testPoisonDeadLettered},
		{"crash after commit before ack: redelivered, applied once", testCrashAfterCommit},
		{"close during a handler hands the message back", testCloseHandsBack},
		{"dead consumer's messages reclaimed after idle time", testDeadConsumerReclaimed},
		{"close of a subscriber blocked on an empty stream is prompt", testClosePrompt},
		{"publish is idempotent on event id", testIdempotentPublish},
		{"trim never drops unacknowledged entries", testTrimKeepsUnacked},
		{"lag gauge follows the oldest unacknowledged event", testLagGauge},
		{"subscription arguments are checked", testSubscribeValidation},
		{"a message that keeps killing consumers is dead-lettered unhandled", testCrashLoopDeadLettered},
		{"batches: a failed batch is handled one by one, its poison dead-lettered alone", testBatchFallsBackAlone},
	}
	for _, a := range adapters(t) {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, a.storage(t))
				})
			}
		})
	}
}

func testEveryGroupReceivesAll(t *testing.T, open opener) {
	o := testOptions()
	// Nothing in this test stalls; a long idle time makes sure a slow
	// machine cannot cause a reclaim, so any duplicate is a real bug.
	o.ClaimMinIdle = time.Minute
	ctx := correlation.With(context.Background(), "corr-every")
	pub := open(t, o)

	// Published before any group exists: groups start at the beginning.
	early := makeEvents(t, ctx, "sales", 20)
	publish(t, pub, early...)

	alpha, beta, gamma := newRecorder(), newRecorder(), newRecorder()
	checked := func(r *recorder) Handler {
		return func(hctx context.Context, env Envelope) error {
			r.call(hctx, env)
			if correlation.From(hctx) != env.CorrelationID || env.CorrelationID != "corr-every" {
				r.problem("handler ctx carries correlation %q, event %q", correlation.From(hctx), env.CorrelationID)
			}
			if Attempt(hctx) != 1 {
				r.problem("attempt %d for %s, want 1", Attempt(hctx), env.EventID)
			}
			r.done(env)
			return nil
		}
	}
	both := []string{"sales", "orders"}
	subscribe(t, pub, "alpha", both, checked(alpha))
	// Two consumers of one group, as two processes: they share the work.
	b1, b2 := open(t, o), open(t, o)
	subscribe(t, b1, "beta", both, checked(beta))
	subscribe(t, b2, "beta", both, checked(beta))
	subscribe(t, b2, "gamma", []string{"sales"}, checked(gamma))

	// Concurrent publishers, in batches, on two streams.
	var (
		mu     sync.Mutex
		all    = append([]Envelope(nil), early...)
		sales  = append([]Envelope(nil), early...)
		wg     sync.WaitGroup
		pubErr atomic.Value
	)
	batches := make([][][]Envelope, 3)
	for w := range batches {
		for i := 0; i < 10; i++ {
			batches[w] = append(batches[w], makeEvents(t, ctx, []string{"sales", "orders"}[i%2], 10))
		}
	}
	for w := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, batch := range batches[w] {
				stream := batch[0].Stream
				if err := pub.Publish(context.Background(), batch...); err != nil {
					pubErr.Store(err)
					return
				}
				mu.Lock()
				all = append(all, batch...)
				if stream == "sales" {
					sales = append(sales, batch...)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err, _ := pubErr.Load().(error); err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitFor(t, 30*time.Second, "every group to receive every event", func() bool {
		return alpha.okCount() == len(all) && beta.okCount() == len(all) && gamma.okCount() == len(sales)
	})
	// Stop everything before counting, so a late duplicate would show.
	for _, b := range []Bus{pub, b1, b2} {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	alpha.checkExactlyOnce(t, "alpha", all)
	beta.checkExactlyOnce(t, "beta", all)
	gamma.checkExactlyOnce(t, "gamma", sales)

	// The envelope arrives as it was published.
	for _, want := range all {
		got := alpha.envs[want.EventID]
		if got.EventType != want.EventType || got.Stream != want.Stream || got.AggregateID != want.AggregateID ||
			got.AggregateVersion != want.AggregateVersion || !got.OccurredAt.Equal(want.OccurredAt) ||
			got.CorrelationID != want.CorrelationID || string(got.Data) != string(want.Data) {
			t.Fatalf("envelope changed in transit:\n got %+v\nwant %+v", got, want)
		}
	}
	if n := metricValue(t, o.Registry, "events_published_total", nil); n != float64(len(all)) {
		t.Errorf("events_published_total = %v, want %d", n, len(all))
	}
	if n := metricValue(t, o.Registry, "events_processed_total", map[string]string{"consumer": "beta", "outcome": OutcomeOK}); n != float64(len(all)) {
		t.Errorf("events_processed_total{beta,ok} = %v, want %d", n, len(all))
	}
	if n := metricValue(t, o.Registry, "event_processing_duration_seconds", map[string]string{"consumer": "gamma"}); n != float64(len(sales)) {
		t.Errorf("duration samples for gamma = %v, want %d", n, len(sales))
	}
}

func testRetryThenSuccess(t *testing.T, open opener) {
	o := testOptions()
	bus := open(t, o)
	ctx := context.Background()
	evs := makeEvents(t, ctx, "sales", 10)
	flaky, panicky := evs[3].EventID, evs[6].EventID
	rec := newRecorder()
	subscribe(t, bus, "g", []string{"sales"}, func(hctx context.Context, env Envelope) error {
		rec.call(hctx, env)
		switch {
		case env.EventID == flaky && rec.callsOf(flaky) < 3:
			return errors.New("downstream not ready")
		case env.EventID == panicky && rec.callsOf(panicky) < 2:
			panic("handler bug")
		}
		rec.done(env)
		return nil
	})
	publish(t, bus, evs...)
	waitFor(t, 20*time.Second, "all events handled", func() bool { return rec.okCount() == len(evs) })
	dl, err := bus.DeadLetters(ctx, "g", 10)
	if err != nil || len(dl) != 0 {
		t.Errorf("dead letters = %v (%v), want none", dl, err)
	}
	_ = bus.Close()
	rec.checkExactlyOnce(t, "g", evs)
	if got := rec.attemptsOf(flaky); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("flaky event attempts %v, want [1 2 3]", got)
	}
	if got := rec.callsOf(panicky); got != 2 {
		t.Errorf("panicking event handled %d times, want 2 (a panic is a failed attempt)", got)
	}
	if n := metricValue(t, o.Registry, "events_processed_total", map[string]string{"outcome": OutcomeRetry}); n != 3 {
		t.Errorf("retry outcomes = %v, want 3", n)
	}
}

func testPoisonDeadLettered(t *testing.T, open opener) {
	o := testOptions()
	bus := open(t, o)
	ctx := context.Background()
	evs := makeEvents(t, ctx, "orders", 21)
	poison := evs[2]
	rec := newRecorder()
	subscribe(t, bus, "notification", []string{"orders"}, func(hctx context.Context, env Envelope) error {
		rec.call(hctx, env)
		if env.EventID == poison.EventID {
			return errors.New("cannot render template")
		}
		rec.done(env)
		return nil
	})
	publish(t, bus, evs...)
	var dl []DeadLetter
	waitFor(t, 20*time.Second, "the poison event in the dead letters and the rest handled", func() bool {
		var err error
		dl, err = bus.DeadLetters(ctx, "notification", 10)
		return err == nil && len(dl) == 1 && rec.okCount() == len(evs)-1
	})
	// A dead letter is acknowledged: closing and reopening (another
	// consumer) must not bring it back.
	_ = bus.Close()
	again := open(t, o)
	rec2 := newRecorder()
	subscribe(t, again, "notification", []string{"orders"}, rec2.handler())
	sentinel := makeEvents(t, ctx, "orders", 1)
	publish(t, again, sentinel...)
	waitFor(t, 10*time.Second, "the sentinel", func() bool { return rec2.okOf(sentinel[0].EventID) == 1 })
	_ = again.Close()

	if n := rec.callsOf(poison.EventID); n != 10 {
		t.Errorf("poison event handled %d times, want exactly 10", n)
	}
	if rec2.callsOf(poison.EventID) != 0 {
		t.Errorf("dead-lettered event delivered again")
	}
	rec.checkExactlyOnce(t, "notification", append(append([]Envelope(nil), evs[:2]...), evs[3:]...))
	d := dl[0]
	if d.Envelope.EventID != poison.EventID || d.Deliveries != 10 || d.Group != "notification" || d.Stream != "orders" ||
		!strings.Contains(d.Error, "cannot render template") || d.MessageID == "" || d.DeadAt.IsZero() {
		t.Errorf("dead letter = %+v", d)
	}
	if n := metricValue(t, o.Registry, "events_dead_lettered_total", map[string]string{"consumer": "notification"}); n != 1 {
		t.Errorf("events_dead_lettered_total = %v, want 1", n)
	}
	if n := metricValue(t, o.Registry, "events_processed_total", map[string]string{"outcome": OutcomeDeadLetter}); n != 1 {
		t.Errorf("dead_letter outcomes = %v, want 1", n)
	}
	if n := metricValue(t, o.Registry, "events_processed_total", map[string]string{"outcome": OutcomeRetry}); n != 9 {
		t.Errorf("retry outcomes = %v, want 9", n)
	}
}

// testCrashAfterCommit kills a consumer after its handler committed and
// before the ack: the event comes back, and inbox.Once makes the second
// delivery a no-op.
func testCrashAfterCommit(t *testing.T, open opener) {
	o := testOptions()
	ctx := context.Background()
	gdb := consumerDB(t)
	evs := makeEvents(t, ctx, "sales", 10)
	victim := evs[4].EventID
	rec := newRecorder()
	committed := make(chan struct{})

	bus1 := open(t, o)
	sub1 := subscribe(t, bus1, "reporting", []string{"sales"}, func(hctx context.Context, env Envelope) error {
		rec.call(hctx, env)
		if err := apply(hctx, gdb, "reporting", env); err != nil {
			return err
		}
		if env.EventID == victim {
			close(committed)
			<-hctx.Done() // the process dies here
			return hctx.Err()
		}
		return nil
	})
	publish(t, bus1, evs...)
	select {
	case <-committed:
	case <-time.After(20 * time.Second):
		t.Fatal("victim never handled")
	}
	sub1.crash()

	var secondAttempt atomic.Int64
	bus2 := open(t, o)
	subscribe(t, bus2, "reporting", []string{"sales"}, func(hctx context.Context, env Envelope) error {
		rec.call(hctx, env)
		if env.EventID == victim {
			secondAttempt.Store(int64(Attempt(hctx)))
		}
		return apply(hctx, gdb, "reporting", env)
	})
	waitFor(t, 20*time.Second, "every effect and the victim's redelivery", func() bool {
		return len(effects(t, gdb)) == len(evs) && secondAttempt.Load() != 0
	})
	_ = bus2.Close()
	checkEffectsOnce(t, gdb, evs)
	if n := rec.callsOf(victim); n != 2 {
		t.Errorf("victim handled %d times, want 2 (once before the crash, once after)", n)
	}
	if a := secondAttempt.Load(); a != 2 {
		t.Errorf("redelivery of the victim is attempt %d, want 2", a)
	}
}

// testCloseHandsBack closes a consumer in the middle of a handler: the
// handler's context is cancelled and the unfinished messages are handed
// back at once, not after the (here very long) idle time.
func testCloseHandsBack(t *testing.T, open opener) {
	o := testOptions()
	o.ClaimMinIdle = time.Minute // only a hand-back can explain a prompt redelivery
	ctx := context.Background()
	gdb := consumerDB(t)
	evs := makeEvents(t, ctx, "sales", 6)
	victim := evs[1].EventID
	inHandler := make(chan struct{})

	bus1 := open(t, o)
	publish(t, bus1, evs...)
	sub1 := subscribe(t, bus1, "audit", []string{"sales"}, func(hctx context.Context, env Envelope) error {
		if err := apply(hctx, gdb, "audit", env); err != nil {
			return err
		}
		if env.EventID == victim {
			close(inHandler)
			<-hctx.Done()
			return hctx.Err()
		}
		return nil
	})
	select {
	case <-inHandler:
	case <-time.After(20 * time.Second):
		t.Fatal("victim never handled")
	}
	if err := sub1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	rec := newRecorder()
	bus2 := open(t, o)
	subscribe(t, bus2, "audit", []string{"sales"}, func(hctx context.Context, env Envelope) error {
		rec.call(hctx, env)
		return apply(hctx, gdb, "audit", env)
	})
	waitFor(t, 20*time.Second, "the handed-back events", func() bool { return len(effects(t, gdb)) == len(evs) && rec.callsOf(victim) == 1 })
	_ = bus2.Close()
	checkEffectsOnce(t, gdb, evs)
	if n := metricValue(t, o.Registry, "events_processed_total", map[string]string{"outcome": OutcomeCanceled}); n != 1 {
		t.Errorf("canceled outcomes = %v, want 1", n)
	}
}

// testDeadConsumerReclaimed: a consumer dies holding messages it never
// finished; another consumer of the group takes them over, but only once
// they have been idle for ClaimMinIdle.
func testDeadConsumerReclaimed(t *testing.T, open opener) {
	o := testOptions()
	o.ClaimMinIdle = 600 * time.Millisecond
	ctx := context.Background()
	evs := makeEvents(t, ctx, "inventory", 5)
	bus1 := open(t, o)
	publish(t, bus1, evs...) // all before the subscription: one fetch takes them all
	var firstStart time.Time
	started := make(chan struct{})
	sub1 := subscribe(t, bus1, "reporting", []string{"inventory"}, func(hctx context.Context, env Envelope) error {
		firstStart = time.Now()
		close(started)
		<-hctx.Done() // hangs until the process dies
		return hctx.Err()
	})
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("first consumer never started")
	}
	sub1.crash()

	rec := newRecorder()
	var mu sync.Mutex
	var firstTakeover time.Time
	bus2 := open(t, o)
	subscribe(t, bus2, "reporting", []string{"inventory"}, func(hctx context.Context, env Envelope) error {
		mu.Lock()
		if firstTakeover.IsZero() {
			firstTakeover = time.Now()
		}
		mu.Unlock()
		rec.call(hctx, env)
		rec.done(env)
		return nil
	})
	waitFor(t, 20*time.Second, "the dead consumer's messages", func() bool { return rec.okCount() == len(evs) })
	_ = bus2.Close()
	rec.checkExactlyOnce(t, "reporting", evs)
	for _, e := range evs {
		if a := rec.attemptsOf(e.EventID); len(a) != 1 || a[0] != 2 {
			t.Errorf("event %s attempts %v, want [2] (delivered to the dead consumer first)", e.EventID, a)
		}
	}
	// The messages were delivered before the first handler started, so
	// this gap is a lower bound of their idle time at takeover; half of
	// ClaimMinIdle leaves room for scheduling delays.
	if gap := firstTakeover.Sub(firstStart); gap < o.ClaimMinIdle/2 {
		t.Errorf("taken over %s after delivery, before the idle time %s", gap, o.ClaimMinIdle)
	}
}

func testClosePrompt(t *testing.T, open opener) {
	// Production defaults: the 1s blocking read is what Close waits for.
	o := Options{Registry: prometheus.NewRegistry(), Logger: testOptions().Logger}
	bus := open(t, o)
	sub := subscribe(t, bus, "audit", []string{"claims", "sales"}, newRecorder().handler())
	time.Sleep(300 * time.Millisecond) // inside a blocking read by now
	start := time.Now()
	if err := sub.Close(); err != nil {
		t.Fatalf("close subscription: %v", err)
	}
	if d := time.Since(start); d >= 3*time.Second {
		t.Errorf("closing a subscription took %s, want < 3s", d)
	}
	select {
	case <-sub.Done():
	default:
		t.Error("subscription not done after Close")
	}
	subscribe(t, bus, "audit", []string{"claims"}, newRecorder().handler()) // the names are free again
	time.Sleep(300 * time.Millisecond)
	start = time.Now()
	if err := bus.Close(); err != nil {
		t.Fatalf("close bus: %v", err)
	}
	if d := time.Since(start); d >= 3*time.Second {
		t.Errorf("closing the bus took %s, want < 3s", d)
	}
	if _, err := bus.Subscribe(context.Background(), "late", []string{"sales"}, newRecorder().handler()); !errs.IsKind(err, errs.Unavailable) {
		t.Errorf("subscribe after close: %v, want Unavailable", err)
	}
}

func testIdempotentPublish(t *testing.T, open opener) {
	o := testOptions()
	bus := open(t, o)
	ctx := context.Background()
	evs := makeEvents(t, ctx, "claims", 3)
	publish(t, bus, evs[0])
	publish(t, bus, evs[0])                 // a relay retrying after a crash
	publish(t, bus, evs[0], evs[1], evs[1]) // and within one batch
	rec := newRecorder()
	subscribe(t, bus, "audit", []string{"claims"}, rec.handler())
	publish(t, bus, evs[2]) // sentinel: delivered after the others
	waitFor(t, 10*time.Second, "the sentinel", func() bool { return rec.okOf(evs[2].EventID) == 1 })
	_ = bus.Close()
	rec.checkExactlyOnce(t, "audit", evs)
	if n := metricValue(t, o.Registry, "events_published_total", nil); n != 3 {
		t.Errorf("events_published_total = %v, want 3 (repeats are not new events)", n)
	}
}

func testTrimKeepsUnacked(t *testing.T, open opener) {
	o := testOptions()
	ctx := context.Background()
	evs := makeEvents(t, ctx, "sales", 20)
	bus1 := open(t, o)
	publish(t, bus1, evs...)
	recA := newRecorder()
	subscribe(t, bus1, "fast", []string{"sales"}, recA.handler())

	// Group "slow" acks five, then its consumer hangs on the sixth and dies.
	recB := newRecorder()
	stuck := make(chan struct{})
	bus2 := open(t, o)
	sub := subscribe(t, bus2, "slow", []string{"sales"}, func(hctx context.Context, env Envelope) error {
		if env.EventID == evs[5].EventID {
			close(stuck)
			<-hctx.Done()
			return hctx.Err()
		}
		recB.call(hctx, env)
		recB.done(env)
		return nil
	})
	select {
	case <-stuck:
	case <-time.After(20 * time.Second):
		t.Fatal("slow group never reached the sixth event")
	}
	waitFor(t, 20*time.Second, "the fast group", func() bool { return recA.okCount() == len(evs) })
	sub.crash()

	n, err := bus1.Trim(ctx, 0)
	if err != nil {
		t.Fatalf("trim: %v", err)
	}
	if n != 5 {
		t.Errorf("trim removed %d entries, want 5 (acked by both groups)", n)
	}
	// The slow group's successor still finds everything it had not acked.
	bus3 := open(t, o)
	subscribe(t, bus3, "slow", []string{"sales"}, recB.handler())
	waitFor(t, 20*time.Second, "the slow group to catch up", func() bool { return recB.okCount() == len(evs) })
	recA.checkExactlyOnce(t, "fast", evs)
	recB.checkExactlyOnce(t, "slow", evs)
	// Once both groups have acked everything, all of it can go.
	total := n
	waitFor(t, 10*time.Second, "the rest to be trimmed", func() bool {
		m, err := bus1.Trim(ctx, 0)
		total += m
		return err == nil && total == int64(len(evs))
	})
	if dl, _ := bus1.DeadLetters(ctx, "slow", 10); len(dl) != 0 {
		t.Errorf("unexpected dead letters: %+v", dl)
	}
}

func testLagGauge(t *testing.T, open opener) {
	o := testOptions()
	o.LagInterval = 50 * time.Millisecond
	bus := open(t, o)
	ctx := context.Background()
	evs := makeEvents(t, ctx, "orders", 3)
	release := make(chan struct{})
	rec := newRecorder()
	subscribe(t, bus, "reporting", []string{"orders"}, func(hctx context.Context, env Envelope) error {
		select {
		case <-release:
		case <-hctx.Done():
			return hctx.Err()
		}
		rec.call(hctx, env)
		rec.done(env)
		return nil
	})
	publish(t, bus, evs...)
	lag := func() float64 {
		return metricValue(t, o.Registry, "events_consumer_lag_seconds", map[string]string{"consumer": "reporting", "stream": "orders"})
	}
	waitFor(t, 20*time.Second, "the lag to grow while the consumer is stuck", func() bool { return lag() >= 0.2 })
	close(release)
	waitFor(t, 20*time.Second, "the lag to return to zero", func() bool { return rec.okCount() == len(evs) && lag() == 0 })
}

func testSubscribeValidation(t *testing.T, open opener) {
	bus := open(t, testOptions())
	h := newRecorder().handler()
	bad := []struct {
		group   string
		streams []string
		h       Handler
	}{
		{"", []string{"sales"}, h},
		{"Audit", []string{"sales"}, h},
		{"audit", nil, h},
		{"audit", []string{"sales", "sales"}, h},
		{"audit", []string{"sales:x"}, h},
		{"audit", []string{"sales"}, nil},
	}
	for _, b := range bad {
		if _, err := bus.Subscribe(context.Background(), b.group, b.streams, b.h); !errs.IsKind(err, errs.Invalid) {
			t.Errorf("Subscribe(%q, %v): %v, want Invalid", b.group, b.streams, err)
		}
	}
	subscribe(t, bus, "audit", []string{"sales"}, h)
	if _, err := bus.Subscribe(context.Background(), "audit", []string{"orders", "sales"}, h); !errs.IsKind(err, errs.Conflict) {
		t.Errorf("second consumer of audit/sales on one bus: %v, want Conflict", err)
	}
	if err := bus.Publish(context.Background(), Envelope{EventID: "x", EventType: "t", Stream: "Bad Stream"}); !errs.IsKind(err, errs.Invalid) {
		t.Errorf("publish to a bad stream name: %v, want Invalid", err)
	}
}

// testCrashLoopDeadLettered: a message whose handler takes its consumer
// down every time never gets an error back to count; the broker's delivery
// count does. Past MaxDeliveries it goes to the dead letters without
// another handler call.
func testCrashLoopDeadLettered(t *testing.T, open opener) {
	o := testOptions()
	ctx := context.Background()
	evs := makeEvents(t, ctx, "claims", 3)
	bus1 := open(t, o)
	publish(t, bus1, evs[0])
	started := make(chan struct{})
	sub := subscribe(t, bus1, "audit", []string{"claims"}, func(hctx context.Context, env Envelope) error {
		close(started)
		<-hctx.Done()
		return hctx.Err()
	})
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("first consumer never started")
	}
	sub.crash()
	// As if it had already been delivered (and crashed its consumer) ten
	// times.
	forceDeliveries(t, bus1, "audit", "claims", 10)

	rec := newRecorder()
	bus2 := open(t, o)
	subscribe(t, bus2, "audit", []string{"claims"}, rec.handler())
	publish(t, bus2, evs[1:]...)
	var dl []DeadLetter
	waitFor(t, 20*time.Second, "the crash-looping event dead-lettered", func() bool {
		dl, _ = bus2.DeadLetters(ctx, "audit", 10)
		return len(dl) == 1 && rec.okCount() == 2
	})
	rec.checkExactlyOnce(t, "audit", evs[1:])
	if dl[0].Envelope.EventID != evs[0].EventID || dl[0].Deliveries != 11 || !strings.Contains(dl[0].Error, "without an ack") {
		t.Errorf("dead letter %+v", dl[0])
	}
}

// forceDeliveries sets the delivery count of the group's pending messages,
// standing in for a history of crashes.
func forceDeliveries(t *testing.T, bus Bus, group, stream string, n int) {
	t.Helper()
	ctx := context.Background()
	switch b := bus.(type) {
	case *SQLBus:
		res := b.db.Exec(`UPDATE bus_pending SET deliveries = ? WHERE grp = ? AND stream = ?`, n, group, stream)
		if res.Error != nil || res.RowsAffected == 0 {
			t.Fatalf("set deliveries: %v (%d rows)", res.Error, res.RowsAffected)
		}
	case *RedisBus:
		key := b.streamKey(stream)
		pend, err := b.client.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: group, Start: "-", End: "+", Count: 100}).Result()
		if err != nil || len(pend) == 0 {
			t.Fatalf("pending: %v (%d)", err, len(pend))
		}
		for _, p := range pend {
			// Same owner, count set, idle kept past any min-idle.
			err := b.client.Do(ctx, "XCLAIM", key, group, p.Consumer, 0, p.ID, "RETRYCOUNT", n, "IDLE", releaseIdle.Milliseconds(), "JUSTID").Err()
			if err != nil {
				t.Fatalf("set retry count: %v", err)
			}
		}
	default:
		t.Fatalf("no way to force deliveries on %T", bus)
	}
}

// testBatchFallsBackAlone subscribes with a batch handler to a backlog:
// the reads of several messages go to the batch handler and are acked
// together; a batch holding the poison event fails as a whole, and its
// events then go one by one through the handler, so the poison is retried
// and dead-lettered alone while the rest are applied exactly once.
func testBatchFallsBackAlone(t *testing.T, open opener) {
	o := testOptions()
	bus := open(t, o)
	ctx := context.Background()
	evs := makeEvents(t, ctx, "orders", 40)
	poison := evs[5]
	publish(t, bus, evs...) // a backlog: the first reads return full batches
	rec := newRecorder()
	var (
		mu      sync.Mutex
		batches []int // sizes of the batches that succeeded
		failed  int
	)
	subscribe(t, bus, "reporting", []string{"orders"}, func(hctx context.Context, env Envelope) error {
		rec.call(hctx, env)
		if env.EventID == poison.EventID {
			return errors.New("cannot apply")
		}
		rec.done(env)
		return nil
	}, WithBatch(func(hctx context.Context, envs []Envelope) error {
		for _, env := range envs {
			if env.EventID == poison.EventID {
				mu.Lock()
				failed++
				mu.Unlock()
				return errors.New("cannot apply the batch") // nothing applied
			}
		}
		for _, env := range envs {
			rec.call(hctx, env)
			rec.done(env)
		}
		mu.Lock()
		batches = append(batches, len(envs))
		mu.Unlock()
		return nil
	}))
	waitFor(t, 20*time.Second, "the poison dead-lettered and the rest applied", func() bool {
		dl, err := bus.DeadLetters(ctx, "reporting", 10)
		return err == nil && len(dl) == 1 && rec.okCount() == len(evs)-1
	})
	_ = bus.Close()
	rec.checkExactlyOnce(t, "reporting", append(append([]Envelope(nil), evs[:5]...), evs[6:]...))
	if n := rec.callsOf(poison.EventID); n != 10 {
		t.Errorf("poison event handled alone %d times, want 10 (a failed batch is no delivery of its own)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if failed != 1 {
		t.Errorf("%d batches with the poison were tried, want 1 (its retries go one by one)", failed)
	}
	batched := 0
	for _, n := range batches {
		if n < 2 {
			t.Errorf("a batch of %d: single messages go to the handler", n)
		}
		batched += n
	}
	if batched < len(evs)/2 {
		t.Errorf("%d of %d events applied in batches (%v); a backlog should be read in batches", batched, len(evs), batches)
	}
	if n := metricValue(t, o.Registry, "events_processed_total", map[string]string{"outcome": OutcomeOK}); n != float64(len(evs)-1) {
		t.Errorf("ok outcomes = %v, want %d", n, len(evs)-1)
	}
}
