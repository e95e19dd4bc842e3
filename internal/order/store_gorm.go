package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/outbox"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/tax"
)

// orderRow is the orders table; domain types never carry gorm tags.
type orderRow struct {
	ID             string `gorm:"primaryKey"`
	SagaID         string
	CustomerID     string
	LocationID     string
	PaymentID      string
	ReservationID  string
	Status         string
	ShipName       string
	ShipLine1      string `gorm:"column:ship_line1"`
	ShipLine2      string `gorm:"column:ship_line2"`
	ShipCity       string
	ShipProvince   string
	ShipPostalCode string
	ShipCountry    string
	SubtotalCents  int64
	Taxes          string
	TaxCents       int64
	TotalCents     int64
	Currency       string
	Version        int
	CreatedAt      time.Time
	UpdatedAt      time.Time
	ConfirmedAt    *time.Time
	ShippedAt      *time.Time
	DeliveredAt    *time.Time
	CancelledAt    *time.Time
}

func (orderRow) TableName() string { return "orders" }

// lineRow is the order_lines table.
type lineRow struct {
	OrderID        string `gorm:"primaryKey"`
	LineNo         int    `gorm:"primaryKey"`
	ProductID      string
	SKU            string `gorm:"column:sku"`
	Name           string
	UnitPriceCents int64
	Quantity       int
	LineTotalCents int64
}

func (lineRow) TableName() string { return "order_lines" }

func toRow(o Order) (orderRow, error) {
	taxes, err := json.Marshal(o.Taxes)
	if err != nil {
		return orderRow{}, fmt.Errorf("encode taxes: %w", err)
	}
	a := o.ShippingAddress
	return orderRow{
		ID: o.ID, SagaID: o.SagaID, CustomerID: o.CustomerID, LocationID: o.LocationID, PaymentID: o.PaymentID,
		ReservationID: o.ReservationID, Status: string(o.Status),
		ShipName: a.Name, ShipLine1: a.Line1, ShipLine2: a.Line2, ShipCity: a.City, ShipProvince: a.Province,
		ShipPostalCode: a.PostalCode, ShipCountry: a.Country,
		SubtotalCents: o.SubtotalCents, Taxes: string(taxes), TaxCents: o.TaxCents, TotalCents: o.TotalCents,
		Currency: o.Currency, Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
		ConfirmedAt: o.ConfirmedAt, ShippedAt: o.ShippedAt, DeliveredAt: o.DeliveredAt, CancelledAt: o.CancelledAt,
	}, nil
}

