package db

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"
)

// sqliteTurnWait bounds how long a transaction waits for its turn: the
// busy timeout SQLite itself would have given it (see sqlitePragmas).
const sqliteTurnWait = 5 * time.Second

// sqlitePool is the connection pool gorm sees for a SQLite database: the
// *sql.DB, except that its transactions take turns in Go before they take
// a connection.
//
// Every transaction on SQLite holds the database's write lock from BEGIN
// (_txlock=immediate), so only one runs at a time anyway. Left to SQLite,
// the others would each hold a pooled connection while they wait in BEGIN,
// polling with growing sleeps. With eight or more of them waiting, the pool
// has nothing left for gorm's statement cache, which prepares a statement
// it has not seen on a free connection of its own while the transaction
// that needs it waits: every transaction then waited out the busy timeout
// and failed. Waiting here holds no connection, and the next transaction
// starts the moment the last one ends rather than at its next poll.
// Another process writing the same file (pos apikey while serving) is
// still handled by SQLite's busy timeout.
type sqlitePool struct {
	*sql.DB
	turn chan struct{} // one token: the transaction that holds it runs
}

func newSQLitePool(sqlDB *sql.DB) *sqlitePool {
	return &sqlitePool{DB: sqlDB, turn: make(chan struct{}, 1)}
}

// GetDBConn gives gorm (gorm.DB.DB) the pool itself.
func (p *sqlitePool) GetDBConn() (*sql.DB, error) { return p.DB, nil }

// BeginTx waits for the turn, then begins the transaction; the turn passes
// on when it commits or rolls back.
func (p *sqlitePool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	wait := time.NewTimer(sqliteTurnWait)
	defer wait.Stop()
	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		// Worded as SQLite's own busy error, which IsSerializationFailure
		// recognises: InTx retries it, then answers errs.Unavailable.
		return nil, fmt.Errorf("sqlite: no turn to write after %s: database is locked", sqliteTurnWait)
	}
	tx, err := p.DB.BeginTx(ctx, opts)
	if err != nil {
		<-p.turn
		return nil, err
	}
	t := &sqliteTx{Tx: tx, pool: p.DB}
	t.release = func() { t.once.Do(func() { <-p.turn }) }
	return t, nil
}

// sqliteTx is a transaction of a sqlitePool: it hands the turn on when it
// ends, however it ends.
type sqliteTx struct {
	*sql.Tx
	pool    *sql.DB
	once    sync.Once
	release func()
}

// PrepareContext prepares query on the pool, not on the transaction.
// gorm's statement cache prepares a statement it has not seen yet through
// the pool it is given, the transaction when one runs; a statement
// prepared on a transaction dies with it, and for every later transaction
// database/sql's Tx.StmtContext compiled it again (SQLite's parser was ~14%
// of the CPU under the mixed load). Prepared on the pool, the statement
// outlives the transaction, and Tx.StmtContext runs it on the
// transaction's connection, compiling it there only the first time that
// connection meets it. Waiting for a connection to prepare on cannot stall
// the transaction: waiting transactions hold none (BeginTx), so the others
// are readers, which never wait for the writer.
//
// A statement about a table this transaction created (the migrations')
// cannot be compiled outside it, on a connection that does not see the
// table yet: that one is prepared on the transaction, as before.
func (t *sqliteTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, err := t.pool.PrepareContext(ctx, query); err == nil {
		return st, nil
	}
	return t.Tx.PrepareContext(ctx, query)
}

// Commit commits and hands the turn on.
func (t *sqliteTx) Commit() error {
	defer t.release()
	return t.Tx.Commit()
}

// Rollback rolls back and hands the turn on.
func (t *sqliteTx) Rollback() error {
	defer t.release()
	return t.Tx.Rollback()
}
