package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClaimsLifecycleOverBinary: a customer's claim walks its whole
// lifecycle through the real binary; its five events are in the store, the
// read model, the audit trail (with each request's correlation id) and the
// notifications; `pos claims rebuild --check` then finds the read model
// equal to the event store.
func TestClaimsLifecycleOverBinary(t *testing.T) {
	t.Parallel()
	env := []string{"POS_DATA_DIR=" + t.TempDir(), "POS_RATE_LIMIT=0"}
	agent := createKey(t, env, "agent")
	p := startPos(t, env, "serve", "--all")
	var cust struct{ ID string }
	p.must(201, &cust, "POST", "/api/v1/auth/register", map[string]any{"email": "claimant@example.com", "password": "long enough pw", "first_name": "Cla", "last_name": "Imant", "phone": "+1 514 555 0199"})
	var login struct{ Token string }
	p.must(200, &login, "POST", "/api/v1/auth/login", map[string]any{"email": "claimant@example.com", "password": "long enough pw"})
	B := []string{"Authorization", "Bearer " + login.Token}
	G := []string{"X-API-Key", agent}

	var claim struct {
		ClaimID string `json:"claim_id"`
		Status  string
	}
	p.must(201, &claim, "POST", "/api/v1/claims", map[string]any{"claim_type": "product_defect", "description": "The mug arrived cracked"},
		append(B, "X-Request-ID", "corr-create")...)
	if claim.Status != "created" {
		t.Fatalf("created claim: %+v", claim)
	}
	base := "/api/v1/claims/" + claim.ClaimID
	p.must(200, nil, "POST", base+"/assign", map[string]any{"agent_id": "agent-7"}, append(G, "X-Request-ID", "corr-assign")...)
	if code, _ := p.call("POST", base+"/close", nil, G...); code != 409 {
		t.Fatalf("close before resolve: %d, want 409", code)
	}
	p.must(200, nil, "POST", base+"/start", nil, append(G, "X-Request-ID", "corr-start")...)
	p.must(200, nil, "POST", base+"/resolve", map[string]any{"resolution": "Replacement shipped"}, append(G, "X-Request-ID", "corr-resolve")...)
	p.must(200, nil, "POST", base+"/close", nil, append(G, "X-Request-ID", "corr-close")...)

	var list struct {
		Data []struct {
			EventType     string `json:"event_type"`
			CorrelationID string `json:"correlation_id"`
		}
	}
	p.must(200, &list, "GET", base+"/events", nil, G...)
	evs := list.Data
	if len(evs) != 5 || evs[0].EventType != "ClaimCreated" || evs[4].EventType != "ClaimClosed" || evs[0].CorrelationID != "corr-create" {
		t.Fatalf("events: %+v", evs)
	}

	// The read model, the audit trail and notification catch up through
	// the bus.
	eventually(t, func() string {
		var rm struct{ Status string }
		if code, raw := p.call("GET", base, nil, B...); code == 200 {
			_ = json.Unmarshal(raw, &rm)
		}
		var trail struct {
			Data []struct {
				EventType     string `json:"event_type"`
				CorrelationID string `json:"correlation_id"`
			}
		}
		p.must(200, &trail, "GET", "/api/v1/audit?aggregate_id="+claim.ClaimID, nil, G...)
		var notes struct{ Meta struct{ Total int64 } }
		p.must(200, &notes, "GET", "/api/v1/notifications?recipient="+cust.ID, nil, G...)
		corr := map[string]bool{}
		for _, e := range trail.Data {
			corr[e.CorrelationID] = true
		}
		if rm.Status != "closed" || len(trail.Data) != 5 || !corr["corr-resolve"] || notes.Meta.Total == 0 {
			return fmt.Sprintf("read model %q, %d audit entries (%v), %d notifications", rm.Status, len(trail.Data), corr, notes.Meta.Total)
		}
		return ""
	})
	var replay struct{ Status string }
	p.must(200, &replay, "GET", base+"/replay", nil, G...)
	if replay.Status != "closed" {
		t.Fatalf("replay: %+v", replay)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(posBinary(t), "claims", "rebuild", "--check")
	cmd.Env = append(append(os.Environ(), "POS_LOG_LEVEL=warn"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "equals") {
		t.Fatalf("claims rebuild --check: %v\n%s", err, out)
	}
}

// eventually retries check until it returns "" or 30 s pass.
func eventually(t *testing.T, check func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reached in 30s: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
