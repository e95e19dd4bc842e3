package notification

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// BenchmarkOrderConfirmed handles orders.OrderConfirmed events (an e-mail
// and an SMS each) as the bus hands them on their first delivery: one by
// one through Handle, and 16 at a time (the bus's default read) through
// HandleBatch. stmts/event counts the round trips the notification
// database sees, BEGIN and COMMIT included; the customer lookup goes to
// the customer context and is not counted.
func BenchmarkOrderConfirmed(b *testing.B) {
	customers := newCustomers(b)
	ann := register(b, customers, "Ann", testkit.ID("ann")+"@example.com", "+1 514-555-0100")
	ctx := firstDelivery(b)
	for _, be := range testkit.Backends(b) {
		for _, size := range []int{1, 16} {
			name := be.Name + "/handle"
			if size > 1 {
				name = fmt.Sprintf("%s/batch%d", be.Name, size)
			}
			b.Run(name, func(b *testing.B) {
				gdb, n := countStatements(openDB(b, be))
				c := NewConsumer(gdb, customers, NewLogSender(testkit.Logger(), nil), Options{Logger: testkit.Logger()})
				envs := make([]events.Envelope, b.N)
				for i := range envs {
					envs[i] = orderConfirmed(b, ctx, testkit.ID("ord"), ann.ID, 1000)
				}
				n.Store(0)
				b.ResetTimer()
				for start := 0; start < len(envs); start += size {
					batch := envs[start:min(start+size, len(envs))]
					if len(batch) == 1 {
						must(b, c.Handle(ctx, batch[0]))
					} else {
						must(b, c.HandleBatch(ctx, batch))
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(n.Load())/float64(b.N), "stmts/event")
			})
		}
	}
}

// countStatements is gdb with every statement, BEGIN and COMMIT counted in
// the returned counter.
func countStatements(gdb *gorm.DB) (*gorm.DB, *atomic.Int64) {
	n := new(atomic.Int64)
	counted := gdb.Session(&gorm.Session{Context: context.Background()})
	pool := &countingPool{ConnPool: counted.Statement.ConnPool, n: n}
	counted.Config.ConnPool, counted.Statement.ConnPool = pool, pool
	return counted, n
}

// countingPool counts what goes through a gorm connection pool.
type countingPool struct {
	gorm.ConnPool
	n *atomic.Int64
}

func (p *countingPool) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	p.n.Add(1)
	return p.ConnPool.ExecContext(ctx, q, args...)
}

func (p *countingPool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	p.n.Add(1)
	return p.ConnPool.QueryContext(ctx, q, args...)
}

func (p *countingPool) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	p.n.Add(1)
	return p.ConnPool.QueryRowContext(ctx, q, args...)
}

// BeginTx counts the BEGIN and hands out a transaction that counts its
// statements and its COMMIT or ROLLBACK.
func (p *countingPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	p.n.Add(1)
	var (
		tx  gorm.ConnPool
		err error
	)
	switch b := p.ConnPool.(type) {
	case gorm.TxBeginner:
		tx, err = b.BeginTx(ctx, opts)
	case gorm.ConnPoolBeginner:
		tx, err = b.BeginTx(ctx, opts)
	default:
		return nil, gorm.ErrInvalidTransaction
	}
	if err != nil {
		return nil, err
	}
	return &countingTx{countingPool: countingPool{ConnPool: tx, n: p.n}, tx: tx.(gorm.TxCommitter)}, nil
}

// countingTx is a counted transaction.
type countingTx struct {
	countingPool
	tx gorm.TxCommitter
}

func (t *countingTx) Commit() error {
	t.n.Add(1)
	return t.tx.Commit()
}

func (t *countingTx) Rollback() error {
	t.n.Add(1)
	return t.tx.Rollback()
}
