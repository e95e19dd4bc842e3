package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/retailco/pos/internal/audit"
	"github.com/retailco/pos/internal/cart"
	"github.com/retailco/pos/internal/claims"
	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/integration"
	"github.com/retailco/pos/internal/inventory"
	"github.com/retailco/pos/internal/notification"
	"github.com/retailco/pos/internal/order"
	"github.com/retailco/pos/internal/payment"
	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/config"
	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/outbox"
	"github.com/retailco/pos/internal/platform/redisx"
	"github.com/retailco/pos/internal/product"
	"github.com/retailco/pos/internal/reporting"
	"github.com/retailco/pos/internal/saga"
	"github.com/retailco/pos/internal/sales"
)

// This file is the only place that knows which contexts run in this
// process and hands each its dependencies: the local Service when the
// dependency is hosted here, its HTTP Client otherwise. Contexts are built
// in dependency order, so a context's dependencies exist before it does.

// allContexts lists every context, dependencies before dependents.
var allContexts = []string{product.Name, inventory.Name, customer.Name, payment.Name, cart.Name, order.Name, saga.Name,
	sales.Name, reporting.Name, claims.Name, notification.Name, audit.Name, integration.Name}

// wiring holds one process's contexts and what they own.
type wiring struct {
	cfg     config.Config
	log     *slog.Logger
	hosted  map[string]bool
	migrate bool
	reg     *prometheus.Registry
	tokens  *auth.Tokens

	bus events.Bus

	closers []func() error
	checks  []readiness
	workers []func(context.Context)
	routes  []func(s *httpx.Server)
	// deps are the remote contexts this process calls, for /health.
	deps map[string]*httpx.Client

	product   product.Service
	inventory inventory.Service
	customer  customer.Service
	payment   payment.Service
	cart      cart.Service
	sales     sales.Service
	order     order.Service
	claims    claims.Service
	reporting reporting.Service
	// claimStore is the claims event store, for `pos claims rebuild`.
	claimStore claims.EventStore
	claimsDB   *gorm.DB
}

type readiness struct {
	context, name string
	fn            func(context.Context) error
}

// mountRoutes registers every context's operations on api without any
// service behind them: the route table (OpenAPI document, gateway config)
// is derived from it, so the gateway can never miss a route.
func mountRoutes(api huma.API) {
	product.Routes(api, nil)
	inventory.Routes(api, nil)
	customer.Routes(api, nil)
	payment.Routes(api, nil)
	cart.Routes(api, nil)
	order.Routes(api, nil)
	saga.Routes(api, nil)
	sales.Routes(api, nil)
	reporting.Routes(api, nil)
	claims.Routes(api, nil)
	notification.Routes(api, nil)
	integration.Routes(api, nil)
	audit.Routes(api, nil)
}

