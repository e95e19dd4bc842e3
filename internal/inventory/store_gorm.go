package inventory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/ids"
	"github.com/retailco/pos/internal/platform/outbox"
	"github.com/retailco/pos/internal/platform/page"
)

// Row types are the tables; domain types never carry gorm tags.

type locationRow struct {
	ID        string `gorm:"primaryKey"`
	Code      string
	Name      string
	Kind      string
	Province  string
	Address   string
	CreatedAt time.Time
}

// TableName maps the row type to its table for gorm.
func (locationRow) TableName() string { return "locations" }

func (r locationRow) domain() Location {
	return Location{ID: r.ID, Code: r.Code, Name: r.Name, Kind: r.Kind, Province: r.Province,
		Address: r.Address, CreatedAt: r.CreatedAt.UTC()}
}

type stockRow struct {
	LocationID string `gorm:"primaryKey"`
	ProductID  string `gorm:"primaryKey"`
	OnHand     int64
	Reserved   int64
	UpdatedAt  time.Time
}

// TableName maps the row type to its table for gorm.
func (stockRow) TableName() string { return "stock" }

// level is the row as the API shows it; the threshold comes from the
// catalog.
func (r stockRow) level(threshold int) StockLevel {
	available := r.OnHand - r.Reserved
	return StockLevel{
		ProductID: r.ProductID, LocationID: r.LocationID, OnHand: r.OnHand, Reserved: r.Reserved,
		Available: available, AlertThreshold: threshold, LowStock: available <= int64(threshold),
		UpdatedAt: r.UpdatedAt.UTC(),
	}
}

type movementRow struct {
	ID            string `gorm:"primaryKey"`
	LocationID    string
	ProductID     string
	DeltaOnHand   int64
	DeltaReserved int64
	Reason        string
	Reference     string
	CreatedAt     time.Time
}

// TableName maps the row type to its table for gorm.
func (movementRow) TableName() string { return "stock_movements" }

type adjustmentRow struct {
	ID         string `gorm:"primaryKey"`
	LocationID string
	ProductID  string
	Delta      int64
	Reason     string
	Note       string
	CreatedAt  time.Time
}

// TableName maps the row type to its table for gorm.
func (adjustmentRow) TableName() string { return "adjustments" }

type reservationRow struct {
	ID        string `gorm:"primaryKey"`
	Status    string
	ExpiresAt time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// TableName maps the row type to its table for gorm.
func (reservationRow) TableName() string { return "reservations" }

type reservationItemRow struct {
	ReservationID string `gorm:"primaryKey"`
	LocationID    string `gorm:"primaryKey"`
	ProductID     string `gorm:"primaryKey"`
	Quantity      int64
}

// TableName maps the row type to its table for gorm.
func (reservationItemRow) TableName() string { return "reservation_items" }

type transferRow struct {
	ID             string `gorm:"primaryKey"`
	ProductID      string
	FromLocationID string
	ToLocationID   string
	Quantity       int64
	Note           string
	Status         string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	DecidedAt      *time.Time
}

// TableName maps the row type to its table for gorm.
func (transferRow) TableName() string { return "transfers" }

func (r transferRow) domain() Transfer {
	t := Transfer{ID: r.ID, ProductID: r.ProductID, FromLocationID: r.FromLocationID, ToLocationID: r.ToLocationID,
		Quantity: r.Quantity, Note: r.Note, Status: r.Status, CreatedAt: r.CreatedAt.UTC()}
	if r.DecidedAt != nil {
		d := r.DecidedAt.UTC()
		t.DecidedAt = &d
	}
	return t
}

type store struct{ db *gorm.DB }

// inTx runs fn in a transaction, retried on contention (db.InTx).
func (s *store) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return db.InTx(ctx, s.db, fn)
}

