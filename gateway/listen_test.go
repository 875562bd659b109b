package gateway

import (
	"context"
	"net"
	"strconv"
	"testing"
)

func TestListenNetwork(t *testing.T) {
	for addr, want := range map[string]string{
		"0.0.0.0:1965":          "tcp4",
		"127.0.0.1:0":           "tcp4",
		"[::ffff:10.0.0.1]:1":   "tcp4",
		"[::]:1965":             "tcp6",
		"[::1]:1965":            "tcp6",
		"[fe80::1%lo]:1965":     "tcp6",
		":1965":                 "tcp",
		"localhost:1965":        "tcp",
		"gemini.example:1965":   "tcp",
		"not an address at all": "tcp",
	} {
		if got := ListenNetwork(addr); got != want {
			t.Errorf("ListenNetwork(%q) = %q, want %q", addr, got, want)
		}
	}
}

// haveIPv6Loopback skips the test when the machine cannot listen on ::1.
func haveIPv6Loopback(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
}

// dialable reports whether a TCP connection to host:port is accepted.
func dialable(t *testing.T, network, host string, port int) bool {
	t.Helper()
	c, err := net.Dial(network, net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// A server told to listen on 0.0.0.0 takes IPv4 clients only: Go's "tcp"
// network would also bind [::] on a dual-stack system.
func TestOpenIPv4WildcardIsIPv4Only(t *testing.T) {
	haveIPv6Loopback(t)
	ts := startServer(t, func(c *Config) { c.Listen = "0.0.0.0:0" })
	port := ts.Addr().(*net.TCPAddr).Port
	if got := ts.Addr().String(); got != "0.0.0.0:"+strconv.Itoa(port) {
		t.Errorf("Addr() = %s, want 0.0.0.0:%d", got, port)
	}
	if !dialable(t, "tcp4", "127.0.0.1", port) {
		t.Error("127.0.0.1 refused")
	}
	if dialable(t, "tcp6", "::1", port) {
		t.Error("[::1] accepted by a server listening on 0.0.0.0")
	}
}

// An empty host listens on every address, IPv4 and IPv6; an IPv6 literal on
// IPv6 only.
func TestListenFamilies(t *testing.T) {
	haveIPv6Loopback(t)
	tests := []struct {
		addr     string
		v4, v6   bool
		dual     bool
		wantHost string
	}{
		{"127.0.0.1:0", true, false, false, "127.0.0.1"},
		{"0.0.0.0:0", true, false, false, "0.0.0.0"},
		{"[::1]:0", false, true, false, "::1"},
		{"[::]:0", false, true, false, "::"},
		{":0", true, true, true, "::"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			ln, err := Listen(context.Background(), tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			a := ln.Addr().(*net.TCPAddr)
			if a.IP.String() != tt.wantHost {
				t.Errorf("bound %s, want host %s", a, tt.wantHost)
			}
			if got := dialable(t, "tcp4", "127.0.0.1", a.Port); got != tt.v4 {
				t.Errorf("IPv4 client accepted = %v, want %v", got, tt.v4)
			}
			if got := dialable(t, "tcp6", "::1", a.Port); got != tt.v6 {
				t.Errorf("IPv6 client accepted = %v, want %v", got, tt.v6)
			}
			if got := DualStack(tt.addr, ln); got != tt.dual {
				t.Errorf("DualStack = %v, want %v", got, tt.dual)
			}
		})
	}
}
