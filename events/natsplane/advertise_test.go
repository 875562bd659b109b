package natsplane_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chimalli/chimalli/events/natsplane"
	"github.com/chimalli/chimalli/ops/pki"
	"github.com/chimalli/chimalli/ops/testlog"
	"github.com/nats-io/nats.go"
)

// routeLog counts nats-server's log lines about routes that no explicit
// route explains: TLS route handshake failures, and dials of an address
// that is not in the route list (an implicit route to a gossiped address).
type routeLog struct {
	slog.Handler
	routes []string // the configured routes: dials of these are expected

	mu         sync.Mutex
	handshakes []string
	implicit   []string
}

func (h *routeLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *routeLog) Handle(ctx context.Context, r slog.Record) error {
	msg := r.Message
	h.mu.Lock()
	if strings.Contains(msg, "TLS route handshake error") {
		h.handshakes = append(h.handshakes, msg)
	}
	// "Trying to connect to route on <host:port> (<ip:port>)"
	if rest, ok := strings.CutPrefix(msg, "Trying to connect to route on "); ok {
		if hp, _, _ := strings.Cut(rest, " "); !slices.Contains(h.routes, hp) {
			h.implicit = append(h.implicit, msg)
		}
	}
	h.mu.Unlock()
	if r.Level >= slog.LevelInfo && h.Handler.Enabled(ctx, r.Level) {
		return h.Handler.Handle(ctx, r)
	}
	return nil
}

func (h *routeLog) WithAttrs([]slog.Attr) slog.Handler { return h } // the adapter's component attribute
func (h *routeLog) WithGroup(string) slog.Handler      { return h }

func (h *routeLog) counts() (handshakes, implicit []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.handshakes), slices.Clone(h.implicit)
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// wildcardPort returns a port free on every interface a moment ago.
func wildcardPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// advertised is what startAdvertiseCluster's servers advertise.
type advertised struct {
	routes, clients bool
}

