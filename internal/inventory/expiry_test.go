package inventory

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/testkit"
)

// syncBuffer is a log sink safe to write from the loop and read from the
// test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunExpiry runs the loop the binary starts: it releases overdue
// reservations on its own (nobody reads them), keeps doing so on later
// ticks, and stops when its context ends.
func TestRunExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testkit.SQLite, false)
	p, loc := f.product(t, "RUN", 0), f.location(t, "RUN")
	f.receive(t, p, loc, 5)
	ctx := context.Background()
	reserve := func(id string, qty int64) {
		t.Helper()
		_, err := f.svc.Reserve(ctx, NewReservation{ReservationID: id, Items: []ReservationItem{{p, loc, qty}}, TTLSeconds: 10})
		must(t, err)
	}
	// reservedNow reads the table, not the reservation: GetReservation
	// would expire it itself and prove nothing about the loop.
	waitReserved := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var row stockRow
			must(t, f.db.Where("location_id = ? AND product_id = ?", loc, p).Take(&row).Error)
			if row.Reserved == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("reserved stays %d, want %d", row.Reserved, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	reserve("run-1", 2)
	reserve("run-1b", 1)
	f.clock.Advance(5 * time.Second)
	reserve("run-2", 1) // due 5 s after the others

	var logs syncBuffer
	loopCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		RunExpiry(loopCtx, f.svc, 5*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
		close(done)
	}()
	waitReserved(4) // nothing is due yet: the loop must not touch it
	time.Sleep(30 * time.Millisecond)
	waitReserved(4)

	f.clock.Advance(6 * time.Second) // run-1 and run-keep due
	waitReserved(1)
	f.clock.Advance(5 * time.Second) // run-2 due, on a later tick
	waitReserved(0)

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunExpiry did not stop when its context ended")
	}
	var r reservationRow
	must(t, f.db.Where("id = ?", "run-1").Take(&r).Error)
	if r.Status != ReservationExpired {
		t.Fatalf("run-1 is %s", r.Status)
	}
	if !strings.Contains(logs.String(), "expired reservations") {
		t.Fatalf("the loop logged nothing about its work: %s", logs.String())
	}
}
