package integration

import (
	"sync"
	"time"

	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/order"
)

// monitor is what the context knows of its dependencies' health: every
// probe and every real call reports its outcome here. It holds no
// goroutine of its own; RunMonitor drives the probes.
type monitor struct {
	mu      sync.Mutex
	now     func() time.Time
	deps    map[string]*depState
	metrics *metrics
	// recovered is signalled when the mode goes back to full; capacity 1,
	// so signals coalesce and the sender never blocks.
	recovered chan struct{}
}

// depState is one dependency's record.
type depState struct {
	observed  bool
	failures  int
	lastOK    time.Time
	lastErr   string
	lastErrAt time.Time
	// checkedAt is when the newest observation started: an older one
	// finishing late (a slow call that began before a probe answered)
	// must not overwrite newer knowledge.
	checkedAt time.Time
}

func (d *depState) status() string {
	switch {
	case !d.observed:
		return DependencyUnknown
	case d.failures > 0:
		return DependencyDown
	}
	return DependencyUp
}

func newMonitor(now func() time.Time, m *metrics) *monitor {
	mon := &monitor{
		now:       now,
		deps:      map[string]*depState{order.Name: {}, customer.Name: {}},
		metrics:   m,
		recovered: make(chan struct{}, 1),
	}
	mon.mu.Lock()
	mon.publishLocked()
	mon.mu.Unlock()
	return mon
}

// record notes the outcome of a call to dependency name that started at
// started; err nil means it answered.
func (m *monitor) record(name string, started time.Time, err error) {
	m.mu.Lock()
	d, ok := m.deps[name]
	if !ok || (d.observed && started.Before(d.checkedAt)) {
		m.mu.Unlock()
		return
	}
	wasDegraded := m.degradedLocked()
	now := m.now()
	d.observed, d.checkedAt = true, started
	if err == nil {
		d.failures, d.lastOK = 0, now
	} else {
		d.failures++
		d.lastErr, d.lastErrAt = err.Error(), now
	}
	recovered := wasDegraded && !m.degradedLocked()
	m.publishLocked()
	m.mu.Unlock()
	if recovered {
		select {
		case m.recovered <- struct{}{}:
		default:
		}
	}
}

// degraded tells whether a dependency is known to be down.
func (m *monitor) degraded() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.degradedLocked()
}

func (m *monitor) degradedLocked() bool {
	for _, d := range m.deps {
		if d.status() == DependencyDown {
			return true
		}
	}
	return false
}

// unobserved tells whether some dependency was never observed.
func (m *monitor) unobserved() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.deps {
		if !d.observed {
			return true
		}
	}
	return false
}

// publishLocked sets the gauges from the records.
func (m *monitor) publishLocked() {
	mode := 1.0
	if m.degradedLocked() {
		mode = 0
	}
	m.metrics.mode.Set(mode)
	for name, d := range m.deps {
		up := 1.0
		if d.status() == DependencyDown {
			up = 0
		}
		m.metrics.dependency.WithLabelValues(name).Set(up)
	}
}

// snapshot fills the mode, the dependencies and checked_at of a Status.
func (m *monitor) snapshot() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Mode: ModeFull}
	if m.degradedLocked() {
		st.Mode = ModeDegraded
	}
	var latest time.Time
	view := func(d *depState) DependencyStatus {
		out := DependencyStatus{Status: d.status(), LastError: d.lastErr, ConsecutiveFailures: d.failures}
		out.LastOK = timePtr(d.lastOK)
		out.LastErrorAt = timePtr(d.lastErrAt)
		if d.observed {
			out.CheckedAt = timePtr(d.checkedAt)
			if d.checkedAt.After(latest) {
				latest = d.checkedAt
			}
		}
		return out
	}
	st.Dependencies = Dependencies{Order: view(m.deps[order.Name]), Customer: view(m.deps[customer.Name])}
	st.CheckedAt = timePtr(latest)
	return st
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
