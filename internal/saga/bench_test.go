package saga

import (
	"fmt"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/testkit"
)

// BenchmarkCheckout measures whole checkouts — cart, reservation,
// payment, order, commit, cart cleared, every step persisted — through the
// monolith's HTTP surface at 50 concurrent clients, on PostgreSQL when
// POS_TEST_POSTGRES_URL is set (SQLite otherwise). It reports completed
// checkouts per second and the latency percentiles, as testkit.BenchHTTP
// does for reads; the carts are filled before the clock starts.
//
//	go test -run '^$' -bench Checkout -benchtime 2000x ./internal/saga/
func BenchmarkCheckout(b *testing.B) {
	backend := testkit.SQLite
	if os.Getenv("POS_TEST_POSTGRES_URL") != "" {
		backend = testkit.Backend{Name: "postgres"}
	}
	e := newEnv(b, backend, Options{})
	// Fifty products, so that concurrent checkouts mostly reserve
	// different stock rows, as a real catalogue does.
	const clients, products = 50, 50
	items := make([]line, products)
	for i := range items {
		items[i] = line{e.addProduct(fmt.Sprintf("BENCH-%02d", i), int64(500+i), 10_000_000), 1}
	}
	type buyer struct {
		body    CheckoutRequest
		headers []string
	}
	buyers := make([]buyer, b.N)
	for i := range buyers {
		cus := testkit.ID("cus")
		buyers[i] = buyer{request(e.fillCart(items[i%products]), cus, "tok_visa"),
			append(e.bearer(cus), "Idempotency-Key", testkit.ID("key"))}
	}

	var (
		next      atomic.Int64
		failed    atomic.Int64
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N/clients+1)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					break
				}
				t0 := time.Now()
				r := e.post("/api/v1/checkout", buyers[i].body, buyers[i].headers...)
				if r.err != nil || r.status != http.StatusCreated {
					failed.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Errorf("%d of %d checkouts did not complete", n, b.N)
	}
	if len(latencies) == 0 {
		return
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		return float64(latencies[int(float64(len(latencies)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "checkouts/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	e.checkStockInvariant()
	e.checkMoneyInvariant()
}
