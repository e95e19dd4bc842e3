package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawTestServer answers the paths the raw client tests call, and counts
// the connections it accepted.
func rawTestServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	big := `{"data":[` + strings.Repeat(`{"id":"prd_0123456789","name":"A product with a long enough name"},`, 200) + `{"id":"last"}]}`
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != "k" || r.Header.Get("Authorization") != "Bearer tok" ||
			r.Header.Get("Accept") != "application/json" || r.Header.Get("Accept-Encoding") != "" || r.Host == "" {
			http.Error(w, "headers", 400)
			return
		}
		_, _ = w.Write([]byte(`{"id":"x1","q":"` + r.URL.Query().Get("page") + `"}`))
	})
	mux.HandleFunc("/api/v1/big", func(w http.ResponseWriter, _ *http.Request) {
		// Flushed in two parts: the answer is chunked.
		_, _ = w.Write([]byte(big[:len(big)/2]))
		w.(http.Flusher).Flush()
		_, _ = w.Write([]byte(big[len(big)/2:]))
	})
	mux.HandleFunc("/api/v1/conflict", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(409)
		_, _ = w.Write([]byte(`{"title":"Conflict","status":409,"detail":"register R1 already has an open session","saga_id":"s1"}`))
	})
	mux.HandleFunc("/api/v1/echo", func(w http.ResponseWriter, r *http.Request) {
		// What arrived, as the server saw it: method, body and the headers
		// that frame it.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		out, _ := json.Marshal(map[string]any{"id": r.Method, "q": fmt.Sprintf("%s|%s|%d|%s", body,
			r.Header.Get("Content-Type"), r.ContentLength, r.Header.Get("Idempotency-Key"))})
		_, _ = w.Write(out)
	})
	mux.HandleFunc("/api/v1/empty", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	mux.HandleFunc("/api/v1/close", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = w.Write([]byte(`{"id":"closing"}`))
	})
	mux.HandleFunc("/api/v1/slow", func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/health/live", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// TestRawClientAnswersLikeNetHTTP sends the same calls through net/http
// (do) and through a VU's own connection (send), and expects the same
// statuses, errors, decoded answers and records.
func TestRawClientAnswersLikeNetHTTP(t *testing.T) {
	srv, conns := rawTestServer(t)
	type answer struct {
		ID     string            `json:"id"`
		Q      string            `json:"q"`
		SagaID string            `json:"saga_id"`
		Data   []json1Identified `json:"data"`
	}
	calls := []call{
		{op: opListProducts, path: "/ok?page=2", apiKey: "k", bearer: "tok"},
		{op: opListProducts, path: "/big"},
		{op: opOpenSession, path: "/conflict"},
		{op: opCheckout, path: "/conflict", expect: []int{402, 409}},
		{op: opCheckout, path: "/conflict", expect: []int{201}, decodeErrors: true},
		{op: opClearCart, path: "/empty"},
		{op: opGetOrder, path: "/close"},
		{op: opHealth, path: "/health/live"},
		{op: opGetProduct, path: "/ok?page=3", apiKey: "k", bearer: "tok"},
		{op: opAddCartItem, path: "/echo", body: map[string]any{"product_id": "prd_1", "quantity": 2}},
		{op: opCheckout, path: "/echo", body: map[string]any{"session_id": "s é"}, idem: "key-1"},
		{op: opCancelOrder, path: "/echo"},
		{op: opClearCart, path: "/echo"},
		{op: opCalculate, path: "/echo?province=QC", body: map[string]any{}},
	}
	ctx := context.Background()
	for _, decode := range []bool{false, true} {
		viaHTTP, viaRaw := NewRecorder(time.Now()), NewRecorder(time.Now())
		c := newClient(srv.URL, 2, time.Second)
		var conn *rawConn
		for _, k := range calls {
			var a, b answer
			ka, kb := k, k
			if decode {
				ka.out, kb.out = &a, &b
			}
			sa, ea := c.do(ctx, viaHTTP, ka)
			sb, eb := c.send(ctx, viaRaw, kb, &conn)
			if sa != sb || fmt.Sprint(ea) != fmt.Sprint(eb) {
				t.Errorf("%s (decode %v): net/http %d %v, raw %d %v", k.path, decode, sa, ea, sb, eb)
			}
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("%s (decode %v): net/http decoded %+v, raw %+v", k.path, decode, a, b)
			}
			if decode && k.path == "/big" && (len(b.Data) != 201 || b.Data[200].ID != "last") {
				t.Errorf("the chunked answer decoded to %d items", len(b.Data))
			}
		}
		if conn == nil {
			t.Fatal("the calls did not take the raw path")
		}
		fa, fb := viaHTTP.summary(time.Second), viaRaw.summary(time.Second)
		if len(fa.Endpoints) != len(fb.Endpoints) {
			t.Fatalf("endpoints: %d vs %d", len(fa.Endpoints), len(fb.Endpoints))
		}
		for i := range fa.Endpoints {
			a, b := fa.Endpoints[i], fb.Endpoints[i]
			if a.ID != b.ID || a.Count != b.Count || a.Errors != b.Errors || fmt.Sprint(a.Statuses) != fmt.Sprint(b.Statuses) ||
				fmt.Sprint(a.ErrorLog) != fmt.Sprint(b.ErrorLog) {
				t.Errorf("recorded differently:\n net/http %+v\n raw      %+v", a, b)
			}
		}
		c.close()
	}
	// Every call reused the VU's connection but after "Connection:
	// close": one for the calls before it, one after (per round).
	if n := conns.Load(); n > 2*2+2*2 {
		t.Errorf("%d connections accepted: the raw path does not keep its connection alive", n)
	}
}

