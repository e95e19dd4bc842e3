package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
)

// delivery is one message handed to this consumer by the broker.
type delivery struct {
	stream string
	// id is the broker's id: a Redis entry id, or a SQL sequence number.
	id  string
	env Envelope
	// raw is the stored payload, kept for the dead letter when it did not
	// decode (badEnv says why).
	raw    string
	badEnv error
	// deliveries counts the times the group handed the message out, this
	// one included, as the broker recorded it.
	deliveries int
	// deliveredAt (local clock) and token (the SQL delivery stamp) let a
	// retry check the message is still ours before taking it again.
	deliveredAt time.Time
	token       int64
}

// transport is what an adapter does for one subscription; the router
// (Subscription.run) builds retries, dead letters, claims and metrics on it
// once for every adapter.
type transport interface {
	// prepare creates the group at the start of each stream if missing.
	prepare(ctx context.Context) error
	// fetch takes up to limit never-delivered messages, waiting up to wait
	// for the first one.
	fetch(ctx context.Context, limit int, wait time.Duration) ([]delivery, error)
	// redeliver takes d again for another attempt, counting a delivery;
	// ok is false when d is no longer ours (acked, or claimed by another
	// consumer that thought us dead).
	redeliver(ctx context.Context, d delivery) (delivery, bool, error)
	// reclaim takes over up to limit messages idle for ClaimMinIdle, whoever
	// held them (a dead consumer, or this one after a failed ack).
	reclaim(ctx context.Context, limit int) ([]delivery, error)
	// ack removes ds from the group's pending messages, all in one go
	// where the broker allows it.
	ack(ctx context.Context, ds []delivery) error
	// deadLetter moves d to the group's dead letters and acks it, atomically.
	deadLetter(ctx context.Context, d delivery, cause string) error
	// release hands unfinished messages back so another consumer can take
	// them at once rather than after ClaimMinIdle.
	release(ctx context.Context, ds []delivery) error
	// lag is the age of the oldest unacknowledged message, per stream.
	lag(ctx context.Context) (map[string]time.Duration, error)
}

// Subscription is one consumer running for a group: it reads, calls the
// handler, acks, retries and dead-letters until Close or its context ends.
type Subscription struct {
	group   string
	streams []string
	handler Handler
	// batch, when set, takes the messages of one read together
	// (WithBatch); handler still takes what the batch could not.
	batch BatchHandler
	t     transport
	o     Options
	m     *Metrics
	log   *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}
	// crashed makes the run loop stop as a killed process would: no ack,
	// no release, nothing more said to the broker (tests use it).
	crashed  atomic.Bool
	onStop   func(*Subscription)
	closeErr error
	once     sync.Once
}

// closeWait bounds Close: a handler that ignores its context must not hold
// up shutdown. Its message stays unacknowledged and comes back later.
const closeWait = 2500 * time.Millisecond

