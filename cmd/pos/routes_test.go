package main

import (
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/config"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestMountRoutesCoversServedRoutes: the route table the gateway config
// comes from has exactly the operations a fully wired monolith serves,
// each with its context and access rule.
func TestMountRoutesCoversServedRoutes(t *testing.T) {
	t.Parallel()
	table := httpx.NewServer(httpx.ServerConfig{Logger: testkit.Logger()})
	mountRoutes(table.API)

	cfg, err := config.Load(func(k string) string {
		if k == "POS_DATA_DIR" {
			return t.TempDir()
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	w, err := newWiring(t.Context(), cfg, testkit.Logger(), allContexts, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	want, got := operations(w.server().API), operations(table.API)
	for key, meta := range want {
		if got[key] != meta {
			t.Errorf("%s: served as %q, route table says %q", key, meta, got[key])
		}
	}
	if len(got) != len(want) || len(want) == 0 {
		t.Errorf("route table has %d operations, the monolith serves %d", len(got), len(want))
	}
}

// operations maps "METHOD path" to "context access".
func operations(api huma.API) map[string]string {
	out := map[string]string{}
	for path, item := range api.OpenAPI().Paths {
		for method, op := range map[string]*huma.Operation{"GET": item.Get, "POST": item.Post, "PUT": item.Put, "DELETE": item.Delete, "PATCH": item.Patch} {
			if op == nil {
				continue
			}
			out[method+" "+path] = op.Metadata[httpx.MetaContext].(string) + " " + op.Metadata[httpx.MetaAccess].(string)
		}
	}
	return out
}
