package loadtest

import (
	"math/rand/v2"
	"sync"
)

// The ledger is the run's own account of what it did to the target's
// business state: how much stock each journey moved where, which orders it
// created and cancelled, which sagas and claims it started, which register
// sessions it opened. After the run the invariants compare it with what
// the target reports through its API. An outcome the run cannot know (a
// request that timed out mid-sale) is recorded as ambiguous, and the exact
// comparisons it would spoil are reported as not computable rather than
// guessed.

// stockKey is one stock row: a product at a location.
type stockKey struct{ product, location string }

// line is a product and a quantity, of a cart, an order or a sale.
type line struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

// orderRec is an order a checkout of the run created.
type orderRec struct {
	id, sagaID, location string
	total                int64
	lines                []line
	cancelled            bool
}

// pendingSaga is a saga that answered 202 (still running): its outcome is
// read after the run, with what it would move.
type pendingSaga struct {
	id, kind, location string
	lines              []line
	orderID            string // cancellations: the order being cancelled
	// replay is the checkout to send again with its Idempotency-Key when
	// no saga id came back: the answer is the first attempt's outcome.
	replay *call
}

// saleRec is a completed sale of the run, for returns.
type saleRec struct {
	id, location string
	lines        []saleLine
}

type saleLine struct {
	product          string
	sold, returnable int64
}

// maxRecentSales bounds the sales kept for cross-store returns.
const maxRecentSales = 500

type ledger struct {
	mu        sync.Mutex
	delta     map[stockKey]int64
	ambiguous map[stockKey]int

	orders    map[string]*orderRec
	pending   []pendingSaga
	sagas     int
	declined  int
	unknownCO int // checkouts whose outcome the run never learnt

	claims []string

	sales       []*saleRec
	salesN      int
	returnsN    int
	openSess    map[string]string // register id → session the run opened and has not closed
	closedSess  int
	unbalanced  []string // sessions whose Z report was over or short
	anySoldLine bool
}

func newLedger() *ledger {
	return &ledger{delta: map[stockKey]int64{}, ambiguous: map[stockKey]int{},
		orders: map[string]*orderRec{}, openSess: map[string]string{}}
}

// move records that on_hand of each line changes by sign × quantity at
// location.
func (l *ledger) move(location string, lines []line, sign int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range lines {
		k := stockKey{ln.ProductID, location}
		l.delta[k] += sign * ln.Quantity
	}
}

// unsure records that lines at location may or may not have moved.
func (l *ledger) unsure(location string, lines []line) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range lines {
		k := stockKey{ln.ProductID, location}
		l.ambiguous[k]++
	}
}

// orderCompleted records a checkout that answered COMPLETED.
func (l *ledger) orderCompleted(o *orderRec) {
	l.move(o.location, o.lines, -1)
	l.mu.Lock()
	l.orders[o.id] = o
	l.mu.Unlock()
}

// orderCancelled records a cancellation that answered COMPLETED: the
// money goes back and the stock is restocked where it came from.
func (l *ledger) orderCancelled(id string) {
	l.mu.Lock()
	o := l.orders[id]
	if o == nil || o.cancelled {
		l.mu.Unlock()
		return
	}
	o.cancelled = true
	l.mu.Unlock()
	l.move(o.location, o.lines, +1)
}

// orderUnsure records that the run lost track of an order (its
// cancellation's outcome is unknown): its stock and money are ambiguous.
func (l *ledger) orderUnsure(id string) {
	l.mu.Lock()
	o := l.orders[id]
	l.unknownCO++
	l.mu.Unlock()
	if o != nil {
		l.unsure(o.location, o.lines)
	}
}

func (l *ledger) addPending(p pendingSaga) {
	l.mu.Lock()
	l.pending = append(l.pending, p)
	l.mu.Unlock()
}

func (l *ledger) sagaStarted(declined bool) {
	l.mu.Lock()
	l.sagas++
	if declined {
		l.declined++
	}
	l.mu.Unlock()
}

func (l *ledger) checkoutUnknown(location string, lines []line) {
	l.unsure(location, lines)
	l.mu.Lock()
	l.unknownCO++
	l.mu.Unlock()
}

func (l *ledger) claimCreated(id string) {
	l.mu.Lock()
	l.claims = append(l.claims, id)
	l.mu.Unlock()
}

// saleCompleted records a completed sale and keeps it for returns.
func (l *ledger) saleCompleted(s *saleRec) {
	lines := make([]line, len(s.lines))
	for i, sl := range s.lines {
		lines[i] = line{sl.product, sl.sold}
	}
	l.move(s.location, lines, -1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.salesN++
	l.anySoldLine = true
	if len(l.sales) >= maxRecentSales {
		l.sales = l.sales[1:]
	}
	l.sales = append(l.sales, s)
}

// takeReturnable picks a unit to return: from own (this shift's sales)
// or, when crossStore, from a recent sale of another store than location.
// The unit is taken off the sale's returnable quantity under the lock, so
// two VUs never try to return more than was sold; giveBack undoes it when
// the return fails.
func (l *ledger) takeReturnable(rng *rand.Rand, own []*saleRec, crossStore bool, location string) (*saleRec, string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var pool []*saleRec
	if crossStore {
		for _, s := range l.sales {
			if s.location != location {
				pool = append(pool, s)
			}
		}
	} else {
		pool = own
	}
	if len(pool) == 0 {
		return nil, "", false
	}
	// A few tries at random are enough: most sales have units left.
	for range 8 {
		s := pool[rng.IntN(len(pool))]
		i := rng.IntN(len(s.lines))
		if s.lines[i].returnable > 0 {
			s.lines[i].returnable--
			return s, s.lines[i].product, true
		}
	}
	return nil, "", false
}

func (l *ledger) giveBack(s *saleRec, product string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range s.lines {
		if s.lines[i].product == product {
			s.lines[i].returnable++
			return
		}
	}
}

func (l *ledger) returned(location, product string) {
	l.move(location, []line{{product, 1}}, +1)
	l.mu.Lock()
	l.returnsN++
	l.mu.Unlock()
}

func (l *ledger) sessionOpened(register, session string) {
	l.mu.Lock()
	l.openSess[register] = session
	l.mu.Unlock()
}

func (l *ledger) sessionClosed(register string, overShort int64, session string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.openSess, register)
	l.closedSess++
	if overShort != 0 {
		l.unbalanced = append(l.unbalanced, session)
	}
}
