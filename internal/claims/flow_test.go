package claims

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// flowStacks are the deployments the end-to-end tests run on: the SQL
// event store and the SQL-log bus on each database engine (the embedded
// default is the SQLite one), and the fleet's MongoDB event store with
// Redis Streams.
func flowStacks(t *testing.T) []stackConfig {
	var out []stackConfig
	for _, b := range testkit.Backends(t) {
		out = append(out, stackConfig{backend: b})
	}
	return append(out, stackConfig{backend: lastBackend(t), mongo: true, redis: true})
}

// TestLifecycleHTTP drives one claim through its whole life over HTTP, in
// a process wired like the monolith: routes, event store, relay, bus,
// projector.
func TestLifecycleHTTP(t *testing.T) {
	t.Parallel()
	for _, cfg := range flowStacks(t) {
		t.Run(cfg.name(), func(t *testing.T) {
			t.Parallel()
			st := newStack(t, cfg)
			h := st.h
			customer := "cus_" + testkit.ID("life")
			token, err := h.Tokens.Issue(customer, customer+"@example.com")
			must(t, err)
			asCustomer := func(reqID string) []string {
				return []string{"Authorization", "Bearer " + token, "X-Request-ID", reqID}
			}
			asAgent := func(reqID string) []string { return []string{"X-API-Key", h.Keys.Agent, "X-Request-ID", reqID} }
			reqIDs := map[int64]string{}

			var c Claim
			reqIDs[1] = testkit.ID("req-create")
			h.Call(t, http.MethodPost, "/api/v1/claims", map[string]any{
				"claim_type": "product_defect", "description": "The kettle leaks", "product_id": "prd_kettle",
			}, asCustomer(reqIDs[1])...).JSON(t, 201, &c)
			if c.ClaimID == "" || c.Status != StatusCreated || c.CustomerID != customer || c.Version != 1 {
				t.Fatalf("created %+v", c)
			}
			base := "/api/v1/claims/" + c.ClaimID
			steps := []struct {
				action string
				body   any
				status Status
			}{
				{"assign", map[string]any{"agent_id": "agt_7"}, StatusAssigned},
				{"start", nil, StatusInProgress},
				{"resolve", map[string]any{"resolution": "Replacement shipped"}, StatusResolved},
				{"close", nil, StatusClosed},
			}
			outOfOrder := map[Status][]string{
				StatusAssigned:   {"assign", "resolve", "close"},
				StatusInProgress: {"assign", "start", "close"},
				StatusResolved:   {"start", "resolve"},
				StatusClosed:     {"assign", "start", "resolve", "close", "enrich"},
			}
			bodies := map[string]any{"assign": map[string]any{"agent_id": "agt_8"}, "resolve": map[string]any{"resolution": "again"},
				"enrich": map[string]any{"status": "complete"}}
			for i, s := range steps {
				v := int64(i + 2)
				reqIDs[v] = testkit.ID("req-" + s.action)
				h.Call(t, http.MethodPost, base+"/"+s.action, s.body, asAgent(reqIDs[v])...).JSON(t, 200, &c)
				if c.Status != s.status || c.Version != v {
					t.Fatalf("%s: %s v%d, want %s v%d", s.action, c.Status, c.Version, s.status, v)
				}
				// Every action out of order now: 409, nothing written.
				for _, a := range outOfOrder[s.status] {
					h.Call(t, http.MethodPost, base+"/"+a, bodies[a], asAgent(testkit.ID("req-bad"))...).Problem(t, 409)
				}
			}

			var evs httpx.List[StoredEvent]
			h.Call(t, http.MethodGet, base+"/events", nil, asAgent("req-read")...).JSON(t, 200, &evs)
			wantTypes := []string{EventClaimCreated, EventClaimAssigned, EventClaimStarted, EventClaimResolved, EventClaimClosed}
			if len(evs.Data) != len(wantTypes) || evs.Meta.Total != int64(len(wantTypes)) {
				t.Fatalf("%d events, want 5 (out-of-order actions must write nothing): %s", len(evs.Data), asJSON(evs))
			}
			for i, e := range evs.Data {
				v := int64(i + 1)
				wantActor := "agent:key-agent"
				if v == 1 {
					wantActor = "customer:" + customer
				}
				if e.EventType != wantTypes[i] || e.Version != v || e.ClaimID != c.ClaimID || e.CorrelationID != reqIDs[v] ||
					e.Actor != wantActor || e.OccurredAt.IsZero() || e.EventID == "" {
					t.Errorf("event %d: %+v (want %s, correlation %s, actor %s)", i, e, wantTypes[i], reqIDs[v], wantActor)
				}
				// The bus carried it as the catalog says, and the projector
				// got it.
				var env struct {
					EventType, Stream, CorrelationID, Actor string
					AggregateVersion                        int64
				}
				waitFor(t, 30*time.Second, func() (bool, string) {
					e2, n := st.seen.get(e.EventID)
					env.EventType, env.Stream, env.CorrelationID, env.Actor, env.AggregateVersion = e2.EventType, e2.Stream, e2.CorrelationID, e2.Actor, e2.AggregateVersion
					return n > 0, "projector has not handled " + e.EventID
				})
				if env.EventType != Name+"."+wantTypes[i] || env.Stream != Name || env.AggregateVersion != v || env.CorrelationID != reqIDs[v] || env.Actor != wantActor {
					t.Errorf("envelope of %s: %+v", e.EventID, env)
				}
			}
			var created map[string]any
			must(t, json.Unmarshal(evs.Data[0].Data, &created))
			for k, want := range map[string]any{"claim_id": c.ClaimID, "customer_id": customer, "claim_type": "product_defect", "description": "The kettle leaks", "product_id": "prd_kettle"} {
				if created[k] != want {
					t.Errorf("ClaimCreated data %s = %v, want %v", k, created[k], want)
				}
			}

			var replayed, read Claim
			h.Call(t, http.MethodGet, base+"/replay", nil, asAgent("req-replay")...).JSON(t, 200, &replayed)
			if replayed.Status != StatusClosed || replayed.Version != 5 || replayed.AgentID != "agt_7" || replayed.Resolution != "Replacement shipped" {
				t.Fatalf("replayed %+v", replayed)
			}
			waitFor(t, 30*time.Second, func() (bool, string) {
				r := h.Call(t, http.MethodGet, base, nil, asAgent("req-get")...)
				if r.Status != 200 {
					return false, fmt.Sprintf("read model: %d %s", r.Status, r.Body)
				}
				read = Claim{}
				must(t, json.Unmarshal(r.Body, &read))
				return read.Version == 5, fmt.Sprintf("read model at version %d", read.Version)
			})
			if !sameClaim(&read, &replayed) {
				t.Fatalf("read model differs from the replay:\nread   %s\nreplay %s", asJSON(read), asJSON(replayed))
			}
			var own Claim
			h.Call(t, http.MethodGet, base, nil, asCustomer("req-own")...).JSON(t, 200, &own)
			if !sameClaim(&own, &replayed) {
				t.Fatalf("customer's view %s", asJSON(own))
			}
		})
	}
}

