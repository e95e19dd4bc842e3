package inventory

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// Tests of the write path of stock (lock the rows, check the changes in
// Go, write in one statement) at its edges: refusals, versions and order
// of what a multi-line write leaves, rows created concurrently, lock
// order.

// tableCounts counts the rows of the tables a reservation writes to, for
// "the refused transaction left nothing behind" checks.
func tableCounts(t testing.TB, f *fixture) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range []string{"reservations", "reservation_items", "stock_movements", "outbox", "stock"} {
		var n int64
		must(t, f.db.Raw(`SELECT COUNT(*) FROM `+table).Scan(&n).Error)
		out[table] = n
	}
	return out
}

// stockVersion reads a stock row's version (0 when there is no row).
func stockVersion(t testing.TB, f *fixture, productID, locationID string) int64 {
	t.Helper()
	var v []int64
	must(t, f.db.Raw(`SELECT version FROM stock WHERE location_id = ? AND product_id = ?`, locationID, productID).Scan(&v).Error)
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

// TestReserveRefusal: a reservation whose lines include a missing stock row
// and a short one is refused with a *shortError naming the first of them in
// (location, product) order and the row as it was, and the transaction
// leaves nothing behind: no reservation, no item, no ledger row, no event,
// no stock row touched. The service then names every bad line.
func TestReserveRefusal(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		f := newFixture(t, b, false)
		st := f.svc.(*service).store
		loc := f.location(t, "REF")
		ok, short, none := f.product(t, "REF-OK", 0), f.product(t, "REF-SHORT", 0), f.product(t, "REF-NONE", 0)
		f.receive(t, ok, loc, 5)
		f.receive(t, short, loc, 4)
		_, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "ref-hold", Items: []ReservationItem{{short, loc, 3}}})
		must(t, err)
		// short: on_hand 4, reserved 3, so 1 available.

		reserve := func(id string, items ...ReservationItem) error {
			now := f.clock.Now().UTC().Truncate(time.Microsecond)
			_, _, err := st.reserve(ctx, Reservation{ID: id, Status: ReservationActive, Items: items,
				ExpiresAt: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now}, now)
			return err
		}
		shortLine, noneLine := ReservationItem{short, loc, 2}, ReservationItem{none, loc, 1}
		// Which of the two bad lines the store meets first depends on how
		// the ids sort; the lines are given in the other order.
		first, second := shortLine, noneLine
		firstOnHand, firstReserved := int64(4), int64(3)
		if none < short {
			first, second = noneLine, shortLine
			firstOnHand, firstReserved = 0, 0
		}
		cases := []struct {
			name             string
			items            []ReservationItem
			product          string
			exists           bool
			onHand, reserved int64
		}{
			{"short row", []ReservationItem{shortLine, {ok, loc, 1}}, short, true, 4, 3},
			{"missing row", []ReservationItem{{ok, loc, 5}, noneLine}, none, false, 0, 0},
			{"both", []ReservationItem{second, {ok, loc, 1}, first}, first.ProductID, first == shortLine, firstOnHand, firstReserved},
		}
		before := tableCounts(t, f)
		versions := map[string]int64{ok: stockVersion(t, f, ok, loc), short: stockVersion(t, f, short, loc)}
		for _, c := range cases {
			err := reserve("ref-"+strings.ReplaceAll(c.name, " ", "-"), c.items...)
			var se *shortError
			if !errors.As(err, &se) {
				t.Errorf("%s: %v, want a *shortError", c.name, err)
				continue
			}
			if se.change.productID != c.product || se.change.locationID != loc || se.exists != c.exists ||
				se.onHand != c.onHand || se.reserved != c.reserved {
				t.Errorf("%s: refused %+v, want product %s exists %v at %d/%d", c.name, *se, c.product, c.exists, c.onHand, c.reserved)
			}
		}
		if after := tableCounts(t, f); !maps.Equal(after, before) {
			t.Fatalf("refused reservations left rows behind: %v, before %v", after, before)
		}
		for p, v := range versions {
			if got := stockVersion(t, f, p, loc); got != v {
				t.Fatalf("refused reservations moved %s to version %d (was %d)", p, got, v)
			}
		}
		f.wantLevel(t, ok, loc, 5, 0)
		f.wantLevel(t, short, loc, 4, 3)

		_, err = f.svc.Reserve(ctx, NewReservation{ReservationID: "ref-svc", Items: []ReservationItem{{ok, loc, 1}, shortLine, noneLine}})
		if msg := fmt.Sprint(err); !strings.Contains(msg, "items[1] (product "+short+" at "+loc+"): 1 available, 2 requested") ||
			!strings.Contains(msg, "items[2] (product "+none+" at "+loc+"): none in stock") || strings.Contains(msg, "items[0]") {
			t.Fatalf("service: %v", err)
		}
	})
}

