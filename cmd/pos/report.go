package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/retailco/pos/internal/reporting"
)

// newReportCmd prints reports from this host's reporting database: the
// same figures GET /api/v1/reports/* answers, for a manager at a terminal
// or a cron job writing CSV.
func newReportCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "report", Short: "Print reports from the reporting read model"}

	var q reporting.SalesQuery
	var format string
	sales := &cobra.Command{
		Use:   "sales --from DATE --to DATE [--location ID] [--channel pos|online] [--format table|csv|json]",
		Short: "Sales by location, channel and day (what GET /reports/sales answers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			write, ok := salesWriters[format]
			if !ok {
				// Checked before the database is opened: a typo costs nothing.
				return fmt.Errorf("--format %q: want table, csv or json", format)
			}
			svc, done, err := g.reportingDB(cmd)
			if err != nil {
				return err
			}
			defer done()
			rep, err := svc.SalesReport(cmd.Context(), q)
			if err != nil {
				return err
			}
			return write(g.stdout, rep)
		},
	}
	f := sales.Flags()
	f.StringVar(&q.From, "from", "", "first day, included: RFC 3339 date (2025-06-01) or date-time")
	f.StringVar(&q.To, "to", "", "last day, included: RFC 3339 date or date-time")
	f.StringVar(&q.LocationID, "location", "", "only this location id")
	f.StringVar(&q.Channel, "channel", "", "only pos (registers) or online (web orders)")
	f.StringVar(&format, "format", "table", "table, csv (amounts in cents) or json (the API's body)")
	_ = sales.MarkFlagRequired("from")
	_ = sales.MarkFlagRequired("to")
	cmd.AddCommand(sales)
	return cmd
}

// newReportingCmd maintains the reporting read model.
func newReportingCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "reporting", Short: "Maintain the reporting read model"}
	rebuild := &cobra.Command{
		Use:   "rebuild",
		Short: "Recompute every report aggregate from the journal of applied events; prints the totals before and after",
		Long: "Empties the aggregates and replays the reporting journal in one transaction, in the reporting time zone " +
			"configured now. A running consumer waits meanwhile; readers see the previous figures until it commits.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, done, err := g.reportingDB(cmd)
			if err != nil {
				return err
			}
			defer done()
			res, err := svc.Rebuild(cmd.Context())
			if err != nil {
				return err
			}
			return writeRebuild(g.stdout, res)
		},
	}
	cmd.AddCommand(rebuild)
	return cmd
}

// reportingDB opens the reporting context on its own database, migrated.
func (g *globals) reportingDB(cmd *cobra.Command) (reporting.Service, func(), error) {
	cfg, err := g.config()
	if err != nil {
		return nil, nil, err
	}
	w, err := newWiring(cmd.Context(), cfg, g.logger(cfg), []string{reporting.Name}, true)
	if err != nil {
		return nil, nil, err
	}
	return w.reporting, w.Close, nil
}

// salesWriters print a sales report in each --format.
var salesWriters = map[string]func(io.Writer, reporting.SalesReport) error{
	"table": writeSalesTable,
	"csv":   writeSalesCSV,
	"json":  writeJSON[reporting.SalesReport],
}

func writeJSON[T any](w io.Writer, v T) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// money writes cents as dollars and cents ("-12.05"): integers all the
// way, no float ever touches an amount.
func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// salesRow is one labelled line of the report.
type salesRow struct {
	section, key string
	f            reporting.Figures
}

func salesRows(rep reporting.SalesReport) []salesRow {
	var rows []salesRow
	for _, l := range rep.ByLocation {
		rows = append(rows, salesRow{"location", l.LocationID, l.Figures})
	}
	for _, c := range rep.ByChannel {
		rows = append(rows, salesRow{"channel", c.Channel, c.Figures})
	}
	for _, d := range rep.ByDay {
		rows = append(rows, salesRow{"day", d.Day, d.Figures})
	}
	return append(rows, salesRow{"total", "", rep.Totals})
}

