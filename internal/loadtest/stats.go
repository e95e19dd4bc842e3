package loadtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Latencies are kept as exact samples and sorted when a percentile is
// asked for: at the sizes a run produces (a few million requests at most)
// that costs a few tens of megabytes and gives exact percentiles, where a
// sketch (t-digest, as vegeta's metrics use) would give estimates. Past
// maxSamplesPerEndpoint an endpoint switches to reservoir sampling, so
// memory stays bounded on a very long run; count, min, max and mean stay
// exact regardless.
const maxSamplesPerEndpoint = 2_000_000

// maxErrorSamples bounds the distinct error messages kept per endpoint.
const maxErrorSamples = 5

// Percentile returns the p-th percentile (0-100) of samples sorted in
// ascending order, interpolating linearly between the two closest ranks,
// as k6 and numpy's default do: p50 of {1,2,3,4} is 2.5, p100 is the
// maximum. An empty sample answers 0.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	switch {
	case n == 0:
		return 0
	case p <= 0:
		return sorted[0]
	case p >= 100:
		return sorted[n-1]
	}
	rank := p / 100 * float64(n-1)
	lo := int(math.Floor(rank))
	if lo >= n-1 {
		return sorted[n-1]
	}
	frac := rank - float64(lo)
	return sorted[lo] + time.Duration(math.Round(frac*float64(sorted[lo+1]-sorted[lo])))
}

// Latency summarises a latency distribution, in milliseconds.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// ms turns a duration into float milliseconds, keeping microseconds.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// summarize computes Latency over sorted samples; min, max and mean come
// from the exact running figures when the sample is a reservoir.
func summarize(sorted []time.Duration, count int64, sum, minD, maxD time.Duration) Latency {
	if count == 0 {
		return Latency{}
	}
	return Latency{
		Min:  ms(minD),
		Mean: ms(sum / time.Duration(count)),
		P50:  ms(Percentile(sorted, 50)),
		P90:  ms(Percentile(sorted, 90)),
		P95:  ms(Percentile(sorted, 95)),
		P99:  ms(Percentile(sorted, 99)),
		Max:  ms(maxD),
	}
}

// endpoint accumulates the requests of one operation.
type endpoint struct {
	op        Op
	count     int64
	errors    int64
	sum       time.Duration
	min, max  time.Duration
	samples   []time.Duration
	seen      int64 // samples offered, for the reservoir
	statuses  map[string]int64
	errSample []string
}

// bucket accumulates one second of the run, for the progress line and the
// plots.
type bucket struct {
	count, errors int64
	samples       []time.Duration
}

