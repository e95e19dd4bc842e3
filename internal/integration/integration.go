// Package integration is the bridge between commerce and claims: it turns
// "this order went wrong" into a claim that already carries what an agent
// needs to answer it (the order's lines, totals and status, the customer's
// e-mail and phone), gathered from the order and customer contexts.
//
// # Degraded mode
//
// The order and customer contexts may be down while a customer wants to
// complain, and a complaint must never be lost to that. When either one
// cannot be reached (errs.Unavailable or errs.Timeout, an open circuit, a
// local database that does not answer in time) the claim is still created,
// with its enrichment pending and whatever part of the context was
// reachable, and the pending enrichment is recorded in this context's own
// database. RunEnrichment completes it (claims EnrichClaim) once the
// dependencies answer again. Exactly once: the claims aggregate refuses a
// second complete enrichment (errs.Conflict), and a Conflict is resolved
// by replaying the claim, so a retry after a crash, or two processes
// racing on the same row, end with one ClaimEnriched event.
//
// While the order context is down nobody can tell whose order it is: a
// customer's claim is taken in their name, and staff must name the
// claimant (customer_id). The enrichment checks it once the order answers;
// an order that turns out unknown or someone else's is never attached (the
// claimant could read it), and the record ends failed: the claim keeps
// its pending enrichment for an agent to look at.
//
// The pending record is written before the claim is created, under the
// claim id this context chose (the claims idempotency key): a crash
// between the two leaves a record whose claim does not exist, which the
// enrichment loop drops after Options.AbandonAfter, rather than a claim
// whose enrichment nobody remembers.
//
// # The mode is observed, not assumed
//
// The original system checked the order service's health once at
// start-up and believed it forever. Here a monitor (RunMonitor) probes both
// dependencies every few seconds and also learns from every real call:
// each GetOrder and GetCustomer outcome updates the dependency's record.
// The probe is a real read through the same interface the real calls use
// (GetOrder / GetCustomer of an id that cannot exist): an errs.NotFound
// answer means the dependency did its whole job (the HTTP hop, the
// credentials, its database), which GET /health of a remote would not
// prove, and it works the same for a local service in the monolith and for
// an HTTP Client in the fleet. The mode is full while neither dependency
// is known to be down, degraded otherwise. It is an observation only: a
// request always tries the dependencies (bounded by Options.CallTimeout),
// so the first request after a recovery already gets the full enrichment.
package integration

import (
	"context"
	"embed"
	"time"

	"github.com/retailco/pos/internal/claims"
	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/order"
)

// Name is the context's name: its database, its metrics label, its
// --only value.
const Name = "integration"

// Migrations is the context's versioned schema: the pending enrichments.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Mode says whether the context gets everything it asks of its
// dependencies (full) or works without some of them (degraded).
type Mode string

// The modes.
const (
	ModeFull     Mode = "full"
	ModeDegraded Mode = "degraded"
)

// Dependency statuses as the monitor last saw them.
const (
	// DependencyUp: the last call or probe was answered.
	DependencyUp = "up"
	// DependencyDown: the last call or probe failed (outage, timeout).
	DependencyDown = "down"
	// DependencyUnknown: nothing was observed yet.
	DependencyUnknown = "unknown"
)

// ClaimFromOrder is the body of POST /integration/claims/from-order.
type ClaimFromOrder struct {
	OrderID     string           `json:"order_id" minLength:"1" maxLength:"64" doc:"The order the claim is about"`
	ClaimType   claims.ClaimType `json:"claim_type" enum:"product_defect,delivery_issue,billing_error,service_complaint"`
	Description string           `json:"description" maxLength:"2000"`
	ProductID   string           `json:"product_id,omitempty" maxLength:"64" doc:"A product of the order, when the claim is about one"`
	// CustomerID matters only to staff callers while the order context is
	// unavailable: the claim needs a claimant and the order cannot name
	// it. When the order answers it must be the order's customer.
	CustomerID string `json:"customer_id,omitempty" maxLength:"64" doc:"Staff only, required while the order context is unavailable; a customer is always the claimant"`
}

// Result is the answer to CreateClaimFromOrder.
type Result struct {
	ClaimID string `json:"claim_id"`
	// Mode is how this claim was made: full when both dependencies
	// answered, degraded when one did not.
	Mode Mode `json:"mode" enum:"full,degraded"`
	// Enrichment is the claim's enrichment status: complete, or pending
	// until RunEnrichment completes it.
	Enrichment claims.EnrichmentStatus `json:"enrichment" enum:"pending,complete"`
	// Claim is the claim as the claims context answered it.
	Claim claims.Claim `json:"claim"`
}

