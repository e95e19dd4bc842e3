// Package audit keeps the platform's audit trail: every event of every
// stream in the catalog (docs/events.md), recorded once, never changed,
// with who caused it (the envelope's actor), which request it belongs to
// (its correlation id), when it happened and how long it took to reach the
// trail.
//
// The consumer (group "audit") is subscribed to Streams: claims, orders,
// sales and inventory. Each event becomes one row keyed by its event id,
// written with INSERT … ON CONFLICT DO NOTHING: that single statement is
// the whole transaction, and the unique key plays the inbox's part, so a
// redelivered event records nothing new (and is not observed twice by the
// latency metric). There is no update or delete path in the code, and the
// schema enforces it: triggers refuse UPDATE and DELETE (and TRUNCATE on
// PostgreSQL) on audit_log.
//
// Latency is audited_at − occurred_at: the producer's clock against ours,
// clamped at zero when they disagree. It is exported as the histogram
// audit_latency_seconds{stream}; GET /audit/stats reports its p50 and p95
// (nearest rank) over the events audited in the last hour, a current
// reading rather than an average over the whole history, next to counts
// over the whole trail.
package audit

import (
	"context"
	"embed"
	"encoding/json"
	"time"

	"github.com/retailco/pos/internal/platform/page"
)

// Name is the context's name: its database, its metrics label, its
// --only value.
const Name = "audit"

// Group is the consumer group the binary subscribes Consumer.Handle under.
const Group = "audit"

// Streams is every stream of the event catalog: the binary subscribes the
// consumer to all of them. A stream added to the catalog must be added
// here.
var Streams = []string{"claims", "orders", "sales", "inventory"}

// Migrations is the context's versioned schema.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// LatencyWindow is how far back GET /audit/stats looks for latency
// percentiles, by audit time.
const LatencyWindow = time.Hour

// Entry is one audited event.
type Entry struct {
	EventID          string `json:"event_id"`
	EventType        string `json:"event_type" doc:"<stream>.<Name>, e.g. claims.ClaimCreated"`
	Stream           string `json:"stream"`
	AggregateID      string `json:"aggregate_id"`
	AggregateVersion int64  `json:"aggregate_version"`
	// Actor is who caused the event ("<role>:<subject>"), empty for work
	// the system did on its own.
	Actor         string    `json:"actor"`
	CorrelationID string    `json:"correlation_id"`
	OccurredAt    time.Time `json:"occurred_at"`
	AuditedAt     time.Time `json:"audited_at"`
	// LatencyMs is occurrence to audit, in milliseconds (0 when the
	// producer's clock is ahead of ours).
	LatencyMs int64 `json:"latency_ms"`
	// Data is the event's payload as the producer wrote it.
	Data json.RawMessage `json:"data"`
}

// Filter narrows the trail. Zero values do not filter.
type Filter struct {
	AggregateID string
	// EventType is a full type ("claims.ClaimCreated") or just the name
	// ("ClaimCreated", any stream).
	EventType     string
	CorrelationID string
	Stream        string
	Actor         string
	// From and To bound occurred_at: From ≤ occurred_at < To.
	From, To time.Time
	// Newest lists the newest events first; the default is the order they
	// happened in, which is how a trail reads.
	Newest bool
	Page   page.Request
}

// Stats describes the trail.
type Stats struct {
	// Total, ByStream and ByEventType count the whole trail.
	Total       int64            `json:"total"`
	ByStream    map[string]int64 `json:"by_stream"`
	ByEventType map[string]int64 `json:"by_event_type"`
	// Latency covers the events audited in the last LatencyWindow.
	Latency Latency `json:"latency"`
}

// Latency summarises occurrence-to-audit latency over a window.
type Latency struct {
	Window string    `json:"window" doc:"The window, e.g. 1h0m0s"`
	Since  time.Time `json:"since" doc:"Events audited at or after this time are counted"`
	Count  int64     `json:"count"`
	P50Ms  int64     `json:"p50_ms" doc:"Median (nearest rank); 0 when the window is empty"`
	P95Ms  int64     `json:"p95_ms" doc:"95th percentile (nearest rank); 0 when the window is empty"`
	MaxMs  int64     `json:"max_ms"`
}

// Service is the trail's query side, satisfied by the local implementation
// (New) and by Client over HTTP. Entries are written only by Consumer.
type Service interface {
	// ListEntries returns one page of the trail.
	ListEntries(ctx context.Context, f Filter) (page.Result[Entry], error)
	// Stats counts the trail and summarises recent latency.
	Stats(ctx context.Context) (Stats, error)
}
