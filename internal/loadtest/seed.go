package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
)

// The run seeds what its scenario needs through the public API, with the
// admin key, never by touching a database: the same run works against the
// monolith and against the fleet behind its gateway. What it makes is
// reusable across runs and found again by natural keys (SKU, location
// code, register id, e-mail), so repeated runs do not grow the target
// without bound: twenty load-test products (LT-0001…), stock topped up to
// stockLevel, registers named after their store, one customer per VU.
// API keys are the exception: they are made per run (their secret is
// shown only once) and revoked when the run ends.

// Seeding constants.
const (
	ltProducts = 20
	ltSKU      = "LT-%04d"
	// stockLevel is what every load-test stock row is topped up to before
	// a run: enough that no sale or checkout of a long run runs short, so
	// a 409 is a bug rather than the seed's fault.
	stockLevel = 50000
	// CustomerPassword is the password of the load-test customers
	// (lt-vuNNNN@loadtest.retailco.example). They are test accounts,
	// reused by every run against the same target.
	CustomerPassword = "loadtest-password-1"
	customerDomain   = "loadtest.retailco.example"
	// seedWorkers bounds the setup's concurrency: registrations hash
	// passwords, and the setup should not be a load test of its own.
	seedWorkers = 8
)

type productFx struct {
	ID    string `json:"id"`
	SKU   string `json:"sku"`
	Price int64  `json:"price_cents"`
}

type locationFx struct {
	ID       string `json:"id"`
	Code     string `json:"code"`
	Kind     string `json:"kind"`
	Province string `json:"province"`
}

type registerFx struct {
	ID         string `json:"id"`
	LocationID string `json:"location_id"`
}

type customerFx struct {
	ID    string
	Email string
	Token string
}

// fixtures are what the setup found or made, for the journeys.
type fixtures struct {
	managerKey, agentKey string
	cashierKeys          map[string]string // store location id → key tied to it
	keyIDs               []string          // keys this run made, revoked at the end

	products   []productFx
	stores     []locationFx
	online     locationFx
	registers  []registerFx
	customers  []*customerFx
	dashboard  bool // the target serves GET /dashboard
	notes      []string
	productsN  int64 // catalog size, for the pages the catalog journey reads
	customersN int64
}

// list is the envelope of every list answer (API.md).
type list[T any] struct {
	Data []T `json:"data"`
	Meta struct {
		Page    int   `json:"page"`
		PerPage int   `json:"per_page"`
		Total   int64 `json:"total"`
	} `json:"meta"`
}

// admin sends a setup call with the admin key.
func (r *run) admin(ctx context.Context, k call) (int, error) {
	k.apiKey = r.cfg.APIKey
	return r.client.do(ctx, r.setupRec, k)
}

// preflight checks the target answers and the key is an admin's, before
// anything is made.
func (r *run) preflight(ctx context.Context) error {
	// Any answer will do (a gateway may not route the probes): only no
	// answer at all means a wrong --target.
	if status, err := r.client.do(ctx, r.setupRec, call{op: opHealth, path: "/health/live", expect: []int{200, 204, 404, 503}}); status == 0 {
		return fmt.Errorf("target %s does not answer: %w", r.cfg.Target, err)
	}
	var who struct {
		Role string `json:"role"`
		Name string `json:"name"`
	}
	switch status, err := r.admin(ctx, call{op: opWhoami, path: "/auth/whoami", out: &who}); {
	case status == 401 || status == 403:
		return fmt.Errorf("--api-key is not accepted by %s (%d): give an admin key (pos apikey create --role admin --name loadtest)", r.cfg.Target, status)
	case err != nil:
		return fmt.Errorf("checking --api-key: %w", err)
	case who.Role != "admin":
		return fmt.Errorf("--api-key %q is a %s key: the load test seeds products, stock, registers and keys, which needs an admin key", who.Name, who.Role)
	}
	return nil
}

// probe is a harmless request on a route a scenario cannot run without.
type probe struct {
	op      Op
	path    string
	body    any
	context string
}

