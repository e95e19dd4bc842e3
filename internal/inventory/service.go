package inventory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/product"
)

// Options tunes the local service. The zero value is production.
type Options struct {
	// Now is the clock reservations expire by; tests pass one they can
	// move. Default: the wall clock.
	Now func() time.Time
	// MaxLowStockScan bounds the stock rows one low_stock list may filter
	// (see ListStock). Default 20000.
	MaxLowStockScan int
}

type service struct {
	store   *store
	catalog Catalog
	clock   func() time.Time
	maxScan int
}

var _ Service = (*service)(nil)

// New returns the local inventory on gdb (already migrated), reading
// product data through catalog.
func New(gdb *gorm.DB, catalog Catalog) Service { return NewWithOptions(gdb, catalog, Options{}) }

// NewWithOptions is New with a clock of the caller's choosing.
func NewWithOptions(gdb *gorm.DB, catalog Catalog, o Options) Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxLowStockScan <= 0 {
		o.MaxLowStockScan = defaultLowStockScan
	}
	return &service{store: newStore(gdb), catalog: catalog, clock: o.Now, maxScan: o.MaxLowStockScan}
}

// now is the clock in the one form the database compares correctly:
// UTC, microseconds (PostgreSQL's precision), no monotonic reading.
func (s *service) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

var (
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	codePattern = regexp.MustCompile(`^[A-Z0-9][A-Z0-9_-]{0,31}$`)
	kinds       = []string{KindStore, KindWarehouse, KindOnline}
	provinces   = []string{"AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"}
	reasons     = []string{ReasonReceipt, ReasonCount, ReasonDamage, ReasonTheft, ReasonReturn, ReasonCorrection}
)