// dbErr wraps an unexpected database error. A CHECK violation is the schema
// refusing to break the stock invariant: that is a conflict with the state,
// not a crash.
func dbErr(what string, err error) error {
	if db.IsCheckViolation(err) {
		return fmt.Errorf("%s: stock invariant refused the write: %w (%v)", what, errs.Conflict, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// stockChange is one signed change to one stock row and why it happened.
type stockChange struct {
	locationID, productID string
	onHand, reserved      int64
	reason, reference     string
}

// shortError says a change would have broken the invariant: not enough
// available (or reserved) stock, or no stock row at all. The transaction it
// ran in must roll back. It carries what the row held when it refused.
type shortError struct {
	change           stockChange
	exists           bool
	onHand, reserved int64
}

// Error describes the refused change and the row as it was.
func (e *shortError) Error() string {
	return fmt.Sprintf("not enough stock of %s at %s (on_hand %d, reserved %d)",
		e.change.productID, e.change.locationID, e.onHand, e.reserved)
}

// Unwrap makes a shortage a conflict wherever it surfaces.
func (e *shortError) Unwrap() error { return errs.Conflict }

// The write path of stock. Every statement keeps 0 <= reserved <= on_hand on
// the row it touches, whatever ran concurrently: the guard is evaluated on
// the row as it is when the UPDATE takes its lock, and a row that would
// break it is simply not updated (RowsAffected 0).
const (
	updateStockSQL = `UPDATE stock SET on_hand = on_hand + ?, reserved = reserved + ?, updated_at = ?, version = version + 1
		WHERE location_id = ? AND product_id = ? AND reserved + ? >= 0 AND on_hand + ? >= reserved + ?
		RETURNING on_hand, reserved, version`
	// A pure addition to on_hand cannot break the invariant, so it may
	// create the row (first receipt, first transfer in).
	addStockSQL = `INSERT INTO stock (location_id, product_id, on_hand, reserved, updated_at, version) VALUES (?, ?, ?, 0, ?, 1)
		ON CONFLICT (location_id, product_id) DO UPDATE SET on_hand = stock.on_hand + excluded.on_hand,
		updated_at = excluded.updated_at, version = stock.version + 1
		RETURNING on_hand, reserved, version`
)

// StockChangedEvent is the event type of every stock change (see
// docs/events.md); reporting keeps stock value and low stock from it.
const StockChangedEvent = "inventory.StockChanged"

// StockChanged is the data of a StockChangedEvent: the row after the change
// and the change itself.
type StockChanged struct {
	ProductID     string `json:"product_id"`
	LocationID    string `json:"location_id"`
	OnHand        int64  `json:"on_hand"`
	Reserved      int64  `json:"reserved"`
	Available     int64  `json:"available"`
	DeltaOnHand   int64  `json:"delta_on_hand"`
	DeltaReserved int64  `json:"delta_reserved"`
	Reason        string `json:"reason"`
	Reference     string `json:"reference,omitempty"`
}

// stockAfter is what the guarded statements return.
type stockAfter struct {
	OnHand, Reserved, Version int64
}

// applyStock is the only code that writes stock: each change as one guarded
// statement, in (location, product) order so that two transactions touching
// the same rows lock them in the same order (no deadlock on PostgreSQL), and
// one ledger row per change in the same transaction. The first change that
// would break the invariant stops it with a *shortError.
func applyStock(tx *gorm.DB, now time.Time, changes []stockChange) error {
	ordered := slices.Clone(changes)
	slices.SortStableFunc(ordered, func(a, b stockChange) int {
		return cmp.Or(strings.Compare(a.locationID, b.locationID), strings.Compare(a.productID, b.productID))
	})
	moves := make([]movementRow, 0, len(ordered))
	envs := make([]events.Envelope, 0, len(ordered))
	for _, c := range ordered {
		var (
			res   *gorm.DB
			after []stockAfter
		)
		if c.reserved == 0 && c.onHand > 0 {
			res = tx.Raw(addStockSQL, c.locationID, c.productID, c.onHand, now).Scan(&after)
		} else {
			res = tx.Raw(updateStockSQL, c.onHand, c.reserved, now, c.locationID, c.productID,
				c.reserved, c.onHand, c.reserved).Scan(&after)
		}
		if res.Error != nil {
			return dbErr("update stock", res.Error)
		}
		if len(after) == 0 {
			short := &shortError{change: c}
			var row stockRow
			err := tx.Where("location_id = ? AND product_id = ?", c.locationID, c.productID).Take(&row).Error
			switch {
			case err == nil:
				short.exists, short.onHand, short.reserved = true, row.OnHand, row.Reserved
			case !errors.Is(err, gorm.ErrRecordNotFound):
				return dbErr("read stock", err)
			}
			return short
		}
		moves = append(moves, movementRow{
			ID: ids.New("mov"), LocationID: c.locationID, ProductID: c.productID,
			DeltaOnHand: c.onHand, DeltaReserved: c.reserved, Reason: c.reason, Reference: c.reference,
			CreatedAt: now,
		})
		a := after[0]
		env, err := events.New(tx.Statement.Context, StockChangedEvent, c.productID+"@"+c.locationID, a.Version, StockChanged{
			ProductID: c.productID, LocationID: c.locationID, OnHand: a.OnHand, Reserved: a.Reserved,
			Available: a.OnHand - a.Reserved, DeltaOnHand: c.onHand, DeltaReserved: c.reserved,
			Reason: c.reason, Reference: c.reference,
		})
		if err != nil {
			return err
		}
		envs = append(envs, env)
	}
	if len(moves) > 0 {
		if err := tx.Create(&moves).Error; err != nil {
			return dbErr("record stock movements", err)
		}
		// The events commit with the change they describe: the outbox relay
		// publishes them after commit, never before, never lost.
		if err := outbox.Add(tx, envs...); err != nil {
			return dbErr("record stock events", err)
		}
	}
	return nil
}

// Locations.

func (s *store) insertLocation(ctx context.Context, l Location) error {
	row := locationRow{ID: l.ID, Code: l.Code, Name: l.Name, Kind: l.Kind, Province: l.Province,
		Address: l.Address, CreatedAt: l.CreatedAt}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		if db.IsUniqueViolation(err) {
			return fmt.Errorf("location code %q is taken: %w", l.Code, errs.Conflict)
		}
		return dbErr("insert location", err)
	}
	return nil
}

func (s *store) location(ctx context.Context, id string) (Location, error) {
	var row locationRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Location{}, fmt.Errorf("location %q: %w", id, errs.NotFound)
	}
	if err != nil {
		return Location{}, dbErr("get location", err)
	}
	return row.domain(), nil
}

// knownLocations tells which of ids name a location, in one query.
func (s *store) knownLocations(ctx context.Context, locationIDs []string) (map[string]bool, error) {
	known := map[string]bool{}
	if len(locationIDs) == 0 {
		return known, nil
	}
	var found []string
	err := s.db.WithContext(ctx).Model(&locationRow{}).Where("id IN ?", locationIDs).Pluck("id", &found).Error
	if err != nil {
		return nil, dbErr("check locations", err)
	}
	for _, id := range found {
		known[id] = true
	}
	return known, nil
}

func (s *store) listLocations(ctx context.Context, f LocationFilter) (page.Result[Location], error) {
	q := s.db.WithContext(ctx).Model(&locationRow{})
	if f.Kind != "" {
		q = q.Where("kind = ?", f.Kind)
	}
	if f.Province != "" {
		q = q.Where("province = ?", f.Province)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[Location]{}, dbErr("count locations", err)
	}
	var rows []locationRow
	if total > 0 {
		if err := q.Order("code").Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error; err != nil {
			return page.Result[Location]{}, dbErr("list locations", err)
		}
	}
	out := make([]Location, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return page.Result[Location]{Items: out, Total: total}, nil
}

// Stock reads.

func (s *store) stockQuery(ctx context.Context, f StockFilter) *gorm.DB {
	q := s.db.WithContext(ctx).Model(&stockRow{})
	if f.LocationID != "" {
		q = q.Where("location_id = ?", f.LocationID)
	}
	if f.ProductID != "" {
		q = q.Where("product_id = ?", f.ProductID)
	}
	return q
}

// stockPage is one page of stock rows in (location, product) order.
func (s *store) stockPage(ctx context.Context, f StockFilter) ([]stockRow, int64, error) {
	q := s.stockQuery(ctx, f)
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, dbErr("count stock", err)
	}
	var rows []stockRow
	if total > 0 {
		err := q.Order("location_id, product_id").Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error
		if err != nil {
			return nil, 0, dbErr("list stock", err)
		}
	}
	return rows, total, nil
}

// stockAfter reads up to limit rows following the key (afterLoc,
// afterProd) in (location, product) order: a keyset scan that stays cheap
// however deep it goes.
func (s *store) stockAfter(ctx context.Context, f StockFilter, afterLoc, afterProd string, limit int) ([]stockRow, error) {
	q := s.stockQuery(ctx, f)
	if afterLoc != "" || afterProd != "" {
		q = q.Where("(location_id > ? OR (location_id = ? AND product_id > ?))", afterLoc, afterLoc, afterProd)
	}
	var rows []stockRow
	if err := q.Order("location_id, product_id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, dbErr("scan stock", err)
	}
	return rows, nil
}

type stockKey struct{ locationID, productID string }

// stockFor reads the rows of the given (location, product) pairs.
func (s *store) stockFor(ctx context.Context, items []ReservationItem) (map[stockKey]stockRow, error) {
	locs, prods := map[string]bool{}, map[string]bool{}
	for _, it := range items {
		locs[it.LocationID], prods[it.ProductID] = true, true
	}
	var rows []stockRow
	err := s.db.WithContext(ctx).Where("location_id IN ? AND product_id IN ?", keys(locs), keys(prods)).Find(&rows).Error
	if err != nil {
		return nil, dbErr("read stock", err)
	}
	out := make(map[stockKey]stockRow, len(rows))
	for _, r := range rows {
		out[stockKey{r.LocationID, r.ProductID}] = r
	}
	return out, nil
}

// Adjustments.

// adjust records the adjustment and applies it in one transaction. When the
// adjustment id is already known it writes nothing and returns the earlier
// adjustment, for the caller to compare (idempotent replay).
func (s *store) adjust(ctx context.Context, a adjustmentRow) (row stockRow, earlier *adjustmentRow, err error) {
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		row, earlier = stockRow{}, nil
		var prev adjustmentRow
		err := tx.Where("id = ?", a.ID).Take(&prev).Error
		switch {
		case err == nil:
			earlier = &prev
			return readStock(tx, prev.LocationID, prev.ProductID, &row)
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return dbErr("read adjustment", err)
		}
		if err := tx.Create(&a).Error; err != nil {
			return dbErr("insert adjustment", err)
		}
		change := stockChange{locationID: a.LocationID, productID: a.ProductID, onHand: a.Delta,
			reason: a.Reason, reference: a.ID}
		if err := applyStock(tx, a.CreatedAt, []stockChange{change}); err != nil {
			return err
		}
		return readStock(tx, a.LocationID, a.ProductID, &row)
	})
	return row, earlier, err
}