// outboxEvent is one StockChanged event as the outbox holds it.
type outboxEvent struct {
	position int64
	env      events.Envelope
	data     StockChanged
}

// stockEvents reads the StockChanged events in the outbox, in position
// order.
func stockEvents(t testing.TB, f *fixture) []outboxEvent {
	t.Helper()
	var rows []struct {
		Position int64
		Envelope string
	}
	must(t, f.db.Raw(`SELECT position, envelope FROM outbox ORDER BY position`).Scan(&rows).Error)
	out := make([]outboxEvent, 0, len(rows))
	for _, r := range rows {
		var e outboxEvent
		e.position = r.Position
		must(t, json.Unmarshal([]byte(r.Envelope), &e.env))
		if e.env.EventType != StockChangedEvent {
			continue
		}
		must(t, e.env.Decode(&e.data))
		out = append(out, e)
	}
	return out
}

// TestSettleWritesOnePerLine: committing, releasing and expiring
// reservations of several lines at two locations writes exactly one ledger
// row and one event per line, in (location, product) order, each event
// carrying the row after the change and its new version; every row's last
// event has the version the row has.
func TestSettleWritesOnePerLine(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		f := newFixture(t, b, false)
		locA, locB := f.location(t, "ONE-A"), f.location(t, "ONE-B")
		p1, p2, p3 := f.product(t, "ONE-1", 0), f.product(t, "ONE-2", 0), f.product(t, "ONE-3", 0)
		f.receive(t, p1, locA, 10)
		f.receive(t, p2, locA, 10)
		f.receive(t, p3, locB, 10)
		f.receive(t, p1, locB, 10)
		// Every row now at version 1.
		reserve := func(id string, ttl int, items ...ReservationItem) {
			t.Helper()
			_, err := f.svc.Reserve(ctx, NewReservation{ReservationID: id, Items: items, TTLSeconds: ttl})
			must(t, err)
		}
		reserve("one-commit", 0, ReservationItem{p3, locB, 1}, ReservationItem{p1, locA, 2}, ReservationItem{p2, locA, 3},
			ReservationItem{p1, locB, 4})
		reserve("one-release", 0, ReservationItem{p1, locB, 1}, ReservationItem{p1, locA, 1})
		reserve("one-expire", 30, ReservationItem{p2, locA, 2}, ReservationItem{p3, locB, 2})
		// Versions: p1@A 3, p2@A 3, p3@B 3, p1@B 3.
		_, err := f.svc.CommitReservation(ctx, "one-commit")
		must(t, err)
		_, err = f.svc.ReleaseReservation(ctx, "one-release")
		must(t, err)
		f.clock.Advance(31 * time.Second)
		n, err := f.svc.ExpireReservations(ctx)
		if err != nil || n != 1 {
			t.Fatalf("sweep: %d, %v", n, err)
		}

		type line struct {
			loc, prod                 string
			dOnHand, dReserved        int64
			onHand, reserved, version int64
		}
		want := map[string][]line{
			"commit": {
				{locA, p1, -2, -2, 8, 1, 4}, {locA, p2, -3, -3, 7, 2, 4}, {locB, p1, -4, -4, 6, 1, 4}, {locB, p3, -1, -1, 9, 2, 4},
			},
			"release": {{locA, p1, 0, -1, 8, 0, 5}, {locB, p1, 0, -1, 6, 0, 5}},
			"expire":  {{locA, p2, 0, -2, 7, 0, 5}, {locB, p3, 0, -2, 9, 0, 5}},
		}
		byKey := func(a, b line) int { return cmp.Or(strings.Compare(a.loc, b.loc), strings.Compare(a.prod, b.prod)) }
		evs := stockEvents(t, f)
		for reason, lines := range want {
			slices.SortFunc(lines, byKey)
			var got []line
			var positions []int64
			for _, e := range evs {
				if e.data.Reason != reason {
					continue
				}
				d := e.data
				if e.env.AggregateID != d.ProductID+"@"+d.LocationID || d.Available != d.OnHand-d.Reserved {
					t.Errorf("%s event %+v: inconsistent envelope or data", reason, e)
				}
				got = append(got, line{d.LocationID, d.ProductID, d.DeltaOnHand, d.DeltaReserved, d.OnHand, d.Reserved, e.env.AggregateVersion})
				positions = append(positions, e.position)
			}
			if !slices.Equal(got, lines) {
				t.Errorf("%s events:\n got %+v\nwant %+v", reason, got, lines)
			}
			if !slices.IsSorted(positions) {
				t.Errorf("%s events out of order: positions %v", reason, positions)
			}
			var moves []movementRow
			must(t, f.db.Where("reason = ?", reason).Find(&moves).Error)
			gotMoves := make([]line, len(moves))
			for i, m := range moves {
				gotMoves[i] = line{loc: m.LocationID, prod: m.ProductID, dOnHand: m.DeltaOnHand, dReserved: m.DeltaReserved}
			}
			wantMoves := make([]line, len(lines))
			for i, l := range lines {
				wantMoves[i] = line{loc: l.loc, prod: l.prod, dOnHand: l.dOnHand, dReserved: l.dReserved}
			}
			slices.SortFunc(gotMoves, byKey)
			if !slices.Equal(gotMoves, wantMoves) {
				t.Errorf("%s ledger rows:\n got %+v\nwant %+v", reason, gotMoves, wantMoves)
			}
		}
		// The newest event of each row has the row's version: consumers
		// that keep the highest version end up with the row as it is.
		last := map[string]int64{}
		for _, e := range evs {
			last[e.env.AggregateID] = max(last[e.env.AggregateID], e.env.AggregateVersion)
		}
		for _, k := range []stockKey{{locA, p1}, {locA, p2}, {locB, p1}, {locB, p3}} {
			if v := stockVersion(t, f, k.productID, k.locationID); last[k.productID+"@"+k.locationID] != v {
				t.Errorf("%s@%s is at version %d, its newest event at %d", k.productID, k.locationID, v, last[k.productID+"@"+k.locationID])
			}
		}
	})
}

