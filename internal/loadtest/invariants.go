package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Invariant statuses.
const (
	InvariantPass = "pass"
	InvariantFail = "fail"
	// InvariantNA is an invariant the scenario gave no occasion to break.
	InvariantNA = "not applicable"
)

// InvariantResult is one business invariant checked after the run.
type InvariantResult struct {
	Name string `json:"name"`
	// Status is pass, fail or "not applicable".
	Status string `json:"status"`
	Detail string `json:"detail"`
}

func pass(name, format string, a ...any) InvariantResult {
	return InvariantResult{Name: name, Status: InvariantPass, Detail: fmt.Sprintf(format, a...)}
}

func fail(name, format string, a ...any) InvariantResult {
	return InvariantResult{Name: name, Status: InvariantFail, Detail: fmt.Sprintf(format, a...)}
}

func notApplicable(name, format string, a ...any) InvariantResult {
	return InvariantResult{Name: name, Status: InvariantNA, Detail: fmt.Sprintf(format, a...)}
}

// Names of the invariants.
const (
	invSagas   = "every saga final"
	invStock   = "stock conserved"
	invMoney   = "money conserved"
	invClaims  = "claims reach their final state"
	invDrawers = "cash drawers balance"
)

// paySummary is GET /payments/summary.
type paySummary struct {
	Captured int64 `json:"captured_cents"`
	Refunded int64 `json:"refunded_cents"`
	Net      int64 `json:"net_cents"`
}

// orderTotals is GET /orders/summary.
type orderTotals struct {
	PaidCount int64 `json:"paid_count"`
	PaidCents int64 `json:"paid_cents"`
}

// snapshotState is the state the invariants compare the run's end with.
type snapshotState struct {
	stock  map[stockKey]stockRow
	pay    paySummary
	orders orderTotals
}

