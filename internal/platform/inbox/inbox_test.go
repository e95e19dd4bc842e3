package inbox

import (
	"context"
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