func (r orderRow) domain(lines []lineRow) (Order, error) {
	var taxes []tax.TaxLine
	if err := json.Unmarshal([]byte(r.Taxes), &taxes); err != nil {
		return Order{}, fmt.Errorf("decode taxes of order %s: %w", r.ID, err)
	}
	if taxes == nil {
		taxes = []tax.TaxLine{}
	}
	o := Order{
		ID: r.ID, SagaID: r.SagaID, CustomerID: r.CustomerID, LocationID: r.LocationID, PaymentID: r.PaymentID,
		ReservationID: r.ReservationID, Status: Status(r.Status),
		ShippingAddress: ShippingAddress{Name: r.ShipName, Line1: r.ShipLine1, Line2: r.ShipLine2, City: r.ShipCity,
			Province: r.ShipProvince, PostalCode: r.ShipPostalCode, Country: r.ShipCountry},
		SubtotalCents: r.SubtotalCents, Taxes: taxes, TaxCents: r.TaxCents, TotalCents: r.TotalCents,
		Currency: r.Currency, Version: r.Version, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		ConfirmedAt: utc(r.ConfirmedAt), ShippedAt: utc(r.ShippedAt), DeliveredAt: utc(r.DeliveredAt),
		CancelledAt: utc(r.CancelledAt), Lines: make([]OrderLine, len(lines)),
	}
	for i, l := range lines {
		o.Lines[i] = OrderLine{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, UnitPriceCents: l.UnitPriceCents,
			Quantity: l.Quantity, LineTotalCents: l.LineTotalCents}
	}
	return o, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

type store struct {
	db *gorm.DB
	// oneStatement: the engine (PostgreSQL) takes an order's creation as
	// one statement (see insertInOneStatement).
	oneStatement bool
}

// errNoChange lets a transition say "already there: write nothing".
var errNoChange = errors.New("order: no change")

// create inserts a new order and its lines in one transaction. When the
// saga already has an order (the unique saga_id), it answers that one
// with found set instead.
//
// This is the birth of a confirmed order: the OrderConfirmed outbox write
// belongs in this transaction.
func (s *store) create(ctx context.Context, o Order) (Order, bool, error) {
	row, err := toRow(o)
	if err != nil {
		return Order{}, false, err
	}
	lines := make([]lineRow, len(o.Lines))
	for i, l := range o.Lines {
		lines[i] = lineRow{OrderID: o.ID, LineNo: i + 1, ProductID: l.ProductID, SKU: l.SKU, Name: l.Name,
			UnitPriceCents: l.UnitPriceCents, Quantity: l.Quantity, LineTotalCents: l.LineTotalCents}
	}
	if s.oneStatement {
		err = s.insertInOneStatement(ctx, o, row, lines)
	} else {
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&row).Error; err != nil {
				return err
			}
			if err := tx.Create(&lines).Error; err != nil {
				return err
			}
			if o.Status == StatusConfirmed {
				return publish(tx, OrderConfirmedEvent, o)
			}
			return nil
		})
	}
	switch {
	case err == nil:
		return o, false, nil
	case db.IsUniqueViolation(err):
		existing, gerr := s.bySaga(ctx, o.SagaID)
		if gerr != nil {
			return Order{}, false, gerr
		}
		return existing, true, nil
	case db.IsCheckViolation(err):
		return Order{}, false, fmt.Errorf("order for saga %s breaks a rule of its amounts: %w (%v)", o.SagaID, errs.Invalid, err)
	default:
		return Order{}, false, fmt.Errorf("insert order: %w", err)
	}
}

// insertInOneStatement is create's write as one PostgreSQL statement: the
// order, its lines and (when it is confirmed) its event in data-modifying
// CTEs, which commit together or fail together (a second order of one
// saga fails on saga_id, as in the transaction). Creating the order is a
// step of every checkout; as a transaction it took BEGIN, three inserts
// and COMMIT, each a round trip.
func (s *store) insertInOneStatement(ctx context.Context, o Order, row orderRow, lines []lineRow) error {
	var q strings.Builder
	q.WriteString(`WITH o AS (INSERT INTO orders (id, saga_id, customer_id, location_id, payment_id, reservation_id, status,
 ship_name, ship_line1, ship_line2, ship_city, ship_province, ship_postal_code, ship_country, subtotal_cents, taxes,
 tax_cents, total_cents, currency, version, created_at, updated_at, confirmed_at, shipped_at, delivered_at, cancelled_at)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id)`)
	args := []any{row.ID, row.SagaID, row.CustomerID, row.LocationID, row.PaymentID, row.ReservationID, row.Status,
		row.ShipName, row.ShipLine1, row.ShipLine2, row.ShipCity, row.ShipProvince, row.ShipPostalCode, row.ShipCountry,
		row.SubtotalCents, row.Taxes, row.TaxCents, row.TotalCents, row.Currency, row.Version, row.CreatedAt, row.UpdatedAt,
		row.ConfirmedAt, row.ShippedAt, row.DeliveredAt, row.CancelledAt}
	if len(lines) > 0 {
		// The lines' foreign key is checked at the end of the statement,
		// when the order is there.
		q.WriteString(`, l AS (INSERT INTO order_lines (order_id, line_no, product_id, sku, name, unit_price_cents, quantity,
 line_total_cents) VALUES ` + db.Tuples("(?, ?, ?, ?, ?, ?, ?, ?)", len(lines)) + `)`)
		for _, l := range lines {
			args = append(args, l.OrderID, l.LineNo, l.ProductID, l.SKU, l.Name, l.UnitPriceCents, l.Quantity, l.LineTotalCents)
		}
	}
	if o.Status == StatusConfirmed {
		env, err := orderEvent(ctx, OrderConfirmedEvent, o)
		if err != nil {
			return err
		}
		vals, err := outbox.Values(env)
		if err != nil {
			return err
		}
		q.WriteString(`, ob AS (INSERT INTO outbox (` + outbox.Columns + `) VALUES (?, ?, ?, ?, ?))`)
		args = append(args, vals[0]...)
	}
	q.WriteString(` SELECT id FROM o`)
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	_, err = sqlDB.ExecContext(ctx, db.Rebind(db.Postgres, q.String()), args...)
	return err
}

