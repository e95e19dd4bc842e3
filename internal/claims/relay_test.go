package claims

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/ids"
	"github.com/retailco/pos/internal/platform/testkit"
)

// collect is a publish function that records what it is handed.
type collect struct {
	mu  sync.Mutex
	ids []string
	n   map[string]int
}

func (c *collect) publish(_ context.Context, evs []StoredEvent) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	for _, e := range evs {
		c.ids = append(c.ids, e.EventID)
		c.n[e.EventID]++
	}
	return nil
}

// drain relays until a round hands over nothing.
func drain(t *testing.T, s EventStore, c *collect) {
	t.Helper()
	for {
		n, err := s.RelayBatch(context.Background(), 100, c.publish)
		must(t, err)
		if n == 0 {
			return
		}
	}
}

// TestSQLRelayLateCommit is the skipped-event bug class on PostgreSQL: an
// append takes position p, a second append takes p+1 and commits, the relay
// publishes p+1, and only then does p commit. A relay that kept "last
// published position" would never publish p; this one does. (SQLite has a
// single writer, so positions there commit in order by construction.)
func TestSQLRelayLateCommit(t *testing.T) {
	t.Parallel()
	pg := testkit.PostgresBackend(t, "SQLite commits positions in order by construction")
	ctx := context.Background()
	s := NewSQLEventStore(openReadDB(t, pg))
	inTx := make(chan struct{})
	release := make(chan struct{})
	var held atomic.Bool
	s.beforeCommit = func() {
		if held.CompareAndSwap(false, true) {
			close(inTx)
			<-release
		}
	}
	late, early := ids.New("clm"), ids.New("clm")
	lateDone := make(chan []StoredEvent, 1)
	go func() {
		got, err := s.Append(ctx, late, 0, []StoredEvent{created(late)})
		if err != nil {
			t.Error(err)
		}
		lateDone <- got
	}()
	<-inTx // the late append holds its position, uncommitted
	got, err := s.Append(ctx, early, 0, []StoredEvent{created(early)})
	must(t, err)
	var c collect
	drain(t, s, &c)
	if len(c.ids) != 1 || c.ids[0] != got[0].EventID {
		t.Fatalf("before the late commit the relay published %v, want only %s", c.ids, got[0].EventID)
	}
	close(release)
	lateEv := <-lateDone
	if len(lateEv) != 1 || lateEv[0].Position >= got[0].Position {
		t.Fatalf("the test did not commit out of order: late position %v, early %d", lateEv, got[0].Position)
	}
	drain(t, s, &c)
	if len(c.ids) != 2 || c.ids[1] != lateEv[0].EventID {
		t.Fatalf("after the late commit the relay published %v, want the late event too", c.ids)
	}
}

// TestMongoRelayRace: a writer in another process chose position p and
// stalls; meanwhile this process appends at p, and the relay publishes
// through p. When the stalled writer resumes, the position index refuses
// p and it lands on the next free position, which the relay then
// publishes. Nothing is skipped, nothing published twice.
func TestMongoRelayRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := mongoURL(t)
	stalled := mongoOn(t, url, "claims_race", MongoOptions{})
	s := mongoOn(t, url, "claims_race", MongoOptions{})
	first := ids.New("clm")
	_, err := s.Append(ctx, first, 0, []StoredEvent{created(first)})
	must(t, err)

	chose := make(chan int64, 1)
	release := make(chan struct{})
	var once sync.Once
	stalled.afterAllocate = func(pos int64) error {
		once.Do(func() {
			chose <- pos
			<-release
		})
		return nil
	}
	slow := ids.New("clm")
	slowDone := make(chan []StoredEvent, 1)
	go func() {
		got, err := stalled.Append(ctx, slow, 0, []StoredEvent{created(slow)})
		if err != nil {
			t.Error(err)
		}
		slowDone <- got
	}()
	p := <-chose
	fast := ids.New("clm")
	got, err := s.Append(ctx, fast, 0, []StoredEvent{created(fast)})
	must(t, err)
	if got[0].Position != p {
		t.Fatalf("fast append at %d, want the stalled writer's choice %d", got[0].Position, p)
	}
	var c collect
	drain(t, s, &c)
	if len(c.ids) != 2 {
		t.Fatalf("published %v before the stalled writer resumed", c.ids)
	}
	close(release)
	slowEv := <-slowDone
	if len(slowEv) != 1 || slowEv[0].Position != p+1 {
		t.Fatalf("stalled writer landed at %+v, want position %d", slowEv, p+1)
	}
	drain(t, s, &c)
	if len(c.ids) != 3 || c.ids[2] != slowEv[0].EventID {
		t.Fatalf("published %v, want the stalled event last", c.ids)
	}
	for id, n := range c.n {
		if n != 1 {
			t.Errorf("%s published %d times", id, n)
		}
	}
	// Positions are dense: 1..3, no gap for the relay to wait at.
	all := allEvents(t, s)
	for i, e := range all {
		if e.Position != int64(i+1) {
			t.Fatalf("positions %v are not dense", all)
		}
	}
}

