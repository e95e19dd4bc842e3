package main

import (
	"log/slog"
	"sort"

	"github.com/danielgtaylor/huma/v2"
	"github.com/spf13/cobra"

	"github.com/retailco/pos/internal/platform/gateway"
	"github.com/retailco/pos/internal/platform/httpx"
)

// newGatewayCmd is `pos gateway`: configuration for the fleet's API
// gateway, derived from the same route table the binary serves, so the
// gateway cannot miss a route or send it to the wrong context.
func newGatewayCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Print the API gateway configuration derived from the route table",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "kong",
		Short: "Print Kong's declarative configuration (deploy/kong/kong.yml)",
		Long: `Print Kong's declarative configuration for the fleet of deploy/compose.yaml:
one service per context, the cart balanced over cart-1..3 with health checks,
one anchored route per path template, key-auth on the machine-only routes and
the global plugins. Regenerate the committed file after changing any route:

  go run ./cmd/pos gateway kong > deploy/kong/kong.yml`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			out, err := kongYAML()
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(out)
			return err
		},
	})
	return cmd
}

// kongYAML is the content of deploy/kong/kong.yml.
func kongYAML() ([]byte, error) {
	cfg, err := gateway.Generate(routeTable(), gateway.DefaultOptions())
	if err != nil {
		return nil, err
	}
	return cfg.YAML()
}

// routeTable lists every operation mountRoutes registers, read back from
// the OpenAPI document with the owning context and access rule that
// httpx.Register stores in each operation's metadata.
func routeTable() []gateway.Route {
	s := httpx.NewServer(httpx.ServerConfig{Logger: slog.New(slog.DiscardHandler)})
	mountRoutes(s.API)
	var out []gateway.Route
	for path, item := range s.API.OpenAPI().Paths {
		for _, op := range []*huma.Operation{item.Get, item.Head, item.Post, item.Put, item.Patch, item.Delete, item.Options, item.Trace} {
			if op == nil {
				continue
			}
			ctxName, _ := op.Metadata[httpx.MetaContext].(string)
			access, _ := op.Metadata[httpx.MetaAccess].(string)
			out = append(out, gateway.Route{Method: op.Method, Path: path, Context: ctxName, Access: access})
		}
	}
	// Map order is random; the generator sorts too, but a stable input
	// makes its errors reproducible.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}
