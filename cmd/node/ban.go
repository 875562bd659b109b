package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/chimalli/chimalli/ops/admin"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/spf13/cobra"
)

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
	return newListCmd("List active bans", admin.ListBans,
		func(w io.Writer, bans []admin.BanEntry) { printBans(w, bans, time.Now()) })
}

func printBans(w io.Writer, bans []admin.BanEntry, now time.Time) {
	header := []string{"PREFIX", "UNTIL", "LEFT", "REASON", "SOURCE", "STRIKES"}
	printTable(w, "no active bans", header, bans, func(b admin.BanEntry) []string {
		until, left := "permanent", "-" // holds until lifted by hand
		if b.Until != nil {
			until = b.Until.Format(time.RFC3339)
			left = b.Until.Sub(now).Round(time.Second).String()
		}
		return []string{b.Prefix, until, left, b.Reason, b.Source, strconv.Itoa(b.Strikes)}
	})
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
			return af.call(cmd, func(ctx context.Context, socket string) error {
				b, err := admin.AddBan(ctx, socket, req)
				if err != nil {
					return err
				}
				printBans(cmd.OutOrStdout(), []admin.BanEntry{b}, time.Now())
				return nil
			})
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
	_, err := req.ValidCommand("pass --force to ban it anyway")
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
			return af.callThenPrint(cmd, func(ctx context.Context, socket string) error {
				return admin.LiftBan(ctx, socket, args[0])
			}, fmt.Sprintf("lifted %s", args[0]))
		},
	}
	af.bind(cmd.Flags())
	return cmd
}