// TestConcurrentFirstReceipts: receipts racing to create the same stock row
// (none of them can lock a row that does not exist yet) all count, once
// each: the loser of the insert starts over instead of losing its receipt.
func TestConcurrentFirstReceipts(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		f := newFixture(t, b, false)
		p, loc := f.product(t, "FIRST", 0), f.location(t, "FIRST")
		const n = 8
		failures := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				_, failures[i] = f.svc.Adjust(ctx, Adjustment{ProductID: p, LocationID: loc, Delta: int64(i + 1), Reason: ReasonReceipt})
			})
		}
		close(start)
		wg.Wait()
		for i, err := range failures {
			if err != nil {
				t.Errorf("receipt %d: %v", i, err)
			}
		}
		f.wantLevel(t, p, loc, n*(n+1)/2, 0)
		if v := stockVersion(t, f, p, loc); v != n {
			t.Fatalf("version %d after %d receipts", v, n)
		}
		var versions []int64
		for _, e := range stockEvents(t, f) {
			versions = append(versions, e.env.AggregateVersion)
		}
		slices.Sort(versions)
		if !slices.Equal(versions, []int64{1, 2, 3, 4, 5, 6, 7, 8}) {
			t.Fatalf("event versions %v", versions)
		}
	})
}

// TestOppositeLineOrders: reservations of the same rows given in opposite
// line orders, settled while others are taken, and transfers between the
// same rows, all run at once: every one succeeds (there is stock for all,
// so a failure could only be a deadlock or a lost race) and the invariants
// hold (checked at cleanup).
func TestOppositeLineOrders(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		f := newFixture(t, b, false)
		locA, locB := f.location(t, "OPP-A"), f.location(t, "OPP-B")
		p1, p2 := f.product(t, "OPP-1", 0), f.product(t, "OPP-2", 0)
		lines := []ReservationItem{{p1, locA, 1}, {p2, locA, 1}, {p1, locB, 1}, {p2, locB, 1}}
		for _, l := range lines {
			f.receive(t, l.ProductID, l.LocationID, 1000)
		}
		const workers, rounds = 6, 10
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				items := slices.Clone(lines)
				if w%2 == 1 {
					slices.Reverse(items)
				}
				for i := range rounds {
					id := fmt.Sprintf("opp-%d-%d", w, i)
					if _, err := f.svc.Reserve(ctx, NewReservation{ReservationID: id, Items: items}); err != nil {
						t.Errorf("reserve %s: %v", id, err)
						return
					}
					settle := f.svc.ReleaseReservation
					if i%2 == 0 {
						settle = f.svc.CommitReservation
					}
					if _, err := settle(ctx, id); err != nil {
						t.Errorf("settle %s: %v", id, err)
						return
					}
					from, to := locA, locB
					if w%2 == 1 {
						from, to = to, from
					}
					tr, err := f.svc.CreateTransfer(ctx, NewTransfer{ProductID: p1, FromLocationID: from, ToLocationID: to, Quantity: 1})
					if err == nil {
						_, err = f.svc.ApproveTransfer(ctx, tr.ID)
					}
					if err != nil {
						t.Errorf("transfer %s: %v", id, err)
						return
					}
				}
			})
		}
		wg.Wait()
		// Half the reservations committed one of each line; transfers in
		// both directions cancel out (3 workers each way, same count).
		committed := int64(workers * rounds / 2)
		for _, l := range lines {
			f.wantLevel(t, l.ProductID, l.LocationID, 1000-committed, 0)
		}
	})
}

