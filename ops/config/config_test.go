package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestDerivedPaths(t *testing.T) {
	c := DefaultConfig()
	c.Node.DataDir = "/var/lib/chimalli"
	tests := []struct {
		name, got, want string
	}{
		{"pins", c.PinsFile(), "/var/lib/chimalli/pins"},
		{"known hosts", c.KnownHostsFile(), "/var/lib/chimalli/upstream_known_hosts"},
		{"admin socket", c.AdminSocket(), "/var/lib/chimalli/admin.sock"},
		{"cert dir", c.CertDir(), "/var/lib/chimalli/certs"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	c.TOFU = TOFUConfig{PinsFile: "/p", KnownHostsFile: "kh"}
	c.Admin.Socket = "/run/a.sock"
	if c.PinsFile() != "/p" || c.KnownHostsFile() != "kh" || c.AdminSocket() != "/run/a.sock" {
		t.Errorf("explicit paths not kept: %q %q %q", c.PinsFile(), c.KnownHostsFile(), c.AdminSocket())
	}
}

func TestCertFiles(t *testing.T) {
	c := DefaultConfig()
	c.Node.DataDir = "/d"
	cert, key, gen := c.CertFiles(HostConfig{Name: "Example.ORG."})
	if cert != filepath.Join("/d", "certs", "example.org.crt") || key != filepath.Join("/d", "certs", "example.org.key") || !gen {
		t.Errorf("generated CertFiles = %q %q %v", cert, key, gen)
	}
	cert, key, gen = c.CertFiles(HostConfig{Name: "a.example", Cert: "/c", Key: "/k"})
	if cert != "/c" || key != "/k" || gen {
		t.Errorf("given CertFiles = %q %q %v", cert, key, gen)
	}
}

func TestPublicPorts(t *testing.T) {
	tests := []struct {
		name    string
		listen  string
		gateway []int
		host    []int
		want    []uint16
	}{
		{"listen port", "127.0.0.1:1965", nil, nil, []uint16{1965}},
		{"gateway list", "127.0.0.1:1965", []int{443, 1965}, nil, []uint16{443, 1965}},
		{"host list wins", "127.0.0.1:1965", []int{443}, []int{2000}, []uint16{2000}},
		{"any port", ":0", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Gateway.Listen, c.Gateway.PublicPorts = tt.listen, tt.gateway
			if got := c.PublicPorts(HostConfig{PublicPorts: tt.host}); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PublicPorts = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUploadLimit(t *testing.T) {
	c := DefaultConfig()
	if got := c.UploadLimit(RouteConfig{}); got != 10*MiB {
		t.Errorf("inherited limit = %v, want 10MiB", got)
	}
	if got := c.UploadLimit(RouteConfig{MaxUploadBytes: KiB}); got != KiB {
		t.Errorf("route limit = %v, want 1KiB", got)
	}
}

func TestNodeID(t *testing.T) {
	c := DefaultConfig()
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name:", err)
	}
	if id, err := c.NodeID(); err != nil || id != host {
		t.Errorf("NodeID = %q, %v; want the host name %q", id, err, host)
	}
	c.Node.ID = "n1"
	if id, _ := c.NodeID(); id != "n1" {
		t.Errorf("NodeID = %q, want n1", id)
	}
}

func TestWelcomeCapsule(t *testing.T) {
	if !DefaultConfig().UsesWelcomeCapsule() {
		t.Error("default config should serve the welcome capsule")
	}
	if validConfig().UsesWelcomeCapsule() {
		t.Error("a config with hosts should not serve the welcome capsule")
	}
	if WelcomeHostName != "localhost" || !reflect.DeepEqual(WelcomeHostAliases(), []string{"127.0.0.1", "::1"}) {
		t.Error("welcome host changed; update docs/configuration.md")
	}
}
