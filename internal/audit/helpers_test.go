package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/correlation"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// openDB is a fresh, migrated audit database on backend b.
func openDB(t testing.TB, b testkit.Backend) *gorm.DB {
	t.Helper()
	return testkit.OpenDB(t, b, Name, Migrations)
}

// actingAs is the context of a producer's request: a correlation id and,
// unless role is empty (work the system does on its own), a principal.
func actingAs(corr string, role auth.Role, subject string) context.Context {
	ctx := correlation.With(context.Background(), corr)
	if role != "" {
		ctx = auth.WithPrincipal(ctx, auth.Principal{Role: role, Subject: subject})
	}
	return ctx
}

// newEvent builds an event with events.New, as producers do.
func newEvent(t testing.TB, ctx context.Context, eventType, aggregateID string, version int64, data any) events.Envelope {
	t.Helper()
	env, err := events.New(ctx, eventType, aggregateID, version, data)
	if err != nil {
		t.Fatalf("event %s: %v", eventType, err)
	}
	return env
}

// The catalog's payloads (docs/events.md), one builder per event type.

func claimCreatedData(claimID, customerID string) map[string]any {
	return map[string]any{"claim_id": claimID, "customer_id": customerID, "claim_type": "delivery_issue",
		"description": "Box arrived crushed", "order_id": "ord_1"}
}

func orderConfirmedData(orderID, customerID string) map[string]any {
	return map[string]any{"order_id": orderID, "customer_id": customerID, "location_id": "loc_web",
		"lines": []map[string]any{{"product_id": "prd_1", "sku": "SKU-1", "name": "Mug", "quantity": 2,
			"unit_price_cents": 1250, "line_total_cents": 2500}},
		"subtotal_cents": 2500, "tax_cents": 375, "total_cents": 2875, "currency": "CAD", "confirmed_at": "2025-06-01T12:00:03Z"}
}

func orderCancelledData(orderID, customerID string) map[string]any {
	return map[string]any{"order_id": orderID, "customer_id": customerID, "location_id": "loc_web",
		"lines": []map[string]any{{"product_id": "prd_1", "quantity": 2}}, "total_cents": 2875, "currency": "CAD",
		"cancelled_at": "2025-06-01T12:00:06Z"}
}

func saleCompletedData(saleID string) map[string]any {
	return map[string]any{"sale_id": saleID, "location_id": "loc_1", "register_id": "reg_1", "cashier_id": "key-cashier",
		"lines": []map[string]any{{"product_id": "prd_1", "sku": "SKU-1", "quantity": 1, "unit_price_cents": 1250,
			"discount_cents": 0, "net_cents": 1250, "tax_cents": 187}},
		"subtotal_cents": 1250, "discount_cents": 0, "tax_cents": 187, "total_cents": 1437, "currency": "CAD",
		"tenders": []map[string]any{{"method": "cash", "amount_cents": 1500}}, "completed_at": "2025-06-01T12:00:04Z"}
}

func saleReturnedData(saleID string) map[string]any {
	return map[string]any{"return_id": "ret_1", "sale_id": saleID, "location_id": "loc_1", "register_id": "reg_1",
		"lines":        []map[string]any{{"product_id": "prd_1", "quantity": 1, "net_cents": 1250, "tax_cents": 187}},
		"refund_cents": 1437, "tax_cents": 187, "refunds": []map[string]any{{"method": "cash", "amount_cents": 1437}},
		"returned_at": "2025-06-01T12:00:07Z"}
}

func stockChangedData(productID, locationID string, onHand int) map[string]any {
	return map[string]any{"product_id": productID, "location_id": locationID, "on_hand": onHand, "reserved": 0,
		"available": onHand, "delta_on_hand": -1, "delta_reserved": 0, "reason": "sale", "reference": "sal_1"}
}

// clock is a test clock set by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// sameJSON compares two JSON documents by value.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("not JSON: %s", a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// waitFor polls cond until it holds or the (generous) deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasField(err error, field string) bool {
	for _, f := range errs.Fields(err) {
		if f.Field == field {
			return true
		}
	}
	return false
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
