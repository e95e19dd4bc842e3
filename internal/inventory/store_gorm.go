package inventory

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
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

type store struct {
	db *gorm.DB
	// pg: the database is PostgreSQL, which locks the stock rows a
	// transaction reads and takes its writes as one statement (see "The
	// write path of stock").
	pg bool
}

func newStore(gdb *gorm.DB) *store { return &store{db: gdb, pg: db.DialectOf(gdb) == db.Postgres} }

// inTx runs fn in a transaction, retried on contention (db.InTx).
func (s *store) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return db.InTx(ctx, s.db, fn)
}

// txn is a transaction of the stock write path (lockStock, loadHeld,
// insertReservation, writeStock): a gorm transaction, or for reserve and
// settle on PostgreSQL a pipelined one (inWriteTx), whose write is queued
// to travel with its COMMIT.
type txn struct {
	ctx  context.Context
	tx   *gorm.DB     // a gorm transaction (or the pool, for a plain read); nil when pipelined
	pipe *db.Pipeline // a pipelined PostgreSQL transaction; nil otherwise
	pg   bool
}

// gormTxn is tx as a txn.
func (s *store) gormTxn(tx *gorm.DB) txn { return txn{ctx: tx.Statement.Context, tx: tx, pg: s.pg} }

// query runs q, written with "?", and hands each row to scan. A gorm
// transaction's statements go to database/sql directly, around gorm's
// statement building (reflection over every argument, on the checkout's
// hot path).
func (t txn) query(q string, args []any, scan func(db.RowScanner) error) error {
	if t.pipe != nil {
		return t.pipe.Query(q, args, scan)
	}
	if t.pg {
		q = db.Rebind(db.Postgres, q)
	}
	rows, err := t.tx.Statement.ConnPool.QueryContext(t.ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return db.EachRow(rows, scan)
}

// exec runs q on a gorm transaction and says how many rows it touched
// (SQLite's write path; PostgreSQL writes in one statement through query).
func (t txn) exec(q string, args []any) (int64, error) {
	if t.tx == nil {
		return 0, errors.New("inventory: exec on a pipelined transaction")
	}
	if t.pg {
		q = db.Rebind(db.Postgres, q)
	}
	res, err := t.tx.Statement.ConnPool.ExecContext(t.ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// inWriteTx runs fn, a reserve or a settle, in one transaction retried on
// contention. On PostgreSQL it is pipelined (db.InPipeline): BEGIN goes
// with the first statement, which locks and reads the stock rows, and the
// write with the COMMIT, so the transaction takes two round trips instead
// of four and holds the hot rows for one. The write checks in SQL that it
// touched the rows it meant to (write_check); a failed check rolls the
// transaction back and reads as errRaced.
func (s *store) inWriteTx(ctx context.Context, fn func(tx txn) error) error {
	if !s.pg {
		return s.inTx(ctx, func(tx *gorm.DB) error { return fn(s.gormTxn(tx)) })
	}
	return writeErr(db.InPipeline(ctx, s.db, func(p *db.Pipeline) error {
		return fn(txn{ctx: p.Context(), pipe: p, pg: true})
	}))
}

// racedState is the SQLSTATE write_check raises (migration 0003).
const racedState = "PR001"

// writeErr reads the error of a PostgreSQL stock write: a failed
// write_check is errRaced, a bare database error (a write that went with
// the COMMIT) is wrapped as dbErr does, and anything else is as it came.
func writeErr(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	if pgErr.Code == racedState {
		return errRaced
	}
	if err == error(pgErr) {
		return dbErr("write stock", err)
	}
	return err
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

// The write path of stock. Every change keeps 0 <= reserved <= on_hand on
// its row whatever runs concurrently, in three steps of the caller's
// transaction:
//
//  1. Read the rows it touches and keep them from changing until the
//     transaction ends (lockStock, or the statements of insertReservation
//     and loadHeld, which do it along with their own work). On PostgreSQL
//     that is SELECT … FOR UPDATE in (location, product) byte order, so two
//     transactions lock the rows they share in the same order and never
//     deadlock; on SQLite a plain read, since its transactions hold the
//     database's write lock from BEGIN (_txlock=immediate, see package db).
//  2. Check each change against its row in Go (planStock). A change that
//     would break the invariant, or that needs a row that does not exist
//     and is not a pure addition to on_hand, stops the transaction with a
//     *shortError.
//  3. Write the rows, one ledger row and one event per change (writeStock).
//     On PostgreSQL that is one statement of data-modifying CTEs, so a hot
//     row stays locked for one round trip and the commit however many
//     lines there are: under the checkout load, the time a row stays
//     locked is the time the next checkout of that product waits.
//
// The CHECK constraints on stock remain the last line of defence.

// stockState is what a stock row holds.
type stockState struct{ onHand, reserved, version int64 }

// heldStock is the rows a transaction read in step 1, by key; a key without
// an entry has no row.
type heldStock map[stockKey]stockState

// stockKeysWhere is the condition selecting the rows of keys. An OR of key
// equalities, because SQLite takes a list of row values only from a
// subquery, and PostgreSQL plans this as one index probe per key.
func stockKeysWhere(keys []stockKey) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 2*len(keys))
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("(location_id = ? AND product_id = ?)")
		args = append(args, k.locationID, k.productID)
	}
	return b.String(), args
}

// lockStock is step 1 for the changes of adjustments and transfers.
func (s *store) lockStock(tx txn, keys []stockKey) (heldStock, error) {
	where, args := stockKeysWhere(keys)
	q := `SELECT location_id, product_id, on_hand, reserved, version FROM stock WHERE ` + where
	if s.pg {
		// Rows are locked in the order the ORDER BY returns them; COLLATE
		// "C" makes that byte order (planStock's) whatever the database's
		// collation.
		q += ` ORDER BY location_id COLLATE "C", product_id COLLATE "C" FOR UPDATE`
	}
	held := heldStock{}
	err := tx.query(q, args, func(rows db.RowScanner) error {
		var k stockKey
		var st stockState
		if err := rows.Scan(&k.locationID, &k.productID, &st.onHand, &st.reserved, &st.version); err != nil {
			return err
		}
		held[k] = st
		return nil
	})
	if err != nil {
		return nil, dbErr("lock stock", err)
	}
	return held, nil
}

// plannedChange is a change checked against its row: what it leaves in the
// row, and the ledger row and event that record it.
type plannedChange struct {
	stockChange
	after stockState
	// create: there is no row yet, and this change (a pure addition)
	// creates it.
	create     bool
	movementID string
	event      events.Envelope
}

// planStock is step 2: it checks changes against the rows held and works
// out what each leaves behind, in (location, product) order, which is the
// order of the ledger rows and events. The first change that would break
// the invariant stops it with a *shortError carrying the row as held.
func planStock(ctx context.Context, changes []stockChange, held heldStock) ([]plannedChange, error) {
	ordered := slices.Clone(changes)
	slices.SortStableFunc(ordered, func(a, b stockChange) int {
		return cmp.Or(strings.Compare(a.locationID, b.locationID), strings.Compare(a.productID, b.productID))
	})
	plan := make([]plannedChange, len(ordered))
	for i, c := range ordered {
		if i > 0 && c.locationID == ordered[i-1].locationID && c.productID == ordered[i-1].productID {
			// writeStock writes each row once, from one held state; no
			// caller changes a row twice in one go.
			return nil, fmt.Errorf("stock of %s at %s changed twice in one write", c.productID, c.locationID)
		}
		before, exists := held[stockKey{c.locationID, c.productID}]
		after := stockState{onHand: before.onHand + c.onHand, reserved: before.reserved + c.reserved, version: before.version + 1}
		// Only a pure addition (first receipt, first transfer in) may
		// create a row: anything else needs stock that is not there.
		creates := !exists && c.reserved == 0 && c.onHand > 0
		if (!exists && !creates) || after.reserved < 0 || after.onHand < after.reserved {
			return nil, &shortError{change: c, exists: exists, onHand: before.onHand, reserved: before.reserved}
		}
		env, err := events.New(ctx, StockChangedEvent, c.productID+"@"+c.locationID, after.version, StockChanged{
			ProductID: c.productID, LocationID: c.locationID, OnHand: after.onHand, Reserved: after.reserved,
			Available: after.onHand - after.reserved, DeltaOnHand: c.onHand, DeltaReserved: c.reserved,
			Reason: c.reason, Reference: c.reference,
		})
		if err != nil {
			return nil, err
		}
		plan[i] = plannedChange{stockChange: c, after: after, create: creates, movementID: ids.New("mov"), event: env}
	}
	return plan, nil
}

// writePart is one data-modifying statement of a write and how many rows
// it must touch.
type writePart struct {
	sql  string
	args []any
	rows int
}

// valuesPart is a statement around a VALUES list of n tuples.
func valuesPart(head, tuple, tail string, n int, args []any) writePart {
	return writePart{sql: head + db.Tuples(tuple, n) + tail, args: args, rows: n}
}

// writeStock is step 3: it writes plan, and extra (the caller's own writes
// that commit with it), in one round trip on PostgreSQL.
//
// Rows get the values planStock worked out, on condition that they are
// still as held. Under the locks of step 1 they are, except a row that a
// concurrent transaction created (step 1 had nothing to lock): then, as
// when any part touches other rows than it must, the write fails with
// errRaced, the transaction rolls back and the caller starts over.
func (s *store) writeStock(tx txn, now time.Time, plan []plannedChange, extra ...writePart) error {
	parts := extra
	if len(plan) > 0 {
		var (
			upd, ins   []any
			nUpd, nIns int
			mov        = make([]any, 0, 8*len(plan))
			envs       = make([]events.Envelope, len(plan))
		)
		for i, p := range plan {
			if p.create {
				ins = append(ins, p.locationID, p.productID, p.after.onHand, p.after.reserved, now, p.after.version)
				nIns++
			} else {
				upd = append(upd, p.locationID, p.productID, p.after.onHand, p.after.reserved, p.after.version)
				nUpd++
			}
			mov = append(mov, p.movementID, p.locationID, p.productID, p.onHand, p.reserved, p.reason, p.reference, now)
			envs[i] = p.event
		}
		// The outbox rows as outbox.Add writes them, in the plan's order,
		// which the positions (and publishing) follow.
		rows, err := outbox.Values(envs...)
		if err != nil {
			return err
		}
		out := make([]any, 0, 5*len(rows))
		for _, r := range rows {
			out = append(out, r...)
		}
		if nUpd > 0 {
			// VALUES columns are column1, column2, … on both engines
			// (SQLite takes no column names after the alias); the casts
			// tell PostgreSQL what its parameters are.
			parts = append(parts, valuesPart(
				`UPDATE stock SET on_hand = v.column3, reserved = v.column4, version = v.column5, updated_at = ? FROM (VALUES `,
				`(?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT))`,
				`) AS v WHERE stock.location_id = v.column1 AND stock.product_id = v.column2 AND stock.version = v.column5 - 1`,
				nUpd, append([]any{now}, upd...)))
		}
		if nIns > 0 {
			parts = append(parts, valuesPart(
				`INSERT INTO stock (location_id, product_id, on_hand, reserved, updated_at, version) VALUES `,
				`(?, ?, ?, ?, ?, ?)`, ` ON CONFLICT (location_id, product_id) DO NOTHING`, nIns, ins))
		}
		parts = append(parts,
			valuesPart(`INSERT INTO stock_movements (id, location_id, product_id, delta_on_hand, delta_reserved, reason, reference, created_at) VALUES `,
				`(?, ?, ?, ?, ?, ?, ?, ?)`, ``, len(plan), mov),
			// The events commit with the change they describe: the outbox
			// relay publishes them after commit, never before, never lost.
			valuesPart(`INSERT INTO outbox (`+outbox.Columns+`) VALUES `,
				`(?, ?, ?, ?, ?)`, ``, len(plan), out))
	}
	return s.write(tx, parts)
}

// write runs parts in tx and checks each touched exactly its rows
// (errRaced if not). PostgreSQL takes them as one statement of
// data-modifying CTEs: one round trip whatever their number. They all see
// the snapshot the statement starts from, which is why no part reads what
// another writes; the statement checks its own counts (write_check), so a
// pipelined transaction can queue it to go with its COMMIT. SQLite runs
// them one by one.
func (s *store) write(tx txn, parts []writePart) error {
	if len(parts) == 0 {
		return nil
	}
	if s.pg {
		var q strings.Builder
		var args []any
		q.WriteString("WITH ")
		for i, p := range parts {
			if i > 0 {
				q.WriteString(", ")
			}
			fmt.Fprintf(&q, "w%d AS (%s RETURNING 1)", i, p.sql)
			args = append(args, p.args...)
		}
		q.WriteString(" SELECT write_check(")
		for i, p := range parts {
			if i > 0 {
				q.WriteString(" AND ")
			}
			fmt.Fprintf(&q, "(SELECT COUNT(*) FROM w%d) = %d", i, p.rows)
		}
		q.WriteString(")")
		if tx.pipe != nil {
			tx.pipe.Queue(q.String(), args...)
			return nil
		}
		return writeErr(tx.query(q.String(), args, func(db.RowScanner) error { return nil }))
	}
	for _, p := range parts {
		n, err := tx.exec(p.sql, p.args)
		if err != nil {
			return dbErr("write stock", err)
		}
		if n != int64(p.rows) {
			return errRaced
		}
	}
	return nil
}

// applyStock changes stock in tx: adjustments and transfers go through it;
// reservations run the same steps with their own statements (reserve,
// settleInTx).
func (s *store) applyStock(gtx *gorm.DB, now time.Time, changes []stockChange) error {
	if len(changes) == 0 {
		return nil
	}
	tx := s.gormTxn(gtx)
	keys := make([]stockKey, len(changes))
	for i, c := range changes {
		keys[i] = stockKey{c.locationID, c.productID}
	}
	held, err := s.lockStock(tx, keys)
	if err != nil {
		return err
	}
	plan, err := planStock(tx.ctx, changes, held)
	if err != nil {
		return err
	}
	return s.writeStock(tx, now, plan)
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
		if err := s.applyStock(tx, a.CreatedAt, []stockChange{change}); err != nil {
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

// loadReservation reads a reservation and its items in one query, without
// locking anything.
func loadReservation(tx txn, id string) (Reservation, error) {
	var rows []reservationLine
	err := tx.query(`SELECT r.id, r.status, r.expires_at, r.created_at, r.updated_at, i.product_id, i.location_id, i.quantity
		FROM reservations r LEFT JOIN reservation_items i ON i.reservation_id = r.id WHERE r.id = ?`, []any{id}, func(row db.RowScanner) error {
		var l reservationLine
		if err := row.Scan(&l.ID, &l.Status, &l.ExpiresAt, &l.CreatedAt, &l.UpdatedAt, &l.ProductID, &l.LocationID, &l.Quantity); err != nil {
			return err
		}
		rows = append(rows, l)
		return nil
	})
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

// loadHeld reads a reservation, its items and their stock rows in one
// query, for a transaction that may settle it. On PostgreSQL it locks the
// reservation, then its stock rows in key order (step 1 of the write path),
// until the transaction ends: a concurrent settle of the same reservation
// waits here and then reads what the first one wrote, rather than deciding
// on a status that no longer holds. It locks them also when the
// reservation turns out to be settled already (a replay holds them for a
// round trip), which is rarer than a second statement on every settle.
func (s *store) loadHeld(tx txn, id string) (Reservation, heldStock, error) {
	q := `SELECT r.id, r.status, r.expires_at, r.created_at, r.updated_at, i.location_id, i.product_id, i.quantity,
		s.on_hand, s.reserved, s.version, (SELECT COUNT(*) FROM reservation_items n WHERE n.reservation_id = r.id)
		FROM reservations r JOIN reservation_items i ON i.reservation_id = r.id
		JOIN stock s ON s.location_id = i.location_id AND s.product_id = i.product_id WHERE r.id = ?`
	if s.pg {
		q += ` ORDER BY s.location_id COLLATE "C", s.product_id COLLATE "C" FOR UPDATE OF r, s`
	}
	var (
		r     Reservation
		lines int64
	)
	held := heldStock{}
	err := tx.query(q, []any{id}, func(rows db.RowScanner) error {
		var it ReservationItem
		var st stockState
		if err := rows.Scan(&r.ID, &r.Status, &r.ExpiresAt, &r.CreatedAt, &r.UpdatedAt, &it.LocationID, &it.ProductID,
			&it.Quantity, &st.onHand, &st.reserved, &st.version, &lines); err != nil {
			return err
		}
		r.Items = append(r.Items, it)
		held[stockKey{it.LocationID, it.ProductID}] = st
		return nil
	})
	if err != nil {
		return Reservation{}, nil, dbErr("get reservation", err)
	}
	if len(r.Items) == 0 || int64(len(r.Items)) != lines {
		// No reservation, or one with an item but no stock row (reserve
		// never writes either): the plain read tells which, and planStock
		// refuses to settle a line without its row.
		r, err := loadReservation(tx, id)
		return r, held, err
	}
	r.ExpiresAt, r.CreatedAt, r.UpdatedAt = r.ExpiresAt.UTC(), r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	r.Items = sortedItems(r.Items)
	return r, held, nil
}

func (s *store) reservation(ctx context.Context, id string) (Reservation, error) {
	return loadReservation(s.gormTxn(s.db.WithContext(ctx)), id)
}

// due tells whether an active reservation has outlived its hold at now.
func due(r Reservation, now time.Time) bool {
	return r.Status == ReservationActive && !now.Before(r.ExpiresAt)
}

// insertReservation inserts r and its items unless r's id is taken
// (inserted false), and then reads r's stock rows (step 1 of the write
// path). Nearly every reserve is a new one, so it inserts first and reads
// the existing reservation only when the id is taken.
//
// On PostgreSQL this is one statement, which locks the stock rows only
// when it inserted: a caller whose id is taken loads the existing
// reservation and locks it before its stock, the order every settle takes.
func (s *store) insertReservation(tx txn, r Reservation, now time.Time) (inserted bool, held heldStock, err error) {
	keys := make([]stockKey, len(r.Items))
	for i, it := range r.Items {
		keys[i] = stockKey{it.LocationID, it.ProductID}
	}
	const insertHead = `INSERT INTO reservations (id, status, expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`
	args := []any{r.ID, ReservationActive, r.ExpiresAt, now, now}
	if !s.pg {
		n, err := tx.exec(insertHead, args)
		if err != nil {
			return false, nil, dbErr("insert reservation", err)
		}
		if n == 0 {
			return false, nil, nil
		}
		items := make([]any, 0, 4*len(r.Items))
		for _, it := range r.Items {
			items = append(items, r.ID, it.LocationID, it.ProductID, it.Quantity)
		}
		p := valuesPart(`INSERT INTO reservation_items (reservation_id, location_id, product_id, quantity) VALUES `,
			`(?, ?, ?, ?)`, ``, len(r.Items), items)
		if err := s.write(tx, []writePart{p}); err != nil {
			return false, nil, err
		}
		held, err := s.lockStock(tx, keys)
		return true, held, err
	}
	var q strings.Builder
	q.WriteString(`WITH res AS (` + insertHead + ` RETURNING id),
		items AS (INSERT INTO reservation_items (reservation_id, location_id, product_id, quantity)
			SELECT res.id, v.column1, v.column2, v.column3 FROM res, (VALUES `)
	q.WriteString(db.Tuples(`(?, ?, CAST(? AS BIGINT))`, len(r.Items)))
	for _, it := range r.Items {
		args = append(args, it.LocationID, it.ProductID, it.Quantity)
	}
	// The lateral subquery runs after res (it reads its count), so the
	// reservation is claimed before any stock row is locked, and only
	// then are they locked, in key order.
	where, whereArgs := stockKeysWhere(keys)
	q.WriteString(`) AS v)
		SELECT n.inserted, s.location_id, s.product_id, s.on_hand, s.reserved, s.version
		FROM (SELECT COUNT(*) AS inserted FROM res) AS n LEFT JOIN LATERAL (
			SELECT location_id, product_id, on_hand, reserved, version FROM stock WHERE n.inserted > 0 AND (` + where + `)
			ORDER BY location_id COLLATE "C", product_id COLLATE "C" FOR UPDATE) AS s ON true`)
	args = append(args, whereArgs...)
	held = heldStock{}
	err = tx.query(q.String(), args, func(rows db.RowScanner) error {
		// One row with NULL stock columns when nothing was locked.
		var (
			n                         int64
			loc, prod                 sql.Null[string]
			onHand, reserved, version sql.Null[int64]
		)
		if err := rows.Scan(&n, &loc, &prod, &onHand, &reserved, &version); err != nil {
			return err
		}
		inserted = n > 0
		if loc.Valid {
			held[stockKey{loc.V, prod.V}] = stockState{onHand: onHand.V, reserved: reserved.V, version: version.V}
		}
		return nil
	})
	if err != nil {
		return false, nil, dbErr("insert reservation", err)
	}
	return inserted, held, nil
}

// reserve inserts r and holds its stock, all lines or none. When a
// reservation with r's id exists it writes nothing (beyond expiring it if it
// is overdue) and returns it as found, for the caller to compare. A
// concurrent reserve of the same id surfaces as a unique violation: the
// caller reads the winner on its next attempt.
func (s *store) reserve(ctx context.Context, r Reservation, now time.Time) (existing Reservation, found bool, err error) {
	err = s.inWriteTx(ctx, func(tx txn) error {
		existing, found = Reservation{}, false
		inserted, held, err := s.insertReservation(tx, r, now)
		if err != nil {
			return err
		}
		if !inserted {
			prev, held, err := s.loadHeld(tx, r.ID)
			if err != nil {
				return err
			}
			existing, found = prev, true
			if due(prev, now) {
				return s.settleInTx(tx, &existing, held, ReservationExpired, now)
			}
			return nil
		}
		changes := make([]stockChange, len(r.Items))
		for i, it := range r.Items {
			changes[i] = stockChange{locationID: it.LocationID, productID: it.ProductID, reserved: it.Quantity,
				reason: "reserve", reference: r.ID}
		}
		plan, err := planStock(tx.ctx, changes, held)
		if err != nil {
			return err
		}
		return s.writeStock(tx, now, plan)
	})
	return existing, found, err
}

// settleInTx moves an active reservation to a final status and applies
// what that means for stock, against the rows loadHeld read, in one write.
// Only an active reservation moves, and the status change is conditional:
// when another transaction settled it first, the answer is errRaced, and
// the caller re-reads.
func (s *store) settleInTx(tx txn, r *Reservation, held heldStock, to string, now time.Time) error {
	if r.Status != ReservationActive {
		return errRaced
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
	plan, err := planStock(tx.ctx, changes, held)
	if err != nil {
		var short *shortError
		if errors.As(err, &short) {
			// An active reservation always has its quantities reserved;
			// if the row disagrees, the invariant was broken elsewhere.
			return fmt.Errorf("settle reservation %s: %v: stock row does not hold what the reservation reserved", r.ID, short)
		}
		return err
	}
	status := writePart{sql: `UPDATE reservations SET status = ?, updated_at = ? WHERE id = ? AND status = ?`,
		args: []any{to, now, r.ID, ReservationActive}, rows: 1}
	if err := s.writeStock(tx, now, plan, status); err != nil {
		return err
	}
	r.Status, r.UpdatedAt = to, now
	return nil
}

// errRaced says another transaction settled the record, or created the
// stock row, between our read and our write; the operation starts over
// from a fresh read.
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
		err = s.inWriteTx(ctx, func(tx txn) error {
			verdict, expiredNow = nil, false
			var (
				held heldStock
				err  error
			)
			if r, held, err = s.loadHeld(tx, id); err != nil {
				return err
			}
			if due(r, now) {
				if err := s.settleInTx(tx, &r, held, ReservationExpired, now); err != nil {
					return err
				}
				expiredNow = true
			}
			to, v := decide(r)
			verdict = v
			if to == "" {
				return nil
			}
			return s.settleInTx(tx, &r, held, to, now)
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
			return s.applyStock(tx, now, []stockChange{
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
