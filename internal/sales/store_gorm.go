package sales

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/tax"
)

// Row types are the tables; domain types never carry gorm tags.

type registerRow struct {
	ID         string `gorm:"primaryKey"`
	LocationID string
	Name       string
	CreatedAt  time.Time
}

// TableName maps the row type to its table for gorm.
func (registerRow) TableName() string { return "registers" }

func (r registerRow) domain() Register {
	return Register{ID: r.ID, LocationID: r.LocationID, Name: r.Name, CreatedAt: r.CreatedAt.UTC()}
}

type sessionRow struct {
	ID                string `gorm:"primaryKey"`
	RegisterID        string
	LocationID        string
	CashierID         string
	Status            string
	OpeningFloatCents int64
	CountedCashCents  *int64
	Report            *string
	OpenedAt          time.Time
	ClosedAt          *time.Time
	UpdatedAt         time.Time
}

// TableName maps the row type to its table for gorm.
func (sessionRow) TableName() string { return "register_sessions" }

func (r sessionRow) domain() (RegisterSession, error) {
	s := RegisterSession{ID: r.ID, RegisterID: r.RegisterID, LocationID: r.LocationID, CashierID: r.CashierID,
		Status: r.Status, OpeningFloatCents: r.OpeningFloatCents, CountedCashCents: r.CountedCashCents,
		OpenedAt: r.OpenedAt.UTC()}
	if r.ClosedAt != nil {
		t := r.ClosedAt.UTC()
		s.ClosedAt = &t
	}
	if r.Report != nil {
		var rep ZReport
		if err := json.Unmarshal([]byte(*r.Report), &rep); err != nil {
			return RegisterSession{}, fmt.Errorf("decode the Z report of session %s: %w", r.ID, err)
		}
		s.Report = &rep
	}
	return s, nil
}

type saleRow struct {
	ID                string `gorm:"primaryKey"`
	Status            string
	VoidReason        string
	StockToRestore    bool
	Version           int
	LocationID        string
	StoreName         string
	StoreAddress      string
	Province          string
	RegisterID        string
	SessionID         string
	CashierID         string
	IdempotencyKey    *string
	RequestHash       string
	Currency          string
	GrossCents        int64
	DiscountCents     int64
	SubtotalCents     int64
	TaxCents          int64
	TotalCents        int64
	CashCents         int64
	CardCents         int64
	ChangeCents       int64
	RefundedCashCents int64
	RefundedCardCents int64
	CreatedAt         time.Time
	CompletedAt       *time.Time
	UpdatedAt         time.Time
}

// TableName maps the row type to its table for gorm.
func (saleRow) TableName() string { return "sales" }

type saleLineRow struct {
	SaleID           string `gorm:"primaryKey"`
	LineNo           int    `gorm:"primaryKey"`
	ProductID        string
	SKU              string `gorm:"column:sku"`
	Name             string
	UnitPriceCents   int64
	Quantity         int64
	DiscountPercent  int
	GrossCents       int64
	DiscountCents    int64
	NetCents         int64
	TaxCents         int64
	ReturnedQuantity int64
}

// TableName maps the row type to its table for gorm.
func (saleLineRow) TableName() string { return "sale_lines" }

// taxRow is one tax of one line, of a sale or of a return.
type taxRow struct {
	OwnerID     string
	LineNo      int
	Position    int
	Name        string
	RatePPM     int64 `gorm:"column:rate_ppm"`
	AmountCents int64
}

func (r taxRow) domain() SaleTax {
	return SaleTax{Name: r.Name, Rate: tax.Rate{Name: r.Name, PPM: r.RatePPM}.Text(), RatePPM: r.RatePPM, AmountCents: r.AmountCents}
}

type salePaymentRow struct {
	SaleID      string `gorm:"primaryKey"`
	Seq         int    `gorm:"primaryKey"`
	Method      string
	AmountCents int64
}

// TableName maps the row type to its table for gorm.
func (salePaymentRow) TableName() string { return "sale_payments" }

