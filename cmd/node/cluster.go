package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/chimalli/chimalli/ops/admin"
	"github.com/chimalli/chimalli/ops/pki"
	"github.com/chimalli/chimalli/raftstore/cluster"
	"github.com/spf13/cobra"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Manage the cluster",
		Long: `Create the cluster's certificates (init), show or change the membership of a
running cluster (status, join, leave), and back up or restore its state (snapshot
save, snapshot restore) through a node on this machine, over its admin socket. Any
node will do: a follower forwards a change to the leader.`,
	}
	cmd.AddCommand(newClusterInitCmd(), newClusterStatusCmd(), newClusterJoinCmd(), newClusterLeaveCmd(), newClusterSnapshotCmd())
	return cmd
}

func newClusterStatusCmd() *cobra.Command {
	var (
		af     adminFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show this node's view of the cluster",
		Long: `Show the node's id, its Raft state (leader, follower, candidate), the leader, the
term, the indexes it has applied and committed, the members and the hash of its
state. Nodes that applied the same log show the same state hash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(cmd, &af, asJSON, admin.ClusterStatus, printStatus)
		},
	}
	af.bind(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStatus(w io.Writer, st cluster.Status) {
	tw := newTable(w)
	leader := st.Leader
	switch {
	case leader == "":
		leader = "none (an election, or this node is cut off from the majority)"
	case st.LeaderAddr != "":
		leader += " (" + st.LeaderAddr + ")"
	}
	fmt.Fprintf(tw, "node\t%s\n", st.NodeID)
	fmt.Fprintf(tw, "state\t%s\n", st.State)
	fmt.Fprintf(tw, "leader\t%s\n", leader)
	fmt.Fprintf(tw, "term\t%d\n", st.Term)
	fmt.Fprintf(tw, "applied index\t%d (commit %d, last %d)\n", st.AppliedIndex, st.CommitIndex, st.LastIndex)
	peers := make([]string, 0, len(st.PeerAddrs))
	for _, p := range st.PeerAddrs {
		peers = append(peers, p.ID+" "+p.Addr)
	}
	fmt.Fprintf(tw, "peers\t%s\n", strings.Join(peers, ", "))
	fmt.Fprintf(tw, "state hash\t%s\n", st.StateHash)
	fmt.Fprintf(tw, "state\t%d bans, %d rules, %d pins\n", st.Bans, st.Rules, st.Pins)
	if st.Failed != "" {
		fmt.Fprintf(tw, "FAILED\t%s\n", st.Failed)
	}
	tw.Flush()
}

func newClusterJoinCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "join ID ADDR",
		Short: "Admit a node to the cluster",
		Long: `Admit node ID, whose cluster port the other nodes reach at ADDR (its
cluster.advertise, host:port), as a voter. The node must hold a certificate of
this cluster's authority naming ID (cluster init --add-node ID) and run with no
Raft state; it then catches up from the leader. A node with cluster.join set asks
for this by itself: the command is for when it cannot.`,
		Example: `  chimalli cluster join n4 192.0.2.4:7000`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := admin.JoinRequest{ID: args[0], Addr: args[1]}
			if _, err := req.Peer(); err != nil {
				return fmt.Errorf("cluster join: %w", err)
			}
			return af.callThenPrint(cmd, func(ctx context.Context, socket string) error {
				return admin.JoinCluster(ctx, socket, req)
			}, fmt.Sprintf("%s (%s) is a member", req.ID, req.Addr))
		},
	}
	af.bind(cmd.Flags())
	return cmd
}

func newClusterLeaveCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "leave ID",
		Short: "Remove a node from the cluster",
		Long: `Remove node ID from the cluster's voters (as "cluster status" lists them). Do it
before retiring a node for good: a dead member still counts toward the majority
every write needs. The cluster's only member cannot leave.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return af.callThenPrint(cmd, func(ctx context.Context, socket string) error {
				return admin.LeaveCluster(ctx, socket, args[0])
			}, fmt.Sprintf("%s has left the cluster", args[0]))
		},
	}
	af.bind(cmd.Flags())
	return cmd
}