// probes lists the routes a scenario needs, one or more per context, each
// a request that changes nothing (a list, an idempotent delete of nothing,
// a checkout with an empty body that validation refuses).
func probes(n needs) []probe {
	ps := []probe{
		{opListProducts, "/products?per_page=1", nil, "product"},
		{opListCustomers, "/customers?per_page=1", nil, "customer"},
	}
	if n&(needStock|needPOS) != 0 {
		ps = append(ps, probe{opListLocations, "/locations?per_page=1", nil, "inventory"}, probe{opListStock, "/inventory?per_page=1", nil, "inventory"})
	}
	if n&needCheckout != 0 {
		ps = append(ps,
			probe{opClearCart, "/carts/lt-probe-0000000000000000", nil, "cart"},
			probe{opPaySummary, "/payments/summary", nil, "payment"},
			probe{opListOrders, "/orders?per_page=1", nil, "order"},
			probe{opListSagas, "/sagas?per_page=1", nil, "saga"},
			probe{opCheckout, "/checkout", map[string]any{}, "saga"})
	}
	if n&needPOS != 0 {
		ps = append(ps, probe{opListRegisters, "/registers?per_page=1", nil, "sales"}, probe{opListSales, "/sales?per_page=1", nil, "sales"})
	}
	if n&needClaims != 0 {
		ps = append(ps, probe{opListClaims, "/claims?per_page=1", nil, "claims"})
	}
	return ps
}

// errNotServed is a scenario asking for a context the target lacks.
var errNotServed = errors.New("not served by the target")

