package tax

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/retailco/pos/internal/platform/errs"
)

// TestRates pins the table of every province and territory, with the rate
// text a receipt prints.
func TestRates(t *testing.T) {
	want := map[string]string{
		"QC": "GST 5%, QST 9.975%",
		"ON": "HST 13%",
		"NB": "HST 15%", "NS": "HST 14%", "NL": "HST 15%", "PE": "HST 15%",
		"BC": "GST 5%, PST 7%",
		"MB": "GST 5%, RST 7%",
		"SK": "GST 5%, PST 6%",
		"AB": "GST 5%", "NT": "GST 5%", "NU": "GST 5%", "YT": "GST 5%",
	}
	if got := Provinces(); len(got) != len(want) {
		t.Fatalf("provinces %v, want the %d of the table", got, len(want))
	}
	for code, text := range want {
		rs, err := Rates(code)
		if err != nil {
			t.Fatalf("%s: %v", code, err)
		}
		parts := make([]string, len(rs))
		for i, r := range rs {
			parts[i] = r.Name + " " + r.Text()
		}
		if got := strings.Join(parts, ", "); got != text {
			t.Errorf("%s: %s, want %s", code, got, text)
		}
	}
	// The table is not reachable through the returned slice.
	rs, _ := Rates("QC")
	rs[0].PPM = 0
	if again, _ := Rates("QC"); again[0].PPM != 50_000 {
		t.Fatal("Rates leaked the table")
	}
}

