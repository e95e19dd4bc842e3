package cart

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/tax"
)

// Options tunes the local service. Zero values pick the defaults.
type Options struct {
	// TTL is how long a cart lives after its last change (default
	// DefaultTTL, 24 h). Reading a cart does not extend it: a GET stays a
	// pure read on both stores.
	TTL time.Duration
	// Registerer receives the cart metrics; nil: not exported.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now); tests move it to expire carts.
	Now func() time.Time
}

type service struct {
	store   Store
	catalog Catalog
	ttl     time.Duration
	now     func() time.Time
	metrics *metrics
}

var _ Service = (*service)(nil)

// New returns the local cart service keeping carts in st and pricing them
// from catalog.
func New(st Store, catalog Catalog, opts Options) Service {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	clock := time.Now
	if opts.Now != nil {
		clock = opts.Now
	}
	return &service{
		store: st, catalog: catalog, ttl: opts.TTL, metrics: newMetrics(opts.Registerer),
		// UTC to the microsecond: what PostgreSQL keeps, so a cart reads
		// back the same from every store.
		now: func() time.Time { return clock().UTC().Truncate(time.Microsecond) },
	}
}

var (
	// Session ids are made by the browser: long enough to be unguessable,
	// and only characters that are safe in a URL path and a Redis key.
	sessionPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{16,128}$`)
	idPattern      = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

func checkSession(v *errs.Validator, id string) {
	v.Check(sessionPattern.MatchString(id), "session_id", "must be 16-128 letters, digits, '_' or '-'")
}

func checkID(v *errs.Validator, field, id string) {
	v.Check(idPattern.MatchString(id), field, "must be 1-64 letters, digits, '_' or '-'")
}

func checkQuantity(v *errs.Validator, q int) {
	v.Check(q >= 1 && q <= MaxQuantity, "quantity", "must be between 1 and %d", MaxQuantity)
}

func (s *service) Get(ctx context.Context, sessionID string) (Cart, error) {
	c, err := s.get(ctx, sessionID)
	return c, s.metrics.op("get", err)
}

func (s *service) get(ctx context.Context, sessionID string) (Cart, error) {
	var v errs.Validator
	checkSession(&v, sessionID)
	if err := v.Err(); err != nil {
		return Cart{}, err
	}
	c, err := s.store.load(ctx, sessionID, s.now())
	if err != nil {
		return Cart{}, err
	}
	if err := authorize(ctx, &c, false); err != nil {
		return Cart{}, err
	}
	return c, nil
}

func (s *service) AddItem(ctx context.Context, sessionID string, in NewItem) (Cart, error) {
	c, err := s.addItem(ctx, sessionID, in)
	return c, s.metrics.op("add_item", err)
}

func (s *service) addItem(ctx context.Context, sessionID string, in NewItem) (Cart, error) {
	var v errs.Validator
	checkSession(&v, sessionID)
	checkID(&v, "product_id", in.ProductID)
	checkQuantity(&v, in.Quantity)
	if err := v.Err(); err != nil {
		return Cart{}, err
	}
	// The catalog is asked before the cart is touched, so its latency is
	// not spent inside the cart's read-modify-write.
	p, err := s.catalog.GetProduct(ctx, in.ProductID)
	if errs.IsKind(err, errs.NotFound) {
		return Cart{}, errs.Field("product_id", "no product %q", in.ProductID)
	}
	if err != nil {
		return Cart{}, fmt.Errorf("look up product %s: %w", in.ProductID, err)
	}
	if !p.Active {
		return Cart{}, fmt.Errorf("product %s is no longer sold: %w", p.ID, errs.Conflict)
	}
	currency := p.Currency
	if currency == "" {
		currency = DefaultCurrency
	}
	now := s.now()
	var created bool
	c, err := s.store.update(ctx, sessionID, now, func(c *Cart) error {
		if err := authorize(ctx, c, true); err != nil {
			return err
		}
		created = c.Version == 0
		if i := lineOf(c, p.ID); i >= 0 {
			// The line keeps the price it was added at: the shopper
			// accepted that one, and repricing is checkout's concern.
			l := &c.Lines[i]
			if l.Quantity+in.Quantity > MaxQuantity {
				return fmt.Errorf("product %s would have %d units, at most %d a line: %w", p.ID, l.Quantity+in.Quantity, MaxQuantity, errs.Conflict)
			}
			l.Quantity += in.Quantity
		} else {
			if len(c.Lines) >= MaxLines {
				return fmt.Errorf("cart holds %d products already, the most it may: %w", MaxLines, errs.Conflict)
			}
			if len(c.Lines) > 0 && c.Currency != currency {
				return fmt.Errorf("cart is in %s, product %s in %s: %w", c.Currency, p.ID, currency, errs.Conflict)
			}
			c.Lines = append(c.Lines, Line{
				ProductID: p.ID, SKU: p.SKU, Name: p.Name, UnitPriceCents: p.PriceCents,
				Currency: currency, Quantity: in.Quantity, AddedAt: now,
			})
		}
		s.touch(c, now)
		return nil
	})
	if err != nil {
		return Cart{}, err
	}
	if created {
		s.metrics.created.Inc()
	}
	s.metrics.itemsAdded.Inc()
	return c, nil
}

func (s *service) SetQuantity(ctx context.Context, sessionID, productID string, quantity int) (Cart, error) {
	c, err := s.setQuantity(ctx, sessionID, productID, quantity)
	return c, s.metrics.op("set_quantity", err)
}

func (s *service) setQuantity(ctx context.Context, sessionID, productID string, quantity int) (Cart, error) {
	var v errs.Validator
	checkSession(&v, sessionID)
	checkID(&v, "product_id", productID)
	checkQuantity(&v, quantity)
	if err := v.Err(); err != nil {
		return Cart{}, err
	}
	now := s.now()
	return s.store.update(ctx, sessionID, now, func(c *Cart) error {
		if err := authorize(ctx, c, true); err != nil {
			return err
		}
		if c.Version == 0 {
			return notFound(sessionID)
		}
		i := lineOf(c, productID)
		if i < 0 {
			return fmt.Errorf("product %s is not in the cart: %w", productID, errs.NotFound)
		}
		c.Lines[i].Quantity = quantity
		s.touch(c, now)
		return nil
	})
}

func (s *service) RemoveItem(ctx context.Context, sessionID, productID string) (Cart, error) {
	c, err := s.removeItem(ctx, sessionID, productID)
	return c, s.metrics.op("remove_item", err)
}

func (s *service) removeItem(ctx context.Context, sessionID, productID string) (Cart, error) {
	var v errs.Validator
	checkSession(&v, sessionID)
	checkID(&v, "product_id", productID)
	if err := v.Err(); err != nil {
		return Cart{}, err
	}
	now := s.now()
	return s.store.update(ctx, sessionID, now, func(c *Cart) error {
		if err := authorize(ctx, c, true); err != nil {
			return err
		}
		if c.Version == 0 {
			return notFound(sessionID)
		}
		i := lineOf(c, productID)
		if i < 0 {
			return errNoChange // already gone: a retried DELETE succeeds
		}
		c.Lines = slices.Delete(c.Lines, i, i+1)
		s.touch(c, now)
		return nil
	})
}

func (s *service) Clear(ctx context.Context, sessionID string) error {
	return s.metrics.op("clear", s.clear(ctx, sessionID))
}

func (s *service) clear(ctx context.Context, sessionID string) error {
	var v errs.Validator
	checkSession(&v, sessionID)
	if err := v.Err(); err != nil {
		return err
	}
	_, err := s.store.update(ctx, sessionID, s.now(), func(c *Cart) error {
		if err := authorize(ctx, c, false); err != nil {
			return err
		}
		if c.Version == 0 {
			return errNoChange // nothing to clear: success, so retries are safe
		}
		return errDelete
	})
	return err
}

func (s *service) Calculate(ctx context.Context, sessionID, province string) (Quote, error) {
	q, err := s.calculate(ctx, sessionID, province)
	return q, s.metrics.op("calculate", err)
}

func (s *service) calculate(ctx context.Context, sessionID, province string) (Quote, error) {
	// An unknown province is refused before the cart is read: the answer
	// to a bad request does not depend on the cart.
	if _, err := tax.Rates(province); err != nil {
		return Quote{}, err
	}
	c, err := s.get(ctx, sessionID)
	if err != nil {
		return Quote{}, err
	}
	lines := make([]tax.Line, len(c.Lines))
	for i, l := range c.Lines {
		lines[i] = tax.Line{Key: l.ProductID, AmountCents: l.LineTotalCents}
	}
	res, err := tax.Compute(province, lines)
	if err != nil {
		return Quote{}, err
	}
	return Quote{
		SessionID: c.SessionID, CustomerID: c.CustomerID, Province: res.Province, Currency: c.Currency,
		Lines: c.Lines, SubtotalCents: res.SubtotalCents, Taxes: res.Taxes, TaxCents: res.TaxCents,
		TotalCents: res.TotalCents, CartVersion: c.Version,
	}, nil
}

func (s *service) AttachCustomer(ctx context.Context, sessionID, customerID string) (Cart, error) {
	c, err := s.attachCustomer(ctx, sessionID, customerID)
	return c, s.metrics.op("attach_customer", err)
}

func (s *service) attachCustomer(ctx context.Context, sessionID, customerID string) (Cart, error) {
	var v errs.Validator
	checkSession(&v, sessionID)
	checkID(&v, "customer_id", customerID)
	if err := v.Err(); err != nil {
		return Cart{}, err
	}
	now := s.now()
	return s.store.update(ctx, sessionID, now, func(c *Cart) error {
		if err := authorize(ctx, c, false); err != nil {
			return err
		}
		switch {
		case c.Version == 0:
			return notFound(sessionID)
		case c.CustomerID == customerID:
			return errNoChange
		case c.CustomerID != "":
			return fmt.Errorf("cart %s belongs to another customer: %w", sessionID, errs.Conflict)
		}
		c.CustomerID = customerID
		s.touch(c, now)
		return nil
	})
}

// touch records a change: it is what keeps a cart alive.
func (s *service) touch(c *Cart, now time.Time) {
	if c.Version == 0 {
		c.CreatedAt = now
	}
	c.UpdatedAt = now
	c.ExpiresAt = now.Add(s.ttl)
}

func lineOf(c *Cart, productID string) int {
	return slices.IndexFunc(c.Lines, func(l Line) bool { return l.ProductID == productID })
}

// httpCallerKey marks a call that came in through Routes. Callers inside
// the process (the checkout saga, wire-up code) are trusted like any
// caller of a Service; a call from the public HTTP surface is checked
// against the cart's owner.
type httpCallerKey struct{}

// fromHTTP marks ctx as a call from the public HTTP surface.
func fromHTTP(ctx context.Context) context.Context {
	return context.WithValue(ctx, httpCallerKey{}, true)
}

// authorize is the ownership rule, run on the cart as read inside the
// store's read-modify-write so that it cannot race with an attach: an
// anonymous cart is anyone's who holds the session id; an attached one
// only its customer's and the service role's (admin included). With attach
// set, a logged-in customer changing an anonymous cart makes it theirs.
func authorize(ctx context.Context, c *Cart, attach bool) error {
	if ctx.Value(httpCallerKey{}) == nil {
		return nil
	}
	if c.CustomerID != "" {
		return httpx.Allow(ctx, c.CustomerID, auth.RoleService)
	}
	if p, ok := auth.FromContext(ctx); attach && ok && p.Role == auth.RoleCustomer {
		c.CustomerID = p.Subject
	}
	return nil
}
