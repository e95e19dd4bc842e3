package main

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// shop is a monolith with a product in stock at the web shop and a
// logged-in customer, driven over HTTP.
type shop struct {
	t                     *testing.T
	env                   []string
	admin, manager, svc   string
	productID, locationID string
	customerID, token     string
	initial               int64 // units received at the web shop
	sessions              atomic.Int64
}

func newShop(t *testing.T, extraEnv ...string) (*shop, *proc) {
	t.Helper()
	s := &shop{t: t, initial: 1000, env: append([]string{"POS_DATA_DIR=" + t.TempDir(), "POS_RATE_LIMIT=0"}, extraEnv...)}
	s.admin = createKey(t, s.env, "admin")
	s.manager = createKey(t, s.env, "manager")
	s.svc = createKey(t, s.env, "service")
	p := startPos(t, s.env, "serve", "--all")
	A := []string{"X-API-Key", s.admin}
	var loc, prod struct{ ID string }
	p.must(201, &loc, "POST", "/api/v1/locations", map[string]any{"code": "WEB", "name": "Web shop", "kind": "online", "province": "QC"}, A...)
	p.must(201, &prod, "POST", "/api/v1/products", map[string]any{"sku": "CRASH-1", "name": "Sturdy mug", "price_cents": 1250}, A...)
	p.must(200, nil, "POST", "/api/v1/inventory/adjustments", map[string]any{"product_id": prod.ID, "location_id": loc.ID, "delta": 1000, "reason": "receipt"}, A...)
	s.productID, s.locationID = prod.ID, loc.ID
	var cust struct{ ID string }
	p.must(201, &cust, "POST", "/api/v1/auth/register", map[string]any{"email": "crash@example.com", "password": "long enough pw", "first_name": "C", "last_name": "Rash"})
	var login struct{ Token string }
	p.must(200, &login, "POST", "/api/v1/auth/login", map[string]any{"email": "crash@example.com", "password": "long enough pw"})
	s.customerID, s.token = cust.ID, login.Token
	return s, p
}

// checkout fills a fresh cart and checks it out; it returns the status,
// or 0 when the process died under the request.
func (s *shop) checkout(p *proc, qty int, token string) (int, map[string]any) {
	session := fmt.Sprintf("crash-session-%06d-%d", s.sessions.Add(1), time.Now().UnixNano())
	B := []string{"Authorization", "Bearer " + s.token}
	code, _ := p.tryCall("POST", "/api/v1/carts/"+session+"/items", map[string]any{"product_id": s.productID, "quantity": qty}, B...)
	if code != 200 {
		return code, nil
	}
	body := map[string]any{"session_id": session, "customer_id": s.customerID,
		"shipping_address": map[string]any{"name": "C Rash", "line1": "1 rue Test", "city": "Montréal", "province": "QC", "postal_code": "H2X 1Y4"},
		"payment":          map[string]any{"method": "card", "token": token}}
	code, raw := p.tryCall("POST", "/api/v1/checkout", body, append(B, "Idempotency-Key", session)...)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return code, out
}

// TestCheckoutOverHTTP: the happy path and a declined card through the
// real binary.
func TestCheckoutOverHTTP(t *testing.T) {
	t.Parallel()
	s, p := newShop(t)
	code, out := s.checkout(p, 2, "tok_visa")
	if code != 201 || out["status"] != "COMPLETED" || out["order_id"] == "" {
		t.Fatalf("checkout: %d %v", code, out)
	}
	code, out = s.checkout(p, 1, "tok_declined")
	if code != 402 || out["failed_step"] != "payment" {
		t.Fatalf("declined checkout: %d %v", code, out)
	}
	s.checkInvariants(p, 2)
}

