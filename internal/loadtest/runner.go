package loadtest

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// VU is one virtual user: a goroutine running journeys one after the
// other, with its own customer account, random stream and counters. A VU
// keeps its identity across a ramp-down and a later ramp-up, so VU n is
// always customer n.
type VU struct {
	ID   int
	r    *run
	rng  *rand.Rand
	cust *customerFx
	// stop is closed when the VU should stop after its current journey
	// (ramp-down, end of the run); nil in the open model, where the
	// arrival loop decides.
	stop chan struct{}
	seq  int
	// rec overrides the recorder (the post-run phase borrows a VU to
	// close sessions a hard stop left open).
	rec *Recorder
	// conn is the VU's own connection for its GETs (rawhttp.go), used
	// by one journey at a time like the VU itself.
	conn *rawConn
}

// next numbers the VU's journeys and ids, so every id the run makes is
// unique and reproducible from (run, VU, sequence).
func (vu *VU) next() int { vu.seq++; return vu.seq }

// call sends a request of the load phase.
func (vu *VU) call(ctx context.Context, k call) (int, error) {
	return vu.r.client.send(ctx, vu.recorder(), k, &vu.conn)
}

func (vu *VU) recorder() *Recorder {
	if vu.rec != nil {
		return vu.rec
	}
	return vu.r.load
}

// check records a check of the load phase.
func (vu *VU) check(name string, ok bool, detail string) { vu.recorder().Check(name, ok, detail) }

// pause is the think time inside a journey (a shopper reading a page, a
// cashier scanning the next item). It is skipped in the open model, whose
// iterations arrive at a set rate and need no pacing, and when think time
// is turned off; --think replaces every range. A stop request does not cut
// it short: a journey that started finishes (it may hold a register or a
// cart), only the hard stop at the end interrupts it.
func (vu *VU) pause(ctx context.Context, lo, hi time.Duration) {
	d := vu.r.thinkFor(ThinkRange{Min: lo, Max: hi}, vu.rng)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// thinkAfter is the pause between two journeys; a stop request cuts it
// short, since no journey is in flight.
func (vu *VU) thinkAfter(ctx context.Context, tr ThinkRange) {
	d := vu.r.thinkFor(tr, vu.rng)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-vu.stop:
	case <-t.C:
	}
}

// stopping tells whether the VU was asked to stop.
func (vu *VU) stopping() bool {
	if vu.stop == nil {
		return false
	}
	select {
	case <-vu.stop:
		return true
	default:
		return false
	}
}

// thinkFor draws a pause from tr, or from the --think override.
func (r *run) thinkFor(tr ThinkRange, rng *rand.Rand) time.Duration {
	if r.openModel {
		return 0
	}
	if r.thinkOverride != nil {
		tr = *r.thinkOverride
	}
	if tr.Max <= 0 {
		return 0
	}
	if tr.Max <= tr.Min {
		return tr.Min
	}
	return tr.Min + time.Duration(rng.Int64N(int64(tr.Max-tr.Min)))
}

// errStopped ends a journey that could not start because its VU was told
// to stop (waiting for a register at the end of the run).
var errStopped = errors.New("virtual user stopped")

// iterate runs one journey and counts it.
func (r *run) iterate(ctx context.Context, vu *VU) journey {
	j := r.sc.pick(vu.rng)
	err := j.fn(ctx, vu)
	switch {
	case errors.Is(err, errStopped):
	case ctx.Err() != nil:
		r.counts.add(j.name, outcomeInterrupted)
	case err != nil:
		r.counts.add(j.name, outcomeFailed)
	default:
		r.counts.add(j.name, outcomeOK)
	}
	return j
}

// vuLoop is a closed-model VU: journeys back to back with think time in
// between, until asked to stop.
func (r *run) vuLoop(ctx context.Context, vu *VU) {
	r.active.Add(1)
	defer r.active.Add(-1)
	for ctx.Err() == nil && !vu.stopping() {
		j := r.iterate(ctx, vu)
		vu.thinkAfter(ctx, j.think)
	}
}

// slot is one VU of the closed model and whether its goroutine runs.
type slot struct {
	vu   *VU
	done chan struct{} // closed when the goroutine returned
}

