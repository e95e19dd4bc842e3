package sales

import (
	"fmt"
	"strconv"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/tax"
	"github.com/retailco/pos/internal/product"
)

// The arithmetic of a sale and of a return, kept free of I/O so that it
// reads (and is tested) on its own. Everything is int64 cents; every
// division rounds half up (amounts here are never negative).

// roundDiv is n / d rounded half up, for n >= 0 and d > 0.
func roundDiv(n, d int64) int64 {
	q, r := n/d, n%d
	if 2*r >= d {
		q++
	}
	return q
}

// pricedLine is a request line matched with its catalog product.
type pricedLine struct {
	product  product.Product
	quantity int64
	discount int
}

// pricedSale is what the catalog and the province make of a request.
type pricedSale struct {
	lines                                      []SaleLine
	taxes                                      []SaleTax
	gross, discount, subtotal, taxCents, total int64
}

// priceSale prices the lines, applies each line's discount (rounded half
// up) and taxes each discounted line for province. Line numbers start at 1.
func priceSale(province string, in []pricedLine) (pricedSale, error) {
	var out pricedSale
	taxIn := make([]tax.Line, len(in))
	out.lines = make([]SaleLine, len(in))
	for i, l := range in {
		gross := l.product.PriceCents * l.quantity
		disc := roundDiv(gross*int64(l.discount), 100)
		out.lines[i] = SaleLine{
			LineNo: i + 1, ProductID: l.product.ID, SKU: l.product.SKU, Name: l.product.Name,
			UnitPriceCents: l.product.PriceCents, Quantity: l.quantity, DiscountPercent: l.discount,
			GrossCents: gross, DiscountCents: disc, NetCents: gross - disc,
		}
		taxIn[i] = tax.Line{Key: strconv.Itoa(i + 1), AmountCents: gross - disc}
		out.gross += gross
		out.discount += disc
	}
	res, err := tax.Compute(province, taxIn)
	if err != nil {
		return pricedSale{}, fmt.Errorf("tax the sale: %w", err)
	}
	out.taxes = make([]SaleTax, len(res.Taxes))
	for j, t := range res.Taxes {
		out.taxes[j] = SaleTax{Name: t.Name, Rate: t.Rate, RatePPM: t.RatePPM, AmountCents: t.AmountCents}
	}
	for i, lt := range res.Lines {
		out.lines[i].TaxCents = lt.TaxCents
		out.lines[i].Taxes = make([]SaleTax, len(lt.Taxes))
		for j, a := range lt.Taxes {
			out.lines[i].Taxes[j] = SaleTax{Name: a.Name, Rate: res.Taxes[j].Rate, RatePPM: res.Taxes[j].RatePPM, AmountCents: a.AmountCents}
		}
	}
	out.subtotal, out.taxCents, out.total = res.SubtotalCents, res.TaxCents, res.TotalCents
	return out, nil
}

// tender checks the payments against total and returns what was tendered
// and the change due. Only cash gives change: card may not exceed the
// total, so the change (tendered − total) never exceeds the cash.
func tender(total int64, payments []Tender) (tendered, change int64, err error) {
	cash, card := sumMethod(payments, MethodCash), sumMethod(payments, MethodCard)
	tendered = cash + card
	if card > total {
		return 0, 0, errs.Field("payments", "card tender %s exceeds the total %s: only cash gives change",
			money(card), money(total))
	}
	if tendered < total {
		return 0, 0, errs.Field("payments", "tender short by %s: the total is %s, %s tendered",
			money(total-tendered), money(total), money(tendered))
	}
	return tendered, tendered - total, nil
}

// share is the part of amount that units [before, before+qty) of a line of
// total units carry: the difference of two cumulative allocations, each
// rounded half up. Summed over returns that together cover every unit it
// gives back amount exactly, however the units were split.
func share(amount, before, qty, total int64) int64 {
	return roundDiv(amount*(before+qty), total) - roundDiv(amount*before, total)
}

// pricedReturn is what a return refunds, line by line.
type pricedReturn struct {
	lines                     []SaleReturnLine
	taxes                     []SaleTax
	subtotal, taxCents, total int64
}

