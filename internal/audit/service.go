package audit

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
)

// Options tune the context; the zero value is the production default.
type Options struct {
	// Logger reports what the consumer notices; nil uses slog.Default().
	Logger *slog.Logger
	// Registerer receives audit_latency_seconds; nil keeps it unexported.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now): audit times and the stats
	// window are read from it.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// now is o's clock at the precision both engines keep.
func (o Options) now() time.Time { return o.Now().UTC().Truncate(time.Microsecond) }

type service struct {
	store *store
	o     Options
}

var _ Service = (*service)(nil)

// New returns the query side on gdb (migrated with Migrate). It reads what
// the Consumer on the same database writes.
func New(gdb *gorm.DB, o Options) Service {
	return &service{store: &store{db: gdb}, o: o.withDefaults()}
}

var (
	// eventTypeFilter accepts "claims.ClaimCreated" or "ClaimCreated".
	eventTypeFilter = regexp.MustCompile(`^([a-z][a-z0-9_-]{0,62}\.)?[A-Za-z0-9_-][A-Za-z0-9_.-]{0,119}$`)
	// streamName is what the bus accepts as a stream.
	streamName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
)

// ListEntries implements Service; the filter is checked here, so local
// callers and HTTP callers get the same field errors.
func (s *service) ListEntries(ctx context.Context, f Filter) (page.Result[Entry], error) {
	f.Page = f.Page.Normalize()
	f.AggregateID = strings.TrimSpace(f.AggregateID)
	f.EventType = strings.TrimSpace(f.EventType)
	f.CorrelationID = strings.TrimSpace(f.CorrelationID)
	f.Stream = strings.TrimSpace(f.Stream)
	f.Actor = strings.TrimSpace(f.Actor)
	var v errs.Validator
	v.Check(len(f.AggregateID) <= 200, "aggregate_id", "must be at most 200 characters")
	v.Check(f.EventType == "" || eventTypeFilter.MatchString(f.EventType), "event_type",
		"must be an event type such as claims.ClaimCreated, or its name such as ClaimCreated")
	v.Check(len(f.CorrelationID) <= 128, "correlation_id", "must be at most 128 characters")
	v.Check(f.Stream == "" || streamName.MatchString(f.Stream), "stream", "must be a stream name such as claims")
	v.Check(len(f.Actor) <= 200, "actor", "must be at most 200 characters")
	v.Check(f.From.IsZero() || f.To.IsZero() || f.To.After(f.From), "to", "must be after from")
	if err := v.Err(); err != nil {
		return page.Result[Entry]{}, err
	}
	// Stored times are UTC; a bound given in another zone compares as the
	// same instant only once it is UTC too (SQLite compares text).
	if !f.From.IsZero() {
		f.From = f.From.UTC()
	}
	if !f.To.IsZero() {
		f.To = f.To.UTC()
	}
	return s.store.list(ctx, f)
}

// Stats implements Service: counts over the whole trail, latency over
// the last LatencyWindow by the service's clock.
func (s *service) Stats(ctx context.Context) (Stats, error) {
	since := s.o.now().Add(-LatencyWindow)
	st, err := s.store.stats(ctx, since)
	if err != nil {
		return Stats{}, err
	}
	st.Latency.Window = LatencyWindow.String()
	return st, nil
}
