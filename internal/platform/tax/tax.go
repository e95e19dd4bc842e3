// Package tax computes Canadian sales tax for every channel that sells:
// the web cart, the registers (sales) and orders. It lives in the platform
// because the rule must be the same everywhere (DESIGN.md: "Taxes computed
// once, rounded half-up per line, by province"): a basket rung up at a
// register and the same basket bought online must owe the same cents.
//
// Arithmetic is integer only. Rates are parts per million (9.975 % is
// 99 750 ppm), amounts are int64 cents, and each tax on each line is
// rounded to the cent, half away from zero, before the lines are summed
// per tax name. Rounding per line (not on the subtotal) is what a receipt
// shows line by line, and it makes a return of one line refund exactly the
// tax that line was charged.
package tax

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/retailco/pos/internal/platform/errs"
)

// Rate is one named tax of a province.
type Rate struct {
	// Name is what the receipt prints: GST, QST, HST, PST, RST.
	Name string `json:"name"`
	// PPM is the rate in parts per million (5 % is 50 000).
	PPM int64 `json:"rate_ppm"`
}

// Text renders the rate as a percentage without trailing zeros: "5%",
// "9.975%".
func (r Rate) Text() string { return formatPPM(r.PPM) }

// The rates in force, by province or territory. Federal GST is 5 %; the
// harmonized provinces charge one HST instead of GST plus a provincial tax.
var (
	gst = Rate{"GST", 50_000}
	hst = func(ppm int64) Rate { return Rate{"HST", ppm} }

	rates = map[string][]Rate{
		"QC": {gst, {"QST", 99_750}},
		"ON": {hst(130_000)},
		"NB": {hst(150_000)},
		// Nova Scotia lowered its HST from 15 % to 14 % on 1 April 2025;
		// the original system's 15 % is out of date.
		"NS": {hst(140_000)},
		"NL": {hst(150_000)},
		"PE": {hst(150_000)},
		"BC": {gst, {"PST", 70_000}},
		"MB": {gst, {"RST", 70_000}},
		"SK": {gst, {"PST", 60_000}},
		"AB": {gst},
		"NT": {gst},
		"NU": {gst},
		"YT": {gst},
	}
)

// MaxLineCents bounds the absolute amount of one line, so that amount ×
// rate stays far inside int64 (10 billion dollars a line is beyond any
// basket; the product in ppm is then at most 1.5e17).
const MaxLineCents = 1_000_000_000_000

// Line is one taxable amount: a cart or sale line after quantity and
// discounts. Key is the caller's name for it (a product id, a line number)
// and comes back in Result.Lines.
type Line struct {
	Key         string `json:"key"`
	AmountCents int64  `json:"amount_cents"`
}

// Amount is one tax charged on one line.
type Amount struct {
	Name        string `json:"name"`
	AmountCents int64  `json:"amount_cents"`
}

// LineTax is the tax of one line, each tax already rounded.
type LineTax struct {
	Key         string   `json:"key"`
	AmountCents int64    `json:"amount_cents"`
	TaxCents    int64    `json:"tax_cents"`
	Taxes       []Amount `json:"taxes"`
}

// TaxLine is one tax summed over the lines, as a receipt or a cart total
// shows it.
type TaxLine struct {
	Name string `json:"name"`
	// Rate is the human form, "9.975%".
	Rate string `json:"rate"`
	// RatePPM is the exact rate in parts per million.
	RatePPM     int64 `json:"rate_ppm"`
	AmountCents int64 `json:"amount_cents"`
}

// Result is the tax on a set of lines.
type Result struct {
	// Province is the normalized code the rates came from.
	Province      string `json:"province"`
	SubtotalCents int64  `json:"subtotal_cents"`
	// Taxes holds one entry per tax of the province, in the province's
	// order (GST before QST), even when the amount is zero.
	Taxes      []TaxLine `json:"taxes"`
	TaxCents   int64     `json:"tax_cents"`
	TotalCents int64     `json:"total_cents"`
	// Lines gives each input line's taxes, in input order.
	Lines []LineTax `json:"lines"`
}

