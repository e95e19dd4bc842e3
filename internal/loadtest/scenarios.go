package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// needs are what a scenario needs of the target, which decides the
// probes, the seeding and which invariants apply.
type needs uint

const (
	needCustomers needs = 1 << iota // one logged-in customer per VU
	needStock                       // load-test stock at the stores and online
	needPOS                         // registers, cashier keys
	needCheckout                    // cart, payment, order and saga contexts
	needClaims                      // claims context, an agent key
)

// journey is one kind of user session: what a VU does in one iteration.
type journey struct {
	name   string
	weight int
	// think is the pause after the journey, before the VU's next one.
	think ThinkRange
	fn    func(ctx context.Context, vu *VU) error
}

// Scenario is a named workload: which journeys run and in what mix, the
// default shape of the run at full size and in --short, and what it
// needs of the target.
type Scenario struct {
	// Name is what --scenario takes.
	Name string
	// Summary says what the scenario does, for --help.
	Summary string
	// Full and Short are the default profiles.
	Full, Short Profile
	// Baseline is the original system's published figure for the same
	// test, printed beside the result for comparison.
	Baseline string
	journeys []journey
	needs    needs
}

// pick draws a journey by weight.
func (s *Scenario) pick(rng *rand.Rand) journey {
	if len(s.journeys) == 1 {
		return s.journeys[0]
	}
	total := 0
	for _, j := range s.journeys {
		total += j.weight
	}
	n := rng.IntN(total)
	for _, j := range s.journeys {
		if n < j.weight {
			return j
		}
		n -= j.weight
	}
	return s.journeys[len(s.journeys)-1]
}

// journeyNames lists the scenario's journeys in declaration order.
func (s *Scenario) journeyNames() []string {
	names := make([]string, len(s.journeys))
	for i, j := range s.journeys {
		names[i] = j.name
	}
	return names
}

func mustStages(s string) Profile {
	p, err := ParseStages(s)
	if err != nil {
		panic(err)
	}
	return p
}

// The journeys, with their weights in the mixed scenario: most visitors
// browse, fewer buy, the stores ring up sales all day and a few customers
// complain.
var (
	catalogJ  = journey{name: "catalog", weight: 70, think: ThinkRange{50 * time.Millisecond, time.Second}, fn: catalogJourney}
	checkoutJ = journey{name: "checkout", weight: 15, think: ThinkRange{500 * time.Millisecond, 2 * time.Second}, fn: checkoutJourney}
	posJ      = journey{name: "pos", weight: 10, think: ThinkRange{200 * time.Millisecond, time.Second}, fn: posJourney}
	claimsJ   = journey{name: "claims", weight: 5, think: ThinkRange{500 * time.Millisecond, 2 * time.Second}, fn: claimsJourney}
)

// original is the original system's published k6 figures.
const original = "original system (Flask services behind Kong, k6): "

