package db_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestSQLiteTransactionsTakeTurns: more transactions at once than the pool
// has connections, each running statements gorm's cache has not prepared
// yet, some of them also run outside any transaction. Left to SQLite's
// busy wait, the waiting transactions held every connection and the cache
// had none to prepare on: they all waited out the busy timeout and failed
// ("database is locked"). Taking turns in Go, they all commit, promptly.
func TestSQLiteTransactionsTakeTurns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gdb, err := db.Open(ctx, testkit.SQLite.Options(t, "turns"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	if err := gdb.Exec(`CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL)`).Error; err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 24, 3
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				// A statement text new to the cache each round, the same
				// for every worker: the first to prepare it makes the
				// others wait for it.
				read := fmt.Sprintf(`SELECT COUNT(*) FROM counters WHERE n >= %d`, r)
				if w%3 == 0 {
					var n int64
					if err := gdb.Raw(read).Scan(&n).Error; err != nil {
						errs <- fmt.Errorf("read outside a transaction: %w", err)
					}
				}
				err := gdb.Transaction(func(tx *gorm.DB) error {
					var n int64
					if err := tx.Raw(read).Scan(&n).Error; err != nil {
						return err
					}
					return tx.Exec(fmt.Sprintf(`INSERT INTO counters (name, n) VALUES (?, 1)
						ON CONFLICT (name) DO UPDATE SET n = n + %d`, 1+r%2), fmt.Sprintf("w%d", w)).Error
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Well under the 5 s busy timeout each stalled transaction used to
	// wait out.
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("%d transactions took %s", workers*rounds, took)
	}
	var total int64
	if err := gdb.Raw(`SELECT SUM(n) FROM counters`).Scan(&total).Error; err != nil {
		t.Fatal(err)
	}
	if want := int64(workers * (1 + 1 + 2)); total != want { // rounds add 1, 1 (insert), 2
		t.Errorf("sum %d, want %d: a transaction was lost", total, want)
	}
}

// TestSQLiteWaitingTransactionsHoldNoConnection: while one transaction
// runs, twenty more wait for their turn without holding a connection, so
// a read outside any transaction — here of a statement the cache has not
// prepared, which needs a connection of its own to prepare on — is
// answered at once instead of after the busy timeout.
func TestSQLiteWaitingTransactionsHoldNoConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gdb, err := db.Open(ctx, testkit.SQLite.Options(t, "waiting"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	sqlDB, err := gdb.DB()
	if err != nil {
		t.Fatal(err)
	}
	if err := gdb.Exec(`CREATE TABLE items (id INTEGER PRIMARY KEY)`).Error; err != nil {
		t.Fatal(err)
	}
	holding, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- gdb.Transaction(func(tx *gorm.DB) error {
			close(holding)
			<-release
			return tx.Exec(`INSERT INTO items (id) VALUES (1)`).Error
		})
	}()
	<-holding
	const waiting = 20
	done := make(chan error, waiting)
	for i := range waiting {
		go func() {
			done <- gdb.Transaction(func(tx *gorm.DB) error {
				return tx.Exec(`INSERT INTO items (id) VALUES (?)`, 100+i).Error
			})
		}()
	}
	time.Sleep(200 * time.Millisecond) // they are all waiting by now
	if inUse := sqlDB.Stats().InUse; inUse > 1 {
		t.Errorf("%d connections in use while one transaction runs and %d wait", inUse, waiting)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var n int64
	if err := gdb.WithContext(rctx).Raw(`SELECT COUNT(*) FROM items WHERE id > 0 -- never seen`).Scan(&n).Error; err != nil {
		t.Errorf("a read while transactions wait: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range waiting {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if err := gdb.Raw(`SELECT COUNT(*) FROM items`).Scan(&n).Error; err != nil || n != waiting+1 {
		t.Errorf("%d rows (%v), want %d", n, err, waiting+1)
	}
}

// TestSQLiteStatementsOutliveTheirTransaction: a statement gorm's cache
// first meets inside a transaction is prepared on the pool, so it is
// still open once the transaction ends and later transactions reuse it
// (database/sql then compiles it at most once per connection). Prepared on
// the transaction, it was closed at commit, and every later transaction
// compiled it again.
func TestSQLiteStatementsOutliveTheirTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gdb, err := db.Open(ctx, testkit.SQLite.Options(t, "stmts"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	if err := gdb.Exec(`CREATE TABLE things (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)`).Error; err != nil {
		t.Fatal(err)
	}
	const insert = `INSERT INTO things (id, n) VALUES (?, ?) -- first met in a transaction`
	for i := range 3 {
		err := gdb.Transaction(func(tx *gorm.DB) error { return tx.Exec(insert, i, i).Error })
		if err != nil {
			t.Fatal(err)
		}
	}
	cache, ok := gdb.ConnPool.(*gorm.PreparedStmtDB)
	if !ok {
		t.Fatalf("gorm's statement cache is off on SQLite (%T)", gdb.ConnPool)
	}
	st, ok := cache.Stmts.Get(insert)
	if !ok {
		t.Fatal("the statement is not in gorm's cache")
	}
	if _, err := st.Stmt.ExecContext(ctx, 10, 10); err != nil {
		t.Fatalf("the cached statement died with its transaction: %v", err)
	}
	var n int64
	if err := gdb.Raw(`SELECT COUNT(*) FROM things`).Scan(&n).Error; err != nil || n != 4 {
		t.Fatalf("%d rows, %v; want 4", n, err)
	}
}