// json1Identified is an item of the big answer.
type json1Identified struct {
	ID string `json:"id"`
}

// TestRawClientKeepsOneConnection: a VU's calls go over one connection.
func TestRawClientKeepsOneConnection(t *testing.T) {
	srv, conns := rawTestServer(t)
	c := newClient(srv.URL, 1, time.Second)
	defer c.close()
	rec := NewRecorder(time.Now())
	var conn *rawConn
	for i := range 50 {
		if _, err := c.send(context.Background(), rec, call{op: opListProducts, path: fmt.Sprintf("/ok?page=%d", i), apiKey: "k", bearer: "tok"}, &conn); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 50 calls", n)
	}
}

// TestRawClientTimeoutAndCancel: a slow answer is a timeout of the
// target; the run's hard stop interrupts a request without counting it.
func TestRawClientTimeoutAndCancel(t *testing.T) {
	srv, _ := rawTestServer(t)
	c := newClient(srv.URL, 1, 300*time.Millisecond)
	defer c.close()
	rec := NewRecorder(time.Now())
	var conn *rawConn
	start := time.Now()
	if _, err := c.send(context.Background(), rec, call{op: opGetSaga, path: "/slow"}, &conn); statusOf(err) != 0 || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("slow: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the timeout took %s", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start = time.Now()
	if _, err := c.send(ctx, rec, call{op: opGetSaga, path: "/slow"}, &conn); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("the cancel took %s", d)
	}
	// The VU carries on with another context (the post-run phase).
	if st, err := c.send(context.Background(), rec, call{op: opListProducts, path: "/ok", apiKey: "k", bearer: "tok"}, &conn); err != nil || st != 200 {
		t.Fatalf("after the cancel: %d %v", st, err)
	}
	// A connection left bound to a context that ended while it was idle
	// is not used again.
	actx, acancel := context.WithCancel(context.Background())
	if _, err := c.send(actx, rec, call{op: opListProducts, path: "/ok", apiKey: "k", bearer: "tok"}, &conn); err != nil {
		t.Fatal(err)
	}
	acancel()
	time.Sleep(10 * time.Millisecond)
	if st, err := c.send(context.Background(), rec, call{op: opListProducts, path: "/ok", apiKey: "k", bearer: "tok"}, &conn); err != nil || st != 200 {
		t.Fatalf("after the idle connection's context ended: %d %v", st, err)
	}
	f := rec.summary(time.Second)
	if f.Interrupted != 1 {
		t.Errorf("interrupted = %d", f.Interrupted)
	}
	for _, e := range f.Endpoints {
		if e.ID == "get-saga" && (e.Count != 1 || e.Statuses["timeout"] != 1) {
			t.Errorf("get-saga = %+v", e)
		}
	}
}

// oneAnswerServer is a server that closes keep-alive connections without
// saying so, as after an idle timeout: each connection gets one answer
// ({"id":"x"}) and ends. It counts the connections it accepted and the
// requests it answered.
func oneAnswerServer(t *testing.T) (addr string, accepted, served *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted, served = &atomic.Int64{}, &atomic.Int64{}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer nc.Close()
				req, err := http.ReadRequest(bufio.NewReader(nc))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				served.Add(1)
				_, _ = nc.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"id\":\"x\"}\n"))
			}()
		}
	}()
	return ln.Addr().String(), accepted, served
}

