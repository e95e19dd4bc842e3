package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/outbox"
	"github.com/retailco/pos/internal/platform/page"
)

// sagaRow is the sagas table. The engine works on it directly: it is the
// saga's whole persistent state, and every change to it is one
// version-checked write.
type sagaRow struct {
	ID            string `gorm:"primaryKey"`
	Kind          string
	Status        string
	Version       int
	CustomerID    string
	SessionID     string
	LocationID    string
	ReservationID string
	PaymentID     string
	OrderID       string
	TotalCents    int64
	Currency      string
	// Data is the saga's sagaData as JSON, kept in saga_data (read with
	// the row by a join, written apart: see 0002_saga_data.sql).
	Data         string `gorm:"->"`
	PaymentToken string
	FailedStep   string
	Error        string
	ErrorKind    string
	ErrorStatus  int
	LockKey      *string
	Owner        string
	LeaseUntil   *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
	FinishedAt   *time.Time

	// stored is the status as the database holds it at Version: what
	// this process read or last wrote. A write is conditional on that
	// version, so a write whose row.Status is final while stored is not
	// is the one write that makes the saga final.
	stored string `gorm:"-"`
	// storedData is the Data the database holds: a write carries Data
	// only when it differs.
	storedData string `gorm:"-"`
}

func (sagaRow) TableName() string { return "sagas" }

// markStored records that the database now holds row as it is.
func (r *sagaRow) markStored() { r.stored, r.storedData = r.Status, r.Data }

// dataRow is the saga_data table.
type dataRow struct {
	SagaID string `gorm:"primaryKey"`
	Data   string
}

func (dataRow) TableName() string { return "saga_data" }

// withData selects saga rows with their data.
func withData(q *gorm.DB) *gorm.DB {
	return q.Select("sagas.*, saga_data.data").Joins("JOIN saga_data ON saga_data.saga_id = sagas.id")
}

// makesFinal tells whether writing row makes a checkout final: the one
// write that publishes its outcome.
func (r *sagaRow) makesFinal() bool {
	return r.Kind == KindCheckout && Final(r.Status) && !Final(r.stored)
}

// mutable are the columns a saga write may change.
var mutable = []string{"status", "version", "reservation_id", "payment_id", "order_id", "total_cents", "currency",
	"payment_token", "failed_step", "error", "error_kind", "error_status", "lock_key", "owner",
	"lease_until", "updated_at", "finished_at"}

// stepRow is the saga_steps table.
type stepRow struct {
	SagaID       string `gorm:"primaryKey"`
	Seq          int    `gorm:"primaryKey"`
	Step         string
	Compensation bool
	Status       string
	Attempts     int
	Request      string
	Response     string
	Error        string
	ErrorKind    string
	StartedAt    time.Time
	AttemptedAt  time.Time
	FinishedAt   *time.Time
}

func (stepRow) TableName() string { return "saga_steps" }

// keyRow is the checkout_keys table.
type keyRow struct {
	Scope       string `gorm:"primaryKey"`
	IdemKey     string `gorm:"primaryKey"`
	RequestHash string
	SagaID      string
	CreatedAt   time.Time
}

func (keyRow) TableName() string { return "checkout_keys" }

func (r sagaRow) domain(steps []stepRow, now time.Time) Saga {
	s := Saga{
		ID: r.ID, Kind: r.Kind, Status: r.Status, CustomerID: r.CustomerID, SessionID: r.SessionID,
		LocationID: r.LocationID, ReservationID: r.ReservationID, PaymentID: r.PaymentID, OrderID: r.OrderID,
		TotalCents: r.TotalCents, Currency: r.Currency, FailedStep: r.FailedStep, Error: r.Error,
		ErrorKind: r.ErrorKind, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		Steps: []SagaStep{}, Compensations: []SagaStep{},
	}
	end := now
	if r.FinishedAt != nil {
		f := r.FinishedAt.UTC()
		s.FinishedAt, end = &f, f
	}
	s.DurationMS = end.Sub(s.CreatedAt).Milliseconds()
	for _, st := range steps {
		d := st.domain()
		if d.Compensation {
			s.Compensations = append(s.Compensations, d)
		} else {
			s.Steps = append(s.Steps, d)
		}
	}
	return s
}

