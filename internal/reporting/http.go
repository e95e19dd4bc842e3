package reporting

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/httpx"
)

// Access rules: reports and the dashboard are the manager's (admin is
// always let in); rebuilding the read model is an operator's act.
var (
	readers  = httpx.Staff(auth.RoleManager)
	rebuilds = httpx.Admin
)

// Routes mounts the reporting context's HTTP surface. The query checks
// (dates, range, channel, limit) live in the service, so local callers and
// HTTP callers get the same field errors; huma checks types and bounds
// first.
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	op := func(id, method, path, summary string, access httpx.Access) httpx.Op {
		return httpx.Op{Context: Name, ID: id, Method: method, Path: path, Summary: summary, Access: access}
	}
	httpx.Register(api, op("report-sales", http.MethodGet, "/reports/sales",
		"Sales totals by location, channel (pos, online) and day", readers), h.sales)
	httpx.Register(api, op("report-top-products", http.MethodGet, "/reports/products/top",
		"Best-selling products by net revenue", readers), h.top)
	httpx.Register(api, op("report-inventory", http.MethodGet, "/reports/inventory",
		"Stock value and low stock per location", readers), h.inventory)
	httpx.Register(api, op("get-dashboard", http.MethodGet, "/dashboard",
		"Today across both channels: revenue, orders, top products, low stock, checkout success, freshness", readers), h.dashboard)
	httpx.Register(api, op("report-totals", http.MethodGet, "/reports/totals",
		"Sums of the whole reporting read model", readers), h.totals)
	httpx.Register(api, op("rebuild-reports", http.MethodPost, "/reports/rebuild",
		"Recompute every report aggregate from the reporting journal", rebuilds), h.rebuild)
}

type handlers struct{ svc Service }

type salesInput struct {
	From       string `query:"from" maxLength:"40" doc:"First day, included: RFC 3339 date (2025-06-01) or date-time; default 29 days before to"`
	To         string `query:"to" maxLength:"40" doc:"Last day, included: RFC 3339 date or date-time; default today (reporting time zone)"`
	LocationID string `query:"location_id" maxLength:"64"`
	Channel    string `query:"channel" enum:"pos,online," doc:"pos (registers) or online (web orders); empty: both"`
}

func (h handlers) sales(ctx context.Context, in *salesInput) (*httpx.Reply[SalesReport], error) {
	rep, err := h.svc.SalesReport(ctx, SalesQuery{From: in.From, To: in.To, LocationID: in.LocationID, Channel: in.Channel})
	if err != nil {
		return nil, err
	}
	return httpx.OK(rep), nil
}

type topInput struct {
	From    string `query:"from" maxLength:"40" doc:"First day, included: RFC 3339 date (2025-06-01) or date-time; default 29 days before to"`
	To      string `query:"to" maxLength:"40" doc:"Last day, included: RFC 3339 date or date-time; default today (reporting time zone)"`
	Channel string `query:"channel" enum:"pos,online," doc:"pos or online; empty: both"`
	Limit   int    `query:"limit" minimum:"1" maximum:"100" default:"10" doc:"How many products (1-100)"`
}

func (h handlers) top(ctx context.Context, in *topInput) (*httpx.Reply[TopProducts], error) {
	rep, err := h.svc.TopProducts(ctx, TopQuery{From: in.From, To: in.To, Channel: in.Channel, Limit: in.Limit})
	if err != nil {
		return nil, err
	}
	return httpx.OK(rep), nil
}

type inventoryInput struct {
	LocationID string `query:"location_id" maxLength:"64"`
}

func (h handlers) inventory(ctx context.Context, in *inventoryInput) (*httpx.Reply[InventoryReport], error) {
	rep, err := h.svc.InventoryReport(ctx, InventoryQuery{LocationID: in.LocationID})
	if err != nil {
		return nil, err
	}
	return httpx.OK(rep), nil
}

func (h handlers) dashboard(ctx context.Context, _ *struct{}) (*httpx.Reply[Dashboard], error) {
	d, err := h.svc.Dashboard(ctx)
	if err != nil {
		return nil, err
	}
	return httpx.OK(d), nil
}

func (h handlers) totals(ctx context.Context, _ *struct{}) (*httpx.Reply[Totals], error) {
	t, err := h.svc.Totals(ctx)
	if err != nil {
		return nil, err
	}
	return httpx.OK(t), nil
}

func (h handlers) rebuild(ctx context.Context, _ *struct{}) (*httpx.Reply[RebuildResult], error) {
	r, err := h.svc.Rebuild(ctx)
	if err != nil {
		return nil, err
	}
	return httpx.OK(r), nil
}
