package saga

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/cart"
	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/payment"
	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/ids"
	"github.com/retailco/pos/internal/platform/page"
)

// Point is where in a step a Failpoint may stop the orchestrator.
type Point string

// Failpoints, for crash tests.
const (
	// BeforeCall is right after the step's "before" write, before the
	// downstream call: the call may or may not be made by whoever resumes.
	BeforeCall Point = "before_call"
	// AfterCall is right after the downstream call returned, before its
	// outcome is written: the call was made, the saga does not know it.
	AfterCall Point = "after_call"
)

// Options tunes the orchestrator. Zero values pick the defaults.
type Options struct {
	// Registerer receives the saga metrics; nil: not exported.
	Registerer prometheus.Registerer
	// Logger receives what goes wrong in the background; nil: discarded.
	Logger *slog.Logger
	// OnlineLocationID is where a checkout takes stock when the request
	// names no location. Empty: the first location of kind online (by
	// code), looked up through inventory once and remembered.
	OnlineLocationID string
	// Owner names this orchestrator in the sagas' lease column. Give each
	// process a stable one, unique among the processes running (its
	// instance id): after a restart it takes its own sagas back at once
	// instead of waiting for their leases to run out. Two live processes
	// sharing a name would take each other's sagas (safely — every write
	// is version-checked — but wastefully). Default: a random name per
	// process.
	Owner string
	// Lease is how long a saga stays this orchestrator's without a write
	// (default 60 s); every write renews it. It must outlast StepTimeout
	// plus RecoveryBackoffMax, or a healthy driver loses its sagas.
	Lease time.Duration
	// StepTimeout bounds one attempt of one step (default 10 s).
	StepTimeout time.Duration
	// MaxAttempts bounds the attempts of a step that may still fail, on
	// transient errors (default 4; counted per driver, so a resumed saga
	// gets them afresh). Declines, conflicts and invalid input are never
	// retried.
	MaxAttempts int
	// SettleBudget bounds how long the charge step keeps asking about a
	// charge whose outcome is unknown (the payment context unreachable, too
	// slow, or still processing an earlier attempt) before the saga gives
	// up and compensates (default 60 s). Such answers do not count against
	// MaxAttempts: giving up early would not spare the customer anything —
	// compensation must settle the charge anyway, to refund it. Keep it
	// above the payment context's lease on a pending charge (its gateway
	// timeout + 5 s), which is how long a charge left by a crashed payment
	// process stays "still being processed".
	SettleBudget time.Duration
	// BackoffBase and BackoffMax shape the exponential backoff between
	// attempts, with full jitter (defaults 50 ms and 2 s).
	BackoffBase, BackoffMax time.Duration
	// RecoveryBackoffMax caps the backoff of steps that must finish
	// (compensations, and what follows the confirmed order), which retry
	// until they succeed (default 20 s).
	RecoveryBackoffMax time.Duration
	// WaitBudget is how long POST /checkout (and a cancellation) waits for
	// the saga before answering 202 with its id (default 10 s, and never
	// past the request's own deadline).
	WaitBudget time.Duration
	// ReservationTTL is how long a checkout holds stock (default 30 min):
	// longer than a saga takes even with every retry, so that a resumed
	// saga rarely finds its reservation expired.
	ReservationTTL time.Duration
	// ResumeConcurrency bounds how many resumed sagas are driven at once
	// (default 16), so a restart after an outage does not flood the
	// downstreams.
	ResumeConcurrency int
	// BreakerFailures consecutive outages of a downstream open its circuit
	// for BreakerOpen (defaults 5 and 10 s).
	BreakerFailures int
	BreakerOpen     time.Duration
	// Failpoint, when set (tests only), is asked at each Point of each
	// attempt; true stops the orchestrator there as if the process died:
	// nothing more is written and the lease is kept.
	Failpoint func(sagaID, step string, at Point) bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Lease, 60*time.Second)
	def(&o.StepTimeout, 10*time.Second)
	def(&o.BackoffBase, 50*time.Millisecond)
	def(&o.BackoffMax, 2*time.Second)
	def(&o.RecoveryBackoffMax, 20*time.Second)
	def(&o.WaitBudget, 10*time.Second)
	def(&o.SettleBudget, 60*time.Second)
	def(&o.ReservationTTL, 30*time.Minute)
	def(&o.BreakerOpen, 10*time.Second)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 4
	}
	if o.ResumeConcurrency <= 0 {
		o.ResumeConcurrency = 16
	}
	if o.BreakerFailures <= 0 {
		o.BreakerFailures = 5
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Owner == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		o.Owner = "orc-" + hex.EncodeToString(b[:])
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Orchestrator runs sagas: it is the saga context's Service, and it
// resumes the sagas a previous process left unfinished (Resume).
type Orchestrator struct {
	store    *store
	deps     Deps
	opts     Options
	log      *slog.Logger
	metrics  *metricsSet
	breakers *breakers

	// root bounds every saga this orchestrator drives; Close cancels it.
	root   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}

	mu sync.Mutex
	// running holds the sagas driven in this process.
	running map[string]*driver
	online  string
	// locations are the location ids inventory has confirmed. Inventory
	// offers no way to delete or rename one, so a location that existed
	// still does: every checkout names the same few, and asking again
	// each time was a database read per checkout.
	locations sync.Map
}