// checkServed runs the probes: a 404 or 405 on a route that takes no id
// means the target does not serve it (a context not built yet, or not
// hosted behind this URL), which fails the run with a sentence saying so
// instead of a run full of 404s.
func (r *run) checkServed(ctx context.Context) error {
	var missing []string
	for _, p := range probes(r.sc.needs) {
		status, err := r.admin(ctx, call{op: p.op, path: p.path, body: p.body, expect: []int{200, 204, 400, 401, 403, 409, 415, 422}})
		switch {
		case status == 404 || status == 405:
			missing = append(missing, fmt.Sprintf("%s (%s context) answers %d", p.op.Name(), p.context, status))
		case err != nil:
			return fmt.Errorf("scenario %s: probing %s: %w", r.sc.Name, p.op.Name(), err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("scenario %s cannot run against %s: %s — the target does not serve these contexts (not built into this pos yet, or not hosted behind this URL): %w",
			r.sc.Name, r.cfg.Target, strings.Join(missing, "; "), errNotServed)
	}
	if r.sc.needs&needPOS != 0 {
		status, _ := r.admin(ctx, call{op: opDashboard, path: "/dashboard", expect: []int{200, 404, 405}})
		r.fx.dashboard = status == 200
		if !r.fx.dashboard {
			r.fx.notes = append(r.fx.notes, "GET /api/v1/dashboard is not served by the target: POS shifts skip the manager's dashboard read")
		}
	}
	return nil
}

// seedAll makes or finds every fixture the scenario needs.
func (r *run) seedAll(ctx context.Context) error {
	n := r.sc.needs
	if err := r.seedProducts(ctx); err != nil {
		return err
	}
	if n&(needStock|needPOS) != 0 {
		if err := r.seedLocations(ctx); err != nil {
			return err
		}
		if err := r.seedStock(ctx); err != nil {
			return err
		}
	}
	if n&needPOS != 0 {
		if err := r.seedRegisters(ctx); err != nil {
			return err
		}
	}
	if err := r.seedKeys(ctx); err != nil {
		return err
	}
	if n&needCustomers != 0 {
		if err := r.seedCustomers(ctx); err != nil {
			return err
		}
	}
	// Sizes of the lists the catalog journey pages through, after the
	// customers exist.
	var pl list[struct{}]
	if _, err := r.admin(ctx, call{op: opListProducts, path: "/products?per_page=1", out: &pl}); err != nil {
		return err
	}
	r.fx.productsN = pl.Meta.Total
	var cl list[struct{}]
	if _, err := r.admin(ctx, call{op: opListCustomers, path: "/customers?per_page=1", out: &cl}); err != nil {
		return err
	}
	r.fx.customersN = cl.Meta.Total
	return nil
}

// parallel runs fn for 0..n-1 on seedWorkers goroutines and returns the
// first error.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for range min(seedWorkers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// seedProducts creates LT-0001… or finds them by SKU, reactivating one an
// operator archived.
func (r *run) seedProducts(ctx context.Context) error {
	r.fx.products = make([]productFx, ltProducts)
	return parallel(ctx, ltProducts, func(ctx context.Context, i int) error {
		sku := fmt.Sprintf(ltSKU, i+1)
		// Prices from 1.99 to about 60 dollars, spread so totals and taxes
		// vary.
		price := int64(199 + (i*2797)%5800)
		var p struct {
			productFx
			Active bool `json:"active"`
		}
		status, err := r.admin(ctx, call{op: opCreateProduct, path: "/products", expect: []int{201, 409}, out: &p,
			body: map[string]any{"sku": sku, "name": fmt.Sprintf("Load test item %d", i+1), "price_cents": price,
				"description": "Made by pos loadtest; safe to archive", "alert_threshold": 5}})
		if err != nil {
			return fmt.Errorf("seed product %s: %w", sku, err)
		}
		if status == 409 {
			var l list[struct {
				productFx
				Active bool `json:"active"`
			}]
			if _, err := r.admin(ctx, call{op: opListProducts, path: "/products?sku=" + url.QueryEscape(sku), out: &l}); err != nil {
				return fmt.Errorf("seed product %s: %w", sku, err)
			}
			if len(l.Data) != 1 {
				return fmt.Errorf("seed product %s: the SKU is taken but the list by SKU answers %d products", sku, len(l.Data))
			}
			p.productFx, p.Active = l.Data[0].productFx, l.Data[0].Active
			if !p.Active {
				if _, err := r.admin(ctx, call{op: opUpdateProduct, path: "/products/" + p.ID, body: map[string]any{"active": true}}); err != nil {
					return fmt.Errorf("reactivate product %s: %w", sku, err)
				}
			}
		}
		r.fx.products[i] = p.productFx
		return nil
	})
}

// seedLocations picks up to three stores and the online location, making
// them when the target has none (a target nobody ran `pos seed` on).
func (r *run) seedLocations(ctx context.Context) error {
	var all []locationFx
	for page := 1; ; page++ {
		var l list[locationFx]
		if _, err := r.admin(ctx, call{op: opListLocations, path: fmt.Sprintf("/locations?per_page=100&page=%d", page), out: &l}); err != nil {
			return fmt.Errorf("list locations: %w", err)
		}
		all = append(all, l.Data...)
		if len(l.Data) == 0 || int64(page*100) >= l.Meta.Total {
			break
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Code < all[j].Code })
	for _, l := range all {
		switch {
		case l.Kind == "store" && len(r.fx.stores) < 3:
			r.fx.stores = append(r.fx.stores, l)
		case l.Kind == "online" && r.fx.online.ID == "":
			r.fx.online = l
		}
	}
	create := func(code, kind, province, name string) (locationFx, error) {
		var l locationFx
		_, err := r.admin(ctx, call{op: opCreateLocation, path: "/locations", out: &l,
			body: map[string]any{"code": code, "name": name, "kind": kind, "province": province, "address": "made by pos loadtest"}})
		if err != nil {
			return l, fmt.Errorf("create location %s: %w", code, err)
		}
		r.fx.notes = append(r.fx.notes, "created location "+code)
		return l, nil
	}
	if len(r.fx.stores) == 0 {
		for _, s := range []struct{ code, prov, name string }{{"LT-MTL", "QC", "Load test store Montréal"}, {"LT-TOR", "ON", "Load test store Toronto"}, {"LT-HAL", "NS", "Load test store Halifax"}} {
			l, err := create(s.code, "store", s.prov, s.name)
			if err != nil {
				return err
			}
			r.fx.stores = append(r.fx.stores, l)
		}
	}
	if r.fx.online.ID == "" {
		l, err := create("LT-WEB", "online", "QC", "Load test web shop")
		if err != nil {
			return err
		}
		r.fx.online = l
	}
	return nil
}

// stockLocations are where the run moves stock: the stores (sales,
// returns) and the online location (checkouts).
func (r *run) stockLocations() []locationFx {
	out := slices.Clone(r.fx.stores)
	if r.fx.online.ID != "" {
		out = append(out, r.fx.online)
	}
	return out
}

// stockRow is one row of GET /inventory.
type stockRow struct {
	ProductID  string `json:"product_id"`
	LocationID string `json:"location_id"`
	OnHand     int64  `json:"on_hand"`
	Reserved   int64  `json:"reserved"`
	Available  int64  `json:"available"`
}

// readStock reads every stock row of the load-test products at the run's
// locations, with the given recorder's phase.
func (r *run) readStock(ctx context.Context, rec *Recorder) (map[stockKey]stockRow, error) {
	ours := map[string]bool{}
	for _, p := range r.fx.products {
		ours[p.ID] = true
	}
	rows := map[stockKey]stockRow{}
	for _, loc := range r.stockLocations() {
		for page := 1; ; page++ {
			var l list[stockRow]
			k := call{op: opListStock, apiKey: r.cfg.APIKey, out: &l,
				path: fmt.Sprintf("/inventory?location_id=%s&per_page=100&page=%d", url.QueryEscape(loc.ID), page)}
			if _, err := r.client.do(ctx, rec, k); err != nil {
				return nil, fmt.Errorf("read stock at %s: %w", loc.Code, err)
			}
			for _, row := range l.Data {
				if ours[row.ProductID] {
					rows[stockKey{row.ProductID, row.LocationID}] = row
				}
			}
			if len(l.Data) == 0 || int64(page*100) >= l.Meta.Total {
				break
			}
		}
	}
	return rows, nil
}

// seedStock tops every load-test row up to stockLevel with a receipt
// adjustment, keyed by the run so a retried call receives once.
func (r *run) seedStock(ctx context.Context) error {
	rows, err := r.readStock(ctx, r.setupRec)
	if err != nil {
		return err
	}
	type adj struct {
		p     productFx
		loc   locationFx
		delta int64
	}
	var todo []adj
	for _, loc := range r.stockLocations() {
		for _, p := range r.fx.products {
			row := rows[stockKey{p.ID, loc.ID}]
			if row.OnHand < stockLevel/2 {
				todo = append(todo, adj{p, loc, stockLevel - row.OnHand})
			}
		}
	}
	return parallel(ctx, len(todo), func(ctx context.Context, i int) error {
		a := todo[i]
		_, err := r.admin(ctx, call{op: opAdjustStock, path: "/inventory/adjustments",
			body: map[string]any{"adjustment_id": fmt.Sprintf("lt-%s-stock-%d", r.runID, i), "product_id": a.p.ID,
				"location_id": a.loc.ID, "delta": a.delta, "reason": "receipt", "note": "pos loadtest top-up"}})
		if err != nil {
			return fmt.Errorf("stock %s at %s: %w", a.p.SKU, a.loc.Code, err)
		}
		return nil
	})
}

// seedRegisters makes sure each store used has enough registers for the
// POS VUs to work in parallel (one cashier per register), named after
// the store as `pos seed` names them (MTL-01-R3, …).
func (r *run) seedRegisters(ctx context.Context) error {
	var all []registerFx
	for page := 1; ; page++ {
		var l list[registerFx]
		if _, err := r.admin(ctx, call{op: opListRegisters, path: fmt.Sprintf("/registers?per_page=100&page=%d", page), out: &l}); err != nil {
			return fmt.Errorf("list registers: %w", err)
		}
		all = append(all, l.Data...)
		if len(l.Data) == 0 || int64(page*100) >= l.Meta.Total {
			break
		}
	}
	perStore := max(2, (r.posConcurrency()+len(r.fx.stores)-1)/len(r.fx.stores))
	for _, st := range r.fx.stores {
		var have []registerFx
		for _, reg := range all {
			if reg.LocationID == st.ID {
				have = append(have, reg)
			}
		}
		for n := 1; len(have) < perStore && n <= 200; n++ {
			id := fmt.Sprintf("%s-R%d", st.Code, n)
			if slices.ContainsFunc(all, func(g registerFx) bool { return g.ID == id }) {
				continue
			}
			var reg registerFx
			status, err := r.admin(ctx, call{op: opCreateRegister, path: "/registers", expect: []int{201, 409}, out: &reg,
				body: map[string]any{"id": id, "location_id": st.ID, "name": fmt.Sprintf("Register %d", n)}})
			if err != nil {
				return fmt.Errorf("create register %s: %w", id, err)
			}
			if status == 201 {
				have = append(have, reg)
			}
		}
		r.fx.registers = append(r.fx.registers, have[:min(len(have), perStore)]...)
	}
	return nil
}

// createKey makes an API key for this run and remembers it for revoking.
func (r *run) createKey(ctx context.Context, role, location string) (string, error) {
	var k struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	name := fmt.Sprintf("loadtest-%s-%s", r.runID, role)
	body := map[string]any{"name": name, "role": role}
	if location != "" {
		body["location_id"] = location
		name += "-" + location
		body["name"] = name
	}
	if _, err := r.admin(ctx, call{op: opCreateKey, path: "/api-keys", body: body, out: &k}); err != nil {
		return "", fmt.Errorf("create %s key: %w", role, err)
	}
	r.fx.keyIDs = append(r.fx.keyIDs, k.ID)
	return k.Key, nil
}

// seedKeys makes one key per role the journeys act with, so each request
// carries the credentials its real caller would: a manager reads customer
// lists and returns across stores, a cashier tied to each store works its
// registers, an agent works claims.
func (r *run) seedKeys(ctx context.Context) error {
	var err error
	if r.fx.managerKey, err = r.createKey(ctx, "manager", ""); err != nil {
		return err
	}
	if r.sc.needs&needClaims != 0 {
		if r.fx.agentKey, err = r.createKey(ctx, "agent", ""); err != nil {
			return err
		}
	}
	if r.sc.needs&needPOS != 0 {
		r.fx.cashierKeys = map[string]string{}
		for _, st := range r.fx.stores {
			if r.fx.cashierKeys[st.ID], err = r.createKey(ctx, "cashier", st.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// revokeKeys revokes the keys the run made; a failure is reported, not
// fatal (the keys are named after the run and can be revoked by hand).
func (r *run) revokeKeys(ctx context.Context, rec *Recorder) []string {
	var failed []string
	for _, id := range r.fx.keyIDs {
		k := call{op: opRevokeKey, path: "/api-keys/" + url.PathEscape(id), apiKey: r.cfg.APIKey, expect: []int{200, 204, 404}}
		if _, err := r.client.do(ctx, rec, k); err != nil {
			failed = append(failed, id)
		}
	}
	return failed
}

// seedCustomers registers (or finds) one customer per VU and logs each in.
func (r *run) seedCustomers(ctx context.Context) error {
	n := r.maxVUs
	r.fx.customers = make([]*customerFx, n)
	return parallel(ctx, n, func(ctx context.Context, i int) error {
		c := &customerFx{Email: fmt.Sprintf("lt-vu%04d@%s", i+1, customerDomain)}
		if _, err := r.client.do(ctx, r.setupRec, call{op: opRegister, path: "/auth/register", expect: []int{201, 409},
			body: map[string]any{"email": c.Email, "password": CustomerPassword, "first_name": "Load",
				"last_name": fmt.Sprintf("Tester %d", i+1), "phone": "+1 514 555 0199"}}); err != nil {
			return fmt.Errorf("register %s: %w", c.Email, err)
		}
		var s struct {
			Token      string `json:"token"`
			CustomerID string `json:"customer_id"`
		}
		status, err := r.client.do(ctx, r.setupRec, call{op: opLogin, path: "/auth/login", out: &s,
			body: map[string]any{"email": c.Email, "password": CustomerPassword}})
		if status == 401 {
			return fmt.Errorf("log in %s: the account exists with another password (made by something else than pos loadtest?): %w", c.Email, err)
		}
		if err != nil {
			return fmt.Errorf("log in %s: %w", c.Email, err)
		}
		c.ID, c.Token = s.CustomerID, s.Token
		r.fx.customers[i] = c
		return nil
	})
}

// posConcurrency is how many VUs may be in a shift at once: every VU in
// the pos scenario; in a mix, the POS share of the journeys with room for
// a shift lasting longer than the other journeys do.
func (r *run) posConcurrency() int {
	total, pos := 0, 0
	for _, j := range r.sc.journeys {
		total += j.weight
		if j.name == posJ.name {
			pos += j.weight
		}
	}
	if pos == total {
		return r.maxVUs
	}
	return max(1, (r.maxVUs*pos*5+total*2-1)/(total*2))
}
