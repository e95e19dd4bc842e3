package reporting

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
)

// dayLayout is how days are stored and shown.
const dayLayout = "2006-01-02"

type store struct {
	db *gorm.DB
	// batch is how many journal entries Rebuild folds before writing
	// (0: rebuildBatch); tests lower it to cross batches with few events.
	batch int
}

// dbErr marks a database failure: the database not answering is a
// dependency down (503, and the bus retries the event), not a bug of the
// request.
func dbErr(what string, err error) error {
	if errs.KindOf(err) != errs.Internal {
		return fmt.Errorf("%s: %w", what, err) // already has a kind (a cancelled context, …)
	}
	return fmt.Errorf("%s: %w (%v)", what, errs.Unavailable, err)
}

// Writing.

// journal records env as applied at now; false when it already was (the
// inbox normally says so first; this unique key still holds once the inbox
// has been pruned).
func journal(tx *gorm.DB, env events.Envelope, now time.Time) (bool, error) {
	raw, err := json.Marshal(env)
	if err != nil {
		return false, fmt.Errorf("encode event %s: %w", env.EventID, err)
	}
	res := tx.Exec(`INSERT INTO event_journal (event_id, event_type, aggregate_id, aggregate_version, occurred_at, applied_at, envelope)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
		env.EventID, env.EventType, env.AggregateID, env.AggregateVersion, env.OccurredAt.UTC(), now, string(raw))
	if res.Error != nil {
		return false, dbErr("journal event "+env.EventID, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// journalEach is journal for several events, one statement per chunk: it
// returns the ids it journaled now (an id already in the journal is left
// as it is, and not returned).
func journalEach(tx *gorm.DB, envs []events.Envelope, now time.Time) (map[string]bool, error) {
	const cols = 7
	done := make(map[string]bool, len(envs))
	per := maxParams / cols
	for start := 0; start < len(envs); start += per {
		chunk := envs[start:min(start+per, len(envs))]
		args := make([]any, 0, cols*len(chunk))
		for _, env := range chunk {
			raw, err := json.Marshal(env)
			if err != nil {
				return nil, fmt.Errorf("encode event %s: %w", env.EventID, err)
			}
			args = append(args, env.EventID, env.EventType, env.AggregateID, env.AggregateVersion, env.OccurredAt.UTC(), now, string(raw))
		}
		q := `INSERT INTO event_journal (event_id, event_type, aggregate_id, aggregate_version, occurred_at, applied_at, envelope) VALUES ` +
			db.Tuples("(?, ?, ?, ?, ?, ?, ?)", len(chunk)) + ` ON CONFLICT (event_id) DO NOTHING RETURNING event_id`
		var ids []string
		if err := tx.Raw(q, args...).Scan(&ids).Error; err != nil {
			return nil, dbErr(fmt.Sprintf("journal %d events", len(chunk)), err)
		}
		for _, id := range ids {
			done[id] = true
		}
	}
	return done, nil
}

// maxParams keeps one multi-row statement under both engines' limits on
// bound parameters (SQLite 32766, PostgreSQL 65535).
const maxParams = 16000

// upsertRows writes rows with multi-row INSERT … ON CONFLICT statements:
// head is "INSERT INTO t (cols)", tail the ON CONFLICT clause.
func upsertRows(tx *gorm.DB, head, tail string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	cols := len(rows[0])
	per := max(1, min(500, maxParams/cols))
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(start+per, len(rows))]
		args := make([]any, 0, len(chunk)*cols)
		for _, r := range chunk {
			args = append(args, r...)
		}
		if err := tx.Exec(head+" VALUES "+db.Tuples(one, len(chunk))+" "+tail, args...).Error; err != nil {
			return err
		}
	}
	return nil
}

// sortedKeys returns m's keys in order, so that every writer touches rows
// in the same order (no deadlock between two consumers on PostgreSQL).
func sortedKeys[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp)
	return keys
}

// flush writes e: sums are added to the rows, stock rows replaced only by
// a newer version, labels only by newer claims.
func (e *effects) flush(tx *gorm.DB) error {
	salesKeys := sortedKeys(e.sales, func(a, b salesKey) int {
		return strings.Compare(a.day+"\x00"+a.locationID+"\x00"+a.channel, b.day+"\x00"+b.locationID+"\x00"+b.channel)
	})
	rows := make([][]any, 0, len(salesKeys))
	for _, k := range salesKeys {
		d := e.sales[k]
		rows = append(rows, []any{k.day, k.locationID, k.channel, d.sales, d.units, d.discount, d.revenue, d.tax, d.total,
			d.returns, d.returnedUnits, d.returned, d.returnedTax, d.refunded})
	}
	if err := upsertRows(tx, `INSERT INTO sales_by_day (day, location_id, channel, sales_count, units, discount_cents,
		revenue_cents, tax_cents, total_cents, returns_count, returned_units, returned_cents, returned_tax_cents, refunded_cents)`,
		`ON CONFLICT (day, location_id, channel) DO UPDATE SET
		sales_count = sales_by_day.sales_count + excluded.sales_count,
		units = sales_by_day.units + excluded.units,
		discount_cents = sales_by_day.discount_cents + excluded.discount_cents,
		revenue_cents = sales_by_day.revenue_cents + excluded.revenue_cents,
		tax_cents = sales_by_day.tax_cents + excluded.tax_cents,
		total_cents = sales_by_day.total_cents + excluded.total_cents,
		returns_count = sales_by_day.returns_count + excluded.returns_count,
		returned_units = sales_by_day.returned_units + excluded.returned_units,
		returned_cents = sales_by_day.returned_cents + excluded.returned_cents,
		returned_tax_cents = sales_by_day.returned_tax_cents + excluded.returned_tax_cents,
		refunded_cents = sales_by_day.refunded_cents + excluded.refunded_cents`, rows); err != nil {
		return dbErr("update sales_by_day", err)
	}

	productKeys := sortedKeys(e.products, func(a, b productKey) int {
		return strings.Compare(a.day+"\x00"+a.productID+"\x00"+a.channel, b.day+"\x00"+b.productID+"\x00"+b.channel)
	})
	rows = rows[:0]
	for _, k := range productKeys {
		d := e.products[k]
		rows = append(rows, []any{k.day, k.productID, k.channel, d.unitsSold, d.revenue, d.unitsReturned, d.returned})
	}
	if err := upsertRows(tx, `INSERT INTO product_sales_by_day (day, product_id, channel, units_sold, revenue_cents, units_returned, returned_cents)`,
		`ON CONFLICT (day, product_id, channel) DO UPDATE SET
		units_sold = product_sales_by_day.units_sold + excluded.units_sold,
		revenue_cents = product_sales_by_day.revenue_cents + excluded.revenue_cents,
		units_returned = product_sales_by_day.units_returned + excluded.units_returned,
		returned_cents = product_sales_by_day.returned_cents + excluded.returned_cents`, rows); err != nil {
		return dbErr("update product_sales_by_day", err)
	}

	rows = rows[:0]
	for _, day := range sortedKeys(e.checkouts, strings.Compare) {
		d := e.checkouts[day]
		rows = append(rows, []any{day, d.completed, d.failed, d.durationMs})
	}
	if err := upsertRows(tx, `INSERT INTO checkouts_by_day (day, completed, failed, duration_ms)`,
		`ON CONFLICT (day) DO UPDATE SET completed = checkouts_by_day.completed + excluded.completed,
		failed = checkouts_by_day.failed + excluded.failed, duration_ms = checkouts_by_day.duration_ms + excluded.duration_ms`, rows); err != nil {
		return dbErr("update checkouts_by_day", err)
	}

	rows = rows[:0]
	for _, k := range sortedKeys(e.stock, func(a, b stockKey) int {
		return strings.Compare(a.locationID+"\x00"+a.productID, b.locationID+"\x00"+b.productID)
	}) {
		s := e.stock[k]
		rows = append(rows, []any{k.locationID, k.productID, s.onHand, s.reserved, s.available, s.version, s.at})
	}
	// The WHERE makes an old or repeated StockChanged a no-op: the row is
	// the newest version seen, whatever the order of delivery.
	if err := upsertRows(tx, `INSERT INTO stock_levels (location_id, product_id, on_hand, reserved, available, version, updated_at)`,
		`ON CONFLICT (location_id, product_id) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved,
		available = excluded.available, version = excluded.version, updated_at = excluded.updated_at
		WHERE stock_levels.version < excluded.version`, rows); err != nil {
		return dbErr("update stock_levels", err)
	}

	rows = rows[:0]
	for _, id := range sortedKeys(e.labels, strings.Compare) {
		l := e.labels[id]
		rows = append(rows, []any{id, l.sku, l.skuAt, l.name, l.nameAt})
	}
	if err := upsertRows(tx, `INSERT INTO product_labels (product_id, sku, sku_at, name, name_at)`,
		`ON CONFLICT (product_id) DO UPDATE SET
		sku = CASE WHEN excluded.sku <> '' AND excluded.sku_at >= product_labels.sku_at THEN excluded.sku ELSE product_labels.sku END,
		sku_at = CASE WHEN excluded.sku <> '' AND excluded.sku_at >= product_labels.sku_at THEN excluded.sku_at ELSE product_labels.sku_at END,
		name = CASE WHEN excluded.name <> '' AND excluded.name_at >= product_labels.name_at THEN excluded.name ELSE product_labels.name END,
		name_at = CASE WHEN excluded.name <> '' AND excluded.name_at >= product_labels.name_at THEN excluded.name_at ELSE product_labels.name_at END`,
		rows); err != nil {
		return dbErr("update product_labels", err)
	}
	return nil
}

// dbOrders is the orderBook on the database, inside the applying
// transaction: the conditional writes are what make a second confirmation
// or cancellation of one order book nothing, even from two consumers at
// once (the second waits on the first's row lock, then sees its outcome).
type dbOrders struct{ tx *gorm.DB }

type orderFactRow struct {
	OrderID       string
	LocationID    string
	SubtotalCents int64
	TaxCents      int64
	TotalCents    int64
	Units         int64
	Lines         string
	ConfirmedDay  string
	CancelledDay  *string
}

func (b dbOrders) confirm(f orderFact) (bool, error) {
	lines, err := json.Marshal(f.Lines)
	if err != nil {
		return false, fmt.Errorf("encode order %s lines: %w", f.OrderID, err)
	}
	res := b.tx.Exec(`INSERT INTO order_facts (order_id, location_id, subtotal_cents, tax_cents, total_cents, units, lines, confirmed_day)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING`,
		f.OrderID, f.LocationID, f.SubtotalCents, f.TaxCents, f.TotalCents, f.Units, string(lines), f.ConfirmedDay)
	if res.Error != nil {
		return false, dbErr("record order "+f.OrderID, res.Error)
	}
	return res.RowsAffected == 1, nil
}

func (b dbOrders) cancel(orderID, day string) (orderFact, bool, error) {
	res := b.tx.Exec(`UPDATE order_facts SET cancelled_day = ? WHERE order_id = ? AND cancelled_day IS NULL`, day, orderID)
	if res.Error != nil {
		return orderFact{}, false, dbErr("cancel order "+orderID, res.Error)
	}
	var rows []orderFactRow
	if err := b.tx.Raw(`SELECT order_id, location_id, subtotal_cents, tax_cents, total_cents, units, lines, confirmed_day, cancelled_day
		FROM order_facts WHERE order_id = ?`, orderID).Scan(&rows).Error; err != nil {
		return orderFact{}, false, dbErr("read order "+orderID, err)
	}
	if len(rows) == 0 {
		// Order across events of one order is not guaranteed (a retried
		// confirmation comes after later events): wait for it.
		return orderFact{}, false, fmt.Errorf("order %s cancelled before its confirmation was applied: %w", orderID, errs.Unavailable)
	}
	if res.RowsAffected == 0 {
		return orderFact{}, false, nil // cancelled already
	}
	r := rows[0]
	f := orderFact{OrderID: r.OrderID, LocationID: r.LocationID, SubtotalCents: r.SubtotalCents, TaxCents: r.TaxCents,
		TotalCents: r.TotalCents, Units: r.Units, ConfirmedDay: r.ConfirmedDay}
	if err := json.Unmarshal([]byte(r.Lines), &f.Lines); err != nil {
		return orderFact{}, false, fmt.Errorf("order %s lines: %w", orderID, err)
	}
	return f, true, nil
}

// aggregateTables are the tables Rebuild empties and refills.
var aggregateTables = []string{"sales_by_day", "product_sales_by_day", "stock_levels", "checkouts_by_day", "order_facts", "product_labels"}

// rebuildBatch is how many journal entries Rebuild folds before writing.
const rebuildBatch = 2000

type journalRow struct {
	Seq      int64
	Envelope string
}

// rebuild empties the aggregates and replays the journal through p, in one
// transaction. It returns how many events it replayed.
func (s *store) rebuild(ctx context.Context, p planner) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if db.DialectOf(tx) == db.Postgres {
			// Consumers insert into the journal before they touch an
			// aggregate; this lock makes them wait until the rebuild
			// commits (readers are not held up). SQLite's write lock,
			// taken at BEGIN, does the same there.
			if err := tx.Exec(`LOCK TABLE event_journal IN EXCLUSIVE MODE`).Error; err != nil {
				return dbErr("lock journal", err)
			}
		}
		for _, t := range aggregateTables {
			if err := tx.Exec(`DELETE FROM ` + t).Error; err != nil {
				return dbErr("empty "+t, err)
			}
		}
		book := dbOrders{tx: tx}
		size := cmp.Or(s.batch, rebuildBatch)
		var after int64
		for {
			var batch []journalRow
			if err := tx.Raw(`SELECT seq, envelope FROM event_journal WHERE seq > ? ORDER BY seq LIMIT ?`, after, size).
				Scan(&batch).Error; err != nil {
				return dbErr("read journal", err)
			}
			if len(batch) == 0 {
				return nil
			}
			eff := newEffects()
			for _, r := range batch {
				var env events.Envelope
				if err := json.Unmarshal([]byte(r.Envelope), &env); err != nil {
					return fmt.Errorf("journal entry %d: %w", r.Seq, err)
				}
				if err := p.add(eff, env, book); err != nil {
					return fmt.Errorf("replay journal entry %d: %w", r.Seq, err)
				}
			}
			if err := eff.flush(tx); err != nil {
				return err
			}
			n += int64(len(batch))
			after = batch[len(batch)-1].Seq
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Reading.

type salesRow struct {
	Day              string
	LocationID       string
	Channel          string
	SalesCount       int64
	Units            int64
	DiscountCents    int64
	RevenueCents     int64
	TaxCents         int64
	TotalCents       int64
	ReturnsCount     int64
	ReturnedUnits    int64
	ReturnedCents    int64
	ReturnedTaxCents int64
	RefundedCents    int64
}

func (r salesRow) figures() Figures {
	f := Figures{SalesCount: r.SalesCount, Units: r.Units, DiscountCents: r.DiscountCents, RevenueCents: r.RevenueCents,
		TaxCents: r.TaxCents, TotalCents: r.TotalCents, ReturnsCount: r.ReturnsCount, ReturnedUnits: r.ReturnedUnits,
		ReturnedCents: r.ReturnedCents, ReturnedTaxCents: r.ReturnedTaxCents, RefundedCents: r.RefundedCents}
	return f.withNet()
}

// salesRows reads the sales_by_day rows of [from, to] (days), optionally
// of one location or channel.
func (s *store) salesRows(ctx context.Context, from, to, locationID, channel string) ([]salesRow, error) {
	q := s.db.WithContext(ctx).Table("sales_by_day").Where("day >= ? AND day <= ?", from, to)
	if locationID != "" {
		q = q.Where("location_id = ?", locationID)
	}
	if channel != "" {
		q = q.Where("channel = ?", channel)
	}
	var rows []salesRow
	if err := q.Order("day, location_id, channel").Find(&rows).Error; err != nil {
		return nil, dbErr("read sales", err)
	}
	return rows, nil
}

type productSum struct {
	ProductID     string
	UnitsSold     int64
	RevenueCents  int64
	UnitsReturned int64
	ReturnedCents int64
}

// topProducts ranks products over [from, to] by net revenue, then net
// units, then id.
func (s *store) topProducts(ctx context.Context, from, to, channel string, limit int) ([]productSum, error) {
	where, args := "day >= ? AND day <= ?", []any{from, to}
	if channel != "" {
		where += " AND channel = ?"
		args = append(args, channel)
	}
	args = append(args, limit)
	var rows []productSum
	err := s.db.WithContext(ctx).Raw(`SELECT product_id, SUM(units_sold) AS units_sold, SUM(revenue_cents) AS revenue_cents,
		SUM(units_returned) AS units_returned, SUM(returned_cents) AS returned_cents
		FROM product_sales_by_day WHERE `+where+`
		GROUP BY product_id
		ORDER BY SUM(revenue_cents) - SUM(returned_cents) DESC, SUM(units_sold) - SUM(units_returned) DESC, product_id
		LIMIT ?`, args...).Scan(&rows).Error
	if err != nil {
		return nil, dbErr("rank products", err)
	}
	return rows, nil
}

type stockLevelRow struct {
	LocationID string
	ProductID  string
	OnHand     int64
	Reserved   int64
	Available  int64
	Version    int64
	UpdatedAt  time.Time
}

// stockRows reads the stock rows, of one location or all, in (location,
// product) order. It scans by hand: the dashboard reads every row on
// every call, and gorm's reflection (and the drivers' time parsing, hence
// withTime) would be most of its cost.
func (s *store) stockRows(ctx context.Context, locationID string, withTime bool) ([]stockLevelRow, error) {
	cols := "location_id, product_id, on_hand, reserved, available, version"
	if withTime {
		cols += ", updated_at"
	}
	q, args := `SELECT `+cols+` FROM stock_levels`, []any{}
	if locationID != "" {
		q += ` WHERE location_id = ?`
		args = append(args, locationID)
	}
	rows, err := s.db.WithContext(ctx).Raw(q+` ORDER BY location_id, product_id`, args...).Rows()
	if err != nil {
		return nil, dbErr("read stock", err)
	}
	defer rows.Close()
	var out []stockLevelRow
	for rows.Next() {
		var r stockLevelRow
		dest := []any{&r.LocationID, &r.ProductID, &r.OnHand, &r.Reserved, &r.Available, &r.Version}
		if withTime {
			dest = append(dest, &r.UpdatedAt)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, dbErr("read stock", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("read stock", err)
	}
	return out, nil
}

// checkouts counts saga outcomes over [from, to].
func (s *store) checkouts(ctx context.Context, from, to string) (completed, failed int64, err error) {
	var r struct{ Completed, Failed int64 }
	if err := s.db.WithContext(ctx).Raw(`SELECT COALESCE(SUM(completed), 0) AS completed, COALESCE(SUM(failed), 0) AS failed
		FROM checkouts_by_day WHERE day >= ? AND day <= ?`, from, to).Scan(&r).Error; err != nil {
		return 0, 0, dbErr("read checkouts", err)
	}
	return r.Completed, r.Failed, nil
}

// lastApplied is the journal's newest entry: when it was applied and when
// it happened; nil before the first event.
func (s *store) lastApplied(ctx context.Context) (applied, occurred *time.Time, err error) {
	var rows []struct{ AppliedAt, OccurredAt time.Time }
	if err := s.db.WithContext(ctx).Raw(`SELECT applied_at, occurred_at FROM event_journal ORDER BY seq DESC LIMIT 1`).
		Scan(&rows).Error; err != nil {
		return nil, nil, dbErr("read journal", err)
	}
	if len(rows) == 0 {
		return nil, nil, nil
	}
	a, o := rows[0].AppliedAt.UTC(), rows[0].OccurredAt.UTC()
	return &a, &o, nil
}

type labelRow struct {
	ProductID string
	SKU       string `gorm:"column:sku"`
	Name      string
}

// labels reads what events called the products ids.
func (s *store) labels(ctx context.Context, ids []string) (map[string]labelRow, error) {
	out := map[string]labelRow{}
	for start := 0; start < len(ids); start += 500 {
		var rows []labelRow
		if err := s.db.WithContext(ctx).Raw(`SELECT product_id, sku, name FROM product_labels WHERE product_id IN ?`,
			ids[start:min(start+500, len(ids))]).Scan(&rows).Error; err != nil {
			return nil, dbErr("read product labels", err)
		}
		for _, r := range rows {
			out[r.ProductID] = r
		}
	}
	return out, nil
}

// totals sums the whole read model.
func (s *store) totals(ctx context.Context) (Totals, error) {
	var t Totals
	q := s.db.WithContext(ctx)
	var sr salesRow
	if err := q.Raw(`SELECT COALESCE(SUM(sales_count), 0) AS sales_count, COALESCE(SUM(units), 0) AS units,
		COALESCE(SUM(discount_cents), 0) AS discount_cents, COALESCE(SUM(revenue_cents), 0) AS revenue_cents,
		COALESCE(SUM(tax_cents), 0) AS tax_cents, COALESCE(SUM(total_cents), 0) AS total_cents,
		COALESCE(SUM(returns_count), 0) AS returns_count, COALESCE(SUM(returned_units), 0) AS returned_units,
		COALESCE(SUM(returned_cents), 0) AS returned_cents, COALESCE(SUM(returned_tax_cents), 0) AS returned_tax_cents,
		COALESCE(SUM(refunded_cents), 0) AS refunded_cents FROM sales_by_day`).Scan(&sr).Error; err != nil {
		return t, dbErr("sum sales", err)
	}
	t.Sales = sr.figures()
	var p productSum
	if err := q.Raw(`SELECT COALESCE(SUM(units_sold), 0) AS units_sold, COALESCE(SUM(revenue_cents), 0) AS revenue_cents,
		COALESCE(SUM(units_returned), 0) AS units_returned, COALESCE(SUM(returned_cents), 0) AS returned_cents
		FROM product_sales_by_day`).Scan(&p).Error; err != nil {
		return t, dbErr("sum product sales", err)
	}
	t.ProductUnitsSold, t.ProductRevenueCents, t.ProductUnitsReturned, t.ProductReturnedCents =
		p.UnitsSold, p.RevenueCents, p.UnitsReturned, p.ReturnedCents
	var o struct{ Orders, Cancelled int64 }
	if err := q.Raw(`SELECT COUNT(*) AS orders, COUNT(cancelled_day) AS cancelled FROM order_facts`).Scan(&o).Error; err != nil {
		return t, dbErr("count orders", err)
	}
	t.Orders, t.OrdersCancelled = o.Orders, o.Cancelled
	var st struct{ N, OnHand, Reserved, Available int64 }
	if err := q.Raw(`SELECT COUNT(*) AS n, COALESCE(SUM(on_hand), 0) AS on_hand, COALESCE(SUM(reserved), 0) AS reserved,
		COALESCE(SUM(available), 0) AS available FROM stock_levels`).Scan(&st).Error; err != nil {
		return t, dbErr("sum stock", err)
	}
	t.StockRows, t.StockOnHand, t.StockReserved, t.StockAvailable = st.N, st.OnHand, st.Reserved, st.Available
	var c struct{ Completed, Failed int64 }
	if err := q.Raw(`SELECT COALESCE(SUM(completed), 0) AS completed, COALESCE(SUM(failed), 0) AS failed FROM checkouts_by_day`).
		Scan(&c).Error; err != nil {
		return t, dbErr("sum checkouts", err)
	}
	t.CheckoutsCompleted, t.CheckoutsFailed = c.Completed, c.Failed
	if err := q.Raw(`SELECT COUNT(*) FROM event_journal`).Scan(&t.Events).Error; err != nil {
		return t, dbErr("count journal", err)
	}
	applied, _, err := s.lastApplied(ctx)
	if err != nil {
		return t, err
	}
	t.LastAppliedAt = applied
	return t, nil
}