// Provinces lists the codes Compute knows, sorted.
func Provinces() []string {
	out := make([]string, 0, len(rates))
	for p := range rates {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Rates returns the taxes of province (a two-letter code, any case). An
// unknown code is errs.Invalid naming the field "province".
func Rates(province string) ([]Rate, error) {
	code := normalize(province)
	rs, ok := rates[code]
	if !ok {
		return nil, errs.Field("province", "unknown province or territory %q (known: %s)", province, strings.Join(Provinces(), ", "))
	}
	// A copy: callers must not be able to change the table.
	return append([]Rate(nil), rs...), nil
}

// Compute taxes lines for province. Each tax of each line is rounded to the
// cent, half away from zero, then summed per tax. Negative amounts (a
// return, a credit) are allowed and round symmetrically, so Compute of the
// negated lines is exactly the negated result. A line beyond MaxLineCents,
// a total beyond int64 or an unknown province is errs.Invalid.
func Compute(province string, lines []Line) (Result, error) {
	rs, err := Rates(province)
	if err != nil {
		return Result{}, err
	}
	res := Result{Province: normalize(province), Taxes: make([]TaxLine, len(rs)), Lines: make([]LineTax, len(lines))}
	for j, r := range rs {
		res.Taxes[j] = TaxLine{Name: r.Name, Rate: r.Text(), RatePPM: r.PPM}
	}
	var overflow bool
	for i, l := range lines {
		if l.AmountCents > MaxLineCents || l.AmountCents < -MaxLineCents {
			return Result{}, errs.Field(fmt.Sprintf("lines[%d].amount_cents", i), "must be within ±%d cents", int64(MaxLineCents))
		}
		lt := LineTax{Key: l.Key, AmountCents: l.AmountCents, Taxes: make([]Amount, len(rs))}
		for j, r := range rs {
			amt := applyRate(l.AmountCents, r.PPM)
			lt.Taxes[j] = Amount{Name: r.Name, AmountCents: amt}
			lt.TaxCents += amt // at most 15 % of a bounded line: cannot overflow
			res.Taxes[j].AmountCents, overflow = add(res.Taxes[j].AmountCents, amt, overflow)
		}
		res.Lines[i] = lt
		res.SubtotalCents, overflow = add(res.SubtotalCents, l.AmountCents, overflow)
		res.TaxCents, overflow = add(res.TaxCents, lt.TaxCents, overflow)
	}
	res.TotalCents, overflow = add(res.SubtotalCents, res.TaxCents, overflow)
	if overflow {
		return Result{}, errs.Field("lines", "the total is beyond what an int64 of cents holds")
	}
	return res, nil
}

// applyRate is amount × ppm / 1 000 000 rounded half away from zero. Go's
// integer division truncates toward zero, so the remainder has the sign of
// the product and the symmetric rule falls out of comparing its size.
func applyRate(amount, ppm int64) int64 {
	const million = 1_000_000
	n := amount * ppm
	q, r := n/million, n%million
	switch {
	case r >= million/2:
		q++
	case r <= -million/2:
		q--
	}
	return q
}

// add is a + b that reports int64 overflow instead of wrapping; once an
// addition has overflowed the flag stays set.
func add(a, b int64, overflowed bool) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, true
	}
	return a + b, overflowed
}

func normalize(province string) string { return strings.ToUpper(strings.TrimSpace(province)) }

// formatPPM writes a ppm rate as a percentage: 99 750 → "9.975%".
func formatPPM(ppm int64) string {
	whole, frac := ppm/10_000, ppm%10_000
	s := strconv.FormatInt(whole, 10)
	if frac != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%04d", frac), "0")
	}
	return s + "%"
}
