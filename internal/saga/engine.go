package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/sony/gobreaker/v2"

	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
)

// The engine: one driver goroutine per saga moves it one step at a time.
// It reads the saga from the database when it starts (and again after any
// failed write), so the database — not memory — is the truth a resumed
// driver starts from; between steps it trusts its own version-checked
// writes.

var (
	// errAbandoned: the driver stops without writing (shutdown, or a
	// failpoint playing a crash); the saga stays as it is for Resume.
	errAbandoned = errors.New("saga: driver stopped")
	// errDone: the saga is final; nothing left to drive.
	errDone = errors.New("saga: final")
)

// driver is a saga being driven in this process.
type driver struct {
	// done is closed when the driver stops, waking whoever awaits the
	// saga.
	done chan struct{}
	// last is the saga as the driver last wrote it, set before done is
	// closed; nil when that is uncertain (a write failed). Awaiters in
	// this process answer from it instead of reading the saga back.
	last *sagaRow
}

// markRunning registers a saga as driven by this process; nil when it
// already is.
func (o *Orchestrator) markRunning(id string) *driver {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.running[id]; ok {
		return nil
	}
	d := &driver{done: make(chan struct{})}
	o.running[id] = d
	return d
}

// stopped unregisters a driver and wakes those awaiting its saga.
func (o *Orchestrator) stopped(id string, d *driver) {
	o.mu.Lock()
	if o.running[id] == d {
		delete(o.running, id)
	}
	o.mu.Unlock()
	close(d.done)
}

// launch drives a saga this orchestrator has just created (and so owns)
// from snap, the saga as it wrote it: no need to read it back.
func (o *Orchestrator) launch(d *driver, snap *snapshot) {
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer o.stopped(snap.row.ID, d)
		d.last = o.drive(snap.row.ID, snap)
	}()
}

// Resume continues every saga not in a final state that no live
// orchestrator holds: those this orchestrator's Owner held before a
// restart, and those whose lease ran out (their process died). It starts
// a driver for each (at most ResumeConcurrency at a time) and returns how
// many it started, without waiting for them: GET /sagas/{id} follows them.
// Each step resumes with the idempotency key it had, so a call the crash
// interrupted is repeated, never doubled.
func (o *Orchestrator) Resume(ctx context.Context) (int, error) {
	const batch = 1000
	rows, err := o.store.unfinished(ctx, batch)
	if err != nil {
		return 0, err
	}
	now := o.now()
	n := 0
	for _, r := range rows {
		if r.Owner != "" && r.Owner != o.opts.Owner && r.LeaseUntil != nil && r.LeaseUntil.After(now) {
			continue // another orchestrator's live lease
		}
		d := o.markRunning(r.ID)
		if d == nil {
			continue // driven here already
		}
		n++
		o.wg.Add(1)
		go func(id string) {
			defer o.wg.Done()
			defer o.stopped(id, d)
			select {
			case o.sem <- struct{}{}:
			case <-o.root.Done():
				return
			}
			defer func() { <-o.sem }()
			// Claim only now: a lease taken while queued could run out
			// before the driver starts.
			won, err := o.store.claim(o.root, id, o.opts.Owner, o.now().Add(o.opts.Lease), o.now())
			if err != nil {
				o.log.Warn("claim saga", "saga_id", id, "err", err)
				return
			}
			if won {
				d.last = o.drive(id, nil)
			}
		}(r.ID)
	}
	return n, nil
}

// Resumer is what RunResume needs: an Orchestrator.
type Resumer interface {
	Resume(ctx context.Context) (int, error)
}

