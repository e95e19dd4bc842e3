package sales

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/ids"
)

// Returns: checked and priced against the sale under its lock, refunded
// card first, restocked where they happen (see the package doc).

// checkReturn validates the shape of a return request.
func checkReturn(saleID string, in NewSaleReturn) error {
	var v errs.Validator
	checkID(&v, "id", saleID)
	checkID(&v, "register_id", in.RegisterID)
	checkKey(&v, in.IdempotencyKey)
	v.Check(in.Reason != "", "reason", "is required")
	v.Check(utf8.RuneCountInString(in.Reason) <= 500, "reason", "must be at most 500 characters")
	v.Check(len(in.Lines) >= 1, "lines", "at least one line is required")
	v.Check(len(in.Lines) <= MaxLines, "lines", "at most %d lines", MaxLines)
	for i, l := range in.Lines {
		f := fmt.Sprintf("lines[%d]", i)
		checkID(&v, f+".product_id", l.ProductID)
		v.Check(l.Quantity >= 1 && l.Quantity <= MaxQuantity, f+".quantity", "must be between 1 and %d", MaxQuantity)
	}
	return v.Err()
}

// CreateReturn implements Service: the return is recorded (or found
// under its idempotency key), then restocked.
func (s *service) CreateReturn(ctx context.Context, saleID string, in NewSaleReturn) (SaleReturn, error) {
	ret, err := s.recordReturn(ctx, saleID, in)
	if err != nil {
		return SaleReturn{}, err
	}
	s.finishRestock(ctx, &ret)
	return ret, nil
}

// recordReturn checks and authorizes a return and records it, or finds
// the one recorded under its idempotency key; it does not restock.
func (s *service) recordReturn(ctx context.Context, saleID string, in NewSaleReturn) (SaleReturn, error) {
	in.Reason = strings.TrimSpace(in.Reason)
	if err := checkReturn(saleID, in); err != nil {
		return SaleReturn{}, err
	}
	hash := requestHash(struct {
		SaleID, RegisterID, Reason string
		Lines                      []SaleReturnLineInput
	}{saleID, in.RegisterID, in.Reason, in.Lines})
	sale, err := s.store.sale(ctx, saleID)
	if err != nil {
		return SaleReturn{}, err
	}
	reg, err := s.registerFor(ctx, "register_id", in.RegisterID)
	if err != nil {
		return SaleReturn{}, err
	}
	if !in.Actor.mayWorkAt(reg.LocationID) {
		return SaleReturn{}, fmt.Errorf("this key works at store %s; register %s is at %s: %w",
			in.Actor.LocationID, reg.ID, reg.LocationID, errs.Forbidden)
	}
	otherStore := sale.LocationID != reg.LocationID || (in.Actor.LocationID != "" && in.Actor.LocationID != sale.LocationID)
	if otherStore && !in.Actor.isManager() {
		return SaleReturn{}, fmt.Errorf("sale %s was made at store %s: a return there from another store needs a manager: %w",
			sale.ID, sale.LocationID, errs.Forbidden)
	}
	// Who may is settled; a retry of a return already made answers it,
	// even if the session it was made in has closed since.
	if in.IdempotencyKey != "" {
		if ret, ok, err := s.returnUnderKey(ctx, saleID, in.IdempotencyKey, hash); err != nil || ok {
			return ret, err
		}
	}
	if sale.Status != StatusCompleted {
		return SaleReturn{}, fmt.Errorf("sale %s is %s: nothing to return: %w", sale.ID, sale.Status, errs.Conflict)
	}
	ss, err := s.store.openSessionOf(ctx, reg.ID)
	if errs.KindOf(err) == errs.NotFound {
		return SaleReturn{}, fmt.Errorf("register %s has no open session to pay the refund from; open one first: %w", reg.ID, errs.Conflict)
	}
	if err != nil {
		return SaleReturn{}, err
	}
	// A first check on the sale as read, for a quick answer; the one that
	// counts runs again inside the transaction, under the sale's lock.
	if _, err := priceReturn(sale, in.Lines); err != nil {
		return SaleReturn{}, err
	}
	draft := SaleReturn{ID: ids.New("ret"), SaleID: sale.ID, RegisterID: reg.ID, SessionID: ss.ID, LocationID: reg.LocationID,
		Reason: in.Reason, Currency: sale.Currency, CreatedAt: s.now()}
	ret, err := s.store.recordReturn(ctx, draft, in.IdempotencyKey, hash, func(cur Sale) (SaleReturn, error) {
		priced, err := priceReturn(cur, in.Lines)
		if err != nil {
			return SaleReturn{}, err
		}
		r := draft
		r.Lines, r.Taxes = priced.lines, priced.taxes
		r.SubtotalCents, r.TaxCents, r.TotalCents = priced.subtotal, priced.taxCents, priced.total
		card, cash := refundTender(cur, priced.total)
		r.Refunds = refunds(card, cash)
		return r, nil
	})
	switch {
	case errors.Is(err, errSessionNotOpen):
		return SaleReturn{}, fmt.Errorf("session %s of register %s closed meanwhile: %w", ss.ID, reg.ID, errs.Conflict)
	case errors.Is(err, errDuplicateKey):
		ret, ok, err := s.returnUnderKey(ctx, saleID, in.IdempotencyKey, hash)
		if err == nil && !ok {
			err = fmt.Errorf("return under key %q vanished: %w", in.IdempotencyKey, errs.Conflict)
		}
		return ret, err
	case err != nil:
		return SaleReturn{}, err
	}
	s.metrics.returns.Inc()
	return ret, nil
}

