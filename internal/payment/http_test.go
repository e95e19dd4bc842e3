package payment

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// httpEnv is the payment context behind a real HTTP server with the whole
// middleware chain.
type httpEnv struct {
	h   *testkit.HTTP
	svc Service
	gw  *testGateway
}

func newHTTPEnv(t *testing.T) httpEnv {
	t.Helper()
	gw := newTestGateway(NewSimulator(SimulatorOptions{}))
	svc := New(testkit.OpenDB(t, testkit.SQLite, Name, Migrations), gw, Options{})
	h := testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, svc) })
	return httpEnv{h: h, svc: svc, gw: gw}
}

// do sends a raw request (body as given, not re-encoded) with key as
// X-API-Key ("" for none) and returns status, content type and body.
func (e httpEnv) do(t *testing.T, method, path, key, body string) (int, string, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.h.URL+httpx.APIPrefix+path, rd)
	must(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), raw
}

func problem(t *testing.T, raw []byte) httpx.Problem {
	t.Helper()
	var p httpx.Problem
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("not a problem document: %s", raw)
	}
	return p
}

// TestHTTPBadInput sends what a careless or hostile client might: every
// answer is a 4xx problem naming the field, and nothing is written.
func TestHTTPBadInput(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	key := e.h.Keys.Service
	const good = `"transaction_id":"txn-1","amount_cents":1000,"method":"card","token":"tok_visa"`
	payments := []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"malformed json", `{"transaction_id": "txn-1", "amount_cents": `, 400, "body"},
		{"not an object", `[1,2,3]`, 400, "body"},
		{"empty body", ``, 400, ""},
		{"amount as string", `{"transaction_id":"t","amount_cents":"1000","method":"card","token":"tok_visa"}`, 400, "amount_cents"},
		{"amount as float", `{"transaction_id":"t","amount_cents":10.5,"method":"card","token":"tok_visa"}`, 400, "amount_cents"},
		{"zero amount", `{"transaction_id":"t","amount_cents":0,"method":"card","token":"tok_visa"}`, 400, "amount_cents"},
		{"negative amount", `{"transaction_id":"t","amount_cents":-100,"method":"card","token":"tok_visa"}`, 400, "amount_cents"},
		{"amount too large", `{"transaction_id":"t","amount_cents":99999999999999,"method":"card","token":"tok_visa"}`, 400, "amount_cents"},
		{"missing amount", `{"transaction_id":"t","method":"card","token":"tok_visa"}`, 400, "amount_cents"},
		{"missing transaction id", `{"amount_cents":1000,"method":"card","token":"tok_visa"}`, 400, "transaction_id"},
		{"missing token", `{"transaction_id":"t","amount_cents":1000,"method":"card"}`, 400, "token"},
		{"unknown field", `{` + good + `,"discount":50}`, 400, "discount"},
		{"bad currency", `{` + good + `,"currency":"cad"}`, 400, "currency"},
		{"currency not a code", `{` + good + `,"currency":"DOLLARS"}`, 400, "currency"},
		{"cash", `{"transaction_id":"t","amount_cents":1000,"method":"cash","token":"tok_visa"}`, 400, "method"},
		{"method wrong type", `{"transaction_id":"t","amount_cents":1000,"method":7,"token":"tok_visa"}`, 400, "method"},
		{"sql in transaction id", `{"transaction_id":"t'; DROP TABLE payments;--","amount_cents":1000,"method":"card","token":"tok_visa"}`, 400, "transaction_id"},
		{"sql in token", `{"transaction_id":"t","amount_cents":1000,"method":"card","token":"x' OR '1'='1"}`, 400, "token"},
		{"sql in order id", `{` + good + `,"order_id":"1; DELETE FROM payments"}`, 400, "order_id"},
		{"body over 1 MiB", `{` + good + `,"order_id":"` + strings.Repeat("a", 1<<20) + `"}`, 413, ""},
	}
	for _, c := range payments {
		t.Run(c.name, func(t *testing.T) {
			status, ctype, raw := e.do(t, http.MethodPost, "/payments", key, c.body)
			checkProblem(t, status, ctype, raw, c.status, c.field)
		})
	}

	// A real payment to aim refunds at; bad refunds must leave it as is.
	status, _, raw := e.do(t, http.MethodPost, "/payments", key, `{"transaction_id":"txn-ok",`+good[len(`"transaction_id":"txn-1",`):]+`}`)
	if status != http.StatusCreated {
		t.Fatalf("good payment: %d %s", status, raw)
	}
	var pay Payment
	must(t, json.Unmarshal(raw, &pay))
	refunds := []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"refund malformed", `{"refund_id":`, 400, "body"},
		{"refund zero", `{"refund_id":"r1","amount_cents":0,"reason":"x"}`, 400, "amount_cents"},
		{"refund negative", `{"refund_id":"r1","amount_cents":-1,"reason":"x"}`, 400, "amount_cents"},
		{"refund amount string", `{"refund_id":"r1","amount_cents":"5","reason":"x"}`, 400, "amount_cents"},
		{"refund missing id", `{"amount_cents":5,"reason":"x"}`, 400, "refund_id"},
		{"refund empty reason", `{"refund_id":"r1","amount_cents":5,"reason":""}`, 400, "reason"},
		{"refund unknown field", `{"refund_id":"r1","amount_cents":5,"reason":"x","currency":"USD"}`, 400, "currency"},
		{"refund sql id", `{"refund_id":"r1' --","amount_cents":5,"reason":"x"}`, 400, "refund_id"},
		{"refund over capture", `{"refund_id":"r1","amount_cents":1001,"reason":"x"}`, 409, ""},
	}
	for _, c := range refunds {
		t.Run(c.name, func(t *testing.T) {
			status, ctype, raw := e.do(t, http.MethodPost, "/payments/"+pay.ID+"/refunds", key, c.body)
			checkProblem(t, status, ctype, raw, c.status, c.field)
		})
	}
	queries := []struct {
		name, path, field string
	}{
		{"bad status filter", "/payments?status=bogus", "status"},
		{"per_page over 100", "/payments?per_page=1000", "per_page"},
		{"page zero", "/payments?page=0", "page"},
		{"bad summary currency", "/payments/summary?currency=x", "currency"},
	}
	for _, c := range queries {
		t.Run(c.name, func(t *testing.T) {
			status, ctype, raw := e.do(t, http.MethodGet, c.path, key, "")
			checkProblem(t, status, ctype, raw, 400, c.field)
		})
	}

	ctx := context.Background()
	s, err := e.svc.Summary(ctx, "")
	must(t, err)
	if s.Payments[StatusCaptured] != 1 || s.CapturedCents != 1000 || s.RefundedCents != 0 || s.Refunds[RefundSucceeded]+s.Refunds[RefundFailed]+s.Refunds[RefundPending] != 0 {
		t.Fatalf("bad input wrote something: %+v", s)
	}
	if n := e.gw.totalCharges(); n != 1 {
		t.Fatalf("gateway called %d times; only the good payment may reach it", n)
	}
}

