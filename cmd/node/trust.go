package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/chimalli/chimalli/ops/admin"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/spf13/cobra"
)

func newTrustCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "List, approve and revoke the cluster's TOFU pins",
		Long: `Manage the trust-on-first-use pins the cluster keeps: a claim pins a route
(kind claim, subject host/path/) to the first client certificate that used it; an
upstream pin (kind upstream, subject host:port) holds the upstream server's
certificate seen first. A connecting certificate matches a pin when its
certificate fingerprint or its public-key fingerprint does.

The commands talk to a node on this machine over its admin socket; any node will
do: a follower forwards a change to the leader, and the command returns once the
change is committed.`,
	}
	cmd.AddCommand(newTrustListCmd(), newTrustApproveCmd(), newTrustRevokeCmd())
	return cmd
}

func newTrustListCmd() *cobra.Command {
	var kind string
	cmd := newListCmd("List the pins",
		func(ctx context.Context, socket string, consistent bool) ([]admin.PinEntry, error) {
			return admin.ListPins(ctx, socket, kind, consistent)
		}, printPins)
	cmd.Flags().StringVar(&kind, "kind", "", "list only this kind: claim or upstream")
	return cmd
}

func printPins(w io.Writer, pins []admin.PinEntry) {
	header := []string{"KIND", "SUBJECT", "CERT", "SPKI", "NOT AFTER", "CREATED"}
	printTable(w, "no pins", header, pins, func(p admin.PinEntry) []string {
		notAfter := "-"
		if p.NotAfter != nil {
			notAfter = p.NotAfter.Format(time.RFC3339)
		}
		return []string{p.Kind, p.Subject, orDash(p.Cert), orDash(p.SPKI), notAfter, p.Created.Format(time.RFC3339)}
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newTrustApproveCmd() *cobra.Command {
	var (
		af  adminFlags
		req admin.ApproveRequest
	)
	cmd := &cobra.Command{
		Use:   "approve --kind claim|upstream --subject SUBJECT FINGERPRINT [FINGERPRINT]",
		Short: "Pin a subject to a certificate you name (a rotation)",
		Long: `Pin SUBJECT to the certificate named by FINGERPRINT, replacing any pin in force:
how a claimed route moves to a new client certificate, or an upstream to a new
server certificate. Give the certificate's fingerprint (sha256:<hex>), its public
key's (spki-sha256:<hex>), or both: a connecting certificate matches when one of
those given does. A public-key pin survives a renewal with the same key.`,
		Example: `  chimalli trust approve --kind claim --subject example.org/app/ sha256:3f1c…
  chimalli trust approve --kind upstream --subject backend:1965 spki-sha256:8a6c… sha256:3f1c…`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if err := req.SetFingerprint(a); err != nil {
					return fmt.Errorf("trust approve: %w", err)
				}
			}
			if _, err := req.Command(); err != nil {
				return fmt.Errorf("trust approve: %w", err)
			}
			return af.call(cmd, func(ctx context.Context, socket string) error {
				c, err := admin.ApproveTrust(ctx, socket, req)
				if err != nil {
					return err
				}
				if !c.Changed {
					fmt.Fprintln(cmd.OutOrStdout(), "already pinned so:")
				}
				printPins(cmd.OutOrStdout(), []admin.PinEntry{c.PinEntry})
				return nil
			})
		},
	}
	af.bind(cmd.Flags())
	cmd.Flags().StringVar(&req.Kind, "kind", "", "what the pin protects: claim (a client claim) or upstream (an upstream server)")
	cmd.Flags().StringVar(&req.Subject, "subject", "", "the pin's subject: host/path/ for a claim, host:port for an upstream (as trust ls lists it)")
	_ = cmd.MarkFlagRequired("kind")
	_ = cmd.MarkFlagRequired("subject")
	return cmd
}

func newTrustRevokeCmd() *cobra.Command {
	var (
		af            adminFlags
		kind, subject string
	)
	cmd := &cobra.Command{
		Use:   "revoke --kind claim|upstream --subject SUBJECT",
		Short: "Forget a pin: the subject's next use is a first use again",
		Long: `Forget the pin of SUBJECT on every node of the cluster. The next certificate to use
it is pinned in its place, as on first use. A subject that is not pinned is an
error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := raftstore.ParseTrustKind(kind); err != nil {
				return fmt.Errorf("trust revoke: %w", err)
			}
			return af.callThenPrint(cmd, func(ctx context.Context, socket string) error {
				return admin.RevokeTrust(ctx, socket, kind, subject)
			}, fmt.Sprintf("revoked %s %s", kind, subject))
		},
	}
	af.bind(cmd.Flags())
	cmd.Flags().StringVar(&kind, "kind", "", "claim or upstream")
	cmd.Flags().StringVar(&subject, "subject", "", "host/path/ for a claim, host:port for an upstream")
	_ = cmd.MarkFlagRequired("kind")
	_ = cmd.MarkFlagRequired("subject")
	return cmd
}
