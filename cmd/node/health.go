package main

import (
	"context"
	"fmt"
	"time"

	"github.com/chimalli/chimalli/ops"
	"github.com/spf13/cobra"
)

func newHealthCmd() *cobra.Command {
	var (
		socket, configFile string
		timeout            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check that a local node is up and ready",
		Long: `Ask a node on this machine, over its admin socket, whether it is ready.
Exits 0 when it is, 1 otherwise. The socket is taken from --socket, else from the
configuration (--config, CHIMALLI_* variables, defaults: ./chimalli-data/admin.sock).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if socket == "" {
				cfg, err := ops.Load(ops.LoadOptions{File: configFile, Flags: cmd.Flags()})
				if err != nil {
					return err
				}
				socket = cfg.AdminSocket()
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := ops.CheckHealth(ctx, socket); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", "", "admin socket path")
	f.StringVarP(&configFile, "config", "c", "", "configuration file")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for an answer")
	ops.BindFlags(f)
	return cmd
}