type returnRow struct {
	ID              string `gorm:"primaryKey"`
	SaleID          string
	RegisterID      string
	SessionID       string
	LocationID      string
	Reason          string
	IdempotencyKey  *string
	RequestHash     string
	Currency        string
	SubtotalCents   int64
	TaxCents        int64
	TotalCents      int64
	RefundCashCents int64
	RefundCardCents int64
	Restocked       bool
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// TableName maps the row type to its table for gorm.
func (returnRow) TableName() string { return "returns" }

type returnLineRow struct {
	ReturnID      string `gorm:"primaryKey"`
	LineNo        int    `gorm:"primaryKey"`
	SaleLineNo    int
	ProductID     string
	SKU           string `gorm:"column:sku"`
	Name          string
	Quantity      int64
	SubtotalCents int64
	TaxCents      int64
}

// TableName maps the row type to its table for gorm.
func (returnLineRow) TableName() string { return "return_lines" }

type store struct{ db *gorm.DB }

// Sentinels the service turns into answers.
var (
	// errSessionNotOpen: the session closed between the caller's read and
	// its write.
	errSessionNotOpen = errors.New("the register session is not open")
	// errDuplicateKey: the idempotency key is taken (a concurrent twin won
	// the insert); the caller reads the winner.
	errDuplicateKey = errors.New("idempotency key already used")
	// errPendingSales: a session cannot close while a sale is in flight.
	errPendingSales = errors.New("sales in flight")
)

// inTx runs fn in a transaction, retried on contention (db.InTx).
func (s *store) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return db.InTx(ctx, s.db, fn)
}

// dbErr wraps an unexpected database error. A CHECK violation is the schema
// refusing to break an invariant (more refunded than paid, more returned
// than sold): a conflict with the state, not a crash.
func dbErr(what string, err error) error {
	if db.IsCheckViolation(err) {
		return fmt.Errorf("%s: an invariant refused the write: %w (%v)", what, errs.Conflict, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Registers.

func (s *store) insertRegister(ctx context.Context, r Register) error {
	row := registerRow{ID: r.ID, LocationID: r.LocationID, Name: r.Name, CreatedAt: r.CreatedAt}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		if db.IsUniqueViolation(err) {
			return errDuplicateKey
		}
		return dbErr("insert register", err)
	}
	return nil
}

func (s *store) register(ctx context.Context, id string) (Register, error) {
	var row registerRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Register{}, fmt.Errorf("register %q: %w", id, errs.NotFound)
	}
	if err != nil {
		return Register{}, dbErr("get register", err)
	}
	return row.domain(), nil
}

func (s *store) countRegisters(ctx context.Context, locationID string) (int64, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&registerRow{}).Where("location_id = ?", locationID).Count(&n).Error; err != nil {
		return 0, dbErr("count registers", err)
	}
	return n, nil
}

func (s *store) listRegisters(ctx context.Context, f RegisterFilter) (page.Result[Register], error) {
	q := s.db.WithContext(ctx).Model(&registerRow{})
	if f.LocationID != "" {
		q = q.Where("location_id = ?", f.LocationID)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[Register]{}, dbErr("count registers", err)
	}
	var rows []registerRow
	if total > 0 {
		if err := q.Order("id").Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error; err != nil {
			return page.Result[Register]{}, dbErr("list registers", err)
		}
	}
	out := make([]Register, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return page.Result[Register]{Items: out, Total: total}, nil
}

// Sessions.

// insertSession opens a session. The partial unique index on open
// sessions refuses a second one for the register, whatever raced.
func (s *store) insertSession(ctx context.Context, ss RegisterSession) error {
	row := sessionRow{ID: ss.ID, RegisterID: ss.RegisterID, LocationID: ss.LocationID, CashierID: ss.CashierID,
		Status: SessionOpen, OpeningFloatCents: ss.OpeningFloatCents, OpenedAt: ss.OpenedAt, UpdatedAt: ss.OpenedAt}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		if db.IsUniqueViolation(err) {
			return errDuplicateKey
		}
		return dbErr("insert session", err)
	}
	return nil
}

func (s *store) session(ctx context.Context, id string) (RegisterSession, error) {
	var row sessionRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return RegisterSession{}, fmt.Errorf("session %q: %w", id, errs.NotFound)
	}
	if err != nil {
		return RegisterSession{}, dbErr("get session", err)
	}
	return row.domain()
}

// openSessionOf returns the register's open session, errs.NotFound when
// it has none.
func (s *store) openSessionOf(ctx context.Context, registerID string) (RegisterSession, error) {
	var row sessionRow
	err := s.db.WithContext(ctx).Where("register_id = ? AND status = ?", registerID, SessionOpen).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return RegisterSession{}, fmt.Errorf("register %s has no open session: %w", registerID, errs.NotFound)
	}
	if err != nil {
		return RegisterSession{}, dbErr("get open session", err)
	}
	return row.domain()
}

// lockOpenSession touches the session row on the condition that it is
// open. On PostgreSQL the UPDATE takes the row lock, so a close and the
// writes that need an open session (a pending sale, a return) are
// serialised on it; SQLite serialises every writing transaction anyway.
func lockOpenSession(tx *gorm.DB, sessionID string, now time.Time) error {
	res := tx.Exec(`UPDATE register_sessions SET updated_at = ? WHERE id = ? AND status = ?`, now, sessionID, SessionOpen)
	if res.Error != nil {
		return dbErr("lock session", res.Error)
	}
	if res.RowsAffected == 0 {
		return errSessionNotOpen
	}
	return nil
}