// RunResume resumes unfinished sagas at once and then every interval until
// ctx ends: the first pass continues what this process left before a
// restart, the later ones take over sagas whose orchestrator died (their
// leases run out). It is the worker the binary runs beside the saga
// context.
func RunResume(ctx context.Context, r Resumer, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = 30 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, err := r.Resume(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.WarnContext(ctx, "resume sagas failed", "context", Name, "err", err)
		case n > 0:
			log.InfoContext(ctx, "resumed sagas", "context", Name, "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// snapshot is a saga as its driver knows it: read once, then kept up to
// date by the driver's own writes (each of which is version-checked, so a
// snapshot that went stale fails its next write instead of overwriting).
type snapshot struct {
	row   sagaRow
	data  sagaData
	steps map[string]stepRow
	// armed names the step whose attempt the last write recorded as
	// started (with the saga's creation, or with the previous step's
	// success): its driver calls at once, without a "before" write.
	armed string
	// unwritten are step writes made in memory and not yet in the
	// database, which the saga's next write carries (see deferrable).
	unwritten []stepWrite
}

// deferrable tells a step whose success need not be written before the
// next step's call: it must finish and has nothing to undo, so nothing
// will ever compensate it, and its call is idempotent. When the process
// dies before the next write, the saga resumes from the step's armed
// attempt and calls it again, with the same key, to the same effect.
// Deferring it saves a write per saga (commit_stock's success rides on
// clear_cart's, refund_order's on restock's).
func deferrable(def *stepDef) bool {
	return def != nil && def.mustFinish && def.undo == "" && !def.compensation
}

// stepDefOf finds a forward step of kind's flow by name.
func stepDefOf(kind, name string) *stepDef {
	for _, def := range flowOf(kind).steps {
		if def.name == name {
			return def
		}
	}
	return nil
}

// save writes the saga with own — a step's changed row — and the writes
// it had kept unwritten. A step armed by an unwritten write is not in the
// database yet: its row is inserted, as it now stands.
func (o *Orchestrator) save(ctx context.Context, snap *snapshot, own ...stepWrite) error {
	writes := make([]stepWrite, 0, len(snap.unwritten)+len(own))
	for _, u := range snap.unwritten {
		replaced := false
		for i := range own {
			if own[i].row.Step == u.row.Step {
				own[i].insert = own[i].insert || u.insert
				replaced = true
			}
		}
		if !replaced {
			writes = append(writes, u)
		}
	}
	writes = append(writes, own...)
	if err := o.store.saveWithSteps(ctx, &snap.row, o.opts.Owner, writes...); err != nil {
		return err
	}
	snap.unwritten = nil
	return nil
}

func (o *Orchestrator) load(ctx context.Context, id string) (*snapshot, error) {
	row, err := o.store.load(ctx, id)
	if err != nil {
		return nil, err
	}
	rows, err := o.store.steps(ctx, id)
	if err != nil {
		return nil, err
	}
	snap := &snapshot{row: row, steps: map[string]stepRow{}}
	for _, s := range rows {
		snap.steps[s.Step] = s
	}
	if err := json.Unmarshal([]byte(row.Data), &snap.data); err != nil {
		return nil, fmt.Errorf("decode saga %s: %w", id, err)
	}
	return snap, nil
}

// drive moves one saga, which this orchestrator owns, to a final state or
// until it must stop, starting from snap (nil: read from the database).
// A failed database write does not stop it: the saga is read again and
// the step retried (its call is idempotent). It returns the saga as it
// last wrote or read it, nil when that is uncertain.
func (o *Orchestrator) drive(id string, snap *snapshot) *sagaRow {
	o.metrics.active.Inc()
	defer o.metrics.active.Dec()
	last := func() *sagaRow {
		if snap == nil || len(snap.unwritten) > 0 {
			return nil // not as the database has it
		}
		row := snap.row
		return &row
	}
	failures := 0
	for {
		if o.root.Err() != nil {
			return last()
		}
		var err error
		if snap == nil {
			snap, err = o.load(o.root, id)
		}
		if err == nil {
			err = o.advance(o.root, snap)
		}
		switch {
		case o.root.Err() != nil:
			return nil // closing: whatever failed, Resume continues it
		case err == nil:
			failures = 0
		case errors.Is(err, errDone), errors.Is(err, errAbandoned):
			return last()
		case errors.Is(err, errLostLease):
			o.metrics.errorOf("", "lease_lost")
			o.log.Warn("saga taken over by another orchestrator; stopping", "saga_id", id)
			return nil
		default:
			snap = nil // what was written is uncertain: read it back
			failures++
			o.metrics.errorOf("", "persistence")
			o.log.Warn("saga step could not be recorded; retrying", "saga_id", id, "err", err)
			if o.sleep(o.backoff(failures, true)) != nil {
				return nil
			}
		}
	}
}

// advance takes the saga's next action: a forward step, a compensation,
// or the transition to COMPENSATED and FAILED once compensations are done.
func (o *Orchestrator) advance(ctx context.Context, snap *snapshot) error {
	row := &snap.row
	if Final(row.Status) {
		return errDone
	}
	if row.Owner != o.opts.Owner {
		return errLostLease
	}
	fl := flowOf(row.Kind)
	if row.FailedStep == "" {
		def := fl.next(row.Status, snap.steps)
		if def == nil {
			// No step runs in this state: the saga was written by a
			// version of this code that knew one. Stop rather than guess.
			o.log.Error("saga in a state with no step", "saga_id", row.ID, "status", row.Status)
			return errAbandoned
		}
		return o.runStep(ctx, snap, def)
	}
	if def := fl.nextCompensation(snap.steps); def != nil {
		return o.runStep(ctx, snap, def)
	}
	now := o.now()
	if row.Status != StateCompensated {
		row.Status = StateCompensated
		o.lease(row, now)
		return o.save(ctx, snap)
	}
	row.Status = StateFailed
	o.finish(row, now)
	if err := o.save(ctx, snap); err != nil {
		return err
	}
	o.metrics.finished(*row)
	return errDone
}

// runStep runs one step to its outcome: success (its effect and the state
// it leads to written with it), failure for good (the failure recorded,
// compensation follows), or, for steps that must finish, as many attempts
// as it takes. Each attempt is written before the call and its outcome
// after it.
func (o *Orchestrator) runStep(ctx context.Context, snap *snapshot, def *stepDef) error {
	row, data, steps := &snap.row, &snap.data, snap.steps
	st, existed := steps[def.name]
	if !existed {
		st = stepRow{SagaID: row.ID, Seq: len(steps) + 1, Step: def.name, Compensation: def.compensation, StartedAt: o.now()}
	}
	mustFinish := def.mustFinish || def.compensation
	began := time.Now()
	counted := 0 // attempts that count against MaxAttempts
	armed := snap.armed == def.name && existed && st.Status == StepRunning
	snap.armed = ""
	for tries := 1; ; tries++ {
		x := &execution{o: o, row: *row, data: *data, steps: steps}
		req, call := def.prepare(x)

		// Before: the attempt and what it asks, and the compensation
		// state when a compensation begins — unless the previous write
		// recorded this attempt already.
		now := o.now()
		if !armed {
			st.Attempts++
			st.Status, st.Request, st.AttemptedAt = StepRunning, encode(req), now
			if def.compensation {
				row.Status = def.state
			}
			o.lease(row, now)
			if err := o.save(ctx, snap, stepWrite{&st, !existed}); err != nil {
				return err
			}
			steps[def.name], existed = st, true
		}
		armed = false
		if o.failpoint(row.ID, def.name, BeforeCall) {
			return errAbandoned
		}

		// The call carries the request id of the checkout that started
		// the saga, resumed or not, so its logs and hops tie back to it.
		actx, cancel := context.WithTimeout(correlation.With(ctx, data.RequestID), o.opts.StepTimeout)
		res, err := o.breakers.call(def.dep, func() (result, error) { return call(actx) })
		cancel()
		if ctx.Err() != nil {
			// Shutting down: the outcome of the call is unknown, and
			// recording the cancellation as the step's failure would be a
			// lie. Resume repeats the call with the same key.
			return errAbandoned
		}
		if o.failpoint(row.ID, def.name, AfterCall) {
			return errAbandoned
		}

		// After: the outcome.
		now = o.now()
		st.AttemptedAt = now
		if err == nil {
			st.Status, st.Response, st.Error, st.ErrorKind, st.FinishedAt = StepSucceeded, encode(res.response), "", "", &now
			if res.apply != nil {
				res.apply(row, data)
			}
			row.Data = encode(data)
			if def.to != "" {
				row.Status = def.to
			}
			if Final(row.Status) {
				o.finish(row, now)
			} else {
				o.lease(row, now)
			}
			writes := []stepWrite{{&st, false}}
			steps[def.name] = st
			// The next forward step's first attempt is written with this
			// outcome: one write per step instead of two.
			var next *stepRow
			if !def.compensation && !Final(row.Status) {
				next = o.arm(row, data, steps, now)
			}
			if next != nil {
				writes = append(writes, stepWrite{next, true})
			}
			if next != nil && deferrable(def) && deferrable(stepDefOf(row.Kind, next.Step)) {
				// Nothing needs this success in the database before the
				// next call: the next write carries it.
				snap.unwritten = append(snap.unwritten, writes...)
			} else if err := o.save(ctx, snap, writes...); err != nil {
				return err
			}
			if next != nil {
				steps[next.Step], snap.armed = *next, next.Step
			}
			o.metrics.step(def.name, StepSucceeded)
			if def.compensation {
				o.metrics.compensations.WithLabelValues(def.name).Inc()
			}
			if Final(row.Status) {
				o.metrics.finished(*row)
				return errDone
			}
			return nil
		}

		kind := kindOf(err)
		st.Error, st.ErrorKind = clip(err.Error()), kind.Name()
		o.metrics.errorOf(def.name, kind.Name())
		retry := mustFinish
		switch {
		case retry || !transient(kind):
		case def.settles && unknownOutcome(kind):
			retry = time.Since(began) < o.opts.SettleBudget
		default:
			counted++
			retry = counted < o.opts.MaxAttempts
		}
		if retry {
			o.metrics.step(def.name, "retried")
			o.lease(row, now)
			if err := o.save(ctx, snap, stepWrite{&st, false}); err != nil {
				return err
			}
			steps[def.name] = st
			if mustFinish {
				o.log.Warn("saga step that must finish failed; retrying", "saga_id", row.ID, "step", def.name, "attempt", st.Attempts, "err", err)
			}
			if o.sleep(o.backoff(tries, mustFinish)) != nil {
				return errAbandoned
			}
			continue
		}

		// Failed for good: record it with the step's failure state;
		// compensation starts at the next advance.
		st.Status, st.FinishedAt = StepFailed, &now
		row.FailedStep, row.Error, row.ErrorKind = def.stage, clip(err.Error()), kind.Name()
		row.ErrorStatus = publicKind(kind).Status()
		if def.failState != "" {
			row.Status = def.failState
		}
		o.lease(row, now)
		if err := o.save(ctx, snap, stepWrite{&st, false}); err != nil {
			return err
		}
		steps[def.name] = st
		o.metrics.step(def.name, StepFailed)
		return nil
	}
}

// arm is the first attempt of the forward step that follows in the
// saga's state, as its "before" write would record it; nil when none
// follows or it has started already (a retried or resumed saga). steps
// must hold the step that just succeeded.
func (o *Orchestrator) arm(row *sagaRow, data *sagaData, steps map[string]stepRow, now time.Time) *stepRow {
	def := flowOf(row.Kind).next(row.Status, steps)
	if def == nil {
		return nil
	}
	if _, started := steps[def.name]; started {
		return nil
	}
	req, _ := def.prepare(&execution{o: o, row: *row, data: *data, steps: steps})
	return &stepRow{SagaID: row.ID, Seq: len(steps) + 1, Step: def.name, Status: StepRunning, Attempts: 1,
		Request: encode(req), StartedAt: now, AttemptedAt: now}
}

// lease renews this orchestrator's hold on a saga it writes.
func (o *Orchestrator) lease(row *sagaRow, now time.Time) {
	until := now.Add(o.opts.Lease)
	row.Owner, row.LeaseUntil, row.UpdatedAt = o.opts.Owner, &until, now
}

// finish makes a saga final: no owner, no lease, no payment token, and its
// lock freed — except a completed cancellation's, which stays so that
// cancelling the order again finds it.
func (o *Orchestrator) finish(row *sagaRow, now time.Time) {
	row.Owner, row.LeaseUntil, row.UpdatedAt, row.FinishedAt, row.PaymentToken = "", nil, now, &now, ""
	if !(row.Kind == KindCancel && row.Status == StateCompleted) {
		row.LockKey = nil
	}
}

func (o *Orchestrator) failpoint(id, step string, at Point) bool {
	return o.opts.Failpoint != nil && o.opts.Failpoint(id, step, at)
}

// backoff is the wait before attempt tries+1: exponential, capped lower
// for steps that may still fail (the customer is waiting) than for those
// that must finish, and jittered over its upper half so that sagas failing
// together do not retry together.
func (o *Orchestrator) backoff(tries int, mustFinish bool) time.Duration {
	ceiling := o.opts.BackoffMax
	if mustFinish {
		ceiling = o.opts.RecoveryBackoffMax
	}
	d := o.opts.BackoffBase << min(tries-1, 20)
	if d <= 0 || d > ceiling {
		d = ceiling
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d unless the orchestrator is closing.
func (o *Orchestrator) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-o.root.Done():
		return o.root.Err()
	}
}

// kindOf is the errs kind of a step's error; a deadline of the step's own
// timeout (which local calls report without a kind) is a Timeout.
func kindOf(err error) *errs.Kind {
	k := errs.KindOf(err)
	if k == errs.Internal && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return errs.Timeout
	}
	return k
}

// transient tells the errors worth another attempt: the downstream did
// not work (unavailable, too slow, broken) or asked to be called later
// (rate limited by the gateway), as opposed to answering no. A payment
// gateway failure (BadGateway) is retried with the same transaction id —
// the payment context asks the processor again — and counts as a failed
// payment once the attempts are spent.
func transient(k *errs.Kind) bool {
	return k == errs.Unavailable || k == errs.Timeout || k == errs.BadGateway || k == errs.Internal ||
		k == errs.TooManyRequests
}

// unknownOutcome tells the transient errors after which the call may or
// may not have had its effect: the downstream was not reached, did not
// answer in time, or is still working on an earlier attempt. A BadGateway
// from payment is not one: the payment context recorded the gateway's
// failure.
func unknownOutcome(k *errs.Kind) bool {
	return k == errs.Unavailable || k == errs.Timeout || k == errs.Internal || k == errs.TooManyRequests
}

// publicKind is the kind the checkout's caller sees for a step's failure:
// a downstream's internal error is, to the caller, a bad gateway.
func publicKind(k *errs.Kind) *errs.Kind {
	if k == errs.Internal {
		return errs.BadGateway
	}
	return k
}

func encode(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		// Every value encoded here is a plain struct of this module.
		return fmt.Sprintf(`{"unencodable":%q}`, err.Error())
	}
	return string(raw)
}

// clip bounds an error text for storage.
func clip(s string) string {
	const limit = 1000
	if len(s) <= limit {
		return s
	}
	s = s[:limit]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// breakers hold one circuit breaker per downstream context.
//
// In the fleet the HTTP client already has one per downstream; the saga
// keeps its own anyway, because in the monolith there is no HTTP client
// and so no breaker at all, and a downstream whose database is down
// would have every checkout spend its full retry budget against it. The
// saga's breakers count only outages (Unavailable, Timeout, Internal): a
// declined card, missing stock, or one card's processor failing (a
// payment BadGateway) is the downstream working. Two breakers in a row
// in the fleet are harmless: the HTTP client's opens first and answers
// Unavailable, which the saga's counts too.
type breakers struct {
	m map[string]*gobreaker.CircuitBreaker[result]
}

// Downstream names, the keys of the breakers.
const (
	depCart      = "cart"
	depInventory = "inventory"
	depPayment   = "payment"
	depOrder     = "order"
)

func newBreakers(o Options) *breakers {
	b := &breakers{m: map[string]*gobreaker.CircuitBreaker[result]{}}
	for _, dep := range []string{depCart, depInventory, depPayment, depOrder} {
		b.m[dep] = gobreaker.NewCircuitBreaker[result](gobreaker.Settings{
			Name:        "saga-" + dep,
			MaxRequests: 1,
			Interval:    30 * time.Second,
			Timeout:     o.BreakerOpen,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(o.BreakerFailures) },
			IsSuccessful: func(err error) bool {
				if err == nil {
					return true
				}
				k := kindOf(err)
				return k != errs.Unavailable && k != errs.Timeout && k != errs.Internal
			},
		})
	}
	return b
}

func (b *breakers) call(dep string, fn func() (result, error)) (result, error) {
	res, err := b.m[dep].Execute(fn)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return result{}, fmt.Errorf("%s is failing, circuit open: %w", dep, errs.Unavailable)
	}
	return res, err
}
