package claims

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
	"github.com/retailco/pos/internal/platform/testkit"
)

// storeAdapter makes fresh, empty event stores: setup runs once per
// adapter run and returns the opener each test calls.
type storeAdapter struct {
	name  string
	setup func(t *testing.T) func(t *testing.T) EventStore
}

// storeAdapters are the adapters the contract runs on: the SQL store on
// every database engine of the run, and the MongoDB store on an embedded
// FerretDB (one server per adapter run, a database per test).
func storeAdapters(t *testing.T) []storeAdapter {
	var out []storeAdapter
	for _, b := range testkit.Backends(t) {
		out = append(out, storeAdapter{name: "sql-" + b.Name, setup: func(*testing.T) func(t *testing.T) EventStore {
			return func(t *testing.T) EventStore { return NewSQLEventStore(openReadDB(t, b)) }
		}})
	}
	out = append(out, storeAdapter{name: "mongo", setup: func(t *testing.T) func(t *testing.T) EventStore {
		url := mongoURL(t)
		var (
			mu sync.Mutex
			n  int
		)
		return func(t *testing.T) EventStore {
			mu.Lock()
			n++
			name := fmt.Sprintf("claims_contract_%d", n)
			mu.Unlock()
			return mongoOn(t, url, name, MongoOptions{})
		}
	}})
	return out
}

// newEvent makes the event a command would append at version.
func newEvent(claimID string, version int64, typ string, data any) StoredEvent {
	raw, _ := json.Marshal(data)
	return StoredEvent{
		EventID: ids.New("evt"), EventType: typ, ClaimID: claimID, Version: version,
		OccurredAt: occurredAt(time.Now()), CorrelationID: "req-" + claimID, Actor: "agent:key-agent", Data: raw,
	}
}

func created(claimID string) StoredEvent {
	return newEvent(claimID, 1, EventClaimCreated, ClaimCreatedData{ClaimID: claimID, CustomerID: "cus_1", ClaimType: ProductDefect, Description: "broken"})
}

// TestEventStoreContract runs one suite on every adapter.
func TestEventStoreContract(t *testing.T) {
	t.Parallel()
	for _, a := range storeAdapters(t) {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			runStoreContract(t, a.setup(t))
		})
	}
}

