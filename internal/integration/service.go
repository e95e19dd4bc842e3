package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/claims"
	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
)

// Options tune the local service; zero values pick the defaults.
type Options struct {
	// Registerer receives the context's metrics; nil: not exported.
	Registerer prometheus.Registerer
	// Now is the clock of the records (default time.Now).
	Now func() time.Time
	// CallTimeout bounds each call to the order or customer context, probe
	// or real (default 2 s). Past it the dependency counts as down: a
	// customer filing a complaint gets a degraded claim at once rather
	// than waiting on a context that may never answer.
	CallTimeout time.Duration
	// AbandonAfter is how long a pending record whose claim does not exist
	// is kept (default 10 min): its creation failed in a way that left the
	// outcome unknown (a timeout, a crash) and may still show up.
	AbandonAfter time.Duration
	// Logger receives what an operator should know (a customer who claimed
	// on someone else's order during an outage); default slog.Default.
	Logger *slog.Logger
}

// Probe ids: ids no order or customer can have (real ones are a prefix and
// 32 hex digits), so a probe is answered errs.NotFound by a working
// dependency after the whole path of a real read.
const (
	probeOrderID    = "ord_integration_probe"
	probeCustomerID = "cus_integration_probe"
)

// batchSize is how many pending rows one query of EnrichPending reads.
const batchSize = 100

// retryBackoff keeps a row that must be retried (the claim moved under
// us, or is not created yet) out of the round that saw it.
const retryBackoff = 5 * time.Second

// loopPrincipal is who the enrichment loop acts as: the claims events it
// causes are attributed to it ("service:integration").
var loopPrincipal = auth.Principal{Role: auth.RoleService, Subject: Name, Name: "integration enrichment"}

type service struct {
	store   *store
	deps    Deps
	now     func() time.Time
	timeout time.Duration
	abandon time.Duration
	// rowBudget bounds the work on one pending row; lease outlasts it, so
	// no other round takes a row that is still being worked on.
	rowBudget time.Duration
	lease     time.Duration
	log       *slog.Logger
	metrics   *metrics
	mon       *monitor
}

var _ Local = (*service)(nil)