// readStock reads one row; a missing row reads as empty stock.
func readStock(tx *gorm.DB, locationID, productID string, into *stockRow) error {
	err := tx.Where("location_id = ? AND product_id = ?", locationID, productID).Take(into).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		*into = stockRow{LocationID: locationID, ProductID: productID}
		return nil
	}
	if err != nil {
		return dbErr("read stock", err)
	}
	return nil
}

// Reservations.

// reservationLine is a reservation joined with one of its items (the item
// columns are NULL for a reservation without items, which reserve never
// writes but a hand-edited database might hold).
type reservationLine struct {
	ID         string
	Status     string
	ExpiresAt  time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	ProductID  *string
	LocationID *string
	Quantity   *int64
}

// loadReservation reads a reservation and its items in one query: it runs
// inside the transactions that commit and release stock, where every
// round trip is time a stock row may be waiting.
func loadReservation(tx *gorm.DB, id string) (Reservation, error) {
	var rows []reservationLine
	err := tx.Raw(`SELECT r.id, r.status, r.expires_at, r.created_at, r.updated_at, i.product_id, i.location_id, i.quantity
		FROM reservations r LEFT JOIN reservation_items i ON i.reservation_id = r.id WHERE r.id = ?`, id).Scan(&rows).Error
	if err != nil {
		return Reservation{}, dbErr("get reservation", err)
	}
	if len(rows) == 0 {
		return Reservation{}, fmt.Errorf("reservation %q: %w", id, errs.NotFound)
	}
	head := rows[0]
	r := Reservation{ID: head.ID, Status: head.Status, ExpiresAt: head.ExpiresAt.UTC(),
		CreatedAt: head.CreatedAt.UTC(), UpdatedAt: head.UpdatedAt.UTC(), Items: make([]ReservationItem, 0, len(rows))}
	for _, l := range rows {
		if l.ProductID == nil {
			continue
		}
		r.Items = append(r.Items, ReservationItem{ProductID: *l.ProductID, LocationID: *l.LocationID, Quantity: *l.Quantity})
	}
	// Canonical order is byte order, sorted here: SQL ORDER BY follows the
	// database collation, which differs between servers, and a replay
	// compares item lists element by element.
	r.Items = sortedItems(r.Items)
	return r, nil
}

