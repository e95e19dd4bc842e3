package inventory

import (
	"context"
	"log/slog"
	"time"
)

// RunExpiry sweeps expired reservations every interval until ctx ends,
// starting with one sweep at once (a restart must not leave stock held by
// holds that lapsed while the process was down). Lazy expiry already
// protects readers and reservers; the sweep is what gives the stock back
// to lists and reports when nobody touches the reservation again. It is
// safe to run in every process that hosts inventory: each reservation is
// expired once, by whoever gets there first.
func RunExpiry(ctx context.Context, svc Service, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = time.Minute
	}
	if log == nil {
		log = slog.Default()
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, err := svc.ExpireReservations(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.WarnContext(ctx, "reservation expiry sweep failed", "context", Name, "err", err, "expired", n)
		case n > 0:
			log.InfoContext(ctx, "expired reservations", "context", Name, "expired", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