func (s *store) bySaga(ctx context.Context, sagaID string) (Order, error) {
	var row orderRow
	err := s.db.WithContext(ctx).Where("saga_id = ?", sagaID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Order{}, fmt.Errorf("order of saga %q: %w", sagaID, errs.NotFound)
	}
	if err != nil {
		return Order{}, fmt.Errorf("get order of saga: %w", err)
	}
	return s.withLines(ctx, s.db.WithContext(ctx), row)
}

// order reads an order with its lines in one query (every shopper reads
// their new order back; two queries were two round trips). An order
// without lines, which the service never creates, or none at all, is read
// the long way, which tells them apart.
func (s *store) order(ctx context.Context, id string) (Order, error) {
	var rows []struct {
		Order orderRow `gorm:"embedded"`
		Line  lineRow  `gorm:"embedded;embeddedPrefix:l_"`
	}
	err := s.db.WithContext(ctx).Raw(`SELECT o.*, l.order_id AS l_order_id, l.line_no AS l_line_no, l.product_id AS l_product_id,
		l.sku AS l_sku, l.name AS l_name, l.unit_price_cents AS l_unit_price_cents, l.quantity AS l_quantity,
		l.line_total_cents AS l_line_total_cents
		FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE o.id = ? ORDER BY l.line_no`, id).Scan(&rows).Error
	if err != nil {
		return Order{}, fmt.Errorf("get order: %w", err)
	}
	if len(rows) == 0 {
		return s.orderTx(ctx, s.db.WithContext(ctx), id)
	}
	lines := make([]lineRow, len(rows))
	for i, r := range rows {
		lines[i] = r.Line
	}
	return rows[0].Order.domain(lines)
}

func (s *store) orderTx(ctx context.Context, tx *gorm.DB, id string) (Order, error) {
	var row orderRow
	err := tx.Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Order{}, fmt.Errorf("order %q: %w", id, errs.NotFound)
	}
	if err != nil {
		return Order{}, fmt.Errorf("get order: %w", err)
	}
	return s.withLines(ctx, tx, row)
}

func (s *store) withLines(_ context.Context, tx *gorm.DB, row orderRow) (Order, error) {
	var lines []lineRow
	if err := tx.Where("order_id = ?", row.ID).Order("line_no").Find(&lines).Error; err != nil {
		return Order{}, fmt.Errorf("get order lines: %w", err)
	}
	return row.domain(lines)
}