func checkProblem(t *testing.T, status int, ctype string, raw []byte, wantStatus int, field string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d: %s", status, wantStatus, raw)
	}
	if !strings.HasPrefix(ctype, httpx.ProblemContentType) {
		t.Fatalf("content type %q, want problem+json", ctype)
	}
	p := problem(t, raw)
	if p.Status != wantStatus || p.Detail == "" {
		t.Fatalf("problem %+v", p)
	}
	if field == "" {
		return
	}
	for _, f := range p.Errors {
		if f.Field == field || strings.HasPrefix(f.Field, field+".") || strings.HasPrefix(f.Field, field+"[") {
			return
		}
	}
	t.Fatalf("problem does not name %q: %s", field, raw)
}

// TestHTTPAccess checks who may do what: writes are the saga's (service
// role) and admin's; reads add managers and agents; cashiers get nothing.
func TestHTTPAccess(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	k := e.h.Keys
	pay := `{"transaction_id":"txn-acl","amount_cents":500,"method":"card","token":"tok_visa"}`
	status, _, raw := e.do(t, http.MethodPost, "/payments", k.Service, pay)
	if status != http.StatusCreated {
		t.Fatalf("service charge: %d %s", status, raw)
	}
	var p Payment
	must(t, json.Unmarshal(raw, &p))
	refund := `{"refund_id":"ref-acl","amount_cents":100,"reason":"acl"}`
	cases := []struct {
		name, method, path, key, body string
		status                        int
	}{
		{"charge without credentials", http.MethodPost, "/payments", "", pay, 401},
		{"read without credentials", http.MethodGet, "/payments/" + p.ID, "", "", 401},
		{"list without credentials", http.MethodGet, "/payments", "", "", 401},
		{"charge with a bad key", http.MethodPost, "/payments", "pos_not_a_real_key_at_all_0000", pay, 401},
		{"cashier charge", http.MethodPost, "/payments", k.Cashier, pay, 403},
		{"cashier read", http.MethodGet, "/payments/" + p.ID, k.Cashier, "", 403},
		{"cashier summary", http.MethodGet, "/payments/summary", k.Cashier, "", 403},
		{"manager charge", http.MethodPost, "/payments", k.Manager, pay, 403},
		{"agent refund", http.MethodPost, "/payments/" + p.ID + "/refunds", k.Agent, refund, 403},
		{"manager read", http.MethodGet, "/payments/" + p.ID, k.Manager, "", 200},
		{"agent list", http.MethodGet, "/payments?status=captured", k.Agent, "", 200},
		{"agent by transaction", http.MethodGet, "/payments/by-transaction/txn-acl", k.Agent, "", 200},
		{"manager summary", http.MethodGet, "/payments/summary", k.Manager, "", 200},
		{"service refund", http.MethodPost, "/payments/" + p.ID + "/refunds", k.Service, refund, 201},
		{"admin refund replay", http.MethodPost, "/payments/" + p.ID + "/refunds", k.Admin, refund, 200},
		{"agent refund list", http.MethodGet, "/payments/" + p.ID + "/refunds", k.Agent, "", 200},
	}
	for _, c := range cases {
		status, ctype, raw := e.do(t, c.method, c.path, c.key, c.body)
		if status != c.status {
			t.Errorf("%s: %d, want %d: %s", c.name, status, c.status, raw)
			continue
		}
		if status >= 400 && !strings.HasPrefix(ctype, httpx.ProblemContentType) {
			t.Errorf("%s: content type %q", c.name, ctype)
		}
	}
	if n := e.gw.totalCharges(); n != 1 {
		t.Fatalf("refused requests reached the gateway: %d charges", n)
	}
	// Every operation makes it into the OpenAPI document (the docs and the
	// gateway configuration are built from it).
	resp, err := http.Get(e.h.URL + "/openapi.json")
	must(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("openapi: %d", resp.StatusCode)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	must(t, json.NewDecoder(resp.Body).Decode(&doc))
	ops := 0
	for path, methods := range doc.Paths {
		if strings.HasPrefix(path, httpx.APIPrefix+"/payments") {
			ops += len(methods)
		}
	}
	if ops != 7 {
		t.Fatalf("openapi lists %d payment operations, want 7", ops)
	}
}

// TestHTTPStatuses checks the statuses the saga keys on: 201 then 200 for
// a replay, 402 for a decline (every time), 502 for a gateway failure, 409
// for a reused transaction id, 404 for unknown ids.
func TestHTTPStatuses(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t)
	key := e.h.Keys.Service
	body := `{"transaction_id":"txn-s","amount_cents":2500,"currency":"CAD","method":"card","token":"tok_visa","order_id":"ord_1"}`
	steps := []struct {
		name, method, path, body string
		status                   int
		detail                   string
	}{
		{"first charge", http.MethodPost, "/payments", body, 201, ""},
		{"replay", http.MethodPost, "/payments", body, 200, ""},
		{"same id, other amount", http.MethodPost, "/payments", strings.Replace(body, "2500", "2600", 1), 409, "amount_cents"},
		{"declined", http.MethodPost, "/payments", `{"transaction_id":"txn-d","amount_cents":100,"method":"card","token":"tok_declined"}`, 402, "declined"},
		{"declined replay", http.MethodPost, "/payments", `{"transaction_id":"txn-d","amount_cents":100,"method":"card","token":"tok_declined"}`, 402, "declined"},
		{"gateway error", http.MethodPost, "/payments", `{"transaction_id":"txn-e","amount_cents":100,"method":"card","token":"tok_error"}`, 502, "gateway"},
		{"unknown payment", http.MethodGet, "/payments/pay_nope", "", 404, ""},
		{"unknown transaction", http.MethodGet, "/payments/by-transaction/txn-nope", "", 404, ""},
		{"refund unknown payment", http.MethodPost, "/payments/pay_nope/refunds", `{"refund_id":"r","amount_cents":1,"reason":"x"}`, 404, ""},
	}
	for _, s := range steps {
		status, ctype, raw := e.do(t, s.method, s.path, key, s.body)
		if status != s.status {
			t.Fatalf("%s: %d, want %d: %s", s.name, status, s.status, raw)
		}
		if status >= 400 {
			p := problem(t, raw)
			if !strings.HasPrefix(ctype, httpx.ProblemContentType) || !strings.Contains(p.Detail, s.detail) {
				t.Fatalf("%s: %s %s", s.name, ctype, raw)
			}
			continue
		}
		var out struct {
			Payment
			Replayed bool `json:"replayed"`
		}
		must(t, json.Unmarshal(raw, &out))
		if out.Replayed != (status == 200) || out.Status != StatusCaptured || out.AuthorizationCode == "" {
			t.Fatalf("%s: %s", s.name, raw)
		}
	}
	if n := e.gw.chargeCalls("txn-d"); n != 1 {
		t.Fatalf("declined transaction reached the gateway %d times", n)
	}
	status, _, raw := e.do(t, http.MethodGet, "/payments/summary", key, "")
	var sum Summary
	if status != 200 || json.Unmarshal(raw, &sum) != nil || sum.CapturedCents != 2500 || sum.Payments[StatusDeclined] != 1 || sum.Payments[StatusFailed] != 1 {
		t.Fatalf("summary: %d %s", status, raw)
	}
	status, _, raw = e.do(t, http.MethodGet, "/payments?transaction_id=txn-s", key, "")
	var list httpx.List[Payment]
	if status != 200 || json.Unmarshal(raw, &list) != nil || list.Meta.Total != 1 || list.Data[0].TransactionID != "txn-s" {
		t.Fatalf("list by transaction: %d %s", status, raw)
	}
}
