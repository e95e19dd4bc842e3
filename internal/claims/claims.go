// Package claims is the customer-claims context: complaints about a
// product, a delivery, a bill or the service, taken in by customers or
// agents and worked through to closure. It is the platform's event-sourced
// side, split CQRS-style.
//
// # Command side
//
// A Claim is not stored as a row: it is the fold of its events
// (ClaimCreated, ClaimAssigned, ClaimStarted, ClaimResolved, ClaimClosed,
// ClaimEnriched) kept in an EventStore. A command loads the claim's events,
// rebuilds the state with apply, asks decide for the one event the command
// produces (or errs.Conflict when it is out of order, errs.Invalid when the
// input is wrong) and appends it at the version it read. Two commands racing
// on one claim therefore cannot both win: the store refuses the second
// append at the same version (errs.Conflict) and nothing is written.
//
// The lifecycle is strictly created → assigned → in_progress → resolved →
// closed, one step at a time; reassignment is not a transition of its own
// (the original system had none). ClaimEnriched carries context that the
// integration context gathers for a claim made from an order (order lines,
// customer contact); it may come with ClaimCreated (data field enrichment)
// or later through EnrichClaim, at any point before the claim is closed,
// and moves an enrichment from pending to complete, never back. It does not
// change the status.
//
// Snapshots are not taken: a claim lives for at most a handful of events,
// so loading them all costs less than reading and validating a snapshot.
//
// # The event store is the outbox
//
// Events reach the bus through a Relay that tails the store. Positions are
// handed out before commit and may become visible out of order under
// concurrency, so a relay reading "position > last published" would skip
// an event whose append committed late. Each adapter closes that hole its
// own way:
//
//   - SQL (SQLite, PostgreSQL): the append writes, in the same
//     transaction, a row per event into claim_events_unpublished. The relay
//     reads that table in position order, publishes, and only then deletes
//     the rows it published. A late commit simply shows up in the table on
//     a later round; nothing is ever "passed over". On PostgreSQL a
//     transaction-scoped advisory lock keeps one relay at a time per
//     database (several claims processes may run one each).
//   - MongoDB (no multi-document transactions): the unique index on
//     position is the sequence. An event is inserted at the highest stored
//     position plus one; if another writer took that position first the
//     index refuses the insert and the writer retries on the new maximum.
//     A writer aims at max+1 only once max exists, so positions are dense
//     and become visible in position order, and a failed append takes no
//     position at all. The relay keeps a checkpoint and reads the
//     positions after it one by one (equality on the index), stopping at
//     the first one missing; it advances the checkpoint over contiguous
//     positions only. Should a position below the newest ever be missing
//     (a document removed by hand), it fills it with a tombstone after
//     GapGrace, which the same unique index makes safe: an event and a
//     tombstone cannot both have the position. A counter document ($inc)
//     was the first idea and is not used: FerretDB's findAndModify loses
//     increments under concurrency and hands one number out twice.
//
// In both schemes the checkpoint (deleted rows, the Mongo checkpoint)
// advances only after the bus accepted the events: a crash in between
// publishes them again (consumers deduplicate on the event id), never loses
// them.
//
// # Query side
//
// A Projector consumes the "claims" stream (consumer group
// "claims-projection") into the read model in the claims SQL database: one
// row per claim plus the statistics built on it. It records each event with
// inbox.Once in the same transaction as the row change, and it is
// order-safe: an event older than the row never moves the version,
// updated_at or status back, but it still fills in the fields only it
// writes. Simply ignoring it would lose them for good: a ClaimAssigned
// retried after its ClaimStarted was applied would never record the agent.
// The status is the furthest lifecycle step seen, so any arrival order of a
// claim's events ends in the row that replaying them gives. A row whose
// ClaimCreated has not arrived yet is not shown by the queries. Rebuild
// recomputes the read model from the event store into a fresh table and
// replaces the live one; Compare reports where the live model and the
// event store disagree.
package claims

import (
	"context"
	"embed"
	"encoding/json"
	"time"

	"github.com/retailco/pos/internal/platform/page"
)

// Name is the context's name: its database, its metrics label, its
// --only value, and the bus stream its events travel on.
const Name = "claims"

// Migrations is the read model's schema (the claims table); apply it with
// Migrate, which adds the projector's inbox and, for the SQL adapter, the
// event store tables.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// ClaimType says what a claim is about.
type ClaimType string

// The claim types of the original system.
const (
	ProductDefect    ClaimType = "product_defect"
	DeliveryIssue    ClaimType = "delivery_issue"
	BillingError     ClaimType = "billing_error"
	ServiceComplaint ClaimType = "service_complaint"
)

// ClaimTypes lists every claim type.
var ClaimTypes = []ClaimType{ProductDefect, DeliveryIssue, BillingError, ServiceComplaint}

