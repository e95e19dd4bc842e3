package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
)

// Pipelined transactions on PostgreSQL.
//
// database/sql sends a transaction's BEGIN, each of its statements and its
// COMMIT as a round trip of its own, so the typical "lock and read, decide
// in Go, write" transaction costs four, and holds its row locks for the
// last two. InPipeline sends BEGIN together with the first statement, and
// the writes queued after the last read together with COMMIT: two round
// trips, with the locks held for one.
//
// The price of sending a write with the COMMIT behind it is that its
// outcome is known only once both ran. A write that must touch an exact
// set of rows therefore checks that itself, in SQL, and fails when it does
// not (a function raising an error, for instance): PostgreSQL then skips
// the COMMIT that follows the failed statement, and the transaction rolls
// back as a whole.

// RowScanner is one row of a result; *sql.Rows and pgx.Rows both are.
type RowScanner interface {
	Scan(dest ...any) error
}

// Pipeline is a PostgreSQL transaction run by InPipeline: statements are
// written with "?" placeholders, as for gorm.
type Pipeline struct {
	ctx    context.Context
	conn   *pgx.Conn
	begun  bool
	queued []pipelined
}

type pipelined struct {
	sql  string
	args []any
}

// Context is the context the transaction runs under.
func (p *Pipeline) Context() context.Context { return p.ctx }

// Stmt is one statement for Send: its SQL, written with "?", its
// arguments, and what reads its rows (nil: nothing).
type Stmt struct {
	SQL  string
	Args []any
	Scan func(RowScanner) error
}

// Query sends what is pending and q in one round trip (see Send), and
// hands each row of q's result to scan.
func (p *Pipeline) Query(q string, args []any, scan func(RowScanner) error) error {
	return p.Send(Stmt{q, args, scan})
}

// Send sends what is pending — BEGIN if nothing was sent yet, then the
// writes queued since — and stmts, all in one round trip, and hands each
// statement's rows to its Scan. Each is a statement of its own, run in
// order: under READ COMMITTED each sees what was committed before it
// started, so a statement after one that waited or took a lock sees what
// the lock's previous holder committed. An error of a queued write is
// returned here.
func (p *Pipeline) Send(stmts ...Stmt) error {
	b := p.pending()
	queued := b.Len()
	for _, st := range stmts {
		b.Queue(Rebind(Postgres, st.SQL), st.Args...)
	}
	br := p.conn.SendBatch(p.ctx, b)
	err := execAll(br, queued)
	for _, st := range stmts {
		if err != nil {
			break
		}
		scan := st.Scan
		if scan == nil {
			scan = func(RowScanner) error { return nil }
		}
		err = scanAll(br, scan)
	}
	return closeBatch(br, err)
}

// Queue adds a write to send with the next Query or, at the latest, with
// the COMMIT. Nothing reads what it returns: a write whose outcome
// matters checks it in SQL (see above).
func (p *Pipeline) Queue(q string, args ...any) {
	p.queued = append(p.queued, pipelined{Rebind(Postgres, q), args})
}

// pending starts a batch with what must precede the next statement.
func (p *Pipeline) pending() *pgx.Batch {
	b := &pgx.Batch{}
	if !p.begun {
		b.Queue("BEGIN")
		p.begun = true
	}
	for _, w := range p.queued {
		b.Queue(w.sql, w.args...)
	}
	p.queued = nil
	return b
}

// commit sends the queued writes and COMMIT in one round trip; a
// transaction that sent and queued nothing sends nothing.
func (p *Pipeline) commit() error {
	if !p.begun && len(p.queued) == 0 {
		return nil
	}
	b := p.pending()
	b.Queue("COMMIT")
	br := p.conn.SendBatch(p.ctx, b)
	err := execAll(br, b.Len()-1)
	if err == nil {
		var tag pgconn.CommandTag
		if tag, err = br.Exec(); err == nil && tag.String() != "COMMIT" {
			// A COMMIT of a transaction that failed answers ROLLBACK.
			err = fmt.Errorf("commit: the transaction was rolled back (%s)", tag)
		}
	}
	return closeBatch(br, err)
}

// closeBatch closes br and returns err, or the error closing found when
// there was none (pgx's Close repeats the first error it met).
func closeBatch(br pgx.BatchResults, err error) error {
	if cerr := br.Close(); err == nil {
		return cerr
	}
	return err
}

// rollback ends a transaction that failed, unless the connection is idle
// already (nothing was sent) or gone (database/sql then drops it).
func (p *Pipeline) rollback() {
	if p.conn.IsClosed() || p.conn.PgConn().TxStatus() == 'I' {
		return
	}
	// Under a context of its own: the transaction's may be what ended it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), 5*time.Second)
	defer cancel()
	if _, err := p.conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = p.conn.PgConn().Close(ctx) // never hand back a connection inside a transaction
	}
}

func execAll(br pgx.BatchResults, n int) error {
	for range n {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	return nil
}

func scanAll(br pgx.BatchResults, scan func(RowScanner) error) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	return EachRow(rows, scan)
}

// Rows is a result being read; *sql.Rows and pgx.Rows both are.
type Rows interface {
	RowScanner
	Next() bool
	Err() error
}

// EachRow hands each row of rows to scan and returns the first error,
// scan's or the result's own. The caller closes rows.
func EachRow(rows Rows, scan func(RowScanner) error) error {
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// InPipeline runs fn as one transaction on a connection of gdb, a
// PostgreSQL database, with the round trips of Pipeline. An error from fn
// rolls the transaction back; otherwise its queued writes are sent with
// the COMMIT. As with InTx, a deadlock or serialization failure runs fn
// again from a clean slate, so fn must be safe to repeat.
func InPipeline(ctx context.Context, gdb *gorm.DB, fn func(p *Pipeline) error) error {
	sqlDB, err := gdb.DB()
	if err != nil {
		return err
	}
	return retryTx(ctx, func() error {
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Raw(func(driverConn any) error {
			sc, ok := driverConn.(*stdlib.Conn)
			if !ok {
				return fmt.Errorf("pipelined transaction on a %T, not a PostgreSQL connection", driverConn)
			}
			p := &Pipeline{ctx: ctx, conn: sc.Conn()}
			err := fn(p)
			if err == nil {
				err = p.commit()
			}
			if err != nil {
				p.rollback()
			}
			return err
		})
	})
}
