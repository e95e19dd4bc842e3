// Package metrics holds what every context needs to export Prometheus
// metrics on the registry its process hands it (there is no global
// registry: tests and the monolith build their own).
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register adds c to reg, or returns the collector already registered
// under the same description, so two instances of a context in one process
// (tests, or a monolith wiring a context twice) share their metrics. A nil
// reg keeps the metric unexported but usable.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// Only a programming error (one name, other labels) gets here:
		// fail at start-up, not at the first use.
		panic("metrics: " + err.Error())
	}
	return c
}