// TestStockRowsLockInKeyOrder pins the order PostgreSQL transactions lock
// stock rows in, the order that keeps them from deadlocking: (location,
// product), whatever order the lines come in. With one of two rows held by
// another transaction, an operation on both must have locked the lower
// row, and not the higher, by the time it waits. SQLite locks the whole
// database instead.
func TestStockRowsLockInKeyOrder(t *testing.T) {
	t.Parallel()
	pg := testkit.PostgresBackend(t, "row locks are a PostgreSQL matter")
	ctx := context.Background()
	f := newFixture(t, pg, false)
	locX, locY := f.location(t, "KEY-X"), f.location(t, "KEY-Y")
	pX, pY := f.product(t, "KEY-X", 0), f.product(t, "KEY-Y", 0)
	lowLoc, highLoc := min(locX, locY), max(locX, locY)
	lowProd, highProd := min(pX, pY), max(pX, pY)
	// Rows created high first, so their physical order is the reverse of
	// key order: locking in table order would be caught too.
	for _, k := range []stockKey{{highLoc, highProd}, {highLoc, lowProd}, {lowLoc, highProd}, {lowLoc, lowProd}} {
		f.receive(t, k.productID, k.locationID, 100)
	}
	sqlDB, err := f.db.DB()
	must(t, err)

	seq := 0
	reserveBoth := func() error {
		seq++
		_, err := f.svc.Reserve(ctx, NewReservation{ReservationID: fmt.Sprintf("key-r%d", seq),
			Items: []ReservationItem{{highProd, lowLoc, 1}, {lowProd, lowLoc, 1}}})
		return err
	}
	held := func() string {
		seq++
		id := fmt.Sprintf("key-h%d", seq)
		_, err := f.svc.Reserve(ctx, NewReservation{ReservationID: id, Items: []ReservationItem{{highProd, lowLoc, 1}, {lowProd, lowLoc, 1}}})
		must(t, err)
		return id
	}
	low, high := stockKey{lowLoc, lowProd}, stockKey{lowLoc, highProd}
	ops := []struct {
		name string
		// setup runs before the row is held; op runs while it is.
		setup func() func() error
		low   stockKey
		high  stockKey
	}{
		{"reserve", func() func() error { return reserveBoth }, low, high},
		{"commit", func() func() error {
			id := held()
			return func() error { _, err := f.svc.CommitReservation(ctx, id); return err }
		}, low, high},
		{"release", func() func() error {
			id := held()
			return func() error { _, err := f.svc.ReleaseReservation(ctx, id); return err }
		}, low, high},
		{"transfer", func() func() error {
			tr, err := f.svc.CreateTransfer(ctx, NewTransfer{ProductID: lowProd, FromLocationID: highLoc, ToLocationID: lowLoc, Quantity: 1})
			must(t, err)
			return func() error { _, err := f.svc.ApproveTransfer(ctx, tr.ID); return err }
		}, stockKey{lowLoc, lowProd}, stockKey{highLoc, lowProd}},
	}
	for _, o := range ops {
		// Held high: the operation waits there, having locked low.
		if locked, err := lockedWhileBlocked(t, sqlDB, o.high, o.low, o.setup()); err != nil || !locked {
			t.Errorf("%s, waiting for the row it locks second: first row locked %v (err %v), want true", o.name, locked, err)
		}
		// Held low: the operation waits there, before locking high.
		if locked, err := lockedWhileBlocked(t, sqlDB, o.low, o.high, o.setup()); err != nil || locked {
			t.Errorf("%s, waiting for the row it locks first: second row locked %v (err %v), want false", o.name, locked, err)
		}
	}
}

