package loadtest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestClientRecordsOutcomes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/ok":
			if r.Header.Get("X-API-Key") != "k" || r.Header.Get("Idempotency-Key") != "i" || r.Header.Get("Accept-Encoding") != "" {
				http.Error(w, "headers", 400)
				return
			}
			w.Write([]byte(`{"id":"x1"}`))
		case "/api/v1/conflict":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(409)
			w.Write([]byte(`{"title":"Conflict","status":409,"detail":"register R1 already has an open session","saga_id":"s1"}`))
		case "/api/v1/slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	c := newClient(srv.URL, 2, 300*time.Millisecond)
	rec := NewRecorder(time.Now())
	ctx := context.Background()

	var out struct {
		ID     string `json:"id"`
		SagaID string `json:"saga_id"`
	}
	if st, err := c.do(ctx, rec, call{op: opListProducts, path: "/ok", apiKey: "k", idem: "i", out: &out}); err != nil || st != 200 || out.ID != "x1" {
		t.Fatalf("ok: %d %v %+v", st, err, out)
	}
	st, err := c.do(ctx, rec, call{op: opOpenSession, path: "/conflict"})
	var he *httpError
	if st != 409 || !errors.As(err, &he) || !strings.Contains(he.Detail, "already has an open session") {
		t.Fatalf("conflict: %d %v", st, err)
	}
	// Expected, and decoded; an unexpected answer decodes only when asked.
	out = struct {
		ID     string `json:"id"`
		SagaID string `json:"saga_id"`
	}{}
	if _, err := c.do(ctx, rec, call{op: opCheckout, path: "/conflict", expect: []int{402, 409}, out: &out}); err != nil || out.SagaID != "s1" {
		t.Fatalf("expected 409: %v %+v", err, out)
	}
	out.SagaID = ""
	if _, err := c.do(ctx, rec, call{op: opCheckout, path: "/conflict", expect: []int{201}, out: &out, decodeErrors: true}); err == nil || out.SagaID != "s1" {
		t.Fatalf("decodeErrors: %v %+v", err, out)
	}
	if _, err := c.do(ctx, rec, call{op: opGetSaga, path: "/slow"}); statusOf(err) != 0 || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("slow: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.do(cctx, rec, call{op: opGetSaga, path: "/slow"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()
	if _, err := newClient(closed, 1, time.Second).do(ctx, rec, call{op: opHealth, path: "/health/live"}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("refused: %v", err)
	}

	f := rec.summary(time.Second)
	byID := map[string]EndpointSummary{}
	for _, e := range f.Endpoints {
		byID[e.ID] = e
	}
	if e := byID["open-register-session"]; e.Errors != 1 || e.Statuses["409"] != 1 {
		t.Errorf("the unexpected 409 = %+v", e)
	}
	if e := byID["checkout"]; e.Count != 2 || e.Errors != 1 {
		t.Errorf("checkout = %+v", e)
	}
	if e := byID["get-saga"]; e.Count != 1 || e.Statuses["timeout"] != 1 {
		t.Errorf("the timeout counted as %+v (the cancelled request must not count)", e)
	}
	if e := byID["health"]; e.Statuses["refused"] != 1 {
		t.Errorf("refused = %+v", e)
	}
	if f.Interrupted != 1 {
		t.Errorf("interrupted = %d", f.Interrupted)
	}
}

// testRun is a run whose scenario is one journey, without think time.
func testRun(fn func(ctx context.Context, vu *VU) error) *run {
	none := ThinkRange{}
	r := &run{sc: &Scenario{Name: "t", journeys: []journey{{name: "j", weight: 1, fn: fn}}},
		fx: &fixtures{}, led: newLedger(), thinkOverride: &none, seed: 1}
	r.loadStart = time.Now()
	r.load = NewRecorder(r.loadStart)
	return r
}

// TestClosedModelFollowsTheProfile samples the running VUs while a
// profile ramps up and down, and checks the count tracks VUsAt.
func TestClosedModelFollowsTheProfile(t *testing.T) {
	var (
		mu   sync.Mutex
		seen = map[int]bool{}
	)
	r := testRun(func(ctx context.Context, vu *VU) error {
		mu.Lock()
		seen[vu.ID] = true
		mu.Unlock()
		sleep(ctx, 5*time.Millisecond)
		return nil
	})
	p := mustStages("400ms:8,400ms:8,400ms:0")
	type sample struct {
		at     time.Duration
		active int64
	}
	var samples []sample
	done := make(chan time.Duration)
	go func() { done <- r.runClosed(context.Background(), p, time.Second) }()
	var took time.Duration
loop:
	for {
		select {
		case took = <-done:
			break loop
		case <-time.After(10 * time.Millisecond):
			samples = append(samples, sample{time.Since(r.loadStart), r.active.Load()})
		}
	}
	if took < p.Total() || took > p.Total()+500*time.Millisecond {
		t.Errorf("the run took %v for a %v profile", took, p.Total())
	}
	var peak int64
	for _, s := range samples {
		peak = max(peak, s.active)
		// Allow the scheduler's tick and a journey's length of lag.
		lo, hi := p.VUsAt(s.at-80*time.Millisecond), p.VUsAt(s.at+80*time.Millisecond)
		if s.active < int64(min(lo, hi)) || s.active > int64(max(lo, hi)) {
			t.Errorf("at %v: %d VUs, profile says %d..%d", s.at, s.active, min(lo, hi), max(lo, hi))
		}
	}
	if peak != 8 || len(seen) != 8 {
		t.Errorf("peak %d VUs, %d distinct", peak, len(seen))
	}
	if r.active.Load() != 0 {
		t.Errorf("%d VUs still running", r.active.Load())
	}
	it := r.counts.summary([]string{"j"})
	if it.Completed == 0 || it.Failed != 0 {
		t.Errorf("iterations = %+v", it)
	}
}

