package events

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the bus's Prometheus series. Every bus and relay of a process
// shares one set per registry: NewMetrics on a registry that already has
// them returns the registered ones.
//
// Consumer lag is measured as the age of the oldest event a group has not
// acknowledged yet (0 when caught up), per group and stream: unlike an entry
// count it reads the same on both adapters whatever the event rate, it is
// exact after trimming, and "audit is 4 minutes behind on sales" is what an
// alert should say.
type Metrics struct {
	published    *prometheus.CounterVec
	processed    *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	deadLettered *prometheus.CounterVec
	lag          *prometheus.GaugeVec
}

// Outcomes of one handler call, the outcome label of events_processed_total.
const (
	OutcomeOK         = "ok"          // handled and acknowledged
	OutcomeRetry      = "retry"       // failed, will be tried again
	OutcomeDeadLetter = "dead_letter" // failed for the last time, moved
	OutcomeCanceled   = "canceled"    // interrupted by shutdown, handed back
)

// NewMetrics registers the bus metrics on reg, or finds them there. A nil
// reg gives working metrics that nothing exports.
func NewMetrics(reg *prometheus.Registry) (*Metrics, error) {
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "events_published_total", Help: "Events appended to the bus (duplicates dropped by the bus not counted).",
		}, []string{"event_type"}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "events_processed_total", Help: "Handler calls by consumer group, event type and outcome (ok, retry, dead_letter, canceled).",
		}, []string{"consumer", "event_type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "event_processing_duration_seconds",
			Help:    "Handler run time by consumer group and event type.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"consumer", "event_type"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "events_dead_lettered_total", Help: "Messages a consumer group gave up on and moved to its dead letters.",
		}, []string{"consumer"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "events_consumer_lag_seconds", Help: "Age of the oldest event the consumer group has not acknowledged (0 when caught up).",
		}, []string{"consumer", "stream"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.published, err = register(reg, m.published); err != nil {
		return nil, err
	}
	if m.processed, err = register(reg, m.processed); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.deadLettered, err = register(reg, m.deadLettered); err != nil {
		return nil, err
	}
	if m.lag, err = register(reg, m.lag); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c to reg, or returns the equal collector registered
// before: several buses and relays in one process share the series instead
// of failing on the second registration.
func register[C prometheus.Collector](reg *prometheus.Registry, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register bus metrics: %w", err)
}
