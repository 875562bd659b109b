package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/chimalli/chimalli/ops/pki"
	"github.com/spf13/cobra"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Manage the cluster",
	}
	cmd.AddCommand(newClusterInitCmd())
	return cmd
}

func newClusterInitCmd() *cobra.Command {
	var (
		nodes, sans       []string
		hosts             []string
		addNode, out      string
		days, caDays      int
		noLoopback, exist bool
	)
	cmd := &cobra.Command{
		Use:   "init (--nodes ID,ID,… | --add-node ID) --out DIR",
		Short: "Create the cluster CA and the node and admin certificates",
		Long: `Create a cluster's certificates: a certificate authority (ca.crt, ca.key), a
certificate and key per node (ID.crt, ID.key) and an admin client certificate
(admin.crt, admin.key). Keys are ECDSA P-256 in PKCS#8 PEM, written 0600;
certificates 0644; DIR is made 0700.

Raft, leader forwarding and NATS run over mutual TLS with these: a node that does
not hold a certificate from this CA cannot join, read events or write state. Node
certificates name the node id (node ids double as host names, for example compose
service names), localhost, 127.0.0.1 and ::1, plus the names given with --hosts and
--san. The admin certificate is for clients only.

init never overwrites a file and never leaves a partial directory behind. If DIR
already holds these nodes' files, it fails, or with --if-missing it checks them and
exits 0: use that in an init container.

--add-node signs one more node with the CA in DIR (ca.key must be there). Keep
ca.key offline otherwise: whoever holds it can add members.`,
		Example: `  chimalli cluster init --nodes n1,n2,n3 --out certs
  chimalli cluster init --nodes n1,n2,n3 --hosts n1=gw1.example.org,192.0.2.1 --out /etc/chimalli/cluster
  chimalli cluster init --nodes n1,n2,n3 --out /certs --if-missing
  chimalli cluster init --add-node n4 --hosts n4=192.0.2.4 --out certs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			extra, err := parseHosts(hosts)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if addNode != "" {
				for id := range extra {
					if id != addNode {
						return fmt.Errorf("--hosts %s: not the node being added (%s)", id, addNode)
					}
				}
				f, err := pki.AddNode(out, addNode, pki.NodeOptions{
					Hosts: append(extra[addNode], sans...), NoLoopback: noLoopback, CertDays: days,
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "node %s: %s (0644), %s (0600)\n", addNode, f.Cert, f.Key)
				return nil
			}
			l, err := pki.Init(out, pki.InitOptions{
				Nodes: nodes, Hosts: extra, SANs: sans, NoLoopback: noLoopback, CADays: caDays, CertDays: days,
			})
			switch {
			case errors.Is(err, pki.ErrInitialised) && exist:
				fmt.Fprintf(w, "%s: already initialised for %s; nothing written\n", out, strings.Join(nodes, ", "))
				return nil
			case errors.Is(err, pki.ErrInitialised):
				return fmt.Errorf("%w; nothing written (with --if-missing this is a success)", err)
			case errors.Is(err, fs.ErrExist):
				return fmt.Errorf("%w (--add-node ID signs one more node)", err)
			case err != nil:
				return err
			}
			printLayout(w, l)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&nodes, "nodes", nil, "node ids, comma-separated: DNS labels (a-z, 0-9, '-')")
	f.StringVar(&addNode, "add-node", "", "sign one more node with the CA already in --out")
	f.StringVar(&out, "out", "", "directory to write into (required)")
	f.StringArrayVar(&hosts, "hosts", nil, "more names for one node: ID=NAME[,NAME…], DNS names or IP addresses (repeatable)")
	f.StringSliceVar(&sans, "san", nil, "more names for every node: DNS names or IP addresses (repeatable)")
	f.BoolVar(&noLoopback, "no-loopback", false, "leave localhost, 127.0.0.1 and ::1 out of node certificates")
	f.IntVar(&days, "days", pki.DefaultCertDays, "validity of node and admin certificates in days")
	f.IntVar(&caDays, "ca-days", pki.DefaultCADays, "validity of the CA in days")
	f.BoolVar(&exist, "if-missing", false, "exit 0 without writing when --out already holds these nodes' valid files")
	cmd.MarkFlagsOneRequired("nodes", "add-node")
	cmd.MarkFlagsMutuallyExclusive("nodes", "add-node")
	cmd.MarkFlagsMutuallyExclusive("add-node", "if-missing")
	cmd.MarkFlagsMutuallyExclusive("add-node", "ca-days")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// parseHosts parses --hosts values ID=NAME[,NAME…] into names per node id.
func parseHosts(values []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, v := range values {
		id, list, ok := strings.Cut(v, "=")
		if !ok || id == "" || list == "" {
			return nil, fmt.Errorf("--hosts %q: want ID=NAME[,NAME…]", v)
		}
		for _, name := range strings.Split(list, ",") {
			if name = strings.TrimSpace(name); name == "" {
				return nil, fmt.Errorf("--hosts %q: empty name", v)
			}
			out[id] = append(out[id], name)
		}
	}
	return out, nil
}

// printLayout lists what cluster init wrote and what to do with it.
func printLayout(w io.Writer, l *pki.Layout) {
	fmt.Fprintf(w, "cluster directory %s (0700):\n", l.Dir)
	fmt.Fprintf(w, "  CA     %s (0644)  %s (0600)\n", l.CACert(), l.CAKey())
	for _, id := range l.Nodes {
		f := l.Node(id)
		fmt.Fprintf(w, "  node   %s (0644)  %s (0600)\n", f.Cert, f.Key)
	}
	a := l.Admin()
	fmt.Fprintf(w, "  admin  %s (0644)  %s (0600)\n", a.Cert, a.Key)
	fmt.Fprintf(w, "Give each node %s, its own certificate and its own key.\n", filepath.Base(l.CACert()))
	fmt.Fprintf(w, "Move %s offline: whoever holds it can add members to the cluster.\n", l.CAKey())
}