// TestMongoRelayGap: a position removed from outside the store (appends
// never leave one) stops the relay for GapGrace, never longer, and the
// tombstone that then fills it cannot be overwritten by a late event.
func TestMongoRelayGap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	s := openMongo(t, MongoOptions{GapGrace: time.Minute, Now: now})
	var evs []StoredEvent
	for i := 0; i < 3; i++ {
		id := ids.New("clm")
		got, err := s.Append(ctx, id, 0, []StoredEvent{created(id)})
		must(t, err)
		evs = append(evs, got[0])
	}
	if _, err := s.events.DeleteOne(ctx, bson.D{{Key: "position", Value: evs[1].Position}}); err != nil {
		t.Fatal(err)
	}
	var c collect
	drain(t, s, &c)
	clock.Add(int64(59 * time.Second))
	drain(t, s, &c)
	if len(c.ids) != 1 || c.ids[0] != evs[0].EventID {
		t.Fatalf("within the grace the relay published %v, want only the first event", c.ids)
	}
	clock.Add(int64(2 * time.Second))
	drain(t, s, &c)
	if len(c.ids) != 2 || c.ids[1] != evs[2].EventID {
		t.Fatalf("after the grace the relay published %v, want the third event too", c.ids)
	}
	lateClaim := ids.New("clm")
	late := mongoEvent{ID: docID(lateClaim, 1), EventID: ids.New("evt"), AggregateID: lateClaim, Version: 1, Position: evs[1].Position, EventType: EventClaimCreated, OccurredAt: now(), Data: "{}"}
	if _, err := s.events.InsertOne(ctx, late); err == nil {
		t.Fatal("an event landed on a position the relay had closed")
	}
	// The tombstone is not an event: no read shows it.
	all := allEvents(t, s)
	if len(all) != 2 {
		t.Fatalf("read all shows %d events, want 2", len(all))
	}
}

// crashingPublisher publishes for real and then "dies" before the relay
// can record it: it cancels the relay and reports failure, for the first
// `crashes` publishes.
type crashingPublisher struct {
	next    events.Publisher
	crashes atomic.Int32
	cancel  context.CancelFunc
}

func (p *crashingPublisher) Publish(ctx context.Context, envs ...events.Envelope) error {
	if err := p.next.Publish(ctx, envs...); err != nil {
		return err
	}
	if p.crashes.Add(-1) >= 0 {
		p.cancel()
		return errors.New("relay killed after publishing")
	}
	return nil
}

// TestRelayKilledBetweenPublishAndCheckpoint: a relay dies after the bus
// took a batch and before the store recorded it. The next relay publishes
// the batch again: duplicates, no loss, and the read model ends right (the
// projector's inbox absorbs what reaches it twice). On Redis the bus's own
// dedup is off, so the duplicates really reach the projector.
func TestRelayKilledBetweenPublishAndCheckpoint(t *testing.T) {
	t.Parallel()
	cfgs := []stackConfig{{backend: testkit.SQLite}, {backend: lastBackend(t), mongo: true, redis: true,
		busOpts: func(o *events.Options) { o.DedupWindow = -1 }}}
	for _, cfg := range cfgs {
		cfg.noRelay = true
		t.Run(cfg.name(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := newStack(t, cfg)
			var claimIDs []string
			for i := 0; i < 5; i++ {
				c, err := st.svc.CreateClaim(ctx, NewClaim{CustomerID: fmt.Sprintf("cus_%d", i), ClaimType: BillingError, Description: "charged twice"})
				must(t, err)
				_, err = st.svc.AssignClaim(ctx, c.ClaimID, Assignment{AgentID: "agt_1"})
				must(t, err)
				claimIDs = append(claimIDs, c.ClaimID)
			}
			stored := allEvents(t, st.store)

			// The first relay dies right after its first publish.
			rctx, cancel := context.WithCancel(ctx)
			crash := &crashingPublisher{next: st.pub, cancel: cancel}
			crash.crashes.Store(1)
			r1, err := NewRelay(st.store, crash, RelayOptions{Logger: testkit.Logger(), BatchSize: 4})
			must(t, err)
			must(t, r1.Run(rctx))
			firstBatch := st.pub.snapshot()
			if len(firstBatch) != 4 {
				t.Fatalf("the killed relay published %d events, want its batch of 4", len(firstBatch))
			}
			// Its successor starts over from the store's record.
			st.startRelay(t, st.pub)
			st.settle(t)
			waitFor(t, 30*time.Second, func() (bool, string) {
				pub := st.pub.snapshot()
				return len(pub) == len(stored), fmt.Sprintf("%d of %d published", len(pub), len(stored))
			})
			pub := st.pub.snapshot()
			for _, e := range stored {
				want := 1
				if firstBatch[e.EventID] > 0 {
					want = 2
				}
				if pub[e.EventID] != want {
					t.Errorf("event %s (v%d) published %d times, want %d", e.EventID, e.Version, pub[e.EventID], want)
				}
			}
			inbox := processed(t, st.readDB)
			if len(inbox) != len(stored) {
				t.Errorf("projector recorded %d events, want %d", len(inbox), len(stored))
			}
			if cfg.redis {
				// The duplicates reach the projector; wait for them so the
				// assertion is about them, not about timing.
				waitFor(t, 30*time.Second, func() (bool, string) {
					seen := st.seen.snapshot()
					twice := 0
					for id := range firstBatch {
						if seen[id] >= 2 {
							twice++
						}
					}
					return twice == len(firstBatch), fmt.Sprintf("%d of %d duplicates handled", twice, len(firstBatch))
				})
			}
			for _, id := range claimIDs {
				got, err := st.svc.GetClaim(ctx, id)
				must(t, err)
				if got.Status != StatusAssigned || got.Version != 2 {
					t.Errorf("claim %s in the read model: %s v%d", id, got.Status, got.Version)
				}
			}
		})
	}
}