func runStoreContract(t *testing.T, open func(t *testing.T) EventStore) {
	ctx := context.Background()

	t.Run("append and load", func(t *testing.T) {
		s := open(t)
		id := ids.New("clm")
		e1 := created(id)
		e1.Data = json.RawMessage(`{"claim_id":"` + id + `","customer_id":"cus_1","claim_type":"product_defect","description":"é \"quoted\" <b>","extra":[1,2.5,null]}`)
		got, err := s.Append(ctx, id, 0, []StoredEvent{e1})
		must(t, err)
		if len(got) != 1 || got[0].Position <= 0 || got[0].EventID != e1.EventID {
			t.Fatalf("append answered %+v", got)
		}
		e2 := newEvent(id, 2, EventClaimAssigned, ClaimAssignedData{ClaimID: id, AgentID: "agt_1"})
		e3 := newEvent(id, 3, EventClaimStarted, ClaimStartedData{ClaimID: id})
		got23, err := s.Append(ctx, id, 1, []StoredEvent{e2, e3})
		must(t, err)
		if len(got23) != 2 || !(got[0].Position < got23[0].Position && got23[0].Position < got23[1].Position) {
			t.Fatalf("positions not increasing: %d, %+v", got[0].Position, got23)
		}
		loaded, err := s.Load(ctx, id, 0)
		must(t, err)
		want := []StoredEvent{e1, e2, e3}
		if len(loaded) != 3 {
			t.Fatalf("loaded %d events, want 3", len(loaded))
		}
		for i, e := range loaded {
			w := want[i]
			if e.EventID != w.EventID || e.EventType != w.EventType || e.ClaimID != id || e.Version != int64(i+1) ||
				!e.OccurredAt.Equal(w.OccurredAt) || e.CorrelationID != w.CorrelationID || e.Actor != w.Actor || string(e.Data) != string(w.Data) {
				t.Errorf("event %d round trip:\n got %+v\nwant %+v", i, e, w)
			}
		}
		after, err := s.Load(ctx, id, 2)
		must(t, err)
		if len(after) != 1 || after[0].Version != 3 {
			t.Fatalf("load after version 2: %+v", after)
		}
		none, err := s.Load(ctx, "clm_unknown", 0)
		must(t, err)
		if len(none) != 0 {
			t.Fatalf("unknown claim has events: %+v", none)
		}
	})

	t.Run("version clash", func(t *testing.T) {
		s := open(t)
		id := ids.New("clm")
		_, err := s.Append(ctx, id, 0, []StoredEvent{created(id)})
		must(t, err)
		cases := []struct {
			name     string
			expected int64
			evs      []StoredEvent
		}{
			{"create again", 0, []StoredEvent{created(id)}},
			{"expects a version that does not exist yet", 3, []StoredEvent{newEvent(id, 4, EventClaimStarted, nil)}},
		}
		for _, c := range cases {
			if _, err := s.Append(ctx, id, c.expected, c.evs); !errs.IsKind(err, errs.Conflict) {
				t.Errorf("%s: got %v, want conflict", c.name, err)
			}
		}
		second := newEvent(id, 2, EventClaimAssigned, ClaimAssignedData{ClaimID: id, AgentID: "a"})
		_, err = s.Append(ctx, id, 1, []StoredEvent{second})
		must(t, err)
		// A stale writer that read version 1 loses.
		if _, err := s.Append(ctx, id, 1, []StoredEvent{newEvent(id, 2, EventClaimAssigned, ClaimAssignedData{ClaimID: id, AgentID: "b"})}); !errs.IsKind(err, errs.Conflict) {
			t.Errorf("stale append: got %v, want conflict", err)
		}
		// A multi-event append whose first version is taken writes nothing.
		if _, err := s.Append(ctx, id, 1, []StoredEvent{newEvent(id, 2, EventClaimAssigned, nil), newEvent(id, 3, EventClaimStarted, nil)}); !errs.IsKind(err, errs.Conflict) {
			t.Errorf("stale batch: got %v, want conflict", err)
		}
		all := allEvents(t, s)
		if len(all) != 2 || all[1].EventID != second.EventID {
			t.Fatalf("refused appends wrote something: %+v", all)
		}
	})

	t.Run("bad arguments", func(t *testing.T) {
		s := open(t)
		id := ids.New("clm")
		ok := created(id)
		noID := created(id)
		noID.EventID = ""
		other := created("clm_other")
		cases := []struct {
			name     string
			agg      string
			expected int64
			evs      []StoredEvent
		}{
			{"no events", id, 0, nil},
			{"wrong version", id, 0, []StoredEvent{newEvent(id, 2, EventClaimCreated, nil)}},
			{"gap in batch", id, 0, []StoredEvent{ok, newEvent(id, 3, EventClaimStarted, nil)}},
			{"no event id", id, 0, []StoredEvent{noID}},
			{"another claim's event", id, 0, []StoredEvent{other}},
			{"no aggregate", "", 0, []StoredEvent{ok}},
			{"negative version", id, -1, []StoredEvent{ok}},
		}
		for _, c := range cases {
			if _, err := s.Append(ctx, c.agg, c.expected, c.evs); !errs.IsKind(err, errs.Invalid) {
				t.Errorf("%s: got %v, want invalid", c.name, err)
			}
		}
		if all := allEvents(t, s); len(all) != 0 {
			t.Fatalf("invalid appends wrote %d events", len(all))
		}
	})

	t.Run("same append twice is one append", func(t *testing.T) {
		s := open(t)
		id := ids.New("clm")
		e := created(id)
		first, err := s.Append(ctx, id, 0, []StoredEvent{e})
		must(t, err)
		again, err := s.Append(ctx, id, 0, []StoredEvent{e})
		must(t, err)
		if len(again) != 1 || again[0].Position != first[0].Position {
			t.Fatalf("repeat answered %+v, first %+v", again, first)
		}
		if all := allEvents(t, s); len(all) != 1 {
			t.Fatalf("%d events stored, want 1", len(all))
		}
	})

	t.Run("concurrent appends on one claim: one wins", func(t *testing.T) {
		s := open(t)
		id := ids.New("clm")
		_, err := s.Append(ctx, id, 0, []StoredEvent{created(id)})
		must(t, err)
		const writers = 8
		for round := int64(1); round <= 3; round++ {
			var (
				wg        sync.WaitGroup
				mu        sync.Mutex
				won       []string
				conflicts int
				other     []error
			)
			start := make(chan struct{})
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					e := newEvent(id, round+1, EventClaimEnriched, ClaimEnrichedData{ClaimID: id, Enrichment: Enrichment{Status: EnrichmentPending}})
					<-start
					_, err := s.Append(ctx, id, round, []StoredEvent{e})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						won = append(won, e.EventID)
					case errs.IsKind(err, errs.Conflict):
						conflicts++
					default:
						other = append(other, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if len(won) != 1 || conflicts != writers-1 || len(other) > 0 {
				t.Fatalf("round %d: %d won, %d conflicts, other errors %v", round, len(won), conflicts, other)
			}
			evs, err := s.Load(ctx, id, round)
			must(t, err)
			if len(evs) != 1 || evs[0].EventID != won[0] {
				t.Fatalf("round %d: stored %+v, winner %s", round, evs, won[0])
			}
		}
	})

	t.Run("positions and read all", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		const claims = 12
		for i := 0; i < claims; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := ids.New("clm")
				if _, err := s.Append(ctx, id, 0, []StoredEvent{created(id)}); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Append(ctx, id, 1, []StoredEvent{newEvent(id, 2, EventClaimAssigned, ClaimAssignedData{ClaimID: id, AgentID: "a"})}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		// Paged reads see every event once, positions strictly increasing,
		// and each claim's versions in order.
		var all []StoredEvent
		var after int64
		for {
			batch, err := s.ReadAll(ctx, after, 5)
			must(t, err)
			if len(batch) == 0 {
				break
			}
			if len(batch) > 5 {
				t.Fatalf("limit 5 gave %d", len(batch))
			}
			all = append(all, batch...)
			after = batch[len(batch)-1].Position
		}
		if len(all) != 2*claims {
			t.Fatalf("read %d events, want %d", len(all), 2*claims)
		}
		lastVersion := map[string]int64{}
		for i, e := range all {
			if i > 0 && e.Position <= all[i-1].Position {
				t.Fatalf("positions not increasing at %d: %d after %d", i, e.Position, all[i-1].Position)
			}
			if e.Version != lastVersion[e.ClaimID]+1 {
				t.Fatalf("claim %s: version %d after %d", e.ClaimID, e.Version, lastVersion[e.ClaimID])
			}
			lastVersion[e.ClaimID] = e.Version
		}
	})

	t.Run("relay batches", func(t *testing.T) {
		s := open(t)
		var want []string
		for i := 0; i < 7; i++ {
			id := ids.New("clm")
			e := created(id)
			_, err := s.Append(ctx, id, 0, []StoredEvent{e})
			must(t, err)
			want = append(want, e.EventID)
		}
		// A failed publish marks nothing: the same events come again.
		boom := errors.New("bus down")
		n, err := s.RelayBatch(ctx, 3, func(context.Context, []StoredEvent) error { return boom })
		if !errors.Is(err, boom) || n != 0 {
			t.Fatalf("failed publish: n %d err %v", n, err)
		}
		var got []string
		for round := 0; round < 10; round++ {
			n, err := s.RelayBatch(ctx, 3, func(_ context.Context, evs []StoredEvent) error {
				if len(evs) > 3 {
					t.Errorf("batch of %d over limit 3", len(evs))
				}
				for _, e := range evs {
					got = append(got, e.EventID)
				}
				return nil
			})
			must(t, err)
			if n == 0 {
				break
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("relayed %v, want %v in append order, each once", got, want)
		}
		select {
		case <-s.Appended():
		default:
			t.Fatal("appends did not signal the relay")
		}
	})

	t.Run("no update or delete path", func(t *testing.T) {
		// The port offers appends and reads only; this fails when someone
		// adds a way to change history.
		var methods []string
		it := reflect.TypeOf((*EventStore)(nil)).Elem()
		for i := 0; i < it.NumMethod(); i++ {
			methods = append(methods, it.Method(i).Name)
		}
		sort.Strings(methods)
		want := []string{"Append", "Appended", "Load", "Ping", "ReadAll", "RelayBatch"}
		if !reflect.DeepEqual(methods, want) {
			t.Fatalf("EventStore methods %v, want exactly %v", methods, want)
		}
		s := open(t)
		must(t, s.Ping(ctx))
	})
}

// TestSQLEventsImmutable: below the port, the database itself refuses to
// change or remove a stored event.
func TestSQLEventsImmutable(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		gdb := openReadDB(t, b)
		s := NewSQLEventStore(gdb)
		id := ids.New("clm")
		_, err := s.Append(context.Background(), id, 0, []StoredEvent{created(id)})
		must(t, err)
		for _, stmt := range []string{
			`UPDATE claim_events SET data = '{}'`,
			`DELETE FROM claim_events`,
		} {
			if err := gdb.Exec(stmt).Error; err == nil {
				t.Errorf("%s succeeded", stmt)
			}
		}
		if b.Name == "postgres" {
			if err := gdb.Exec(`TRUNCATE claim_events`).Error; err == nil {
				t.Error("TRUNCATE succeeded")
			}
		}
		evs, err := s.Load(context.Background(), id, 0)
		must(t, err)
		if len(evs) != 1 || string(evs[0].Data) != string(created(id).Data) {
			t.Fatalf("event changed: %+v", evs)
		}
	})
}