func (s *store) reservation(ctx context.Context, id string) (Reservation, error) {
	return loadReservation(s.db.WithContext(ctx), id)
}

// due tells whether an active reservation has outlived its hold at now.
func due(r Reservation, now time.Time) bool {
	return r.Status == ReservationActive && !now.Before(r.ExpiresAt)
}

// reserve inserts r and holds its stock, all lines or none. When a
// reservation with r's id exists it writes nothing (beyond expiring it if it
// is overdue) and returns it as found, for the caller to compare. A
// concurrent reserve of the same id surfaces as a unique violation: the
// caller reads the winner on its next attempt.
func (s *store) reserve(ctx context.Context, r Reservation, now time.Time) (existing Reservation, found bool, err error) {
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		existing, found = Reservation{}, false
		// Insert first and read only when the id is taken: nearly every
		// reserve is a new one, and the read would be a round trip for
		// nothing.
		res := tx.Exec(`INSERT INTO reservations (id, status, expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`, r.ID, ReservationActive, r.ExpiresAt, now, now)
		if res.Error != nil {
			return dbErr("insert reservation", res.Error)
		}
		if res.RowsAffected == 0 {
			prev, err := loadReservation(tx, r.ID)
			if err != nil {
				return err
			}
			existing, found = prev, true
			if due(prev, now) {
				ok, err := settleInTx(tx, &existing, ReservationExpired, now)
				if err == nil && !ok {
					return errRaced
				}
				return err
			}
			return nil
		}
		lines := make([]reservationItemRow, len(r.Items))
		changes := make([]stockChange, len(r.Items))
		for i, it := range r.Items {
			lines[i] = reservationItemRow{ReservationID: r.ID, LocationID: it.LocationID, ProductID: it.ProductID, Quantity: it.Quantity}
			changes[i] = stockChange{locationID: it.LocationID, productID: it.ProductID, reserved: it.Quantity,
				reason: "reserve", reference: r.ID}
		}
		if err := tx.Create(&lines).Error; err != nil {
			return dbErr("insert reservation items", err)
		}
		return applyStock(tx, now, changes)
	})
	return existing, found, err
}

