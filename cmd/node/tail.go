package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/events/natsplane"
	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/ops/pki"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// tailFlags are the flags of the stream tails: where the node's NATS
// client port is, with which credentials, and what to show.
type tailFlags struct {
	url, certs, ca, cert, key, configFile, cluster string
	since                                          time.Duration
	all, jsonOut, noFollow                         bool
	count                                          int
	timeout                                        time.Duration
}

func (f *tailFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "nats", "", "the node's NATS client port, tls://host:port (default: nats.listen of --config)")
	fs.StringVar(&f.certs, "certs", "", "cluster directory holding ca.crt, admin.crt and admin.key (default: cluster.certs of --config)")
	fs.StringVar(&f.ca, "ca", "", "cluster authority certificate (instead of --certs)")
	fs.StringVar(&f.cert, "cert", "", "client certificate, the admin's (instead of --certs)")
	fs.StringVar(&f.key, "key", "", "client key (instead of --certs)")
	fs.StringVarP(&f.configFile, "config", "c", "", "a node's configuration file, for nats.listen, nats.cluster_name and cluster.certs")
	fs.StringVar(&f.cluster, "cluster", "", "cluster name in the subjects (default: nats.cluster_name of --config, else "+natsplane.DefaultClusterName+")")
	fs.DurationVar(&f.since, "since", 0, "start with the messages of this last while (1h, 30m); default: new ones only")
	fs.BoolVar(&f.all, "all", false, "start with the oldest message the stream holds")
	fs.BoolVar(&f.jsonOut, "json", false, "print each message as one JSON object per line")
	fs.BoolVar(&f.noFollow, "no-follow", false, "stop once the messages already in the stream are printed")
	fs.IntVar(&f.count, "count", 0, "stop after this many messages printed (0: no limit)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the connection")
}

// connect resolves the flags (and --config) and connects to the node.
func (f *tailFlags) connect() (*nats.Conn, string, error) {
	url, certs, cluster := f.url, f.certs, f.cluster
	if f.configFile != "" {
		cfg, err := config.Load(config.LoadOptions{File: f.configFile})
		if err != nil {
			return nil, "", err
		}
		if url == "" && cfg.NATS.Listen != "" {
			url = "tls://" + dialable(cfg.NATS.Listen)
		}
		if certs == "" {
			certs = cfg.Cluster.Certs
		}
		if cluster == "" {
			cluster = cfg.NATS.ClusterName
		}
	}
	if cluster == "" {
		cluster = natsplane.DefaultClusterName
	}
	if err := natsplane.ValidateClusterName(cluster); err != nil {
		return nil, "", err
	}
	if url == "" {
		return nil, "", errors.New("no NATS address: give --nats tls://host:port, or --config with nats.listen")
	}
	files := pki.Files{CA: f.ca, Cert: f.cert, Key: f.key}
	if certs != "" {
		l := pki.Layout{Dir: certs}
		a := l.Admin()
		files.CA, files.Cert, files.Key = cmp.Or(files.CA, a.CA), cmp.Or(files.Cert, a.Cert), cmp.Or(files.Key, a.Key)
	}
	if files.CA == "" || files.Cert == "" || files.Key == "" {
		return nil, "", errors.New("no credentials: give --certs DIR, or --ca, --cert and --key, or --config with cluster.certs")
	}
	cred, err := pki.Load(files)
	if err != nil {
		return nil, "", err
	}
	nc, err := nats.Connect(url, nats.Secure(cred.ClientConfig("")), nats.Name("chimalli tail"), nats.Timeout(f.timeout))
	if err != nil {
		return nil, "", fmt.Errorf("nats %s: %w", url, err)
	}
	return nc, cluster, nil
}

// dialable turns a listen address into one to dial: an unspecified or
// empty host is the loopback.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// tailSpec is what one tail reads and how it prints.
type tailSpec struct {
	stream   string
	subjects []string
	// line formats a message for people; ok false skips it (a filter).
	line func(m jetstream.Msg) (string, bool)
	// json formats a message as one JSON object; ok false skips it.
	json func(m jetstream.Msg) ([]byte, bool)
}