// writeSalesTable prints the report for people: one block per breakdown,
// amounts in dollars.
func writeSalesTable(w io.Writer, rep reporting.SalesReport) error {
	scope := "all locations, both channels"
	switch {
	case rep.LocationID != "" && rep.Channel != "":
		scope = "location " + rep.LocationID + ", " + rep.Channel
	case rep.LocationID != "":
		scope = "location " + rep.LocationID
	case rep.Channel != "":
		scope = rep.Channel + " only"
	}
	fmt.Fprintf(w, "Sales %s to %s (%s), %s, amounts in %s before tax unless noted\n", rep.From, rep.To, rep.TimeZone, scope, rep.Currency)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	section := ""
	for _, r := range salesRows(rep) {
		if r.section != section {
			if section != "" {
				fmt.Fprintf(tw, "\t\t\t\t\t\t\t\t\t\t\n")
			}
			section = r.section
			fmt.Fprintf(tw, "%s\tSALES\tUNITS\tDISCOUNTS\tREVENUE\tTAX\tTOTAL (TAX IN)\tRETURNS\tRETURNED\tNET REVENUE\tNET TOTAL\t\n", strings.ToUpper(section))
		}
		f := r.f
		key := r.key
		if section == "total" {
			key = "TOTAL"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", key, f.SalesCount, f.Units, money(f.DiscountCents),
			money(f.RevenueCents), money(f.TaxCents), money(f.TotalCents), f.ReturnsCount, money(f.ReturnedCents),
			money(f.NetRevenueCents), money(f.NetTotalCents))
	}
	return tw.Flush()
}

// writeSalesCSV prints the report for spreadsheets: one row per
// breakdown entry, amounts in integer cents as the API has them.
func writeSalesCSV(w io.Writer, rep reporting.SalesReport) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"section", "key", "from", "to", "time_zone", "currency", "sales_count", "units", "discount_cents",
		"revenue_cents", "tax_cents", "total_cents", "returns_count", "returned_units", "returned_cents", "returned_tax_cents",
		"refunded_cents", "net_revenue_cents", "net_tax_cents", "net_total_cents"})
	for _, r := range salesRows(rep) {
		f := r.f
		rec := []string{r.section, r.key, rep.From, rep.To, rep.TimeZone, rep.Currency}
		for _, n := range []int64{f.SalesCount, f.Units, f.DiscountCents, f.RevenueCents, f.TaxCents, f.TotalCents,
			f.ReturnsCount, f.ReturnedUnits, f.ReturnedCents, f.ReturnedTaxCents, f.RefundedCents,
			f.NetRevenueCents, f.NetTaxCents, f.NetTotalCents} {
			rec = append(rec, strconv.FormatInt(n, 10))
		}
		_ = cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// writeRebuild prints a rebuild's totals before and after, side by side;
// a changed line is marked (expected after a change of time zone or a
// fix, a bug otherwise).
func writeRebuild(w io.Writer, res reporting.RebuildResult) error {
	fmt.Fprintf(w, "Rebuilt the reporting read model from %d journal entries in %d ms (%s)\n",
		res.Events, res.DurationMs, res.After.TimeZone)
	b, a := res.Before, res.After
	rows := []struct {
		name          string
		before, after int64
		cents         bool
	}{
		{"events applied", b.Events, a.Events, false},
		{"sales and orders", b.Sales.SalesCount, a.Sales.SalesCount, false},
		{"units sold", b.Sales.Units, a.Sales.Units, false},
		{"revenue", b.Sales.RevenueCents, a.Sales.RevenueCents, true},
		{"tax", b.Sales.TaxCents, a.Sales.TaxCents, true},
		{"total (tax in)", b.Sales.TotalCents, a.Sales.TotalCents, true},
		{"returns and cancellations", b.Sales.ReturnsCount, a.Sales.ReturnsCount, false},
		{"refunded (tax in)", b.Sales.RefundedCents, a.Sales.RefundedCents, true},
		{"net revenue", b.Sales.NetRevenueCents, a.Sales.NetRevenueCents, true},
		{"product units sold", b.ProductUnitsSold, a.ProductUnitsSold, false},
		{"product units returned", b.ProductUnitsReturned, a.ProductUnitsReturned, false},
		{"orders", b.Orders, a.Orders, false},
		{"orders cancelled", b.OrdersCancelled, a.OrdersCancelled, false},
		{"stock rows", b.StockRows, a.StockRows, false},
		{"stock on hand", b.StockOnHand, a.StockOnHand, false},
		{"stock available", b.StockAvailable, a.StockAvailable, false},
		{"checkouts completed", b.CheckoutsCompleted, a.CheckoutsCompleted, false},
		{"checkouts failed", b.CheckoutsFailed, a.CheckoutsFailed, false},
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOTAL\tBEFORE\tAFTER\t")
	changed := 0
	for _, r := range rows {
		show := func(n int64) string {
			if r.cents {
				return money(n)
			}
			return strconv.FormatInt(n, 10)
		}
		mark := ""
		if r.before != r.after {
			mark, changed = "changed", changed+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, show(r.before), show(r.after), mark)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if changed == 0 {
		_, err := fmt.Fprintln(w, "The rebuilt figures equal the live ones.")
		return err
	}
	_, err := fmt.Fprintf(w, "%d totals changed: expected after a change of time zone or a fix, a bug otherwise.\n", changed)
	return err
}