// TestCompute holds hand-checked values: each tax is amount × rate,
// rounded half away from zero per line, then summed.
func TestCompute(t *testing.T) {
	type taxes map[string]int64
	cases := []struct {
		name     string
		province string
		amounts  []int64
		want     taxes // per tax name
		subtotal int64
		tax      int64
	}{
		// $100 in Quebec: GST 5.00, QST 9.975 → 9.98.
		{"QC hundred dollars", "QC", []int64{10000}, taxes{"GST": 500, "QST": 998}, 10000, 1498},
		// $20 × 9.975 % = 1.995 exactly half a cent over 1.99: up to 2.00.
		{"QST exact half", "QC", []int64{2000}, taxes{"GST": 100, "QST": 200}, 2000, 300},
		// 10 ¢ × 5 % = 0.5 ¢ → 1; 9 ¢ → 0.45 → 0.
		{"GST exact half", "AB", []int64{10}, taxes{"GST": 1}, 10, 1},
		{"GST just under half", "AB", []int64{9}, taxes{"GST": 0}, 9, 0},
		// Three lines of 10 ¢: 1 ¢ each, 3 ¢ in all, where rounding the
		// 30 ¢ subtotal would give 1.5 → 2: rounding is per line.
		{"rounded per line, not on the subtotal", "YT", []int64{10, 10, 10}, taxes{"GST": 3}, 30, 3},
		// 50 ¢ × 13 % = 6.5 → 7; 150 ¢ → 19.5 → 20.
		{"HST 13 halves", "ON", []int64{50, 150}, taxes{"HST": 27}, 200, 27},
		// 10 ¢ × 15 % = 1.5 → 2; 50 ¢ → 7.5 → 8.
		{"HST 15 halves", "NB", []int64{10, 50}, taxes{"HST": 10}, 60, 10},
		// 25 ¢ × 14 % = 3.5 → 4; 75 ¢ → 10.5 → 11.
		{"HST 14 halves (NS since April 2025)", "NS", []int64{25, 75}, taxes{"HST": 15}, 100, 15},
		// 50 ¢: GST 2.5 → 3, PST 3.5 → 4; 150 ¢: GST 7.5 → 8, PST 10.5 → 11.
		{"BC halves", "BC", []int64{50, 150}, taxes{"GST": 11, "PST": 15}, 200, 26},
		// 25 ¢ × 6 % = 1.5 → 2, GST 1.25 → 1.
		{"SK half", "SK", []int64{25}, taxes{"GST": 1, "PST": 2}, 25, 3},
		// 123.45: GST 6.1725 → 6.17, RST 8.6415 → 8.64.
		{"MB ordinary", "MB", []int64{12345}, taxes{"GST": 617, "RST": 864}, 12345, 1481},
		// 123.45 in Quebec: GST 6.17, QST 12.3141… → 12.31.
		{"QC ordinary", "QC", []int64{12345}, taxes{"GST": 617, "QST": 1231}, 12345, 1848},
		// 123.45 × 13 % = 16.0485 → 16.05.
		{"ON ordinary", "ON", []int64{12345}, taxes{"HST": 1605}, 12345, 1605},
		{"lower case and spaces", " qc ", []int64{10000}, taxes{"GST": 500, "QST": 998}, 10000, 1498},
		{"no lines", "QC", nil, taxes{"GST": 0, "QST": 0}, 0, 0},
		{"zero line", "PE", []int64{0}, taxes{"HST": 0}, 0, 0},
		// The largest line: 10 billion dollars, no overflow, exact.
		{"largest line", "PE", []int64{MaxLineCents}, taxes{"HST": 150_000_000_000}, MaxLineCents, 150_000_000_000},
		// 9 999 999 999.99 × 9.975 % = 997 499 999.999 002… → 997 500 000.00.
		{"large QST", "QC", []int64{999_999_999_999}, taxes{"GST": 50_000_000_000, "QST": 99_750_000_000}, 999_999_999_999, 149_750_000_000},
		// Many large lines: sums stay exact.
		{"many large lines", "ON", []int64{MaxLineCents, MaxLineCents, MaxLineCents}, taxes{"HST": 390_000_000_000}, 3 * MaxLineCents, 390_000_000_000},
		// A return: −0.5 ¢ rounds away from zero, as +0.5 ¢ does.
		{"negative half", "AB", []int64{-10}, taxes{"GST": -1}, -10, -1},
		{"negative QC", "QC", []int64{-2000, -12345}, taxes{"GST": -717, "QST": -1431}, -14345, -2148},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lines := make([]Line, len(c.amounts))
			for i, a := range c.amounts {
				lines[i] = Line{Key: string(rune('a' + i)), AmountCents: a}
			}
			res, err := Compute(c.province, lines)
			if err != nil {
				t.Fatal(err)
			}
			got := taxes{}
			for _, tl := range res.Taxes {
				got[tl.Name] = tl.AmountCents
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("taxes %v, want %v", got, c.want)
			}
			if res.SubtotalCents != c.subtotal || res.TaxCents != c.tax || res.TotalCents != c.subtotal+c.tax {
				t.Errorf("subtotal %d tax %d total %d, want %d %d %d", res.SubtotalCents, res.TaxCents, res.TotalCents, c.subtotal, c.tax, c.subtotal+c.tax)
			}
			// The per-line figures add up to the totals, line by line.
			if len(res.Lines) != len(lines) {
				t.Fatalf("%d line results for %d lines", len(res.Lines), len(lines))
			}
			var sumTax int64
			perName := taxes{}
			for i, lt := range res.Lines {
				if lt.Key != lines[i].Key || lt.AmountCents != lines[i].AmountCents {
					t.Errorf("line %d is %+v, want key %s amount %d", i, lt, lines[i].Key, lines[i].AmountCents)
				}
				var lineSum int64
				for _, a := range lt.Taxes {
					lineSum += a.AmountCents
					perName[a.Name] += a.AmountCents
				}
				if lineSum != lt.TaxCents {
					t.Errorf("line %d: taxes sum to %d, tax_cents %d", i, lineSum, lt.TaxCents)
				}
				sumTax += lt.TaxCents
			}
			if sumTax != res.TaxCents {
				t.Errorf("lines' tax %d, total tax %d", sumTax, res.TaxCents)
			}
			if len(lines) > 0 && !reflect.DeepEqual(perName, c.want) {
				t.Errorf("per-line taxes by name %v, want %v", perName, c.want)
			}
		})
	}
}

// TestComputeExample pins the whole shape of one result.
func TestComputeExample(t *testing.T) {
	res, err := Compute("qc", []Line{{Key: "prd_a", AmountCents: 2000}, {Key: "prd_b", AmountCents: 10000}})
	if err != nil {
		t.Fatal(err)
	}
	want := Result{
		Province: "QC", SubtotalCents: 12000, TaxCents: 1798, TotalCents: 13798,
		Taxes: []TaxLine{
			{Name: "GST", Rate: "5%", RatePPM: 50_000, AmountCents: 600},
			{Name: "QST", Rate: "9.975%", RatePPM: 99_750, AmountCents: 1198},
		},
		Lines: []LineTax{
			{Key: "prd_a", AmountCents: 2000, TaxCents: 300, Taxes: []Amount{{"GST", 100}, {"QST", 200}}},
			{Key: "prd_b", AmountCents: 10000, TaxCents: 1498, Taxes: []Amount{{"GST", 500}, {"QST", 998}}},
		},
	}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("got %+v\nwant %+v", res, want)
	}
}