var _ Service = (*Orchestrator)(nil)

// New returns the orchestrator on gdb (already migrated), calling deps.
// Call Close before closing the databases; call Resume (or run RunResume)
// at start-up to continue what a previous process left.
func New(gdb *gorm.DB, deps Deps, opts Options) *Orchestrator {
	opts = opts.withDefaults()
	root, cancel := context.WithCancel(context.Background())
	return &Orchestrator{
		store: newStore(gdb), deps: deps, opts: opts, log: opts.Logger.With("context", Name),
		metrics: newMetrics(opts.Registerer), breakers: newBreakers(opts),
		root: root, cancel: cancel, sem: make(chan struct{}, opts.ResumeConcurrency),
		running: map[string]*driver{}, online: opts.OnlineLocationID,
	}
}

// Close stops driving sagas and waits for the drivers to stop. A saga
// stopped in the middle of a step is left as a crash would leave it, for
// Resume to continue: its lease is kept, so with a stable Owner the next
// process takes it back at once.
func (o *Orchestrator) Close() {
	o.cancel()
	o.wg.Wait()
}

func (o *Orchestrator) now() time.Time { return o.opts.Now().UTC().Truncate(time.Microsecond) }

// MaxTotalCents is the largest checkout total: the payment context's
// limit on one charge.
const MaxTotalCents = 1_000_000_000

var (
	sessionPattern  = regexp.MustCompile(`^[A-Za-z0-9_-]{16,128}$`)
	customerPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	keyPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	tokenPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
)