func newClusterInitCmd() *cobra.Command {
	var (
		nodes, sans       []string
		hosts             []string
		addNode, out      string
		renew             string
		nodeOwner         string
		days, caDays      int
		noLoopback, exist bool
	)
	cmd := &cobra.Command{
		Use:   "init (--nodes ID,ID,… | --add-node ID | --renew ID|admin) --out DIR",
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

--node-owner UID:GID (run as root, as the compose file's init service does) then
gives each node's certificate and key to that user, the one the node containers run
as, and every other file to DIR's owner: the operator who made DIR keeps the admin
identity and the CA key, each node reads only its own key. DIR becomes 0710 with
the node user's group.

--add-node signs one more node with the CA in DIR (ca.key must be there). Keep
ca.key offline otherwise: whoever holds it can add members.

--renew ID (or --renew admin) signs a fresh key and certificate for an existing
node, or the admin, with the CA in DIR (ca.key must be there) and puts them in
place of the old pair, which is kept as ID.crt.old and ID.key.old. The new
certificate names what the old one named, unless --hosts ID=…, --san or
--no-loopback say otherwise; --days sets its validity. It refuses a certificate
the CA did not sign or that names someone else, and never leaves a certificate
and key that do not match. Restart the renewed node afterwards; the other nodes
need nothing, as the CA is unchanged.`,
		Example: `  chimalli cluster init --nodes n1,n2,n3 --out certs
  chimalli cluster init --nodes n1,n2,n3 --hosts n1=gw1.example.org,192.0.2.1 --out /etc/chimalli/cluster
  chimalli cluster init --nodes n1,n2,n3 --out /certs --if-missing
  chimalli cluster init --add-node n4 --hosts n4=192.0.2.4 --out certs
  chimalli cluster init --renew n1 --out certs
  chimalli cluster init --renew admin --days 365 --out certs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			extra, err := parseHosts(hosts)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			var owner pki.Owner
			if nodeOwner != "" {
				if owner, err = pki.ParseOwner(nodeOwner); err != nil {
					return fmt.Errorf("--node-owner %w", err)
				}
			}
			grant := func(l *pki.Layout) error {
				if nodeOwner == "" {
					return nil
				}
				if err := l.GrantNodes(owner); err != nil {
					return fmt.Errorf("%w (--node-owner needs root)", err)
				}
				fmt.Fprintf(w, "node certificates and keys owned by %s\n", nodeOwner)
				return nil
			}
			if renew != "" {
				if err := hostsOnlyFor(extra, renew, "renewed"); err != nil {
					return err
				}
				r, err := pki.Renew(out, renew, pki.RenewOptions{
					Hosts: append(extra[renew], sans...), NoLoopback: noLoopback, CertDays: days,
				})
				if err != nil {
					return err
				}
				printRenewed(w, r)
				l := &pki.Layout{Dir: out}
				if r.Identity.Kind == pki.KindNode {
					l.Nodes = []string{r.Identity.Name}
				}
				return grant(l)
			}
			if addNode != "" {
				if err := hostsOnlyFor(extra, addNode, "added"); err != nil {
					return err
				}
				f, err := pki.AddNode(out, addNode, pki.NodeOptions{
					Hosts: append(extra[addNode], sans...), NoLoopback: noLoopback, CertDays: days,
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "node %s: %s (0644), %s (0600)\n", addNode, f.Cert, f.Key)
				return grant(&pki.Layout{Dir: out, Nodes: []string{addNode}})
			}
			l, err := pki.Init(out, pki.InitOptions{
				Nodes: nodes, Hosts: extra, SANs: sans, NoLoopback: noLoopback, CADays: caDays, CertDays: days,
			})
			switch {
			case errors.Is(err, pki.ErrInitialised) && exist:
				fmt.Fprintf(w, "%s: already initialised for %s; nothing written\n", out, strings.Join(nodes, ", "))
				return grant(l)
			case errors.Is(err, pki.ErrInitialised):
				return fmt.Errorf("%w; nothing written (with --if-missing this is a success)", err)
			case errors.Is(err, fs.ErrExist):
				return fmt.Errorf("%w (--add-node ID signs one more node)", err)
			case err != nil:
				return err
			}
			printLayout(w, l)
			return grant(l)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&nodes, "nodes", nil, "node ids, comma-separated: DNS labels (a-z, 0-9, '-')")
	f.StringVar(&addNode, "add-node", "", "sign one more node with the CA already in --out")
	f.StringVar(&renew, "renew", "", "sign a fresh key and certificate for node ID, or for admin, with the CA already in --out")
	f.StringVar(&out, "out", "", "directory to write into (required)")
	f.StringArrayVar(&hosts, "hosts", nil, "more names for one node: ID=NAME[,NAME…], DNS names or IP addresses (repeatable)")
	f.StringSliceVar(&sans, "san", nil, "more names for every node: DNS names or IP addresses (repeatable)")
	f.BoolVar(&noLoopback, "no-loopback", false, "leave localhost, 127.0.0.1 and ::1 out of node certificates")
	f.IntVar(&days, "days", pki.DefaultCertDays, "validity of node and admin certificates in days")
	f.IntVar(&caDays, "ca-days", pki.DefaultCADays, "validity of the CA in days")
	f.StringVar(&nodeOwner, "node-owner", "", "as root: give node files to UID:GID, the rest to DIR's owner (for a bind-mounted DIR)")
	f.BoolVar(&exist, "if-missing", false, "exit 0 without writing when --out already holds these nodes' valid files")
	cmd.MarkFlagsOneRequired("nodes", "add-node", "renew")
	cmd.MarkFlagsMutuallyExclusive("nodes", "add-node", "renew")
	cmd.MarkFlagsMutuallyExclusive("renew", "if-missing")
	cmd.MarkFlagsMutuallyExclusive("renew", "ca-days")
	cmd.MarkFlagsMutuallyExclusive("add-node", "if-missing")
	cmd.MarkFlagsMutuallyExclusive("add-node", "ca-days")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// hostsOnlyFor refuses --hosts entries for any node but id, the one
// being done (added, renewed).
func hostsOnlyFor(extra map[string][]string, id, done string) error {
	for other := range extra {
		if other != id {
			return fmt.Errorf("--hosts %s: not the node being %s (%s)", other, done, id)
		}
	}
	return nil
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

// printRenewed says what cluster init --renew wrote and what to do next.
func printRenewed(w io.Writer, r pki.Renewed) {
	fmt.Fprintf(w, "%s renewed: %s (0644), %s (0600), valid until %s\n",
		r.Identity, r.Files.Cert, r.Files.Key, r.NotAfter.UTC().Format(time.DateOnly))
	if r.OldKey != "" {
		fmt.Fprintf(w, "old pair kept as %s and %s\n", r.OldCert, r.OldKey)
	} else {
		fmt.Fprintf(w, "old certificate kept as %s (there was no old key)\n", r.OldCert)
	}
	if r.Identity.Kind == pki.KindNode {
		fmt.Fprintf(w, "Next: restart node %s so that it loads the new pair; the other nodes need nothing (the CA is unchanged).\n", r.Identity.Name)
		return
	}
	fmt.Fprintf(w, "Nothing to restart: admin commands read %s each time they run.\n", filepath.Base(r.Files.Cert))
}