// startAdvertiseCluster starts three servers as a compose cluster runs
// them: each listens for routes on the wildcard address and is named in the
// route list by an address of its certificate (127.0.0.2 to 127.0.0.4, as a
// compose service name), while the address its route connections come from
// (127.0.0.1, as a container's IP) is in no certificate. Each client port
// listens on the server's own address; adv says whether the servers
// advertise their route and client addresses.
func startAdvertiseCluster(t *testing.T, adv advertised) (map[string]*natsplane.Server, *routeLog, *pki.Layout) {
	ids := []string{"n1", "n2", "n3"}
	hosts := map[string][]string{}
	routes := make([]string, len(ids))
	clients := make([]string, len(ids))
	ports := make([]int, len(ids))
	for i, id := range ids {
		ip := "127.0.0." + strconv.Itoa(i+2)
		hosts[id] = []string{ip}
		ports[i] = wildcardPort(t)
		routes[i] = net.JoinHostPort(ip, strconv.Itoa(ports[i]))
		clients[i] = freeAddrOn(t, ip)
	}
	l, err := pki.Init(filepath.Join(t.TempDir(), "certs"), pki.InitOptions{Nodes: ids, Hosts: hosts, NoLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	log := &routeLog{Handler: testlog.New(t).Handler(), routes: routes}
	out := map[string]*natsplane.Server{}
	for i, id := range ids {
		cfg := natsplane.Config{
			Name: id, ClusterName: "edge", StoreDir: filepath.Join(t.TempDir(), "nats"), Logger: slog.New(log),
			ClientListen: clients[i], ClientTLS: clientTLS(t, l, id), Users: users(ids...),
			ClusterListen: net.JoinHostPort("0.0.0.0", strconv.Itoa(ports[i])), ClusterTLS: routeTLS(t, l, id),
			Routes: routes,
		}
		if adv.routes {
			cfg.ClusterAdvertise = routes[i]
		}
		if adv.clients {
			cfg.ClientAdvertise = clients[i]
		}
		out[id] = start(t, cfg)
	}
	return out, log, l
}

// freeAddrOn returns an address of host with a port free a moment ago.
func freeAddrOn(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitRoutes waits until every server has its routes to the others up,
// each one a configured route.
func waitRoutes(t *testing.T, servers map[string]*natsplane.Server) {
	t.Helper()
	for id, s := range servers {
		eventually(t, id+"'s routes", func(context.Context) error {
			rz, err := s.Routez()
			if err != nil {
				return err
			}
			var peers []string
			for _, r := range rz.Routes {
				if !r.IsConfigured {
					return fmt.Errorf("route to %s (%s:%d) is not a configured one", r.RemoteName, r.IP, r.Port)
				}
				if !slices.Contains(peers, r.RemoteName) {
					peers = append(peers, r.RemoteName)
				}
			}
			if len(peers) != len(servers)-1 {
				return fmt.Errorf("routes to %v", peers)
			}
			return nil
		})
	}
}

// TestClusterAdvertiseStopsImplicitRoutes reproduces the compose cluster's
// endless "TLS route handshake error": without an advertised route address
// a server gossips the IP its route connection came from, and the others
// dial it and cannot verify it. With the route list's own entry advertised,
// the gossiped address is a configured route and nobody dials it again.
func TestClusterAdvertiseStopsImplicitRoutes(t *testing.T) {
	servers, log, _ := startAdvertiseCluster(t, advertised{routes: true})
	waitRoutes(t, servers)
	// Let JetStream's groups form over the routes: by then every route
	// INFO has been gossiped and acted upon.
	cfg := natsplane.StreamsConfig{ClusterName: "edge", Replicas: 3}
	if err := natsplane.WaitStreams(ctxT(t), jsOf(t, servers["n1"].Conn()), cfg, func(error) {}); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, servers)
	if hs, im := log.counts(); len(hs) > 0 || len(im) > 0 {
		t.Errorf("%d route handshake errors (first %q); %d dials of unconfigured addresses (first %q)", len(hs), first(hs), len(im), first(im))
	}
}

// TestClusterWithoutAdvertiseDialsGossipedAddresses is the control of the
// test above: the same cluster without advertised routes (no route entry is
// named by the node id, so none is derived) dials the gossiped addresses
// and fails their TLS handshakes, over and over.
func TestClusterWithoutAdvertiseDialsGossipedAddresses(t *testing.T) {
	// Whether a server dials a gossiped address depends on which routes
	// connect first, so a cluster can form without one (seen once under
	// load): try up to three fresh clusters.
	for attempt := 1; attempt <= 3; attempt++ {
		var seen bool
		var hs, im int
		t.Run(fmt.Sprintf("attempt %d", attempt), func(t *testing.T) {
			_, log, _ := startAdvertiseCluster(t, advertised{})
			deadline := time.Now().Add(15 * time.Second)
			for time.Now().Before(deadline) {
				h, i := log.counts()
				if hs, im = len(h), len(i); hs > 0 && im > 0 {
					seen = true
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		if seen {
			return
		}
		t.Logf("attempt %d: %d handshake errors, %d implicit dials", attempt, hs, im)
	}
	t.Fatal("three clusters without advertise never dialled a gossiped address: TestClusterAdvertiseStopsImplicitRoutes no longer shows anything")
}

// TestClientsAreToldOnlyAdvertisedServers connects the admin to n1 of a
// cluster and looks at the other servers it is told of: none without
// ClientAdvertise (a server would otherwise tell its interface addresses,
// which a client cannot verify), the advertised addresses with it.
func TestClientsAreToldOnlyAdvertisedServers(t *testing.T) {
	for _, adv := range []advertised{{routes: true}, {routes: true, clients: true}} {
		t.Run(fmt.Sprintf("client advertise %v", adv.clients), func(t *testing.T) {
			servers, _, l := startAdvertiseCluster(t, adv)
			waitRoutes(t, servers)
			var others []string
			for _, id := range []string{"n2", "n3"} {
				others = append(others, "tls://"+servers[id].ClientAddr().String())
			}
			slices.Sort(others)
			nc, err := nats.Connect("tls://"+servers["n1"].ClientAddr().String(),
				nats.Secure(load(t, l.Admin()).ClientConfig("")), nats.MaxReconnects(0))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if !adv.clients {
				if d := nc.DiscoveredServers(); len(d) > 0 {
					t.Fatalf("told of %v, want no other server", d)
				}
				return
			}
			eventually(t, "the other servers advertised", func(context.Context) error {
				d := nc.DiscoveredServers()
				slices.Sort(d)
				if !slices.Equal(d, others) {
					return fmt.Errorf("told of %v, want %v", d, others)
				}
				return nil
			})
		})
	}
}

// TestClusterAdvertiseDefault checks the route address a server
// advertises when ClusterAdvertise is empty: the route entry named by the
// server's name with its route port, else none (nats-server's own choice).
func TestClusterAdvertiseDefault(t *testing.T) {
	l := newPKI(t, "n1", "n2", "n3")
	tests := []struct {
		name, listen, advertise string
		routes                  []string
		want                    string
	}{
		{"compose: named by the node id", "0.0.0.0:6222", "", []string{"n1:6222", "n2:6222", "n3:6222"}, "n1:6222"},
		{"the name in another case", "0.0.0.0:6222", "", []string{"N1:6222", "n2:6222"}, "N1:6222"},
		{"set explicitly", "0.0.0.0:6222", "localhost:6222", []string{"n1:6222", "n2:6222"}, "localhost:6222"},
		{"routes by address", "127.0.0.1:6221", "", []string{"127.0.0.1:6221", "127.0.0.1:6222"}, ""},
		{"the name with another port", "0.0.0.0:7222", "", []string{"n1:6222", "n2:6222"}, ""},
		{"any free port", "127.0.0.1:0", "", []string{"n1:6222", "n2:6222"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := natsplane.Options(natsplane.Config{
				Name: "n1", ClusterName: "edge", StoreDir: t.TempDir(),
				ClientListen: "127.0.0.1:0", ClientTLS: clientTLS(t, l, "n1"), Users: users("n1"),
				ClusterListen: tt.listen, ClusterTLS: routeTLS(t, l, "n1"), Routes: tt.routes, ClusterAdvertise: tt.advertise,
			})
			if err != nil {
				t.Fatal(err)
			}
			if o.Cluster.Advertise != tt.want {
				t.Errorf("advertise %q, want %q", o.Cluster.Advertise, tt.want)
			}
			if !o.Cluster.NoAdvertise {
				t.Error("client URLs advertised without a client advertise address")
			}
		})
	}
}
