package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/product"
	"github.com/retailco/pos/internal/sales"
)

// Demo data: a warehouse, three stores in three provinces (three tax
// regimes), the online location, a catalog in six categories, stock
// everywhere, two customers and one API key per role. Seeding is
// idempotent: what exists (by SKU, location code, e-mail, key name) is
// kept, stock receipts carry idempotency keys.

// DemoPassword is the password of the demo customers.
const DemoPassword = "demo-password-1"

var demoCategories = []string{"Beverages", "Bakery", "Dairy", "Produce", "Household", "Electronics"}

var demoProducts = []struct {
	sku, name, category string
	price               int64
	threshold           int
}{
	{"BEV-COF-1KG", "Dark roast coffee beans 1 kg", "Beverages", 2199, 10},
	{"BEV-TEA-GRN", "Green tea, 40 bags", "Beverages", 649, 8},
	{"BEV-JUI-ORG", "Orange juice 1.75 L", "Beverages", 579, 12},
	{"BEV-WAT-12", "Sparkling water 12 × 355 mL", "Beverages", 799, 10},
	{"BEV-SOD-6", "Maple soda 6 pack", "Beverages", 899, 6},
	{"BAK-BRD-SOUR", "Sourdough loaf", "Bakery", 599, 5},
	{"BAK-CRO-4", "Butter croissants, 4", "Bakery", 749, 5},
	{"BAK-BAG-6", "Montréal bagels, 6", "Bakery", 699, 6},
	{"BAK-MUF-BLU", "Blueberry muffins, 4", "Bakery", 649, 4},
	{"DAI-MLK-2L", "Milk 2% 2 L", "Dairy", 549, 15},
	{"DAI-CHE-CHD", "Aged cheddar 400 g", "Dairy", 1099, 6},
	{"DAI-YOG-GRK", "Greek yogurt 750 g", "Dairy", 629, 8},
	{"DAI-BUT-454", "Salted butter 454 g", "Dairy", 699, 8},
	{"PRO-APL-MAC", "McIntosh apples 3 lb", "Produce", 499, 10},
	{"PRO-BAN-1KG", "Bananas 1 kg", "Produce", 179, 20},
	{"PRO-POT-10", "Yellow potatoes 10 lb", "Produce", 699, 8},
	{"PRO-CAR-2LB", "Carrots 2 lb", "Produce", 249, 10},
	{"PRO-STR-454", "Strawberries 454 g", "Produce", 599, 8},
	{"HOU-DET-2L", "Laundry detergent 2 L", "Household", 1299, 5},
	{"HOU-TP-12", "Toilet paper, 12 double rolls", "Household", 1099, 8},
	{"HOU-SPO-6", "Kitchen sponges, 6", "Household", 449, 5},
	{"HOU-BAG-40", "Garbage bags, 40", "Household", 999, 5},
	{"HOU-SOAP-3", "Hand soap refill 3 L", "Household", 1149, 4},
	{"ELE-CBL-USBC", "USB-C cable 2 m", "Electronics", 1999, 4},
	{"ELE-CHG-65W", "65 W USB-C charger", "Electronics", 4999, 3},
	{"ELE-EAR-BT", "Bluetooth earbuds", "Electronics", 7999, 3},
	{"ELE-BAT-AA8", "AA batteries, 8", "Electronics", 1299, 6},
	{"ELE-PWR-10K", "Power bank 10,000 mAh", "Electronics", 3999, 3},
	{"ELE-MOU-WL", "Wireless mouse", "Electronics", 2999, 3},
	{"ELE-KBD-WL", "Wireless keyboard", "Electronics", 5999, 2},
}

var demoLocations = []inventory.NewLocation{
	{Code: "WH-01", Name: "Laval distribution centre", Kind: "warehouse", Province: "QC", Address: "2500 boul. Industriel, Laval QC"},
	{Code: "MTL-01", Name: "Montréal — Plateau", Kind: "store", Province: "QC", Address: "4200 rue Saint-Denis, Montréal QC"},
	{Code: "TOR-01", Name: "Toronto — Queen West", Kind: "store", Province: "ON", Address: "600 Queen St W, Toronto ON"},
	{Code: "HAL-01", Name: "Halifax — Spring Garden", Kind: "store", Province: "NS", Address: "5640 Spring Garden Rd, Halifax NS"},
	{Code: "WEB", Name: "Web shop", Kind: "online", Province: "QC", Address: "ships from WH-01"},
}

// stock per location kind: what each product starts with.
var demoStock = map[string]int64{"warehouse": 500, "store": 40, "online": 120}

var demoCustomers = []customer.Registration{
	{Email: "alice@example.com", Password: DemoPassword, FirstName: "Alice", LastName: "Tremblay", Phone: "+1 514 555 0101"},
	{Email: "bob@example.com", Password: DemoPassword, FirstName: "Bob", LastName: "Singh", Phone: "+1 416 555 0102"},
}

func newSeedCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "seed",
		Short: "Load demo data (idempotent) and print one API key per role",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			w, err := newWiring(cmd.Context(), cfg, g.logger(cfg), allContexts, true)
			if err != nil {
				return err
			}
			defer w.Close()
			return seed(cmd.Context(), w, g)
		},
	}
}

