package notification

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
	// Logger reports what the consumer recovers from; nil uses
	// slog.Default().
	Logger *slog.Logger
	// Registerer receives the consumer's metrics; nil keeps them
	// unexported.
	Registerer prometheus.Registerer
	// MaxAttempts is how many sends one notification gets before it is
	// marked failed (default 5, below the bus's 10 deliveries, so a row
	// ends failed before its event would be dead-lettered).
	MaxAttempts int
	// SendTimeout bounds one send (default 30s). Keep it well under the
	// bus's ClaimMinIdle: see the package doc.
	SendTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

type service struct{ store *store }

var _ Service = (*service)(nil)

// New returns the query side on gdb (migrated with Migrate). It reads what
// the Consumer on the same database writes.
func New(gdb *gorm.DB) Service {
	return &service{store: &store{db: gdb}}
}

// eventTypeFilter accepts "claims.ClaimCreated" or "ClaimCreated".
var eventTypeFilter = regexp.MustCompile(`^([a-z][a-z0-9_-]{0,62}\.)?[A-Za-z0-9_-][A-Za-z0-9_.-]{0,119}$`)

// ListNotifications implements Service; the filter is checked here, so
// local callers and HTTP callers get the same field errors.
func (s *service) ListNotifications(ctx context.Context, f Filter) (page.Result[Notification], error) {
	f.Page = f.Page.Normalize()
	f.Recipient = strings.TrimSpace(f.Recipient)
	f.EventType = strings.TrimSpace(f.EventType)
	var v errs.Validator
	v.Check(len(f.Recipient) <= 254, "recipient", "must be at most 254 characters")
	v.Check(f.EventType == "" || eventTypeFilter.MatchString(f.EventType), "event_type",
		"must be an event type such as claims.ClaimCreated, or its name such as ClaimCreated")
	v.Check(f.Status == "" || f.Status.Valid(), "status", "must be pending, sent or failed")
	v.Check(f.Channel == "" || f.Channel.Valid(), "channel", "must be email, sms or inbox")
	if err := v.Err(); err != nil {
		return page.Result[Notification]{}, err
	}
	return s.store.list(ctx, f)
}

// Stats implements Service.
func (s *service) Stats(ctx context.Context) (Stats, error) {
	return s.store.stats(ctx)
}