// TestConcurrentCommands: many goroutines create claims and drive them
// through their lifecycle, racing each other on purpose at two steps,
// while the relay and the projector run and a rebuild swaps the read
// model in the middle. At the end every appended event is in the store
// once, was published, is recorded by the projector, and the read model
// equals both the event store and a fresh rebuild.
func TestConcurrentCommands(t *testing.T) {
	t.Parallel()
	for _, cfg := range flowStacks(t) {
		t.Run(cfg.name(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := newStack(t, cfg)
			const workers, perWorker = 4, 5
			var (
				mu       sync.Mutex
				claimIDs []string
				wins     = map[string]int{} // contested command → winners
				failures []string
			)
			fail := func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				failures = append(failures, fmt.Sprintf(format, args...))
			}
			// race runs fn twice at once: exactly one must win, the other
			// must get a conflict.
			race := func(name string, fn func(i int) error) {
				var wg sync.WaitGroup
				results := make([]error, 2)
				for i := range results {
					wg.Add(1)
					go func() {
						defer wg.Done()
						results[i] = fn(i)
					}()
				}
				wg.Wait()
				won := 0
				for _, err := range results {
					switch {
					case err == nil:
						won++
					case !errs.IsKind(err, errs.Conflict):
						fail("%s: %v", name, err)
					}
				}
				mu.Lock()
				wins[name] += won
				mu.Unlock()
			}
			rebuilt := make(chan error, 1)
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perWorker; i++ {
						c, err := st.svc.CreateClaim(ctx, NewClaim{CustomerID: fmt.Sprintf("cus_%d", w), ClaimType: ClaimTypes[i%len(ClaimTypes)], Description: "concurrent"})
						if err != nil {
							fail("create: %v", err)
							return
						}
						mu.Lock()
						claimIDs = append(claimIDs, c.ClaimID)
						mu.Unlock()
						race("assign", func(k int) error {
							_, err := st.svc.AssignClaim(ctx, c.ClaimID, Assignment{AgentID: fmt.Sprintf("agt_%d", k)})
							return err
						})
						if _, err := st.svc.StartClaim(ctx, c.ClaimID); err != nil {
							fail("start: %v", err)
						}
						race("resolve", func(k int) error {
							_, err := st.svc.ResolveClaim(ctx, c.ClaimID, Resolution{Resolution: fmt.Sprintf("fix %d", k)})
							return err
						})
						if _, err := st.svc.CloseClaim(ctx, c.ClaimID); err != nil {
							fail("close: %v", err)
						}
						if w == 0 && i == perWorker/2 {
							// Rebuild beside the live projector, mid-flight.
							go func() {
								_, err := Rebuild(ctx, st.store, st.readDB)
								rebuilt <- err
							}()
						}
					}
				}()
			}
			wg.Wait()
			must(t, <-rebuilt)
			if len(failures) > 0 {
				t.Fatalf("%d command failures, first: %s", len(failures), failures[0])
			}
			n := workers * perWorker
			if wins["assign"] != n || wins["resolve"] != n {
				t.Fatalf("contested commands: %v winners, want %d each", wins, n)
			}

			st.settle(t)
			stored := allEvents(t, st.store)
			if len(stored) != n*5 {
				t.Fatalf("%d events stored, want %d (5 per claim)", len(stored), n*5)
			}
			seenIDs := map[string]bool{}
			for _, e := range stored {
				if seenIDs[e.EventID] {
					t.Fatalf("event %s stored twice", e.EventID)
				}
				seenIDs[e.EventID] = true
			}
			waitFor(t, 30*time.Second, func() (bool, string) {
				inbox := processed(t, st.readDB)
				return len(inbox) == len(stored), fmt.Sprintf("projector recorded %d of %d", len(inbox), len(stored))
			})
			pub, inbox := st.pub.snapshot(), processed(t, st.readDB)
			lost, dup := 0, 0
			for _, e := range stored {
				switch {
				case pub[e.EventID] == 0 || !inbox[e.EventID]:
					lost++
				case pub[e.EventID] > 1:
					dup++
				}
			}
			if lost != 0 || dup != 0 || len(pub) != len(stored) {
				t.Fatalf("lost %d, published twice %d, published %d for %d stored", lost, dup, len(pub), len(stored))
			}
			for _, id := range claimIDs {
				c, err := st.svc.GetClaim(ctx, id)
				must(t, err)
				if c.Status != StatusClosed || c.Version != 5 || c.AgentID == "" || c.Resolution == "" {
					t.Fatalf("claim %s in the read model: %+v", id, c)
				}
			}
			live := readRows(t, st.readDB)
			rep, err := Rebuild(ctx, st.store, st.readDB)
			must(t, err)
			if rep.Claims != n || rep.Events != n*5 || rep.CaughtUp != 0 {
				t.Fatalf("rebuild report %+v", rep)
			}
			if rebuiltRows := readRows(t, st.readDB); !reflect.DeepEqual(normRows(live), normRows(rebuiltRows)) {
				t.Fatalf("rebuilt read model differs from the live one:\nlive    %s\nrebuilt %s", asJSON(live[0]), asJSON(rebuiltRows[0]))
			}
			diffs, err := Compare(ctx, st.store, st.readDB)
			must(t, err)
			if len(diffs) != 0 {
				t.Fatalf("after rebuild %d claims differ: %s", len(diffs), asJSON(diffs[0]))
			}
		})
	}
}

