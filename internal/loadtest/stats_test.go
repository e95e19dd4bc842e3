package loadtest

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func durs(ms ...float64) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, v := range ms {
		out[i] = time.Duration(v * float64(time.Millisecond))
	}
	return out
}

func TestPercentile(t *testing.T) {
	cases := []struct {
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{nil, 95, 0},
		{durs(7), 50, 7 * time.Millisecond},
		{durs(7), 99, 7 * time.Millisecond},
		{durs(1, 2, 3, 4), 50, 2500 * time.Microsecond}, // between the two middle ranks
		{durs(1, 2, 3, 4), 0, time.Millisecond},
		{durs(1, 2, 3, 4), 100, 4 * time.Millisecond},
		{durs(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{durs(1, 2, 3, 4, 5), 25, 2 * time.Millisecond},
		{durs(10, 20), 95, 19500 * time.Microsecond},
	}
	for _, c := range cases {
		if got := Percentile(c.samples, c.p); got != c.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", c.samples, c.p, got, c.want)
		}
	}
	// 1..1000 ms: p95 at rank 0.95*999 = 949.05 → 950.05 ms, p99 990.01 ms.
	var s []time.Duration
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	if got := Percentile(s, 95); got != 950050*time.Microsecond {
		t.Errorf("p95 of 1..1000ms = %v", got)
	}
	if got := Percentile(s, 99); got != 990010*time.Microsecond {
		t.Errorf("p99 of 1..1000ms = %v", got)
	}
}

// TestPercentileMatchesSortedRank compares the interpolation with a
// direct computation on random samples: the result always lies between
// the two ranks around p and never outside the sample.
func TestPercentileMatchesSortedRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		n := 1 + rng.IntN(500)
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = time.Duration(rng.Int64N(int64(time.Second)))
		}
		slices.Sort(s)
		for _, p := range []float64{1, 50, 90, 95, 99, 99.9} {
			got := Percentile(s, p)
			rank := p / 100 * float64(n-1)
			lo, hi := s[int(rank)], s[min(n-1, int(rank)+1)]
			if got < lo || got > hi {
				t.Fatalf("n=%d p%v = %v outside [%v, %v]", n, p, got, lo, hi)
			}
		}
	}
}

func TestRecorderCountsEndpointsSecondsAndErrors(t *testing.T) {
	start := time.Unix(1000, 0)
	r := NewRecorder(start)
	ok := Outcome{Status: 200}
	for i := 1; i <= 100; i++ {
		r.Add(opListProducts, ok, time.Duration(i)*time.Millisecond, start.Add(500*time.Millisecond))
	}
	r.Add(opCheckout, Outcome{Status: 201}, 20*time.Millisecond, start.Add(1500*time.Millisecond))
	r.Add(opCheckout, Outcome{Status: 500, Failed: true, Detail: "boom"}, 30*time.Millisecond, start.Add(1600*time.Millisecond))
	r.Add(opCheckout, Outcome{Status: 500, Failed: true, Detail: "boom"}, 40*time.Millisecond, start.Add(1700*time.Millisecond))
	r.Add(opCheckout, Outcome{Err: "timeout", Failed: true, Detail: "deadline"}, time.Second, start.Add(2100*time.Millisecond))
	r.Interrupted()
	r.Check("c", true, "")
	r.Check("c", false, "first")
	r.Check("c", false, "second")

	if p, ok := r.CloseSeconds(start.Add(1900*time.Millisecond), 7); !ok || p.T != 0 || p.Requests != 100 || p.VUs != 7 || p.P50 != 50.5 {
		t.Errorf("second 0 = %+v (closed %v)", p, ok)
	}
	r.closeAll(3)
	f := r.summary(4 * time.Second)
	if f.Requests != 104 || f.Errors != 3 || f.Interrupted != 1 {
		t.Errorf("totals: %d requests, %d errors, %d interrupted", f.Requests, f.Errors, f.Interrupted)
	}
	if len(f.Series) != 3 || f.Series[1].Requests != 3 || f.Series[1].Errors != 2 || f.Series[2].Errors != 1 || f.Series[2].VUs != 3 {
		t.Errorf("series = %+v", f.Series)
	}
	if f.Endpoints[0].ID != "list-products" || f.Endpoints[0].RPS != 25 || f.Endpoints[0].Latency.P50 != 50.5 ||
		f.Endpoints[0].Latency.Max != 100 || f.Endpoints[0].Latency.Mean != 50.5 {
		t.Errorf("list-products = %+v", f.Endpoints[0])
	}
	co := f.Endpoints[1]
	if co.ID != "checkout" || co.Errors != 3 || co.ErrorRate != 0.75 || co.Statuses["201"] != 1 || co.Statuses["500"] != 2 || co.Statuses["timeout"] != 1 {
		t.Errorf("checkout = %+v", co)
	}
	if len(co.ErrorLog) != 2 { // two distinct messages, the repeated one once
		t.Errorf("error samples = %q", co.ErrorLog)
	}
	if len(f.Checks) != 1 || f.Checks[0].Passes != 1 || f.Checks[0].Fails != 2 || f.Checks[0].Sample != "first" {
		t.Errorf("checks = %+v", f.Checks)
	}
	if f.Latency.Max != 1000 || f.Latency.Min != 1 || len(f.all) != 104 {
		t.Errorf("overall latency = %+v (%d samples)", f.Latency, len(f.all))
	}
}

// TestRecorderStragglerLandsInAnOpenSecond: a request that ends in a
// second already closed is counted in the oldest open one, never lost.
func TestRecorderStragglerLandsInAnOpenSecond(t *testing.T) {
	start := time.Unix(0, 0)
	r := NewRecorder(start)
	r.CloseSeconds(start.Add(3*time.Second), 1)
	r.Add(opListProducts, Outcome{Status: 200}, time.Millisecond, start.Add(time.Second))
	r.closeAll(0)
	f := r.summary(4 * time.Second)
	var total int64
	for _, p := range f.Series {
		total += p.Requests
	}
	if total != 1 || f.Series[3].Requests != 1 {
		t.Errorf("series = %+v", f.Series)
	}
}

// TestRecorderReservoirBoundsMemory: past the sample cap an endpoint
// keeps a uniform sample of bounded size, while count, min, max and mean
// stay exact.
func TestRecorderReservoirBoundsMemory(t *testing.T) {
	start := time.Unix(0, 0)
	r := NewRecorder(start)
	r.sampleCap = 1000
	for i := 1; i <= 100_000; i++ {
		r.Add(opListProducts, Outcome{Status: 200}, time.Duration(i)*time.Microsecond, start)
	}
	f := r.summary(time.Second)
	e := f.Endpoints[0]
	if len(f.perEP["list-products"]) != 1000 || e.Count != 100_000 {
		t.Fatalf("%d samples kept of %d", len(f.perEP["list-products"]), e.Count)
	}
	if e.Latency.Min != 0.001 || e.Latency.Max != 100 || e.Latency.Mean != 50.001 {
		t.Errorf("exact figures drifted: %+v", e.Latency)
	}
	// A uniform sample of 1..100000 µs has its median near 50 ms.
	if e.Latency.P50 < 45 || e.Latency.P50 > 55 {
		t.Errorf("the reservoir is biased: p50 %v ms", e.Latency.P50)
	}
}