// tail prints the stream's messages until ctx ends, --count is reached,
// or with --no-follow the stream's end.
func (f *tailFlags) tail(ctx context.Context, out io.Writer, nc *nats.Conn, spec tailSpec) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: spec.subjects, DeliverPolicy: jetstream.DeliverNewPolicy}
	switch {
	case f.all:
		occ.DeliverPolicy = jetstream.DeliverAllPolicy
	case f.since > 0:
		start := time.Now().Add(-f.since)
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	cons, err := js.OrderedConsumer(cctx, spec.stream, occ)
	if err != nil {
		cancel()
		return fmt.Errorf("stream %s: %w", spec.stream, err)
	}
	info, err := cons.Info(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("stream %s: %w", spec.stream, err)
	}
	if f.noFollow && info.NumPending == 0 {
		return nil
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("stream %s: %w", spec.stream, err)
	}
	defer it.Stop()
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	printed := 0
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("stream %s: %w", spec.stream, err)
		}
		var text []byte
		ok := false
		if f.jsonOut {
			text, ok = spec.json(m)
		} else {
			var s string
			s, ok = spec.line(m)
			text = []byte(s)
		}
		if ok {
			if _, err := fmt.Fprintf(out, "%s\n", text); err != nil {
				return err
			}
			printed++
			if f.count > 0 && printed >= f.count {
				return nil
			}
		}
		if f.noFollow {
			if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
				return nil
			}
		}
	}
}

// runTail connects, then tails until interrupted.
func (f *tailFlags) run(cmd *cobra.Command, spec func(cluster string) tailSpec) error {
	nc, cluster, err := f.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return f.tail(ctx, cmd.OutOrStdout(), nc, spec(cluster))
}

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the cluster's audit records"}
	cmd.AddCommand(newAuditTailCmd())
	return cmd
}