// lockedWhileBlocked holds the lock of stock row held in a transaction of
// its own, runs op, waits until op waits for that transaction, and tells
// whether row probe is locked at that point. It then lets op finish and
// returns op's error.
func lockedWhileBlocked(t *testing.T, sqlDB *sql.DB, held, probe stockKey, op func() error) (bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	blocker, err := sqlDB.BeginTx(ctx, nil)
	must(t, err)
	defer func() { _ = blocker.Rollback() }()
	var pid int
	must(t, blocker.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	_, err = blocker.ExecContext(ctx, `SELECT 1 FROM stock WHERE location_id = $1 AND product_id = $2 FOR UPDATE`,
		held.locationID, held.productID)
	must(t, err)

	done := make(chan error, 1)
	go func() { done <- op() }()
	for waiting := 0; waiting == 0; {
		must(t, sqlDB.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, pid).Scan(&waiting))
		select {
		case err := <-done:
			t.Fatalf("the operation finished (%v) without waiting for the held row", err)
		case <-ctx.Done():
			t.Fatal("the operation never waited for the held row")
		case <-time.After(time.Millisecond):
		}
	}
	// SKIP LOCKED passes over a row another transaction holds.
	probeTx, err := sqlDB.BeginTx(ctx, nil)
	must(t, err)
	var free int
	err = probeTx.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM stock WHERE location_id = $1 AND product_id = $2
		FOR UPDATE SKIP LOCKED) AS x`, probe.locationID, probe.productID).Scan(&free)
	_ = probeTx.Rollback()
	must(t, err)
	must(t, blocker.Rollback())
	return free == 0, <-done
}

// TestReservationOfMaxItems: the largest reservation there may be is
// reserved and committed in one statement each (as many parameters as the
// engines take), with one ledger row and one event per line.
func TestReservationOfMaxItems(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		f := newFixture(t, b, false)
		loc := f.location(t, "MAX")
		items := make([]ReservationItem, MaxItems)
		for i := range items {
			items[i] = ReservationItem{f.product(t, fmt.Sprintf("MAX-%03d", i), 0), loc, int64(1 + i%3)}
			f.receive(t, items[i].ProductID, loc, 3)
		}
		before := len(stockEvents(t, f))
		_, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "max", Items: items})
		must(t, err)
		_, err = f.svc.CommitReservation(ctx, "max")
		must(t, err)
		for _, it := range items {
			f.wantLevel(t, it.ProductID, loc, 3-it.Quantity, 0)
		}
		if n := len(stockEvents(t, f)) - before; n != 2*MaxItems {
			t.Fatalf("%d events for %d lines reserved and committed", n, MaxItems)
		}
	})
}

// movementRow reads the stock ledger back (the service writes it in
// writeStock's statement and never reads it).
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

// TestPipelinedWriteCheck: on PostgreSQL a reserve or settle sends its
// write together with the COMMIT, so the write checks in SQL that it
// touched its rows. Here a trigger makes the stock update touch none: the
// check fails, the COMMIT behind it does not happen, and everything the
// transaction did — the reservation inserted in its first round trip
// included — is rolled back; the service reports the race as a conflict.
// Once the trigger lets updates through, the same connections serve
// reserves and settles again.
func TestPipelinedWriteCheck(t *testing.T) {
	t.Parallel()
	pg := testkit.PostgresBackend(t, "pipelined transactions are PostgreSQL's")
	ctx := context.Background()
	f := newFixture(t, pg, false)
	loc, p := f.location(t, "PIPE"), f.product(t, "PIPE", 0)
	f.receive(t, p, loc, 10)
	for _, q := range []string{
		`CREATE TABLE frozen_stock (product_id TEXT PRIMARY KEY)`,
		`CREATE FUNCTION skip_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF EXISTS (SELECT 1 FROM frozen_stock WHERE product_id = OLD.product_id) THEN RETURN NULL; END IF; RETURN NEW; END $$`,
		`CREATE TRIGGER skip_frozen BEFORE UPDATE ON stock FOR EACH ROW EXECUTE FUNCTION skip_frozen()`,
	} {
		must(t, f.db.Exec(q).Error)
	}
	freeze := func(on bool) {
		if on {
			must(t, f.db.Exec(`INSERT INTO frozen_stock VALUES (?)`, p).Error)
		} else {
			must(t, f.db.Exec(`DELETE FROM frozen_stock`).Error)
		}
	}
	held, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "pipe-held", Items: []ReservationItem{{p, loc, 2}}})
	must(t, err)

	freeze(true)
	before := tableCounts(t, f)
	_, err = f.svc.Reserve(ctx, NewReservation{ReservationID: "pipe-frozen", Items: []ReservationItem{{p, loc, 1}}})
	if !errs.IsKind(err, errs.Conflict) || !errors.Is(err, errRaced) {
		t.Fatalf("reserve whose write touches no row: %v, want a conflict (changed concurrently)", err)
	}
	if _, err := f.svc.CommitReservation(ctx, held.ID); !errs.IsKind(err, errs.Conflict) || !errors.Is(err, errRaced) {
		t.Fatalf("commit whose write touches no row: %v, want a conflict (changed concurrently)", err)
	}
	if after := tableCounts(t, f); !maps.Equal(after, before) {
		t.Fatalf("failed writes left rows behind: %v, before %v", after, before)
	}
	if r, err := f.svc.GetReservation(ctx, held.ID); err != nil || r.Status != ReservationActive {
		t.Fatalf("the reservation whose commit failed: %+v %v, want still active", r, err)
	}
	f.wantLevel(t, p, loc, 10, 2)

	freeze(false)
	if _, err := f.svc.Reserve(ctx, NewReservation{ReservationID: "pipe-after", Items: []ReservationItem{{p, loc, 1}}}); err != nil {
		t.Fatalf("reserve after the failures: %v", err)
	}
	if _, err := f.svc.CommitReservation(ctx, held.ID); err != nil {
		t.Fatalf("commit after the failures: %v", err)
	}
	f.wantLevel(t, p, loc, 8, 1)
}
