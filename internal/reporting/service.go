package reporting

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	// The reporting zone must load on hosts without a zoneinfo database
	// (distroless and scratch images): embed it.
	_ "time/tzdata"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/product"
)

// Options tune the context; the zero value is the production default.
// The Consumer and the Service of one database must share Location (and
// Currency): the consumer fixes the days, the service reads them.
type Options struct {
	// Location is the reporting time zone (see TimeZone); nil is
	// America/Toronto.
	Location *time.Location
	// Currency is the one currency amounts are in; empty is CAD.
	Currency string
	// Now is the clock (default time.Now): "today" and the default range
	// are read from it, and the consumer stamps applied_at with it.
	Now func() time.Time
	// Logger reports what the consumer notices; nil uses slog.Default().
	Logger *slog.Logger
	// Registerer receives reporting_events_total; nil keeps it
	// unexported.
	Registerer prometheus.Registerer
	// CatalogTTL is how long a product looked up in the catalog (name,
	// price, threshold) is reused: the dashboard prices every stock row on
	// every call, and prices change far less often than managers refresh.
	// 0 is DefaultCatalogTTL; negative looks every product up every time.
	CatalogTTL time.Duration
}

// DefaultCatalogTTL is Options.CatalogTTL's default.
const DefaultCatalogTTL = 30 * time.Second

// TimeZone loads the reporting time zone by IANA name ("" is
// DefaultTimeZone), for Options.Location; a bad name is errs.Invalid.
func TimeZone(name string) (*time.Location, error) {
	if strings.TrimSpace(name) == "" {
		name = DefaultTimeZone
	}
	loc, err := time.LoadLocation(strings.TrimSpace(name))
	if err != nil {
		return nil, fmt.Errorf("reporting time zone %q: %w (%v)", name, errs.Invalid, err)
	}
	return loc, nil
}

func (o Options) withDefaults() Options {
	if o.Location == nil {
		loc, err := TimeZone(DefaultTimeZone)
		if err != nil {
			panic(err) // the zone database is embedded: it cannot be missing
		}
		o.Location = loc
	}
	if o.Currency == "" {
		o.Currency = DefaultCurrency
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CatalogTTL == 0 {
		o.CatalogTTL = DefaultCatalogTTL
	}
	return o
}

// now is o's clock at the precision both engines keep.
func (o Options) now() time.Time { return o.Now().UTC().Truncate(time.Microsecond) }

func (o Options) planner() planner { return planner{loc: o.Location, currency: o.Currency} }

type service struct {
	store   *store
	catalog Catalog
	o       Options
	cache   productCache
}

// productCache keeps catalog answers for Options.CatalogTTL, those for ids
// the catalog does not know included (found false), so that an unknown
// product does not cost a call every time either.
type productCache struct {
	mu      sync.Mutex
	entries map[string]cachedProduct
}

type cachedProduct struct {
	p     product.Product
	found bool
	until time.Time
}

// maxCached bounds the cache: past it, it starts over (a catalog that big
// is read in full every TTL anyway).
const maxCached = 100_000

// get returns the fresh entries for ids and the ids to look up.
func (c *productCache) get(ids []string, now time.Time) (map[string]cachedProduct, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	hit := make(map[string]cachedProduct, len(ids))
	var miss []string
	for _, id := range ids {
		if e, ok := c.entries[id]; ok && now.Before(e.until) {
			hit[id] = e
		} else {
			miss = append(miss, id)
		}
	}
	return hit, miss
}

func (c *productCache) put(entries map[string]cachedProduct) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries)+len(entries) > maxCached {
		c.entries = make(map[string]cachedProduct, len(entries))
	}
	for id, e := range entries {
		c.entries[id] = e
	}
}

var _ Service = (*service)(nil)

// New returns the query side on gdb (migrated with Migrations), reading
// what the Consumer on the same database writes. catalog may be nil in a
// process that cannot reach the product context: the sales report, top
// products (named from the events), Totals and Rebuild still work; the
// inventory report and the dashboard answer errs.Unavailable.
func New(gdb *gorm.DB, catalog Catalog, o Options) Service {
	return &service{store: &store{db: gdb}, catalog: catalog, o: o.withDefaults()}
}

var (
	// locationPattern is what location ids look like (inventory's).
	locationPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	// dateOnly recognises the date form of a bound.
	dateOnly = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)

const boundMessage = "must be an RFC 3339 date (2025-06-01) or date-time (2025-06-01T09:30:00-04:00)"