// settleInTx moves an active reservation to a final status and applies
// what that means for stock. The status change is conditional, so only one
// of two racing transactions settles it; the loser gets false and must
// re-read.
func settleInTx(tx *gorm.DB, r *Reservation, to string, now time.Time) (bool, error) {
	res := tx.Exec(`UPDATE reservations SET status = ?, updated_at = ? WHERE id = ? AND status = ?`,
		to, now, r.ID, ReservationActive)
	if res.Error != nil {
		return false, dbErr("update reservation", res.Error)
	}
	if res.RowsAffected == 0 {
		return false, nil
	}
	changes := make([]stockChange, len(r.Items))
	for i, it := range r.Items {
		c := stockChange{locationID: it.LocationID, productID: it.ProductID, reserved: -it.Quantity, reference: r.ID}
		switch to {
		case ReservationCommitted:
			c.onHand, c.reason = -it.Quantity, "commit"
		case ReservationReleased:
			c.reason = "release"
		default:
			c.reason = "expire"
		}
		changes[i] = c
	}
	if err := applyStock(tx, now, changes); err != nil {
		var short *shortError
		if errors.As(err, &short) {
			// An active reservation always has its quantities reserved;
			// if the row disagrees, the invariant was broken elsewhere.
			return false, fmt.Errorf("settle reservation %s: %v: stock row does not hold what the reservation reserved", r.ID, short)
		}
		return false, err
	}
	r.Status, r.UpdatedAt = to, now
	return true, nil
}