// closeSession closes an open session and fixes its Z report, in one
// transaction: the status change takes the session's lock first, so no
// sale or return can join the session after the report is computed, and
// a sale still pending makes the whole close roll back (errPendingSales).
func (s *store) closeSession(ctx context.Context, ss RegisterSession, counted int64, now time.Time) (RegisterSession, error) {
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE register_sessions SET status = ?, counted_cash_cents = ?, closed_at = ?, updated_at = ?
			WHERE id = ? AND status = ?`, SessionClosed, counted, now, now, ss.ID, SessionOpen)
		if res.Error != nil {
			return dbErr("close session", res.Error)
		}
		if res.RowsAffected == 0 {
			return errSessionNotOpen
		}
		var pending int64
		if err := tx.Model(&saleRow{}).Where("session_id = ? AND status = ?", ss.ID, StatusPending).Count(&pending).Error; err != nil {
			return dbErr("count pending sales", err)
		}
		if pending > 0 {
			return errPendingSales
		}
		closed := ss
		closed.Status, closed.ClosedAt, closed.CountedCashCents = SessionClosed, &now, &counted
		rep, err := zReport(tx, closed)
		if err != nil {
			return err
		}
		raw, err := json.Marshal(rep)
		if err != nil {
			return fmt.Errorf("encode Z report: %w", err)
		}
		if err := tx.Exec(`UPDATE register_sessions SET report = ? WHERE id = ?`, string(raw), ss.ID).Error; err != nil {
			return dbErr("store Z report", err)
		}
		return nil
	})
	if err != nil {
		return RegisterSession{}, err
	}
	return s.session(ctx, ss.ID)
}

// zReport computes a session's figures from its completed sales and its
// returns, with SQL sums (independent of the Go code that priced them).
func zReport(q *gorm.DB, ss RegisterSession) (ZReport, error) {
	var sales struct {
		N, Gross, Discount, Tax, Total, Cash, Card, ChangeGiven int64
	}
	err := q.Raw(`SELECT COUNT(*) AS n, COALESCE(SUM(gross_cents), 0) AS gross, COALESCE(SUM(discount_cents), 0) AS discount,
			COALESCE(SUM(tax_cents), 0) AS tax, COALESCE(SUM(total_cents), 0) AS total, COALESCE(SUM(cash_cents), 0) AS cash,
			COALESCE(SUM(card_cents), 0) AS card, COALESCE(SUM(change_cents), 0) AS change_given
		FROM sales WHERE session_id = ? AND status = ?`, ss.ID, StatusCompleted).Scan(&sales).Error
	if err != nil {
		return ZReport{}, dbErr("sum sales", err)
	}
	var rets struct {
		N, Subtotal, Tax, Total, Cash, Card int64
	}
	err = q.Raw(`SELECT COUNT(*) AS n, COALESCE(SUM(subtotal_cents), 0) AS subtotal, COALESCE(SUM(tax_cents), 0) AS tax,
			COALESCE(SUM(total_cents), 0) AS total, COALESCE(SUM(refund_cash_cents), 0) AS cash,
			COALESCE(SUM(refund_card_cents), 0) AS card
		FROM returns WHERE session_id = ?`, ss.ID).Scan(&rets).Error
	if err != nil {
		return ZReport{}, dbErr("sum returns", err)
	}
	type taxSum struct {
		Name     string
		RatePPM  int64 `gorm:"column:rate_ppm"`
		Position int
		Amount   int64
	}
	var collected, refunded []taxSum
	err = q.Raw(`SELECT t.name AS name, t.rate_ppm AS rate_ppm, MIN(t.position) AS position, SUM(t.amount_cents) AS amount
		FROM sale_line_taxes t JOIN sales s ON s.id = t.sale_id
		WHERE s.session_id = ? AND s.status = ? GROUP BY t.name, t.rate_ppm ORDER BY position, name`, ss.ID, StatusCompleted).Scan(&collected).Error
	if err != nil {
		return ZReport{}, dbErr("sum sale taxes", err)
	}
	err = q.Raw(`SELECT t.name AS name, t.rate_ppm AS rate_ppm, MIN(t.position) AS position, SUM(t.amount_cents) AS amount
		FROM return_line_taxes t JOIN returns r ON r.id = t.return_id
		WHERE r.session_id = ? GROUP BY t.name, t.rate_ppm ORDER BY position, name`, ss.ID).Scan(&refunded).Error
	if err != nil {
		return ZReport{}, dbErr("sum return taxes", err)
	}
	rep := ZReport{
		SessionID: ss.ID, RegisterID: ss.RegisterID, LocationID: ss.LocationID, CashierID: ss.CashierID,
		Currency: DefaultCurrency, SalesCount: sales.N, ReturnsCount: rets.N,
		GrossSalesCents: sales.Gross, DiscountCents: sales.Discount, ReturnsCents: rets.Subtotal,
		NetSalesCents: sales.Gross - sales.Discount - rets.Subtotal,
		TaxCents:      sales.Tax - rets.Tax, Taxes: []ZTax{},
		SalesTotalCents: sales.Total, RefundsTotalCents: rets.Total, TotalCents: sales.Total - rets.Total,
		Tenders: []ZTender{
			{Method: MethodCash, TakenCents: sales.Cash, RefundedCents: rets.Cash, NetCents: sales.Cash - sales.ChangeGiven - rets.Cash},
			{Method: MethodCard, TakenCents: sales.Card, RefundedCents: rets.Card, NetCents: sales.Card - rets.Card},
		},
		ChangeGivenCents:  sales.ChangeGiven,
		OpeningFloatCents: ss.OpeningFloatCents,
		ExpectedCashCents: ss.OpeningFloatCents + sales.Cash - sales.ChangeGiven - rets.Cash,
		OpenedAt:          ss.OpenedAt,
		ClosedAt:          ss.ClosedAt,
	}
	// One entry per (tax, rate): a return of another province's sale
	// brings its own taxes into this session.
	find := func(name string, ppm int64) *ZTax {
		for i := range rep.Taxes {
			if rep.Taxes[i].Name == name && rep.Taxes[i].RatePPM == ppm {
				return &rep.Taxes[i]
			}
		}
		rep.Taxes = append(rep.Taxes, ZTax{Name: name, RatePPM: ppm, Rate: tax.Rate{Name: name, PPM: ppm}.Text()})
		return &rep.Taxes[len(rep.Taxes)-1]
	}
	for _, t := range collected {
		find(t.Name, t.RatePPM).CollectedCents += t.Amount
	}
	for _, t := range refunded {
		find(t.Name, t.RatePPM).RefundedCents += t.Amount
	}
	for i := range rep.Taxes {
		rep.Taxes[i].NetCents = rep.Taxes[i].CollectedCents - rep.Taxes[i].RefundedCents
	}
	if ss.CountedCashCents != nil {
		counted := *ss.CountedCashCents
		overShort := counted - rep.ExpectedCashCents
		rep.CountedCashCents, rep.OverShortCents = &counted, &overShort
	}
	return rep, nil
}

// liveReport is the running report of an open session.
func (s *store) liveReport(ctx context.Context, ss RegisterSession) (ZReport, error) {
	return zReport(s.db.WithContext(ctx), ss)
}

// Sales.

// insertPendingSale writes a sale as pending, with its lines, taxes and
// tender, on the condition that its session is open (errSessionNotOpen
// otherwise). A taken idempotency key is errDuplicateKey.
func (s *store) insertPendingSale(ctx context.Context, sale Sale, key, hash string) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		if err := lockOpenSession(tx, sale.SessionID, sale.CreatedAt); err != nil {
			return err
		}
		row := saleRow{
			ID: sale.ID, Status: StatusPending, Version: 1, LocationID: sale.LocationID, StoreName: sale.StoreName,
			StoreAddress: sale.StoreAddress, Province: sale.Province, RegisterID: sale.RegisterID, SessionID: sale.SessionID,
			CashierID: sale.CashierID, RequestHash: hash, Currency: sale.Currency, GrossCents: sale.GrossCents,
			DiscountCents: sale.DiscountCents, SubtotalCents: sale.SubtotalCents, TaxCents: sale.TaxCents,
			TotalCents: sale.TotalCents, CashCents: sale.cashCents(), CardCents: sale.cardCents(), ChangeCents: sale.ChangeCents,
			CreatedAt: sale.CreatedAt, UpdatedAt: sale.CreatedAt,
		}
		if key != "" {
			row.IdempotencyKey = &key
		}
		if err := tx.Create(&row).Error; err != nil {
			if db.IsUniqueViolation(err) {
				return errDuplicateKey
			}
			return dbErr("insert sale", err)
		}
		lines := make([]saleLineRow, len(sale.Lines))
		var taxes []map[string]any
		for i, l := range sale.Lines {
			lines[i] = saleLineRow{SaleID: sale.ID, LineNo: l.LineNo, ProductID: l.ProductID, SKU: l.SKU, Name: l.Name,
				UnitPriceCents: l.UnitPriceCents, Quantity: l.Quantity, DiscountPercent: l.DiscountPercent,
				GrossCents: l.GrossCents, DiscountCents: l.DiscountCents, NetCents: l.NetCents, TaxCents: l.TaxCents}
			for j, t := range l.Taxes {
				taxes = append(taxes, map[string]any{"sale_id": sale.ID, "line_no": l.LineNo, "position": j + 1,
					"name": t.Name, "rate_ppm": t.RatePPM, "amount_cents": t.AmountCents})
			}
		}
		if err := tx.Create(&lines).Error; err != nil {
			return dbErr("insert sale lines", err)
		}
		if len(taxes) > 0 {
			if err := tx.Table("sale_line_taxes").Create(taxes).Error; err != nil {
				return dbErr("insert sale taxes", err)
			}
		}
		if len(sale.Payments) > 0 {
			pays := make([]salePaymentRow, len(sale.Payments))
			for i, p := range sale.Payments {
				pays[i] = salePaymentRow{SaleID: sale.ID, Seq: i + 1, Method: p.Method, AmountCents: p.AmountCents}
			}
			if err := tx.Create(&pays).Error; err != nil {
				return dbErr("insert sale payments", err)
			}
		}
		return nil
	})
}

// completeSale marks a pending sale completed, in one transaction: the
// one place a sale becomes a sale. The SaleCompleted event will be added
// to the outbox here, in this transaction, so that the event and the state
// commit together. False when the sale was not pending (another caller
// settled it first).
func (s *store) completeSale(ctx context.Context, id string, now time.Time) (bool, error) {
	var done bool
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE sales SET status = ?, completed_at = ?, version = version + 1, updated_at = ?
			WHERE id = ? AND status = ?`, StatusCompleted, now, now, id, StatusPending)
		if res.Error != nil {
			return dbErr("complete sale", res.Error)
		}
		done = res.RowsAffected == 1
		if !done {
			return nil
		}
		return publishSaleCompleted(tx, id, now)
	})
	return done, err
}

