package sales

import (
	"math/rand/v2"
	"testing"

	"github.com/retailco/pos/internal/platform/errs"
)

// TestShareAddsUp: however the units of a line are returned, in whatever
// batches, the refunded shares add up to exactly the amount paid.
func TestShareAddsUp(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		total := 1 + rng.Int64N(50)
		amount := rng.Int64N(1_000_000)
		var sum, done int64
		for done < total {
			qty := 1 + rng.Int64N(total-done)
			part := share(amount, done, qty, total)
			if part < 0 || part > amount {
				t.Fatalf("share(%d, %d, %d, %d) = %d", amount, done, qty, total, part)
			}
			sum += part
			done += qty
		}
		if sum != amount {
			t.Fatalf("returning %d units of %d cents in batches refunded %d", total, amount, sum)
		}
	}
}

func TestRoundDivHalfUp(t *testing.T) {
	t.Parallel()
	cases := []struct{ n, d, want int64 }{{0, 3, 0}, {1, 3, 0}, {2, 3, 1}, {1, 2, 1}, {3, 2, 2}, {5, 10, 1}, {4, 10, 0}, {18990, 100, 190}}
	for _, c := range cases {
		if got := roundDiv(c.n, c.d); got != c.want {
			t.Errorf("roundDiv(%d, %d) = %d, want %d", c.n, c.d, got, c.want)
		}
	}
}

func TestTender(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		total          int64
		pay            []Tender
		change         int64
		invalidPayment bool
	}{
		{"exact cash", 1000, []Tender{cash(1000)}, 0, false},
		{"cash with change", 1000, []Tender{cash(2000)}, 1000, false},
		{"split, change from cash", 1000, []Tender{card(600), cash(500)}, 100, false},
		{"two cards", 1000, []Tender{card(600), card(400)}, 0, false},
		{"card over the total", 1000, []Tender{card(1001)}, 0, true},
		{"short", 1000, []Tender{card(500), cash(499)}, 0, true},
		{"free", 0, nil, 0, false},
	}
	for _, c := range cases {
		_, change, err := tender(c.total, c.pay)
		switch {
		case c.invalidPayment && (errs.KindOf(err) != errs.Invalid || !names(err, "payments")):
			t.Errorf("%s: %v, want invalid payments", c.name, err)
		case !c.invalidPayment && (err != nil || change != c.change):
			t.Errorf("%s: change %d, %v; want %d", c.name, change, err, c.change)
		}
	}
}
