package db_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"testing/fstest"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/testkit"
)

var testMigrations = fstest.MapFS{
	"migrations/0001_init.sql": {Data: []byte(`
-- a comment line, skipped
CREATE TABLE things (
    id   TEXT PRIMARY KEY,
    at   TIMESTAMP NOT NULL,
    blob BLOB
);
CREATE UNIQUE INDEX things_at ON things (at);`)},
	"migrations/0002_more.sql":            {Data: []byte(`ALTER TABLE things ADD COLUMN n INTEGER NOT NULL DEFAULT 0;`)},
	"migrations/0003_engine.sqlite.sql":   {Data: []byte(`CREATE TABLE engine (name TEXT); INSERT INTO engine VALUES ('sqlite');`)},
	"migrations/0003_engine.postgres.sql": {Data: []byte(`CREATE TABLE engine (name TEXT); INSERT INTO engine VALUES ('postgres');`)},
}

// TestMigrate: versions apply once and in order, engine-specific files win
// on their engine, the platform sets come along, and concurrent migrators
// (several instances starting together) apply each version exactly once.
func TestMigrate(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		opts := b.Options(t, "dbtest")
		const migrators = 4
		var wg sync.WaitGroup
		errs := make(chan error, migrators)
		for i := 0; i < migrators; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				gdb, err := db.Open(ctx, opts)
				if err != nil {
					errs <- err
					return
				}
				defer db.Close(gdb)
				errs <- db.Migrate(ctx, gdb, testMigrations)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent migrate: %v", err)
			}
		}
		gdb, err := db.Open(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close(gdb)
		if err := db.Migrate(ctx, gdb, testMigrations); err != nil {
			t.Fatalf("second migrate: %v", err)
		}
		var applied []struct {
			SetName string
			Version int
		}
		if err := gdb.Raw(`SELECT set_name, version FROM schema_migrations ORDER BY set_name, version`).Scan(&applied).Error; err != nil {
			t.Fatal(err)
		}
		want := []string{"inbox/1", "main/1", "main/2", "main/3", "outbox/1", "outbox/2"}
		if len(applied) != len(want) {
			t.Fatalf("applied %+v, want %v", applied, want)
		}
		var engine string
		if err := gdb.Raw(`SELECT name FROM engine`).Scan(&engine).Error; err != nil || engine != b.Name {
			t.Fatalf("engine-specific migration: %q %v", engine, err)
		}
		// The portable TIMESTAMP column round-trips a time on both engines.
		if err := gdb.Exec(`INSERT INTO things (id, at) VALUES ('a', ?)`, gdb.NowFunc()).Error; err != nil {
			t.Fatal(err)
		}
		if err := gdb.Exec(`INSERT INTO things (id, at) VALUES ('b', (SELECT at FROM things WHERE id = 'a'))`).Error; !db.IsUniqueViolation(err) {
			t.Fatalf("unique violation not recognised: %v", err)
		}
		if db.DialectOf(gdb) != db.Dialect(b.Name) {
			t.Fatalf("dialect %s on %s", db.DialectOf(gdb), b.Name)
		}
		if err := db.Ping(ctx, gdb); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBadMigrationName(t *testing.T) {
	t.Parallel()
	gdb, err := db.Open(context.Background(), testkit.SQLite.Options(t, "bad"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(gdb)
	bad := fstest.MapFS{"migrations/1_init.sql": {Data: []byte(`SELECT 1;`)}}
	if err := db.Migrate(context.Background(), gdb, bad); err == nil {
		t.Fatal("a misnamed migration was accepted")
	}
}

// TestScanRow: one row is scanned, none is sql.ErrNoRows, and a statement
// the engine refuses is an error — never the panic gorm's Row().Scan gives
// with prepared statements (go-gorm/gorm#7858).
func TestScanRow(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		gdb := testkit.OpenDB(t, b, "scanrow", testMigrations)
		var n int64
		if err := db.ScanRow(gdb.Raw(`SELECT COUNT(*) FROM things`), &n); err != nil || n != 0 {
			t.Fatalf("count: %d, %v", n, err)
		}
		var id string
		if err := db.ScanRow(gdb.Raw(`SELECT id FROM things WHERE id = ?`, "none"), &id); !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("no row: want sql.ErrNoRows, got %v", err)
		}
		if err := db.ScanRow(gdb.Raw(`SELECT nope FROM no_such_table`), &id); err == nil {
			t.Fatal("a statement that cannot be prepared scanned without error")
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := db.ScanRow(gdb.WithContext(ctx).Raw(`SELECT COUNT(*) FROM things`), &n); err == nil {
			t.Fatal("a cancelled query scanned without error")
		}
	})
}

// TestRebind: placeholders are numbered in order on PostgreSQL and left
// alone on SQLite.
func TestRebind(t *testing.T) {
	t.Parallel()
	q := `UPDATE t SET a = ?, b = ?::text WHERE id = ?`
	if got, want := db.Rebind(db.Postgres, q), `UPDATE t SET a = $1, b = $2::text WHERE id = $3`; got != want {
		t.Fatalf("postgres: %q, want %q", got, want)
	}
	if got := db.Rebind(db.SQLite, q); got != q {
		t.Fatalf("sqlite: %q", got)
	}
}

func TestTuples(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		tuple string
		n     int
		want  string
	}{
		{"(?, ?)", 0, ""},
		{"(?, ?)", 1, "(?, ?)"},
		{"(?)", 3, "(?), (?), (?)"},
	} {
		if got := db.Tuples(c.tuple, c.n); got != c.want {
			t.Errorf("Tuples(%q, %d) = %q, want %q", c.tuple, c.n, got, c.want)
		}
	}
}

// TestDialectorsSkipExplain: the dialectors answer Explain with the SQL as
// written (gorm's Scan renders every statement through it for a recorder
// nobody reads), and keep the rest of their driver: a nested transaction
// still rolls back to its savepoint, and Scan still reads.
func TestDialectorsSkipExplain(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		ctx := context.Background()
		gdb, err := db.Open(ctx, b.Options(t, "explain"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close(gdb) })
		if got := gdb.Dialector.Explain("SELECT ? WHERE id = ?", 1, "x"); got != "SELECT ? WHERE id = ?" {
			t.Errorf("Explain rendered %q", got)
		}
		if err := gdb.Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`).Error; err != nil {
			t.Fatal(err)
		}
		err = gdb.Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec(`INSERT INTO kv VALUES ('kept', 1)`).Error; err != nil {
				return err
			}
			nested := tx.Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec(`INSERT INTO kv VALUES ('undone', 2)`).Error; err != nil {
					return err
				}
				return errors.New("undo the nested one")
			})
			if nested == nil {
				return errors.New("the nested transaction did not fail")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		if err := gdb.Raw(`SELECT k FROM kv ORDER BY k`).Scan(&keys).Error; err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0] != "kept" {
			t.Fatalf("after a nested transaction rolled back to its savepoint: %v, want [kept]", keys)
		}
	})
}