// New returns the local integration service: its pending enrichments in
// gdb (migrated with Migrations), its dependencies local or HTTP Clients.
// Start RunMonitor and RunEnrichment beside it.
func New(gdb *gorm.DB, deps Deps, opts Options) Local {
	if deps.Claims == nil || deps.Orders == nil || deps.Customers == nil {
		// A wiring bug: fail at start-up, not at the first claim.
		panic("integration.New: Deps.Claims, Deps.Orders and Deps.Customers are all required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 2 * time.Second
	}
	if opts.AbandonAfter <= 0 {
		opts.AbandonAfter = 10 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := newMetrics(opts.Registerer)
	now := func() time.Time { return opts.Now().UTC().Truncate(time.Microsecond) }
	budget := 4*opts.CallTimeout + 20*time.Second
	return &service{
		store: &store{db: gdb}, deps: deps, now: now, timeout: opts.CallTimeout, abandon: opts.AbandonAfter,
		rowBudget: budget, lease: budget + 30*time.Second, log: opts.Logger, metrics: m, mon: newMonitor(now, m),
	}
}

// outage is a dependency that did not do its job: it did not answer, or
// answered something other than the data or "no such thing". It unwraps
// to errs.Timeout or errs.Unavailable.
type outage struct {
	dep  string
	kind *errs.Kind
	err  error
}

func (o *outage) Error() string { return o.dep + " context unavailable: " + o.err.Error() }
func (o *outage) Unwrap() error { return o.kind }

func isOutage(err error) bool {
	var o *outage
	return errors.As(err, &o)
}

// observe classifies the outcome of a call to dependency dep that started
// at started, records it with the monitor, and returns the error to act
// on. Answered means the data or errs.NotFound: the dependency did its
// whole job. Anything else is an outage, whatever its kind: a timeout, an
// open circuit, a 5xx, even a 401/403 from a misconfigured service key;
// in each case the data cannot be had now, and a claim must not be lost
// for it. A caller that gave up (ctx done) says nothing of the dependency.
func (s *service) observe(ctx context.Context, dep string, started time.Time, err error) error {
	if err == nil || errs.IsKind(err, errs.NotFound) {
		s.mon.record(dep, started, nil)
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s call abandoned: %w (%v)", dep, errs.Timeout, ctx.Err())
	}
	s.mon.record(dep, started, err)
	kind := errs.Unavailable
	if errs.IsKind(err, errs.Timeout) || errors.Is(err, context.DeadlineExceeded) {
		kind = errs.Timeout
	}
	return &outage{dep: dep, kind: kind, err: err}
}

func (s *service) getOrder(ctx context.Context, id string) (order.Order, error) {
	started := s.now()
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	o, err := s.deps.Orders.GetOrder(cctx, id)
	return o, s.observe(ctx, order.Name, started, err)
}

func (s *service) getCustomer(ctx context.Context, id string) (customer.Customer, error) {
	started := s.now()
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	c, err := s.deps.Customers.GetCustomer(cctx, id)
	return c, s.observe(ctx, customer.Name, started, err)
}

// normalize trims the input and checks what needs no other context, so a
// bad request costs no call and writes nothing. The checks repeat the
// HTTP schema on purpose: in-process callers never pass through it.
func normalize(in ClaimFromOrder) (ClaimFromOrder, error) {
	in.OrderID = strings.TrimSpace(in.OrderID)
	in.Description = strings.TrimSpace(in.Description)
	in.ProductID = strings.TrimSpace(in.ProductID)
	in.CustomerID = strings.TrimSpace(in.CustomerID)
	var v errs.Validator
	v.Check(in.OrderID != "", "order_id", "is required")
	v.Check(len(in.OrderID) <= 64, "order_id", "must be at most 64 characters")
	v.Check(in.ClaimType.Valid(), "claim_type", "must be one of product_defect, delivery_issue, billing_error, service_complaint")
	v.Check(in.Description != "", "description", "is required")
	v.Check(utf8.RuneCountInString(in.Description) <= claims.MaxDescription, "description", "must be at most %d characters", claims.MaxDescription)
	v.Check(len(in.ProductID) <= 64, "product_id", "must be at most 64 characters")
	v.Check(len(in.CustomerID) <= 64, "customer_id", "must be at most 64 characters")
	return in, v.Err()
}

func (s *service) CreateClaimFromOrder(ctx context.Context, in ClaimFromOrder) (Result, error) {
	in, err := normalize(in)
	if err != nil {
		return Result{}, err
	}
	p, ok := auth.FromContext(ctx)
	asCustomer := ok && p.Role == auth.RoleCustomer
	if asCustomer {
		// A customer claims for themselves: naming someone else is refused
		// before anything is read.
		if in.CustomerID != "" && in.CustomerID != p.Subject {
			return Result{}, fmt.Errorf("customers open claims for themselves only: %w", errs.Forbidden)
		}
		in.CustomerID = p.Subject
	}

	en := claims.Enrichment{Status: claims.EnrichmentComplete}
	verified := false
	o, err := s.getOrder(ctx, in.OrderID)
	switch {
	case err == nil:
		if asCustomer && o.CustomerID != p.Subject {
			return Result{}, fmt.Errorf("order %s is not yours: %w", in.OrderID, errs.Forbidden)
		}
		var v errs.Validator
		v.Check(in.CustomerID == "" || in.CustomerID == o.CustomerID, "customer_id", "is not the customer of order %s", o.ID)
		v.Check(in.ProductID == "" || hasProduct(o, in.ProductID), "product_id", "is not a product of order %s", o.ID)
		if err := v.Err(); err != nil {
			return Result{}, err
		}
		in.CustomerID, verified = o.CustomerID, true
		en.Order = orderContext(o)
	case errs.IsKind(err, errs.NotFound):
		return Result{}, fmt.Errorf("order %s: %w", in.OrderID, errs.NotFound)
	case isOutage(err):
		// Degraded: the claim needs a claimant the order cannot name now.
		if in.CustomerID == "" {
			return Result{}, errs.Field("customer_id", "is required while the order context is unavailable (%v)", err)
		}
		en.Status = claims.EnrichmentPending
	default:
		return Result{}, err
	}

	c, err := s.getCustomer(ctx, in.CustomerID)
	switch {
	case err == nil:
		en.Customer = contact(c)
	case errs.IsKind(err, errs.NotFound):
		// Staff named a claimant the order could not confirm, and the
		// customer context does not know them: a typo, refused. Otherwise
		// the claimant is certain and simply has no record to read.
		if !verified && !asCustomer {
			return Result{}, errs.Field("customer_id", "no customer %s", in.CustomerID)
		}
	case isOutage(err):
		en.Status = claims.EnrichmentPending
	default:
		return Result{}, err
	}

	claimID := ids.New("clm")
	pending := en.Status == claims.EnrichmentPending
	if pending {
		// The record first, under the claim id: a crash after it leaves a
		// record the loop resolves, never a pending claim nobody finishes.
		now := s.now()
		row := enrichmentRow{ClaimID: claimID, OrderID: in.OrderID, CustomerID: in.CustomerID, Verified: verified,
			State: statePending, CreatedAt: now, UpdatedAt: now}
		if err := s.store.insert(ctx, row); err != nil {
			return Result{}, err
		}
	}
	cl, err := s.deps.Claims.CreateClaim(ctx, claims.NewClaim{
		ClaimID: claimID, CustomerID: in.CustomerID, ClaimType: in.ClaimType, Description: in.Description,
		ProductID: in.ProductID, OrderID: in.OrderID, Enrichment: &en,
	})
	if err != nil {
		if pending && !mayHaveCreated(err) {
			// Claims answered no: there is no claim to enrich.
			wctx, cancel := s.writeContext(ctx)
			if rerr := s.store.remove(wctx, claimID); rerr != nil {
				s.log.WarnContext(ctx, "pending enrichment left for a claim that was refused", "context", Name, "claim_id", claimID, "err", rerr)
			}
			cancel()
		}
		if errs.KindOf(err) == errs.Internal {
			// Claims failed without saying why (its database, in the
			// monolith): for our caller, a dependency is unavailable.
			err = fmt.Errorf("%w (%v)", errs.Unavailable, err)
		}
		return Result{}, fmt.Errorf("create claim from order %s: %w", in.OrderID, err)
	}

	res := Result{ClaimID: cl.ClaimID, Mode: ModeFull, Enrichment: en.Status, Claim: cl}
	if pending {
		res.Mode = ModeDegraded
		s.refreshPending(ctx)
	}
	s.metrics.claims.WithLabelValues(string(res.Mode)).Inc()
	return res, nil
}

// mayHaveCreated tells whether a failed CreateClaim may still have created
// the claim (no answer, or an answer that proves nothing).
func mayHaveCreated(err error) bool {
	switch errs.KindOf(err) {
	case errs.Unavailable, errs.Timeout, errs.BadGateway, errs.Internal:
		return true
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// writeContext is for a bookkeeping write after remote work: it must
// happen even if the caller has just given up, or the work is repeated.
func (s *service) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

func hasProduct(o order.Order, productID string) bool {
	for _, l := range o.Lines {
		if l.ProductID == productID {
			return true
		}
	}
	return false
}

// orderContext is the part of an order a claim keeps.
func orderContext(o order.Order) *claims.OrderContext {
	oc := &claims.OrderContext{OrderID: o.ID, Status: string(o.Status), TotalCents: o.TotalCents, Currency: o.Currency}
	for _, l := range o.Lines {
		oc.Lines = append(oc.Lines, claims.OrderLine{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name,
			Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents})
	}
	return oc
}

// contact is how to reach a customer.
func contact(c customer.Customer) *claims.CustomerContact {
	return &claims.CustomerContact{Name: strings.TrimSpace(c.FirstName + " " + c.LastName), Email: c.Email, Phone: c.Phone}
}

func (s *service) Status(ctx context.Context) (Status, error) {
	// Before the monitor's first round the status would say "unknown":
	// look now instead, once.
	if s.mon.unobserved() {
		s.probe(ctx)
	}
	return s.status(ctx)
}

func (s *service) Probe(ctx context.Context) (Status, error) {
	s.probe(ctx)
	return s.status(ctx)
}

func (s *service) Recovered() <-chan struct{} { return s.mon.recovered }

// probe reads an id that cannot exist from both dependencies at once;
// observe records what happened.
func (s *service) probe(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = s.getOrder(ctx, probeOrderID) }()
	go func() { defer wg.Done(); _, _ = s.getCustomer(ctx, probeCustomerID) }()
	wg.Wait()
}

// status is the monitor's view plus the backlog, without probing.
func (s *service) status(ctx context.Context) (Status, error) {
	st := s.mon.snapshot()
	pending, failed, err := s.store.counts(ctx)
	if err != nil {
		return st, err
	}
	st.PendingEnrichments, st.FailedEnrichments = pending, failed
	s.metrics.pending.Set(float64(pending))
	return st, nil
}

// refreshPending sets the backlog gauge; a failure only leaves the gauge
// stale until the next count.
func (s *service) refreshPending(ctx context.Context) {
	if pending, _, err := s.store.counts(ctx); err == nil {
		s.metrics.pending.Set(float64(pending))
	}
}

func (s *service) EnrichPending(ctx context.Context) (int, error) {
	if _, ok := auth.FromContext(ctx); !ok {
		ctx = auth.WithPrincipal(ctx, loopPrincipal)
	}
	// Known to be down: one probe decides whether this round is worth
	// its calls, rather than one timeout per pending row.
	if s.mon.degraded() {
		s.probe(ctx)
		if s.mon.degraded() {
			s.refreshPending(ctx)
			return 0, nil
		}
	}
	enriched := 0
	var firstErr error
	for {
		now := s.now()
		rows, err := s.store.due(ctx, now, batchSize)
		if err != nil {
			return enriched, err
		}
		stop := false
		for _, r := range rows {
			if ctx.Err() != nil {
				return enriched, fmt.Errorf("enrichment round: %w (%v)", errs.Timeout, ctx.Err())
			}
			// Every row processed here ends finished or leased (a backoff
			// or until a dependency returns), so the next query of this
			// round never returns it again.
			ok, err := s.store.lease(ctx, r.ClaimID, now, now.Add(s.lease))
			if err != nil {
				return enriched, err
			}
			if !ok {
				continue // another round has it
			}
			outcome, err := s.enrichOne(ctx, r)
			s.metrics.enrichments.WithLabelValues(outcome).Inc()
			if outcome == outcomeCompleted {
				enriched++
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if outcome == outcomeDeferred {
				// A dependency is down again: the rest would fail the same
				// way. The monitor's recovery signal restarts the loop.
				stop = true
				break
			}
		}
		if stop || len(rows) < batchSize {
			break
		}
	}
	s.refreshPending(ctx)
	return enriched, firstErr
}

// enrichOne completes one leased row, or says why it cannot yet.
func (s *service) enrichOne(parent context.Context, r enrichmentRow) (string, error) {
	ctx, cancel := context.WithTimeout(parent, s.rowBudget)
	defer cancel()
	// Bookkeeping writes outlive ctx: a write lost after the remote work
	// would only make the next round repeat it.
	wctx, wcancel := s.writeContext(parent)
	defer wcancel()
	finish := func(state, outcome, why string) (string, error) {
		return outcome, s.store.finish(wctx, r.ClaimID, state, outcome, why, s.now())
	}
	// release with a zero backoff makes the row due again at once: the
	// round stops anyway, and the next one is started by the recovery.
	release := func(outcome string, backoff time.Duration, why error) (string, error) {
		now := s.now()
		var until *time.Time
		if backoff > 0 {
			t := now.Add(backoff)
			until = &t
		}
		return outcome, s.store.release(wctx, r.ClaimID, why.Error(), now, until)
	}

	o, err := s.getOrder(ctx, r.OrderID)
	switch {
	case err == nil:
	case errs.IsKind(err, errs.NotFound):
		return finish(stateFailed, outcomeOrderNotFound, fmt.Sprintf("order %s does not exist", r.OrderID))
	case isOutage(err):
		return release(outcomeDeferred, 0, err)
	default:
		out, rerr := release(outcomeDeferred, 0, err)
		return out, errors.Join(err, rerr)
	}
	if !r.Verified && o.CustomerID != r.CustomerID {
		// The claim was opened during an outage by someone whose order this
		// is not. Its details stay out of the claim: the claimant could
		// read them.
		s.log.WarnContext(ctx, "claim made during an outage names another customer's order; not enriched", "context", Name,
			"claim_id", r.ClaimID, "order_id", r.OrderID, "claimant", r.CustomerID)
		return finish(stateFailed, outcomeCustomerMismatch, fmt.Sprintf("order %s belongs to another customer", r.OrderID))
	}
	en := claims.Enrichment{Status: claims.EnrichmentComplete, Order: orderContext(o)}
	c, err := s.getCustomer(ctx, o.CustomerID)
	switch {
	case err == nil:
		en.Customer = contact(c)
	case errs.IsKind(err, errs.NotFound):
		// Complete without a contact: there is none to wait for.
	case isOutage(err):
		return release(outcomeDeferred, 0, err)
	default:
		out, rerr := release(outcomeDeferred, 0, err)
		return out, errors.Join(err, rerr)
	}

	_, err = s.deps.Claims.EnrichClaim(ctx, r.ClaimID, en)
	switch {
	case err == nil:
		return finish(stateDone, outcomeCompleted, "")
	case errs.IsKind(err, errs.Conflict):
		// Claims refuses a second complete enrichment and an enrichment of
		// a closed claim; a concurrent command on the claim also ends here.
		// The claim as it stands says which.
		cl, rerr := s.deps.Claims.ReplayClaim(ctx, r.ClaimID)
		switch {
		case rerr != nil:
			out, lerr := release(outcomeRetry, retryBackoff, rerr)
			return out, errors.Join(fmt.Errorf("replay claim %s: %w", r.ClaimID, rerr), lerr)
		case cl.Enrichment != nil && cl.Enrichment.Status == claims.EnrichmentComplete:
			return finish(stateDone, outcomeAlreadyComplete, "")
		case cl.Status == claims.StatusClosed:
			return finish(stateFailed, outcomeClaimClosed, "claim closed before its enrichment completed")
		}
		return release(outcomeRetry, retryBackoff, err)
	case errs.IsKind(err, errs.NotFound):
		if s.now().Sub(r.CreatedAt) > s.abandon {
			return finish(stateFailed, outcomeClaimMissing, "the claim was never created")
		}
		// Its creation may still be in flight, or failed without an answer.
		return release(outcomeRetry, retryBackoff, err)
	}
	out, rerr := release(outcomeDeferred, retryBackoff, err)
	return out, errors.Join(fmt.Errorf("enrich claim %s: %w", r.ClaimID, err), rerr)
}
