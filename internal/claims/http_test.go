package claims

import (
	"net/http"
	"strings"
	"testing"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestBadInput: every malformed request gets a 4xx problem naming the
// field at fault, and no event is written.
func TestBadInput(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackConfig{backend: testkit.SQLite})
	h := st.h
	agent := []string{"X-API-Key", h.Keys.Agent}
	var c Claim
	h.Call(t, http.MethodPost, "/api/v1/claims", map[string]any{"customer_id": "cus_1", "claim_type": "billing_error", "description": "charged twice"}, agent...).JSON(t, 201, &c)
	base := "/api/v1/claims/" + c.ClaimID

	cases := []struct {
		name   string
		path   string
		body   any
		status int
		field  string
	}{
		{"malformed json", "/api/v1/claims", `{"customer_id": "cus_1", "claim_type": `, 400, ""},
		{"empty body", "/api/v1/claims", ``, 400, ""},
		{"unknown claim type", "/api/v1/claims", `{"customer_id": "cus_1", "claim_type": "refund_please", "description": "x"}`, 400, "claim_type"},
		{"claim type not a string", "/api/v1/claims", `{"customer_id": "cus_1", "claim_type": 3, "description": "x"}`, 400, "claim_type"},
		{"missing claim type", "/api/v1/claims", `{"customer_id": "cus_1", "description": "x"}`, 400, "claim_type"},
		{"empty description", "/api/v1/claims", `{"customer_id": "cus_1", "claim_type": "billing_error", "description": "   "}`, 400, "description"},
		{"missing description", "/api/v1/claims", `{"customer_id": "cus_1", "claim_type": "billing_error"}`, 400, "description"},
		{"description too long", "/api/v1/claims", `{"customer_id": "cus_1", "claim_type": "billing_error", "description": "` + strings.Repeat("a", MaxDescription+1) + `"}`, 400, "description"},
		{"staff without customer", "/api/v1/claims", `{"claim_type": "billing_error", "description": "x"}`, 400, "customer_id"},
		{"unknown field", "/api/v1/claims", `{"customer_id": "cus_1", "claim_type": "billing_error", "description": "x", "priority": "high"}`, 400, "priority"},
		{"bad claim id", "/api/v1/claims", `{"claim_id": "x'; DROP TABLE claims;--", "customer_id": "cus_1", "claim_type": "billing_error", "description": "x"}`, 400, "claim_id"},
		{"body over 1 MiB", "/api/v1/claims", `{"customer_id": "cus_1", "claim_type": "billing_error", "description": "` + strings.Repeat("a", 1<<20+10) + `"}`, 413, ""},
		{"missing agent", base + "/assign", `{}`, 400, "agent_id"},
		{"empty agent", base + "/assign", `{"agent_id": ""}`, 400, "agent_id"},
		{"assign unknown field", base + "/assign", `{"agent_id": "agt_1", "urgent": true}`, 400, "urgent"},
		{"assign unknown claim", "/api/v1/claims/clm_nope/assign", `{"agent_id": "agt_1"}`, 404, ""},
		{"start unknown claim", "/api/v1/claims/clm_nope/start", nil, 404, ""},
		{"missing resolution", base + "/resolve", `{}`, 400, "resolution"},
		{"bad enrichment status", base + "/enrich", `{"status": "half"}`, 400, "status"},
		{"negative quantity", base + "/enrich", `{"status": "complete", "order": {"order_id": "o", "lines": [{"product_id": "p", "quantity": -1}]}}`, 400, "order.lines[0].quantity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := h.Call(t, http.MethodPost, tc.path, tc.body, agent...).Problem(t, tc.status)
			if tc.field != "" && !testkit.HasField(p, tc.field) {
				t.Errorf("problem does not name %q: %+v", tc.field, p)
			}
		})
	}
	for _, path := range []string{"/api/v1/claims/clm_nope", "/api/v1/claims/clm_nope/events", "/api/v1/claims/clm_nope/replay"} {
		h.Call(t, http.MethodGet, path, nil, agent...).Problem(t, 404)
	}
	for _, q := range []string{"status=lost", "claim_type=other", "per_page=101", "page=0"} {
		h.Call(t, http.MethodGet, "/api/v1/claims?"+q, nil, agent...).Problem(t, 400)
	}
	h.Call(t, http.MethodGet, "/api/v1/claims/stats?top=0", nil, agent...).Problem(t, 400)
	if all := allEvents(t, st.store); len(all) != 1 {
		t.Fatalf("bad input wrote events: %d stored, want 1", len(all))
	}

	// Text with SQL and markup in it is just text, stored and read back
	// verbatim.
	evil := `Robert'); DROP TABLE claim_events;-- <script>"%_\`
	var e Claim
	h.Call(t, http.MethodPost, "/api/v1/claims", map[string]any{"customer_id": "cus_1", "claim_type": "service_complaint", "description": evil}, agent...).JSON(t, 201, &e)
	var replayed Claim
	h.Call(t, http.MethodGet, "/api/v1/claims/"+e.ClaimID+"/replay", nil, agent...).JSON(t, 200, &replayed)
	if replayed.Description != evil {
		t.Fatalf("description round trip: %q", replayed.Description)
	}
}

// TestAccess: customers create and read their own claims only; agents do
// everything; other staff roles nothing but what API.md gives them.
func TestAccess(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackConfig{backend: testkit.SQLite})
	h := st.h
	bearer := func(customer string) []string {
		tok, err := h.Tokens.Issue(customer, customer+"@example.com")
		must(t, err)
		return []string{"Authorization", "Bearer " + tok}
	}
	alice, bob := bearer("cus_alice"), bearer("cus_bob")
	agent := []string{"X-API-Key", h.Keys.Agent}
	body := map[string]any{"claim_type": "product_defect", "description": "broken"}

	var a Claim
	h.Call(t, http.MethodPost, "/api/v1/claims", body, alice...).JSON(t, 201, &a)
	if a.CustomerID != "cus_alice" {
		t.Fatalf("a customer's claim belongs to %q", a.CustomerID)
	}
	h.Call(t, http.MethodPost, "/api/v1/claims", map[string]any{"customer_id": "cus_alice", "claim_type": "product_defect", "description": "x"}, alice...).JSON(t, 201, nil)
	h.Call(t, http.MethodPost, "/api/v1/claims", map[string]any{"customer_id": "cus_alice", "claim_type": "product_defect", "description": "x"}, bob...).Problem(t, 403)
	st.settle(t)

	base := "/api/v1/claims/" + a.ClaimID
	cases := []struct {
		name    string
		method  string
		path    string
		body    any
		headers []string
		status  int
	}{
		{"no credentials create", http.MethodPost, "/api/v1/claims", body, nil, 401},
		{"no credentials list", http.MethodGet, "/api/v1/claims", nil, nil, 401},
		{"no credentials get", http.MethodGet, base, nil, nil, 401},
		{"no credentials assign", http.MethodPost, base + "/assign", map[string]any{"agent_id": "a"}, nil, 401},
		{"no credentials events", http.MethodGet, base + "/events", nil, nil, 401},
		{"no credentials stats", http.MethodGet, "/api/v1/claims/stats", nil, nil, 401},
		{"bad key", http.MethodGet, "/api/v1/claims", nil, []string{"X-API-Key", "pos_notakeyatall000000000000"}, 401},
		{"owner reads", http.MethodGet, base, nil, alice, 200},
		{"other customer reads", http.MethodGet, base, nil, bob, 403},
		{"other customer lists owner's", http.MethodGet, "/api/v1/claims?customer_id=cus_alice", nil, bob, 403},
		{"customer assigns", http.MethodPost, base + "/assign", map[string]any{"agent_id": "a"}, alice, 403},
		{"customer closes", http.MethodPost, base + "/close", nil, alice, 403},
		{"customer reads events", http.MethodGet, base + "/events", nil, alice, 403},
		{"customer reads replay", http.MethodGet, base + "/replay", nil, alice, 403},
		{"customer reads stats", http.MethodGet, "/api/v1/claims/stats", nil, alice, 403},
		{"cashier lists", http.MethodGet, "/api/v1/claims", nil, []string{"X-API-Key", h.Keys.Cashier}, 403},
		{"cashier creates", http.MethodPost, "/api/v1/claims", map[string]any{"customer_id": "c", "claim_type": "product_defect", "description": "x"}, []string{"X-API-Key", h.Keys.Cashier}, 403},
		{"manager reads stats", http.MethodGet, "/api/v1/claims/stats", nil, []string{"X-API-Key", h.Keys.Manager}, 200},
		{"manager assigns", http.MethodPost, base + "/assign", map[string]any{"agent_id": "a"}, []string{"X-API-Key", h.Keys.Manager}, 403},
		{"agent reads", http.MethodGet, base, nil, agent, 200},
		{"agent reads events", http.MethodGet, base + "/events", nil, agent, 200},
		{"service reads", http.MethodGet, base + "/replay", nil, []string{"X-API-Key", h.Keys.Service}, 200},
		{"admin reads", http.MethodGet, base, nil, []string{"X-API-Key", h.Keys.Admin}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.Call(t, tc.method, tc.path, tc.body, tc.headers...)
			if tc.status >= 400 {
				r.Problem(t, tc.status)
				return
			}
			r.JSON(t, tc.status, nil)
		})
	}

	// A customer's list is their own, whatever else exists.
	var list httpx.List[Claim]
	h.Call(t, http.MethodGet, "/api/v1/claims", nil, bob...).JSON(t, 200, &list)
	if list.Meta.Total != 0 || len(list.Data) != 0 {
		t.Fatalf("bob sees %d claims", list.Meta.Total)
	}
	h.Call(t, http.MethodGet, "/api/v1/claims", nil, alice...).JSON(t, 200, &list)
	if list.Meta.Total != 2 {
		t.Fatalf("alice sees %d claims, want her 2", list.Meta.Total)
	}
	for _, c := range list.Data {
		if c.CustomerID != "cus_alice" {
			t.Fatalf("alice sees %s's claim", c.CustomerID)
		}
	}
	if all := allEvents(t, st.store); len(all) != 2 {
		t.Fatalf("refused requests wrote events: %d stored, want 2", len(all))
	}
}
