package claims

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/retailco/pos/internal/platform/errs"
)

// The claim events, by their domain names. On the bus they are
// "claims.<name>" (docs/events.md).
const (
	EventClaimCreated  = "ClaimCreated"
	EventClaimAssigned = "ClaimAssigned"
	EventClaimStarted  = "ClaimStarted"
	EventClaimResolved = "ClaimResolved"
	EventClaimClosed   = "ClaimClosed"
	EventClaimEnriched = "ClaimEnriched"
)

// EventTypes lists the domain names of every claim event.
var EventTypes = []string{EventClaimCreated, EventClaimAssigned, EventClaimStarted, EventClaimResolved, EventClaimClosed, EventClaimEnriched}

// ClaimCreatedData is the payload of ClaimCreated. Consumers outside this
// context decode it too: fields are added, never renamed.
type ClaimCreatedData struct {
	ClaimID     string      `json:"claim_id"`
	CustomerID  string      `json:"customer_id"`
	ClaimType   ClaimType   `json:"claim_type"`
	Description string      `json:"description"`
	ProductID   string      `json:"product_id,omitempty"`
	OrderID     string      `json:"order_id,omitempty"`
	Enrichment  *Enrichment `json:"enrichment,omitempty"`
}

// ClaimAssignedData is the payload of ClaimAssigned.
type ClaimAssignedData struct {
	ClaimID string `json:"claim_id"`
	AgentID string `json:"agent_id"`
}

// ClaimStartedData is the payload of ClaimStarted.
type ClaimStartedData struct {
	ClaimID string `json:"claim_id"`
}

// ClaimResolvedData is the payload of ClaimResolved.
type ClaimResolvedData struct {
	ClaimID    string `json:"claim_id"`
	Resolution string `json:"resolution"`
}

// ClaimClosedData is the payload of ClaimClosed.
type ClaimClosedData struct {
	ClaimID string `json:"claim_id"`
}

// ClaimEnrichedData is the payload of ClaimEnriched: the whole enrichment
// as it now stands (it replaces the previous one).
type ClaimEnrichedData struct {
	ClaimID    string     `json:"claim_id"`
	Enrichment Enrichment `json:"enrichment"`
}

// statusAfter is the status an event leaves the claim in; ClaimEnriched
// leaves it where it was (ok false).
func statusAfter(eventType string) (Status, bool) {
	switch eventType {
	case EventClaimCreated:
		return StatusCreated, true
	case EventClaimAssigned:
		return StatusAssigned, true
	case EventClaimStarted:
		return StatusInProgress, true
	case EventClaimResolved:
		return StatusResolved, true
	case EventClaimClosed:
		return StatusClosed, true
	}
	return "", false
}

// apply is the claim's state after one more event. It is strict: the
// event must be the next version, and its type must be one this package
// writes; anything else means the store holds what decide never produced,
// which is worth an error rather than a silently wrong state.
func apply(c Claim, e StoredEvent) (Claim, error) {
	if e.Version != c.Version+1 {
		return c, fmt.Errorf("claim %s: event %s has version %d after version %d", e.ClaimID, e.EventID, e.Version, c.Version)
	}
	if c.Version == 0 && e.EventType != EventClaimCreated {
		return c, fmt.Errorf("claim %s: first event is %s, not %s", e.ClaimID, e.EventType, EventClaimCreated)
	}
	at := e.OccurredAt.UTC()
	switch e.EventType {
	case EventClaimCreated:
		if c.Version != 0 {
			return c, fmt.Errorf("claim %s: %s at version %d", e.ClaimID, e.EventType, e.Version)
		}
		var d ClaimCreatedData
		if err := decodeData(e, &d); err != nil {
			return c, err
		}
		c = Claim{ClaimID: e.ClaimID, CustomerID: d.CustomerID, ClaimType: d.ClaimType, Description: d.Description,
			ProductID: d.ProductID, OrderID: d.OrderID, Enrichment: d.Enrichment, CreatedAt: at}
	case EventClaimAssigned:
		var d ClaimAssignedData
		if err := decodeData(e, &d); err != nil {
			return c, err
		}
		c.AgentID, c.AssignedAt = d.AgentID, &at
	case EventClaimStarted:
		c.StartedAt = &at
	case EventClaimResolved:
		var d ClaimResolvedData
		if err := decodeData(e, &d); err != nil {
			return c, err
		}
		c.Resolution, c.ResolvedAt = d.Resolution, &at
	case EventClaimClosed:
		c.ClosedAt = &at
	case EventClaimEnriched:
		var d ClaimEnrichedData
		if err := decodeData(e, &d); err != nil {
			return c, err
		}
		en := d.Enrichment
		c.Enrichment = &en
	default:
		return c, fmt.Errorf("claim %s: unknown event type %q", e.ClaimID, e.EventType)
	}
	if s, ok := statusAfter(e.EventType); ok {
		c.Status = s
	}
	c.Version = e.Version
	c.UpdatedAt = at
	return c, nil
}

// replay folds events (in version order) into a claim.
func replay(evs []StoredEvent) (Claim, error) {
	var c Claim
	for _, e := range evs {
		var err error
		if c, err = apply(c, e); err != nil {
			return Claim{}, err
		}
	}
	return c, nil
}

func decodeData(e StoredEvent, v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("claim %s: event %s (%s) data: %w", e.ClaimID, e.EventID, e.EventType, err)
	}
	return nil
}

// command is what decide decides on: the kind of command and its input.
type command struct {
	kind       string // "create", "assign", "start", "resolve", "close", "enrich"
	create     NewClaim
	assign     Assignment
	resolution Resolution
	enrichment Enrichment
}