// snapshot reads the state before the load, after seeding.
func (r *run) snapshot(ctx context.Context) (snapshotState, error) {
	var s snapshotState
	var err error
	if r.sc.needs&needStock != 0 {
		if s.stock, err = r.readStock(ctx, r.setupRec); err != nil {
			return s, err
		}
	}
	if r.sc.needs&needCheckout != 0 {
		if s.pay, s.orders, err = r.readMoney(ctx, r.setupRec); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (r *run) readMoney(ctx context.Context, rec *Recorder) (paySummary, orderTotals, error) {
	var (
		p paySummary
		o orderTotals
	)
	if _, err := r.client.do(ctx, rec, call{op: opPaySummary, path: "/payments/summary?currency=CAD", apiKey: r.cfg.APIKey, out: &p}); err != nil {
		return p, o, err
	}
	_, err := r.client.do(ctx, rec, call{op: opOrderSummary, path: "/orders/summary?currency=CAD", apiKey: r.cfg.APIKey, out: &o})
	return p, o, err
}

// postCall sends a post-run call with the admin key.
func (r *run) postCall(ctx context.Context, k call) (int, error) {
	if k.apiKey == "" && k.bearer == "" {
		k.apiKey = r.cfg.APIKey
	}
	return r.client.do(ctx, r.post, k)
}

// checkInvariants settles what the run left in flight, then checks every
// invariant, in the order their inputs become final: drawers are closed
// first, sagas must settle before money and stock are counted.
func (r *run) checkInvariants(ctx context.Context, before snapshotState) []InvariantResult {
	r.closeLeftOpen(ctx)
	out := []InvariantResult{r.checkSagas(ctx)}
	r.resolvePending(ctx)
	out = append(out, r.checkStock(ctx, before), r.checkMoney(ctx, before), r.checkClaims(ctx), r.checkDrawers())
	return out
}

// closeLeftOpen closes the sessions a hard stop left open, so the run
// leaves no register blocked.
func (r *run) closeLeftOpen(ctx context.Context) {
	r.led.mu.Lock()
	left := make(map[string]string, len(r.led.openSess))
	for reg, sid := range r.led.openSess {
		left[reg] = sid
	}
	r.led.mu.Unlock()
	if len(left) == 0 {
		return
	}
	// A VU of the post phase, with the admin key (it may work any till).
	vu := &VU{ID: -1, r: r, rec: r.post}
	for reg, sid := range left {
		_ = closeSession(ctx, vu, registerFx{ID: reg}, r.cfg.APIKey, sid)
	}
}

// nonFinalStates are the saga states other than COMPLETED and FAILED.
var nonFinalStates = []string{"PENDING", "CART_VALIDATED", "STOCK_RESERVED", "PAYMENT_PROCESSED", "ORDER_CONFIRMED",
	"CART_VALIDATION_FAILED", "STOCK_RESERVATION_FAILED", "PAYMENT_FAILED", "COMPENSATING_PAYMENT", "COMPENSATING_STOCK",
	"COMPENSATED", "ORDER_CANCELLED", "PAYMENT_REFUNDED"}

// checkSagas waits, up to the settle timeout, for no saga of the target
// to be in a non-final state.
func (r *run) checkSagas(ctx context.Context) InvariantResult {
	if r.sc.needs&needCheckout == 0 {
		return notApplicable(invSagas, "scenario %s starts no saga", r.sc.Name)
	}
	start := time.Now()
	deadline := start.Add(r.cfg.SettleTimeout)
	for {
		left := map[string]int64{}
		var total int64
		for _, st := range nonFinalStates {
			var l list[struct{}]
			if _, err := r.postCall(ctx, call{op: opListSagas, path: "/sagas?per_page=1&status=" + st, out: &l}); err != nil {
				return fail(invSagas, "cannot list sagas: %v", err)
			}
			if l.Meta.Total > 0 {
				left[st] = l.Meta.Total
				total += l.Meta.Total
			}
		}
		r.led.mu.Lock()
		started := r.led.sagas
		r.led.mu.Unlock()
		if total == 0 {
			return pass(invSagas, "no saga left in a non-final state (%d states checked, settled in %.1fs); the run started %d sagas",
				len(nonFinalStates), time.Since(start).Seconds(), started)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fail(invSagas, "%d sagas still not COMPLETED or FAILED %.0fs after the load: %s",
				total, r.cfg.SettleTimeout.Seconds(), fmtCounts(left))
		}
		sleep(ctx, 500*time.Millisecond)
	}
}

func fmtCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// resolvePending learns the outcome of every saga the run left in
// flight, now that sagas are final, and enters it in the ledger.
func (r *run) resolvePending(ctx context.Context) {
	r.led.mu.Lock()
	pending := r.led.pending
	r.led.pending = nil
	r.led.mu.Unlock()
	for _, p := range pending {
		switch {
		case p.kind == "cancel":
			var o struct {
				Status string `json:"status"`
			}
			if _, err := r.postCall(ctx, call{op: opGetOrder, path: "/orders/" + url.PathEscape(p.orderID), out: &o}); err != nil {
				r.led.orderUnsure(p.orderID)
				continue
			}
			if o.Status == "cancelled" {
				r.led.orderCancelled(p.orderID)
			}
		case p.id != "":
			var s struct {
				Status     string `json:"status"`
				OrderID    string `json:"order_id"`
				TotalCents int64  `json:"total_cents"`
			}
			_, err := r.postCall(ctx, call{op: opGetSaga, path: "/sagas/" + url.PathEscape(p.id), out: &s})
			switch {
			case err == nil && s.Status == "COMPLETED" && s.OrderID != "":
				r.led.orderCompleted(&orderRec{id: s.OrderID, sagaID: p.id, location: p.location, total: s.TotalCents, lines: p.lines})
			case err == nil && s.Status == "FAILED":
			default:
				r.led.checkoutUnknown(p.location, p.lines)
			}
		case p.replay != nil:
			var ans checkoutAnswer
			k := *p.replay
			k.out, k.decodeErrors = &ans, true
			status, _ := r.postCall(ctx, k)
			switch {
			case status == 201 && ans.OrderID != "":
				r.led.orderCompleted(&orderRec{id: ans.OrderID, sagaID: ans.SagaID, location: p.location, total: ans.TotalCents, lines: p.lines})
			case status == 402 || status == 409 || (status >= 400 && status < 500 && ans.SagaID == ""):
				// Failed and compensated, or refused before any saga.
			default:
				r.led.checkoutUnknown(p.location, p.lines)
			}
		}
	}
}

// checkStock compares every load-test stock row with its state before
// the load: the row is consistent (on_hand = available + reserved, none
// negative), on_hand moved exactly by what the run sold, returned,
// shipped and restocked there, and nothing stays reserved that was not.
func (r *run) checkStock(ctx context.Context, before snapshotState) InvariantResult {
	if r.sc.needs&needStock == 0 {
		return notApplicable(invStock, "scenario %s moves no stock", r.sc.Name)
	}
	after, err := r.readStock(ctx, r.post)
	if err != nil {
		return fail(invStock, "cannot read stock: %v", err)
	}
	r.led.mu.Lock()
	defer r.led.mu.Unlock()
	var (
		problems        []string
		moved, exact    int
		units           int64
		notComputable   int
		consistentCount int
	)
	for k, a := range after {
		if a.OnHand != a.Available+a.Reserved || a.OnHand < 0 || a.Available < 0 || a.Reserved < 0 {
			problems = append(problems, fmt.Sprintf("%s at %s: on_hand %d, available %d, reserved %d",
				r.skuOf(k.product), r.codeOf(k.location), a.OnHand, a.Available, a.Reserved))
			continue
		}
		consistentCount++
		b := before.stock[k]
		want := r.led.delta[k]
		if r.led.ambiguous[k] > 0 {
			notComputable++
			continue
		}
		if got := a.OnHand - b.OnHand; got != want {
			problems = append(problems, fmt.Sprintf("%s at %s: on_hand moved by %d, the run accounts for %d",
				r.skuOf(k.product), r.codeOf(k.location), got, want))
			continue
		}
		if a.Reserved != b.Reserved {
			problems = append(problems, fmt.Sprintf("%s at %s: %d reserved after the run, %d before",
				r.skuOf(k.product), r.codeOf(k.location), a.Reserved, b.Reserved))
			continue
		}
		exact++
		if want != 0 {
			moved++
			units += want
		}
	}
	for k := range before.stock {
		if _, ok := after[k]; !ok {
			problems = append(problems, fmt.Sprintf("%s at %s: the stock row disappeared", r.skuOf(k.product), r.codeOf(k.location)))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 8 {
			problems = append(problems[:8], fmt.Sprintf("… %d more", len(problems)-8))
		}
		return fail(invStock, "%d of %d rows wrong: %s", len(problems), len(after), strings.Join(problems, "; "))
	}
	detail := fmt.Sprintf("%d rows consistent (on_hand = available + reserved, none negative); on_hand moved by %+d units over %d rows, exactly as the run's %d sales, %d returns, %d orders and %d cancellations account; reservations back to their level before the run",
		consistentCount, units, moved, r.led.salesN, r.led.returnsN, len(r.led.orders), r.cancelledN())
	if notComputable > 0 {
		detail += fmt.Sprintf("; exact movement not computable for %d rows (a request's outcome was lost)", notComputable)
	}
	return pass(invStock, "%s", detail)
}

// cancelledN counts the run's cancelled orders (ledger lock held).
func (r *run) cancelledN() int {
	n := 0
	for _, o := range r.led.orders {
		if o.cancelled {
			n++
		}
	}
	return n
}

func (r *run) skuOf(productID string) string {
	for _, p := range r.fx.products {
		if p.ID == productID {
			return p.SKU
		}
	}
	return productID
}

func (r *run) codeOf(locationID string) string {
	for _, l := range r.stockLocations() {
		if l.ID == locationID {
			return l.Code
		}
	}
	return locationID
}

// checkMoney: what the payment context kept over the run (captured −
// refunded) equals the total of the orders the run created that are
// still paid; and across the whole target, net payments equal the paid
// orders' total.
func (r *run) checkMoney(ctx context.Context, before snapshotState) InvariantResult {
	if r.sc.needs&needCheckout == 0 {
		return notApplicable(invMoney, "scenario %s takes no payment", r.sc.Name)
	}
	pay, orders, err := r.readMoney(ctx, r.post)
	if err != nil {
		return fail(invMoney, "cannot read the payment and order summaries: %v", err)
	}
	r.led.mu.Lock()
	var runPaid int64
	paid := 0
	for _, o := range r.led.orders {
		if !o.cancelled {
			runPaid += o.total
			paid++
		}
	}
	unknown := r.led.unknownCO
	cancelled := r.cancelledN()
	r.led.mu.Unlock()
	dNet := (pay.Captured - pay.Refunded) - (before.pay.Captured - before.pay.Refunded)
	dPaid := orders.PaidCents - before.orders.PaidCents
	var problems []string
	if pay.Captured-pay.Refunded != orders.PaidCents {
		problems = append(problems, fmt.Sprintf("on the whole target captured − refunded = %d but paid orders total %d", pay.Captured-pay.Refunded, orders.PaidCents))
	}
	if unknown == 0 {
		if dNet != runPaid {
			problems = append(problems, fmt.Sprintf("over the run captured − refunded moved by %d but the run's %d paid orders total %d", dNet, paid, runPaid))
		}
		if dPaid != runPaid {
			problems = append(problems, fmt.Sprintf("over the run paid orders moved by %d but the run's %d paid orders total %d", dPaid, paid, runPaid))
		}
	}
	if len(problems) > 0 {
		return fail(invMoney, "%s", strings.Join(problems, "; "))
	}
	detail := fmt.Sprintf("captured − refunded moved by %s over the run = the run's %d paid orders (%d cancelled and refunded); on the whole target captured − refunded = paid orders = %s",
		cents(dNet), paid, cancelled, cents(orders.PaidCents))
	if unknown > 0 {
		detail = fmt.Sprintf("on the whole target captured − refunded = paid orders = %s; the run's own share not computable (%d checkouts' outcome lost)",
			cents(orders.PaidCents), unknown)
	}
	return pass(invMoney, "%s", detail)
}

func cents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s$%d.%02d", sign, c/100, c%100)
}

// maxClaimsChecked bounds the claims read back: a sample is enough to
// see the projection caught up, and the check must stay cheap.
const maxClaimsChecked = 200

// checkClaims waits for the claims the run closed to show closed in the
// read model (the query side lags the event store by design).
func (r *run) checkClaims(ctx context.Context) InvariantResult {
	if r.sc.needs&needClaims == 0 {
		return notApplicable(invClaims, "scenario %s opens no claim", r.sc.Name)
	}
	r.led.mu.Lock()
	ids := append([]string(nil), r.led.claims...)
	r.led.mu.Unlock()
	if len(ids) == 0 {
		return pass(invClaims, "the run opened no claim")
	}
	if len(ids) > maxClaimsChecked {
		step := len(ids) / maxClaimsChecked
		var sample []string
		for i := 0; i < len(ids) && len(sample) < maxClaimsChecked; i += step {
			sample = append(sample, ids[i])
		}
		ids = sample
	}
	start := time.Now()
	deadline := start.Add(r.cfg.SettleTimeout)
	for {
		var notClosed []string
		for _, id := range ids {
			// The status is a string in a claim and a number in the 404
			// problem of a claim the projection has not reached yet: read
			// it raw, and only a 200 names the claim's state.
			var c struct {
				Status json.RawMessage `json:"status"`
			}
			status, err := r.postCall(ctx, call{op: opGetClaim, path: "/claims/" + url.PathEscape(id), out: &c, expect: []int{200, 404}})
			var state string
			if status == 200 {
				_ = json.Unmarshal(c.Status, &state)
			}
			switch {
			case err != nil && status != 404:
				return fail(invClaims, "cannot read claim %s: %v", id, err)
			case status == 404 || state != "closed":
				notClosed = append(notClosed, fmt.Sprintf("%s (%s)", id, cmpOr(state, "not in the read model")))
			}
		}
		if len(notClosed) == 0 {
			return pass(invClaims, "%d claims the run worked through are closed in the read model (projection caught up in %.1fs)",
				len(ids), time.Since(start).Seconds())
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if len(notClosed) > 5 {
				notClosed = append(notClosed[:5], fmt.Sprintf("… %d more", len(notClosed)-5))
			}
			return fail(invClaims, "%.0fs after the load, claims the run closed are not closed in the read model: %s",
				r.cfg.SettleTimeout.Seconds(), strings.Join(notClosed, ", "))
		}
		sleep(ctx, 500*time.Millisecond)
	}
}

// checkDrawers: every session the run closed balanced, and none is left
// open.
func (r *run) checkDrawers() InvariantResult {
	if r.sc.needs&needPOS == 0 {
		return notApplicable(invDrawers, "scenario %s uses no register", r.sc.Name)
	}
	r.led.mu.Lock()
	defer r.led.mu.Unlock()
	var problems []string
	if len(r.led.unbalanced) > 0 {
		problems = append(problems, fmt.Sprintf("%d Z reports over or short with the expected cash counted: %s", len(r.led.unbalanced), strings.Join(r.led.unbalanced, ", ")))
	}
	if len(r.led.openSess) > 0 {
		var regs []string
		for reg := range r.led.openSess {
			regs = append(regs, reg)
		}
		sort.Strings(regs)
		problems = append(problems, "sessions left open on "+strings.Join(regs, ", "))
	}
	if len(problems) > 0 {
		return fail(invDrawers, "%s", strings.Join(problems, "; "))
	}
	return pass(invDrawers, "%d register sessions closed, every Z report balanced to the cent, none left open", r.led.closedSess)
}