var scenarios = []*Scenario{
	{
		Name:     "catalog-15vu",
		Summary:  "the original's 15-VU k6 test: product list pages, the customer list (manager key) and /customers/me (each VU's token), 50 ms-1 s think time; 5 min, --short 30 s",
		Full:     mustStages("30s:15,4m:15,30s:0"),
		Short:    mustStages("5s:15,20s:15,5s:0"),
		Baseline: original + "91.3 req/s, p95 7.8 ms, 95.8% errors (its rate limiter rejected nearly every request)",
		journeys: []journey{catalogJ}, needs: needCustomers,
	},
	{
		Name:     "catalog-100vu",
		Summary:  "the original's 100-VU k6 test, same journey as catalog-15vu; 7 min, --short 30 s",
		Full:     mustStages("1m:100,5m:100,1m:0"),
		Short:    mustStages("5s:100,20s:100,5s:0"),
		Baseline: original + "1,136 req/s, p95 96 ms, 99.9% errors (its rate limiter rejected nearly every request)",
		journeys: []journey{catalogJ}, needs: needCustomers,
	},
	{
		Name:     "checkout",
		Summary:  "browse, fill a cart, price it, check out through the saga (80% approved cards, 20% tok_declined → 402), read the order, cancel 10% of them; each VU its own customer",
		Full:     mustStages("30s:20,4m:20,30s:0"),
		Short:    mustStages("5s:10,20s:10,5s:0"),
		journeys: []journey{checkoutJ}, needs: needCustomers | needStock | needCheckout,
	},
	{
		Name:     "pos",
		Summary:  "cashier shifts on the stores' registers: open a session, ring up 2-5 sales (cash, card + cash), a return now and then (a third across stores, with the manager key), close with a balanced Z report",
		Full:     mustStages("30s:12,4m:12,30s:0"),
		Short:    mustStages("5s:6,20s:6,5s:0"),
		journeys: []journey{posJ}, needs: needStock | needPOS,
	},
	{
		Name:     "claims",
		Summary:  "claim lifecycles: the customer opens a claim, an agent assigns, starts, resolves and closes it, then reads its events",
		Full:     mustStages("30s:10,4m:10,30s:0"),
		Short:    mustStages("5s:5,20s:5,5s:0"),
		journeys: []journey{claimsJ}, needs: needCustomers | needClaims,
	},
	{
		Name:     "mixed",
		Summary:  "all of them at once: 70% catalog, 15% checkout, 10% POS shifts, 5% claims",
		Full:     mustStages("1m:50,5m:50,1m:0"),
		Short:    mustStages("5s:20,20s:20,5s:0"),
		journeys: []journey{catalogJ, checkoutJ, posJ, claimsJ}, needs: needCustomers | needStock | needPOS | needCheckout | needClaims,
	},
}

// Scenarios lists the scenarios, for help texts.
func Scenarios() []Scenario {
	out := make([]Scenario, len(scenarios))
	for i, s := range scenarios {
		out[i] = *s
	}
	return out
}