func (r stepRow) domain() SagaStep {
	s := SagaStep{
		Seq: r.Seq, Step: r.Step, Compensation: r.Compensation, Status: r.Status, Attempts: r.Attempts,
		Request: rawJSON(r.Request), Response: rawJSON(r.Response), Error: r.Error, ErrorKind: r.ErrorKind,
		StartedAt: r.StartedAt.UTC(),
	}
	end := r.AttemptedAt
	if r.FinishedAt != nil {
		f := r.FinishedAt.UTC()
		s.FinishedAt, end = &f, f
	}
	s.DurationMS = end.Sub(r.StartedAt).Milliseconds()
	return s
}

func rawJSON(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

type store struct {
	db *gorm.DB
	// oneStatement: the engine (PostgreSQL) takes a saga write as one
	// statement of data-modifying CTEs, one round trip instead of a
	// transaction's four or five.
	oneStatement bool
}

func newStore(gdb *gorm.DB) *store {
	return &store{db: gdb, oneStatement: db.DialectOf(gdb) == db.Postgres}
}

var (
	// errLostLease: the saga's version or owner is not what this
	// orchestrator wrote last; another one drives it now.
	errLostLease = errors.New("saga: lease lost to another orchestrator")
	// errKeyTaken: the idempotency key is already used in its scope.
	errKeyTaken = errors.New("saga: idempotency key taken")
	// errLocked: another live saga holds the lock key (the cart is being
	// checked out, the order is being cancelled).
	errLocked = errors.New("saga: lock key taken")
)

// insert writes a new saga, its steps so far (the steps done before it
// was written, and the first attempt of the step its driver calls at
// once, without a "before" write of its own) and, when the caller gave
// one, its idempotency key, in one transaction. The
// saga goes first: two requests with the same key and body race on the
// saga's lock key and the loser, once the winner commits, finds the key
// and replays.
func (s *store) insert(ctx context.Context, row *sagaRow, steps []stepRow, key *keyRow) error {
	if s.oneStatement {
		return s.insertInOneStatement(ctx, row, steps, key)
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(row).Error; err != nil {
			if db.IsUniqueViolation(err) {
				return errLocked
			}
			return fmt.Errorf("insert saga: %w", err)
		}
		if err := tx.Create(&dataRow{SagaID: row.ID, Data: row.Data}).Error; err != nil {
			return fmt.Errorf("insert saga data: %w", err)
		}
		for i := range steps {
			if err := tx.Create(&steps[i]).Error; err != nil {
				return fmt.Errorf("insert saga step: %w", err)
			}
		}
		if key != nil {
			if err := tx.Create(key).Error; err != nil {
				if db.IsUniqueViolation(err) {
					return errKeyTaken
				}
				return fmt.Errorf("insert idempotency key: %w", err)
			}
		}
		return nil
	})
	if err == nil {
		row.markStored()
	}
	return err
}

// insertStepCTE appends to q the CTE st<i> inserting st once the saga's
// CTE s has written its row, and returns args with its arguments. Casts,
// because a SELECT list's parameters would otherwise be taken for text.
func insertStepCTE(q *strings.Builder, i int, st *stepRow, args []any) []any {
	fmt.Fprintf(q, `, st%d AS (INSERT INTO saga_steps (saga_id, seq, step, compensation, status, attempts,
 request, response, error, error_kind, started_at, attempted_at, finished_at)
 SELECT s.id, ?::integer, ?::text, ?::boolean, ?::text, ?::integer, ?::text, ?::text, ?::text, ?::text,
 ?::timestamp, ?::timestamp, ?::timestamp FROM s)`, i)
	return append(args, st.Seq, st.Step, st.Compensation, st.Status, st.Attempts, st.Request, st.Response,
		st.Error, st.ErrorKind, st.StartedAt, st.AttemptedAt, st.FinishedAt)
}

