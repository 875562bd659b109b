package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/chimalli/chimalli/ops/admin"
	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/spf13/cobra"
)

func newRuleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rule",
		Short: "List, add and remove the cluster's access rules",
		Long: `Manage the access rules every node of the cluster enforces at accept, before any
TLS handshake, on top of its own access lists (access.allow, access.deny): a deny
match always wins, then an allow match admits, then the default policy decides.

The commands talk to a node on this machine over its admin socket; any node will
do: a follower forwards a change to the leader, and the command returns once the
change is committed.`,
	}
	cmd.AddCommand(newRuleListCmd(""), newRuleListCmd(raftstore.ListAllow), newRuleListCmd(raftstore.ListDeny))
	return cmd
}

// newRuleListCmd returns `rule ls` (list "") or the `rule allow`/`rule
// deny` group with its add, rm and ls.
func newRuleListCmd(list raftstore.RuleList) *cobra.Command {
	if list == "" {
		c := newRuleLsCmd("")
		c.Short = "List every replicated access rule"
		return c
	}
	cmd := &cobra.Command{
		Use:   string(list),
		Short: fmt.Sprintf("Add, remove and list %s rules", list),
	}
	cmd.AddCommand(newRuleAddCmd(list), newRuleRmCmd(list), newRuleLsCmd(list))
	return cmd
}

func newRuleLsCmd(list raftstore.RuleList) *cobra.Command {
	return newListCmd(fmt.Sprintf("List %s rules", list),
		func(ctx context.Context, socket string, consistent bool) ([]admin.RuleEntry, error) {
			return admin.ListRules(ctx, socket, string(list), consistent)
		}, printRules)
}

func printRules(w io.Writer, rules []admin.RuleEntry) {
	printTable(w, "no access rules", []string{"LIST", "PREFIX"}, rules, func(r admin.RuleEntry) []string {
		return []string{r.List, r.Prefix}
	})
}

func newRuleAddCmd(list raftstore.RuleList) *cobra.Command {
	var (
		af    adminFlags
		force bool
	)
	long := `Allow an address or CIDR prefix on every node of the cluster. An allow rule may be
as broad as needed (it admits, it never shuts anyone out).`
	if list == raftstore.ListDeny {
		long = `Deny an address or CIDR prefix on every node of the cluster: its connections are
closed at accept, before any TLS handshake. A prefix wider than /16 (IPv4) or /32
(IPv6) would shut out every client in it, perhaps you too: it needs --force.`
	}
	cmd := &cobra.Command{
		Use:     "add PREFIX",
		Short:   fmt.Sprintf("Add a %s rule", list),
		Long:    long,
		Example: fmt.Sprintf("  chimalli rule %s add 192.0.2.0/24\n  chimalli rule %s add 2001:db8:1::/48", list, list),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := admin.RuleRequest{List: string(list), Prefix: args[0], Force: force}
			if _, err := req.Command(); err != nil {
				if errors.Is(err, raftstore.ErrBroadPrefix) {
					err = fmt.Errorf("%w (pass --force to deny it anyway)", err)
				}
				return fmt.Errorf("rule %s add: %w", list, err)
			}
			return af.call(cmd, func(ctx context.Context, socket string) error {
				c, err := admin.AddRule(ctx, socket, req)
				if err != nil {
					return err
				}
				if c.Changed {
					fmt.Fprintf(cmd.OutOrStdout(), "added %s %s\n", c.List, c.Prefix)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s was already there\n", c.List, c.Prefix)
				}
				return nil
			})
		},
	}
	af.bind(cmd.Flags())
	if list == raftstore.ListDeny {
		cmd.Flags().BoolVar(&force, "force", false, "deny a prefix wider than /16 (IPv4) or /32 (IPv6)")
	}
	return cmd
}

func newRuleRmCmd(list raftstore.RuleList) *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:     "rm PREFIX",
		Aliases: []string{"remove"},
		Short:   fmt.Sprintf("Remove a %s rule", list),
		Long: fmt.Sprintf(`Remove the %s rule for PREFIX (as "rule %s ls" lists it) from every node of the
cluster. A rule that is not there is an error.`, list, list),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := config.ParsePrefix(args[0])
			if err != nil {
				return fmt.Errorf("rule %s rm: prefix: %w", list, err)
			}
			return af.callThenPrint(cmd, func(ctx context.Context, socket string) error {
				return admin.RemoveRule(ctx, socket, string(list), p.String())
			}, fmt.Sprintf("removed %s %s", list, p))
		},
	}
	af.bind(cmd.Flags())
	return cmd
}