// TestCheckoutSurvivesSIGKILL kills the server inside every step of the
// checkout — before each downstream call and after it, before the outcome
// is written — with other checkouts in flight, restarts it, and then
// requires every saga final with its compensations done: stock on_hand =
// available + reserved and never negative, captured − refunded = total of
// confirmed orders, no checkout charged twice.
func TestCheckoutSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	s, p := newShop(t)
	// validate_cart runs before a new checkout's saga is written: there is
	// nothing of it to kill and resume (internal/saga's
	// TestResumePendingSaga resumes sagas written before it was).
	steps := []string{"reserve_stock", "charge_payment", "create_order", "commit_stock", "clear_cart"}
	for _, step := range steps {
		for _, point := range []string{"before_call", "after_call"} {
			_ = p.stop(syscall.SIGTERM)
			p = startPos(t, append(s.env, "POS_FAULT_KILL_AT="+step+":"+point), "serve", "--all")
			var wg sync.WaitGroup
			for i := 0; i < 4; i++ {
				token := "tok_visa"
				if i == 3 {
					token = "tok_declined" // a failing checkout in flight too: its compensation must finish
				}
				wg.Add(1)
				go func() { defer wg.Done(); s.checkout(p, 1, token) }()
			}
			wg.Wait()
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("the process was not killed at %s:%s", step, point)
			}
			// Restart without the fault: the orchestrator resumes what the
			// kill interrupted.
			p = startPos(t, s.env, "serve", "--all")
			s.waitAllFinal(p)
		}
	}
	s.checkInvariants(p, -1)
}

// waitAllFinal polls until no saga is left running.
func (s *shop) waitAllFinal(p *proc) {
	s.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var list struct {
			Data []struct{ ID, Status string }
		}
		p.must(200, &list, "GET", "/api/v1/sagas?per_page=100", nil, "X-API-Key", s.manager)
		running := 0
		for _, sg := range list.Data {
			if sg.Status != "COMPLETED" && sg.Status != "FAILED" {
				running++
			}
		}
		if running == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d sagas still running after 90s: %+v", running, list.Data)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkInvariants checks stock and money across everything the shop did;
// sold is the units that must have left when known (-1: derive from the
// completed sagas).
func (s *shop) checkInvariants(p *proc, sold int) {
	s.t.Helper()
	M := []string{"X-API-Key", s.manager}
	var sagas struct {
		Data []struct {
			ID, Status string
			TotalCents int64 `json:"total_cents"`
		}
		Meta struct{ Total int64 }
	}
	p.must(200, &sagas, "GET", "/api/v1/sagas?per_page=100&kind=checkout", nil, M...)
	completed, completedCents := 0, int64(0)
	for _, sg := range sagas.Data {
		switch sg.Status {
		case "COMPLETED":
			completed++
			completedCents += sg.TotalCents
		case "FAILED":
		default:
			s.t.Fatalf("saga %s not final: %s", sg.ID, sg.Status)
		}
	}
	if sold < 0 {
		sold = completed
	}
	var stock struct {
		Data []struct {
			OnHand    int64 `json:"on_hand"`
			Reserved  int64 `json:"reserved"`
			Available int64 `json:"available"`
		}
	}
	p.must(200, &stock, "GET", "/api/v1/inventory?product_id="+s.productID+"&location_id="+s.locationID, nil, M...)
	st := stock.Data[0]
	if st.OnHand != s.initial-int64(sold) || st.Reserved != 0 || st.Available != st.OnHand || st.OnHand < 0 {
		s.t.Fatalf("stock after %d completed checkouts: %+v", sold, st)
	}
	var pay struct {
		CapturedCents int64            `json:"captured_cents"`
		RefundedCents int64            `json:"refunded_cents"`
		Payments      map[string]int64 `json:"payments"`
	}
	p.must(200, &pay, "GET", "/api/v1/payments/summary", nil, M...)
	var orders struct {
		PaidCount int64 `json:"paid_count"`
		PaidCents int64 `json:"paid_cents"`
	}
	p.must(200, &orders, "GET", "/api/v1/orders/summary", nil, M...)
	if pay.CapturedCents-pay.RefundedCents != orders.PaidCents || orders.PaidCents != completedCents || orders.PaidCount != int64(completed) {
		s.t.Fatalf("money: captured %d − refunded %d ≠ paid orders %d (%d orders; %d completed sagas worth %d)",
			pay.CapturedCents, pay.RefundedCents, orders.PaidCents, orders.PaidCount, completed, completedCents)
	}
	// One transaction id per saga: a second charge would be a second
	// payment row for the same saga, which the count would show.
	var payments struct{ Meta struct{ Total int64 } }
	p.must(200, &payments, "GET", "/api/v1/payments?per_page=1", nil, M...)
	if payments.Meta.Total > sagas.Meta.Total {
		s.t.Fatalf("%d payments for %d checkouts", payments.Meta.Total, sagas.Meta.Total)
	}
	s.t.Logf("%d checkouts: %d completed; captured %d, refunded %d, stock %d", sagas.Meta.Total, completed, pay.CapturedCents, pay.RefundedCents, st.OnHand)
}