// decision is the event a command produces: its domain type and payload.
type decision struct {
	eventType string
	data      any
}

// decide is the business rule: given the claim's state (zero for a claim
// that does not exist yet) and a validated command, the event to append,
// or errs.Conflict when the command does not fit the state. It has no
// side effects and reads no clock.
func decide(c Claim, id string, cmd command) (decision, error) {
	if cmd.kind != "create" && c.Version == 0 {
		return decision{}, fmt.Errorf("claim %s: %w", id, errs.NotFound)
	}
	out := func(from Status, typ string, data any) (decision, error) {
		if c.Status != from {
			return decision{}, fmt.Errorf("claim %s is %s: %s needs a claim that is %s: %w", id, c.Status, cmd.kind, from, errs.Conflict)
		}
		return decision{eventType: typ, data: data}, nil
	}
	switch cmd.kind {
	case "create":
		if c.Version != 0 {
			return decision{}, fmt.Errorf("claim %s already exists: %w", id, errs.Conflict)
		}
		in := cmd.create
		return decision{eventType: EventClaimCreated, data: ClaimCreatedData{
			ClaimID: id, CustomerID: in.CustomerID, ClaimType: in.ClaimType, Description: in.Description,
			ProductID: in.ProductID, OrderID: in.OrderID, Enrichment: in.Enrichment,
		}}, nil
	case "assign":
		return out(StatusCreated, EventClaimAssigned, ClaimAssignedData{ClaimID: id, AgentID: cmd.assign.AgentID})
	case "start":
		return out(StatusAssigned, EventClaimStarted, ClaimStartedData{ClaimID: id})
	case "resolve":
		return out(StatusInProgress, EventClaimResolved, ClaimResolvedData{ClaimID: id, Resolution: cmd.resolution.Resolution})
	case "close":
		return out(StatusResolved, EventClaimClosed, ClaimClosedData{ClaimID: id})
	case "enrich":
		switch {
		case c.Status == StatusClosed:
			return decision{}, fmt.Errorf("claim %s is closed: it can no longer be enriched: %w", id, errs.Conflict)
		case c.Enrichment != nil && c.Enrichment.Status == EnrichmentComplete:
			return decision{}, fmt.Errorf("claim %s already has a complete enrichment: %w", id, errs.Conflict)
		}
		return decision{eventType: EventClaimEnriched, data: ClaimEnrichedData{ClaimID: id, Enrichment: cmd.enrichment}}, nil
	}
	return decision{}, fmt.Errorf("unknown claims command %q", cmd.kind)
}

// sameCreation tells whether an existing claim is what in would create:
// the idempotent replay of a CreateClaim with a given claim id.
func sameCreation(c Claim, in NewClaim) bool {
	return c.CustomerID == in.CustomerID && c.ClaimType == in.ClaimType && c.Description == in.Description &&
		c.ProductID == in.ProductID && c.OrderID == in.OrderID && reflect.DeepEqual(c.Enrichment, in.Enrichment)
}

// normalizeNew trims the free text of a new claim and checks it. The
// checks repeat the HTTP schema on purpose: in-process callers (the
// integration context in the monolith) never pass through it.
func normalizeNew(in NewClaim) (NewClaim, error) {
	in.CustomerID = strings.TrimSpace(in.CustomerID)
	in.Description = strings.TrimSpace(in.Description)
	in.ProductID = strings.TrimSpace(in.ProductID)
	in.OrderID = strings.TrimSpace(in.OrderID)
	var v errs.Validator
	v.Check(in.ClaimID == "" || claimIDPattern.MatchString(in.ClaimID), "claim_id", "must be clm_ followed by 1-60 letters, digits, '_' or '-'")
	v.Check(in.CustomerID != "", "customer_id", "is required")
	v.Check(len(in.CustomerID) <= 64, "customer_id", "must be at most 64 characters")
	v.Check(in.ClaimType.Valid(), "claim_type", "must be one of product_defect, delivery_issue, billing_error, service_complaint")
	v.Check(in.Description != "", "description", "is required")
	v.Check(utf8.RuneCountInString(in.Description) <= MaxDescription, "description", "must be at most %d characters", MaxDescription)
	v.Check(len(in.ProductID) <= 64, "product_id", "must be at most 64 characters")
	v.Check(len(in.OrderID) <= 64, "order_id", "must be at most 64 characters")
	if in.Enrichment != nil {
		checkEnrichment(&v, "enrichment.", *in.Enrichment)
	}
	return in, v.Err()
}

// checkEnrichment validates an enrichment, naming fields under prefix.
func checkEnrichment(v *errs.Validator, prefix string, e Enrichment) {
	v.Check(e.Status == EnrichmentPending || e.Status == EnrichmentComplete, prefix+"status", "must be pending or complete")
	if o := e.Order; o != nil {
		v.Check(len(o.OrderID) <= 64, prefix+"order.order_id", "must be at most 64 characters")
		v.Check(len(o.Lines) <= 200, prefix+"order.lines", "at most 200 lines")
		v.Check(o.TotalCents >= 0, prefix+"order.total_cents", "must not be negative")
		for i, l := range o.Lines {
			v.Check(l.Quantity >= 0, fmt.Sprintf("%sorder.lines[%d].quantity", prefix, i), "must not be negative")
			v.Check(l.UnitPriceCents >= 0, fmt.Sprintf("%sorder.lines[%d].unit_price_cents", prefix, i), "must not be negative")
		}
	}
}

// occurredAt is the time stamped on a new event. Milliseconds, because
// that is what MongoDB keeps: a state must read the same from either store.
func occurredAt(now time.Time) time.Time { return now.UTC().Truncate(time.Millisecond) }