// checkRequest is the validation that needs nothing but the request.
func checkRequest(in CheckoutRequest, idempotencyKey string) error {
	var v errs.Validator
	v.Check(sessionPattern.MatchString(in.SessionID), "session_id", "must be 16-128 letters, digits, '_' or '-'")
	v.Check(customerPattern.MatchString(in.CustomerID), "customer_id", "must be 1-64 letters, digits, '_' or '-'")
	v.Check(in.LocationID == "" || keyPattern.MatchString(in.LocationID), "location_id", "is not a valid id")
	v.Check(slices.Contains(payment.Methods, in.Payment.Method), "payment.method", "must be one of %s", strings.Join(payment.Methods, ", "))
	v.Check(tokenPattern.MatchString(in.Payment.Token), "payment.token", "is required: the processor's token of the card")
	v.Check(len(idempotencyKey) <= 255 && printable(idempotencyKey), "Idempotency-Key", "must be at most 255 printable characters")
	if err := in.ShippingAddress.Validate(); err != nil {
		for _, f := range errs.Fields(err) {
			v.Check(false, f.Field, "%s", f.Message)
		}
	}
	return v.Err()
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// requestHash identifies a checkout body for its idempotency key. It is
// taken over the normalized request re-encoded by Go (fixed field order),
// so whitespace or key order in the client's JSON does not matter.
func requestHash(in CheckoutRequest) string {
	raw, _ := json.Marshal(in)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// scopeOf is the namespace of the caller's idempotency keys: two callers
// choosing the same key never see each other's sagas.
func scopeOf(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok {
		return string(p.Role) + ":" + p.Subject
	}
	return "local"
}

// Checkout implements Service.
func (o *Orchestrator) Checkout(ctx context.Context, idempotencyKey string, in CheckoutRequest) (CheckoutResult, error) {
	res, err := o.checkout(ctx, idempotencyKey, in)
	var failed *FailedError
	switch {
	case errors.As(err, &failed):
		o.metrics.request(StateFailed)
	case err != nil:
		o.metrics.request("REJECTED")
	case res.Status == StateCompleted:
		o.metrics.request(StateCompleted)
	default:
		o.metrics.request("RUNNING")
	}
	return res, err
}

func (o *Orchestrator) checkout(ctx context.Context, idempotencyKey string, in CheckoutRequest) (CheckoutResult, error) {
	in.ShippingAddress = in.ShippingAddress.Normalized()
	in.LocationID = strings.TrimSpace(in.LocationID)
	if err := checkRequest(in, idempotencyKey); err != nil {
		return CheckoutResult{}, err
	}
	hash := requestHash(in)
	scope := scopeOf(ctx)
	// The idempotency key is not looked up first: a new checkout (nearly
	// every request) would pay a round trip for nothing. A repeat is
	// recognised where it differs from a new checkout: its cart is gone
	// (bought and cleared) so the precheck fails, or the insert finds its
	// key or its cart's lock taken; each of those looks the key up.
	loc, err := o.location(ctx, in.LocationID)
	var quote cart.Quote
	if err == nil {
		quote, err = o.validateCartUpfront(ctx, in)
	}
	if err != nil {
		// After a completed checkout the cart is gone, and the replay
		// must still succeed: the key, if known, is the answer.
		if idempotencyKey != "" {
			if res, found, rerr := o.replay(ctx, scope, idempotencyKey, hash); found || rerr != nil {
				return res, rerr
			}
		}
		return CheckoutResult{}, err
	}

	now := o.now()
	id := ids.New("sga")
	stored := in
	stored.Payment.Token = "" // kept in its own column until the charge settles
	sd := sagaData{Checkout: &stored, RequestID: correlation.From(ctx)}
	lock := "cart:" + in.SessionID
	lease := now.Add(o.opts.Lease)
	row := sagaRow{
		ID: id, Kind: KindCheckout, Status: StatePending, Version: 1, CustomerID: in.CustomerID,
		SessionID: in.SessionID, LocationID: loc, ReservationID: id, PaymentToken: in.Payment.Token,
		LockKey: &lock, Owner: o.opts.Owner, LeaseUntil: &lease, CreatedAt: now, UpdatedAt: now,
	}
	// The cart was validated above, before the saga existed: the saga is
	// born CART_VALIDATED with that step recorded as done (see
	// validateCartUpfront).
	validated := o.validated(&row, &sd, in, quote, now)
	var key *keyRow
	if idempotencyKey != "" {
		key = &keyRow{Scope: scope, IdemKey: idempotencyKey, RequestHash: hash, SagaID: id, CreatedAt: now}
	}
	// Registered as running before it exists, so that a duplicate request
	// finding it never mistakes it for a saga nobody drives.
	d := o.markRunning(id)
	snap := o.created(row, sd, validated)
	if err := o.store.insert(ctx, &snap.row, snap.inserted(), key); err != nil {
		o.stopped(id, d)
		if errors.Is(err, errKeyTaken) || (errors.Is(err, errLocked) && idempotencyKey != "") {
			if res, found, rerr := o.replay(ctx, scope, idempotencyKey, hash); found || rerr != nil {
				return res, rerr
			}
		}
		if errors.Is(err, errLocked) {
			detail := "a checkout of this cart is already running"
			if held, lerr := o.store.byLock(ctx, lock); lerr == nil {
				detail += " (saga " + held.ID + ")"
			}
			return CheckoutResult{}, fmt.Errorf("%s; wait for it: %w", detail, errs.Conflict)
		}
		return CheckoutResult{}, err
	}
	o.metrics.step(StepValidateCart, StepSucceeded) // counted as when the driver ran it
	o.launch(d, snap)
	return o.checkoutResult(ctx, id)
}

// replay answers a request whose idempotency key is known: the first
// request's saga, awaited like the first request awaits it.
func (o *Orchestrator) replay(ctx context.Context, scope, idempotencyKey, hash string) (CheckoutResult, bool, error) {
	k, err := o.store.key(ctx, scope, idempotencyKey)
	if errs.IsKind(err, errs.NotFound) {
		return CheckoutResult{}, false, nil
	}
	if err != nil {
		return CheckoutResult{}, false, err
	}
	if k.RequestHash != hash {
		return CheckoutResult{}, true, fmt.Errorf("Idempotency-Key %q was first used with another request (saga %s); use a new key for a new checkout: %w",
			idempotencyKey, k.SagaID, errs.Unprocessable)
	}
	res, err := o.checkoutResult(ctx, k.SagaID)
	return res, true, err
}

func (o *Orchestrator) checkoutResult(ctx context.Context, id string) (CheckoutResult, error) {
	row, err := o.await(ctx, id)
	if err != nil {
		return CheckoutResult{}, err
	}
	res := CheckoutResult{
		SagaID: row.ID, Status: row.Status, OrderID: row.OrderID, TotalCents: row.TotalCents, Currency: row.Currency,
		PaymentID: row.PaymentID, ReservationID: row.ReservationID, FailedStep: row.FailedStep,
	}
	if row.Status == StateFailed {
		return res, failedError(row)
	}
	return res, nil
}

func failedError(row sagaRow) error {
	return &FailedError{SagaID: row.ID, FailedStep: row.FailedStep, Kind: errs.FromStatus(row.ErrorStatus), Detail: row.Error}
}

// location resolves where a checkout takes its stock.
func (o *Orchestrator) location(ctx context.Context, id string) (string, error) {
	if id != "" {
		if _, known := o.locations.Load(id); known {
			return id, nil
		}
		if _, err := o.deps.Inventory.GetLocation(ctx, id); err != nil {
			if errs.IsKind(err, errs.NotFound) {
				return "", errs.Field("location_id", "no location %q", id)
			}
			return "", fmt.Errorf("check location %s: %w", id, err)
		}
		o.locations.Store(id, struct{}{})
		return id, nil
	}
	o.mu.Lock()
	online := o.online
	o.mu.Unlock()
	if online != "" {
		return online, nil
	}
	res, err := o.deps.Inventory.ListLocations(ctx, inventory.LocationFilter{Kind: inventory.KindOnline, Page: page.Request{Page: 1, PerPage: 1}})
	if err != nil {
		return "", fmt.Errorf("find the online location: %w", err)
	}
	if len(res.Items) == 0 {
		return "", fmt.Errorf("no location of kind online exists to ship web orders from; name a location_id or create one: %w", errs.Unavailable)
	}
	o.mu.Lock()
	o.online = res.Items[0].ID
	o.mu.Unlock()
	return res.Items[0].ID, nil
}

// validateCartUpfront is the checkout's validate_cart step, run before the saga
// is written: it refuses a cart that cannot be bought (unknown session,
// empty, someone else's, a total the payment context would refuse) with a
// 4xx and no saga, makes the cart the buyer's, and prices it for the
// shipping province — the price reserved, charged and ordered.
//
// Running it before the saga exists instead of as the driver's first
// step saves a write per checkout and the cart's reads done twice, and
// changes nothing a crash could see: until the saga's insert commits
// there is nothing to resume, and the request fails (its replay with the
// same Idempotency-Key starts afresh); the step's only effect, the cart's
// owner, is what the buyer asked for whether or not the checkout goes on.
// The cart can change after it was priced either way (the cart context
// does not know about sagas): what is charged is the quote recorded.
func (o *Orchestrator) validateCartUpfront(ctx context.Context, in CheckoutRequest) (cart.Quote, error) {
	q, err := o.deps.Carts.Calculate(ctx, in.SessionID, in.ShippingAddress.Province)
	switch {
	case errs.IsKind(err, errs.NotFound):
		return cart.Quote{}, errs.Field("session_id", "no cart for this session (it may have expired)")
	case err != nil:
		return cart.Quote{}, fmt.Errorf("price the cart: %w", err)
	case len(q.Lines) == 0:
		return cart.Quote{}, errs.Field("session_id", "the cart is empty")
	case q.CustomerID != "" && q.CustomerID != in.CustomerID:
		return cart.Quote{}, fmt.Errorf("the cart belongs to another customer: %w", errs.Forbidden)
	case q.TotalCents <= 0:
		return cart.Quote{}, errs.Field("session_id", "nothing to pay: the cart's total is zero")
	case q.TotalCents > MaxTotalCents:
		return cart.Quote{}, errs.Field("session_id", "the total %d is over the %d cents one payment may take", q.TotalCents, int64(MaxTotalCents))
	}
	if q.CustomerID == "" {
		// An anonymous cart becomes the buyer's; a cart already theirs
		// (filled with their token) needs no write.
		_, err := o.deps.Carts.AttachCustomer(ctx, in.SessionID, in.CustomerID)
		switch {
		case errs.IsKind(err, errs.NotFound):
			return cart.Quote{}, errs.Field("session_id", "no cart for this session (it may have expired)")
		case err != nil:
			// A Conflict keeps its kind and the cart's words: another
			// customer took the cart since it was priced, or it changed
			// too often to be written (retry later).
			return cart.Quote{}, fmt.Errorf("attach the cart to its buyer: %w", err)
		}
		q.CustomerID = in.CustomerID
	}
	return q, nil
}

// validated records, on a checkout saga about to be inserted, the
// validate_cart step validateCartUpfront ran: the step as its driver would have
// written it, and its effect on the saga (the quote, the total, the state
// CART_VALIDATED).
func (o *Orchestrator) validated(row *sagaRow, data *sagaData, in CheckoutRequest, q cart.Quote, now time.Time) stepRow {
	req := cartRequest{SessionID: in.SessionID, CustomerID: in.CustomerID, Province: in.ShippingAddress.Province}
	data.Quote = &q
	row.Data = encode(data)
	row.TotalCents, row.Currency = q.TotalCents, q.Currency
	row.Status = StateCartValidated
	return stepRow{SagaID: row.ID, Seq: 1, Step: StepValidateCart, Status: StepSucceeded, Attempts: 1,
		Request: encode(req), Response: encode(q), StartedAt: now, AttemptedAt: now, FinishedAt: &now}
}

// CancelOrder implements Service. A caller with a principal (an HTTP
// request) must be the order's customer or staff (manager, service);
// callers inside the process are trusted like any caller of a Service.
func (o *Orchestrator) CancelOrder(ctx context.Context, orderID string) (CancelResult, error) {
	res, err := o.cancelOrder(ctx, orderID)
	var failed *FailedError
	switch {
	case errors.As(err, &failed):
		o.metrics.request(StateFailed)
	case err != nil:
		o.metrics.request("REJECTED")
	case res.Status == StateCompleted:
		o.metrics.request(StateCompleted)
	default:
		o.metrics.request("RUNNING")
	}
	return res, err
}

func (o *Orchestrator) cancelOrder(ctx context.Context, orderID string) (CancelResult, error) {
	if !keyPattern.MatchString(orderID) {
		return CancelResult{}, errs.Field("id", "is not a valid order id")
	}
	ord, err := o.deps.Orders.GetOrder(ctx, orderID)
	if err != nil {
		return CancelResult{}, err
	}
	if _, ok := auth.FromContext(ctx); ok {
		if err := httpx.Allow(ctx, ord.CustomerID, auth.RoleManager, auth.RoleService); err != nil {
			return CancelResult{}, err
		}
	}
	lock := "cancel:" + orderID
	switch ord.Status {
	case order.StatusShipped, order.StatusDelivered:
		return CancelResult{}, fmt.Errorf("order %s is %s: it can no longer be cancelled (a return is the way now): %w", orderID, ord.Status, errs.Conflict)
	case order.StatusCancelled:
		// Cancelled already: by a cancellation saga, whose outcome is
		// the answer (cancelling twice is the same cancellation).
		held, err := o.store.byLock(ctx, lock)
		if errs.IsKind(err, errs.NotFound) {
			return CancelResult{}, fmt.Errorf("order %s was cancelled without a refund saga; refund it by hand: %w", orderID, errs.Conflict)
		}
		if err != nil {
			return CancelResult{}, err
		}
		return o.cancelResult(ctx, held.ID)
	}
	now := o.now()
	id := ids.New("sga")
	sd := sagaData{Order: &ord, RequestID: correlation.From(ctx)}
	data, err := json.Marshal(sd)
	if err != nil {
		return CancelResult{}, fmt.Errorf("encode saga: %w", err)
	}
	lease := now.Add(o.opts.Lease)
	row := sagaRow{
		ID: id, Kind: KindCancel, Status: StatePending, Version: 1, CustomerID: ord.CustomerID,
		LocationID: ord.LocationID, ReservationID: ord.ReservationID, PaymentID: ord.PaymentID, OrderID: ord.ID,
		TotalCents: ord.TotalCents, Currency: ord.Currency, Data: string(data), LockKey: &lock,
		Owner: o.opts.Owner, LeaseUntil: &lease, CreatedAt: now, UpdatedAt: now,
	}
	d := o.markRunning(id)
	snap := o.created(row, sd)
	if err := o.store.insert(ctx, &snap.row, snap.inserted(), nil); err != nil {
		o.stopped(id, d)
		if !errors.Is(err, errLocked) {
			return CancelResult{}, err
		}
		// A concurrent cancellation of the same order won: answer its.
		held, lerr := o.store.byLock(ctx, lock)
		if lerr != nil {
			return CancelResult{}, lerr
		}
		return o.cancelResult(ctx, held.ID)
	}
	o.launch(d, snap)
	return o.cancelResult(ctx, id)
}

func (o *Orchestrator) cancelResult(ctx context.Context, id string) (CancelResult, error) {
	row, err := o.await(ctx, id)
	if err != nil {
		return CancelResult{}, err
	}
	res := CancelResult{SagaID: row.ID, Status: row.Status, OrderID: row.OrderID, RefundedCents: row.TotalCents,
		Currency: row.Currency, FailedStep: row.FailedStep}
	if row.Status == StateFailed {
		res.RefundedCents = 0
		return res, failedError(row)
	}
	return res, nil
}

// GetSaga implements Service.
func (o *Orchestrator) GetSaga(ctx context.Context, id string) (Saga, error) {
	row, err := o.store.load(ctx, id)
	if err != nil {
		return Saga{}, err
	}
	steps, err := o.store.steps(ctx, id)
	if err != nil {
		return Saga{}, err
	}
	return row.domain(steps, o.now()), nil
}

// States lists every state a saga may be in.
var States = []string{StatePending, StateCartValidated, StateStockReserved, StatePaymentProcessed, StateOrderConfirmed,
	StateCompleted, StateCartFailed, StateStockFailed, StatePaymentFailed, StateCompensatingPay, StateCompensatingStock,
	StateCompensated, StateFailed, StateOrderCancelled, StatePaymentRefunded}

// ListSagas implements Service.
func (o *Orchestrator) ListSagas(ctx context.Context, f Filter) (page.Result[Saga], error) {
	f.Page = f.Page.Normalize()
	var v errs.Validator
	v.Check(f.Status == "" || slices.Contains(States, f.Status), "status", "must be one of %s", strings.Join(States, ", "))
	v.Check(f.Kind == "" || f.Kind == KindCheckout || f.Kind == KindCancel, "kind", "must be checkout or cancel")
	if err := v.Err(); err != nil {
		return page.Result[Saga]{}, err
	}
	res, err := o.store.list(ctx, f)
	if err != nil {
		return page.Result[Saga]{}, err
	}
	now := o.now()
	out := make([]Saga, len(res.Items))
	for i, r := range res.Items {
		out[i] = r.domain(nil, now)
	}
	return page.Result[Saga]{Items: out, Total: res.Total}, nil
}

// created is the snapshot of a saga about to be inserted: the row, its
// data, the steps done before it was written, and its next step's first
// attempt, armed so that the driver calls at once.
func (o *Orchestrator) created(row sagaRow, data sagaData, done ...stepRow) *snapshot {
	snap := &snapshot{row: row, data: data, steps: map[string]stepRow{}}
	for _, st := range done {
		snap.steps[st.Step] = st
	}
	if first := o.arm(&snap.row, &snap.data, snap.steps, row.CreatedAt); first != nil {
		snap.steps[first.Step], snap.armed = *first, first.Step
	}
	return snap
}

// inserted is the steps of a snapshot made by created, in order.
func (s *snapshot) inserted() []stepRow {
	out := make([]stepRow, 0, len(s.steps))
	for _, st := range s.steps {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b stepRow) int { return a.Seq - b.Seq })
	return out
}

// await waits until the saga is final, its driver in this process stopped
// short of that, or the wait budget (bounded by ctx) is spent, and returns
// the saga as it then stands. A saga driven here is answered from its
// driver's last write, without reading it back.
func (o *Orchestrator) await(ctx context.Context, id string) (sagaRow, error) {
	deadline := time.Now().Add(o.opts.WaitBudget)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	poll := 10 * time.Millisecond
	for {
		// Whether a driver runs here is looked at before the saga is
		// read: a driver that finishes in between then wakes us at once,
		// whereas the other order would take a row read before the end
		// for a saga nobody drives.
		o.mu.Lock()
		d, driving := o.running[id]
		o.mu.Unlock()
		if driving {
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-d.done:
				t.Stop()
				if d.last != nil {
					return *d.last, nil
				}
				continue // uncertain: read it
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			// Out of time: say where it stands.
			return o.store.load(context.WithoutCancel(ctx), id)
		}
		// Read even when ctx has ended: the answer is what the saga is.
		row, err := o.store.load(context.WithoutCancel(ctx), id)
		if err != nil {
			return sagaRow{}, err
		}
		if Final(row.Status) || row.Owner == o.opts.Owner {
			// Final; or ours, and nobody here drives it (stopped by
			// Close or a failpoint): Resume continues it; say where it
			// stands.
			return row, nil
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return row, nil
		}
		// A saga driven by another process is polled.
		t := time.NewTimer(min(poll, remaining))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return row, nil
		}
		poll = min(poll*2, 250*time.Millisecond)
	}
}
