package config

import (
	"strings"
	"testing"
	"time"
)

// natsCluster returns node n1 of a three-node cluster with the embedded
// NATS clustered over routes, as in docs/examples/local-cluster.
func natsCluster() *Config {
	c := DefaultConfig()
	c.Node.ID = "n1"
	c.Cluster.Listen, c.Cluster.Certs = "127.0.0.1:7001", "certs"
	c.Cluster.Peers = []string{"n1=127.0.0.1:7001", "n2=127.0.0.1:7002", "n3=127.0.0.1:7003"}
	c.NATS.Listen, c.NATS.ClusterListen = "127.0.0.1:4221", "127.0.0.1:6221"
	c.NATS.Routes = []string{"127.0.0.1:6221", "127.0.0.1:6222", "127.0.0.1:6223"}
	return c
}

func TestNATSValidConfigs(t *testing.T) {
	external := DefaultConfig()
	external.NATS.URL, external.NATS.Creds, external.NATS.Replicas = "tls://a.example:4222, tls://b.example:4222", "/etc/chimalli/nats.creds", 3
	external.NATS.TLSCA, external.NATS.TLSCert, external.NATS.TLSKey = "ca.pem", "c.pem", "k.pem"
	advertised := natsCluster()
	advertised.NATS.ClusterAdvertise, advertised.NATS.Advertise = "n1:6221", "n1:4221"
	clientOnly := natsCluster()
	clientOnly.NATS.ClusterListen, clientOnly.NATS.Routes = "", nil
	tests := []struct {
		name     string
		cfg      *Config
		replicas int
		embedded bool
	}{
		{"default: in process only", DefaultConfig(), 1, true},
		{"client port, no routes", clientOnly, 1, true},
		{"three routes", natsCluster(), 3, true},
		{"three routes, advertised", advertised, 3, true},
		{"external", external, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := tt.cfg.NATSReplicas(); got != tt.replicas {
				t.Errorf("replicas %d, want %d", got, tt.replicas)
			}
			if got := tt.cfg.NATSEmbedded(); got != tt.embedded {
				t.Errorf("embedded %v, want %v", got, tt.embedded)
			}
		})
	}
	five := natsCluster()
	five.NATS.Routes = append(five.NATS.Routes, "127.0.0.1:6224", "127.0.0.1:6225")
	if got := five.NATSReplicas(); got != 3 {
		t.Errorf("five routes: replicas %d, want 3", got)
	}
	ext := DefaultConfig()
	ext.NATS.URL = "nats://127.0.0.1:4222"
	if got := ext.NATSReplicas(); got != 1 {
		t.Errorf("external without nats.replicas: %d, want 1", got)
	}
}