// startSubscription prepares the groups and starts the run loop.
// onStop runs once the loop has ended, however it ended.
func startSubscription(ctx context.Context, group string, streams []string, h Handler, c subscribeConfig, t transport, o Options, m *Metrics, onStop func(*Subscription)) (*Subscription, error) {
	if err := t.prepare(ctx); err != nil {
		return nil, fmt.Errorf("subscribe %s to %v: %w", group, streams, err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	// The subscription ends with ctx or Close, whichever comes first.
	stop := context.AfterFunc(ctx, cancel)
	s := &Subscription{
		group: group, streams: streams, handler: h, batch: c.batch, t: t, o: o, m: m,
		log:    o.Logger.With("consumer_group", group, "consumer", o.Consumer),
		cancel: func() { stop(); cancel() },
		done:   make(chan struct{}),
		onStop: onStop,
	}
	go func() {
		defer close(s.done)
		// The lag is measured beside the loop: a consumer stuck in a long
		// handler is exactly when the gauge must keep rising.
		lagDone := make(chan struct{})
		go func() {
			defer close(lagDone)
			s.watchLag(runCtx)
		}()
		s.run(runCtx)
		s.cancel()
		<-lagDone
		for _, st := range s.streams {
			s.m.lag.DeleteLabelValues(s.group, st)
		}
		if s.onStop != nil {
			s.onStop(s)
		}
	}()
	return s, nil
}

// Group is the consumer group this subscription consumes for.
func (s *Subscription) Group() string { return s.group }

// Done is closed when the subscription has stopped.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Close stops the subscription: the current handler sees its context
// cancelled, unfinished messages are handed back to the group, nothing
// acknowledged is lost. It returns within a few seconds even if a handler
// ignores its context.
func (s *Subscription) Close() error {
	s.once.Do(func() {
		s.cancel()
		t := time.NewTimer(closeWait)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
			s.closeErr = fmt.Errorf("subscription %s: handler still running after %s: %w", s.group, closeWait, errs.Timeout)
		}
	})
	return s.closeErr
}

// crash stops the loop as if the process had been killed: messages it holds
// stay pending under its name until another consumer reclaims them.
func (s *Subscription) crash() {
	s.crashed.Store(true)
	s.cancel()
	<-s.done
}

// retryEntry is a message that failed and waits for its next attempt.
type retryEntry struct {
	d   delivery
	due time.Time
}

// run is the consumer loop. One message (or one batch) is handled at a
// time, so a subscription never runs its handlers concurrently with
// themselves.
func (s *Subscription) run(ctx context.Context) {
	var (
		retries     []retryEntry // sorted by due
		held        []delivery   // fetched, not yet finished when stopped
		nextReclaim = time.Now() // a restart first takes over dead consumers' work
		failures    int
	)
	defer func() {
		if s.crashed.Load() {
			return
		}
		for _, r := range retries {
			held = append(held, r.d)
		}
		s.release(held)
	}()
	schedule := func(r retryEntry) {
		i := sort.Search(len(retries), func(i int) bool { return retries[i].due.After(r.due) })
		retries = append(retries, retryEntry{})
		copy(retries[i+1:], retries[i:])
		retries[i] = r
	}
	for ctx.Err() == nil {
		now := time.Now()
		var (
			batch []delivery
			err   error
		)
		switch {
		case !now.Before(nextReclaim):
			nextReclaim = now.Add(s.o.ClaimInterval)
			batch, err = s.t.reclaim(ctx, s.o.BatchSize)
		case len(retries) > 0 && !now.Before(retries[0].due):
			r := retries[0]
			retries = retries[1:]
			var (
				d  delivery
				ok bool
			)
			d, ok, err = s.t.redeliver(ctx, r.d)
			if err != nil {
				schedule(retryEntry{d: r.d, due: now.Add(s.o.backoff(r.d.deliveries, rand.Float64()))})
			} else if ok {
				batch = []delivery{d}
			}
		case len(retries) >= s.o.MaxRetrying:
			// Back-pressure: with this many messages failing, reading more
			// would only dead-letter them faster (a database outage).
			sleepCtx(ctx, time.Until(retries[0].due))
			continue
		default:
			wait := min(s.o.BlockTime, time.Until(nextReclaim))
			if len(retries) > 0 {
				wait = min(wait, time.Until(retries[0].due))
			}
			batch, err = s.t.fetch(ctx, s.o.BatchSize, wait)
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			s.log.Warn("event bus read failed; retrying", "err", err, "failures", failures)
			sleepCtx(ctx, s.o.backoff(failures, rand.Float64()))
			continue
		}
		failures = 0
		if s.batch != nil {
			batch = s.handleBatch(ctx, batch)
		}
		for i, d := range batch {
			if ctx.Err() != nil {
				held = append(held, batch[i:]...)
				break
			}
			switch due, outcome := s.handle(ctx, d); outcome {
			case outcomeRetry:
				schedule(retryEntry{d: d, due: due})
			case outcomeHeld:
				held = append(held, d)
			}
		}
	}
}

type handleOutcome int

const (
	outcomeFinished handleOutcome = iota // acked or dead-lettered (or left to a reclaim)
	outcomeRetry                         // failed: try again at due
	outcomeHeld                          // interrupted by shutdown: hand back
)

// handle runs the handler on d and acks, schedules a retry or dead-letters.
func (s *Subscription) handle(ctx context.Context, d delivery) (time.Time, handleOutcome) {
	typ := d.env.EventType
	if d.badEnv != nil {
		return s.bury(ctx, d, d.badEnv.Error(), "undecodable")
	}
	if d.deliveries > s.o.MaxDeliveries {
		// Delivered more often than allowed without an ack: its handler
		// keeps killing the consumer, or the last dead-lettering failed.
		return s.bury(ctx, d, fmt.Sprintf("delivered %d times without an ack", d.deliveries), typ)
	}
	start := time.Now()
	err := s.call(ctx, d)
	s.m.duration.WithLabelValues(s.group, typ).Observe(time.Since(start).Seconds())
	if s.crashed.Load() {
		return time.Time{}, outcomeFinished
	}
	switch {
	case err == nil:
		s.ack(ctx, d)
		s.m.processed.WithLabelValues(s.group, typ, OutcomeOK).Inc()
		return time.Time{}, outcomeFinished
	case ctx.Err() != nil:
		// Shutdown, not the event's fault: the handler's transaction was
		// cut short; another consumer (or the next start) does it again.
		s.m.processed.WithLabelValues(s.group, typ, OutcomeCanceled).Inc()
		return time.Time{}, outcomeHeld
	case d.deliveries >= s.o.MaxDeliveries:
		s.m.processed.WithLabelValues(s.group, typ, OutcomeDeadLetter).Inc()
		return s.bury(ctx, d, err.Error(), typ)
	default:
		s.m.processed.WithLabelValues(s.group, typ, OutcomeRetry).Inc()
		s.log.Info("event handler failed; will retry", "event_id", d.env.EventID, "event_type", typ,
			"delivery", d.deliveries, "err", err)
		return time.Now().Add(s.o.backoff(d.deliveries, rand.Float64())), outcomeRetry
	}
}

// handleBatch hands the batch handler the messages of ds it may take —
// decoded, and within their delivery limit — and acks them together. It
// returns what is left for handle, one by one: the messages it could not
// take, or all of ds when there were fewer than two or the batch failed
// (each is then tried alone, so a bad one cannot hold the others back).
func (s *Subscription) handleBatch(ctx context.Context, ds []delivery) []delivery {
	take := make([]delivery, 0, len(ds))
	var alone []delivery
	for _, d := range ds {
		if d.badEnv != nil || d.deliveries > s.o.MaxDeliveries {
			alone = append(alone, d)
			continue
		}
		take = append(take, d)
	}
	if len(take) < 2 || ctx.Err() != nil {
		return ds
	}
	start := time.Now()
	err := s.callBatch(ctx, take)
	if s.crashed.Load() {
		return nil
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Info("event batch failed; handling its events one by one", "count", len(take), "err", err)
		}
		return ds
	}
	// Each message is charged its share of the batch's time.
	share := time.Since(start).Seconds() / float64(len(take))
	s.ack(ctx, take...)
	for _, d := range take {
		s.m.duration.WithLabelValues(s.group, d.env.EventType).Observe(share)
		s.m.processed.WithLabelValues(s.group, d.env.EventType, OutcomeOK).Inc()
	}
	return alone
}