// checkID validates an identifier field: ids are plain tokens, so anything
// else (quotes, spaces, SQL) is refused at the door with the field named.
func checkID(v *errs.Validator, field, id string) {
	if id == "" {
		v.Check(false, field, "is required")
		return
	}
	v.Check(idPattern.MatchString(id), field, "must be 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
}

// checkOptionalID validates an id used as a filter or an optional key.
func checkOptionalID(v *errs.Validator, field, id string) {
	if id != "" {
		checkID(v, field, id)
	}
}

// Locations.

// CreateLocation implements Service. Codes are stored upper-case, so
// "mtl-01" and "MTL-01" cannot both exist.
func (s *service) CreateLocation(ctx context.Context, in NewLocation) (Location, error) {
	in.Code = strings.ToUpper(strings.TrimSpace(in.Code))
	in.Name = strings.TrimSpace(in.Name)
	in.Address = strings.TrimSpace(in.Address)
	var v errs.Validator
	v.Check(codePattern.MatchString(in.Code), "code", "must be 1-32 letters, digits, '_' or '-', starting with a letter or digit")
	v.Check(in.Name != "", "name", "is required")
	v.Check(utf8.RuneCountInString(in.Name) <= 200, "name", "must be at most 200 characters")
	v.Check(slices.Contains(kinds, in.Kind), "kind", "must be one of %s", strings.Join(kinds, ", "))
	v.Check(slices.Contains(provinces, in.Province), "province", "must be a Canadian province or territory code such as QC or ON")
	v.Check(utf8.RuneCountInString(in.Address) <= 500, "address", "must be at most 500 characters")
	if err := v.Err(); err != nil {
		return Location{}, err
	}
	l := Location{ID: ids.New("loc"), Code: in.Code, Name: in.Name, Kind: in.Kind, Province: in.Province,
		Address: in.Address, CreatedAt: s.now()}
	if err := s.store.insertLocation(ctx, l); err != nil {
		return Location{}, err
	}
	return l, nil
}

// GetLocation implements Service.
func (s *service) GetLocation(ctx context.Context, id string) (Location, error) {
	return s.store.location(ctx, id)
}

// ListLocations implements Service.
func (s *service) ListLocations(ctx context.Context, f LocationFilter) (page.Result[Location], error) {
	f.Page = f.Page.Normalize()
	var v errs.Validator
	v.Check(f.Kind == "" || slices.Contains(kinds, f.Kind), "kind", "must be one of %s", strings.Join(kinds, ", "))
	v.Check(f.Province == "" || slices.Contains(provinces, f.Province), "province", "must be a Canadian province or territory code")
	if err := v.Err(); err != nil {
		return page.Result[Location]{}, err
	}
	return s.store.listLocations(ctx, f)
}

// Stock.

// defaultLowStockScan bounds the stock rows a low_stock list filters. The
// thresholds live in the catalog, so the filter runs here, over batches of
// rows with one catalog call per batch: 20000 rows is 200 batched calls,
// about a chain's worth of one location. Beyond it the caller must narrow
// the list by location or product.
const defaultLowStockScan = 20_000

// ListStock implements Service. Without low_stock the page is cut in SQL
// and its products' thresholds come from one catalog call (a page holds at
// most page.MaxPerPage rows, the catalog's batch limit).
func (s *service) ListStock(ctx context.Context, f StockFilter) (page.Result[StockLevel], error) {
	f.Page = f.Page.Normalize()
	var v errs.Validator
	checkOptionalID(&v, "location_id", f.LocationID)
	checkOptionalID(&v, "product_id", f.ProductID)
	if err := v.Err(); err != nil {
		return page.Result[StockLevel]{}, err
	}
	if f.LowStock {
		return s.listLowStock(ctx, f)
	}
	rows, total, err := s.store.stockPage(ctx, f)
	if err != nil {
		return page.Result[StockLevel]{}, err
	}
	thresholds := map[string]int{}
	if err := s.thresholds(ctx, rows, thresholds); err != nil {
		return page.Result[StockLevel]{}, err
	}
	out := make([]StockLevel, len(rows))
	for i, r := range rows {
		out[i] = r.level(thresholds[r.ProductID])
	}
	return page.Result[StockLevel]{Items: out, Total: total}, nil
}

// listLowStock filters in Go: it walks the matching stock rows in key
// order, a batch at a time, fetching the thresholds of each batch's
// products in one catalog call (cached for the request), counts every low
// row for the total and keeps those on the requested page. Thresholds are
// read fresh, so a threshold changed in the catalog shows at once.
func (s *service) listLowStock(ctx context.Context, f StockFilter) (page.Result[StockLevel], error) {
	const batch = page.MaxPerPage
	var (
		out        []StockLevel
		total      int64
		scanned    int
		afterLoc   string
		afterProd  string
		thresholds = map[string]int{}
		first      = int64(f.Page.Offset())
		last       = first + int64(f.Page.Limit())
	)
	for {
		rows, err := s.store.stockAfter(ctx, f, afterLoc, afterProd, batch)
		if err != nil {
			return page.Result[StockLevel]{}, err
		}
		if scanned += len(rows); scanned > s.maxScan {
			return page.Result[StockLevel]{}, errs.Field("low_stock",
				"more than %d stock rows to filter; narrow the list with location_id or product_id", s.maxScan)
		}
		if err := s.thresholds(ctx, rows, thresholds); err != nil {
			return page.Result[StockLevel]{}, err
		}
		for _, r := range rows {
			lvl := r.level(thresholds[r.ProductID])
			if !lvl.LowStock {
				continue
			}
			if total >= first && total < last {
				out = append(out, lvl)
			}
			total++
		}
		if len(rows) < batch {
			return page.Result[StockLevel]{Items: out, Total: total}, nil
		}
		afterLoc, afterProd = rows[len(rows)-1].LocationID, rows[len(rows)-1].ProductID
	}
}

// thresholds adds to into the alert threshold of every product of rows it
// does not hold yet. A product the catalog does not know reads as
// threshold 0 (products are archived, never deleted, so this is a guard).
func (s *service) thresholds(ctx context.Context, rows []stockRow, into map[string]int) error {
	productIDs := make([]string, len(rows))
	for i, r := range rows {
		productIDs[i] = r.ProductID
	}
	return s.lookupProducts(ctx, productIDs, into)
}

// lookupProducts reads from the catalog the products of productIDs not in
// into yet and records their alert thresholds there; unknown products stay
// absent. Batches of page.MaxPerPage ids: never one call per product.
func (s *service) lookupProducts(ctx context.Context, productIDs []string, into map[string]int) error {
	var missing []string
	for _, id := range productIDs {
		if _, ok := into[id]; !ok && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	for chunk := range slices.Chunk(missing, page.MaxPerPage) {
		res, err := s.catalog.ListProducts(ctx, product.Filter{IDs: chunk, Page: page.Request{Page: 1, PerPage: page.MaxPerPage}})
		if err != nil {
			return fmt.Errorf("read products from the catalog: %w", err)
		}
		for _, p := range res.Items {
			into[p.ID] = p.AlertThreshold
		}
	}
	return nil
}

// reasonSign says which way each reason moves stock: +1 adds, -1 removes,
// 0 either way.
var reasonSign = map[string]int64{
	ReasonReceipt: 1, ReasonReturn: 1, ReasonDamage: -1, ReasonTheft: -1, ReasonCount: 0, ReasonCorrection: 0,
}

// Adjust implements Service. The adjustment is checked against the
// catalog and the locations before anything is written; its id (the
// caller's key, or a fresh one) is the reference of its ledger row.
func (s *service) Adjust(ctx context.Context, in Adjustment) (StockLevel, error) {
	var v errs.Validator
	checkOptionalID(&v, "adjustment_id", in.AdjustmentID)
	checkID(&v, "product_id", in.ProductID)
	checkID(&v, "location_id", in.LocationID)
	v.Check(in.Delta != 0, "delta", "must not be zero")
	v.Check(in.Delta >= -MaxDelta && in.Delta <= MaxDelta, "delta", "must be between %d and %d", -MaxDelta, MaxDelta)
	sign, known := reasonSign[in.Reason]
	v.Check(known, "reason", "must be one of %s", strings.Join(reasons, ", "))
	v.Check(sign <= 0 || in.Delta >= 0, "delta", "a %s adds stock: the delta must be positive", in.Reason)
	v.Check(sign >= 0 || in.Delta <= 0, "delta", "a %s removes stock: the delta must be negative", in.Reason)
	v.Check(utf8.RuneCountInString(in.Note) <= 500, "note", "must be at most 500 characters")
	if err := v.Err(); err != nil {
		return StockLevel{}, err
	}
	p, err := s.checkRefs(ctx, in.ProductID, ref{"location_id", in.LocationID})
	if err != nil {
		return StockLevel{}, err
	}
	a := adjustmentRow{ID: in.AdjustmentID, LocationID: in.LocationID, ProductID: in.ProductID, Delta: in.Delta,
		Reason: in.Reason, Note: in.Note, CreatedAt: s.now()}
	if a.ID == "" {
		a.ID = ids.New("adj")
	}
	for range maxRaceRetries {
		row, earlier, err := s.store.adjust(ctx, a)
		var short *shortError
		switch {
		case db.IsUniqueViolation(err), errors.Is(err, errRaced):
			// The same key raced in, or a concurrent first receipt created
			// the stock row: the next attempt reads it.
			continue
		case errors.As(err, &short):
			return StockLevel{}, fmt.Errorf("adjust %s at %s by %+d: on_hand %d with %d reserved cannot go below the reserved stock or zero: %w",
				in.ProductID, in.LocationID, in.Delta, short.onHand, short.reserved, errs.Conflict)
		case err != nil:
			return StockLevel{}, err
		case earlier != nil && (earlier.ProductID != a.ProductID || earlier.LocationID != a.LocationID ||
			earlier.Delta != a.Delta || earlier.Reason != a.Reason):
			return StockLevel{}, fmt.Errorf("adjustment %s was already made with other values: %w", a.ID, errs.Conflict)
		}
		// A replay answers with the current level: the adjustment was
		// applied once, whatever happened since.
		return row.level(p.AlertThreshold), nil
	}
	return StockLevel{}, fmt.Errorf("adjustment %s: %w: %w", a.ID, errRaced, errs.Conflict)
}

// ref names a location by the field that carried it.
type ref struct{ field, id string }

// checkRefs confirms a product (through the catalog) and locations exist,
// reporting every unknown one as a field error.
func (s *service) checkRefs(ctx context.Context, productID string, locations ...ref) (product.Product, error) {
	locIDs := make([]string, len(locations))
	for i, l := range locations {
		locIDs[i] = l.id
	}
	known, err := s.store.knownLocations(ctx, locIDs)
	if err != nil {
		return product.Product{}, err
	}
	var v errs.Validator
	for _, l := range locations {
		v.Check(known[l.id], l.field, "no location %q", l.id)
	}
	p, err := s.catalog.GetProduct(ctx, productID)
	switch {
	case errs.IsKind(err, errs.NotFound):
		v.Check(false, "product_id", "no product %q", productID)
	case err != nil:
		return product.Product{}, fmt.Errorf("check product %s: %w", productID, err)
	}
	return p, v.Err()
}

// Reservations.

// checkReservation validates a reservation request and returns its lines
// in canonical (location, product) order, and its TTL. Duplicate lines are
// rejected rather than merged: a caller that sends one product twice has a
// bug worth hearing about, and a merged request would replay-compare
// differently from what was sent.
func checkReservation(in NewReservation) ([]ReservationItem, time.Duration, error) {
	var v errs.Validator
	checkID(&v, "reservation_id", in.ReservationID)
	v.Check(len(in.Items) >= 1, "items", "at least one item is required")
	v.Check(len(in.Items) <= MaxItems, "items", "at most %d items", MaxItems)
	seen := map[stockKey]int{}
	for i, it := range in.Items {
		checkID(&v, fmt.Sprintf("items[%d].product_id", i), it.ProductID)
		checkID(&v, fmt.Sprintf("items[%d].location_id", i), it.LocationID)
		v.Check(it.Quantity >= 1 && it.Quantity <= MaxQuantity, fmt.Sprintf("items[%d].quantity", i),
			"must be between 1 and %d", MaxQuantity)
		k := stockKey{it.LocationID, it.ProductID}
		if j, dup := seen[k]; dup {
			v.Check(false, fmt.Sprintf("items[%d]", i), "repeats items[%d] (same product and location); send one line with the total", j)
		} else {
			seen[k] = i
		}
	}
	// Bounded before converting, so a huge value cannot wrap around.
	maxSeconds := int(MaxTTL / time.Second)
	v.Check(in.TTLSeconds >= 0 && in.TTLSeconds <= maxSeconds, "ttl_seconds", "must be between 1 and %d", maxSeconds)
	if err := v.Err(); err != nil {
		return nil, 0, err
	}
	ttl := time.Duration(in.TTLSeconds) * time.Second
	if ttl == 0 {
		ttl = DefaultTTL
	}
	return sortedItems(in.Items), ttl, nil
}

func sortedItems(items []ReservationItem) []ReservationItem {
	out := slices.Clone(items)
	slices.SortFunc(out, func(a, b ReservationItem) int {
		return cmp.Or(strings.Compare(a.LocationID, b.LocationID), strings.Compare(a.ProductID, b.ProductID))
	})
	return out
}

// Reserve implements Service. The happy path is one transaction with no
// catalog call: a line whose stock row is missing or short makes the
// transaction roll back, and only then does explainShortage find out why.
func (s *service) Reserve(ctx context.Context, in NewReservation) (Reservation, error) {
	items, ttl, err := checkReservation(in)
	if err != nil {
		return Reservation{}, err
	}
	// freed records that overdue holds were already released once for this
	// call: a second shortage is real.
	freed := false
	for range maxRaceRetries + 1 {
		// A fresh instant per attempt: a retry after waiting on a lock must
		// not create a reservation that expires in the past.
		now := s.now()
		r := Reservation{ID: in.ReservationID, Status: ReservationActive, Items: items,
			ExpiresAt: now.Add(ttl), CreatedAt: now, UpdatedAt: now}
		existing, found, err := s.store.reserve(ctx, r, now)
		var short *shortError
		switch {
		case err == nil && found:
			if !slices.Equal(existing.Items, items) {
				return Reservation{}, fmt.Errorf("reserve %s: the reservation exists with other items: %w", in.ReservationID, errs.Conflict)
			}
			existing.replayed = true
			return existing, nil
		case err == nil:
			return r, nil
		case db.IsUniqueViolation(err), errors.Is(err, errRaced):
			continue // a concurrent Reserve of this id won: read and compare it
		case errors.As(err, &short) && !freed:
			// The shortage may be stock held by overdue reservations no
			// sweep has reached yet: release those and try once more.
			freed = true
			n, err := s.expireHolders(ctx, items, now)
			if err != nil {
				return Reservation{}, err
			}
			if n > 0 {
				continue
			}
			return Reservation{}, s.explainShortage(ctx, in, short)
		case errors.As(err, &short):
			return Reservation{}, s.explainShortage(ctx, in, short)
		default:
			return Reservation{}, fmt.Errorf("reserve %s: %w", in.ReservationID, err)
		}
	}
	return Reservation{}, fmt.Errorf("reserve %s: %w: %w", in.ReservationID, errRaced, errs.Conflict)
}

// explainShortage turns a refused reservation into the error its caller can
// act on: unknown locations or products are Invalid naming items[i].*,
// lines without enough stock are a Conflict naming each of them. It reads
// after the transaction rolled back, so it costs nothing on the happy path.
func (s *service) explainShortage(ctx context.Context, in NewReservation, short *shortError) error {
	rows, err := s.store.stockFor(ctx, in.Items)
	if err != nil {
		return err
	}
	var missing []ReservationItem
	var locIDs []string
	for _, it := range in.Items {
		if _, ok := rows[stockKey{it.LocationID, it.ProductID}]; !ok {
			missing = append(missing, it)
			locIDs = append(locIDs, it.LocationID)
		}
	}
	knownLoc, err := s.store.knownLocations(ctx, locIDs)
	if err != nil {
		return err
	}
	knownProd := map[string]int{}
	missingProducts := make([]string, len(missing))
	for i, it := range missing {
		missingProducts[i] = it.ProductID
	}
	if err := s.lookupProducts(ctx, missingProducts, knownProd); err != nil {
		return err
	}
	var v errs.Validator
	var lines []string
	for i, it := range in.Items {
		row, ok := rows[stockKey{it.LocationID, it.ProductID}]
		switch {
		case !ok && !knownLoc[it.LocationID]:
			v.Check(false, fmt.Sprintf("items[%d].location_id", i), "no location %q", it.LocationID)
		case !ok && !hasKey(knownProd, it.ProductID):
			v.Check(false, fmt.Sprintf("items[%d].product_id", i), "no product %q", it.ProductID)
		case !ok:
			lines = append(lines, fmt.Sprintf("items[%d] (product %s at %s): none in stock, %d requested",
				i, it.ProductID, it.LocationID, it.Quantity))
		case row.OnHand-row.Reserved < it.Quantity:
			lines = append(lines, fmt.Sprintf("items[%d] (product %s at %s): %d available, %d requested",
				i, it.ProductID, it.LocationID, row.OnHand-row.Reserved, it.Quantity))
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	if len(lines) == 0 {
		// Stock came back between the refusal and this read; name the line
		// that was refused.
		for i, it := range in.Items {
			if it.LocationID == short.change.locationID && it.ProductID == short.change.productID {
				lines = append(lines, fmt.Sprintf("items[%d] (product %s at %s): not enough available stock",
					i, it.ProductID, it.LocationID))
			}
		}
	}
	return fmt.Errorf("reserve %s: insufficient stock, nothing reserved: %s: %w",
		in.ReservationID, strings.Join(lines, "; "), errs.Conflict)
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

// expireHolders expires the overdue reservations holding stock of items
// and returns how many this call expired.
func (s *service) expireHolders(ctx context.Context, items []ReservationItem, now time.Time) (int, error) {
	holders, err := s.store.dueHolders(ctx, items, now)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range holders {
		_, expired, err := s.store.settle(ctx, id, now, noDecision)
		if err != nil && !errs.IsKind(err, errs.NotFound) {
			return n, err
		}
		if expired {
			n++
		}
	}
	return n, nil
}

// noDecision settles nothing beyond the lazy expiry settle always applies.
func noDecision(Reservation) (string, error) { return "", nil }

// GetReservation implements Service.
func (s *service) GetReservation(ctx context.Context, id string) (Reservation, error) {
	now := s.now()
	r, err := s.store.reservation(ctx, id)
	if err != nil || !due(r, now) {
		return r, err
	}
	// Overdue but not swept yet: expire it now, so a reader never sees an
	// "active" reservation whose hold has lapsed.
	r, _, err = s.store.settle(ctx, id, now, noDecision)
	if err != nil {
		return Reservation{}, err
	}
	return r, nil
}

// CommitReservation implements Service. An expired reservation is 410
// Gone rather than 409: the saga can tell "too slow, reserve again" from
// "someone released it".
func (s *service) CommitReservation(ctx context.Context, id string) (Reservation, error) {
	r, _, err := s.store.settle(ctx, id, s.now(), func(r Reservation) (string, error) {
		switch r.Status {
		case ReservationActive:
			return ReservationCommitted, nil
		case ReservationCommitted:
			return "", nil // committing twice is the same commit
		case ReservationExpired:
			return "", fmt.Errorf("commit reservation %s: it expired at %s and its stock was released: %w",
				id, r.ExpiresAt.Format(time.RFC3339), errs.Gone)
		default:
			return "", fmt.Errorf("commit reservation %s: it was released: %w", id, errs.Conflict)
		}
	})
	if err != nil {
		return Reservation{}, err
	}
	return r, nil
}

// ReleaseReservation implements Service. Releasing is what compensation
// does, so every repeat succeeds; only a committed reservation refuses.
func (s *service) ReleaseReservation(ctx context.Context, id string) (Reservation, error) {
	r, _, err := s.store.settle(ctx, id, s.now(), func(r Reservation) (string, error) {
		switch r.Status {
		case ReservationActive:
			return ReservationReleased, nil
		case ReservationCommitted:
			return "", fmt.Errorf("release reservation %s: it was committed; stock that left is returned by an adjustment: %w",
				id, errs.Conflict)
		default:
			return "", nil // released or expired: its stock is already back
		}
	})
	if err != nil {
		return Reservation{}, err
	}
	return r, nil
}

// sweepBatch is how many overdue reservations one query of the sweep
// fetches; each is expired in its own short transaction.
const sweepBatch = 100

// ExpireReservations implements Service.
func (s *service) ExpireReservations(ctx context.Context) (int, error) {
	// One instant for the whole sweep: the set of reservations due at it
	// only shrinks, so the loop ends even while new ones fall due.
	now := s.now()
	n := 0
	for {
		due, err := s.store.dueReservations(ctx, now, sweepBatch)
		if err != nil {
			return n, err
		}
		for _, id := range due {
			_, expired, err := s.store.settle(ctx, id, now, noDecision)
			if err != nil && !errs.IsKind(err, errs.NotFound) {
				return n, err
			}
			if expired {
				n++
			}
		}
		if len(due) < sweepBatch {
			return n, nil
		}
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("expire reservations: %w (%v)", errs.Timeout, err)
		}
	}
}

// Transfers.

// CreateTransfer implements Service. Stock is not checked here: the
// request may be made ahead of a receipt, and approval is where stock
// moves, so approval is where it must be there.
func (s *service) CreateTransfer(ctx context.Context, in NewTransfer) (Transfer, error) {
	in.Note = strings.TrimSpace(in.Note)
	var v errs.Validator
	checkID(&v, "product_id", in.ProductID)
	checkID(&v, "from_location_id", in.FromLocationID)
	checkID(&v, "to_location_id", in.ToLocationID)
	v.Check(in.FromLocationID == "" || in.FromLocationID != in.ToLocationID, "to_location_id", "must differ from from_location_id")
	v.Check(in.Quantity >= 1 && in.Quantity <= MaxQuantity, "quantity", "must be between 1 and %d", MaxQuantity)
	v.Check(utf8.RuneCountInString(in.Note) <= 500, "note", "must be at most 500 characters")
	if err := v.Err(); err != nil {
		return Transfer{}, err
	}
	if _, err := s.checkRefs(ctx, in.ProductID,
		ref{"from_location_id", in.FromLocationID}, ref{"to_location_id", in.ToLocationID}); err != nil {
		return Transfer{}, err
	}
	now := s.now()
	t := Transfer{ID: ids.New("trf"), ProductID: in.ProductID, FromLocationID: in.FromLocationID,
		ToLocationID: in.ToLocationID, Quantity: in.Quantity, Note: in.Note, Status: TransferPending, CreatedAt: now}
	if err := s.store.insertTransfer(ctx, t, now); err != nil {
		return Transfer{}, err
	}
	return t, nil
}

// GetTransfer implements Service.
func (s *service) GetTransfer(ctx context.Context, id string) (Transfer, error) {
	return s.store.transfer(ctx, id)
}

// ListTransfers implements Service.
func (s *service) ListTransfers(ctx context.Context, f TransferFilter) (page.Result[Transfer], error) {
	f.Page = f.Page.Normalize()
	var v errs.Validator
	v.Check(f.Status == "" || slices.Contains([]string{TransferPending, TransferApproved, TransferRejected}, f.Status),
		"status", "must be pending, approved or rejected")
	checkOptionalID(&v, "location_id", f.LocationID)
	checkOptionalID(&v, "product_id", f.ProductID)
	if err := v.Err(); err != nil {
		return page.Result[Transfer]{}, err
	}
	return s.store.listTransfers(ctx, f)
}

// ApproveTransfer implements Service.
func (s *service) ApproveTransfer(ctx context.Context, id string) (Transfer, error) {
	t, err := s.store.decideTransfer(ctx, id, s.now(), func(t Transfer) (string, error) {
		switch t.Status {
		case TransferPending:
			return TransferApproved, nil
		case TransferApproved:
			return "", nil // approving twice is the same approval
		default:
			return "", fmt.Errorf("approve transfer %s: it was rejected: %w", id, errs.Conflict)
		}
	})
	var short *shortError
	if errors.As(err, &short) {
		return Transfer{}, fmt.Errorf("approve transfer %s: %s has %d available, the transfer needs %d; nothing moved: %w",
			id, short.change.locationID, short.onHand-short.reserved, -short.change.onHand, errs.Conflict)
	}
	if err != nil {
		return Transfer{}, err
	}
	return t, nil
}

// RejectTransfer implements Service.
func (s *service) RejectTransfer(ctx context.Context, id string) (Transfer, error) {
	t, err := s.store.decideTransfer(ctx, id, s.now(), func(t Transfer) (string, error) {
		switch t.Status {
		case TransferPending:
			return TransferRejected, nil
		case TransferRejected:
			return "", nil // rejecting twice is the same rejection
		default:
			return "", fmt.Errorf("reject transfer %s: it was approved and the stock has moved: %w", id, errs.Conflict)
		}
	})
	if err != nil {
		return Transfer{}, err
	}
	return t, nil
}
