package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/retailco/pos/internal/customer"
	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/page"
)

// newAPIKeyCmd manages staff API keys straight in the customer context's
// database (the first admin key cannot come from an API that needs one).
func newAPIKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Create, list and revoke staff API keys"}

	var role, name, location string
	create := &cobra.Command{
		Use:   "create --role R --name N",
		Short: "Create a key and print it once (only its hash is kept)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, done, err := g.customerDB(cmd)
			if err != nil {
				return err
			}
			defer done()
			k, err := svc.CreateAPIKey(cmd.Context(), customer.NewAPIKey{Name: name, Role: auth.Role(role), LocationID: location})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "%s\n", k.Key)
			fmt.Fprintf(g.stderr, "created key %s (%s, role %s); it is shown only this once\n", k.ID, k.Name, k.Role)
			return err
		},
	}
	create.Flags().StringVar(&role, "role", "", "admin, manager, cashier, agent or service")
	create.Flags().StringVar(&name, "name", "", "who or what holds the key")
	create.Flags().StringVar(&location, "location", "", "store the key is tied to (cashiers, managers)")
	_ = create.MarkFlagRequired("role")
	_ = create.MarkFlagRequired("name")

	list := &cobra.Command{
		Use:   "list",
		Short: "List keys (never the keys themselves)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, done, err := g.customerDB(cmd)
			if err != nil {
				return err
			}
			defer done()
			tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tLOCATION\tCREATED\tREVOKED")
			for p := 1; ; p++ {
				res, err := svc.ListAPIKeys(cmd.Context(), page.Request{Page: p, PerPage: page.MaxPerPage})
				if err != nil {
					return err
				}
				for _, k := range res.Items {
					revoked := ""
					if k.RevokedAt != nil {
						revoked = k.RevokedAt.Format("2006-01-02 15:04")
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.LocationID, k.CreatedAt.Format("2006-01-02 15:04"), revoked)
				}
				if int64(p*page.MaxPerPage) >= res.Total {
					break
				}
			}
			return tw.Flush()
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, done, err := g.customerDB(cmd)
			if err != nil {
				return err
			}
			defer done()
			return svc.RevokeAPIKey(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// customerDB opens the customer context on its own database, migrated.
func (g *globals) customerDB(cmd *cobra.Command) (customer.Service, func(), error) {
	cfg, err := g.config()
	if err != nil {
		return nil, nil, err
	}
	w, err := newWiring(cmd.Context(), cfg, g.logger(cfg), []string{customer.Name}, true)
	if err != nil {
		return nil, nil, err
	}
	return w.customer, w.Close, nil
}
