package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/reporting"
)

// reportingData fills the embedded reporting database under dir the way
// the consumer does, and returns the report the service makes of it.
func reportingData(t *testing.T, dir string) reporting.SalesReport {
	t.Helper()
	ctx := context.Background()
	gdb, err := db.Open(ctx, db.Options{Context: reporting.Name, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(gdb)
	if err := db.Migrate(ctx, gdb, reporting.Migrations); err != nil {
		t.Fatal(err)
	}
	sale := func(id, loc string, at time.Time, net, tax int64) map[string]any {
		return map[string]any{"sale_id": id, "location_id": loc, "lines": []map[string]any{{"product_id": "prd-1", "sku": "P-1",
			"quantity": 2, "net_cents": net, "tax_cents": tax}}, "subtotal_cents": net, "discount_cents": 0, "tax_cents": tax,
			"total_cents": net + tax, "currency": "CAD", "completed_at": at.Format(time.RFC3339)}
	}
	june1 := time.Date(2025, 6, 1, 15, 0, 0, 0, time.UTC)
	c := reporting.NewConsumer(gdb, reporting.Options{})
	for _, e := range []struct {
		typ, id string
		data    any
	}{
		{"sales.SaleCompleted", "sal-1", sale("sal-1", "loc-mtl", june1, 2000, 300)},
		{"sales.SaleCompleted", "sal-2", sale("sal-2", "loc-tor", june1.Add(24*time.Hour), 1250, 163)},
		{"orders.OrderConfirmed", "ord-1", map[string]any{"order_id": "ord-1", "location_id": "loc-web",
			"lines":          []map[string]any{{"product_id": "prd-1", "quantity": 1, "line_total_cents": 999}},
			"subtotal_cents": 999, "tax_cents": 150, "total_cents": 1149, "currency": "CAD", "confirmed_at": june1.Format(time.RFC3339)}},
	} {
		env, err := events.New(ctx, e.typ, e.id, 1, e.data)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Handle(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := reporting.New(gdb, nil, reporting.Options{}).SalesReport(ctx, reporting.SalesQuery{From: "2025-06-01", To: "2025-06-02"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.SalesCount != 3 {
		t.Fatalf("fixture: %+v", rep.Totals)
	}
	return rep
}

// pos runs the CLI on the embedded databases under dir.
func pos(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	env := map[string]string{"POS_DATA_DIR": dir, "POS_LOG_LEVEL": "error"}
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), err
}

// TestReportSalesCommand: `pos report sales` prints what GET
// /reports/sales answers, in each format, from the local database.
func TestReportSalesCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := reportingData(t, dir)

	out, err := pos(t, dir, "report", "sales", "--from", "2025-06-01", "--to", "2025-06-02", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got reporting.SalesReport
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("json report:\n got %+v\nwant %+v", got, want)
	}

	out, err = pos(t, dir, "report", "sales", "--from", "2025-06-01", "--to", "2025-06-02", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("csv output: %v\n%s", err, out)
	}
	// Header, 3 locations, 2 channels, 2 days, the total.
	if len(recs) != 1+3+2+2+1 || recs[0][9] != "revenue_cents" {
		t.Fatalf("csv rows: %v", recs)
	}
	total := recs[len(recs)-1]
	if total[0] != "total" || total[9] != "4249" || total[11] != "4862" {
		t.Fatalf("csv total row: %v", total)
	}

	out, err = pos(t, dir, "report", "sales", "--from", "2025-06-01", "--to", "2025-06-02")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"2025-06-01 to 2025-06-02", "America/Toronto", "LOCATION", "CHANNEL", "DAY", "TOTAL", "loc-tor", "42.49", "48.62"} {
		if !strings.Contains(out, s) {
			t.Errorf("table output lacks %q:\n%s", s, out)
		}
	}

	// Filters, as the API's.
	out, err = pos(t, dir, "report", "sales", "--from", "2025-06-01", "--to", "2025-06-02", "--location", "loc-mtl", "--channel", "pos", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Totals.SalesCount != 1 || got.Totals.RevenueCents != 2000 || got.LocationID != "loc-mtl" || got.Channel != "pos" {
		t.Fatalf("filtered: %+v", got)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", "2025-06-01", "--to", "2025-06-02", "--format", "xml"}, "--format"},
		{[]string{"--from", "2025-06-31", "--to", "2025-07-02"}, "from"},
		{[]string{"--from", "2025-06-02", "--to", "2025-06-01"}, "from"},
		{[]string{"--from", "2025-06-01", "--to", "2025-06-02", "--channel", "web"}, "channel"},
		{[]string{"--from", "2025-06-01"}, "to"},
	} {
		if _, err := pos(t, dir, append([]string{"report", "sales"}, c.args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("pos report sales %v: %v, want an error about %s", c.args, err, c.want)
		}
	}
}

// TestReportingRebuildCommand: the rebuild prints the totals before and
// after, equal on an intact read model.
func TestReportingRebuildCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reportingData(t, dir)
	out, err := pos(t, dir, "reporting", "rebuild")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"from 3 journal entries", "BEFORE", "AFTER", "sales and orders", "equal the live ones"} {
		if !strings.Contains(out, s) {
			t.Errorf("rebuild output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "changed") {
		t.Errorf("an intact read model changed in a rebuild:\n%s", out)
	}
}