// civil is t's calendar day as a UTC midnight: day arithmetic without
// daylight-saving surprises.
func civil(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// bound is one end of a range as given.
type bound struct {
	given   bool
	instant time.Time // the date's midnight in the zone, or the date-time
	day     time.Time // civil day in the zone
}

func (s *service) parseBound(v *errs.Validator, field, raw string) bound {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return bound{}
	}
	var t time.Time
	var err error
	if dateOnly.MatchString(raw) {
		t, err = time.ParseInLocation(dayLayout, raw, s.o.Location)
	} else {
		t, err = time.Parse(time.RFC3339Nano, raw)
	}
	if err != nil {
		v.Check(false, field, boundMessage)
		return bound{}
	}
	return bound{given: true, instant: t, day: civil(t.In(s.o.Location))}
}

// dayRange resolves From and To to the days they cover (both included),
// with the defaults of SalesQuery; bad bounds add field errors to v.
func (s *service) dayRange(v *errs.Validator, fromRaw, toRaw string) (from, to time.Time) {
	f := s.parseBound(v, "from", fromRaw)
	t := s.parseBound(v, "to", toRaw)
	if v.Err() != nil {
		return
	}
	to = civil(s.o.Now().In(s.o.Location))
	if t.given {
		to = t.day
	}
	from = to.AddDate(0, 0, -(DefaultRangeDays - 1))
	if f.given {
		from = f.day
	}
	switch {
	case f.given && t.given && f.instant.After(t.instant), from.After(to):
		v.Check(false, "from", "must not be after to (%s)", to.Format(dayLayout))
	case int(to.Sub(from).Hours()/24)+1 > MaxRangeDays:
		field := "from"
		if t.given && !f.given {
			field = "to"
		}
		v.Check(false, field, "the range %s to %s covers more than %d days", from.Format(dayLayout), to.Format(dayLayout), MaxRangeDays)
	}
	return from, to
}

func checkChannel(v *errs.Validator, channel string) {
	v.Check(channel == "" || channel == ChannelPOS || channel == ChannelOnline, "channel", "must be pos or online")
}

func checkLocation(v *errs.Validator, id string) {
	v.Check(id == "" || locationPattern.MatchString(id), "location_id", "must be a location id (letters, digits, '.', '_', ':' or '-', at most 64)")
}

// add sums o's counts into f (the net figures are derived, see withNet).
func (f *Figures) add(o Figures) {
	f.SalesCount += o.SalesCount
	f.Units += o.Units
	f.DiscountCents += o.DiscountCents
	f.RevenueCents += o.RevenueCents
	f.TaxCents += o.TaxCents
	f.TotalCents += o.TotalCents
	f.ReturnsCount += o.ReturnsCount
	f.ReturnedUnits += o.ReturnedUnits
	f.ReturnedCents += o.ReturnedCents
	f.ReturnedTaxCents += o.ReturnedTaxCents
	f.RefundedCents += o.RefundedCents
	*f = f.withNet()
}

// withNet derives the net figures from the others.
func (f Figures) withNet() Figures {
	f.NetRevenueCents = f.RevenueCents - f.ReturnedCents
	f.NetTaxCents = f.TaxCents - f.ReturnedTaxCents
	f.NetTotalCents = f.TotalCents - f.RefundedCents
	return f
}

// fold sums sales rows into totals and splits by location and channel;
// channels lists the channels to show even without activity.
func fold(rows []salesRow, channels []string) (total Figures, byLocation []LocationFigures, byChannel []ChannelFigures) {
	locs := map[string]*Figures{}
	chans := map[string]*Figures{}
	for _, c := range channels {
		chans[c] = &Figures{}
	}
	for _, r := range rows {
		f := r.figures()
		total.add(f)
		if locs[r.LocationID] == nil {
			locs[r.LocationID] = &Figures{}
		}
		locs[r.LocationID].add(f)
		if chans[r.Channel] == nil {
			chans[r.Channel] = &Figures{}
		}
		chans[r.Channel].add(f)
	}
	byLocation = []LocationFigures{}
	for _, id := range sortedKeys(locs, strings.Compare) {
		byLocation = append(byLocation, LocationFigures{LocationID: id, Figures: *locs[id]})
	}
	byChannel = []ChannelFigures{}
	for _, c := range sortedKeys(chans, channelOrder) {
		byChannel = append(byChannel, ChannelFigures{Channel: c, Figures: *chans[c]})
	}
	return total, byLocation, byChannel
}

