package db

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/errs"
)

// maxTxAttempts bounds the retries of a transaction the engine aborted for
// a reason a retry can cure (PostgreSQL deadlock or serialization failure,
// SQLite still busy after busy_timeout).
const maxTxAttempts = 4

// InTx runs fn in a transaction on gdb, again when the engine asks for a
// retry. fn must be safe to repeat: it starts from a clean slate each time.
// Contention that outlasts the retries is errs.Unavailable (retry later),
// never a 500.
func InTx(ctx context.Context, gdb *gorm.DB, fn func(tx *gorm.DB) error) error {
	return retryTx(ctx, func() error { return gdb.WithContext(ctx).Transaction(fn) })
}

// retryTx runs attempt, a whole transaction, again while the engine asks
// for a retry, with a jittered backoff.
func retryTx(ctx context.Context, attempt func() error) error {
	var err error
	for n := 1; n <= maxTxAttempts; n++ {
		err = attempt()
		if err == nil || !IsSerializationFailure(err) {
			return err
		}
		// Jittered backoff, so the transactions that collided do not
		// collide again in lockstep.
		wait := time.Duration(rand.Int64N(int64(n) * int64(10*time.Millisecond)))
		select {
		case <-ctx.Done():
			return fmt.Errorf("database contention: %w (%v)", errs.Timeout, ctx.Err())
		case <-time.After(wait):
		}
	}
	return fmt.Errorf("database contention, retry later: %w (%v)", errs.Unavailable, err)
}

// ScanRow runs q, which returns at most one row, and scans that row into
// dest; sql.ErrNoRows when there is none. Use it instead of
// q.Row().Scan(…): with prepared statements (on SQLite, see Open) gorm's
// Row() answers a statement that failed to prepare (a cancelled context,
// a busy database) with an empty *sql.Row whose Scan panics, losing the
// error (go-gorm/gorm#7858); Rows() reports it.
func ScanRow(q *gorm.DB, dest ...any) error {
	rows, err := q.Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}