// TestClosedModelHardStop: a journey that does not finish within the
// graceful stop is cancelled, counted as interrupted, and the run ends.
func TestClosedModelHardStop(t *testing.T) {
	r := testRun(func(ctx context.Context, vu *VU) error {
		<-ctx.Done()
		return ctx.Err()
	})
	start := time.Now()
	r.runClosed(context.Background(), mustStages("0s:3,100ms:3"), 200*time.Millisecond)
	if took := time.Since(start); took > time.Second {
		t.Errorf("the hard stop took %v", took)
	}
	if it := r.counts.summary([]string{"j"}); it.Interrupted != 3 || it.Completed != 0 {
		t.Errorf("iterations = %+v", it)
	}
	if !r.gracefulTimedOut.Load() {
		t.Error("the graceful stop's expiry was not noted")
	}
}

// TestClosedModelInterrupt: cancelling the run's context (Ctrl-C) stops
// at once, without waiting for the graceful stop.
func TestClosedModelInterrupt(t *testing.T) {
	r := testRun(func(ctx context.Context, vu *VU) error { sleep(ctx, time.Hour); return ctx.Err() })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r.runClosed(ctx, mustStages("0s:4,1h:4"), time.Hour)
	if took := time.Since(start); took > time.Second {
		t.Errorf("an interrupted run took %v to stop", took)
	}
}

func TestOpenModelPacesAndDrops(t *testing.T) {
	var n atomic.Int64
	r := testRun(func(ctx context.Context, vu *VU) error { n.Add(1); sleep(ctx, 5*time.Millisecond); return nil })
	r.openModel = true
	r.runOpen(context.Background(), 100, time.Second, 20, time.Second)
	if got := n.Load(); got < 95 || got > 100 || r.dropped.Load() != 0 {
		t.Errorf("100/s for 1s on 20 VUs: %d journeys, %d dropped", got, r.dropped.Load())
	}

	n.Store(0)
	slow := testRun(func(ctx context.Context, vu *VU) error { n.Add(1); sleep(ctx, 300*time.Millisecond); return nil })
	slow.openModel = true
	slow.runOpen(context.Background(), 50, time.Second, 2, time.Second)
	// Two VUs busy 300 ms each serve about 7 arrivals a second; the rest
	// are dropped, not queued.
	if got, d := n.Load(), slow.dropped.Load(); got < 4 || got > 10 || got+d < 45 {
		t.Errorf("50/s on 2 slow VUs: %d journeys, %d dropped", got, d)
	}
}

// TestThinkTime: the think time follows the scenario's range unless
// overridden, and the open model has none.
func TestThinkTime(t *testing.T) {
	r := &run{}
	vu := &VU{rng: testRun(nil).newVU(0).rng}
	tr := ThinkRange{50 * time.Millisecond, time.Second}
	for range 1000 {
		if d := r.thinkFor(tr, vu.rng); d < tr.Min || d >= tr.Max {
			t.Fatalf("think %v outside %v", d, tr)
		}
	}
	fixed := ThinkRange{200 * time.Millisecond, 200 * time.Millisecond}
	r.thinkOverride = &fixed
	if d := r.thinkFor(tr, vu.rng); d != 200*time.Millisecond {
		t.Errorf("override: %v", d)
	}
	r.openModel = true
	if d := r.thinkFor(tr, vu.rng); d != 0 {
		t.Errorf("open model thinks %v", d)
	}
}

// TestScenarioMix: the mixed scenario draws journeys at its weights.
func TestScenarioMix(t *testing.T) {
	sc, err := lookupScenario("mixed")
	if err != nil {
		t.Fatal(err)
	}
	vu := testRun(nil).newVU(3)
	counts := map[string]int{}
	const n = 20000
	for range n {
		counts[sc.pick(vu.rng).name]++
	}
	for name, want := range map[string]float64{"catalog": 0.70, "checkout": 0.15, "pos": 0.10, "claims": 0.05} {
		if got := float64(counts[name]) / n; got < want-0.015 || got > want+0.015 {
			t.Errorf("%s: %.3f of journeys, want %.2f", name, got, want)
		}
	}
	for _, s := range scenarios {
		if err := s.Full.Validate(); err != nil || s.Short.Validate() != nil || s.Short.Total() > 30*time.Second {
			t.Errorf("scenario %s: profiles %v / %v", s.Name, s.Full, s.Short)
		}
	}
}