func (s *slot) running() bool {
	if s == nil || s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// tickEvery is how often the closed model compares the running VUs with
// the profile: fine enough that a ramp of 100 VUs over 1 s starts them
// within 20 ms of their due time.
const tickEvery = 20 * time.Millisecond

// runClosed runs the closed model: VUs follow the profile, each running
// journeys back to back. When the profile ends the VUs still running get
// gracefulStop to finish their journey, then the hard stop cancels what is
// left. It returns the duration of the load phase.
func (r *run) runClosed(ctx context.Context, p Profile, gracefulStop time.Duration) time.Duration {
	hard, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	slots := make([]*slot, p.Peak())
	var wg sync.WaitGroup
	start := r.loadStart
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()

	stopSlot := func(s *slot) {
		if s != nil && s.running() && !s.vu.stopping() {
			close(s.vu.stop)
		}
	}
	for {
		el := time.Since(start)
		if el >= p.Total() || ctx.Err() != nil {
			break
		}
		target := p.VUsAt(el)
		for i := range slots {
			s := slots[i]
			switch {
			case i < target && !s.running():
				if s == nil {
					s = &slot{vu: r.newVU(i)}
					slots[i] = s
				}
				s.vu.stop, s.done = make(chan struct{}), make(chan struct{})
				wg.Add(1)
				go func(s *slot) {
					defer wg.Done()
					defer close(s.done)
					r.vuLoop(hard, s.vu)
				}(s)
			case i >= target:
				stopSlot(s)
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	for _, s := range slots {
		stopSlot(s)
	}
	r.waitGraceful(ctx, &wg, gracefulStop)
	cancel()
	wg.Wait()
	return time.Since(start)
}

// waitGraceful waits for wg up to grace; an interrupted run (ctx done)
// does not wait at all.
func (r *run) waitGraceful(ctx context.Context, wg *sync.WaitGroup, grace time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if ctx.Err() != nil {
		grace = 0
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		r.gracefulTimedOut.Store(true)
	case <-ctx.Done():
	}
}

// pacerFor is vegeta's constant pacer for a rate in iterations per
// second. The pacer schedules arrival n at n × interval from the start,
// so a late arrival does not shift the ones after it (no coordinated
// omission); a rate with a fraction is kept exact by counting per 1000 s.
func pacerFor(rate float64) vegeta.ConstantPacer {
	if rate == math.Trunc(rate) {
		return vegeta.ConstantPacer{Freq: int(rate), Per: time.Second}
	}
	return vegeta.ConstantPacer{Freq: int(math.Round(rate * 1000)), Per: 1000 * time.Second}
}

// runOpen runs the open model: journeys arrive at rate per second for
// duration, each on a free VU of a pool of maxVUs; an arrival that finds
// every VU busy is dropped and counted, as k6's constant-arrival-rate
// does, because queueing it would hide the target's slowness behind the
// generator's queue. It returns the duration of the load phase.
func (r *run) runOpen(ctx context.Context, rate float64, duration time.Duration, maxVUs int, gracefulStop time.Duration) time.Duration {
	hard, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	free := make(chan *VU, maxVUs)
	for i := range maxVUs {
		free <- r.newVU(i)
	}
	pacer := pacerFor(rate)
	var (
		wg   sync.WaitGroup
		hits uint64
	)
	start := r.loadStart
	timer := time.NewTimer(0)
	defer timer.Stop()
	for ctx.Err() == nil {
		el := time.Since(start)
		if el >= duration {
			break
		}
		wait, stop := pacer.Pace(el, hits)
		if stop {
			break
		}
		if wait > 0 {
			timer.Reset(min(wait, duration-el))
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
			continue
		}
		hits++
		select {
		case vu := <-free:
			wg.Add(1)
			r.active.Add(1)
			go func() {
				defer wg.Done()
				defer r.active.Add(-1)
				r.iterate(hard, vu)
				free <- vu
			}()
		default:
			r.dropped.Add(1)
		}
	}
	r.waitGraceful(ctx, &wg, gracefulStop)
	cancel()
	wg.Wait()
	return time.Since(start)
}

// newVU makes VU i with its customer and a random stream derived from the
// run's seed, so a run is reproducible journey for journey given a seed
// (the target's answers aside).
func (r *run) newVU(i int) *VU {
	vu := &VU{ID: i, r: r, rng: rand.New(rand.NewPCG(r.seed, uint64(i)+1))}
	if n := len(r.fx.customers); n > 0 {
		vu.cust = r.fx.customers[i%n]
	}
	return vu
}

// Journey outcomes.
const (
	outcomeOK = iota
	outcomeFailed
	outcomeInterrupted
)

// journeyCounts counts journeys by name and outcome.
type journeyCounts struct {
	mu sync.Mutex
	m  map[string]*[3]int64
}

func (c *journeyCounts) add(name string, outcome int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*[3]int64{}
	}
	if c.m[name] == nil {
		c.m[name] = &[3]int64{}
	}
	c.m[name][outcome]++
}

// JourneyCount is how many journeys of one kind ran and how they ended.
type JourneyCount struct {
	Name        string `json:"name"`
	Completed   int64  `json:"completed"`
	Failed      int64  `json:"failed"`
	Interrupted int64  `json:"interrupted"`
}

// Iterations sums the journeys of the run.
type Iterations struct {
	Completed int64 `json:"completed"`
	// Failed counts journeys cut short by an error of the target.
	Failed int64 `json:"failed"`
	// Interrupted counts journeys cut by the hard stop at the end.
	Interrupted int64 `json:"interrupted"`
	// Dropped counts the open model's arrivals that found every VU busy.
	Dropped   int64          `json:"dropped"`
	PerSecond float64        `json:"per_second"`
	ByJourney []JourneyCount `json:"by_journey"`
}

func (c *journeyCounts) summary(names []string) Iterations {
	c.mu.Lock()
	defer c.mu.Unlock()
	var it Iterations
	for _, n := range names {
		v := c.m[n]
		if v == nil {
			v = &[3]int64{}
		}
		it.ByJourney = append(it.ByJourney, JourneyCount{Name: n, Completed: v[0], Failed: v[1], Interrupted: v[2]})
		it.Completed += v[0]
		it.Failed += v[1]
		it.Interrupted += v[2]
	}
	return it
}