// voidSale marks a pending sale voided with why. False when it was not
// pending.
func (s *store) voidSale(ctx context.Context, id, reason string, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`UPDATE sales SET status = ?, void_reason = ?, version = version + 1, updated_at = ?
		WHERE id = ? AND status = ?`, StatusVoided, reason, now, id, StatusPending)
	if res.Error != nil {
		return false, dbErr("void sale", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// setStockToRestore records (or clears) that a voided sale's stock left
// the store and must be put back; Resume finishes what a crash interrupts.
func (s *store) setStockToRestore(ctx context.Context, id string, on bool, now time.Time) error {
	err := s.db.WithContext(ctx).Exec(`UPDATE sales SET stock_to_restore = ?, updated_at = ? WHERE id = ? AND status = ?`,
		on, now, id, StatusVoided).Error
	if err != nil {
		return dbErr("flag stock to restore", err)
	}
	return nil
}

// sale loads one sale with its lines, taxes and tender.
func (s *store) sale(ctx context.Context, id string) (Sale, error) {
	return loadSale(s.db.WithContext(ctx), id)
}

func loadSale(q *gorm.DB, id string) (Sale, error) {
	var row saleRow
	err := q.Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Sale{}, fmt.Errorf("sale %q: %w", id, errs.NotFound)
	}
	if err != nil {
		return Sale{}, dbErr("get sale", err)
	}
	out, err := assembleSales(q, []saleRow{row})
	if err != nil {
		return Sale{}, err
	}
	return out[0], nil
}

// saleByKey finds the sale a register made under an idempotency key, with
// the hash of the request that made it.
func (s *store) saleByKey(ctx context.Context, registerID, key string) (Sale, string, error) {
	var row saleRow
	err := s.db.WithContext(ctx).Where("register_id = ? AND idempotency_key = ?", registerID, key).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Sale{}, "", fmt.Errorf("no sale under key %q: %w", key, errs.NotFound)
	}
	if err != nil {
		return Sale{}, "", dbErr("find sale by key", err)
	}
	out, err := assembleSales(s.db.WithContext(ctx), []saleRow{row})
	if err != nil {
		return Sale{}, "", err
	}
	return out[0], row.RequestHash, nil
}