// insertInOneStatement is insert as one PostgreSQL statement (see
// saveInOneStatement). Which unique constraint refused it tells a cart
// already being checked out from a key already used.
func (s *store) insertInOneStatement(ctx context.Context, row *sagaRow, steps []stepRow, key *keyRow) error {
	var q strings.Builder
	q.WriteString(`WITH s AS (INSERT INTO sagas (id, kind, status, version, customer_id, session_id, location_id,
 reservation_id, payment_id, order_id, total_cents, currency, payment_token, failed_step, error, error_kind,
 error_status, lock_key, owner, lease_until, created_at, updated_at, finished_at)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id),
 d AS (INSERT INTO saga_data (saga_id, data) SELECT s.id, ?::text FROM s)`)
	args := []any{row.ID, row.Kind, row.Status, row.Version, row.CustomerID, row.SessionID, row.LocationID,
		row.ReservationID, row.PaymentID, row.OrderID, row.TotalCents, row.Currency, row.PaymentToken,
		row.FailedStep, row.Error, row.ErrorKind, row.ErrorStatus, row.LockKey, row.Owner, row.LeaseUntil,
		row.CreatedAt, row.UpdatedAt, row.FinishedAt, row.Data}
	for i := range steps {
		args = insertStepCTE(&q, i, &steps[i], args)
	}
	if key != nil {
		q.WriteString(`, k AS (INSERT INTO checkout_keys (scope, idem_key, request_hash, saga_id, created_at)
 SELECT ?::text, ?::text, ?::text, s.id, ?::timestamp FROM s)`)
		args = append(args, key.Scope, key.IdemKey, key.RequestHash, key.CreatedAt)
	}
	q.WriteString(` SELECT id FROM s`)
	_, err := s.ids(ctx, q.String(), args...)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		row.markStored()
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == "23505" && strings.HasPrefix(pgErr.ConstraintName, "checkout_keys"):
		return errKeyTaken
	case db.IsUniqueViolation(err):
		return errLocked
	}
	return fmt.Errorf("insert saga: %w", err)
}

func (s *store) key(ctx context.Context, scope, key string) (keyRow, error) {
	var row keyRow
	err := s.db.WithContext(ctx).Where("scope = ? AND idem_key = ?", scope, key).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return keyRow{}, fmt.Errorf("idempotency key: %w", errs.NotFound)
	}
	if err != nil {
		return keyRow{}, fmt.Errorf("get idempotency key: %w", err)
	}
	return row, nil
}

func (s *store) load(ctx context.Context, id string) (sagaRow, error) {
	var row sagaRow
	err := withData(s.db.WithContext(ctx)).Where("sagas.id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return sagaRow{}, fmt.Errorf("saga %q: %w", id, errs.NotFound)
	}
	if err != nil {
		return sagaRow{}, fmt.Errorf("get saga: %w", err)
	}
	row.markStored()
	return row, nil
}

// byLock finds the live saga holding a lock key.
func (s *store) byLock(ctx context.Context, lockKey string) (sagaRow, error) {
	var row sagaRow
	err := withData(s.db.WithContext(ctx)).Where("sagas.lock_key = ?", lockKey).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return sagaRow{}, fmt.Errorf("saga holding %q: %w", lockKey, errs.NotFound)
	}
	if err != nil {
		return sagaRow{}, fmt.Errorf("get saga by lock: %w", err)
	}
	return row, nil
}

func (s *store) steps(ctx context.Context, id string) ([]stepRow, error) {
	var rows []stepRow
	if err := s.db.WithContext(ctx).Where("saga_id = ?", id).Order("seq").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("get saga steps: %w", err)
	}
	return rows, nil
}

