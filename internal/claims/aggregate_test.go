package claims

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
)

// lifecycleEvents are the events of one claim from creation to closure
// (with an enrichment in the middle), a second apart.
func lifecycleEvents(id string) []StoredEvent {
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	mk := func(v int64, typ string, data any) StoredEvent {
		raw, _ := json.Marshal(data)
		return StoredEvent{EventID: fmt.Sprintf("evt_%s_%d", id, v), EventType: typ, ClaimID: id, Version: v,
			OccurredAt: t0.Add(time.Duration(v) * time.Second), Data: raw}
	}
	return []StoredEvent{
		mk(1, EventClaimCreated, ClaimCreatedData{ClaimID: id, CustomerID: "cus_1", ClaimType: DeliveryIssue, Description: "late", OrderID: "ord_1",
			Enrichment: &Enrichment{Status: EnrichmentPending}}),
		mk(2, EventClaimAssigned, ClaimAssignedData{ClaimID: id, AgentID: "agt_1"}),
		mk(3, EventClaimEnriched, ClaimEnrichedData{ClaimID: id, Enrichment: Enrichment{Status: EnrichmentComplete,
			Order: &OrderContext{OrderID: "ord_1", Lines: []OrderLine{{ProductID: "prd_1", Quantity: 2, UnitPriceCents: 1299}}}}}),
		mk(4, EventClaimStarted, ClaimStartedData{ClaimID: id}),
		mk(5, EventClaimResolved, ClaimResolvedData{ClaimID: id, Resolution: "refunded"}),
		mk(6, EventClaimClosed, ClaimClosedData{ClaimID: id}),
	}
}

// TestDecide: every command against every status, and nothing else moves
// a claim forward.
func TestDecide(t *testing.T) {
	evs := lifecycleEvents("clm_d")
	// The state after each lifecycle step (the enrichment left out, so each
	// status is reached with no enrichment yet).
	states := map[Status]Claim{}
	var c Claim
	for _, e := range evs {
		if e.EventType == EventClaimEnriched {
			continue
		}
		e.Version = c.Version + 1
		var err error
		c, err = apply(c, e)
		must(t, err)
		c.Enrichment = nil
		states[c.Status] = c
	}
	// allowed[command] is the one status it may run in.
	allowed := map[string]Status{"assign": StatusCreated, "start": StatusAssigned, "resolve": StatusInProgress, "close": StatusResolved}
	want := map[string]string{"assign": EventClaimAssigned, "start": EventClaimStarted, "resolve": EventClaimResolved, "close": EventClaimClosed}
	cmds := map[string]command{
		"assign":  {kind: "assign", assign: Assignment{AgentID: "agt_2"}},
		"start":   {kind: "start"},
		"resolve": {kind: "resolve", resolution: Resolution{Resolution: "ok"}},
		"close":   {kind: "close"},
		"enrich":  {kind: "enrich", enrichment: Enrichment{Status: EnrichmentComplete}},
		"create":  {kind: "create", create: NewClaim{CustomerID: "cus_2", ClaimType: BillingError, Description: "x"}},
	}
	for _, st := range Statuses {
		for name, cmd := range cmds {
			d, err := decide(states[st], "clm_d", cmd)
			switch {
			case name == "create":
				if !errs.IsKind(err, errs.Conflict) {
					t.Errorf("create on a %s claim: %v, want conflict", st, err)
				}
			case name == "enrich":
				if st == StatusClosed {
					if !errs.IsKind(err, errs.Conflict) {
						t.Errorf("enrich a closed claim: %v, want conflict", err)
					}
				} else if err != nil || d.eventType != EventClaimEnriched {
					t.Errorf("enrich a %s claim: %v %v", st, d.eventType, err)
				}
			case allowed[name] == st:
				if err != nil || d.eventType != want[name] {
					t.Errorf("%s on a %s claim: %s %v", name, st, d.eventType, err)
				}
			default:
				if !errs.IsKind(err, errs.Conflict) {
					t.Errorf("%s on a %s claim: %v, want conflict", name, st, err)
				}
			}
		}
	}
	for name, cmd := range cmds {
		_, err := decide(Claim{}, "clm_none", cmd)
		if name == "create" {
			must(t, err)
		} else if !errs.IsKind(err, errs.NotFound) {
			t.Errorf("%s on a claim that does not exist: %v, want not found", name, err)
		}
	}
	complete := states[StatusInProgress]
	complete.Enrichment = &Enrichment{Status: EnrichmentComplete}
	if _, err := decide(complete, "clm_d", cmds["enrich"]); !errs.IsKind(err, errs.Conflict) {
		t.Errorf("enrich after a complete enrichment: %v, want conflict", err)
	}
}