func newAuditTailCmd() *cobra.Command {
	var (
		f      tailFlags
		node   string
		denied bool
	)
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the audit records and trust conflicts of the cluster as they come",
		Long: `Print the audit records of every node (one per connection: time, node, client
hash, status, reason, host and path) and the trust conflicts the nodes refused,
as they reach the CHIMALLI_AUDIT stream, until interrupted. It connects to a
node's NATS client port with the admin identity: --nats and --certs, or a node's
--config. Clients appear as keyed hashes only.`,
		Example: `  chimalli audit tail --config n1.yaml --since 1h --denied
  chimalli audit tail --nats tls://127.0.0.1:4221 --certs certs --node n2 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if node != "" && !validSubjectToken(node) {
				return fmt.Errorf("--node %q: not a node id", node)
			}
			return f.run(cmd, func(cluster string) tailSpec {
				return auditSpec(cluster, node, denied)
			})
		},
	}
	f.bind(cmd.Flags())
	cmd.Flags().StringVar(&node, "node", "", "only this node's records and conflicts")
	cmd.Flags().BoolVar(&denied, "denied", false, "only refusals (status 0, 4x, 5x or 6x) and trust conflicts")
	return cmd
}

// validSubjectToken reports whether s can stand in a subject as one token.
func validSubjectToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}

// auditSpec reads CHIMALLI_AUDIT: node's records (or every node's) and
// the trust conflicts (node's only, when given).
func auditSpec(cluster, node string, denied bool) tailSpec {
	records := natsplane.AuditSubject(cluster, "*")
	if node != "" {
		records = natsplane.AuditSubject(cluster, node)
	}
	conflicts := events.ConflictSubject(cluster)
	keep := func(m jetstream.Msg) (rec *events.AuditRecord, conflict *events.ConflictData, ok bool) {
		if m.Subject() == conflicts {
			var d events.ConflictData
			if json.Unmarshal(m.Data(), &d) != nil {
				return nil, nil, node == "" && !denied
			}
			return nil, &d, node == "" || d.Node == node
		}
		r, err := events.ParseAuditRecord(m.Data())
		if err != nil {
			return nil, nil, !denied // shown raw: not ours to judge
		}
		return &r, nil, !denied || refused(r.Status)
	}
	return tailSpec{
		stream:   natsplane.StreamAudit,
		subjects: []string{records, conflicts},
		line: func(m jetstream.Msg) (string, bool) {
			r, c, ok := keep(m)
			switch {
			case !ok:
				return "", false
			case c != nil:
				return conflictLine(c), true
			case r != nil:
				return auditLine(r), true
			}
			return fmt.Sprintf("%-24s %s %q", "?", m.Subject(), m.Data()), true
		},
		json: func(m jetstream.Msg) ([]byte, bool) {
			_, _, ok := keep(m)
			return m.Data(), ok
		},
	}
}

// refused reports whether a status is a refusal: none sent (refused at
// accept) or a 4x, 5x or 6x.
func refused(status int) bool { return status == 0 || status >= 40 }

const tailTime = "2006-01-02T15:04:05.000Z"

func auditLine(r *events.AuditRecord) string {
	target := r.Host + r.Path
	if target == "" {
		target = "-"
	}
	return fmt.Sprintf("%-24s %-10s %-42s %2d %-20s %s", r.Time.UTC().Format(tailTime), r.Node, r.Client, r.Status, r.Reason, target)
}

func conflictLine(c *events.ConflictData) string {
	client := c.Client
	if client == "" {
		client = "-"
	}
	return fmt.Sprintf("%-24s %-10s %-42s %2s %-20s %s %s pinned %s presented %s", c.Time.UTC().Format(tailTime), c.Node, client,
		"--", "trust_conflict", c.Kind, c.Subject, c.Pinned.Cert, c.Presented.Cert)
}

func newEventsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Read the cluster's committed state events"}
	var f tailFlags
	tail := &cobra.Command{
		Use:   "tail",
		Short: "Print the committed state events (bans, rules, pins) as they come",
		Long: `Print the cluster's committed state events from the CHIMALLI_EVENTS stream
(time, type, Raft index, summary) until interrupted; --json prints each as a
structured CloudEvent. Prefixes appear as keyed hashes only. It connects to a
node's NATS client port with the admin identity: --nats and --certs, or a
node's --config.`,
		Example: `  chimalli events tail --config n1.yaml --all --no-follow
  chimalli events tail --nats tls://127.0.0.1:4221 --certs certs --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, eventsSpec)
		},
	}
	f.bind(tail.Flags())
	cmd.AddCommand(tail)
	return cmd
}

// eventsSpec reads CHIMALLI_EVENTS, every subject.
func eventsSpec(string) tailSpec {
	return tailSpec{
		stream: natsplane.StreamEvents,
		line:   func(m jetstream.Msg) (string, bool) { return eventLine(m), true },
		json: func(m jetstream.Msg) ([]byte, bool) {
			b, err := structuredEvent(m)
			if err != nil {
				return nil, false
			}
			return b, true
		},
	}
}

// ceAttrs returns a message's CloudEvents attributes by name, without the
// "ce-" prefix.
func ceAttrs(h nats.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if name, ok := strings.CutPrefix(strings.ToLower(k), "ce-"); ok && len(v) > 0 {
			out[name] = v[0]
		}
	}
	return out
}

// structuredEvent turns a binary-mode CloudEvent into its structured JSON
// form: the attributes beside "data".
func structuredEvent(m jetstream.Msg) ([]byte, error) {
	obj := map[string]any{}
	for k, v := range ceAttrs(m.Headers()) {
		obj[k] = v
	}
	obj["subject"] = m.Subject()
	if json.Valid(m.Data()) {
		obj["data"] = json.RawMessage(m.Data())
	} else {
		obj["data"] = string(m.Data())
	}
	return json.Marshal(obj)
}

// eventLine is one state event for people: time, type, index, summary.
func eventLine(m jetstream.Msg) string {
	a := ceAttrs(m.Headers())
	typ := strings.TrimPrefix(a["type"], events.CETypePrefix)
	if typ == "" {
		typ = m.Subject()
	}
	at := a["time"]
	if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
		at = t.UTC().Format(tailTime)
	}
	index := a["raftindex"]
	if index == "" {
		index = "-"
	}
	return fmt.Sprintf("%-24s %-18s %8s  %s", at, typ, index, eventSummary(typ, m.Data()))
}

// eventSummary says what a state event's data holds, in a few words.
func eventSummary(typ string, data []byte) string {
	var d struct {
		PrefixHash string     `json:"prefix_hash"`
		PrefixBits int        `json:"prefix_bits"`
		List       string     `json:"list"`
		Until      *time.Time `json:"until"`
		Reason     string     `json:"reason"`
		Source     string     `json:"source"`
		Kind       string     `json:"kind"`
		Subject    string     `json:"subject"`
		Cert       string     `json:"cert"`
		Node       string     `json:"node"`
		From, To   uint64
	}
	if json.Unmarshal(data, &d) != nil {
		return strconv.Quote(string(data))
	}
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	if d.PrefixHash != "" {
		parts = append(parts, d.PrefixHash+"/"+strconv.Itoa(d.PrefixBits))
	}
	add("list", d.List)
	if typ == string(raftstore.TypeBanAdded) {
		until := "permanent"
		if d.Until != nil {
			until = d.Until.UTC().Format(time.RFC3339)
		}
		add("until", until)
	}
	add("reason", d.Reason)
	add("source", d.Source)
	add("kind", d.Kind)
	add("subject", d.Subject)
	add("cert", d.Cert)
	if d.To != 0 {
		add("missed", fmt.Sprintf("%d..%d", d.From, d.To))
	}
	add("node", d.Node)
	return strings.Join(parts, " ")
}