// parseOnly turns --only into a set of known contexts; empty means all.
func parseOnly(only string) ([]string, error) {
	if strings.TrimSpace(only) == "" {
		return allContexts, nil
	}
	var out []string
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(strings.ToLower(name))
		if !slices.Contains(allContexts, name) {
			return nil, fmt.Errorf("unknown context %q (known: %s)", name, strings.Join(allContexts, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// newWiring opens the databases of the hosted contexts (migrating them
// unless told not to) and builds every hosted context.
func newWiring(ctx context.Context, cfg config.Config, log *slog.Logger, hosted []string, migrate bool) (w *wiring, err error) {
	built := &wiring{cfg: cfg, log: log, hosted: map[string]bool{}, migrate: migrate, reg: prometheus.NewRegistry()}
	for _, h := range hosted {
		built.hosted[h] = true
	}
	// What was opened is closed on failure: built, not w, which every
	// failing return sets to nil.
	defer func() {
		if err != nil {
			built.Close()
		}
	}()
	w = built
	secret, err := auth.LoadSecret(cfg.JWTSecret, cfg.JWTSecretFile, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if w.tokens, err = auth.NewTokens(secret, cfg.TokenTTL); err != nil {
		return nil, err
	}

	if w.hosted[product.Name] {
		gdb, err := w.open(ctx, product.Name, product.Migrations)
		if err != nil {
			return nil, err
		}
		w.product = product.New(gdb)
		svc := w.product
		w.routes = append(w.routes, func(s *httpx.Server) { product.Routes(s.API, svc) })
	}
	if w.hosted[inventory.Name] {
		gdb, err := w.open(ctx, inventory.Name, inventory.Migrations)
		if err != nil {
			return nil, err
		}
		catalog, err := w.productService()
		if err != nil {
			return nil, err
		}
		w.inventory = inventory.New(gdb, catalog)
		if err := w.relay(ctx, inventory.Name, gdb); err != nil {
			return nil, err
		}
		svc := w.inventory
		w.routes = append(w.routes, func(s *httpx.Server) { inventory.Routes(s.API, svc) })
		w.workers = append(w.workers, func(ctx context.Context) { inventory.RunExpiry(ctx, svc, 30*time.Second, log) })
	}
	if w.hosted[customer.Name] {
		gdb, err := w.open(ctx, customer.Name, customer.Migrations)
		if err != nil {
			return nil, err
		}
		w.customer = customer.New(gdb, w.tokens, customer.Options{BcryptCost: cfg.BcryptCost})
		svc := w.customer
		w.routes = append(w.routes, func(s *httpx.Server) { customer.Routes(s.API, svc) })
	}
	if w.hosted[payment.Name] {
		gdb, err := w.open(ctx, payment.Name, payment.Migrations)
		if err != nil {
			return nil, err
		}
		w.payment = payment.New(gdb, payment.NewSimulator(payment.SimulatorOptions{Latency: cfg.PaymentLatency}), payment.Options{Registerer: w.reg})
		svc := w.payment
		w.routes = append(w.routes, func(s *httpx.Server) { payment.Routes(s.API, svc) })
	}
	if w.hosted[cart.Name] {
		store, err := w.cartStore(ctx)
		if err != nil {
			return nil, err
		}
		catalog, err := w.productService()
		if err != nil {
			return nil, err
		}
		w.cart = cart.New(store, catalog, cart.Options{Registerer: w.reg})
		svc := w.cart
		w.routes = append(w.routes, func(s *httpx.Server) { cart.Routes(s.API, svc) })
	}
	if w.hosted[order.Name] {
		gdb, err := w.open(ctx, order.Name, order.Migrations)
		if err != nil {
			return nil, err
		}
		if err := w.relay(ctx, order.Name, gdb); err != nil {
			return nil, err
		}
		w.order = order.New(gdb)
		svc := w.order
		w.routes = append(w.routes, func(s *httpx.Server) { order.Routes(s.API, svc) })
	}
	if w.hosted[saga.Name] {
		gdb, err := w.open(ctx, saga.Name, saga.Migrations)
		if err != nil {
			return nil, err
		}
		deps, err := w.sagaDeps()
		if err != nil {
			return nil, err
		}
		if err := w.relay(ctx, saga.Name, gdb); err != nil {
			return nil, err
		}
		// The lease owner is the instance id, stable across restarts: a
		// restarted process takes its own interrupted sagas back at once
		// instead of waiting for their leases to run out. It must be unique
		// among live processes sharing the saga database (POS_INSTANCE_ID;
		// the container's host name by default).
		orc := saga.New(gdb, deps, saga.Options{Registerer: w.reg, Logger: log, Owner: cfg.InstanceID,
			Failpoint: killAt(cfg.FaultKillAt, log)})
		// Closers run newest first: the drivers stop before the database closes.
		w.closers = append(w.closers, func() error { orc.Close(); return nil })
		w.routes = append(w.routes, func(s *httpx.Server) { saga.Routes(s.API, orc) })
		w.workers = append(w.workers, func(ctx context.Context) { saga.RunResume(ctx, orc, 30*time.Second, log) })
	}
	if w.hosted[sales.Name] {
		gdb, err := w.open(ctx, sales.Name, sales.Migrations)
		if err != nil {
			return nil, err
		}
		catalog, err := w.productService()
		if err != nil {
			return nil, err
		}
		stock, err := w.inventoryService()
		if err != nil {
			return nil, err
		}
		if err := w.relay(ctx, sales.Name, gdb); err != nil {
			return nil, err
		}
		svc := sales.New(gdb, catalog, stock, sales.Options{Registerer: w.reg, Logger: log})
		w.sales = svc
		w.routes = append(w.routes, func(s *httpx.Server) { sales.Routes(s.API, svc) })
		w.workers = append(w.workers, func(ctx context.Context) { sales.RunRecovery(ctx, svc, 30*time.Second, log) })
	}
	if w.hosted[reporting.Name] {
		gdb, err := w.open(ctx, reporting.Name, reporting.Migrations)
		if err != nil {
			return nil, err
		}
		zone, err := reporting.TimeZone(cfg.ReportingTimeZone)
		if err != nil {
			return nil, err
		}
		// Names, prices and thresholds come from the catalog at query
		// time. Without one (--only=reporting with neither POS_PRODUCT_URL
		// nor POS_GATEWAY_URL) the sales report, totals and rebuild still
		// work; the inventory report and the dashboard answer 503.
		var catalog reporting.Catalog
		if w.hosted[product.Name] || cfg.ContextURL(product.Name) != "" {
			if catalog, err = w.productService(); err != nil {
				return nil, err
			}
		} else {
			log.Warn("reporting runs without a catalog: the inventory report and the dashboard answer 503",
				"hint", "host product here or set POS_PRODUCT_URL or POS_GATEWAY_URL")
		}
		opts := reporting.Options{Location: zone, Logger: log, Registerer: w.reg}
		consumer := reporting.NewConsumer(gdb, opts)
		if err := w.consume(ctx, reporting.Group, reporting.Streams, consumer.Handle, events.WithBatch(consumer.HandleBatch)); err != nil {
			return nil, err
		}
		svc := reporting.New(gdb, catalog, opts)
		w.reporting = svc
		w.routes = append(w.routes, func(s *httpx.Server) { reporting.Routes(s.API, svc) })
	}
	if w.hosted[claims.Name] {
		if err := w.wireClaims(ctx); err != nil {
			return nil, err
		}
	}
	if w.hosted[notification.Name] {
		gdb, err := w.open(ctx, notification.Name, notification.Migrations)
		if err != nil {
			return nil, err
		}
		customers, err := w.customerService()
		if err != nil {
			return nil, err
		}
		sender, err := notification.NewSender(cfg.SMTPURL, log, w.reg)
		if err != nil {
			return nil, err
		}
		consumer := notification.NewConsumer(gdb, customers, sender, notification.Options{Logger: log, Registerer: w.reg})
		if err := w.consume(ctx, notification.Group, notification.Streams, consumer.Handle, events.WithBatch(consumer.HandleBatch)); err != nil {
			return nil, err
		}
		svc := notification.New(gdb)
		w.routes = append(w.routes, func(s *httpx.Server) { notification.Routes(s.API, svc) })
	}
	if w.hosted[audit.Name] {
		gdb, err := w.open(ctx, audit.Name, audit.Migrations)
		if err != nil {
			return nil, err
		}
		consumer := audit.NewConsumer(gdb, audit.Options{Logger: log, Registerer: w.reg})
		if err := w.consume(ctx, audit.Group, audit.Streams, consumer.Handle, events.WithBatch(consumer.HandleBatch)); err != nil {
			return nil, err
		}
		svc := audit.New(gdb, audit.Options{})
		w.routes = append(w.routes, func(s *httpx.Server) { audit.Routes(s.API, svc) })
	}
	if w.hosted[integration.Name] {
		if err := w.wireIntegration(ctx); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// wireClaims builds the claims context: its event store (MongoDB when
// configured, else tables in its own SQL database), the relay that tails
// the store onto the bus, and the projector that keeps the read model.
func (w *wiring) wireClaims(ctx context.Context) error {
	gdb, err := w.open(ctx, claims.Name, claims.Migrations)
	if err != nil {
		return err
	}
	if w.migrate {
		if err := claims.Migrate(ctx, gdb, w.cfg.MongoURL == ""); err != nil {
			return err
		}
	}
	var store claims.EventStore = claims.NewSQLEventStore(gdb)
	if w.cfg.MongoURL != "" {
		ms, err := claims.OpenMongoEventStore(ctx, w.cfg.MongoURL, "pos_claims", claims.MongoOptions{})
		if err != nil {
			return err
		}
		w.closers = append(w.closers, func() error { return ms.Close(context.Background()) })
		w.checks = append(w.checks, readiness{claims.Name, "mongodb", ms.Ping})
		store = ms
	}
	w.claims = claims.New(store, gdb, claims.Options{Registerer: w.reg})
	w.claimStore, w.claimsDB = store, gdb
	svc := w.claims
	w.routes = append(w.routes, func(s *httpx.Server) { claims.Routes(s.API, svc) })
	bus, err := w.eventBus(ctx)
	if err != nil {
		return err
	}
	relay, err := claims.NewRelay(store, bus, claims.RelayOptions{Logger: w.log})
	if err != nil {
		return err
	}
	w.workers = append(w.workers, func(ctx context.Context) {
		if err := relay.Run(ctx); err != nil && ctx.Err() == nil {
			w.log.Error("claims relay stopped", "err", err)
		}
	})
	return w.consume(ctx, claims.ProjectionGroup, claims.Streams, claims.NewProjector(gdb).Handle)
}

// wireIntegration builds the bridge from orders to claims: its own
// database (the pending enrichments), claims, order and customer local
// when hosted here and HTTP Clients otherwise, and its two loops: the
// monitor that keeps the mode current and the enrichment that completes
// what degraded mode left pending.
func (w *wiring) wireIntegration(ctx context.Context) error {
	gdb, err := w.open(ctx, integration.Name, integration.Migrations)
	if err != nil {
		return err
	}
	var cl integration.Claims
	if w.claims != nil {
		cl = w.claims
	} else {
		c, err := w.client(claims.Name)
		if err != nil {
			return err
		}
		cl = claims.NewClient(c)
	}
	if w.order == nil {
		c, err := w.client(order.Name)
		if err != nil {
			return err
		}
		w.order = order.NewClient(c)
	}
	customers, err := w.customerService()
	if err != nil {
		return err
	}
	svc := integration.New(gdb, integration.Deps{Claims: cl, Orders: w.order, Customers: customers},
		integration.Options{Registerer: w.reg, Logger: w.log})
	w.routes = append(w.routes, func(s *httpx.Server) { integration.Routes(s.API, svc) })
	w.workers = append(w.workers,
		func(ctx context.Context) { integration.RunMonitor(ctx, svc, 5*time.Second, w.log) },
		func(ctx context.Context) { integration.RunEnrichment(ctx, svc, 30*time.Second, w.log) })
	return nil
}

// consume subscribes a consuming context to its streams while the process
// serves; the subscription hands unfinished messages back on shutdown.
func (w *wiring) consume(ctx context.Context, group string, streams []string, h events.Handler, opts ...events.SubscribeOption) error {
	bus, err := w.eventBus(ctx)
	if err != nil {
		return err
	}
	w.workers = append(w.workers, func(ctx context.Context) {
		sub, err := bus.Subscribe(ctx, group, streams, h, opts...)
		if err != nil {
			w.log.Error("subscribe", "group", group, "err", err)
			return
		}
		<-ctx.Done()
		if err := sub.Close(); err != nil {
			w.log.Warn("unsubscribe", "group", group, "err", err)
		}
	})
	return nil
}

// cartStore is Redis when configured (the fleet's three cart instances
// share it), else a table in the cart's own database whose expired carts
// a background loop purges.
func (w *wiring) cartStore(ctx context.Context) (cart.Store, error) {
	if w.cfg.RedisURL != "" {
		rdb, err := redisx.Open(ctx, w.cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		w.closers = append(w.closers, rdb.Close)
		w.checks = append(w.checks, readiness{cart.Name, "redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() }})
		return cart.NewRedisStore(rdb, w.cfg.RedisPrefix), nil
	}
	gdb, err := w.open(ctx, cart.Name, cart.Migrations)
	if err != nil {
		return nil, err
	}
	store := cart.NewSQLStore(gdb)
	w.workers = append(w.workers, func(ctx context.Context) {
		t := time.NewTicker(5 * time.Minute)
		defer t.Stop()
		for {
			if n, err := cart.PurgeExpired(ctx, store, time.Now(), 500); err != nil && ctx.Err() == nil {
				w.log.Warn("purge expired carts", "err", err)
			} else if n > 0 {
				w.log.Info("purged expired carts", "count", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return store, nil
}

// eventBus is the process's bus, made on first use: Redis Streams when
// configured, else the SQL log in its own database ("bus": a SQLite file
// under the data dir, or a schema on PostgreSQL).
func (w *wiring) eventBus(ctx context.Context) (events.Bus, error) {
	if w.bus != nil {
		return w.bus, nil
	}
	opts := events.Options{Registry: w.reg, Logger: w.log, Consumer: w.cfg.InstanceID + "-" + strconv.Itoa(os.Getpid()), Prefix: w.cfg.RedisPrefix}
	var err error
	if url := w.cfg.EventsRedisURL; url != "" {
		w.bus, err = events.NewRedisBus(ctx, url, opts)
	} else {
		w.bus, err = events.OpenSQLBus(ctx, db.Options{Context: "bus", URL: w.cfg.DatabaseURLFor("bus"), DataDir: w.cfg.DataDir,
			SchemaPrefix: w.cfg.DatabaseSchemaPrefix}, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("event bus: %w", err)
	}
	bus := w.bus
	w.closers = append(w.closers, bus.Close)
	return bus, nil
}

// relay publishes a producing context's outbox to the bus, in the
// background, for as long as the process serves.
func (w *wiring) relay(ctx context.Context, name string, gdb *gorm.DB) error {
	bus, err := w.eventBus(ctx)
	if err != nil {
		return err
	}
	r, err := outbox.NewRelay(gdb, bus, outbox.RelayOptions{Name: name, Registry: w.reg, Logger: w.log})
	if err != nil {
		return err
	}
	w.workers = append(w.workers, func(ctx context.Context) {
		if err := r.Run(ctx); err != nil && ctx.Err() == nil {
			w.log.Error("outbox relay stopped", "context", name, "err", err)
		}
	})
	return nil
}

// open opens and migrates one hosted context's own database.
func (w *wiring) open(ctx context.Context, name string, migrations fs.FS) (*gorm.DB, error) {
	gdb, err := db.Open(ctx, db.Options{Context: name, URL: w.cfg.DatabaseURLFor(name), DataDir: w.cfg.DataDir,
		SchemaPrefix: w.cfg.DatabaseSchemaPrefix, MaxOpenConns: w.cfg.DBMaxConns})
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, func() error { return db.Close(gdb) })
	if w.migrate {
		start := time.Now()
		if err := db.Migrate(ctx, gdb, migrations); err != nil {
			return nil, err
		}
		w.log.Debug("migrated", "context", name, "ms", time.Since(start).Milliseconds())
	}
	w.checks = append(w.checks, readiness{name, "database", func(ctx context.Context) error { return db.Ping(ctx, gdb) }})
	return gdb, nil
}

// client reaches a context this process does not host.
func (w *wiring) client(name string) (*httpx.Client, error) {
	base := w.cfg.ContextURL(name)
	if base == "" {
		return nil, fmt.Errorf("context %s is not hosted here: set POS_%s_URL or POS_GATEWAY_URL", name, strings.ToUpper(name))
	}
	c := httpx.NewClient(httpx.ClientConfig{Context: name, BaseURL: base, ServiceKey: w.cfg.ServiceKey})
	if w.deps == nil {
		w.deps = map[string]*httpx.Client{}
	}
	w.deps[name] = c
	return c, nil
}

// productService is the catalog, local or remote.
func (w *wiring) productService() (product.Service, error) {
	if w.product == nil {
		c, err := w.client(product.Name)
		if err != nil {
			return nil, err
		}
		w.product = product.NewClient(c)
	}
	return w.product, nil
}

// inventoryService is the stock picture, local or remote.
func (w *wiring) inventoryService() (inventory.Service, error) {
	if w.inventory == nil {
		c, err := w.client(inventory.Name)
		if err != nil {
			return nil, err
		}
		w.inventory = inventory.NewClient(c)
	}
	return w.inventory, nil
}

// killAt is fault injection for the crash tests of the binary:
// POS_FAULT_KILL_AT=<step>:<point> (e.g. charge_payment:after_call) makes
// the process SIGKILL itself the first time a checkout reaches that point,
// so a test can kill it inside each step deterministically instead of
// hoping a random kill lands there. Unset, there is no hook at all.
func killAt(spec string, log *slog.Logger) func(sagaID, step string, at saga.Point) bool {
	step, point, ok := strings.Cut(spec, ":")
	if !ok {
		return nil
	}
	var once sync.Once
	return func(sagaID, s string, at saga.Point) bool {
		if s == step && string(at) == point {
			once.Do(func() {
				log.Warn("fault injection: killing the process", "saga", sagaID, "step", s, "at", at)
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way; never return to the saga
			})
		}
		return false
	}
}

// sagaDeps are the contexts a checkout drives, local or remote.
func (w *wiring) sagaDeps() (saga.Deps, error) {
	inv, err := w.inventoryService()
	if err != nil {
		return saga.Deps{}, err
	}
	if w.payment == nil {
		c, err := w.client(payment.Name)
		if err != nil {
			return saga.Deps{}, err
		}
		w.payment = payment.NewClient(c)
	}
	if w.order == nil {
		c, err := w.client(order.Name)
		if err != nil {
			return saga.Deps{}, err
		}
		w.order = order.NewClient(c)
	}
	if w.cart == nil {
		c, err := w.client(cart.Name)
		if err != nil {
			return saga.Deps{}, err
		}
		w.cart = cart.NewClient(c)
	}
	return saga.Deps{Inventory: inv, Payments: w.payment, Orders: w.order, Carts: w.cart}, nil
}

// customerService is the customer context, local or remote.
func (w *wiring) customerService() (customer.Service, error) {
	if w.customer == nil {
		c, err := w.client(customer.Name)
		if err != nil {
			return nil, err
		}
		w.customer = customer.NewClient(c)
	}
	return w.customer, nil
}

// keyStore is what authenticates X-API-Key on this process: the fleet's
// service key (so calls between contexts never depend on the customer
// context), then the keys the customer context owns — directly when it is
// hosted here, else over HTTP with a short cache.
func (w *wiring) keyStore() auth.KeyStore {
	var chain auth.Chain
	if w.cfg.ServiceKey != "" {
		chain = append(chain, auth.StaticKey{Key: w.cfg.ServiceKey, Principal: auth.Principal{Role: auth.RoleService, Subject: "service", Name: "fleet service key"}})
	}
	if w.hosted[customer.Name] {
		return append(chain, w.customer)
	}
	if svc, err := w.customerService(); err == nil {
		return append(chain, auth.NewCached(svc, 30*time.Second))
	}
	w.log.Warn("customer context unreachable: only the service key authenticates here")
	return chain
}

// server builds the HTTP server and mounts every hosted context on it.
func (w *wiring) server() *httpx.Server {
	s := httpx.NewServer(httpx.ServerConfig{
		Title: "pos", Version: version, InstanceID: w.cfg.InstanceID, Logger: w.log, Registry: w.reg,
		Keys: w.keyStore(), Tokens: w.tokens, RateLimit: w.cfg.RateLimit, RateBurst: w.cfg.RateBurst,
		TrustProxy: w.cfg.TrustProxy, AccessLog: w.cfg.AccessLog, Pprof: w.cfg.Pprof,
	})
	for _, r := range w.routes {
		r(s)
	}
	for _, c := range w.checks {
		s.AddCheck(c.context, c.name, c.fn)
	}
	for name, c := range w.deps {
		s.AddDependency(name, c.Live)
	}
	return s
}

// Close releases every database, newest first.
func (w *wiring) Close() {
	var errsList []error
	for i := len(w.closers) - 1; i >= 0; i-- {
		errsList = append(errsList, w.closers[i]())
	}
	if err := errors.Join(errsList...); err != nil {
		w.log.Warn("close", "err", err)
	}
}