// lookupScenario finds a scenario by name.
func lookupScenario(name string) (*Scenario, error) {
	var names []string
	for _, s := range scenarios {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return nil, fmt.Errorf("unknown scenario %q (known: %s)", name, strings.Join(names, ", "))
}

// pagesOf is how many pages of perPage a list of total items has (at
// least one).
func pagesOf(total int64, perPage int) int {
	return max(1, int((total+int64(perPage)-1)/int64(perPage)))
}

// firstErr keeps the first error of a journey that goes on after one
// (reads do: a shopper whose page failed clicks the next one).
type firstErr struct{ err error }

func (f *firstErr) keep(err error) {
	if err != nil && f.err == nil {
		f.err = err
	}
}

// catalogJourney is the original's k6 test: a burst of product list
// pages, a page of the customer list with a manager's key, and the VU's
// own customer record with its token.
func catalogJourney(ctx context.Context, vu *VU) error {
	fx := vu.r.fx
	var fe firstErr
	pages := pagesOf(fx.productsN, 20)
	for range 3 {
		_, err := vu.call(ctx, call{op: opListProducts, path: fmt.Sprintf("/products?page=%d", 1+vu.rng.IntN(pages))})
		if fe.keep(err); ctx.Err() != nil {
			return ctx.Err()
		}
	}
	_, err := vu.call(ctx, call{op: opListCustomers, apiKey: fx.managerKey,
		path: fmt.Sprintf("/customers?page=%d", 1+vu.rng.IntN(pagesOf(fx.customersN, 20)))})
	if fe.keep(err); ctx.Err() != nil {
		return ctx.Err()
	}
	var me struct {
		ID string `json:"id"`
	}
	_, err = vu.call(ctx, call{op: opMe, path: "/customers/me", bearer: vu.cust.Token, out: &me})
	if fe.keep(err); err == nil {
		vu.check("GET /customers/me answers the caller's own record", me.ID == vu.cust.ID,
			fmt.Sprintf("customer %s got %s", vu.cust.ID, me.ID))
	}
	return fe.err
}

// pickProducts draws k distinct load-test products.
func pickProducts(vu *VU, k int) []productFx {
	idx := vu.rng.Perm(len(vu.r.fx.products))[:k]
	out := make([]productFx, k)
	for i, j := range idx {
		out[i] = vu.r.fx.products[j]
	}
	return out
}

// checkoutAnswer reads both answers of POST /checkout: the result (201,
// 202) and the failed saga's problem (402, 409), whose "status" is the
// HTTP status and whose saga state is saga_status.
type checkoutAnswer struct {
	SagaID     string          `json:"saga_id"`
	Status     json.RawMessage `json:"status"`
	SagaStatus string          `json:"saga_status"`
	OrderID    string          `json:"order_id"`
	TotalCents int64           `json:"total_cents"`
	FailedStep string          `json:"failed_step"`
}

func (a checkoutAnswer) state() string {
	var s string
	if json.Unmarshal(a.Status, &s) == nil {
		return s
	}
	return a.SagaStatus
}

// shippingAddress is where load-test orders go.
var shippingAddress = map[string]any{"name": "Load Tester", "line1": "4200 rue Saint-Denis", "city": "Montréal",
	"province": "QC", "postal_code": "H2J 2K8", "country": "CA"}

// checkoutJourney is a web purchase: browse, fill a cart, price it, check
// out (a fifth of the cards are declined: the saga must compensate and
// answer 402), read the order, and now and then cancel it (refund and
// restock through the cancel saga).
func checkoutJourney(ctx context.Context, vu *VU) error {
	r, fx := vu.r, vu.r.fx
	seq := vu.next()
	if _, err := vu.call(ctx, call{op: opListProducts, path: fmt.Sprintf("/products?page=%d", 1+vu.rng.IntN(pagesOf(fx.productsN, 20)))}); err != nil {
		return err
	}
	picked := pickProducts(vu, 1+vu.rng.IntN(3))
	for _, p := range picked[:1+vu.rng.IntN(len(picked))] {
		if _, err := vu.call(ctx, call{op: opGetProduct, path: "/products/" + url.PathEscape(p.ID)}); err != nil {
			return err
		}
	}
	vu.pause(ctx, 100*time.Millisecond, 500*time.Millisecond)

	sid := fmt.Sprintf("lt-%s-%04d-%06d", r.runID, vu.ID, seq)
	lines := make([]line, len(picked))
	for i, p := range picked {
		lines[i] = line{p.ID, int64(1 + vu.rng.IntN(2))}
		var cart struct {
			Lines []struct{} `json:"lines"`
		}
		if _, err := vu.call(ctx, call{op: opAddCartItem, path: "/carts/" + sid + "/items", bearer: vu.cust.Token,
			body: map[string]any{"product_id": p.ID, "quantity": lines[i].Quantity}, out: &cart}); err != nil {
			return err
		}
		vu.check("the cart has a line per product added", len(cart.Lines) == i+1, fmt.Sprintf("%d lines after %d products", len(cart.Lines), i+1))
	}
	var quote struct {
		TotalCents int64 `json:"total_cents"`
	}
	if _, err := vu.call(ctx, call{op: opCalculate, path: "/carts/" + sid + "/calculate?province=QC", bearer: vu.cust.Token, out: &quote}); err != nil {
		return err
	}
	vu.pause(ctx, 200*time.Millisecond, 800*time.Millisecond)

	declined := vu.rng.IntN(5) == 0
	token, expect := "tok_visa", []int{201, 202}
	if declined {
		token, expect = "tok_declined", []int{402}
	}
	k := call{op: opCheckout, path: "/checkout", bearer: vu.cust.Token, idem: fmt.Sprintf("lt-%s-co-%04d-%06d", r.runID, vu.ID, seq),
		body: map[string]any{"session_id": sid, "customer_id": vu.cust.ID, "location_id": fx.online.ID,
			"shipping_address": shippingAddress, "payment": map[string]any{"method": "card", "token": token}},
		expect: expect}
	var ans checkoutAnswer
	k.out, k.decodeErrors = &ans, true
	status, err := vu.call(ctx, k)
	if ans.SagaID != "" {
		r.led.sagaStarted(declined)
	}
	switch {
	case status == 201:
		vu.check("a 201 checkout is COMPLETED with an order", ans.state() == "COMPLETED" && ans.OrderID != "",
			fmt.Sprintf("status %q order %q", ans.state(), ans.OrderID))
		vu.check("the checkout charges the quoted total", ans.TotalCents == quote.TotalCents,
			fmt.Sprintf("quoted %d, charged %d", quote.TotalCents, ans.TotalCents))
		r.led.orderCompleted(&orderRec{id: ans.OrderID, sagaID: ans.SagaID, location: fx.online.ID, total: ans.TotalCents, lines: lines})
	case ans.SagaID != "" && (status == 202 || status == 0 || status >= 500):
		// Still running, or the answer was lost: the saga says later.
		r.led.addPending(pendingSaga{id: ans.SagaID, kind: "checkout", location: fx.online.ID, lines: lines})
	case status == 0 || status >= 500:
		// No saga id: replaying the same Idempotency-Key after the run
		// tells what became of it.
		k.expect, k.out = []int{201, 202, 402, 409}, nil
		r.led.addPending(pendingSaga{kind: "checkout", location: fx.online.ID, lines: lines, replay: &k})
	default:
		// 402 and 409 come after compensation: nothing moved.
		if status == 402 || status == 409 {
			vu.check("a failed checkout ends FAILED", ans.state() == "FAILED", fmt.Sprintf("saga_status %q", ans.state()))
		}
	}
	if status != 201 && status != 202 && status != 0 && status < 500 {
		// The shopper leaves; their cart goes (the saga clears it only on
		// success). A lost answer keeps the cart for the replay.
		_, cerr := vu.call(ctx, call{op: opClearCart, path: "/carts/" + sid, bearer: vu.cust.Token})
		return errors.Join(err, cerr)
	}
	if err != nil || status != 201 {
		return err
	}

	var order struct {
		Status     string `json:"status"`
		TotalCents int64  `json:"total_cents"`
	}
	if _, err := vu.call(ctx, call{op: opGetOrder, path: "/orders/" + url.PathEscape(ans.OrderID), bearer: vu.cust.Token, out: &order}); err != nil {
		return err
	}
	vu.check("the new order is confirmed, at the checkout's total", order.Status == "confirmed" && order.TotalCents == ans.TotalCents,
		fmt.Sprintf("order %s %s total %d, checkout total %d", ans.OrderID, order.Status, order.TotalCents, ans.TotalCents))
	if vu.rng.IntN(10) != 0 {
		return nil
	}
	vu.pause(ctx, 200*time.Millisecond, time.Second)
	var cancel struct {
		SagaID        string `json:"saga_id"`
		Status        string `json:"status"`
		RefundedCents int64  `json:"refunded_cents"`
	}
	status, err = vu.call(ctx, call{op: opCancelOrder, path: "/orders/" + url.PathEscape(ans.OrderID) + "/cancel",
		bearer: vu.cust.Token, expect: []int{200, 202}, out: &cancel})
	switch {
	case status == 200:
		vu.check("a cancellation refunds the order's total", cancel.RefundedCents == ans.TotalCents,
			fmt.Sprintf("refunded %d of %d", cancel.RefundedCents, ans.TotalCents))
		r.led.orderCancelled(ans.OrderID)
	case status == 202 || status == 0 || status >= 500:
		// Read back after the run, once the sagas are final.
		r.led.addPending(pendingSaga{id: cancel.SagaID, kind: "cancel", orderID: ans.OrderID})
	}
	return err
}

// registerPool hands the registers out one cashier at a time: a register
// has one open session, so two VUs on one register would only measure
// 409s.
type registerPool struct{ ch chan registerFx }

func newRegisterPool(regs []registerFx) *registerPool {
	p := &registerPool{ch: make(chan registerFx, len(regs))}
	for _, r := range regs {
		p.ch <- r
	}
	return p
}

// acquire waits for a free register, or gives up when the VU is told to
// stop or the run ends.
func (p *registerPool) acquire(ctx context.Context, stop <-chan struct{}) (registerFx, bool) {
	select {
	case reg := <-p.ch:
		return reg, true
	case <-stop:
	case <-ctx.Done():
	}
	return registerFx{}, false
}

func (p *registerPool) release(reg registerFx) { p.ch <- reg }

// staleSession reads the session id and cashier out of the 409 of opening
// a register that has an open session ("register X already has an open
// session (ses_…, cashier …)").
var staleSession = regexp.MustCompile(`\(([A-Za-z0-9_.:-]+), cashier ([^)]*)\)`)

// roundUp rounds cents up to a multiple of step.
func roundUp(cents, step int64) int64 { return (cents + step - 1) / step * step }

// posJourney is a cashier's shift on one register: open the session,
// ring up a few sales, maybe take a return, close with a balanced drawer.
func posJourney(ctx context.Context, vu *VU) error {
	r := vu.r
	reg, ok := r.registers.acquire(ctx, vu.stop)
	if !ok {
		return errStopped
	}
	defer r.registers.release(reg)
	key := r.fx.cashierKeys[reg.LocationID]
	cashier := fmt.Sprintf("lt-cashier-%04d", vu.ID)
	sid, err := openSession(ctx, vu, reg, key, cashier)
	if err != nil {
		return err
	}
	var (
		fe  firstErr
		own []*saleRec
	)
	for range 2 + vu.rng.IntN(4) {
		s, err := ringUpSale(ctx, vu, reg, key, cashier)
		if fe.keep(err); ctx.Err() != nil {
			return ctx.Err()
		}
		if s != nil {
			own = append(own, s)
		}
		vu.pause(ctx, 50*time.Millisecond, 300*time.Millisecond)
	}
	if vu.rng.IntN(10) < 3 {
		fe.keep(returnOne(ctx, vu, reg, key, own))
	}
	fe.keep(closeSession(ctx, vu, reg, key, sid))
	if r.fx.dashboard && ctx.Err() == nil && vu.rng.IntN(2) == 0 {
		// The store manager glances at the day's figures.
		_, err := vu.call(ctx, call{op: opDashboard, path: "/dashboard", apiKey: r.fx.managerKey})
		fe.keep(err)
	}
	return fe.err
}

// openSession opens a session on reg. A session left open by a load test
// that was killed (its cashier is lt-…) is closed first; anyone else's is
// left alone and the register is skipped.
func openSession(ctx context.Context, vu *VU, reg registerFx, key, cashier string) (string, error) {
	for attempt := 0; ; attempt++ {
		var ss struct {
			ID string `json:"id"`
		}
		status, err := vu.call(ctx, call{op: opOpenSession, path: "/registers/" + url.PathEscape(reg.ID) + "/sessions", apiKey: key,
			body: map[string]any{"cashier_id": cashier, "opening_float_cents": 20000}, out: &ss})
		if err == nil {
			vu.r.led.sessionOpened(reg.ID, ss.ID)
			return ss.ID, nil
		}
		var he *httpError
		if status != 409 || attempt > 0 || !errors.As(err, &he) {
			return "", err
		}
		m := staleSession.FindStringSubmatch(he.Detail)
		if m == nil || !strings.HasPrefix(m[2], "lt-") {
			return "", fmt.Errorf("register %s is in use by someone else: %w", reg.ID, err)
		}
		if err := closeSession(ctx, vu, reg, key, m[1]); err != nil {
			return "", err
		}
	}
}

// saleAnswer is what the journeys read of a sale.
type saleAnswer struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	TotalCents    int64  `json:"total_cents"`
	TenderedCents int64  `json:"tendered_cents"`
	ChangeCents   int64  `json:"change_cents"`
}