// errRaced says another transaction settled the record between our read
// and our write; the operation starts over from a fresh read.
var errRaced = errors.New("changed concurrently")

// maxRaceRetries bounds how often an operation re-reads after losing a
// race; each loss means the record reached a final state, so one more read
// settles it in practice.
const maxRaceRetries = 3

// settle reads a reservation in a transaction, expires it if it is overdue
// (expiredNow reports that this call did), then asks decide what to do: a
// status to move to ("" for nothing) and a verdict error returned to the
// caller after the transaction commits, so a lazily applied expiry is kept
// even when the answer is "gone".
func (s *store) settle(ctx context.Context, id string, now time.Time,
	decide func(Reservation) (string, error)) (r Reservation, expiredNow bool, err error) {
	for range maxRaceRetries {
		var verdict error
		err = s.inTx(ctx, func(tx *gorm.DB) error {
			verdict, expiredNow = nil, false
			var err error
			if r, err = loadReservation(tx, id); err != nil {
				return err
			}
			if due(r, now) {
				ok, err := settleInTx(tx, &r, ReservationExpired, now)
				if err != nil {
					return err
				}
				if !ok {
					return errRaced
				}
				expiredNow = true
			}
			to, v := decide(r)
			verdict = v
			if to == "" {
				return nil
			}
			ok, err := settleInTx(tx, &r, to, now)
			if err != nil {
				return err
			}
			if !ok {
				return errRaced
			}
			return nil
		})
		if errors.Is(err, errRaced) {
			continue
		}
		if err == nil {
			err = verdict
		}
		return r, expiredNow, err
	}
	return Reservation{}, false, fmt.Errorf("reservation %s: %w: %w", id, errRaced, errs.Conflict)
}

// dueReservations lists up to limit active reservations past their expiry,
// oldest first.
func (s *store) dueReservations(ctx context.Context, now time.Time, limit int) ([]string, error) {
	var out []string
	err := s.db.WithContext(ctx).Model(&reservationRow{}).
		Where("status = ? AND expires_at <= ?", ReservationActive, now).
		Order("expires_at, id").Limit(limit).Pluck("id", &out).Error
	if err != nil {
		return nil, dbErr("find due reservations", err)
	}
	return out, nil
}