// TestRawClientRetriesAConnectionClosedWhileIdle: a server that closes
// keep-alive connections without saying so (an idle timeout) costs the
// VU a reconnection, never an error.
func TestRawClientRetriesAConnectionClosedWhileIdle(t *testing.T) {
	addr, accepted, _ := oneAnswerServer(t)
	c := newClient("http://"+addr, 1, time.Second)
	defer c.close()
	rec := NewRecorder(time.Now())
	var conn *rawConn
	for i := range 3 {
		var out struct {
			ID string `json:"id"`
		}
		if st, err := c.send(context.Background(), rec, call{op: opListProducts, path: "/x", out: &out}, &conn); err != nil || st != 200 || out.ID != "x" {
			t.Fatalf("call %d: %d %v %+v", i, st, err, out)
		}
		time.Sleep(20 * time.Millisecond) // let the close arrive
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("%d connections for 3 calls", n)
	}
	if f := rec.summary(time.Second); f.Errors != 0 {
		t.Errorf("errors recorded: %+v", f)
	}
}

// TestRawClientResendsOnlyWhatMayBeSentTwice: on a connection the server
// closed while idle, a GET and a POST with an Idempotency-Key are sent
// again on a new one, but another POST is an error, as with net/http:
// the ledger must never count a cart line the target may have added
// twice. A POST after a long idle takes a new connection first.
func TestRawClientResendsOnlyWhatMayBeSentTwice(t *testing.T) {
	addr, _, served := oneAnswerServer(t)
	c := newClient("http://"+addr, 1, time.Second)
	defer c.close()
	rec := NewRecorder(time.Now())
	var conn *rawConn
	send := func(k call) error {
		_, err := c.send(context.Background(), rec, k, &conn)
		time.Sleep(20 * time.Millisecond) // let the close arrive
		return err
	}
	body := map[string]any{"product_id": "prd_1"}
	if err := send(call{op: opListProducts, path: "/x"}); err != nil {
		t.Fatal(err)
	}
	if err := send(call{op: opCheckout, path: "/x", body: body, idem: "k1"}); err != nil {
		t.Fatalf("a POST with an Idempotency-Key was not sent again: %v", err)
	}
	before := served.Load()
	if err := send(call{op: opAddCartItem, path: "/x", body: body}); err == nil {
		t.Fatal("a POST without an Idempotency-Key was sent again on a new connection")
	}
	if served.Load() != before {
		t.Fatal("the closed connection served the POST")
	}
	if err := send(call{op: opListProducts, path: "/x"}); err != nil {
		t.Fatal(err)
	}
	// Idle past rawStaleAfter: the POST takes a new connection at once.
	conn.used = time.Now().Add(-2 * rawStaleAfter)
	if err := send(call{op: opAddCartItem, path: "/x", body: body}); err != nil {
		t.Fatalf("a POST after a long idle: %v", err)
	}
}

// TestRawTarget: only plain http targets take the raw path, with their
// path prefix; calls with an unsafe value keep net/http.
func TestRawTarget(t *testing.T) {
	for base, want := range map[string]*rawTarget{
		"http://127.0.0.1:8080":         {addr: "127.0.0.1:8080", host: "127.0.0.1:8080"},
		"http://localhost":              {addr: "localhost:80", host: "localhost"},
		"http://127.0.0.1:8000/gateway": {addr: "127.0.0.1:8000", host: "127.0.0.1:8000", prefix: "/gateway"},
		"https://127.0.0.1:8443":        nil,
		"http://u:p@127.0.0.1:8080":     nil,
	} {
		got := newRawTarget(strings.TrimRight(base, "/"))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %+v, want %+v", base, got, want)
		}
	}
	for _, k := range []call{
		{op: opListProducts, path: "/products?search=a b"},
		{op: opListProducts, path: "/products", bearer: "x\r\nX-Evil: 1"},
	} {
		if rawEligible(k) {
			t.Errorf("%+v takes the raw path", k)
		}
	}
	if !rawEligible(call{op: opListProducts, path: "/products?page=2", apiKey: "k"}) {
		t.Error("a plain GET does not take the raw path")
	}
	if !rawEligible(call{op: opCreateSale, path: "/sales", body: map[string]int{"a": 1}}) {
		t.Error("a POST with a body does not take the raw path")
	}
}
