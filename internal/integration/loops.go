package integration

import (
	"context"
	"log/slog"
	"time"
)

// RunMonitor probes the order and customer contexts every interval until
// ctx ends, starting with one probe at once: the mode is known within one
// interval of start-up and follows every outage and recovery, which the
// original system's single check at start-up did not. Real calls keep the
// record current between probes. Run it in every process that hosts the
// integration context (each process has its own view of the network).
func RunMonitor(ctx context.Context, svc Local, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = 5 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := ModeFull
	for {
		st, err := svc.Probe(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.WarnContext(ctx, "integration status incomplete", "context", Name, "err", err)
		}
		// Log transitions only: a steady state is in the metrics.
		if st.Mode != last {
			if st.Mode == ModeDegraded {
				log.WarnContext(ctx, "integration degraded: a dependency is unreachable", "context", Name,
					"order", st.Dependencies.Order.Status, "customer", st.Dependencies.Customer.Status,
					"order_error", st.Dependencies.Order.LastError, "customer_error", st.Dependencies.Customer.LastError)
			} else {
				log.InfoContext(ctx, "integration back to full mode", "context", Name, "pending_enrichments", st.PendingEnrichments)
			}
			last = st.Mode
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// RunEnrichment completes pending enrichments every interval until ctx
// ends, starting with one round at once (a restart must not leave claims
// waiting a whole interval). When svc is the Local service it also starts
// a round as soon as the monitor sees the mode go back to full, so a
// recovery is not followed by up to one interval of needless waiting.
// Rounds are safe in every process hosting the context and concurrently:
// rows are leased, and claims refuses a second complete enrichment.
func RunEnrichment(ctx context.Context, svc Service, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = 30 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	var recovered <-chan struct{}
	if l, ok := svc.(Local); ok {
		recovered = l.Recovered()
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, err := svc.EnrichPending(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.WarnContext(ctx, "enrichment round failed", "context", Name, "err", err, "enriched", n)
		case n > 0:
			log.InfoContext(ctx, "pending enrichments completed", "context", Name, "enriched", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-recovered:
		}
	}
}