// assembleSales loads the lines, taxes and tender of rows: three queries
// whatever the number of sales.
func assembleSales(q *gorm.DB, rows []saleRow) ([]Sale, error) {
	if len(rows) == 0 {
		return []Sale{}, nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	var lines []saleLineRow
	if err := q.Session(&gorm.Session{NewDB: true}).Where("sale_id IN ?", ids).Order("sale_id, line_no").Find(&lines).Error; err != nil {
		return nil, dbErr("get sale lines", err)
	}
	var taxes []taxRow
	if err := q.Session(&gorm.Session{NewDB: true}).Table("sale_line_taxes").
		Select("sale_id AS owner_id, line_no, position, name, rate_ppm, amount_cents").
		Where("sale_id IN ?", ids).Order("sale_id, line_no, position").Scan(&taxes).Error; err != nil {
		return nil, dbErr("get sale taxes", err)
	}
	var pays []salePaymentRow
	if err := q.Session(&gorm.Session{NewDB: true}).Where("sale_id IN ?", ids).Order("sale_id, seq").Find(&pays).Error; err != nil {
		return nil, dbErr("get sale payments", err)
	}
	lineTaxes := groupTaxes(taxes)
	linesOf := map[string][]SaleLine{}
	for _, l := range lines {
		lt := lineTaxes.of(l.SaleID, l.LineNo)
		linesOf[l.SaleID] = append(linesOf[l.SaleID], SaleLine{
			LineNo: l.LineNo, ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, UnitPriceCents: l.UnitPriceCents,
			Quantity: l.Quantity, DiscountPercent: l.DiscountPercent, GrossCents: l.GrossCents,
			DiscountCents: l.DiscountCents, NetCents: l.NetCents, TaxCents: l.TaxCents, Taxes: lt,
			ReturnedQuantity: l.ReturnedQuantity,
		})
	}
	paysOf := map[string][]Tender{}
	for _, p := range pays {
		paysOf[p.SaleID] = append(paysOf[p.SaleID], Tender{Method: p.Method, AmountCents: p.AmountCents})
	}
	out := make([]Sale, len(rows))
	for i, r := range rows {
		sale := Sale{
			ID: r.ID, Status: r.Status, VoidReason: r.VoidReason, LocationID: r.LocationID, StoreName: r.StoreName,
			StoreAddress: r.StoreAddress, Province: r.Province, RegisterID: r.RegisterID, SessionID: r.SessionID,
			CashierID: r.CashierID, Currency: r.Currency, Lines: linesOf[r.ID], GrossCents: r.GrossCents,
			DiscountCents: r.DiscountCents, SubtotalCents: r.SubtotalCents, TaxCents: r.TaxCents, TotalCents: r.TotalCents,
			Payments: paysOf[r.ID], TenderedCents: r.CashCents + r.CardCents, ChangeCents: r.ChangeCents,
			RefundedCashCents: r.RefundedCashCents, RefundedCardCents: r.RefundedCardCents, CreatedAt: r.CreatedAt.UTC(),
		}
		if r.CompletedAt != nil {
			t := r.CompletedAt.UTC()
			sale.CompletedAt = &t
		}
		if sale.Payments == nil {
			sale.Payments = []Tender{}
		}
		// The sale's taxes are its lines' taxes summed, in the
		// province's order (every line carries the same taxes).
		sale.Taxes = []SaleTax{}
		for _, l := range sale.Lines {
			sale.Taxes = addTaxes(sale.Taxes, l.Taxes)
		}
		out[i] = sale
	}
	return out, nil
}

func (s *store) listSales(ctx context.Context, f SaleFilter) (page.Result[Sale], error) {
	q := s.db.WithContext(ctx).Model(&saleRow{}).Where("status = ?", StatusCompleted)
	if f.LocationID != "" {
		q = q.Where("location_id = ?", f.LocationID)
	}
	if f.RegisterID != "" {
		q = q.Where("register_id = ?", f.RegisterID)
	}
	if f.SessionID != "" {
		q = q.Where("session_id = ?", f.SessionID)
	}
	if !f.From.IsZero() {
		q = q.Where("created_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		q = q.Where("created_at < ?", f.To)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[Sale]{}, dbErr("count sales", err)
	}
	var rows []saleRow
	if total > 0 {
		if err := q.Order("created_at DESC, id DESC").Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error; err != nil {
			return page.Result[Sale]{}, dbErr("list sales", err)
		}
	}
	out, err := assembleSales(s.db.WithContext(ctx), rows)
	if err != nil {
		return page.Result[Sale]{}, err
	}
	return page.Result[Sale]{Items: out, Total: total}, nil
}

// pendingSales lists up to limit pending sales created before cutoff,
// after the key (afterAt, afterID) in (created_at, id) order: a keyset walk
// that moves on past sales a round could not settle.
func (s *store) pendingSales(ctx context.Context, sessionID string, cutoff, afterAt time.Time, afterID string, limit int) ([]saleRow, error) {
	q := s.db.WithContext(ctx).Where("status = ? AND created_at < ?", StatusPending, cutoff)
	if sessionID != "" {
		q = q.Where("session_id = ?", sessionID)
	}
	if afterID != "" {
		q = q.Where("(created_at > ? OR (created_at = ? AND id > ?))", afterAt, afterAt, afterID)
	}
	var rows []saleRow
	if err := q.Order("created_at, id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, dbErr("find pending sales", err)
	}
	return rows, nil
}

// salesToRestore lists voided sales whose stock must be put back.
func (s *store) salesToRestore(ctx context.Context, limit int) ([]string, error) {
	var out []string
	err := s.db.WithContext(ctx).Model(&saleRow{}).Where("status = ? AND stock_to_restore = ?", StatusVoided, true).
		Order("created_at, id").Limit(limit).Pluck("id", &out).Error
	if err != nil {
		return nil, dbErr("find sales to restore", err)
	}
	return out, nil
}

// Returns.

// recordReturn records a return in one transaction: the one place a
// return happens (the SaleReturned event will be added to the outbox
// here). It locks the session (it must still be open: its drawer pays
// cash refunds) and then the sale, in that order everywhere, so concurrent
// returns of one sale run one after the other; build prices the return
// against the sale as it stands inside the lock.
func (s *store) recordReturn(ctx context.Context, r SaleReturn, key, hash string, build func(Sale) (SaleReturn, error)) (SaleReturn, error) {
	var out SaleReturn
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		if err := lockOpenSession(tx, r.SessionID, r.CreatedAt); err != nil {
			return err
		}
		res := tx.Exec(`UPDATE sales SET version = version + 1, updated_at = ? WHERE id = ? AND status = ?`,
			r.CreatedAt, r.SaleID, StatusCompleted)
		if res.Error != nil {
			return dbErr("lock sale", res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("sale %s is not completed: %w", r.SaleID, errs.Conflict)
		}
		sale, err := loadSale(tx, r.SaleID)
		if err != nil {
			return err
		}
		built, err := build(sale)
		if err != nil {
			return err
		}
		row := returnRow{ID: built.ID, SaleID: built.SaleID, RegisterID: built.RegisterID, SessionID: built.SessionID,
			LocationID: built.LocationID, Reason: built.Reason, RequestHash: hash, Currency: built.Currency,
			SubtotalCents: built.SubtotalCents, TaxCents: built.TaxCents, TotalCents: built.TotalCents,
			RefundCashCents: sumMethod(built.Refunds, MethodCash), RefundCardCents: sumMethod(built.Refunds, MethodCard),
			CreatedAt: built.CreatedAt, UpdatedAt: built.CreatedAt}
		if key != "" {
			row.IdempotencyKey = &key
		}
		if err := tx.Create(&row).Error; err != nil {
			if db.IsUniqueViolation(err) {
				return errDuplicateKey
			}
			return dbErr("insert return", err)
		}
		lines := make([]returnLineRow, len(built.Lines))
		var taxes []map[string]any
		for i, l := range built.Lines {
			lines[i] = returnLineRow{ReturnID: built.ID, LineNo: l.LineNo, SaleLineNo: l.SaleLineNo, ProductID: l.ProductID,
				SKU: l.SKU, Name: l.Name, Quantity: l.Quantity, SubtotalCents: l.SubtotalCents, TaxCents: l.TaxCents}
			for j, t := range l.Taxes {
				taxes = append(taxes, map[string]any{"return_id": built.ID, "line_no": l.LineNo, "position": j + 1,
					"name": t.Name, "rate_ppm": t.RatePPM, "amount_cents": t.AmountCents})
			}
			// Guarded like the CHECK constraint: never more returned
			// than sold, even if the lock above were ever dropped.
			res := tx.Exec(`UPDATE sale_lines SET returned_quantity = returned_quantity + ?
				WHERE sale_id = ? AND line_no = ? AND returned_quantity + ? <= quantity`, l.Quantity, built.SaleID, l.SaleLineNo, l.Quantity)
			if res.Error != nil {
				return dbErr("count returned quantity", res.Error)
			}
			if res.RowsAffected == 0 {
				return fmt.Errorf("line %d of sale %s: more returned than sold: %w", l.SaleLineNo, built.SaleID, errs.Conflict)
			}
		}
		if err := tx.Create(&lines).Error; err != nil {
			return dbErr("insert return lines", err)
		}
		if len(taxes) > 0 {
			if err := tx.Table("return_line_taxes").Create(taxes).Error; err != nil {
				return dbErr("insert return taxes", err)
			}
		}
		err = tx.Exec(`UPDATE sales SET refunded_cash_cents = refunded_cash_cents + ?, refunded_card_cents = refunded_card_cents + ?
			WHERE id = ?`, row.RefundCashCents, row.RefundCardCents, built.SaleID).Error
		if err != nil {
			return dbErr("record refund on sale", err)
		}
		out = built
		return publishSaleReturned(tx, built)
	})
	return out, err
}

func (s *store) markRestocked(ctx context.Context, id string, now time.Time) error {
	err := s.db.WithContext(ctx).Exec(`UPDATE returns SET restocked = ?, updated_at = ? WHERE id = ?`, true, now, id).Error
	if err != nil {
		return dbErr("mark return restocked", err)
	}
	return nil
}

// returnByKey finds the return made under an idempotency key for a sale,
// with the hash of the request that made it.
func (s *store) returnByKey(ctx context.Context, saleID, key string) (SaleReturn, string, error) {
	var row returnRow
	err := s.db.WithContext(ctx).Where("sale_id = ? AND idempotency_key = ?", saleID, key).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return SaleReturn{}, "", fmt.Errorf("no return under key %q: %w", key, errs.NotFound)
	}
	if err != nil {
		return SaleReturn{}, "", dbErr("find return by key", err)
	}
	out, err := s.assembleReturns(ctx, []returnRow{row})
	if err != nil {
		return SaleReturn{}, "", err
	}
	return out[0], row.RequestHash, nil
}

