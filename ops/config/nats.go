package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chimalli/chimalli/events/natsplane"
)

// NATSConfig configures the event plane: NATS with JetStream, embedded in
// the node by default, or an external NATS by URL.
//
// With nothing set the node runs nats-server in its own process with no
// port at all: only the node itself reaches it, in process. The client
// port and the route port speak TLS only, with the cluster's certificates
// (cluster.certs), and admit only certificates of the cluster.
type NATSConfig struct {
	// Listen is the client port ("host:port"): TLS with the node's
	// certificate; clients are authenticated by theirs. Empty: none.
	Listen string `koanf:"listen"`
	// ClusterListen is the route port ("host:port") the embedded servers
	// cluster over, mutual TLS between nodes. Empty: a server of its own.
	ClusterListen string `koanf:"cluster_listen"`
	// Routes are every node's route port, this node's included: the same
	// list on every node.
	Routes []string `koanf:"routes"`
	// ClusterAdvertise is the address ("host:port") the other servers are
	// told to dial for this node's routes; its host must be in the node's
	// certificate. Empty: the entry of Routes that is node.id with the
	// port of ClusterListen, if any.
	ClusterAdvertise string `koanf:"cluster_advertise"`
	// Advertise is the address ("host:port") clients are told for this
	// node's client port, a name of its certificate. Empty: clients are
	// told of no other server and use the addresses they were given.
	Advertise string `koanf:"advertise"`
	// ClusterName names the NATS cluster and is the second token of every
	// subject (chimalli.<cluster_name>.…).
	ClusterName string `koanf:"cluster_name"`
	// URL is an external NATS (comma-separated nats:// or tls:// URLs);
	// with it nothing is embedded.
	URL string `koanf:"url"`
	// Creds is a NATS credentials file for URL.
	Creds string `koanf:"creds"`
	// TLSCA, TLSCert and TLSKey are PEM files for a TLS connection to URL:
	// the authority to trust (empty: the system's) and a client
	// certificate (both or neither).
	TLSCA   string `koanf:"tls_ca"`
	TLSCert string `koanf:"tls_cert"`
	TLSKey  string `koanf:"tls_key"`
	// Replicas is how many servers keep each stream; 0 derives it: min(3,
	// number of routes) embedded, 1 for a server of its own or an
	// external NATS.
	Replicas int `koanf:"replicas"`
	// DuplicateWindow is how long a stream remembers a message id, so an
	// event published again (after a leader change or restart) is stored
	// once.
	DuplicateWindow time.Duration `koanf:"duplicate_window"`
	// EventsMaxAge bounds the age of the state events kept; 0: forever.
	EventsMaxAge time.Duration `koanf:"events_max_age"`
}

func defaultNATS() NATSConfig {
	return NATSConfig{
		Routes:          []string{},
		ClusterName:     natsplane.DefaultClusterName,
		DuplicateWindow: natsplane.DefaultDuplicates,
	}
}

// Defaults of the audit stream.
const (
	// DefaultAuditStreamMaxAge is audit.stream_max_age's default.
	DefaultAuditStreamMaxAge = 30 * 24 * time.Hour
	// DefaultAuditStreamMaxBytes is audit.stream_max_bytes's default.
	DefaultAuditStreamMaxBytes = 1 * GiB
	// DefaultAuditSpoolMaxBytes is audit.spool_max_bytes's default.
	DefaultAuditSpoolMaxBytes = 256 * MiB
)

// maxReplicas is JetStream's limit on stream replicas.
const maxReplicas = 5

// NATSDir returns where the embedded server keeps JetStream's store:
// <data_dir>/nats.
func (c *Config) NATSDir() string { return filepath.Join(c.Node.DataDir, "nats") }

// AuditSpoolDir returns where audit records wait while JetStream cannot
// take them: <data_dir>/audit-spool.
func (c *Config) AuditSpoolDir() string { return filepath.Join(c.Node.DataDir, "audit-spool") }

// NATSEmbedded reports whether the node runs its own nats-server (no
// nats.url).
func (c *Config) NATSEmbedded() bool { return c.NATS.URL == "" }

// NATSReplicas returns nats.replicas, or the derived count when it is 0.
func (c *Config) NATSReplicas() int {
	if c.NATS.Replicas > 0 {
		return c.NATS.Replicas
	}
	if !c.NATSEmbedded() {
		return 1
	}
	return natsplane.ReplicasFor(len(c.NATS.Routes))
}

// validPort reports whether p is a port number of 1..65535.
func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

