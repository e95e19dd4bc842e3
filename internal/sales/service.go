package sales

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/product"
)

// DefaultCurrency is the currency of every register: Canadian stores sell
// in Canadian dollars, and the taxes are Canadian.
const DefaultCurrency = "CAD"

// Options tunes the local service. The zero value is production.
type Options struct {
	// Registerer receives the context's metrics; nil: not exported.
	Registerer prometheus.Registerer
	// Logger receives what recovery did and what it could not do.
	// Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock; tests pass one they can move. Default: wall clock.
	Now func() time.Time
	// PendingGrace is how old a pending sale must be before Resume (or a
	// session close) settles it rather than leave it to the call driving
	// it: longer than a sale's own inventory calls can take, retries
	// included. Default 1 minute.
	PendingGrace time.Duration
	// ReservationTTL is how long a sale's reservation holds the stock
	// between reserve and commit if the process dies in between; after it
	// the inventory gives the stock back and Resume voids the sale.
	// Default 10 minutes.
	ReservationTTL time.Duration
}

type service struct {
	store   *store
	catalog Catalog
	stock   Stock
	clock   func() time.Time
	grace   time.Duration
	ttl     time.Duration
	log     *slog.Logger
	metrics *metrics
}

var _ Local = (*service)(nil)

// New returns the local sales service on gdb (already migrated), pricing
// from catalog and taking stock through stock.
func New(gdb *gorm.DB, catalog Catalog, stock Stock, opts Options) Local {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PendingGrace <= 0 {
		opts.PendingGrace = time.Minute
	}
	if opts.ReservationTTL <= 0 {
		opts.ReservationTTL = 10 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &service{
		store: &store{db: gdb}, catalog: catalog, stock: stock, clock: opts.Now,
		grace: opts.PendingGrace, ttl: opts.ReservationTTL, log: opts.Logger,
		metrics: newMetrics(opts.Registerer, gdb),
	}
}

// now is the clock in the one form both engines store and compare
// exactly: UTC, microseconds, no monotonic reading.
func (s *service) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

var (
	idPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	keyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	skuPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// checkID validates an identifier: ids are plain tokens, so anything else
// (quotes, spaces, SQL) is refused at the door with the field named.
func checkID(v *errs.Validator, field, id string) {
	if id == "" {
		v.Check(false, field, "is required")
		return
	}
	v.Check(idPattern.MatchString(id), field, "must be 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
}

func checkOptionalID(v *errs.Validator, field, id string) {
	if id != "" {
		checkID(v, field, id)
	}
}

func checkKey(v *errs.Validator, key string) {
	v.Check(key == "" || keyPattern.MatchString(key), "Idempotency-Key",
		"must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
}

func checkAmount(v *errs.Validator, field string, cents int64, minimum int64) {
	v.Check(cents >= minimum && cents <= MaxAmountCents, field, "must be between %d and %d cents", minimum, int64(MaxAmountCents))
}

// Registers.

// maxGeneratedTries bounds the attempts at a readable register id before
// falling back to a random one.
const maxGeneratedTries = 5

// CreateRegister implements Service. Without an id the register is named
// after its store, <code>-R<n>, as cashiers read it on receipts.
func (s *service) CreateRegister(ctx context.Context, in NewRegister) (Register, error) {
	in.ID, in.Name = strings.TrimSpace(in.ID), strings.TrimSpace(in.Name)
	var v errs.Validator
	checkOptionalID(&v, "id", in.ID)
	checkID(&v, "location_id", in.LocationID)
	v.Check(in.Name != "", "name", "is required")
	v.Check(utf8.RuneCountInString(in.Name) <= 100, "name", "must be at most 100 characters")
	if err := v.Err(); err != nil {
		return Register{}, err
	}
	loc, err := s.location(ctx, in.LocationID)
	if err != nil {
		return Register{}, err
	}
	if loc.Kind != inventory.KindStore {
		return Register{}, errs.Field("location_id", "registers belong to stores; %s is a %s", loc.ID, loc.Kind)
	}
	if !in.Actor.mayWorkAt(loc.ID) {
		return Register{}, fmt.Errorf("this key works at store %s, not %s: %w", in.Actor.LocationID, loc.ID, errs.Forbidden)
	}
	r := Register{ID: in.ID, LocationID: loc.ID, Name: in.Name, CreatedAt: s.now()}
	if r.ID != "" {
		if err := s.store.insertRegister(ctx, r); err != nil {
			if errors.Is(err, errDuplicateKey) {
				return Register{}, fmt.Errorf("register id %q is taken: %w", r.ID, errs.Conflict)
			}
			return Register{}, err
		}
		return r, nil
	}
	n, err := s.store.countRegisters(ctx, loc.ID)
	if err != nil {
		return Register{}, err
	}
	// Two managers adding registers at once race for the same number:
	// the loser takes the next one.
	for try := int64(1); try <= maxGeneratedTries+1; try++ {
		r.ID = fmt.Sprintf("%s-R%d", loc.Code, n+try)
		if try > maxGeneratedTries || !idPattern.MatchString(r.ID) {
			r.ID = ids.New("reg")
		}
		err := s.store.insertRegister(ctx, r)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, errDuplicateKey) {
			return Register{}, err
		}
	}
	return Register{}, fmt.Errorf("register ids at %s keep colliding, retry: %w", loc.ID, errs.Conflict)
}

// location reads a store location; unknown is errs.Invalid naming
// location_id (the caller named it).
func (s *service) location(ctx context.Context, id string) (inventory.Location, error) {
	loc, err := s.stock.GetLocation(ctx, id)
	if errs.KindOf(err) == errs.NotFound {
		return inventory.Location{}, errs.Field("location_id", "no location %q", id)
	}
	if err != nil {
		return inventory.Location{}, fmt.Errorf("read location %s: %w", id, err)
	}
	return loc, nil
}

// GetRegister implements Service.
func (s *service) GetRegister(ctx context.Context, id string) (Register, error) {
	var v errs.Validator
	checkID(&v, "id", id)
	if err := v.Err(); err != nil {
		return Register{}, err
	}
	return s.store.register(ctx, id)
}

// ListRegisters implements Service.
func (s *service) ListRegisters(ctx context.Context, f RegisterFilter) (page.Result[Register], error) {
	f.Page = f.Page.Normalize()
	var v errs.Validator
	checkOptionalID(&v, "location_id", f.LocationID)
	if err := v.Err(); err != nil {
		return page.Result[Register]{}, err
	}
	return s.store.listRegisters(ctx, f)
}

// registerFor reads the register a request names; unknown is
// errs.NotFound naming the field.
func (s *service) registerFor(ctx context.Context, field, id string) (Register, error) {
	r, err := s.store.register(ctx, id)
	if errs.KindOf(err) == errs.NotFound {
		return Register{}, fieldErr(errs.NotFound, field, "no register %q", id)
	}
	return r, err
}

// Sessions.

// OpenSession implements Service.
func (s *service) OpenSession(ctx context.Context, registerID string, in SessionOpening) (RegisterSession, error) {
	var v errs.Validator
	checkID(&v, "register_id", registerID)
	checkID(&v, "cashier_id", in.CashierID)
	checkAmount(&v, "opening_float_cents", in.OpeningFloatCents, 0)
	if err := v.Err(); err != nil {
		return RegisterSession{}, err
	}
	reg, err := s.registerFor(ctx, "register_id", registerID)
	if err != nil {
		return RegisterSession{}, err
	}
	if !in.Actor.mayWorkAt(reg.LocationID) {
		return RegisterSession{}, fmt.Errorf("this key works at store %s; register %s is at %s: %w",
			in.Actor.LocationID, reg.ID, reg.LocationID, errs.Forbidden)
	}
	ss := RegisterSession{ID: ids.New("ses"), RegisterID: reg.ID, LocationID: reg.LocationID, CashierID: in.CashierID,
		Status: SessionOpen, OpeningFloatCents: in.OpeningFloatCents, OpenedAt: s.now()}
	if err := s.store.insertSession(ctx, ss); err != nil {
		if errors.Is(err, errDuplicateKey) {
			open, oerr := s.store.openSessionOf(ctx, reg.ID)
			if oerr == nil {
				return RegisterSession{}, fmt.Errorf("register %s already has an open session (%s, cashier %s): %w",
					reg.ID, open.ID, open.CashierID, errs.Conflict)
			}
			return RegisterSession{}, fmt.Errorf("register %s already has an open session: %w", reg.ID, errs.Conflict)
		}
		return RegisterSession{}, err
	}
	return s.withReport(ctx, ss)
}

// sessionOf reads a session of a register; a session of another register
// is not found, as if the path were wrong.
func (s *service) sessionOf(ctx context.Context, registerID, sessionID string) (RegisterSession, error) {
	var v errs.Validator
	checkID(&v, "register_id", registerID)
	checkID(&v, "session_id", sessionID)
	if err := v.Err(); err != nil {
		return RegisterSession{}, err
	}
	ss, err := s.store.session(ctx, sessionID)
	if err != nil {
		return RegisterSession{}, err
	}
	if ss.RegisterID != registerID {
		return RegisterSession{}, fmt.Errorf("register %s has no session %s: %w", registerID, sessionID, errs.NotFound)
	}
	return ss, nil
}

// withReport attaches the running figures to an open session; a closed
// one carries its Z report already.
func (s *service) withReport(ctx context.Context, ss RegisterSession) (RegisterSession, error) {
	if ss.Status != SessionOpen {
		return ss, nil
	}
	rep, err := s.store.liveReport(ctx, ss)
	if err != nil {
		return RegisterSession{}, err
	}
	ss.Report = &rep
	return ss, nil
}

// GetSession implements Service.
func (s *service) GetSession(ctx context.Context, registerID, sessionID string) (RegisterSession, error) {
	ss, err := s.sessionOf(ctx, registerID, sessionID)
	if err != nil {
		return RegisterSession{}, err
	}
	return s.withReport(ctx, ss)
}

// closeRetryAfter is when a close refused for a sale in flight may be
// tried again: sales complete in milliseconds.
const closeRetryAfter = 2 * time.Second

// CloseSession implements Service. Pending sales old enough to be
// abandoned are settled first, so a crashed sale does not hold the drawer
// hostage until the next recovery round.
func (s *service) CloseSession(ctx context.Context, registerID, sessionID string, in SessionClosing) (RegisterSession, error) {
	var v errs.Validator
	checkAmount(&v, "counted_cash_cents", in.CountedCashCents, 0)
	if err := v.Err(); err != nil {
		return RegisterSession{}, err
	}
	ss, err := s.sessionOf(ctx, registerID, sessionID)
	if err != nil {
		return RegisterSession{}, err
	}
	if !in.Actor.mayWorkAt(ss.LocationID) {
		return RegisterSession{}, fmt.Errorf("this key works at store %s; session %s is at %s: %w",
			in.Actor.LocationID, ss.ID, ss.LocationID, errs.Forbidden)
	}
	if ss.Status == SessionOpen {
		if _, err := s.settlePending(ctx, ss.ID); err != nil {
			return RegisterSession{}, err
		}
		closed, err := s.store.closeSession(ctx, ss, in.CountedCashCents, s.now())
		switch {
		case errors.Is(err, errPendingSales):
			return RegisterSession{}, errs.RetryLater(closeRetryAfter, fmt.Errorf(
				"session %s has a sale in flight; close again in a moment: %w", ss.ID, errs.Conflict))
		case errors.Is(err, errSessionNotOpen):
			// A concurrent close won: answer as for a repeat.
			if ss, err = s.store.session(ctx, ss.ID); err != nil {
				return RegisterSession{}, err
			}
		case err != nil:
			return RegisterSession{}, err
		default:
			return closed, nil
		}
	}
	// Closing again with the same count is the same close (a retry);
	// another count would rewrite a Z report that was already printed.
	if ss.CountedCashCents != nil && *ss.CountedCashCents == in.CountedCashCents {
		return ss, nil
	}
	return RegisterSession{}, fmt.Errorf("session %s is already closed: %w", ss.ID, errs.Conflict)
}

// Sales.

// CreateSale implements Service: begin writes the sale as pending (or
// finds the sale made under the same idempotency key), drive takes its
// stock and completes it.
func (s *service) CreateSale(ctx context.Context, in NewSale) (Sale, error) {
	sale, found, err := s.begin(ctx, in)
	if err != nil {
		return Sale{}, err
	}
	if found {
		switch sale.Status {
		case StatusCompleted:
		case StatusVoided:
			return Sale{}, fmt.Errorf("sale %s made under this Idempotency-Key was voided (%s); use a new key to try again: %w",
				sale.ID, sale.VoidReason, errs.Conflict)
		default:
			// Its first attempt was interrupted: the same idempotent
			// steps finish it (or void it).
			if sale, err = s.drive(ctx, sale); err != nil {
				return Sale{}, err
			}
		}
		sale.replayed = true
		return sale, nil
	}
	return s.drive(ctx, sale)
}

// checkSale validates the shape of a sale request, naming every field at
// fault.
func checkSale(in NewSale) error {
	var v errs.Validator
	checkID(&v, "location_id", in.LocationID)
	checkID(&v, "register_id", in.RegisterID)
	checkID(&v, "cashier_id", in.CashierID)
	checkKey(&v, in.IdempotencyKey)
	v.Check(len(in.Lines) >= 1, "lines", "at least one line is required")
	v.Check(len(in.Lines) <= MaxLines, "lines", "at most %d lines", MaxLines)
	for i, l := range in.Lines {
		f := fmt.Sprintf("lines[%d]", i)
		v.Check(l.ProductID != "" || l.SKU != "", f+".product_id", "product_id or sku is required")
		checkOptionalID(&v, f+".product_id", l.ProductID)
		v.Check(l.SKU == "" || skuPattern.MatchString(l.SKU), f+".sku", "must be 1-64 letters, digits, '.', '_' or '-'")
		v.Check(l.Quantity >= 1 && l.Quantity <= MaxQuantity, f+".quantity", "must be between 1 and %d", MaxQuantity)
		v.Check(l.DiscountPercent >= 0 && l.DiscountPercent <= 100, f+".discount_percent", "must be between 0 and 100")
	}
	v.Check(len(in.Payments) <= MaxPayments, "payments", "at most %d payments", MaxPayments)
	for i, p := range in.Payments {
		f := fmt.Sprintf("payments[%d]", i)
		v.Check(p.Method == MethodCash || p.Method == MethodCard, f+".method", "must be cash or card")
		checkAmount(&v, f+".amount_cents", p.AmountCents, 1)
	}
	return v.Err()
}

// requestHash fingerprints what a client asked for (not what the catalog
// made of it), so a retry matches its first attempt even if a price
// changed in between.
func requestHash(v any) string {
	raw, _ := json.Marshal(v) // plain structs of strings and numbers: cannot fail
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// begin validates and authorizes a sale request, then either finds the
// sale made under its idempotency key (found) or prices it and writes it
// as pending.
func (s *service) begin(ctx context.Context, in NewSale) (sale Sale, found bool, err error) {
	if err := checkSale(in); err != nil {
		return Sale{}, false, err
	}
	if !in.Actor.mayWorkAt(in.LocationID) {
		return Sale{}, false, fmt.Errorf("this key sells at store %s, not %s: %w", in.Actor.LocationID, in.LocationID, errs.Forbidden)
	}
	for i, l := range in.Lines {
		if l.DiscountPercent > MaxCashierDiscountPercent && !in.Actor.isManager() {
			return Sale{}, false, fieldErr(errs.Forbidden, fmt.Sprintf("lines[%d].discount_percent", i),
				"a discount over %d%% needs a manager", MaxCashierDiscountPercent)
		}
	}
	hash := requestHash(struct {
		LocationID, RegisterID, CashierID string
		Lines                             []SaleLineInput
		Payments                          []Tender
	}{in.LocationID, in.RegisterID, in.CashierID, in.Lines, in.Payments})
	if in.IdempotencyKey != "" {
		if sale, ok, err := s.saleUnderKey(ctx, in, hash); err != nil || ok {
			return sale, ok, err
		}
	}
	reg, err := s.registerFor(ctx, "register_id", in.RegisterID)
	if err != nil {
		return Sale{}, false, err
	}
	if reg.LocationID != in.LocationID {
		return Sale{}, false, errs.Field("register_id", "register %s is at location %s, not %s", reg.ID, reg.LocationID, in.LocationID)
	}
	ss, err := s.store.openSessionOf(ctx, reg.ID)
	if errs.KindOf(err) == errs.NotFound {
		return Sale{}, false, fmt.Errorf("register %s has no open session; open one first: %w", reg.ID, errs.Conflict)
	}
	if err != nil {
		return Sale{}, false, err
	}
	loc, err := s.location(ctx, in.LocationID)
	if err != nil {
		return Sale{}, false, err
	}
	lines, err := s.products(ctx, in.Lines)
	if err != nil {
		return Sale{}, false, err
	}
	priced, err := priceSale(loc.Province, lines)
	if err != nil {
		return Sale{}, false, err
	}
	tendered, change, err := tender(priced.total, in.Payments)
	if err != nil {
		return Sale{}, false, err
	}
	payments := append([]Tender{}, in.Payments...)
	sale = Sale{
		ID: ids.New("sal"), Status: StatusPending, LocationID: loc.ID, StoreName: loc.Name, StoreAddress: loc.Address,
		Province: loc.Province, RegisterID: reg.ID, SessionID: ss.ID, CashierID: in.CashierID, Currency: DefaultCurrency,
		Lines: priced.lines, GrossCents: priced.gross, DiscountCents: priced.discount, SubtotalCents: priced.subtotal,
		Taxes: priced.taxes, TaxCents: priced.taxCents, TotalCents: priced.total, Payments: payments,
		TenderedCents: tendered, ChangeCents: change, CreatedAt: s.now(),
	}
	err = s.store.insertPendingSale(ctx, sale, in.IdempotencyKey, hash)
	switch {
	case errors.Is(err, errSessionNotOpen):
		return Sale{}, false, fmt.Errorf("session %s of register %s closed meanwhile: %w", ss.ID, reg.ID, errs.Conflict)
	case errors.Is(err, errDuplicateKey):
		// A twin of this request won the insert: its sale is ours.
		sale, ok, err := s.saleUnderKey(ctx, in, hash)
		if err == nil && !ok {
			err = fmt.Errorf("sale under key %q vanished: %w", in.IdempotencyKey, errs.Conflict)
		}
		return sale, ok, err
	case err != nil:
		return Sale{}, false, err
	}
	return sale, false, nil
}

// saleUnderKey finds the sale made under the request's idempotency key;
// one made by another request body is errs.Unprocessable.
func (s *service) saleUnderKey(ctx context.Context, in NewSale, hash string) (Sale, bool, error) {
	sale, was, err := s.store.saleByKey(ctx, in.RegisterID, in.IdempotencyKey)
	if errs.KindOf(err) == errs.NotFound {
		return Sale{}, false, nil
	}
	if err != nil {
		return Sale{}, false, err
	}
	if was != hash {
		return Sale{}, false, fmt.Errorf("Idempotency-Key %q was used for another sale (%s) with a different body: %w",
			in.IdempotencyKey, sale.ID, errs.Unprocessable)
	}
	return sale, true, nil
}

// products matches the request lines with the catalog: ids in one batched
// call, SKUs one call each. Unknown, archived or foreign-currency products
// and a product on two lines are errs.Invalid naming the line.
func (s *service) products(ctx context.Context, in []SaleLineInput) ([]pricedLine, error) {
	byID := map[string]product.Product{}
	bySKU := map[string]product.Product{}
	var wantIDs []string
	for _, l := range in {
		if l.ProductID != "" && !slices.Contains(wantIDs, l.ProductID) {
			wantIDs = append(wantIDs, l.ProductID)
		}
	}
	if len(wantIDs) > 0 {
		res, err := s.catalog.ListProducts(ctx, product.Filter{IDs: wantIDs, Page: page.Request{Page: 1, PerPage: page.MaxPerPage}})
		if err != nil {
			return nil, fmt.Errorf("read prices from the catalog: %w", err)
		}
		for _, p := range res.Items {
			byID[p.ID] = p
		}
	}
	for _, l := range in {
		if l.ProductID != "" || l.SKU == "" {
			continue
		}
		if _, done := bySKU[l.SKU]; done {
			continue
		}
		res, err := s.catalog.ListProducts(ctx, product.Filter{SKU: l.SKU, Page: page.Request{Page: 1, PerPage: 1}})
		if err != nil {
			return nil, fmt.Errorf("read prices from the catalog: %w", err)
		}
		if len(res.Items) == 1 {
			bySKU[l.SKU] = res.Items[0]
		} else {
			bySKU[l.SKU] = product.Product{}
		}
	}
	var v errs.Validator
	out := make([]pricedLine, 0, len(in))
	first := map[string]int{}
	for i, l := range in {
		f := fmt.Sprintf("lines[%d]", i)
		var p product.Product
		switch {
		case l.ProductID != "":
			p = byID[l.ProductID]
			if p.ID == "" {
				v.Check(false, f+".product_id", "no product %q", l.ProductID)
				continue
			}
			if l.SKU != "" && l.SKU != p.SKU {
				v.Check(false, f+".sku", "product %s has SKU %q, not %q", p.ID, p.SKU, l.SKU)
				continue
			}
		default:
			p = bySKU[l.SKU]
			if p.ID == "" {
				v.Check(false, f+".sku", "no product with SKU %q", l.SKU)
				continue
			}
		}
		if !p.Active {
			v.Check(false, f+".product_id", "product %s is archived and cannot be sold", p.ID)
			continue
		}
		if p.Currency != DefaultCurrency {
			v.Check(false, f+".product_id", "product %s is priced in %s; registers sell in %s", p.ID, p.Currency, DefaultCurrency)
			continue
		}
		if j, dup := first[p.ID]; dup {
			v.Check(false, f, "repeats lines[%d] (same product); send one line with the total quantity", j)
			continue
		}
		first[p.ID] = i
		out = append(out, pricedLine{product: p, quantity: l.Quantity, discount: l.DiscountPercent})
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// reservation is the stock a sale takes: its lines at its store, under
// the sale's id (the idempotency key of every inventory step).
func (s *service) reservation(sale Sale) inventory.NewReservation {
	items := make([]inventory.ReservationItem, len(sale.Lines))
	for i, l := range sale.Lines {
		items[i] = inventory.ReservationItem{ProductID: l.ProductID, LocationID: sale.LocationID, Quantity: l.Quantity}
	}
	return inventory.NewReservation{ReservationID: sale.ID, Items: items, TTLSeconds: int(s.ttl / time.Second)}
}

// refused tells whether an inventory error is a decision (the stock or
// the request says no) rather than an outage, after which nothing can
// have been reserved.
func refused(err error) bool {
	k := errs.KindOf(err)
	return k == errs.Conflict || k == errs.Invalid
}

// drive takes a pending sale's stock and completes it (steps 2 to 4 of
// the package doc). Every step is idempotent on the sale id, so the first
// attempt, a client's retry and recovery may all drive the same sale.
func (s *service) drive(ctx context.Context, sale Sale) (Sale, error) {
	res, err := s.stock.Reserve(ctx, s.reservation(sale))
	switch {
	case err != nil && refused(err):
		// Nothing was reserved: the sale did not happen.
		if _, verr := s.void(ctx, sale, "not enough stock: "+err.Error()); verr != nil {
			return Sale{}, errors.Join(err, verr)
		}
		return Sale{}, fmt.Errorf("sale not recorded: %w", err)
	case err != nil:
		return Sale{}, s.stillPending(sale, "reserve its stock", err)
	case res.Status == inventory.ReservationReleased || res.Status == inventory.ReservationExpired:
		return s.voided(ctx, sale, "its stock reservation was "+res.Status+" before the sale completed")
	}
	return s.commitAndComplete(ctx, sale)
}

// stillPending is the answer when a step failed for a reason a retry can
// cure: the sale stays pending, the same key will finish it. An outage
// keeps its kind (503, 504; 500 for our own database); any other answer
// from the inventory at this point (a 401 for a misconfigured service key,
// say) is the inventory misbehaving, not the cashier's doing: 502.
func (s *service) stillPending(sale Sale, step string, err error) error {
	kind := errs.KindOf(err)
	if kind != errs.Unavailable && kind != errs.Timeout && kind != errs.Internal {
		kind = errs.BadGateway
	}
	return fmt.Errorf("sale %s is pending: could not %s (%v); retry with the same Idempotency-Key: %w",
		sale.ID, step, err, kind)
}

// commitAndComplete makes the reserved stock leave, then completes the
// sale. A reservation that lapsed or was released in between voids it:
// its stock never left.
func (s *service) commitAndComplete(ctx context.Context, sale Sale) (Sale, error) {
	_, err := s.stock.CommitReservation(ctx, sale.ID)
	switch k := errs.KindOf(err); {
	case err == nil:
	case k == errs.Gone || k == errs.Conflict || k == errs.NotFound:
		return s.voided(ctx, sale, "its stock reservation could not be committed: "+err.Error())
	default:
		return Sale{}, s.stillPending(sale, "commit its stock", err)
	}
	return s.complete(ctx, sale)
}

// complete marks the sale completed once its stock has left. If someone
// voided it meanwhile (recovery gave up on it while this call was stalled)
// the stock that left is put back and the answer is a conflict: a voided
// sale stays voided.
func (s *service) complete(ctx context.Context, sale Sale) (Sale, error) {
	now := s.now()
	ok, err := s.store.completeSale(ctx, sale.ID, now)
	if err != nil {
		return Sale{}, s.stillPending(sale, "record its completion", err)
	}
	cur, err := s.store.sale(ctx, sale.ID)
	if err != nil {
		return Sale{}, err
	}
	if ok {
		s.metrics.completed(cur)
		return cur, nil
	}
	if cur.Status == StatusCompleted {
		return cur, nil // another caller completed it
	}
	if err := s.store.setStockToRestore(ctx, cur.ID, true, now); err != nil {
		return Sale{}, err
	}
	if err := s.restoreStock(ctx, cur); err != nil {
		s.log.WarnContext(ctx, "voided sale's stock not put back yet; recovery will", "context", Name, "sale", cur.ID, "err", err)
	}
	return Sale{}, fmt.Errorf("sale %s was voided (%s) while its stock was being taken; the stock is put back: %w",
		cur.ID, cur.VoidReason, errs.Conflict)
}

// voided voids a pending sale and answers the conflict its caller sees.
func (s *service) voided(ctx context.Context, sale Sale, reason string) (Sale, error) {
	cur, err := s.void(ctx, sale, reason)
	if err != nil {
		return Sale{}, err
	}
	if cur.Status == StatusCompleted {
		return cur, nil
	}
	return Sale{}, fmt.Errorf("sale %s voided: %s: %w", sale.ID, cur.VoidReason, errs.Conflict)
}

// void marks a pending sale voided and returns the sale as it now stands
// (completed, if another caller got there first).
func (s *service) void(ctx context.Context, sale Sale, reason string) (Sale, error) {
	if r := []rune(reason); len(r) > 500 {
		reason = string(r[:500])
	}
	if _, err := s.store.voidSale(ctx, sale.ID, reason, s.now()); err != nil {
		return Sale{}, err
	}
	return s.store.sale(ctx, sale.ID)
}

// restoreStock puts back the stock of a voided sale whose reservation was
// committed anyway, once (the adjustment ids derive from the sale), and
// clears the flag that makes recovery retry it.
func (s *service) restoreStock(ctx context.Context, sale Sale) error {
	for _, l := range sale.Lines {
		_, err := s.stock.Adjust(ctx, inventory.Adjustment{
			AdjustmentID: "void:" + sale.ID + ":" + strconv.Itoa(l.LineNo), ProductID: l.ProductID,
			LocationID: sale.LocationID, Delta: l.Quantity, Reason: inventory.ReasonCorrection,
			Note: "stock of voided sale " + sale.ID,
		})
		if err != nil {
			return fmt.Errorf("put back stock of voided sale %s: %w", sale.ID, err)
		}
	}
	return s.store.setStockToRestore(ctx, sale.ID, false, s.now())
}

// GetSale implements Service.
func (s *service) GetSale(ctx context.Context, id string) (Sale, error) {
	var v errs.Validator
	checkID(&v, "id", id)
	if err := v.Err(); err != nil {
		return Sale{}, err
	}
	return s.store.sale(ctx, id)
}

// ListSales implements Service.
func (s *service) ListSales(ctx context.Context, f SaleFilter) (page.Result[Sale], error) {
	f.Page = f.Page.Normalize()
	var v errs.Validator
	checkOptionalID(&v, "location_id", f.LocationID)
	checkOptionalID(&v, "register_id", f.RegisterID)
	checkOptionalID(&v, "session_id", f.SessionID)
	v.Check(f.From.IsZero() || f.To.IsZero() || f.From.Before(f.To), "to", "must be after from")
	if err := v.Err(); err != nil {
		return page.Result[Sale]{}, err
	}
	f.From, f.To = f.From.UTC(), f.To.UTC()
	return s.store.listSales(ctx, f)
}

// Receipt implements Service. Only a completed sale has one: a pending or
// voided sale was never handed to a customer.
func (s *service) Receipt(ctx context.Context, saleID string) (SaleReceipt, error) {
	sale, err := s.GetSale(ctx, saleID)
	if err != nil {
		return SaleReceipt{}, err
	}
	if sale.Status != StatusCompleted {
		return SaleReceipt{}, fmt.Errorf("sale %s is %s: it has no receipt: %w", sale.ID, sale.Status, errs.Conflict)
	}
	return SaleReceipt{SaleID: sale.ID, Width: ReceiptWidth, Text: renderReceipt(sale)}, nil
}