// returnsWhere loads the returns matching a condition, oldest first.
func (s *store) returnsWhere(ctx context.Context, limit int, query string, args ...any) ([]SaleReturn, error) {
	var rows []returnRow
	q := s.db.WithContext(ctx).Where(query, args...).Order("created_at, id")
	if limit > 0 {
		q = q.Limit(limit)
	}
	if err := q.Find(&rows).Error; err != nil {
		return nil, dbErr("list returns", err)
	}
	return s.assembleReturns(ctx, rows)
}

func (s *store) assembleReturns(ctx context.Context, rows []returnRow) ([]SaleReturn, error) {
	if len(rows) == 0 {
		return []SaleReturn{}, nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	var lines []returnLineRow
	if err := s.db.WithContext(ctx).Where("return_id IN ?", ids).Order("return_id, line_no").Find(&lines).Error; err != nil {
		return nil, dbErr("get return lines", err)
	}
	var taxes []taxRow
	if err := s.db.WithContext(ctx).Table("return_line_taxes").
		Select("return_id AS owner_id, line_no, position, name, rate_ppm, amount_cents").
		Where("return_id IN ?", ids).Order("return_id, line_no, position").Scan(&taxes).Error; err != nil {
		return nil, dbErr("get return taxes", err)
	}
	lineTaxes := groupTaxes(taxes)
	linesOf := map[string][]SaleReturnLine{}
	for _, l := range lines {
		lt := lineTaxes.of(l.ReturnID, l.LineNo)
		linesOf[l.ReturnID] = append(linesOf[l.ReturnID], SaleReturnLine{
			LineNo: l.LineNo, SaleLineNo: l.SaleLineNo, ProductID: l.ProductID, SKU: l.SKU, Name: l.Name,
			Quantity: l.Quantity, SubtotalCents: l.SubtotalCents, Taxes: lt, TaxCents: l.TaxCents,
			TotalCents: l.SubtotalCents + l.TaxCents,
		})
	}
	out := make([]SaleReturn, len(rows))
	for i, r := range rows {
		ret := SaleReturn{ID: r.ID, SaleID: r.SaleID, RegisterID: r.RegisterID, SessionID: r.SessionID, LocationID: r.LocationID,
			Reason: r.Reason, Currency: r.Currency, Lines: linesOf[r.ID], SubtotalCents: r.SubtotalCents, TaxCents: r.TaxCents,
			TotalCents: r.TotalCents, Refunds: refunds(r.RefundCardCents, r.RefundCashCents), Restocked: r.Restocked,
			CreatedAt: r.CreatedAt.UTC(), Taxes: []SaleTax{}}
		for _, l := range ret.Lines {
			ret.Taxes = addTaxes(ret.Taxes, l.Taxes)
		}
		out[i] = ret
	}
	return out, nil
}

// refunds lists the tender a refund went back to, card first as it was
// paid out, leaving out a method that gave nothing back.
func refunds(card, cash int64) []Tender {
	out := []Tender{}
	if card > 0 {
		out = append(out, Tender{Method: MethodCard, AmountCents: card})
	}
	if cash > 0 {
		out = append(out, Tender{Method: MethodCash, AmountCents: cash})
	}
	return out
}

// lineTaxes are tax rows grouped by (sale or return id, line number): the
// one grouping loadSales and the return loader both need.
type lineTaxes map[lineTaxKey][]SaleTax

type lineTaxKey struct {
	id string
	no int
}

func groupTaxes(rows []taxRow) lineTaxes {
	out := lineTaxes{}
	for _, t := range rows {
		k := lineTaxKey{t.OwnerID, t.LineNo}
		out[k] = append(out[k], t.domain())
	}
	return out
}

// of is one line's taxes, never nil (JSON shows [] for a tax-free line).
func (lt lineTaxes) of(id string, no int) []SaleTax {
	if taxes := lt[lineTaxKey{id, no}]; taxes != nil {
		return taxes
	}
	return []SaleTax{}
}