// Valid tells whether t is a known claim type.
func (t ClaimType) Valid() bool {
	for _, k := range ClaimTypes {
		if t == k {
			return true
		}
	}
	return false
}

// Status is where a claim stands in its lifecycle.
type Status string

// The lifecycle, in order.
const (
	StatusCreated    Status = "created"
	StatusAssigned   Status = "assigned"
	StatusInProgress Status = "in_progress"
	StatusResolved   Status = "resolved"
	StatusClosed     Status = "closed"
)

// Statuses lists every status, in lifecycle order.
var Statuses = []Status{StatusCreated, StatusAssigned, StatusInProgress, StatusResolved, StatusClosed}

// Valid tells whether s is a known status.
func (s Status) Valid() bool {
	for _, k := range Statuses {
		if s == k {
			return true
		}
	}
	return false
}

// EnrichmentStatus says whether the integration context found everything
// it looks for (complete) or is still waiting for a context it depends on
// (pending, its degraded mode).
type EnrichmentStatus string

// Enrichment statuses.
const (
	EnrichmentPending  EnrichmentStatus = "pending"
	EnrichmentComplete EnrichmentStatus = "complete"
)

// Limits of free text, in characters.
const (
	MaxDescription = 2000
	MaxResolution  = 2000
)

// Claim is a claim's state: on the command side the fold of its events,
// on the query side a row of the read model. Both give the same value for
// the same events.
type Claim struct {
	ClaimID     string      `json:"claim_id"`
	CustomerID  string      `json:"customer_id"`
	ClaimType   ClaimType   `json:"claim_type"`
	Status      Status      `json:"status"`
	Description string      `json:"description"`
	ProductID   string      `json:"product_id,omitempty"`
	OrderID     string      `json:"order_id,omitempty"`
	AgentID     string      `json:"agent_id,omitempty"`
	Resolution  string      `json:"resolution,omitempty"`
	Enrichment  *Enrichment `json:"enrichment,omitempty"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
	AssignedAt  *time.Time  `json:"assigned_at,omitempty"`
	StartedAt   *time.Time  `json:"started_at,omitempty"`
	ResolvedAt  *time.Time  `json:"resolved_at,omitempty"`
	ClosedAt    *time.Time  `json:"closed_at,omitempty"`
	// Version is the number of events behind this state: send commands
	// knowing it, compare it with the read model to see if it caught up.
	Version int64 `json:"version"`

	// replayed tells the HTTP layer that CreateClaim found the claim
	// already created under its claim id (answered 200, not 201).
	replayed bool
}

// Replayed tells whether CreateClaim found this claim already created with
// the same claim id and content, rather than creating it.
func (c Claim) Replayed() bool { return c.replayed }

// Enrichment is the order and customer context attached to a claim made
// from an order (POST /integration/claims/from-order).
type Enrichment struct {
	Status   EnrichmentStatus `json:"status" enum:"pending,complete" doc:"pending while a context it needs is unavailable"`
	Order    *OrderContext    `json:"order,omitempty"`
	Customer *CustomerContact `json:"customer,omitempty"`
}

// OrderContext is what the claim's order looked like.
type OrderContext struct {
	OrderID    string      `json:"order_id" maxLength:"64"`
	Status     string      `json:"status,omitempty" maxLength:"32"`
	Lines      []OrderLine `json:"lines,omitempty" maxItems:"200"`
	TotalCents int64       `json:"total_cents,omitempty" minimum:"0"`
	Currency   string      `json:"currency,omitempty" maxLength:"3"`
}

// OrderLine is one line of the claim's order.
type OrderLine struct {
	ProductID      string `json:"product_id" maxLength:"64"`
	SKU            string `json:"sku,omitempty" maxLength:"64"`
	Name           string `json:"name,omitempty" maxLength:"200"`
	Quantity       int    `json:"quantity" minimum:"0" maximum:"1000000"`
	UnitPriceCents int64  `json:"unit_price_cents,omitempty" minimum:"0"`
}

// CustomerContact is how to reach the claimant.
type CustomerContact struct {
	Name  string `json:"name,omitempty" maxLength:"200"`
	Email string `json:"email,omitempty" maxLength:"254"`
	Phone string `json:"phone,omitempty" maxLength:"40"`
}

// NewClaim is the CreateClaim command.
type NewClaim struct {
	// ClaimID, when set, makes the command idempotent: creating the same
	// claim again (same id, same content) returns it unchanged; the same id
	// with other content is a conflict. Unset, an id is made up.
	ClaimID     string      `json:"claim_id,omitempty" maxLength:"64" pattern:"^clm_[A-Za-z0-9_-]{1,60}$" doc:"Optional idempotency key: clm_ followed by letters, digits, '_' or '-'"`
	CustomerID  string      `json:"customer_id,omitempty" maxLength:"64" doc:"Required for staff; a customer may leave it out (themselves) or name themselves"`
	ClaimType   ClaimType   `json:"claim_type" enum:"product_defect,delivery_issue,billing_error,service_complaint"`
	Description string      `json:"description" maxLength:"2000"`
	ProductID   string      `json:"product_id,omitempty" maxLength:"64"`
	OrderID     string      `json:"order_id,omitempty" maxLength:"64"`
	Enrichment  *Enrichment `json:"enrichment,omitempty" doc:"Order and customer context (the integration context sets it)"`
}

// Assignment is the AssignClaim command's input.
type Assignment struct {
	AgentID string `json:"agent_id" maxLength:"64"`
}

// Resolution is the ResolveClaim command's input.
type Resolution struct {
	Resolution string `json:"resolution" maxLength:"2000"`
}

// StoredEvent is one event of a claim as the event store keeps it and GET
// /claims/{id}/events shows it: EventType is the domain name
// ("ClaimCreated"); on the bus it travels as "claims.ClaimCreated".
type StoredEvent struct {
	EventID       string          `json:"event_id"`
	EventType     string          `json:"event_type"`
	ClaimID       string          `json:"claim_id"`
	Version       int64           `json:"version"`
	Position      int64           `json:"position"`
	OccurredAt    time.Time       `json:"occurred_at"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Actor         string          `json:"actor,omitempty"`
	Data          json.RawMessage `json:"data"`
}