// claim makes owner the driver of an unfinished saga whose lease is free:
// expired, never set, or already owner's (the same orchestrator,
// restarted). It bumps the version so a previous driver's next write
// fails.
func (s *store) claim(ctx context.Context, id, owner string, leaseUntil, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&sagaRow{}).
		Where("id = ? AND finished_at IS NULL AND (owner = ? OR owner = '' OR lease_until IS NULL OR lease_until < ?)", id, owner, now).
		Updates(map[string]any{"owner": owner, "lease_until": leaseUntil, "version": gorm.Expr("version + 1"), "updated_at": now})
	if res.Error != nil {
		return false, fmt.Errorf("claim saga %s: %w", id, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// saveTx writes the saga's mutable columns, conditional on the version
// this orchestrator read and on its ownership; row.Version moves on once
// the transaction commits (see commit).
func saveTx(tx *gorm.DB, row *sagaRow, owner string) error {
	prev := row.Version
	row.Version++
	res := tx.Model(&sagaRow{}).Where("id = ? AND version = ? AND owner = ?", row.ID, prev, owner).Select(mutable).Updates(row)
	if res.Error != nil {
		row.Version = prev
		return fmt.Errorf("update saga %s: %w", row.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		row.Version = prev
		return errLostLease
	}
	if row.Data != row.storedData {
		if err := tx.Model(&dataRow{}).Where("saga_id = ?", row.ID).Update("data", row.Data).Error; err != nil {
			row.Version = prev
			return fmt.Errorf("update saga %s data: %w", row.ID, err)
		}
	}
	if row.makesFinal() {
		return publishOutcome(tx, row) // exactly once: only the write that makes it final
	}
	return nil
}

// commit runs write, a saga write, in one transaction; when it fails the
// row keeps the version it had (a later write must be conditional on what
// the database holds), when it commits the row's stored status moves on.
func (s *store) commit(ctx context.Context, row *sagaRow, write func(tx *gorm.DB) error) error {
	prev := row.Version
	err := s.db.WithContext(ctx).Transaction(write)
	if err != nil {
		row.Version = prev
		return err
	}
	row.markStored()
	return nil
}

func (s *store) save(ctx context.Context, row *sagaRow, owner string) error {
	if s.oneStatement {
		return s.saveInOneStatement(ctx, row, owner, nil)
	}
	return s.commit(ctx, row, func(tx *gorm.DB) error { return saveTx(tx, row, owner) })
}

// stepWrite is a step row a saga write carries: inserted (a step's first
// attempt; its Seq given by the caller, who knows the saga's steps: only
// the lease holder writes them, and a stale number fails on the primary
// key) or updated.
type stepWrite struct {
	row    *stepRow
	insert bool
}

// saveWithSteps writes the saga and its changed steps in one transaction:
// a step's outcome and the state it leads to are recorded together — and,
// on the way forward, the next step's first attempt with them — so a crash
// can never leave a step done and the saga not knowing it.
func (s *store) saveWithSteps(ctx context.Context, row *sagaRow, owner string, steps ...stepWrite) error {
	if s.oneStatement {
		return s.saveInOneStatement(ctx, row, owner, steps)
	}
	return s.commit(ctx, row, func(tx *gorm.DB) error {
		if err := saveTx(tx, row, owner); err != nil {
			return err
		}
		for _, w := range steps {
			if w.insert {
				if err := tx.Create(w.row).Error; err != nil {
					return fmt.Errorf("insert saga step: %w", err)
				}
				continue
			}
			err := tx.Model(&stepRow{}).Where("saga_id = ? AND seq = ?", w.row.SagaID, w.row.Seq).
				Select("status", "attempts", "request", "response", "error", "error_kind", "attempted_at", "finished_at").
				Updates(w.row).Error
			if err != nil {
				return fmt.Errorf("update saga step: %w", err)
			}
		}
		return nil
	})
}

// saveInOneStatement is saveWithSteps as one PostgreSQL statement: the
// saga's version-checked UPDATE in a CTE whose RETURNING row the step
// writes — and, for the write that makes a checkout final, its outcome
// event's outbox row — depend on, so that all of them happen or (the
// version or owner is not what this orchestrator wrote last) none. A saga
// write is the checkout's most frequent database call; as a transaction
// it costs BEGIN, three or four statements and COMMIT, each a round trip
// that holds a pooled connection.
func (s *store) saveInOneStatement(ctx context.Context, row *sagaRow, owner string, steps []stepWrite) error {
	var q strings.Builder
	q.WriteString(`WITH s AS (UPDATE sagas SET status = ?, version = ?, reservation_id = ?, payment_id = ?, order_id = ?,
 total_cents = ?, currency = ?, payment_token = ?, failed_step = ?, error = ?, error_kind = ?,
 error_status = ?, lock_key = ?, owner = ?, lease_until = ?, updated_at = ?, finished_at = ?
 WHERE id = ? AND version = ? AND owner = ? RETURNING id)`)
	args := []any{row.Status, row.Version + 1, row.ReservationID, row.PaymentID, row.OrderID,
		row.TotalCents, row.Currency, row.PaymentToken, row.FailedStep, row.Error, row.ErrorKind,
		row.ErrorStatus, row.LockKey, owner, row.LeaseUntil, row.UpdatedAt, row.FinishedAt,
		row.ID, row.Version, owner}
	if row.Data != row.storedData {
		q.WriteString(`, d AS (UPDATE saga_data SET data = ? WHERE saga_id = ? AND EXISTS (SELECT 1 FROM s))`)
		args = append(args, row.Data, row.ID)
	}
	for i, w := range steps {
		st := w.row
		if w.insert {
			args = insertStepCTE(&q, i, st, args)
			continue
		}
		fmt.Fprintf(&q, `, st%d AS (UPDATE saga_steps SET status = ?, attempts = ?, request = ?, response = ?, error = ?,
 error_kind = ?, attempted_at = ?, finished_at = ? WHERE saga_id = ? AND seq = ? AND EXISTS (SELECT 1 FROM s))`, i)
		args = append(args, st.Status, st.Attempts, st.Request, st.Response, st.Error, st.ErrorKind, st.AttemptedAt,
			st.FinishedAt, st.SagaID, st.Seq)
	}
	if row.makesFinal() {
		// Exactly once: only the write that makes it final carries it.
		final := *row
		final.Version++
		env, err := outcomeEvent(ctx, &final)
		if err != nil {
			return err
		}
		vals, err := outbox.Values(env)
		if err != nil {
			return err
		}
		q.WriteString(`, ob AS (INSERT INTO outbox (` + outbox.Columns + `)
 SELECT ?::text, ?::text, ?::text, ?::text, ?::timestamptz FROM s)`)
		args = append(args, vals[0]...)
	}
	q.WriteString(` SELECT id FROM s`)
	updated, err := s.ids(ctx, q.String(), args...)
	if err != nil {
		return fmt.Errorf("update saga %s: %w", row.ID, err)
	}
	if len(updated) == 0 {
		return errLostLease
	}
	row.Version++
	row.markStored()
	return nil
}

// ids runs one of the single-statement writes and returns the ids it
// answers. It goes to database/sql directly: gorm's statement building
// (reflection over some forty arguments) took more CPU than the write.
func (s *store) ids(ctx context.Context, q string, args ...any) ([]string, error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	rows, err := sqlDB.QueryContext(ctx, db.Rebind(db.Postgres, q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func (s *store) list(ctx context.Context, f Filter) (page.Result[sagaRow], error) {
	q := s.db.WithContext(ctx).Model(&sagaRow{})
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Kind != "" {
		q = q.Where("kind = ?", f.Kind)
	}
	if f.CustomerID != "" {
		q = q.Where("customer_id = ?", f.CustomerID)
	}
	if f.OrderID != "" {
		q = q.Where("order_id = ?", f.OrderID)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[sagaRow]{}, fmt.Errorf("count sagas: %w", err)
	}
	var rows []sagaRow
	if total > 0 {
		if err := q.Order("created_at DESC, id DESC").Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error; err != nil {
			return page.Result[sagaRow]{}, fmt.Errorf("list sagas: %w", err)
		}
	}
	return page.Result[sagaRow]{Items: rows, Total: total}, nil
}

// unfinished lists sagas not in a final state, oldest first, with the
// lease columns Resume needs to decide which it may claim.
func (s *store) unfinished(ctx context.Context, limit int) ([]sagaRow, error) {
	var rows []sagaRow
	err := s.db.WithContext(ctx).Select("id", "owner", "lease_until").Where("finished_at IS NULL").
		Order("created_at, id").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list unfinished sagas: %w", err)
	}
	return rows, nil
}