// priceReturn checks a return against the sale as it stands (its lines'
// returned quantities included) and prices it. A product not on the sale
// is errs.Invalid; more than what remains returnable is errs.Conflict
// naming the line.
func priceReturn(sale Sale, in []SaleReturnLineInput) (pricedReturn, error) {
	byProduct := make(map[string]int, len(sale.Lines))
	for i, l := range sale.Lines {
		byProduct[l.ProductID] = i
	}
	var v errs.Validator
	var over []errs.FieldError
	seen := map[string]int{}
	for i, l := range in {
		field := fmt.Sprintf("lines[%d]", i)
		j, ok := byProduct[l.ProductID]
		if !ok {
			v.Check(false, field+".product_id", "product %q is not on sale %s", l.ProductID, sale.ID)
			continue
		}
		if k, dup := seen[l.ProductID]; dup {
			v.Check(false, field, "repeats lines[%d] (same product); send one line with the total", k)
			continue
		}
		seen[l.ProductID] = i
		v.Check(l.Quantity >= 1 && l.Quantity <= MaxQuantity, field+".quantity", "must be between 1 and %d", MaxQuantity)
		sl := sale.Lines[j]
		if left := sl.Quantity - sl.ReturnedQuantity; l.Quantity > left {
			over = append(over, errs.FieldError{Field: field + ".quantity",
				Message: fmt.Sprintf("%d of %s sold, %d already returned: at most %d can be returned", sl.Quantity, sl.ProductID, sl.ReturnedQuantity, left)})
		}
	}
	if err := v.Err(); err != nil {
		return pricedReturn{}, err
	}
	if len(over) > 0 {
		return pricedReturn{}, fieldsErr(errs.Conflict, "more returned than sold", over)
	}
	var out pricedReturn
	out.lines = make([]SaleReturnLine, len(in))
	for i, l := range in {
		sl := sale.Lines[byProduct[l.ProductID]]
		rl := SaleReturnLine{LineNo: i + 1, SaleLineNo: sl.LineNo, ProductID: sl.ProductID, SKU: sl.SKU, Name: sl.Name,
			Quantity: l.Quantity, SubtotalCents: share(sl.NetCents, sl.ReturnedQuantity, l.Quantity, sl.Quantity)}
		rl.Taxes = make([]SaleTax, len(sl.Taxes))
		for j, t := range sl.Taxes {
			t.AmountCents = share(t.AmountCents, sl.ReturnedQuantity, l.Quantity, sl.Quantity)
			rl.Taxes[j] = t
			rl.TaxCents += t.AmountCents
		}
		rl.TotalCents = rl.SubtotalCents + rl.TaxCents
		out.lines[i] = rl
		out.subtotal += rl.SubtotalCents
		out.taxCents += rl.TaxCents
		out.taxes = addTaxes(out.taxes, rl.Taxes)
	}
	out.total = out.subtotal + out.taxCents
	return out, nil
}

// refundTender splits a refund by the original tender: card first, up to
// what was paid by card and not yet refunded, then cash. Card first keeps a
// card payment from coming back as cash; the split never exceeds what each
// method took, because refunds never exceed the total paid.
func refundTender(sale Sale, amount int64) (card, cash int64) {
	cardLeft := max(sale.cardCents()-sale.RefundedCardCents, 0)
	card = min(amount, cardLeft)
	return card, amount - card
}

// addTaxes adds taxes into sum by (name, rate), keeping first-seen order.
func addTaxes(sum []SaleTax, taxes []SaleTax) []SaleTax {
	for _, t := range taxes {
		found := false
		for i := range sum {
			if sum[i].Name == t.Name && sum[i].RatePPM == t.RatePPM {
				sum[i].AmountCents += t.AmountCents
				found = true
				break
			}
		}
		if !found {
			sum = append(sum, t)
		}
	}
	return sum
}

// money renders cents as a decimal amount: 1234 → "12.34", -5 → "-0.05".
func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// fieldsError is an error of any kind that names the fields at fault, so a
// 409 or a 404 problem lists them the way a 400 does. Like errs.Remote it
// also unwraps to a ValidationError, hence to errs.Invalid: the kind that
// decides the status is errs.KindOf's, the first one.
type fieldsError struct {
	kind   *errs.Kind
	msg    string
	fields []errs.FieldError
}

// Error lists the fields after the message.
func (e *fieldsError) Error() string {
	return e.msg + ": " + (&errs.ValidationError{Fields: e.fields}).Error()
}

// Unwrap yields the kind first (errs.KindOf finds it) and the fields.
func (e *fieldsError) Unwrap() []error {
	return []error{e.kind, &errs.ValidationError{Fields: e.fields}}
}

func fieldsErr(kind *errs.Kind, msg string, fields []errs.FieldError) error {
	return &fieldsError{kind: kind, msg: msg, fields: fields}
}

// fieldErr is fieldsErr for one field.
func fieldErr(kind *errs.Kind, field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return fieldsErr(kind, msg, []errs.FieldError{{Field: field, Message: msg}})
}