// ringUpSale sells 1-3 products, a fifth of the lines at 10% off. The
// total depends on the store's taxes, which the till computes; the tender
// is either cash well over any Canadian tax (change comes back) or the
// card for at most the pre-tax net with cash for the rest, since card
// tender may not exceed the total.
func ringUpSale(ctx context.Context, vu *VU, reg registerFx, key, cashier string) (*saleRec, error) {
	r := vu.r
	picked := pickProducts(vu, 1+vu.rng.IntN(3))
	var (
		body          []map[string]any
		lines         []line
		gross, netLow int64
	)
	for _, p := range picked {
		qty := int64(1 + vu.rng.IntN(3))
		disc := 0
		if vu.rng.IntN(5) == 0 {
			disc = 10
		}
		g := p.Price * qty
		gross += g
		netLow += g*int64(100-disc)/100 - 1
		body = append(body, map[string]any{"product_id": p.ID, "quantity": qty, "discount_percent": disc})
		lines = append(lines, line{p.ID, qty})
	}
	var tender []map[string]any
	if vu.rng.IntN(10) < 6 {
		tender = []map[string]any{{"method": "cash", "amount_cents": roundUp(gross*115/100+1, 500)}}
	} else {
		tender = []map[string]any{{"method": "card", "amount_cents": max(1, netLow)}, {"method": "cash", "amount_cents": roundUp(gross*15/100+100, 500)}}
	}
	var s saleAnswer
	status, err := vu.call(ctx, call{op: opCreateSale, path: "/sales", apiKey: key, idem: fmt.Sprintf("lt-%s-sale-%04d-%06d", r.runID, vu.ID, vu.next()),
		body: map[string]any{"location_id": reg.LocationID, "register_id": reg.ID, "cashier_id": cashier, "lines": body, "payments": tender},
		out:  &s, expect: []int{201}})
	switch {
	case status == 201:
		vu.check("a sale completes with change = tendered - total", s.Status == "completed" && s.ChangeCents == s.TenderedCents-s.TotalCents,
			fmt.Sprintf("sale %s %s: tendered %d total %d change %d", s.ID, s.Status, s.TenderedCents, s.TotalCents, s.ChangeCents))
		rec := &saleRec{id: s.ID, location: reg.LocationID}
		for _, l := range lines {
			rec.lines = append(rec.lines, saleLine{product: l.ProductID, sold: l.Quantity, returnable: l.Quantity})
		}
		r.led.saleCompleted(rec)
		return rec, nil
	case status == 0 || status >= 500:
		// The sale may be pending: recovery completes or voids it.
		r.led.unsure(reg.LocationID, lines)
	}
	return nil, err
}