// Filter narrows a claim list; zero values do not filter.
type Filter struct {
	Status     Status
	CustomerID string
	AgentID    string
	ClaimType  ClaimType
	Page       page.Request
}

// StatsQuery tunes GET /claims/stats.
type StatsQuery struct {
	// TopCustomers is how many customers the top list keeps (default 10,
	// at most 100).
	TopCustomers int
}

// Stats summarises the read model.
type Stats struct {
	Total    int64               `json:"total"`
	ByStatus map[Status]int64    `json:"by_status"`
	ByType   map[ClaimType]int64 `json:"by_type"`
	// PerAgent counts assigned claims per agent, by status.
	PerAgent []AgentStats `json:"per_agent"`
	// TopCustomers are the customers with the most claims, most first.
	TopCustomers []CustomerCount `json:"top_customers"`
	// Resolved counts claims that reached resolved (closed ones included);
	// AvgResolveSeconds is their mean time from creation to resolution.
	Resolved          int64   `json:"resolved"`
	AvgResolveSeconds float64 `json:"avg_resolve_seconds"`
}

// AgentStats is one agent's share of the claims.
type AgentStats struct {
	AgentID  string           `json:"agent_id"`
	Total    int64            `json:"total"`
	ByStatus map[Status]int64 `json:"by_status"`
}

// CustomerCount is how many claims one customer made.
type CustomerCount struct {
	CustomerID string `json:"customer_id"`
	Claims     int64  `json:"claims"`
}

// Service is the claims contract, satisfied by the local implementation
// (New) and by Client over HTTP. Commands answer the claim's state right
// after the command (from the event store); GetClaim, ListClaims and Stats
// read the read model, which follows a moment later.
type Service interface {
	// CreateClaim opens a claim (event ClaimCreated).
	CreateClaim(ctx context.Context, in NewClaim) (Claim, error)
	// AssignClaim gives a created claim to an agent (ClaimAssigned).
	AssignClaim(ctx context.Context, id string, in Assignment) (Claim, error)
	// StartClaim marks an assigned claim in progress (ClaimStarted).
	StartClaim(ctx context.Context, id string) (Claim, error)
	// ResolveClaim records the resolution of a claim in progress
	// (ClaimResolved).
	ResolveClaim(ctx context.Context, id string, in Resolution) (Claim, error)
	// CloseClaim closes a resolved claim (ClaimClosed).
	CloseClaim(ctx context.Context, id string) (Claim, error)
	// EnrichClaim attaches order and customer context to a claim that is
	// not closed (ClaimEnriched); a complete enrichment is final.
	EnrichClaim(ctx context.Context, id string, in Enrichment) (Claim, error)
	// ClaimEvents lists the claim's stored events in version order.
	ClaimEvents(ctx context.Context, id string) ([]StoredEvent, error)
	// ReplayClaim rebuilds the claim's state from the event store.
	ReplayClaim(ctx context.Context, id string) (Claim, error)
	// GetClaim reads one claim from the read model.
	GetClaim(ctx context.Context, id string) (Claim, error)
	// ListClaims reads one page of the read model, newest first.
	ListClaims(ctx context.Context, f Filter) (page.Result[Claim], error)
	// Stats summarises the read model.
	Stats(ctx context.Context, q StatsQuery) (Stats, error)
}