func seed(ctx context.Context, w *wiring, g *globals) error {
	cats := map[string]string{}
	existing, err := w.product.ListCategories(ctx)
	if err != nil {
		return err
	}
	for _, c := range existing {
		cats[c.Name] = c.ID
	}
	for _, name := range demoCategories {
		if _, ok := cats[name]; ok {
			continue
		}
		c, err := w.product.CreateCategory(ctx, product.NewCategory{Name: name})
		if err != nil {
			return fmt.Errorf("seed category %s: %w", name, err)
		}
		cats[name] = c.ID
	}

	productIDs := make([]string, 0, len(demoProducts))
	for _, d := range demoProducts {
		p, err := w.product.CreateProduct(ctx, product.NewProduct{SKU: d.sku, Name: d.name, CategoryID: cats[d.category],
			PriceCents: d.price, AlertThreshold: d.threshold, Description: d.name + " — demo catalog"})
		if errors.Is(err, errs.Conflict) {
			res, lerr := w.product.ListProducts(ctx, product.Filter{SKU: d.sku})
			if lerr != nil || len(res.Items) == 0 {
				return fmt.Errorf("seed product %s: %w", d.sku, err)
			}
			p = res.Items[0]
		} else if err != nil {
			return fmt.Errorf("seed product %s: %w", d.sku, err)
		}
		productIDs = append(productIDs, p.ID)
	}

	locs, err := w.inventory.ListLocations(ctx, inventory.LocationFilter{Page: page.Request{PerPage: page.MaxPerPage}})
	if err != nil {
		return err
	}
	byCode := map[string]inventory.Location{}
	for _, l := range locs.Items {
		byCode[l.Code] = l
	}
	for _, d := range demoLocations {
		if _, ok := byCode[d.Code]; ok {
			continue
		}
		l, err := w.inventory.CreateLocation(ctx, d)
		if err != nil {
			return fmt.Errorf("seed location %s: %w", d.Code, err)
		}
		byCode[l.Code] = l
	}
	for _, d := range demoLocations {
		loc := byCode[d.Code]
		for i, pid := range productIDs {
			_, err := w.inventory.Adjust(ctx, inventory.Adjustment{
				AdjustmentID: "seed:" + demoProducts[i].sku + ":" + loc.Code,
				ProductID:    pid, LocationID: loc.ID, Delta: demoStock[loc.Kind], Reason: "receipt", Note: "demo opening stock",
			})
			if err != nil {
				return fmt.Errorf("seed stock %s at %s: %w", demoProducts[i].sku, loc.Code, err)
			}
		}
	}

	// Two registers per store, named after it (MTL-01-R1, MTL-01-R2, …).
	for _, d := range demoLocations {
		if d.Kind != "store" {
			continue
		}
		for n := 1; n <= 2; n++ {
			id := fmt.Sprintf("%s-R%d", d.Code, n)
			_, err := w.sales.CreateRegister(ctx, sales.NewRegister{ID: id, LocationID: byCode[d.Code].ID, Name: fmt.Sprintf("Register %d", n)})
			if err != nil && !errors.Is(err, errs.Conflict) {
				return fmt.Errorf("seed register %s: %w", id, err)
			}
		}
	}

	for _, r := range demoCustomers {
		if _, err := w.customer.Register(ctx, r); err != nil && !errors.Is(err, errs.Conflict) {
			return fmt.Errorf("seed customer %s: %w", r.Email, err)
		}
	}

	// One key per role; a key whose name exists is not made again (its
	// secret was shown once, when it was made).
	have := map[string]bool{}
	for p := 1; ; p++ {
		res, err := w.customer.ListAPIKeys(ctx, page.Request{Page: p, PerPage: page.MaxPerPage})
		if err != nil {
			return err
		}
		for _, k := range res.Items {
			if k.RevokedAt == nil {
				have[k.Name] = true
			}
		}
		if int64(p*page.MaxPerPage) >= res.Total {
			break
		}
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(g.stdout, "Seeded %d products in %d categories, %d locations with registers, %d customers (password %q).\n",
		len(demoProducts), len(demoCategories), len(demoLocations), len(demoCustomers), DemoPassword)
	fmt.Fprintln(tw, "ROLE\tKEY (shown once)")
	for _, role := range auth.StaffRoles {
		name := "demo-" + string(role)
		if have[name] {
			fmt.Fprintf(tw, "%s\t(exists: %s; create another with `pos apikey create --role %s --name NAME`)\n", role, name, role)
			continue
		}
		in := customer.NewAPIKey{Name: name, Role: role}
		if role == auth.RoleCashier || role == auth.RoleManager {
			in.LocationID = byCode["MTL-01"].ID
		}
		k, err := w.customer.CreateAPIKey(ctx, in)
		if err != nil {
			return fmt.Errorf("seed key %s: %w", name, err)
		}
		fmt.Fprintf(tw, "%s\t%s\n", role, k.Key)
	}
	return tw.Flush()
}