// returnOne takes back one unit: of this shift's sales at the cashier's
// key, or for a third of the returns of another store's sale, which needs
// the manager's key; the goods are restocked at this register's store.
func returnOne(ctx context.Context, vu *VU, reg registerFx, key string, own []*saleRec) error {
	r := vu.r
	cross := vu.rng.IntN(3) == 0
	s, product, ok := r.led.takeReturnable(vu.rng, own, cross, reg.LocationID)
	if !ok && cross {
		cross = false
		s, product, ok = r.led.takeReturnable(vu.rng, own, false, reg.LocationID)
	}
	if !ok {
		return nil
	}
	if cross {
		key = r.fx.managerKey
	}
	status, err := vu.call(ctx, call{op: opCreateReturn, path: "/sales/" + url.PathEscape(s.id) + "/returns", apiKey: key,
		idem: fmt.Sprintf("lt-%s-ret-%04d-%06d", r.runID, vu.ID, vu.next()), expect: []int{201},
		body: map[string]any{"register_id": reg.ID, "lines": []map[string]any{{"product_id": product, "quantity": 1}}, "reason": "customer changed their mind"}})
	switch {
	case status == 201:
		r.led.returned(reg.LocationID, product)
	case status == 0 || status >= 500:
		r.led.unsure(reg.LocationID, []line{{product, 1}})
	default:
		r.led.giveBack(s, product)
	}
	return err
}

