package bench

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeResolver answers from a map; other names fail like an unreachable DNS
// server.
type fakeResolver map[string][]string

func (f fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	ips, ok := f[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]net.IPAddr, 0, len(ips))
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

func TestCheckLoopback(t *testing.T) {
	res := fakeResolver{
		"loop.test":  {"127.0.0.1", "::1"},
		"loop2.test": {"127.3.2.1"},
		"mixed.test": {"127.0.0.1", "10.0.0.1"},
		"empty.test": {},
	}
	for _, tc := range []struct {
		host    string
		ok      bool
		because string
	}{
		{"localhost", true, ""},
		{"LocalHost.", true, ""},
		{"127.0.0.1", true, ""},
		{"127.255.0.9", true, ""},
		{"::1", true, ""},
		{"[::1]", true, ""},
		{"::ffff:127.0.0.1", true, ""},
		{"loop.test", true, ""},
		{"loop2.test", true, ""},
		{"10.0.0.1", false, "not a loopback address"},
		{"0.0.0.0", false, "not a loopback address"},
		{"::2", false, "not a loopback address"},
		{"192.168.1.1", false, "not a loopback address"},
		{"example.org", false, "cannot resolve"},
		{"mixed.test", false, "10.0.0.1, which is not loopback"},
		{"empty.test", false, "no address"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			err := CheckLoopback(context.Background(), res, tc.host)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrNotLoopback) {
				t.Fatalf("err = %v, want ErrNotLoopback", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.because) || !strings.Contains(msg, "--allow-remote") {
				t.Errorf("message %q lacks %q or the override hint", msg, tc.because)
			}
		})
	}
}

// With the system resolver, a public name is refused whether DNS works
// (it resolves elsewhere) or not (it cannot be checked).
func TestCheckLoopbackSystemResolver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "10.0.0.1", "example.org"} {
		err := CheckLoopback(ctx, nil, host)
		wantOK := host == "localhost" || host == "127.0.0.1" || host == "::1"
		if wantOK != (err == nil) {
			t.Errorf("%s: err = %v, want ok=%v", host, err, wantOK)
		}
		if err != nil && !errors.Is(err, ErrNotLoopback) {
			t.Errorf("%s: err %v does not wrap ErrNotLoopback", host, err)
		}
	}
}

func TestLoopbackOnlyAtConnect(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:1965", true},
		{"127.9.9.9:1", true},
		{"[::1]:1965", true},
		{"10.0.0.1:1965", false},
		{"[2001:db8::1]:1965", false},
		{"not an address", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			err := loopbackOnly("tcp", tc.addr, nil)
			if (err == nil) != tc.ok {
				t.Errorf("loopbackOnly(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
			}
		})
	}
}