// normRows makes rows comparable: times as instants in UTC.
func normRows(rows []claimRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		for _, p := range []**time.Time{&r.CreatedAt, &r.UpdatedAt, &r.AssignedAt, &r.StartedAt, &r.ResolvedAt, &r.ClosedAt} {
			*p = utcPtr(*p)
		}
		out[i] = asJSON(r)
	}
	return out
}

// TestRebuildCatchesUp: claims the live projector has moved past what the
// rebuild read are reloaded at the swap, and claims the projector has not
// seen yet are still projected afterwards.
func TestRebuildCatchesUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newStack(t, stackConfig{backend: lastBackend(t)})
	c1, err := st.svc.CreateClaim(ctx, NewClaim{CustomerID: "cus_1", ClaimType: ServiceComplaint, Description: "rude"})
	must(t, err)
	st.settle(t)
	// A read model that lost a claim and holds a wrong one: the rebuild
	// repairs both.
	must(t, st.readDB.Exec(`DELETE FROM claims WHERE id = ?`, c1.ClaimID).Error)
	must(t, st.readDB.Exec(`INSERT INTO claims (id, customer_id, status, created_at, version) VALUES ('clm_ghost', 'cus_x', 'created', ?, 1)`, time.Now().UTC()).Error)
	diffs, err := Compare(ctx, st.store, st.readDB)
	must(t, err)
	if len(diffs) != 2 {
		t.Fatalf("compare found %d differences, want 2: %s", len(diffs), asJSON(diffs))
	}
	rep, err := Rebuild(ctx, st.store, st.readDB)
	must(t, err)
	if rep.Claims != 1 || rep.CaughtUp != 1 { // the ghost is ahead of the (empty) staged row
		t.Fatalf("rebuild report %+v", rep)
	}
	st.settle(t)
	// After the swap the projector keeps going on the new rows.
	_, err = st.svc.AssignClaim(ctx, c1.ClaimID, Assignment{AgentID: "agt_1"})
	must(t, err)
	st.settle(t)
	got, err := st.svc.GetClaim(ctx, c1.ClaimID)
	must(t, err)
	if got.Status != StatusAssigned || got.Version != 2 {
		t.Fatalf("after rebuild the projector did not move on: %+v", got)
	}
}
