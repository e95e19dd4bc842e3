package inbox

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/testkit"
)

func openDB(t *testing.T, b testkit.Backend) *gorm.DB {
	t.Helper()
	ctx := context.Background()
	gdb, err := db.Open(ctx, b.Options(t, "audit"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	if err := db.MigrateSet(ctx, gdb, Set, Migrations); err != nil {
		t.Fatal(err)
	}
	return gdb
}

func once(t *testing.T, gdb *gorm.DB, consumer, id string) bool {
	t.Helper()
	var first bool
	err := gdb.Transaction(func(tx *gorm.DB) error {
		var err error
		first, err = Once(tx, consumer, id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return first
}

func TestOnce(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		t.Parallel()
		gdb := openDB(t, b)
		if !once(t, gdb, "audit", "evt_1") {
			t.Error("first delivery not first")
		}
		if once(t, gdb, "audit", "evt_1") {
			t.Error("second delivery reported first")
		}
		if !once(t, gdb, "reporting", "evt_1") {
			t.Error("another consumer's first delivery not first")
		}
		// A rolled-back attempt leaves no trace: the retry is first.
		_ = gdb.Transaction(func(tx *gorm.DB) error {
			if first, err := Once(tx, "audit", "evt_2"); err != nil || !first {
				t.Fatalf("Once = %v, %v", first, err)
			}
			return errs.Unavailable // the handler's own write failed
		})
		if !once(t, gdb, "audit", "evt_2") {
			t.Error("retry after a rollback not first")
		}
		if _, err := Once(gdb, "", "evt_3"); !errs.IsKind(err, errs.Invalid) {
			t.Errorf("empty consumer: %v, want Invalid", err)
		}
	})
}

// TestOnceConcurrent: two deliveries of one event at once (two consumers of
// a group after a reclaim). The second waits for the first transaction and
// then sees its outcome.
func TestOnceConcurrent(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		t.Parallel()
		for _, commitFirst := range []bool{true, false} {
			gdb := openDB(t, b)
			tx1 := gdb.Begin()
			if first, err := Once(tx1, "audit", "evt_c"); err != nil || !first {
				t.Fatalf("first Once = %v, %v", first, err)
			}
			second := make(chan bool, 1)
			go func() {
				var first bool
				err := gdb.Transaction(func(tx *gorm.DB) error {
					var err error
					first, err = Once(tx, "audit", "evt_c")
					return err
				})
				if err != nil {
					t.Errorf("second Once: %v", err)
				}
				second <- first
			}()
			time.Sleep(100 * time.Millisecond) // let the second one block on the first
			if commitFirst {
				tx1.Commit()
			} else {
				tx1.Rollback()
			}
			if got := <-second; got != !commitFirst {
				t.Errorf("first transaction committed=%v: second delivery first=%v, want %v", commitFirst, got, !commitFirst)
			}
		}
	})
}

func TestPrune(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		t.Parallel()
		gdb := openDB(t, b)
		old := time.Now().UTC().Add(-48 * time.Hour)
		for _, id := range []string{"old_1", "old_2"} {
			if err := gdb.Exec(`INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ('audit', ?, ?)`, id, old).Error; err != nil {
				t.Fatal(err)
			}
		}
		once(t, gdb, "audit", "new_1")
		n, err := Prune(context.Background(), gdb, 24*time.Hour)
		if err != nil || n != 2 {
			t.Fatalf("Prune = %d, %v; want 2", n, err)
		}
		if once(t, gdb, "audit", "new_1") {
			t.Error("a recent event was pruned")
		}
		if _, err := Prune(context.Background(), gdb, 0); !errs.IsKind(err, errs.Invalid) {
			t.Errorf("Prune(0): %v, want Invalid", err)
		}
	})
}

func TestOnceEach(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		t.Parallel()
		gdb := openDB(t, b)
		each := func(ids ...string) map[string]bool {
			t.Helper()
			var first map[string]bool
			if err := gdb.Transaction(func(tx *gorm.DB) error {
				var err error
				first, err = OnceEach(tx, "reporting", ids)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return first
		}
		once(t, gdb, "reporting", "evt_b")
		got := each("evt_a", "evt_b", "evt_c", "evt_a")
		if len(got) != 2 || !got["evt_a"] || !got["evt_c"] {
			t.Errorf("first = %v, want evt_a and evt_c (evt_b was processed, evt_a given twice)", got)
		}
		if got := each("evt_a", "evt_c", "evt_d"); len(got) != 1 || !got["evt_d"] {
			t.Errorf("second batch first = %v, want only evt_d", got)
		}
		if once(t, gdb, "reporting", "evt_d") {
			t.Error("Once after OnceEach reported first")
		}
		// A rolled-back batch leaves no trace.
		_ = gdb.Transaction(func(tx *gorm.DB) error {
			if first, err := OnceEach(tx, "reporting", []string{"evt_e", "evt_f"}); err != nil || len(first) != 2 {
				t.Fatalf("OnceEach = %v, %v", first, err)
			}
			return errs.Unavailable
		})
		if got := each("evt_e"); !got["evt_e"] {
			t.Error("an id of a rolled-back batch is not first on retry")
		}
		// More ids than one statement holds.
		many := make([]string, onceChunk+7)
		for i := range many {
			many[i] = fmt.Sprintf("evt_many_%d", i)
		}
		if got := each(many...); len(got) != len(many) {
			t.Errorf("%d of %d ids recorded across chunks", len(got), len(many))
		}
		if err := gdb.Transaction(func(tx *gorm.DB) error {
			_, err := OnceEach(tx, "reporting", []string{"evt_x", ""})
			return err
		}); !errors.Is(err, errs.Invalid) {
			t.Errorf("empty id: err = %v, want Invalid", err)
		}
	})
}
