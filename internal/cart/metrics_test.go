package cart

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/retailco/pos/internal/platform/testkit"
)

// TestMetrics: the business counters count what happened, once, and two
// services on one registry share them instead of panicking.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	catalog := newCatalog(t)
	p := addProduct(t, catalog, "M-1", 100)
	st := NewSQLStore(testkit.OpenDB(t, testkit.SQLite, Name, Migrations))
	one := New(st, catalog, Options{Registerer: reg})
	two := New(st, catalog, Options{Registerer: reg})

	sid := session()
	_, err := one.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 1})
	must(t, err)
	_, err = two.AddItem(ctx, sid, NewItem{ProductID: p.ID, Quantity: 2})
	must(t, err)
	_, err = one.AddItem(ctx, session(), NewItem{ProductID: "prd_nope", Quantity: 1})
	if err == nil {
		t.Fatal("unknown product added")
	}
	_, _ = one.Get(ctx, session())

	want := map[string]float64{
		"carts_created_total":                                1,
		"cart_items_added_total":                             2,
		"cart_operations_total{op=add_item,outcome=ok}":      2,
		"cart_operations_total{op=add_item,outcome=invalid}": 1,
		"cart_operations_total{op=get,outcome=not_found}":    1,
	}
	got := gather(t, reg)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// gather flattens a registry into "name{label=value,…}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if len(m.GetLabel()) > 0 {
				key += "{"
				for i, l := range m.GetLabel() {
					if i > 0 {
						key += ","
					}
					key += l.GetName() + "=" + l.GetValue()
				}
				key += "}"
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}