// returnUnderKey finds the return made under an idempotency key; one made
// by another request body is errs.Unprocessable.
func (s *service) returnUnderKey(ctx context.Context, saleID, key, hash string) (SaleReturn, bool, error) {
	ret, was, err := s.store.returnByKey(ctx, saleID, key)
	if errs.KindOf(err) == errs.NotFound {
		return SaleReturn{}, false, nil
	}
	if err != nil {
		return SaleReturn{}, false, err
	}
	if was != hash {
		return SaleReturn{}, false, fmt.Errorf("Idempotency-Key %q was used for another return (%s) with a different body: %w",
			key, ret.ID, errs.Unprocessable)
	}
	ret.replayed = true
	return ret, true, nil
}

// finishRestock restocks a recorded return unless it is done. A failure
// is not the caller's: the return stands, the refund was given, and
// recovery restocks it later (never twice: the adjustment ids derive from
// the return).
func (s *service) finishRestock(ctx context.Context, ret *SaleReturn) {
	if ret.Restocked {
		return
	}
	if err := s.restock(ctx, *ret); err != nil {
		s.log.WarnContext(ctx, "return not restocked yet; recovery will", "context", Name, "return", ret.ID, "err", err)
		return
	}
	ret.Restocked = true
}

// restock puts a return's goods back at the store where it happened.
func (s *service) restock(ctx context.Context, ret SaleReturn) error {
	for _, l := range ret.Lines {
		_, err := s.stock.Adjust(ctx, inventory.Adjustment{
			AdjustmentID: ret.ID + ":" + strconv.Itoa(l.LineNo), ProductID: l.ProductID, LocationID: ret.LocationID,
			Delta: l.Quantity, Reason: inventory.ReasonReturn, Note: "return " + ret.ID + " of sale " + ret.SaleID,
		})
		if err != nil {
			return fmt.Errorf("restock return %s: %w", ret.ID, err)
		}
	}
	return s.store.markRestocked(ctx, ret.ID, s.now())
}

// ListReturns implements Service.
func (s *service) ListReturns(ctx context.Context, saleID string) ([]SaleReturn, error) {
	if _, err := s.GetSale(ctx, saleID); err != nil {
		return nil, err
	}
	return s.store.returnsWhere(ctx, 0, "sale_id = ?", saleID)
}