func TestNATSValidateMessages(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"client port without certs", func(c *Config) { c.Cluster.Listen, c.Cluster.Certs, c.Cluster.Peers = "", "", nil },
			"nats.listen: needs cluster.certs"},
		{"client port not an address", func(c *Config) { c.NATS.Listen = "4221" }, `nats.listen: "4221" is not host:port`},
		{"routes without a client port", func(c *Config) { c.NATS.Listen = "" }, "nats.listen: required with nats.cluster_listen"},
		{"routes without a node id", func(c *Config) { c.Node.ID, c.Cluster.Listen, c.Cluster.Peers = "", "", nil }, "nats.cluster_listen: needs node.id"},
		{"one route", func(c *Config) { c.NATS.Routes = []string{"127.0.0.1:6221"} }, "nats.routes: list every node's nats.cluster_listen address"},
		{"routes without a cluster port", func(c *Config) { c.NATS.ClusterListen = "" }, "nats.routes: needs nats.cluster_listen"},
		{"route twice", func(c *Config) { c.NATS.Routes[2] = "127.0.0.1:6221" }, "nats.routes[2]: 127.0.0.1:6221 listed twice"},
		{"route not an address", func(c *Config) { c.NATS.Routes[1] = "n2" }, `nats.routes[1]: "n2" is not host:port`},
		{"cluster name with a dot", func(c *Config) { c.NATS.ClusterName = "a.b" }, `nats.cluster_name: cluster name "a.b"`},
		{"cluster name empty", func(c *Config) { c.NATS.ClusterName = "" }, `nats.cluster_name: cluster name ""`},
		{"url and embedded ports", func(c *Config) { c.NATS.URL = "nats://a.example:4222" }, "nats.listen: must be empty with nats.url"},
		{"url scheme", func(c *Config) { *c = *DefaultConfig(); c.NATS.URL = "http://a.example:4222" }, `nats.url: URL 1 "http://a.example:4222"`},
		{"url with a password", func(c *Config) { *c = *DefaultConfig(); c.NATS.URL = "nats://u:p@a.example:4222" }, "without user info (use nats.creds)"},
		{"creds without url", func(c *Config) { c.NATS.Creds = "x.creds" }, "nats.creds: only with nats.url"},
		{"cert without key", func(c *Config) { *c = *DefaultConfig(); c.NATS.URL, c.NATS.TLSCert = "tls://a.example:4222", "c.pem" }, "nats.tls_cert: nats.tls_cert and nats.tls_key must both be set"},
		{"replicas above the cluster", func(c *Config) { c.NATS.Replicas = 4 }, "nats.replicas: 4, but the embedded cluster has 3 servers"},
		{"replicas above JetStream's limit", func(c *Config) { c.NATS.Replicas = 6 }, "nats.replicas: must be 0 (derived) to 5, got 6"},
		{"duplicate window", func(c *Config) { c.NATS.DuplicateWindow = 0 }, "nats.duplicate_window: must be > 0"},
		{"events max age", func(c *Config) { c.NATS.EventsMaxAge = -time.Hour }, "nats.events_max_age: must be >= 0"},
		{"audit stream max age", func(c *Config) { c.Audit.StreamMaxAge = -time.Hour }, "audit.stream_max_age: must be >= 0"},
		{"audit stream max bytes", func(c *Config) { c.Audit.StreamMaxBytes = -1 }, "audit.stream_max_bytes: must be >= 0"},
		{"audit spool max bytes", func(c *Config) { c.Audit.SpoolMaxBytes = 0 }, "audit.spool_max_bytes: must be greater than zero"},
		{"cluster advertise without a port", func(c *Config) { c.NATS.ClusterAdvertise = "n1" }, `nats.cluster_advertise: "n1": want host:port`},
		{"cluster advertise port 0", func(c *Config) { c.NATS.ClusterAdvertise = "n1:0" }, `nats.cluster_advertise: "n1:0": want host:port`},
		{"cluster advertise without a route port", func(c *Config) {
			c.NATS.ClusterListen, c.NATS.Routes, c.NATS.ClusterAdvertise = "", nil, "n1:6222"
		}, "nats.cluster_advertise: needs nats.cluster_listen"},
		{"advertise without a host", func(c *Config) { c.NATS.Advertise = ":4222" }, `nats.advertise: ":4222": want host:port`},
		{"advertise without a client port", func(c *Config) {
			c.NATS.Listen, c.NATS.ClusterListen, c.NATS.Routes, c.NATS.Advertise = "", "", nil, "n1:4222"
		}, "nats.advertise: needs nats.listen"},
		{"advertise with url", func(c *Config) {
			*c = *DefaultConfig()
			c.NATS.URL, c.NATS.ClusterAdvertise = "tls://a.example:4222", "n1:6222"
		}, "nats.cluster_advertise: must be empty with nats.url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := natsCluster()
			tt.mutate(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNATSKeysFromTheEnvironment(t *testing.T) {
	cfg, err := Load(LoadOptions{Env: []string{
		"CHIMALLI_NATS__URL=tls://nats.example:4222",
		"CHIMALLI_NATS__REPLICAS=3",
		"CHIMALLI_AUDIT__STREAM_MAX_BYTES=2GiB",
		"CHIMALLI_AUDIT__STREAM_MAX_AGE=168h",
	}})
	if err != nil {
		t.Fatal(err)
	}
	compose, err := Load(LoadOptions{Env: []string{
		"CHIMALLI_NODE__ID=node1",
		"CHIMALLI_CLUSTER__CERTS=/certs",
		"CHIMALLI_NATS__LISTEN=0.0.0.0:4222",
		"CHIMALLI_NATS__CLUSTER_LISTEN=0.0.0.0:6222",
		"CHIMALLI_NATS__ROUTES=node1:6222,node2:6222,node3:6222",
		"CHIMALLI_NATS__CLUSTER_ADVERTISE=node1:6222",
		"CHIMALLI_NATS__ADVERTISE=node1:4222",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if compose.NATS.ClusterAdvertise != "node1:6222" || compose.NATS.Advertise != "node1:4222" {
		t.Errorf("advertise from the environment: %+v", compose.NATS)
	}
	if cfg.NATS.URL != "tls://nats.example:4222" || cfg.NATSReplicas() != 3 || cfg.Audit.StreamMaxBytes != 2*GiB || cfg.Audit.StreamMaxAge != 168*time.Hour {
		t.Errorf("nats %+v, audit %+v", cfg.NATS, cfg.Audit)
	}
}
