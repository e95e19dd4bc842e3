package claims

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
	"github.com/retailco/pos/internal/platform/page"
)

// Options tune the local service; zero values pick the defaults.
type Options struct {
	// Registerer receives the context's metrics; nil: not exported.
	Registerer prometheus.Registerer
	// Now is the clock that stamps events (default time.Now).
	Now func() time.Time
}

type service struct {
	store   EventStore
	read    *readModel
	now     func() time.Time
	metrics *metrics
}

var _ Service = (*service)(nil)

// New returns the local claims service: commands on store, queries on the
// read model in readDB (migrated with Migrate). The read model is written
// by a Projector, which the process runs beside it.
func New(store EventStore, readDB *gorm.DB, opts Options) Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &service{store: store, read: &readModel{db: readDB}, now: opts.Now, metrics: newMetrics(opts.Registerer)}
}

var claimIDPattern = regexp.MustCompile(`^clm_[A-Za-z0-9_-]{1,60}$`)

func (s *service) CreateClaim(ctx context.Context, in NewClaim) (Claim, error) {
	c, err := s.create(ctx, in)
	s.metrics.command("create", err)
	return c, err
}

func (s *service) create(ctx context.Context, in NewClaim) (Claim, error) {
	in, err := normalizeNew(in)
	if err != nil {
		return Claim{}, err
	}
	id := in.ClaimID
	if id == "" {
		return s.execute(ctx, ids.New("clm"), command{kind: "create", create: in})
	}
	c, err := s.execute(ctx, id, command{kind: "create", create: in})
	if !errs.IsKind(err, errs.Conflict) {
		return c, err
	}
	// The claim id is an idempotency key: the same creation again answers
	// the claim as it stands; another creation under the id is refused.
	existing, lerr := s.ReplayClaim(ctx, id)
	if lerr != nil || !sameCreation(existing, in) {
		return Claim{}, fmt.Errorf("claim %s already exists with other content: %w", id, errs.Conflict)
	}
	existing.replayed = true
	return existing, nil
}

func (s *service) AssignClaim(ctx context.Context, id string, in Assignment) (Claim, error) {
	in.AgentID = strings.TrimSpace(in.AgentID)
	var v errs.Validator
	v.Check(in.AgentID != "", "agent_id", "is required")
	v.Check(len(in.AgentID) <= 64, "agent_id", "must be at most 64 characters")
	return s.run(ctx, "assign", id, v.Err(), command{kind: "assign", assign: in})
}

func (s *service) StartClaim(ctx context.Context, id string) (Claim, error) {
	return s.run(ctx, "start", id, nil, command{kind: "start"})
}

func (s *service) ResolveClaim(ctx context.Context, id string, in Resolution) (Claim, error) {
	in.Resolution = strings.TrimSpace(in.Resolution)
	var v errs.Validator
	v.Check(in.Resolution != "", "resolution", "is required")
	v.Check(utf8.RuneCountInString(in.Resolution) <= MaxResolution, "resolution", "must be at most %d characters", MaxResolution)
	return s.run(ctx, "resolve", id, v.Err(), command{kind: "resolve", resolution: in})
}

func (s *service) CloseClaim(ctx context.Context, id string) (Claim, error) {
	return s.run(ctx, "close", id, nil, command{kind: "close"})
}

func (s *service) EnrichClaim(ctx context.Context, id string, in Enrichment) (Claim, error) {
	var v errs.Validator
	checkEnrichment(&v, "", in)
	return s.run(ctx, "enrich", id, v.Err(), command{kind: "enrich", enrichment: in})
}

// run executes a command on an existing claim after its input passed
// validation (invalid non-nil: it did not), counting the outcome.
func (s *service) run(ctx context.Context, name, id string, invalid error, cmd command) (Claim, error) {
	var (
		c   Claim
		err = invalid
	)
	if err == nil {
		c, err = s.execute(ctx, id, cmd)
	}
	s.metrics.command(name, err)
	return c, err
}

// execute is the command cycle: load, rebuild, decide, append at the
// version read. A concurrent command that appended first makes the append
// fail with errs.Conflict, and this command is not retried: it was decided
// on a state that no longer holds.
func (s *service) execute(ctx context.Context, id string, cmd command) (Claim, error) {
	if id == "" || len(id) > 64 {
		return Claim{}, fmt.Errorf("claim %q: %w", id, errs.NotFound)
	}
	evs, err := s.store.Load(ctx, id, 0)
	if err != nil {
		return Claim{}, err
	}
	state, err := replay(evs)
	if err != nil {
		return Claim{}, err
	}
	d, err := decide(state, id, cmd)
	if err != nil {
		return Claim{}, err
	}
	data, err := json.Marshal(d.data)
	if err != nil {
		return Claim{}, fmt.Errorf("encode %s: %w", d.eventType, err)
	}
	e := StoredEvent{
		EventID: ids.New("evt"), EventType: d.eventType, ClaimID: id, Version: state.Version + 1,
		OccurredAt: occurredAt(s.now()), CorrelationID: correlation.From(ctx), Actor: actorOf(ctx), Data: data,
	}
	stored, err := s.store.Append(ctx, id, state.Version, []StoredEvent{e})
	if err != nil {
		return Claim{}, err
	}
	s.metrics.appended.WithLabelValues(d.eventType).Inc()
	return apply(state, stored[0])
}

// actorOf names who caused an event as events.Envelope does:
// "<role>:<subject>", empty for work without a caller.
func actorOf(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok {
		return string(p.Role) + ":" + p.Subject
	}
	return ""
}

func (s *service) ClaimEvents(ctx context.Context, id string) ([]StoredEvent, error) {
	evs, err := s.store.Load(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("claim %s: %w", id, errs.NotFound)
	}
	return evs, nil
}

func (s *service) ReplayClaim(ctx context.Context, id string) (Claim, error) {
	evs, err := s.ClaimEvents(ctx, id)
	if err != nil {
		return Claim{}, err
	}
	return replay(evs)
}

func (s *service) GetClaim(ctx context.Context, id string) (Claim, error) {
	return s.read.get(ctx, id)
}

func (s *service) ListClaims(ctx context.Context, f Filter) (page.Result[Claim], error) {
	f.Page = f.Page.Normalize()
	var v errs.Validator
	v.Check(f.Status == "" || f.Status.Valid(), "status", "must be one of created, assigned, in_progress, resolved, closed")
	v.Check(f.ClaimType == "" || f.ClaimType.Valid(), "claim_type", "must be one of product_defect, delivery_issue, billing_error, service_complaint")
	if err := v.Err(); err != nil {
		return page.Result[Claim]{}, err
	}
	return s.read.list(ctx, f)
}

func (s *service) Stats(ctx context.Context, q StatsQuery) (Stats, error) {
	if q.TopCustomers == 0 {
		q.TopCustomers = 10
	}
	if q.TopCustomers < 1 || q.TopCustomers > 100 {
		return Stats{}, errs.Field("top", "must be between 1 and 100")
	}
	return s.read.stats(ctx, q)
}
