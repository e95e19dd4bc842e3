package sales

import (
	"context"
	"log/slog"
	"time"

	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/platform/errs"
)

// Recovery: what interrupted work leaves behind (pending sales, voided
// sales whose stock left anyway, returns not restocked) is settled here,
// from the state the inventory holds (see the package doc).

// recoveryBatch is how many records one query of a recovery round reads.
const recoveryBatch = 100

// Resume implements Local.
func (s *service) Resume(ctx context.Context) (Resumed, error) {
	r, err := s.settlePending(ctx, "")
	if err != nil {
		return r, err
	}
	for {
		restore, err := s.store.salesToRestore(ctx, recoveryBatch)
		if err != nil {
			return r, err
		}
		done := 0
		for _, id := range restore {
			sale, err := s.store.sale(ctx, id)
			if err == nil {
				err = s.restoreStock(ctx, sale)
			}
			if err != nil {
				s.log.WarnContext(ctx, "put back stock of voided sale", "context", Name, "sale", id, "err", err)
				r.Left++
				continue
			}
			done++
		}
		if len(restore) < recoveryBatch || done == 0 {
			break
		}
	}
	for {
		rets, err := s.store.returnsWhere(ctx, recoveryBatch, "restocked = ?", false)
		if err != nil {
			return r, err
		}
		done := 0
		for _, ret := range rets {
			if err := s.restock(ctx, ret); err != nil {
				s.log.WarnContext(ctx, "restock return", "context", Name, "return", ret.ID, "err", err)
				r.Left++
				continue
			}
			done++
			r.Restocked++
		}
		if len(rets) < recoveryBatch || done == 0 {
			break
		}
	}
	return r, nil
}

// settlePending settles the pending sales older than the grace (of one
// session, or all when sessionID is empty) from the state of their
// reservations. A sale that cannot be settled now (inventory unreachable)
// is counted as left and skipped; the walk goes on past it.
func (s *service) settlePending(ctx context.Context, sessionID string) (Resumed, error) {
	var r Resumed
	cutoff := s.now().Add(-s.grace)
	var afterAt time.Time
	afterID := ""
	for {
		rows, err := s.store.pendingSales(ctx, sessionID, cutoff, afterAt, afterID, recoveryBatch)
		if err != nil {
			return r, err
		}
		for _, row := range rows {
			afterAt, afterID = row.CreatedAt, row.ID
			sale, err := s.store.sale(ctx, row.ID)
			if err != nil {
				return r, err
			}
			settled, err := s.recover(ctx, sale)
			switch {
			case err != nil && errs.KindOf(err) != errs.Conflict:
				s.log.WarnContext(ctx, "pending sale left for a later round", "context", Name, "sale", sale.ID, "err", err)
				r.Left++
			case settled.Status == StatusCompleted:
				r.Completed++
			default:
				r.Voided++
			}
		}
		if len(rows) < recoveryBatch {
			break
		}
	}
	if r.Completed+r.Voided > 0 {
		s.log.InfoContext(ctx, "settled interrupted sales", "context", Name,
			"completed", r.Completed, "voided", r.Voided, "left", r.Left)
	}
	return r, nil
}

// recover settles one abandoned pending sale from its reservation:
// committed → complete; active → commit, complete; missing, released or
// expired → void (its stock never left).
func (s *service) recover(ctx context.Context, sale Sale) (Sale, error) {
	res, err := s.stock.GetReservation(ctx, sale.ID)
	switch {
	case errs.KindOf(err) == errs.NotFound:
		return s.void(ctx, sale, "interrupted before its stock was reserved")
	case err != nil:
		return Sale{}, s.stillPending(sale, "read its reservation", err)
	case res.Status == inventory.ReservationCommitted:
		return s.complete(ctx, sale)
	case res.Status == inventory.ReservationActive:
		return s.commitAndComplete(ctx, sale)
	default:
		return s.void(ctx, sale, "interrupted; its stock reservation was "+res.Status)
	}
}

// RunRecovery runs Resume at once (a restart settles what the last run
// left) and then every interval until ctx ends. It is safe in every
// process hosting sales: each sale is settled once, by whoever gets there
// first.
func RunRecovery(ctx context.Context, svc Local, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = 30 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if r, err := svc.Resume(ctx); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "sales recovery round failed", "context", Name, "err", err, "left", r.Left)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