// TestSymmetric: the tax of negated lines is exactly the negated tax, so a
// return gives back what the sale charged.
func TestSymmetric(t *testing.T) {
	for _, p := range Provinces() {
		for a := int64(0); a <= 5000; a++ {
			pos, err1 := Compute(p, []Line{{AmountCents: a}})
			neg, err2 := Compute(p, []Line{{AmountCents: -a}})
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if neg.TaxCents != -pos.TaxCents || neg.TotalCents != -pos.TotalCents {
				t.Fatalf("%s %d: tax %d, negated %d", p, a, pos.TaxCents, neg.TaxCents)
			}
		}
	}
}

// TestRoundingMatchesDefinition checks applyRate against the definition
// (round(amount × rate) half away from zero) computed another way: on
// the fraction's numerator doubled, so no division rounds early.
func TestRoundingMatchesDefinition(t *testing.T) {
	for _, ppm := range []int64{50_000, 60_000, 70_000, 99_750, 130_000, 150_000} {
		for a := int64(-20000); a <= 20000; a++ {
			n := a * ppm
			abs := n
			if abs < 0 {
				abs = -abs
			}
			// floor(|n|/1e6 + 1/2) = floor((2|n| + 1e6) / 2e6)
			want := (2*abs + 1_000_000) / 2_000_000
			if n < 0 {
				want = -want
			}
			if got := applyRate(a, ppm); got != want {
				t.Fatalf("applyRate(%d, %d) = %d, want %d", a, ppm, got, want)
			}
		}
	}
}

func TestComputeErrors(t *testing.T) {
	cases := []struct {
		name     string
		province string
		lines    []Line
		field    string
	}{
		{"unknown province", "ZZ", nil, "province"},
		{"empty province", "", []Line{{AmountCents: 1}}, "province"},
		{"name instead of code", "Quebec", nil, "province"},
		{"line too large", "QC", []Line{{AmountCents: 1}, {AmountCents: MaxLineCents + 1}}, "lines[1].amount_cents"},
		{"line too negative", "QC", []Line{{AmountCents: -MaxLineCents - 1}}, "lines[0].amount_cents"},
	}
	for _, c := range cases {
		_, err := Compute(c.province, c.lines)
		if !errs.IsKind(err, errs.Invalid) {
			t.Errorf("%s: %v, want Invalid", c.name, err)
			continue
		}
		if f := errs.Fields(err); len(f) != 1 || f[0].Field != c.field {
			t.Errorf("%s: fields %v, want %s", c.name, f, c.field)
		}
	}
}

// TestAddOverflow: sums that would wrap are caught (reaching them through
// Compute takes millions of maximal lines).
func TestAddOverflow(t *testing.T) {
	cases := []struct {
		a, b     int64
		overflow bool
	}{
		{math.MaxInt64 - 1, 1, false},
		{math.MaxInt64, 1, true},
		{math.MinInt64 + 1, -1, false},
		{math.MinInt64, -1, true},
		{math.MaxInt64, math.MinInt64, false},
	}
	for _, c := range cases {
		sum, of := add(c.a, c.b, false)
		if of != c.overflow || (!of && sum != c.a+c.b) {
			t.Errorf("add(%d, %d) = %d, %v", c.a, c.b, sum, of)
		}
	}
	if _, of := add(1, 1, true); !of {
		t.Error("an earlier overflow was forgotten")
	}
}

func TestRateText(t *testing.T) {
	for ppm, want := range map[int64]string{50_000: "5%", 99_750: "9.975%", 130_000: "13%", 1: "0.0001%", 125_000: "12.5%", 0: "0%"} {
		if got := (Rate{PPM: ppm}).Text(); got != want {
			t.Errorf("%d ppm: %s, want %s", ppm, got, want)
		}
	}
}
