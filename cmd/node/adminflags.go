package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chimalli/chimalli/ops/config"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// adminFlags are the flags of every command that talks to a local node
// over its admin socket: where the socket is, and how long to wait. The
// node's own flags (--listen, --log-level…) mean nothing here and are not
// offered.
type adminFlags struct {
	socket, configFile string
	timeout            time.Duration
}

func (a *adminFlags) bind(f *pflag.FlagSet) {
	if a.timeout == 0 {
		a.timeout = 10 * time.Second
	}
	f.StringVar(&a.socket, "socket", "", "admin socket path (default: admin.socket, else <data dir>/admin.sock)")
	f.StringVarP(&a.configFile, "config", "c", "", "configuration file that names the socket or data directory")
	f.String(config.FlagDataDir, config.DefaultConfig().Node.DataDir, "the node's data directory, where its socket is unless configured (node.data_dir)")
	f.DurationVar(&a.timeout, "timeout", a.timeout, "how long to wait for the node")
}

// call runs fn with the admin socket path the flags name (--socket, else
// the configuration's) and a context bounded by --timeout.
func (a *adminFlags) call(cmd *cobra.Command, fn func(ctx context.Context, socket string) error) error {
	socket := a.socket
	if socket == "" {
		cfg, err := config.Load(config.LoadOptions{File: a.configFile, Flags: cmd.Flags()})
		if err != nil {
			return err
		}
		socket = cfg.AdminSocket()
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
	defer cancel()
	return fn(ctx, socket)
}

// callThenPrint runs fn as call does and, once it has succeeded, prints
// the line done to cmd's output.
func (a *adminFlags) callThenPrint(cmd *cobra.Command, fn func(ctx context.Context, socket string) error, done string) error {
	return a.call(cmd, func(ctx context.Context, socket string) error {
		if err := fn(ctx, socket); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), done)
		return nil
	})
}

// show fetches a value from the node over its admin socket and prints it
// to cmd's output: as indented JSON when asJSON, else as table writes it.
func show[T any](cmd *cobra.Command, af *adminFlags, asJSON bool,
	fetch func(ctx context.Context, socket string) (T, error), table func(w io.Writer, v T)) error {
	return af.call(cmd, func(ctx context.Context, socket string) error {
		v, err := fetch(ctx, socket)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), v)
		}
		table(cmd.OutOrStdout(), v)
		return nil
	})
}

// newListCmd returns an `ls` command that lists what fetch returns from
// the node, printed by table or, with --json, as JSON. With --consistent
// fetch reads through the leader.
func newListCmd[T any](short string, fetch func(ctx context.Context, socket string, consistent bool) (T, error),
	table func(w io.Writer, v T)) *cobra.Command {
	var (
		af                 adminFlags
		asJSON, consistent bool
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   short,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(cmd, &af, asJSON, func(ctx context.Context, socket string) (T, error) {
				return fetch(ctx, socket, consistent)
			}, table)
		},
	}
	af.bind(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&consistent, "consistent", false, "read through the leader: list every change committed before the call (without it the node lists what it has applied, at most a moment behind)")
	return cmd
}

// newTable returns a writer that aligns the tab-separated cells of the
// lines written to it, for w, once flushed.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// printTable prints one line per item, the cells row returns, under the
// header's, in aligned columns; or the line empty when there are no items.
func printTable[T any](w io.Writer, empty string, header []string, items []T, row func(T) []string) {
	if len(items) == 0 {
		fmt.Fprintln(w, empty)
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, it := range items {
		fmt.Fprintln(tw, strings.Join(row(it), "\t"))
	}
	tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