func (s *store) list(ctx context.Context, f Filter) (page.Result[Order], error) {
	q := s.db.WithContext(ctx).Model(&orderRow{})
	if f.CustomerID != "" {
		q = q.Where("customer_id = ?", f.CustomerID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", string(f.Status))
	}
	if f.SagaID != "" {
		q = q.Where("saga_id = ?", f.SagaID)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[Order]{}, fmt.Errorf("count orders: %w", err)
	}
	out := []Order{}
	if total == 0 {
		return page.Result[Order]{Items: out, Total: 0}, nil
	}
	var rows []orderRow
	if err := q.Order("created_at DESC, id DESC").Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error; err != nil {
		return page.Result[Order]{}, fmt.Errorf("list orders: %w", err)
	}
	if len(rows) == 0 {
		return page.Result[Order]{Items: out, Total: total}, nil
	}
	// One query for the lines of the whole page, not one per order.
	idsOf := make([]string, len(rows))
	for i, r := range rows {
		idsOf[i] = r.ID
	}
	var lines []lineRow
	if err := s.db.WithContext(ctx).Where("order_id IN ?", idsOf).Order("order_id, line_no").Find(&lines).Error; err != nil {
		return page.Result[Order]{}, fmt.Errorf("list order lines: %w", err)
	}
	byOrder := map[string][]lineRow{}
	for _, l := range lines {
		byOrder[l.OrderID] = append(byOrder[l.OrderID], l)
	}
	for _, r := range rows {
		o, err := r.domain(byOrder[r.ID])
		if err != nil {
			return page.Result[Order]{}, err
		}
		out = append(out, o)
	}
	return page.Result[Order]{Items: out, Total: total}, nil
}

// transition is the one place an order's status changes: it reads the
// order, lets change decide (errNoChange: already there), and writes it
// back conditional on the version read, in one transaction. The outbox
// write of the event a transition publishes (OrderCancelled, fulfilment
// events) joins this transaction, so an event is recorded exactly when its
// state change is.
func (s *store) transition(ctx context.Context, id string, change func(o *Order, now time.Time) error, now func() time.Time) (Order, error) {
	// A concurrent writer between our read and write makes the conditional
	// update miss; reading again lets the change see what it did (an
	// idempotent repeat then succeeds instead of failing).
	for range 3 {
		out, err := s.transitionOnce(ctx, id, change, now)
		if !errors.Is(err, errRaced) {
			return out, err
		}
	}
	return Order{}, fmt.Errorf("order %s keeps changing concurrently; retry: %w", id, errs.Conflict)
}

// errRaced: the version read is no longer the stored one.
var errRaced = errors.New("order: changed concurrently")

func (s *store) transitionOnce(ctx context.Context, id string, change func(o *Order, now time.Time) error, now func() time.Time) (Order, error) {
	var out Order
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		o, err := s.orderTx(ctx, tx, id)
		if err != nil {
			return err
		}
		at := now()
		if err := change(&o, at); err != nil {
			if errors.Is(err, errNoChange) {
				out = o
			}
			return err
		}
		prev := o.Version
		o.Version++
		o.UpdatedAt = at
		row, err := toRow(o)
		if err != nil {
			return err
		}
		res := tx.Model(&orderRow{}).Where("id = ? AND version = ?", id, prev).
			Select("status", "version", "updated_at", "shipped_at", "delivered_at", "cancelled_at").Updates(&row)
		if res.Error != nil {
			return fmt.Errorf("update order: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return errRaced
		}
		out = o
		if o.Status == StatusCancelled {
			return publish(tx, OrderCancelledEvent, o)
		}
		return nil
	})
	if errors.Is(err, errNoChange) {
		return out, nil
	}
	if err != nil {
		return Order{}, err
	}
	return out, nil
}

// totals counts and sums orders by status in one grouped query.
func (s *store) totals(ctx context.Context, currency string) (OrderTotals, error) {
	var rows []struct {
		Status string
		N      int64
		Cents  int64
	}
	err := s.db.WithContext(ctx).Model(&orderRow{}).Select("status, COUNT(*) AS n, COALESCE(SUM(total_cents), 0) AS cents").
		Where("currency = ?", currency).Group("status").Scan(&rows).Error
	if err != nil {
		return OrderTotals{}, fmt.Errorf("order totals: %w", err)
	}
	t := OrderTotals{Currency: currency, ByStatus: map[Status]int64{}}
	for _, st := range Statuses {
		t.ByStatus[st] = 0
	}
	for _, r := range rows {
		st := Status(r.Status)
		t.ByStatus[st] = r.N
		switch {
		case st.Paid():
			t.PaidCount += r.N
			t.PaidCents += r.Cents
		case st == StatusCancelled:
			t.CancelledCount += r.N
			t.CancelledCents += r.Cents
		}
	}
	return t, nil
}