// TestReplay: the fold gives the expected state, and refuses histories
// decide never writes.
func TestReplay(t *testing.T) {
	evs := lifecycleEvents("clm_r")
	c, err := replay(evs)
	must(t, err)
	if c.Status != StatusClosed || c.Version != 6 || c.AgentID != "agt_1" || c.Resolution != "refunded" || c.CustomerID != "cus_1" ||
		c.Enrichment == nil || c.Enrichment.Status != EnrichmentComplete || !c.UpdatedAt.Equal(evs[5].OccurredAt) ||
		!c.CreatedAt.Equal(evs[0].OccurredAt) || c.ResolvedAt == nil || !c.ResolvedAt.Equal(evs[4].OccurredAt) {
		t.Fatalf("replayed %+v", c)
	}
	bad := func(mod func([]StoredEvent) []StoredEvent) []StoredEvent {
		cp := append([]StoredEvent(nil), evs...)
		return mod(cp)
	}
	cases := map[string][]StoredEvent{
		"gap":           bad(func(e []StoredEvent) []StoredEvent { return append(e[:2:2], e[3:]...) }),
		"not created":   bad(func(e []StoredEvent) []StoredEvent { return e[1:] }),
		"unknown type":  bad(func(e []StoredEvent) []StoredEvent { e[1].EventType = "ClaimExploded"; return e }),
		"bad data":      bad(func(e []StoredEvent) []StoredEvent { e[1].Data = []byte(`{"agent_id": 7}`); return e }),
		"created twice": bad(func(e []StoredEvent) []StoredEvent { e[1].EventType = EventClaimCreated; return e }),
	}
	for name, evs := range cases {
		if _, err := replay(evs); err == nil {
			t.Errorf("%s: replayed without error", name)
		}
	}
}

// TestMergeIsOrderFree: the projector's merge gives the same row whatever
// order a claim's events arrive in, and that row is the claim replay
// gives; a repeated event changes nothing.
func TestMergeIsOrderFree(t *testing.T) {
	full := lifecycleEvents("clm_m")
	enriched := full[2]
	histories := map[string][]StoredEvent{
		"whole lifecycle": full,
		// The newest event changes no status: the status must still come
		// from the older ones, whatever order they arrive in.
		"enriched last": {full[0], full[1], enriched},
		"created only":  full[:1],
	}
	for name, evs := range histories {
		want, err := replay(evs)
		must(t, err)
		var inOrder claimRow
		for _, e := range evs {
			must(t, merge(&inOrder, e))
		}
		permutations(len(evs), func(order []int) {
			row := claimRow{ID: "clm_m"}
			for _, i := range order {
				must(t, merge(&row, evs[i]))
				must(t, merge(&row, evs[i])) // a redelivery
			}
			got, err := row.claim()
			must(t, err)
			if !sameClaim(&got, &want) || row.EnrichmentVersion != inOrder.EnrichmentVersion || (row.ResolveMs == nil) != (want.ResolvedAt == nil) {
				t.Fatalf("%s, order %v:\n got %s\nwant %s", name, order, asJSON(got), asJSON(want))
			}
		})
	}
	row := claimRow{ID: "clm_m"}
	for _, e := range full {
		must(t, merge(&row, e))
	}
	if row.ResolveMs == nil || *row.ResolveMs != 4000 {
		t.Fatalf("resolve time %v ms, want 4000", row.ResolveMs)
	}
	// Before its ClaimCreated, a row knows neither its owner nor its
	// creation: the read model hides it (see readModel).
	row = claimRow{ID: "clm_m"}
	must(t, merge(&row, full[3]))
	if row.CreatedAt != nil || row.CustomerID != "" || row.Status != string(StatusInProgress) {
		t.Fatalf("partial row %+v", row)
	}
}

// permutations calls fn with every order of 0..n-1 (Heap's algorithm).
func permutations(n int, fn func([]int)) {
	a := make([]int, n)
	for i := range a {
		a[i] = i
	}
	var gen func(k int)
	gen = func(k int) {
		if k == 1 {
			fn(append([]int(nil), a...))
			return
		}
		gen(k - 1)
		for i := 0; i < k-1; i++ {
			if k%2 == 0 {
				a[i], a[k-1] = a[k-1], a[i]
			} else {
				a[0], a[k-1] = a[k-1], a[0]
			}
			gen(k - 1)
		}
	}
	gen(n)
}

// TestNormalizeNew: input rules that hold wherever the command comes from.
func TestNormalizeNew(t *testing.T) {
	ok := NewClaim{CustomerID: " cus_1 ", ClaimType: ProductDefect, Description: "  broken  "}
	got, err := normalizeNew(ok)
	must(t, err)
	if got.CustomerID != "cus_1" || got.Description != "broken" {
		t.Fatalf("not trimmed: %+v", got)
	}
	long := make([]rune, MaxDescription+1)
	for i := range long {
		long[i] = 'é'
	}
	cases := []struct {
		name  string
		in    NewClaim
		field string
	}{
		{"unknown type", NewClaim{CustomerID: "c", ClaimType: "refund_please", Description: "x"}, "claim_type"},
		{"empty description", NewClaim{CustomerID: "c", ClaimType: ProductDefect, Description: "   "}, "description"},
		{"long description", NewClaim{CustomerID: "c", ClaimType: ProductDefect, Description: string(long)}, "description"},
		{"no customer", NewClaim{ClaimType: ProductDefect, Description: "x"}, "customer_id"},
		{"bad claim id", NewClaim{ClaimID: "not-a-claim", CustomerID: "c", ClaimType: ProductDefect, Description: "x"}, "claim_id"},
		{"bad enrichment", NewClaim{CustomerID: "c", ClaimType: ProductDefect, Description: "x", Enrichment: &Enrichment{Status: "maybe"}}, "enrichment.status"},
	}
	for _, c := range cases {
		_, err := normalizeNew(c.in)
		if !errs.IsKind(err, errs.Invalid) || !hasField(err, c.field) {
			t.Errorf("%s: %v, want invalid naming %s", c.name, err, c.field)
		}
	}
}

func hasField(err error, field string) bool {
	for _, f := range errs.Fields(err) {
		if f.Field == field {
			return true
		}
	}
	return false
}
