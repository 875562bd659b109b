package main

import (
	"errors"

	"github.com/chimalli/chimalli/ops/bench"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	var o bench.Options
	cmd := &cobra.Command{
		Use:   "bench [flags] URL...",
		Short: "Load-test a Gemini server",
		Long: `Send Gemini requests at a server and report throughput, latency percentiles,
statuses and errors. Closed loop by default (as fast as the server answers);
--rate gives an open loop at a fixed request rate. Targets must be on loopback
unless --allow-remote is given.`,
		Example: `  chimalli bench -c 32 -d 10s gemini://localhost/
  chimalli bench --rate 500 -d 30s --json gemini://127.0.0.1:1965/file.gmi`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.URLs = append(o.URLs, args...)
			return runBench(cmd, o)
		},
	}
	bench.BindFlags(cmd.Flags(), &o)
	return cmd
}

func runBench(cmd *cobra.Command, o bench.Options) error {
	rep, err := bench.Run(cmd.Context(), o, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if o.JSON {
		err = rep.WriteJSON(cmd.OutOrStdout())
	} else {
		err = rep.WriteText(cmd.OutOrStdout())
	}
	if err != nil {
		return err
	}
	if rep.Interrupted {
		return &exitError{code: 130, err: errors.New("interrupted")}
	}
	return nil
}