// channelOrder shows pos before online.
func channelOrder(a, b string) int {
	rank := func(c string) int {
		switch c {
		case ChannelPOS:
			return 0
		case ChannelOnline:
			return 1
		}
		return 2
	}
	return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
}

// channelsOf lists the channels a query covers.
func channelsOf(channel string) []string {
	if channel != "" {
		return []string{channel}
	}
	return []string{ChannelPOS, ChannelOnline}
}

func (s *service) SalesReport(ctx context.Context, q SalesQuery) (SalesReport, error) {
	q.LocationID, q.Channel = strings.TrimSpace(q.LocationID), strings.TrimSpace(q.Channel)
	var v errs.Validator
	from, to := s.dayRange(&v, q.From, q.To)
	checkLocation(&v, q.LocationID)
	checkChannel(&v, q.Channel)
	if err := v.Err(); err != nil {
		return SalesReport{}, err
	}
	rows, err := s.store.salesRows(ctx, from.Format(dayLayout), to.Format(dayLayout), q.LocationID, q.Channel)
	if err != nil {
		return SalesReport{}, err
	}
	rep := SalesReport{
		From: from.Format(dayLayout), To: to.Format(dayLayout), TimeZone: s.o.Location.String(), Currency: s.o.Currency,
		LocationID: q.LocationID, Channel: q.Channel,
	}
	rep.Totals, rep.ByLocation, rep.ByChannel = fold(rows, channelsOf(q.Channel))
	// Every day of the range, zero days included: a closed day is a point
	// on the manager's chart too.
	days := map[string]*Figures{}
	for _, r := range rows {
		if days[r.Day] == nil {
			days[r.Day] = &Figures{}
		}
		days[r.Day].add(r.figures())
	}
	rep.ByDay = []DayFigures{}
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		day := DayFigures{Day: d.Format(dayLayout)}
		if f := days[day.Day]; f != nil {
			day.Figures = *f
		}
		rep.ByDay = append(rep.ByDay, day)
	}
	return rep, nil
}

func (s *service) TopProducts(ctx context.Context, q TopQuery) (TopProducts, error) {
	q.Channel = strings.TrimSpace(q.Channel)
	var v errs.Validator
	from, to := s.dayRange(&v, q.From, q.To)
	checkChannel(&v, q.Channel)
	v.Check(q.Limit >= 0 && q.Limit <= MaxTopLimit, "limit", "must be between 1 and %d", MaxTopLimit)
	if err := v.Err(); err != nil {
		return TopProducts{}, err
	}
	if q.Limit == 0 {
		q.Limit = DefaultTopLimit
	}
	top, err := s.top(ctx, from.Format(dayLayout), to.Format(dayLayout), q.Channel, q.Limit)
	if err != nil {
		return TopProducts{}, err
	}
	return TopProducts{From: from.Format(dayLayout), To: to.Format(dayLayout), TimeZone: s.o.Location.String(),
		Currency: s.o.Currency, Channel: q.Channel, Products: top}, nil
}

// top ranks products over [from, to] and names them.
func (s *service) top(ctx context.Context, from, to, channel string, limit int) ([]ProductFigures, error) {
	sums, err := s.store.topProducts(ctx, from, to, channel, limit)
	if err != nil {
		return nil, err
	}
	info, err := s.products(ctx, productIDs(sums), false)
	if err != nil {
		return nil, err
	}
	return ranked(sums, info), nil
}

func productIDs(sums []productSum) []string {
	ids := make([]string, len(sums))
	for i, p := range sums {
		ids[i] = p.ProductID
	}
	return ids
}

// ranked turns ranked sums into named figures.
func ranked(sums []productSum, info map[string]product.Product) []ProductFigures {
	out := make([]ProductFigures, 0, len(sums))
	for i, p := range sums {
		out = append(out, ProductFigures{
			Rank: i + 1, ProductID: p.ProductID, SKU: info[p.ProductID].SKU, Name: info[p.ProductID].Name,
			UnitsSold: p.UnitsSold, UnitsReturned: p.UnitsReturned, NetUnits: p.UnitsSold - p.UnitsReturned,
			RevenueCents: p.RevenueCents, ReturnedCents: p.ReturnedCents, NetRevenueCents: p.RevenueCents - p.ReturnedCents,
		})
	}
	return out
}