// dueHolders lists the overdue active reservations holding stock of any of
// the given pairs (a superset is fine: expiring an overdue one is always
// right).
func (s *store) dueHolders(ctx context.Context, items []ReservationItem, now time.Time) ([]string, error) {
	locs, prods := map[string]bool{}, map[string]bool{}
	for _, it := range items {
		locs[it.LocationID], prods[it.ProductID] = true, true
	}
	var out []string
	err := s.db.WithContext(ctx).Table("reservations AS r").
		Joins("JOIN reservation_items AS i ON i.reservation_id = r.id").
		Where("r.status = ? AND r.expires_at <= ? AND i.location_id IN ? AND i.product_id IN ?",
			ReservationActive, now, keys(locs), keys(prods)).
		Distinct("r.id").Pluck("r.id", &out).Error
	if err != nil {
		return nil, dbErr("find overdue holders", err)
	}
	return out, nil
}

// Transfers.

func (s *store) insertTransfer(ctx context.Context, t Transfer, now time.Time) error {
	row := transferRow{ID: t.ID, ProductID: t.ProductID, FromLocationID: t.FromLocationID, ToLocationID: t.ToLocationID,
		Quantity: t.Quantity, Note: t.Note, Status: t.Status, CreatedAt: now, UpdatedAt: now}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return dbErr("insert transfer", err)
	}
	return nil
}

func loadTransfer(tx *gorm.DB, id string) (Transfer, error) {
	var row transferRow
	err := tx.Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Transfer{}, fmt.Errorf("transfer %q: %w", id, errs.NotFound)
	}
	if err != nil {
		return Transfer{}, dbErr("get transfer", err)
	}
	return row.domain(), nil
}

func (s *store) transfer(ctx context.Context, id string) (Transfer, error) {
	return loadTransfer(s.db.WithContext(ctx), id)
}

func (s *store) listTransfers(ctx context.Context, f TransferFilter) (page.Result[Transfer], error) {
	q := s.db.WithContext(ctx).Model(&transferRow{})
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.LocationID != "" {
		q = q.Where("(from_location_id = ? OR to_location_id = ?)", f.LocationID, f.LocationID)
	}
	if f.ProductID != "" {
		q = q.Where("product_id = ?", f.ProductID)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[Transfer]{}, dbErr("count transfers", err)
	}
	var rows []transferRow
	if total > 0 {
		err := q.Order("created_at DESC, id DESC").Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error
		if err != nil {
			return page.Result[Transfer]{}, dbErr("list transfers", err)
		}
	}
	out := make([]Transfer, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return page.Result[Transfer]{Items: out, Total: total}, nil
}

// decideTransfer reads a transfer in a transaction and asks decide what to
// do with it: a status to move to ("" for nothing) and a verdict error.
// Approval moves the stock in the same transaction; a shortage rolls the
// whole decision back.
func (s *store) decideTransfer(ctx context.Context, id string, now time.Time,
	decide func(Transfer) (string, error)) (Transfer, error) {
	for range maxRaceRetries {
		var t Transfer
		err := s.inTx(ctx, func(tx *gorm.DB) error {
			var err error
			if t, err = loadTransfer(tx, id); err != nil {
				return err
			}
			to, verdict := decide(t)
			if verdict != nil || to == "" {
				return verdict
			}
			res := tx.Exec(`UPDATE transfers SET status = ?, decided_at = ?, updated_at = ? WHERE id = ? AND status = ?`,
				to, now, now, id, TransferPending)
			if res.Error != nil {
				return dbErr("update transfer", res.Error)
			}
			if res.RowsAffected == 0 {
				return errRaced
			}
			t.Status, t.DecidedAt = to, &now
			if to != TransferApproved {
				return nil
			}
			return applyStock(tx, now, []stockChange{
				{locationID: t.FromLocationID, productID: t.ProductID, onHand: -t.Quantity, reason: "transfer_out", reference: id},
				{locationID: t.ToLocationID, productID: t.ProductID, onHand: t.Quantity, reason: "transfer_in", reference: id},
			})
		})
		if errors.Is(err, errRaced) {
			continue
		}
		return t, err
	}
	return Transfer{}, fmt.Errorf("transfer %s: %w: %w", id, errRaced, errs.Conflict)
}

// keys lists a set's members in a stable order.
func keys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
