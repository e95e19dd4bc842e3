package cart

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
)

// Store keeps carts: NewSQLStore for the embedded default, NewRedisStore
// for the fleet. Its methods are unexported because the service is its
// only caller; the suite runs the same assertions over both.
type Store interface {
	// load returns the cart of sessionID; none, or one whose ExpiresAt is
	// not after now, is errs.NotFound.
	load(ctx context.Context, sessionID string, now time.Time) (Cart, error)
	// update applies change to the current cart atomically and returns
	// the cart as stored. A missing or expired cart is passed as a fresh
	// one: Version 0, no lines. change may run more than once (another
	// writer got in first and it is retried on the newer cart), so it must
	// depend only on the cart it is given. It may return errNoChange to
	// write nothing (update then returns the cart as read) or errDelete to
	// delete the cart; any other error aborts and is returned.
	update(ctx context.Context, sessionID string, now time.Time, change func(*Cart) error) (Cart, error)
	// purge deletes up to limit expired carts and says how many it did;
	// stores whose engine expires keys itself do nothing.
	purge(ctx context.Context, now time.Time, limit int) (int, error)
}

var (
	// errNoChange: the change function decided there is nothing to write.
	errNoChange = errors.New("cart: no change")
	// errDelete: the change function wants the cart gone.
	errDelete = errors.New("cart: delete")
	// errStale: another writer changed the cart between read and write;
	// the update is retried.
	errStale = errors.New("cart: changed concurrently")
)

// PurgeExpired deletes carts whose life ended at or before now and reports
// how many it deleted. Expired carts are already invisible; this only
// reclaims their space, so the SQL store needs it run now and then (a
// worker of the process); with Redis, keys expire by themselves and it
// deletes nothing. It works in batches of batch rows (default 1000) so no
// statement holds the table for long.
func PurgeExpired(ctx context.Context, st Store, now time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = 1000
	}
	total := 0
	for {
		n, err := st.purge(ctx, now, batch)
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// doc is how a cart is stored, the same in both stores: the lines as the
// shopper chose them, without the totals (those are derived on read so
// they can never disagree with the lines).
type doc struct {
	CustomerID string    `json:"customer_id,omitempty"`
	Lines      []lineDoc `json:"lines"`
	Version    int64     `json:"version"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	// Write is unique to the write that stored this value, in the Redis
	// store: it makes the bytes of every write distinct, so the
	// compare-and-set script can tell its own write already applied (a
	// command retried after its reply was lost) from another's.
	Write string `json:"write,omitempty"`
}

type lineDoc struct {
	ProductID      string    `json:"product_id"`
	SKU            string    `json:"sku"`
	Name           string    `json:"name"`
	UnitPriceCents int64     `json:"unit_price_cents"`
	Currency       string    `json:"currency"`
	Quantity       int       `json:"quantity"`
	AddedAt        time.Time `json:"added_at"`
}

// cart rebuilds the domain cart, deriving totals and currency.
func (d doc) cart(sessionID string) Cart {
	c := Cart{
		SessionID: sessionID, CustomerID: d.CustomerID, Currency: DefaultCurrency,
		Lines: make([]Line, len(d.Lines)), Version: d.Version,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(), ExpiresAt: d.ExpiresAt.UTC(),
	}
	for i, l := range d.Lines {
		total := l.UnitPriceCents * int64(l.Quantity)
		c.Lines[i] = Line{
			ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, UnitPriceCents: l.UnitPriceCents,
			Currency: l.Currency, Quantity: l.Quantity, LineTotalCents: total, AddedAt: l.AddedAt.UTC(),
		}
		c.ItemCount += l.Quantity
		c.SubtotalCents += total
	}
	if len(d.Lines) > 0 {
		c.Currency = d.Lines[0].Currency
	}
	return c
}

func toDoc(c Cart) doc {
	d := doc{
		CustomerID: c.CustomerID, Lines: make([]lineDoc, len(c.Lines)), Version: c.Version,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, ExpiresAt: c.ExpiresAt,
	}
	for i, l := range c.Lines {
		d.Lines[i] = lineDoc{
			ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, UnitPriceCents: l.UnitPriceCents,
			Currency: l.Currency, Quantity: l.Quantity, AddedAt: l.AddedAt,
		}
	}
	return d
}

// fresh is the cart a session without one starts from.
func fresh(sessionID string) Cart {
	return Cart{SessionID: sessionID, Currency: DefaultCurrency, Lines: []Line{}}
}

// clone copies c deeply enough for change to edit it freely: when change
// returns errNoChange the original is what update answers.
func clone(c Cart) Cart {
	c.Lines = append([]Line(nil), c.Lines...)
	return c
}

// maxAttempts bounds the optimistic retries of one update. Each lost race
// means another change went through, so exhausting them takes a cart
// hammered by dozens of writers at once; the caller is told to retry.
const maxAttempts = 100

// retry runs attempt until it succeeds, fails for a reason other than
// errStale, or runs out of attempts. The jittered pause spreads out the
// writers that lost the same race so they do not collide again in step.
func retry(ctx context.Context, sessionID string, attempt func() error) error {
	for i := 0; ; i++ {
		err := attempt()
		if !errors.Is(err, errStale) {
			return err
		}
		if i+1 >= maxAttempts {
			return errs.RetryLater(time.Second, fmt.Errorf("cart %s: too many concurrent changes: %w", sessionID, errs.Conflict))
		}
		limit := time.Duration(i+1) * time.Millisecond
		if limit > 20*time.Millisecond {
			limit = 20 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cart %s: %w (%v)", sessionID, errs.Timeout, ctx.Err())
		case <-time.After(rand.N(limit) + 100*time.Microsecond):
		}
	}
}