// callBatch runs the batch handler, a panic being an error like any other.
// Its context carries the highest delivery count of the batch; each
// envelope carries its own correlation id.
func (s *Subscription) callBatch(ctx context.Context, ds []delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("batch handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	envs := make([]Envelope, len(ds))
	attempt := 0
	for i, d := range ds {
		envs[i] = d.env
		attempt = max(attempt, d.deliveries)
	}
	return s.batch(context.WithValue(ctx, attemptKey{}, attempt), envs)
}

// call runs the handler with the event's correlation id and delivery count
// in its context; a panic is an error like any other, so one bad event
// cannot take the consumer down.
func (s *Subscription) call(ctx context.Context, d delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	hctx := context.WithValue(ctx, attemptKey{}, d.deliveries)
	if d.env.CorrelationID != "" {
		hctx = correlation.With(hctx, d.env.CorrelationID)
	}
	return s.handler(hctx, d.env)
}

// ack acknowledges after a successful handler. It runs on a context that
// survives shutdown (briefly), so work committed just before Close is not
// done twice. If it still fails the messages stay pending and come back
// through reclaim: a redelivery, never a loss.
func (s *Subscription) ack(ctx context.Context, ds ...delivery) {
	attempts := 3
	for i := 1; ; i++ {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		err := s.t.ack(actx, ds)
		cancel()
		if err == nil {
			return
		}
		if i >= attempts || ctx.Err() != nil {
			s.log.Warn("event ack failed; it will be redelivered", "event_id", ds[0].env.EventID, "count", len(ds), "err", err)
			return
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// bury moves d to the dead letters. If that fails the message is retried
// later, and the next delivery, over the limit, comes straight back here.
func (s *Subscription) bury(ctx context.Context, d delivery, cause, typ string) (time.Time, handleOutcome) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	err := s.t.deadLetter(dctx, d, cause)
	cancel()
	if err != nil {
		s.log.Error("dead-lettering failed; will try again", "event_id", d.env.EventID, "err", err)
		return time.Now().Add(s.o.backoff(d.deliveries, rand.Float64())), outcomeRetry
	}
	s.m.deadLettered.WithLabelValues(s.group).Inc()
	s.log.Error("event dead-lettered", "stream", d.stream, "message_id", d.id, "event_id", d.env.EventID,
		"event_type", typ, "deliveries", d.deliveries, "cause", cause)
	return time.Time{}, outcomeFinished
}

// release hands back what this consumer still holds at shutdown.
func (s *Subscription) release(ds []delivery) {
	if len(ds) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.t.release(ctx, ds); err != nil {
		// Not fatal: they are reclaimed after ClaimMinIdle instead.
		s.log.Warn("handing back unfinished events failed", "count", len(ds), "err", err)
	}
}

// watchLag refreshes the lag gauge every LagInterval until ctx ends.
func (s *Subscription) watchLag(ctx context.Context) {
	t := time.NewTicker(s.o.LagInterval)
	defer t.Stop()
	for {
		lags, err := s.t.lag(ctx)
		switch {
		case err == nil:
			for _, st := range s.streams {
				s.m.lag.WithLabelValues(s.group, st).Set(lags[st].Seconds())
			}
		case ctx.Err() == nil:
			s.log.Warn("measuring consumer lag failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// subscriptions tracks a bus's running subscriptions and refuses a second
// consumer for the same group and stream in one bus: it would compete with
// the first for messages, which is never what a caller meant.
type subscriptions struct {
	mu     sync.Mutex
	closed bool
	active map[*Subscription]bool
	taken  map[string]bool
}

func (r *subscriptions) reserve(group string, streams []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("bus closed: %w", errs.Unavailable)
	}
	if r.taken == nil {
		r.taken = map[string]bool{}
		r.active = map[*Subscription]bool{}
	}
	for _, st := range streams {
		if r.taken[group+"/"+st] {
			return fmt.Errorf("group %s already consumes %s on this bus: %w", group, st, errs.Conflict)
		}
	}
	for _, st := range streams {
		r.taken[group+"/"+st] = true
	}
	return nil
}

func (r *subscriptions) unreserve(group string, streams []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range streams {
		delete(r.taken, group+"/"+st)
	}
}

func (r *subscriptions) add(s *Subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active[s] = true
}

func (r *subscriptions) remove(s *Subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.active, s)
	for _, st := range s.streams {
		delete(r.taken, s.group+"/"+st)
	}
}

// closeAll stops every subscription in parallel, so Close of a bus with
// many takes as long as the slowest, not the sum.
func (r *subscriptions) closeAll() error {
	r.mu.Lock()
	r.closed = true
	subs := make([]*Subscription, 0, len(r.active))
	for s := range r.active {
		subs = append(subs, s)
	}
	r.mu.Unlock()
	errCh := make(chan error, len(subs))
	for _, s := range subs {
		go func() { errCh <- s.Close() }()
	}
	var all []error
	for range subs {
		all = append(all, <-errCh)
	}
	return errors.Join(all...)
}
