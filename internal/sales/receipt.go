package sales

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// renderReceipt prints a sale the way the register's 58-column printer
// does. Every line is at most ReceiptWidth characters: long names,
// addresses and ids wrap rather than overflow, because a printer that
// wraps on its own breaks the alignment of every amount below.
func renderReceipt(s Sale) string {
	var r receipt
	for _, l := range wrap(s.StoreName, ReceiptWidth) {
		r.center(l)
	}
	for _, l := range wrap(s.StoreAddress, ReceiptWidth) {
		r.center(l)
	}
	r.rule('=')
	r.pair("Date", s.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	r.pair("Register", s.RegisterID)
	r.pair("Cashier", s.CashierID)
	r.rule('-')
	for _, l := range s.Lines {
		for _, part := range wrap(l.Name, ReceiptWidth) {
			r.add(part)
		}
		r.pair(fmt.Sprintf("  %d x %s", l.Quantity, money(l.UnitPriceCents)), money(l.GrossCents))
		if l.DiscountCents > 0 {
			r.pair(fmt.Sprintf("  Discount %d%%", l.DiscountPercent), money(-l.DiscountCents))
		}
	}
	r.rule('-')
	r.pair("Subtotal", money(s.SubtotalCents))
	for _, t := range s.Taxes {
		r.pair(t.Name+" "+t.Rate, money(t.AmountCents))
	}
	r.pair("TOTAL "+s.Currency, money(s.TotalCents))
	r.add("")
	for _, p := range s.Payments {
		r.pair(tenderLabel(p.Method), money(p.AmountCents))
	}
	r.pair("Change", money(s.ChangeCents))
	if s.DiscountCents > 0 {
		r.pair("You saved", money(s.DiscountCents))
	}
	r.rule('=')
	r.center("Sale " + s.ID)
	r.center("Thank you!")
	return r.String()
}

func tenderLabel(method string) string {
	switch method {
	case MethodCash:
		return "Cash"
	case MethodCard:
		return "Card"
	}
	return method
}

// receipt accumulates lines of at most ReceiptWidth characters.
type receipt struct{ lines []string }

func (r *receipt) add(s string) { r.lines = append(r.lines, s) }

func (r *receipt) rule(c rune) { r.add(strings.Repeat(string(c), ReceiptWidth)) }

// center centres a line that fits (callers wrap first).
func (r *receipt) center(s string) {
	r.add(strings.Repeat(" ", (ReceiptWidth-width(s))/2) + s)
}

// pair puts left at the left margin and right against the right one; when
// both do not fit on one line, left comes first (wrapped) and right follows
// on lines of its own, still right-aligned.
func (r *receipt) pair(left, right string) {
	left, right = clean(left), clean(right)
	if n := width(left) + width(right); n < ReceiptWidth {
		r.add(left + strings.Repeat(" ", ReceiptWidth-n) + right)
		return
	}
	for _, l := range wrap(left, ReceiptWidth) {
		r.add(l)
	}
	for _, l := range wrap(right, ReceiptWidth) {
		r.add(strings.Repeat(" ", ReceiptWidth-width(l)) + l)
	}
}

func (r *receipt) String() string { return strings.Join(r.lines, "\n") + "\n" }

func width(s string) int { return utf8.RuneCountInString(s) }

// clean turns control characters (a newline in a product name) into
// spaces: the printer must not start a line the layout did not plan.
func clean(s string) string {
	return strings.Map(func(c rune) rune {
		if unicode.IsControl(c) {
			return ' '
		}
		return c
	}, s)
}

// wrap breaks s into lines of at most w characters at spaces, cutting
// words longer than a line.
func wrap(s string, w int) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, string(cur))
			cur = cur[:0]
		}
	}
	for _, word := range strings.Fields(clean(s)) {
		rw := []rune(word)
		for len(rw) > w {
			flush()
			out = append(out, string(rw[:w]))
			rw = rw[w:]
		}
		switch {
		case len(cur) == 0:
			cur = append(cur, rw...)
		case len(cur)+1+len(rw) <= w:
			cur = append(append(cur, ' '), rw...)
		default:
			flush()
			cur = append(cur, rw...)
		}
	}
	flush()
	return out
}
