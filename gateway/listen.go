package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// ListenNetwork returns the network Listen uses for addr ("host:port"):
// "tcp4" when the host is an IPv4 literal ("0.0.0.0" is every IPv4
// address and no IPv6 one), "tcp6" when it is an IPv6 literal ("::" is
// every IPv6 address and no IPv4 one), and "tcp" otherwise: an empty host
// listens on every IPv4 and IPv6 address, a host name on the first
// address it resolves to.
func ListenNetwork(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "tcp"
	}
	a, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return "tcp"
	case a.Is4() || a.Is4In6():
		return "tcp4"
	}
	return "tcp6"
}

// Listen listens on addr with the network ListenNetwork chooses, so that
// an IPv4 address listens on IPv4 only and an IPv6 address on IPv6 only.
// Open uses it; a caller that wants to bind before building a Server (to
// fail before writing anything) passes its listener to Serve.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, ListenNetwork(addr), addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// DualStack reports whether ln, returned by Listen(addr), accepts both
// IPv4 and IPv6 clients: addr has an empty host and the system bound the
// IPv6 wildcard address, which also takes IPv4 clients.
func DualStack(addr string, ln net.Listener) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return false
	}
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	return err == nil && ap.Addr().Is6() && ap.Addr().IsUnspecified()
}
