package main

import (
	"context"
	"time"

	"github.com/chimalli/chimalli/ops/admin"
	"github.com/spf13/cobra"
)

func newHealthCmd() *cobra.Command {
	af := adminFlags{timeout: 5 * time.Second}
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check that a local node is up and ready",
		Long: `Ask a node on this machine, over its admin socket, whether it is ready.
Exits 0 when it is, 1 otherwise with the reason. Ready: the node knows its Raft
leader (a follower heard from it lately) and has applied what it knows to be
committed; the ops listener's /readyz (metrics.listen) applies the same rule (see
docs/operations.md, "Metrics and health"). The socket is taken from --socket, else from the
configuration (--config, CHIMALLI_* variables, defaults: ./chimalli-data/admin.sock).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return af.callThenPrint(cmd, func(ctx context.Context, socket string) error {
				return admin.CheckHealth(ctx, socket)
			}, "ok")
		},
	}
	af.bind(cmd.Flags())
	return cmd
}