func (c *Config) validateNATS(v *validator) {
	n := c.NATS
	if err := natsplane.ValidateClusterName(n.ClusterName); err != nil {
		v.addErr("nats.cluster_name", err)
	}
	if n.URL != "" {
		for _, k := range []struct{ key, val string }{{"nats.listen", n.Listen}, {"nats.cluster_listen", n.ClusterListen}, {"nats.advertise", n.Advertise}, {"nats.cluster_advertise", n.ClusterAdvertise}} {
			if k.val != "" {
				v.add(k.key, "must be empty with nats.url (an external NATS: nothing is embedded)")
			}
		}
		if len(n.Routes) > 0 {
			v.add("nats.routes", "must be empty with nats.url (an external NATS: nothing is embedded)")
		}
		for i, s := range strings.Split(n.URL, ",") {
			u, err := url.Parse(strings.TrimSpace(s))
			if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" || u.User != nil {
				v.add("nats.url", "URL %d %q: want nats://host:port or tls://host:port, without user info (use nats.creds)", i+1, s)
			}
		}
		if (n.TLSCert == "") != (n.TLSKey == "") {
			v.add("nats.tls_cert", "nats.tls_cert and nats.tls_key must both be set or both be empty")
		}
	} else {
		for _, k := range []struct{ key, val string }{{"nats.creds", n.Creds}, {"nats.tls_ca", n.TLSCA}, {"nats.tls_cert", n.TLSCert}, {"nats.tls_key", n.TLSKey}} {
			if k.val != "" {
				v.add(k.key, "only with nats.url")
			}
		}
	}
	needsCerts := func(key string) {
		if c.Cluster.Certs == "" {
			v.add(key, "needs cluster.certs: NATS ports speak TLS with the cluster's certificates only")
		}
		if c.Node.ID == "" {
			v.add(key, "needs node.id: the name in this node's certificate")
		}
	}
	if n.Listen != "" {
		v.hostPort("nats.listen", n.Listen)
		needsCerts("nats.listen")
	}
	if n.ClusterListen != "" {
		v.hostPort("nats.cluster_listen", n.ClusterListen)
		needsCerts("nats.cluster_listen")
		if n.Listen == "" {
			v.add("nats.listen", "required with nats.cluster_listen (nats-server starts its routes only once its client port is up)")
		}
		if len(n.Routes) < 2 {
			v.add("nats.routes", "list every node's nats.cluster_listen address, this node's included (at least two)")
		}
	} else if len(n.Routes) > 0 && n.URL == "" {
		v.add("nats.routes", "needs nats.cluster_listen")
	}
	if n.URL == "" {
		for _, k := range []struct{ key, val, needs, needsVal string }{
			{"nats.advertise", n.Advertise, "nats.listen", n.Listen},
			{"nats.cluster_advertise", n.ClusterAdvertise, "nats.cluster_listen", n.ClusterListen},
		} {
			if k.val == "" {
				continue
			}
			if k.needsVal == "" {
				v.add(k.key, "needs %s", k.needs)
			}
			if host, port, err := net.SplitHostPort(k.val); err != nil || host == "" || !validPort(port) {
				v.add(k.key, "%q: want host:port with a host of this node's certificate and a port of 1..65535", k.val)
			}
		}
	}
	for i, r := range n.Routes {
		key := fmt.Sprintf("nats.routes[%d]", i)
		if v.hostPort(key, r) && slices.Index(n.Routes, r) < i {
			v.add(key, "%s listed twice", r)
		}
	}
	switch {
	case n.Replicas < 0 || n.Replicas > maxReplicas:
		v.add("nats.replicas", "must be 0 (derived) to %d, got %d", maxReplicas, n.Replicas)
	case n.Replicas > 0 && n.URL == "" && n.Replicas > max(len(n.Routes), 1):
		v.add("nats.replicas", "%d, but the embedded cluster has %d servers", n.Replicas, max(len(n.Routes), 1))
	}
	v.positive("nats.duplicate_window", n.DuplicateWindow)
	if n.EventsMaxAge < 0 {
		v.add("nats.events_max_age", "must be >= 0 (0: forever), got %s", n.EventsMaxAge)
	}
	if a := c.Audit.StreamMaxAge; a < 0 {
		v.add("audit.stream_max_age", "must be >= 0 (0: no limit), got %s", a)
	}
	if b := c.Audit.StreamMaxBytes; b < 0 {
		v.add("audit.stream_max_bytes", "must be >= 0 (0: no limit), got %d", b)
	}
	if b := c.Audit.SpoolMaxBytes; b <= 0 {
		v.add("audit.spool_max_bytes", "must be greater than zero, got %d", b)
	}
}
