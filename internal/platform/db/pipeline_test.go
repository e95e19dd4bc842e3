package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/testkit"
)

// pipelineDB is a PostgreSQL database with an account table whose balance
// may not go negative, and a function that fails its statement when told.
func pipelineDB(t *testing.T, url string) *gorm.DB {
	t.Helper()
	ctx := context.Background()
	gdb, err := db.Open(ctx, db.Options{Context: "pipeline", URL: url, MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	for _, q := range []string{
		`CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL CHECK (balance >= 0))`,
		`INSERT INTO accounts VALUES ('a', 100), ('b', 0)`,
		`CREATE SEQUENCE attempts`,
		`CREATE FUNCTION must(ok boolean) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN IF NOT ok THEN RAISE EXCEPTION 'check failed' USING ERRCODE = 'PT001'; END IF; RETURN true; END $$`,
		// Fails with a serialization failure on its first call only
		// (sequences are not transactional).
		`CREATE FUNCTION conflict_once() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN IF nextval('attempts') = 1 THEN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END IF; RETURN true; END $$`,
	} {
		if err := gdb.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	return gdb
}

func balances(t *testing.T, gdb *gorm.DB) (a, b int64) {
	t.Helper()
	if err := db.ScanRow(gdb.Raw(`SELECT (SELECT balance FROM accounts WHERE id = 'a'), (SELECT balance FROM accounts WHERE id = 'b')`), &a, &b); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// transfer moves n from a to b as a read, a decision and queued writes
// that check themselves.
func transfer(n int64) func(p *db.Pipeline) error {
	return func(p *db.Pipeline) error {
		var balance int64
		err := p.Query(`SELECT balance FROM accounts WHERE id = ? FOR UPDATE`, []any{"a"}, func(r db.RowScanner) error {
			return r.Scan(&balance)
		})
		if err != nil {
			return err
		}
		if balance < n {
			return errors.New("insufficient funds")
		}
		p.Queue(`WITH w AS (UPDATE accounts SET balance = balance - ? WHERE id = ? RETURNING 1) SELECT must((SELECT COUNT(*) FROM w) = 1)`, n, "a")
		p.Queue(`WITH w AS (UPDATE accounts SET balance = balance + ? WHERE id = ? RETURNING 1) SELECT must((SELECT COUNT(*) FROM w) = 1)`, n, "b")
		return nil
	}
}

// TestPipeline: a pipelined transaction commits its queued writes with its
// COMMIT; a queued write that fails its own check, or an error of fn,
// rolls back everything the transaction did; a serialization failure runs
// it again; and the connection goes back to the pool outside any
// transaction (the pool has one, so every next call reuses it).
func TestPipeline(t *testing.T) {
	t.Parallel()
	url := testkit.PostgresURL(t)
	gdb := pipelineDB(t, url)
	ctx := context.Background()

	if err := db.InPipeline(ctx, gdb, transfer(30)); err != nil {
		t.Fatal(err)
	}
	if a, b := balances(t, gdb); a != 70 || b != 30 {
		t.Fatalf("after a transfer of 30: a %d, b %d", a, b)
	}
	backend := func() (pid int64) {
		if err := db.ScanRow(gdb.Raw(`SELECT pg_backend_pid()`), &pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	before := backend()

	// fn refuses: nothing of it stays.
	if err := db.InPipeline(ctx, gdb, transfer(500)); err == nil || !strings.Contains(err.Error(), "insufficient") {
		t.Fatalf("transfer of 500: %v", err)
	}

	// A queued write whose check fails, sent with the COMMIT: the COMMIT
	// does not happen and the write before it in the batch is undone.
	err := db.InPipeline(ctx, gdb, func(p *db.Pipeline) error {
		if err := transfer(10)(p); err != nil {
			return err
		}
		p.Queue(`WITH w AS (UPDATE accounts SET balance = 0 WHERE id = 'nobody' RETURNING 1) SELECT must((SELECT COUNT(*) FROM w) = 1)`)
		return nil
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "PT001" {
		t.Fatalf("a failed check with the COMMIT: %v, want its error", err)
	}
	if a, b := balances(t, gdb); a != 70 || b != 30 {
		t.Fatalf("after a failed check: a %d, b %d, want 70 and 30", a, b)
	}

	// A queued write failing at the next Query: the error is the Query's.
	err = db.InPipeline(ctx, gdb, func(p *db.Pipeline) error {
		p.Queue(`UPDATE accounts SET balance = -1 WHERE id = 'a'`)
		return p.Query(`SELECT 1`, nil, func(db.RowScanner) error { return nil })
	})
	if !db.IsCheckViolation(err) {
		t.Fatalf("a queued write breaking a CHECK: %v", err)
	}

	// A serialization failure: the whole transaction runs again.
	runs := 0
	err = db.InPipeline(ctx, gdb, func(p *db.Pipeline) error {
		runs++
		if err := transfer(5)(p); err != nil {
			return err
		}
		p.Queue(`SELECT must(conflict_once())`)
		return nil
	})
	if err != nil || runs != 2 {
		t.Fatalf("after a serialization failure: %v, %d runs, want success in 2", err, runs)
	}
	if a, b := balances(t, gdb); a != 65 || b != 35 {
		t.Fatalf("after the retried transfer: a %d, b %d, want 65 and 35", a, b)
	}

	// Nothing sent, nothing to do.
	if err := db.InPipeline(ctx, gdb, func(*db.Pipeline) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// The failed transactions were rolled back on their connection, which
	// the pool kept (database/sql would drop one left in a transaction).
	if after := backend(); after != before {
		t.Errorf("the pool's connection changed (backend %d, then %d): a failed transaction was not rolled back", before, after)
	}
	// No transaction was left open on the pooled connection: another
	// connection locks the row every transfer locked, without waiting.
	other, err := db.Open(ctx, db.Options{Context: "pipeline", URL: url, MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(other)
	if err := other.Transaction(func(tx *gorm.DB) error {
		return tx.Exec(`SELECT balance FROM accounts WHERE id = 'a' FOR UPDATE NOWAIT`).Error
	}); err != nil {
		t.Fatalf("a pipelined transaction still holds its locks: %v", err)
	}
}

// TestPipelineCancelled: a pipelined transaction whose context ends while
// a statement runs fails with the context's error, leaves nothing behind,
// and the pool's one connection (or its replacement) serves the next.
func TestPipelineCancelled(t *testing.T) {
	t.Parallel()
	gdb := pipelineDB(t, testkit.PostgresURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := db.InPipeline(ctx, gdb, func(p *db.Pipeline) error {
		if err := transfer(50)(p); err != nil {
			return err
		}
		return p.Query(`SELECT pg_sleep(5)`, nil, func(db.RowScanner) error { return nil })
	})
	if err == nil || ctx.Err() == nil {
		t.Fatalf("a transaction cancelled mid-statement: %v", err)
	}
	if a, b := balances(t, gdb); a != 100 || b != 0 {
		t.Fatalf("after the cancelled transfer: a %d, b %d, want 100 and 0", a, b)
	}
	if err := db.InPipeline(context.Background(), gdb, transfer(10)); err != nil {
		t.Fatalf("the next transaction on the pool: %v", err)
	}
	if a, b := balances(t, gdb); a != 90 || b != 10 {
		t.Fatalf("after the next transfer: a %d, b %d, want 90 and 10", a, b)
	}
}

// TestPipelineSendSnapshots: the statements of one Send are statements of
// their own, so one that follows a wait for a lock sees what the lock's
// holder committed before releasing it (the outbox relay's read relies on
// it). A single statement would have taken its snapshot before waiting.
func TestPipelineSendSnapshots(t *testing.T) {
	t.Parallel()
	url := testkit.PostgresURL(t)
	gdb := pipelineDB(t, url)
	ctx := context.Background()
	holder, err := db.Open(ctx, db.Options{Context: "pipeline", URL: url, MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(holder)
	tx := holder.Begin()
	if err := tx.Exec(`SELECT pg_advisory_xact_lock(4242)`).Error; err != nil {
		t.Fatal(err)
	}
	if err := tx.Exec(`UPDATE accounts SET balance = 77 WHERE id = 'b'`).Error; err != nil {
		t.Fatal(err)
	}

	seen := make(chan int64, 1)
	go func() {
		var locked, b int64
		err := db.InPipeline(ctx, gdb, func(p *db.Pipeline) error {
			return p.Send(
				db.Stmt{SQL: `SELECT 1 FROM (SELECT pg_advisory_xact_lock(4242)) AS l`, Scan: func(r db.RowScanner) error { return r.Scan(&locked) }},
				db.Stmt{SQL: `SELECT balance FROM accounts WHERE id = ?`, Args: []any{"b"}, Scan: func(r db.RowScanner) error { return r.Scan(&b) }},
			)
		})
		if err != nil || locked != 1 {
			t.Errorf("send: %v (locked %d)", err, locked)
		}
		seen <- b
	}()
	// Once the pipeline waits for the lock, the holder commits.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int64
		if err := db.ScanRow(tx.Raw(`SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted`), &waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pipeline never waited for the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := tx.Commit().Error; err != nil {
		t.Fatal(err)
	}
	if b := <-seen; b != 77 {
		t.Fatalf("the statement after the lock read balance %d, want the holder's committed 77", b)
	}
}
