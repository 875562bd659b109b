package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chimalli/chimalli/ops/config"
)

// A start that fails on something it can check first (a missing docroot,
// the port in use) leaves no data directory, key or audit file behind.
func TestFailedStartWritesNothing(t *testing.T) {
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name   string
		mutate func(c *config.Config, dir string)
		want   string
	}{
		{"missing docroot", func(c *config.Config, dir string) {
			r := config.DefaultRoute()
			r.Prefix, r.Docroot = "/", filepath.Join(dir, "no-such-docroot")
			c.Gateway.Hosts = []config.HostConfig{{Name: "a.example", Routes: []config.RouteConfig{r}}}
		}, "gateway.hosts[0].routes[0].docroot"},
		{"docroot is a file", func(c *config.Config, dir string) {
			f := filepath.Join(dir, "file")
			os.WriteFile(f, nil, 0o600)
			r := config.DefaultRoute()
			r.Prefix, r.Docroot = "/", f
			c.Gateway.Hosts = []config.HostConfig{{Name: "a.example", Routes: []config.RouteConfig{r}}}
		}, "docroot"},
		{"port in use", func(c *config.Config, _ string) { c.Gateway.Listen = busy.Addr().String() }, "address already in use"},
		{"audit directory missing", func(c *config.Config, dir string) {
			c.Audit.File = filepath.Join(dir, "no-such-dir", "audit.log")
		}, "audit.file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := config.DefaultConfig()
			cfg.Gateway.Listen = "127.0.0.1:0"
			cfg.Node.DataDir = filepath.Join(dir, "data")
			cfg.Audit.File = filepath.Join(dir, "audit.log")
			tt.mutate(cfg, dir)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			n, err := startNode(context.Background(), cfg, slog.New(slog.DiscardHandler), io.Discard)
			if err == nil {
				n.close(context.Background())
				t.Fatal("startNode succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			for _, p := range []string{cfg.Node.DataDir, cfg.Audit.File} {
				if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s exists after a failed start (%v)", p, err)
				}
			}
		})
	}
}

// The node still starts, and writes its state, when everything checks out.
func TestStartWritesDataDirAfterChecks(t *testing.T) {
	dir := t.TempDir()
	cfg := config.DefaultConfig()
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Node.DataDir = filepath.Join(dir, "data")
	cfg.Audit.File = filepath.Join(cfg.Node.DataDir, "audit.log") // inside the data dir it creates
	var out bytes.Buffer
	n, err := startNode(context.Background(), cfg, slog.New(slog.DiscardHandler), &out)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close(context.Background())
	for _, p := range []string{filepath.Join(cfg.CertDir(), "localhost.key"), cfg.Audit.File, filepath.Join(cfg.RaftDir(), "raft.db")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("after start: %v", err)
		}
	}
	if !strings.Contains(out.String(), "serving gemini on 127.0.0.1:") {
		t.Errorf("banner:\n%s", out.String())
	}
}

func TestBanner(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	// A config listening on listen (":0" for any port), as when the node
	// bound addr.
	at := func(listen string) *config.Config {
		c := config.DefaultConfig()
		c.Gateway.Listen = listen
		return c
	}
	withHost := config.DefaultConfig()
	withHost.Gateway.Hosts = []config.HostConfig{{Name: "a.example"}}
	public := config.DefaultConfig()
	public.Gateway.Listen, public.Gateway.PublicPorts = "127.0.0.1:1967", []int{1965}
	tests := []struct {
		name   string
		addr   net.Addr
		dual   bool
		cfg    *config.Config
		listen string
		try    string // "" for no try: line
	}{
		{"default port", tcp("127.0.0.1:1965"), false, at("127.0.0.1:1965"), "127.0.0.1:1965", "gemini://localhost/"},
		{"other port", tcp("127.0.0.1:1967"), false, at("127.0.0.1:1967"), "127.0.0.1:1967", "gemini://localhost:1967/"},
		{"ipv4 wildcard", tcp("0.0.0.0:1967"), false, at("0.0.0.0:1967"),
			"0.0.0.0:1967 (every IPv4 address; IPv6 clients need [::] or an empty host)", "gemini://localhost:1967/"},
		{"ipv6 wildcard", tcp("[::]:1965"), false, at("[::]:1965"),
			"[::]:1965 (every IPv6 address; IPv4 clients need 0.0.0.0 or an empty host)", "gemini://localhost/"},
		{"dual stack", tcp("[::]:1965"), true, at(":1965"), "[::]:1965 (every IPv4 and IPv6 address)", "gemini://localhost/"},
		{"ipv6 loopback", tcp("[::1]:1966"), false, at("[::1]:0"), "[::1]:1966", "gemini://localhost:1966/"},
		{"not reachable as localhost", tcp("192.0.2.7:1965"), false, at("192.0.2.7:1965"), "192.0.2.7:1965", ""},
		{"configured hosts", tcp("127.0.0.1:1965"), false, withHost, "127.0.0.1:1965", ""},
		{"another public port", tcp("127.0.0.1:1967"), false, public, "127.0.0.1:1967", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			printBanner(&b, tt.addr, tt.dual, nil, tt.cfg, nil)
			lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			if want := "chimalli: serving gemini on " + tt.listen; lines[0] != want {
				t.Errorf("first line %q, want %q", lines[0], want)
			}
			var try string
			for _, l := range lines {
				if u, ok := strings.CutPrefix(l, "try: chimalli get "); ok {
					try = u
				}
			}
			if try != tt.try {
				t.Errorf("try: %q, want %q\n%s", try, tt.try, b.String())
			}
		})
	}
}

// A node without node.id keeps the id it started with: its Raft state
// names it, and a container's host name changes with every container.
func TestNodeIDKeptAcrossHostNames(t *testing.T) {
	cfg := config.DefaultConfig()
	cfg.Node.DataDir = t.TempDir()
	id, write, err := nodeID(cfg)
	if err != nil || !write || id == "" {
		t.Fatalf("first start: %q %v %v", id, write, err)
	}
	if err := os.WriteFile(nodeIDFile(cfg), []byte("first-host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if id, write, err := nodeID(cfg); err != nil || write || id != "first-host" {
		t.Fatalf("later start: %q %v %v, want the kept id", id, write, err)
	}
	cfg.Node.ID = "configured"
	if id, _, _ := nodeID(cfg); id != "configured" {
		t.Fatalf("configured id: %q", id)
	}
}