// Point is one second of the run as the plots show it.
type Point struct {
	// T is the second of the load phase, from 0.
	T        int     `json:"t"`
	VUs      int     `json:"vus"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

// Recorder collects every request of a phase: per endpoint, per second,
// and the checks scenarios make on responses. It is safe for concurrent
// use; one mutex is plenty at the tens of thousands of requests a second
// one machine can generate.
type Recorder struct {
	mu          sync.Mutex
	start       time.Time
	eps         map[string]*endpoint
	buckets     map[int]*bucket
	series      []Point
	closedUpTo  int // seconds [0, closedUpTo) are in series
	checks      map[string]*CheckSummary
	interrupted int64
	rng         *rand.Rand
	sampleCap   int // maxSamplesPerEndpoint; smaller in tests
}

// NewRecorder starts recording; seconds are counted from start.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{start: start, eps: map[string]*endpoint{}, buckets: map[int]*bucket{},
		checks: map[string]*CheckSummary{}, rng: rand.New(rand.NewPCG(uint64(start.UnixNano()), 7)),
		sampleCap: maxSamplesPerEndpoint}
}

// Outcome is what one request came to.
type Outcome struct {
	// Status is the HTTP status, 0 when no response came.
	Status int
	// Err names a transport failure (timeout, refused, reset), empty
	// when a response came.
	Err string
	// Failed tells whether the outcome is an error for this request: a
	// transport failure or a status the request did not expect.
	Failed bool
	// Detail describes the failure for the report (a problem's detail).
	Detail string
}

// Add records one request of op that finished at end after latency.
func (r *Recorder) Add(op Op, out Outcome, latency time.Duration, end time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.eps[op.ID]
	if e == nil {
		e = &endpoint{op: op, statuses: map[string]int64{}, min: latency}
		r.eps[op.ID] = e
	}
	e.count++
	e.sum += latency
	e.min = min(e.min, latency)
	e.max = max(e.max, latency)
	e.seen++
	if len(e.samples) < r.sampleCap {
		e.samples = append(e.samples, latency)
	} else if j := r.rng.Int64N(e.seen); j < int64(r.sampleCap) {
		e.samples[j] = latency
	}
	key := strconv.Itoa(out.Status)
	if out.Err != "" {
		key = out.Err
	}
	e.statuses[key]++
	if out.Failed {
		e.errors++
		if len(e.errSample) < maxErrorSamples {
			msg := key
			if out.Detail != "" {
				msg += ": " + out.Detail
			}
			if !slices.Contains(e.errSample, msg) {
				e.errSample = append(e.errSample, msg)
			}
		}
	}
	sec := max(0, int(end.Sub(r.start)/time.Second))
	if sec < r.closedUpTo {
		sec = r.closedUpTo // a straggler lands in the oldest open second
	}
	b := r.buckets[sec]
	if b == nil {
		b = &bucket{}
		r.buckets[sec] = b
	}
	b.count++
	b.samples = append(b.samples, latency)
	if out.Failed {
		b.errors++
	}
}

// Interrupted counts a request cut short by the end of the run: neither
// a success nor an error of the target, so it is kept out of both.
func (r *Recorder) Interrupted() {
	r.mu.Lock()
	r.interrupted++
	r.mu.Unlock()
}

// Check records the outcome of a named check on a response.
func (r *Recorder) Check(name string, ok bool, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.checks[name]
	if c == nil {
		c = &CheckSummary{Name: name}
		r.checks[name] = c
	}
	if ok {
		c.Passes++
		return
	}
	c.Fails++
	if c.Sample == "" {
		c.Sample = detail
	}
}

// CloseSeconds turns every second before now into a Point (vus is the
// VU count to show for them) and returns the last one closed, for the
// progress line; ok is false when no second was complete.
func (r *Recorder) CloseSeconds(now time.Time, vus int) (last Point, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	upTo := int(now.Sub(r.start) / time.Second)
	for ; r.closedUpTo < upTo; r.closedUpTo++ {
		last, ok = r.closePoint(r.closedUpTo, vus), true
	}
	return last, ok
}

// closeAll closes every second still open, at the end of a phase.
func (r *Recorder) closeAll(vus int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	maxSec := r.closedUpTo - 1
	for s := range r.buckets {
		maxSec = max(maxSec, s)
	}
	for ; r.closedUpTo <= maxSec; r.closedUpTo++ {
		r.closePoint(r.closedUpTo, vus)
	}
}

// closePoint computes and appends the Point of second sec (lock held).
func (r *Recorder) closePoint(sec, vus int) Point {
	p := Point{T: sec, VUs: vus}
	if b := r.buckets[sec]; b != nil {
		slices.Sort(b.samples)
		p.Requests, p.Errors = b.count, b.errors
		p.P50, p.P95, p.P99 = ms(Percentile(b.samples, 50)), ms(Percentile(b.samples, 95)), ms(Percentile(b.samples, 99))
		p.Max = ms(Percentile(b.samples, 100))
		delete(r.buckets, sec)
	}
	r.series = append(r.series, p)
	return p
}

// Totals are the running figures of the progress line.
func (r *Recorder) Totals() (requests, errors int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.eps {
		requests += e.count
		errors += e.errors
	}
	return requests, errors
}

// EndpointSummary is one operation's figures.
type EndpointSummary struct {
	// ID is the API's operation id, usable in thresholds (list-products:p95<50ms).
	ID string `json:"id"`
	// Route is the method and route template.
	Route     string  `json:"route"`
	Count     int64   `json:"count"`
	RPS       float64 `json:"rps"`
	Latency   Latency `json:"latency_ms"`
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	// Statuses counts answers by HTTP status and transport failures by kind.
	Statuses map[string]int64 `json:"statuses"`
	ErrorLog []string         `json:"error_samples,omitempty"`
}

// CheckSummary counts one named check.
type CheckSummary struct {
	Name   string `json:"name"`
	Passes int64  `json:"passes"`
	Fails  int64  `json:"fails"`
	// Sample is the first failure's detail.
	Sample string `json:"sample,omitempty"`
}

// phaseFigures is what a Recorder holds, summarised.
type phaseFigures struct {
	Requests, Errors, Interrupted int64
	Latency                       Latency
	Endpoints                     []EndpointSummary
	Checks                        []CheckSummary
	Series                        []Point
	// all and perEP keep the sorted samples for thresholds on
	// percentiles the summary does not list (p99.9, p75).
	all   []time.Duration
	perEP map[string][]time.Duration
}

// summary computes the figures over elapsed (the phase's duration, for
// the rates). Endpoints come out in a stable order: busiest first.
func (r *Recorder) summary(elapsed time.Duration) phaseFigures {
	r.mu.Lock()
	defer r.mu.Unlock()
	secs := elapsed.Seconds()
	var (
		f        = phaseFigures{perEP: map[string][]time.Duration{}}
		all      []time.Duration
		sum      time.Duration
		minD     = time.Duration(math.MaxInt64)
		maxD     time.Duration
		allCount int64
	)
	for _, e := range r.eps {
		sorted := slices.Clone(e.samples)
		slices.Sort(sorted)
		es := EndpointSummary{ID: e.op.ID, Route: e.op.Name(), Count: e.count, Errors: e.errors,
			Latency: summarize(sorted, e.count, e.sum, e.min, e.max), Statuses: copyCounts(e.statuses), ErrorLog: slices.Clone(e.errSample)}
		if secs > 0 {
			es.RPS = round3(float64(e.count) / secs)
		}
		if e.count > 0 {
			es.ErrorRate = round6(float64(e.errors) / float64(e.count))
		}
		f.Endpoints = append(f.Endpoints, es)
		f.perEP[e.op.ID] = sorted
		f.Requests += e.count
		f.Errors += e.errors
		all = append(all, sorted...)
		sum += e.sum
		allCount += e.count
		minD, maxD = min(minD, e.min), max(maxD, e.max)
	}
	sort.Slice(f.Endpoints, func(i, j int) bool {
		a, b := f.Endpoints[i], f.Endpoints[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.ID < b.ID
	})
	slices.Sort(all)
	if allCount > 0 {
		f.Latency = summarize(all, allCount, sum, minD, maxD)
	}
	for _, c := range r.checks {
		f.Checks = append(f.Checks, *c)
	}
	sort.Slice(f.Checks, func(i, j int) bool { return f.Checks[i].Name < f.Checks[j].Name })
	f.all = all
	f.Series = slices.Clone(r.series)
	f.Interrupted = r.interrupted
	return f
}

func copyCounts(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func round3(v float64) float64 { return math.Round(v*1e3) / 1e3 }
func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }
