package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/retailco/pos/internal/claims"
)

// newClaimsCmd holds operator commands of the claims context.
func newClaimsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "claims", Short: "Operate the claims context (event store and read model)"}
	var check bool
	rebuild := &cobra.Command{
		Use:   "rebuild [--check]",
		Short: "Rebuild the claims read model from the event store (or, with --check, compare them)",
		Long: `Rebuild recomputes every claim of the read model from the event store into a
staging table and swaps it in; the live projector may keep running. With
--check nothing is written: the read model is compared with a replay of the
store and any difference fails the command.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			w, err := newWiring(cmd.Context(), cfg, g.logger(cfg), []string{claims.Name}, true)
			if err != nil {
				return err
			}
			defer w.Close()
			if check {
				diffs, err := claims.Compare(cmd.Context(), w.claimStore, w.claimsDB)
				if err != nil {
					return err
				}
				for _, d := range diffs {
					fmt.Fprintf(g.stdout, "%+v\n", d)
				}
				if len(diffs) > 0 {
					return errors.New("the read model differs from the event store: run `pos claims rebuild`")
				}
				_, err = fmt.Fprintln(g.stdout, "read model equals the event store")
				return err
			}
			rep, err := claims.Rebuild(cmd.Context(), w.claimStore, w.claimsDB)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "rebuilt %d claims from %d events in %s (caught up %d)\n", rep.Claims, rep.Events, rep.Took, rep.CaughtUp)
			return err
		},
	}
	rebuild.Flags().BoolVar(&check, "check", false, "compare only; fail when they differ")
	cmd.AddCommand(rebuild)
	return cmd
}
