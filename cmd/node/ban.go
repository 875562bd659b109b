package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/chimalli/chimalli/ops/admin"
	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/raftstore"
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

// resolve returns the admin socket path and a context bounded by the timeout.
func (a *adminFlags) resolve(cmd *cobra.Command) (string, context.Context, context.CancelFunc, error) {
	socket := a.socket
	if socket == "" {
		cfg, err := config.Load(config.LoadOptions{File: a.configFile, Flags: cmd.Flags()})
		if err != nil {
			return "", nil, nil, err
		}
		socket = cfg.AdminSocket()
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
	return socket, ctx, cancel, nil
}

func newBanCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ban",
		Short: "List, add and lift the cluster's bans",
		Long: `Manage the bans every node of the cluster enforces, through a node on this machine,
over its admin socket. A banned client's connections are closed at accept, before
any TLS handshake. Any node will do: a follower forwards a change to the leader,
and the command returns once the change is committed. Bans survive restarts.`,
	}
	cmd.AddCommand(newBanListCmd(), newBanAddCmd(), newBanLiftCmd())
	return cmd
}

func newBanListCmd() *cobra.Command {
	var (
		af                 adminFlags
		asJSON, consistent bool
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List active bans",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			socket, ctx, cancel, err := af.resolve(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			bans, err := admin.ListBans(ctx, socket, consistent)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), bans)
			}
			printBans(cmd.OutOrStdout(), bans, time.Now())
			return nil
		},
	}
	af.bind(cmd.Flags())
	bindListFlags(cmd, &asJSON, &consistent)
	return cmd
}

func printBans(w io.Writer, bans []admin.BanEntry, now time.Time) {
	if len(bans) == 0 {
		fmt.Fprintln(w, "no active bans")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tUNTIL\tLEFT\tREASON\tSOURCE\tSTRIKES")
	for _, b := range bans {
		until, left := "permanent", "-" // holds until lifted by hand
		if b.Until != nil {
			until = b.Until.Format(time.RFC3339)
			left = b.Until.Sub(now).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", b.Prefix, until, left, b.Reason, b.Source, b.Strikes)
	}
	tw.Flush()
}

func newBanAddCmd() *cobra.Command {
	var (
		af  adminFlags
		req admin.BanRequest
	)
	cmd := &cobra.Command{
		Use:   "add PREFIX",
		Short: "Ban an address or CIDR prefix",
		Long: `Ban an address (192.0.2.7, 2001:db8::1) or a CIDR prefix (198.51.100.0/24).
With --for DURATION (positive: 90m, 24h) the ban ends by itself; without --for, or
with --for permanent, it holds until lifted with "ban rm". A zero or negative
--for is refused. A prefix wider than /16 (IPv4) or /32 (IPv6) would shut out
every client in it, perhaps you too: it needs --force.`,
		Example: `  chimalli ban add 192.0.2.7 --for 1h
  chimalli ban add 2001:db8:1::/48 --reason scanner
  chimalli ban add 198.51.0.0/16 --for 24h --reason botnet`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Prefix = args[0]
			if err := checkBanRequest(req); err != nil {
				return fmt.Errorf("ban add: %w", err)
			}
			socket, ctx, cancel, err := af.resolve(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			b, err := admin.AddBan(ctx, socket, req)
			if err != nil {
				return err
			}
			printBans(cmd.OutOrStdout(), []admin.BanEntry{b}, time.Now())
			return nil
		},
	}
	af.bind(cmd.Flags())
	cmd.Flags().StringVar(&req.Duration, "for", "", `length of the ban, a positive duration such as 90m or 24h, or "permanent" (default: until lifted)`)
	cmd.Flags().StringVar(&req.Reason, "reason", "operator", fmt.Sprintf("why, a token of [a-z0-9_.-], at most %d bytes", raftstore.MaxReasonLen))
	cmd.Flags().BoolVar(&req.Force, "force", false, "ban a prefix wider than /16 (IPv4) or /32 (IPv6)")
	return cmd
}

// checkBanRequest applies the node's rule to req before it is sent, so that
// a mistake is reported in the command line's terms, and without a node.
// The node applies the same rule and remains the authority.
func checkBanRequest(req admin.BanRequest) error {
	c, err := req.Command()
	if err != nil {
		return err
	}
	err = c.Validate()
	if errors.Is(err, raftstore.ErrBroadPrefix) {
		return fmt.Errorf("%w (pass --force to ban it anyway)", err)
	}
	return err
}

func newBanLiftCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:     "rm PREFIX",
		Aliases: []string{"lift"},
		Short:   "Lift a ban",
		Long: `Lift the active ban of PREFIX (as listed by "ban ls"). The node also forgets the
rate-limit state of every client inside it, so they start afresh rather than
being banned again at their next connection; their strikes are kept, so a
further auto-ban within a day is the longer, escalated one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			socket, ctx, cancel, err := af.resolve(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			if err := admin.LiftBan(ctx, socket, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lifted %s\n", args[0])
			return nil
		},
	}
	af.bind(cmd.Flags())
	return cmd
}