// DependencyStatus is what the monitor knows of one dependency.
type DependencyStatus struct {
	Status string `json:"status" enum:"up,down,unknown"`
	// LastOK is the last time a call or probe was answered (null: never).
	LastOK *time.Time `json:"last_ok"`
	// LastError is the last failure, kept after a recovery for the record;
	// LastErrorAt says when it happened.
	LastError   string     `json:"last_error"`
	LastErrorAt *time.Time `json:"last_error_at"`
	// ConsecutiveFailures counts failures since the last success.
	ConsecutiveFailures int `json:"consecutive_failures"`
	// CheckedAt is when the last observation (call or probe) started.
	CheckedAt *time.Time `json:"checked_at"`
}

// Dependencies are the contexts the monitor watches.
type Dependencies struct {
	Order    DependencyStatus `json:"order"`
	Customer DependencyStatus `json:"customer"`
}

// Status is the body of GET /integration/status.
type Status struct {
	Mode         Mode         `json:"mode" enum:"full,degraded"`
	Dependencies Dependencies `json:"dependencies"`
	// PendingEnrichments counts claims waiting for their enrichment.
	PendingEnrichments int64 `json:"pending_enrichments"`
	// FailedEnrichments counts claims whose enrichment can never complete
	// (the order turned out unknown or someone else's, the claim was
	// closed or never created); their claims keep a pending enrichment.
	FailedEnrichments int64 `json:"failed_enrichments"`
	// CheckedAt is the latest observation of any dependency (null until
	// the first probe or call; Status probes rather than answer null).
	CheckedAt *time.Time `json:"checked_at"`
}

// EnrichmentRun is the answer to POST /integration/enrichments/run.
type EnrichmentRun struct {
	// Enriched counts the claims this run completed.
	Enriched int `json:"enriched"`
}

// Service is the integration contract, satisfied by the local
// implementation (New) and by Client over HTTP.
type Service interface {
	// CreateClaimFromOrder creates a claim about an order, enriched with
	// the order and the customer's contact. The caller in ctx decides the
	// claimant: a customer claims for themselves, on their own order only
	// (errs.Forbidden); staff (and in-process callers without a principal)
	// for the order's customer. An unknown order is errs.NotFound when the
	// order context answers; when it does not, the claim is created in
	// degraded mode with its enrichment pending.
	CreateClaimFromOrder(ctx context.Context, in ClaimFromOrder) (Result, error)
	// Status reports the mode, each dependency as last observed and the
	// enrichments still pending.
	Status(ctx context.Context) (Status, error)
	// EnrichPending completes the pending enrichments whose dependencies
	// answer, and returns how many it completed. Safe to run at any time,
	// concurrently and in several processes: no claim is enriched twice.
	EnrichPending(ctx context.Context) (int, error)
}

// Local is the in-process integration service: the Service contract plus
// the monitor only the process hosting the context runs.
type Local interface {
	Service
	// Probe checks the order and customer contexts once, concurrently,
	// and records the outcome; it returns the status that results (an
	// error only when this context's own database could not be counted:
	// the dependencies' failures are in the status).
	Probe(ctx context.Context) (Status, error)
	// Recovered receives a signal (coalesced, never blocking the sender)
	// each time the mode goes back to full, so the enrichment loop starts
	// at once instead of at its next tick.
	Recovered() <-chan struct{}
}

// The integration context's view of its dependencies: only the calls it
// makes. The contexts' Service interfaces and their HTTP Clients satisfy
// them, so the monolith passes the local services and the fleet the
// Clients.

// Claims is what integration needs of the claims context.
type Claims interface {
	CreateClaim(ctx context.Context, in claims.NewClaim) (claims.Claim, error)
	EnrichClaim(ctx context.Context, id string, in claims.Enrichment) (claims.Claim, error)
	ReplayClaim(ctx context.Context, id string) (claims.Claim, error)
}

// Orders is what integration needs of the order context.
type Orders interface {
	GetOrder(ctx context.Context, id string) (order.Order, error)
}

// Customers is what integration needs of the customer context.
type Customers interface {
	GetCustomer(ctx context.Context, id string) (customer.Customer, error)
}

// The Services and Clients of the dependencies satisfy integration's views.
var (
	_ Claims    = (claims.Service)(nil)
	_ Claims    = (*claims.Client)(nil)
	_ Orders    = (order.Service)(nil)
	_ Orders    = (*order.Client)(nil)
	_ Customers = (customer.Service)(nil)
	_ Customers = (*customer.Client)(nil)
)

// Deps are the contexts integration calls.
type Deps struct {
	Claims    Claims
	Orders    Orders
	Customers Customers
}