// products looks ids up: in the catalog (names, prices, thresholds), in
// batches of page.MaxPerPage, through the cache, and in the labels the
// events left for those the catalog does not know (or all of them when
// there is no catalog and needCatalog is false). Every id gets an entry;
// an unknown product is named by its id, priced 0 with threshold 0.
func (s *service) products(ctx context.Context, ids []string, needCatalog bool) (map[string]product.Product, error) {
	out := make(map[string]product.Product, len(ids))
	if s.catalog == nil && needCatalog {
		return nil, fmt.Errorf("reporting runs without a catalog (set POS_PRODUCT_URL or POS_GATEWAY_URL): %w", errs.Unavailable)
	}
	var unknown []string
	if s.catalog != nil {
		now := s.o.Now()
		known, miss := s.cache.get(ids, now)
		fetched := make(map[string]cachedProduct, len(miss))
		for start := 0; start < len(miss); start += page.MaxPerPage {
			batch := miss[start:min(start+page.MaxPerPage, len(miss))]
			res, err := s.catalog.ListProducts(ctx, product.Filter{IDs: batch, Page: page.Request{Page: 1, PerPage: page.MaxPerPage}})
			if err != nil {
				return nil, fmt.Errorf("look products up in the catalog: %w", err)
			}
			for _, id := range batch {
				fetched[id] = cachedProduct{until: now.Add(s.o.CatalogTTL)}
			}
			for _, p := range res.Items {
				fetched[p.ID] = cachedProduct{p: p, found: true, until: now.Add(s.o.CatalogTTL)}
			}
		}
		if s.o.CatalogTTL > 0 && len(fetched) > 0 {
			s.cache.put(fetched)
		}
		for _, id := range ids {
			e, ok := known[id]
			if !ok {
				e = fetched[id]
			}
			if e.found {
				out[id] = e.p
			} else {
				unknown = append(unknown, id)
			}
		}
	} else {
		unknown = ids
	}
	if len(unknown) == 0 {
		return out, nil
	}
	labels, err := s.store.labels(ctx, unknown)
	if err != nil {
		return nil, err
	}
	for _, id := range unknown {
		l := labels[id]
		out[id] = product.Product{ID: id, SKU: l.SKU, Name: cmp.Or(l.Name, l.SKU, id)}
	}
	return out, nil
}

// stockView turns stock rows into priced rows with their low-stock flag.
func stockView(rows []stockLevelRow, info map[string]product.Product) []StockRow {
	out := make([]StockRow, len(rows))
	for i, r := range rows {
		p := info[r.ProductID]
		out[i] = StockRow{
			ProductID: r.ProductID, SKU: p.SKU, Name: p.Name, LocationID: r.LocationID,
			OnHand: r.OnHand, Reserved: r.Reserved, Available: r.Available,
			AlertThreshold: p.AlertThreshold, PriceCents: p.PriceCents, ValueCents: r.OnHand * p.PriceCents,
			LowStock: r.Available <= int64(p.AlertThreshold), UpdatedAt: r.UpdatedAt.UTC(),
		}
	}
	return out
}

// urgency orders low-stock rows: the emptiest shelf first, then the
// furthest below its threshold.
func urgency(a, b StockRow) int {
	return cmp.Or(
		cmp.Compare(a.Available, b.Available),
		cmp.Compare(int64(b.AlertThreshold)-b.Available, int64(a.AlertThreshold)-a.Available),
		strings.Compare(a.LocationID, b.LocationID),
		strings.Compare(a.ProductID, b.ProductID),
	)
}

// stockFigures sums rows and returns the low ones, most urgent first.
func stockFigures(rows []StockRow) (StockFigures, []StockRow) {
	var f StockFigures
	low := []StockRow{}
	for _, r := range rows {
		f.Products++
		f.OnHand += r.OnHand
		f.Reserved += r.Reserved
		f.Available += r.Available
		f.StockValueCents += r.ValueCents
		if r.LowStock {
			f.LowStockCount++
			low = append(low, r)
		}
	}
	slices.SortFunc(low, urgency)
	return f, low
}

func distinctProducts(rows []stockLevelRow, more ...string) []string {
	seen := map[string]bool{}
	var ids []string
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, id := range more {
		add(id)
	}
	for _, r := range rows {
		add(r.ProductID)
	}
	return ids
}