// closeSession counts the drawer at what the till expects and closes: the
// Z report must balance to the cent.
func closeSession(ctx context.Context, vu *VU, reg registerFx, key, sid string) error {
	path := "/registers/" + url.PathEscape(reg.ID) + "/sessions/" + url.PathEscape(sid)
	var cur struct {
		Status string `json:"status"`
		Report struct {
			Expected int64 `json:"expected_cash_cents"`
		} `json:"report"`
	}
	if _, err := vu.call(ctx, call{op: opGetSession, path: path, apiKey: key, out: &cur}); err != nil {
		return err
	}
	var closed struct {
		Report struct {
			OverShort *int64 `json:"over_short_cents"`
		} `json:"report"`
	}
	for attempt := 0; ; attempt++ {
		status, err := vu.call(ctx, call{op: opCloseSession, path: path + "/close", apiKey: key,
			body: map[string]any{"counted_cash_cents": cur.Report.Expected}, out: &closed})
		if status == 409 && attempt == 0 && ctx.Err() == nil {
			// A sale of the session still in flight: the till says to
			// close again in a moment (not think time: --think leaves it).
			sleep(ctx, 2*time.Second)
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	var overShort int64
	if closed.Report.OverShort != nil {
		overShort = *closed.Report.OverShort
	}
	vu.check("the Z report balances when the drawer holds the expected cash", closed.Report.OverShort != nil && overShort == 0,
		fmt.Sprintf("session %s over/short %d", sid, overShort))
	vu.r.led.sessionClosed(reg.ID, overShort, sid)
	return nil
}

var claimTypes = []string{"product_defect", "delivery_issue", "billing_error", "service_complaint"}

// claimsJourney is one claim from creation to closure: the customer
// opens it, an agent works it through every state, then reads its
// events back from the event store.
func claimsJourney(ctx context.Context, vu *VU) error {
	r := vu.r
	id := fmt.Sprintf("clm_%s_%d_%d", r.runID, vu.ID, vu.next())
	var c struct {
		ClaimID string `json:"claim_id"`
		Status  string `json:"status"`
	}
	p := r.fx.products[vu.rng.IntN(len(r.fx.products))]
	if _, err := vu.call(ctx, call{op: opCreateClaim, path: "/claims", bearer: vu.cust.Token, expect: []int{201}, out: &c,
		body: map[string]any{"claim_id": id, "claim_type": claimTypes[vu.rng.IntN(len(claimTypes))], "product_id": p.ID,
			"description": "Load test claim: the item arrived damaged."}}); err != nil {
		return err
	}
	vu.check("a new claim is created", c.ClaimID == id && c.Status == "created", fmt.Sprintf("claim %s status %q", c.ClaimID, c.Status))
	r.led.claimCreated(id)
	steps := []struct {
		op     Op
		verb   string
		body   any
		status string
	}{
		{opAssignClaim, "assign", map[string]any{"agent_id": fmt.Sprintf("lt-agent-%02d", vu.ID%8)}, "assigned"},
		{opStartClaim, "start", nil, "in_progress"},
		{opResolveClaim, "resolve", map[string]any{"resolution": "Replacement shipped."}, "resolved"},
		{opCloseClaim, "close", nil, "closed"},
	}
	for _, s := range steps {
		vu.pause(ctx, 100*time.Millisecond, 500*time.Millisecond)
		if _, err := vu.call(ctx, call{op: s.op, path: "/claims/" + id + "/" + s.verb, apiKey: r.fx.agentKey, body: s.body, out: &c}); err != nil {
			return err
		}
		vu.check("each claim command moves the claim one state on", c.Status == s.status, fmt.Sprintf("after %s: %q", s.verb, c.Status))
	}
	var evs list[struct {
		EventType string `json:"event_type"`
	}]
	if _, err := vu.call(ctx, call{op: opClaimEvents, path: "/claims/" + id + "/events", apiKey: r.fx.agentKey, out: &evs}); err != nil {
		return err
	}
	var types []string
	for _, e := range evs.Data {
		types = append(types, e.EventType)
	}
	want := []string{"ClaimCreated", "ClaimAssigned", "ClaimStarted", "ClaimResolved", "ClaimClosed"}
	vu.check("the event store holds the claim's five events in order", strings.Join(types, ",") == strings.Join(want, ","),
		strings.Join(types, ","))
	return nil
}

// ScenarioHelp describes the scenarios, one a line, for --help.
func ScenarioHelp() string {
	var b strings.Builder
	for _, s := range scenarios {
		fmt.Fprintf(&b, "  %-14s %s\n", s.Name, s.Summary)
	}
	return b.String()
}