func (s *service) InventoryReport(ctx context.Context, q InventoryQuery) (InventoryReport, error) {
	q.LocationID = strings.TrimSpace(q.LocationID)
	var v errs.Validator
	checkLocation(&v, q.LocationID)
	if err := v.Err(); err != nil {
		return InventoryReport{}, err
	}
	rows, err := s.store.stockRows(ctx, q.LocationID, true)
	if err != nil {
		return InventoryReport{}, err
	}
	info, err := s.products(ctx, distinctProducts(rows), true)
	if err != nil {
		return InventoryReport{}, err
	}
	view := stockView(rows, info)
	rep := InventoryReport{Currency: s.o.Currency, Locations: []LocationStock{}}
	rep.Totals, _ = stockFigures(view)
	// Rows come ordered by location: cut them into runs.
	for start := 0; start < len(view); {
		end := start
		for end < len(view) && view[end].LocationID == view[start].LocationID {
			end++
		}
		figures, low := stockFigures(view[start:end])
		rep.Locations = append(rep.Locations, LocationStock{LocationID: view[start].LocationID, StockFigures: figures,
			LowStock: low[:min(len(low), MaxLowStockRows)]})
		start = end
	}
	return rep, nil
}

func (s *service) Dashboard(ctx context.Context) (Dashboard, error) {
	now := s.o.now()
	today := civil(now.In(s.o.Location))
	day := today.Format(dayLayout)
	d := Dashboard{Day: day, TimeZone: s.o.Location.String(), Currency: s.o.Currency, GeneratedAt: now}

	rows, err := s.store.salesRows(ctx, day, day, "", "")
	if err != nil {
		return Dashboard{}, err
	}
	d.Today, d.ByLocation, d.ByChannel = fold(rows, channelsOf(""))
	for _, c := range d.ByChannel {
		if c.Channel == ChannelOnline {
			d.OrdersToday = c.SalesCount
		}
	}

	sums, err := s.store.topProducts(ctx, day, day, "", DashboardTopProducts)
	if err != nil {
		return Dashboard{}, err
	}
	stock, err := s.store.stockRows(ctx, "", false)
	if err != nil {
		return Dashboard{}, err
	}
	// One catalog pass names the top products and prices the stock.
	info, err := s.products(ctx, distinctProducts(stock, productIDs(sums)...), true)
	if err != nil {
		return Dashboard{}, err
	}
	d.TopProducts = ranked(sums, info)
	figures, low := stockFigures(stockView(stock, info))
	d.LowStockCount = figures.LowStockCount
	d.LowStock = low[:min(len(low), DashboardLowStockRows)]

	if d.Checkouts.Today, err = s.checkoutRate(ctx, today, today); err != nil {
		return Dashboard{}, err
	}
	if d.Checkouts.Last7Days, err = s.checkoutRate(ctx, today.AddDate(0, 0, -6), today); err != nil {
		return Dashboard{}, err
	}

	applied, occurred, err := s.store.lastApplied(ctx)
	if err != nil {
		return Dashboard{}, err
	}
	d.Freshness = Freshness{LastAppliedAt: applied, LastEventAt: occurred}
	if applied != nil {
		age := int64(max(now.Sub(*applied), 0) / time.Second)
		d.Freshness.AgeSeconds = &age
	}
	return d, nil
}

func (s *service) checkoutRate(ctx context.Context, from, to time.Time) (CheckoutRate, error) {
	r := CheckoutRate{From: from.Format(dayLayout), To: to.Format(dayLayout)}
	var err error
	if r.Completed, r.Failed, err = s.store.checkouts(ctx, r.From, r.To); err != nil {
		return CheckoutRate{}, err
	}
	if n := r.Completed + r.Failed; n > 0 {
		rate := float64(r.Completed) / float64(n)
		r.SuccessRate = &rate
	}
	return r, nil
}

func (s *service) Totals(ctx context.Context) (Totals, error) {
	t, err := s.store.totals(ctx)
	if err != nil {
		return Totals{}, err
	}
	t.TimeZone = s.o.Location.String()
	return t, nil
}

func (s *service) Rebuild(ctx context.Context) (RebuildResult, error) {
	before, err := s.Totals(ctx)
	if err != nil {
		return RebuildResult{}, err
	}
	start := time.Now()
	n, err := s.store.rebuild(ctx, s.o.planner())
	if err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild: %w", err)
	}
	took := time.Since(start)
	after, err := s.Totals(ctx)
	if err != nil {
		return RebuildResult{}, err
	}
	s.o.Logger.InfoContext(ctx, "reporting read model rebuilt", "events", n, "ms", took.Milliseconds())
	return RebuildResult{Events: n, Before: before, After: after, DurationMs: took.Milliseconds()}, nil
}
