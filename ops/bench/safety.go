package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// ErrNotLoopback is returned (wrapped) when a target is refused because its
// host is not known to be a loopback address and remote targets are not
// allowed.
var ErrNotLoopback = errors.New("target is not loopback")

// overrideHint tells the user how to lift the check.
const overrideHint = "pass --allow-remote to load it anyway (only servers you operate)"

// CheckLoopback returns nil if host is "localhost" or resolves only to
// loopback addresses (127.0.0.0/8, ::1), and an error wrapping ErrNotLoopback
// that says why and how to override otherwise. A name that does not resolve
// is refused too: it is not known to be loopback. r nil means
// net.DefaultResolver.
func CheckLoopback(ctx context.Context, r Resolver, host string) error {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" {
		return nil
	}
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		if !isLoopback(a) {
			return fmt.Errorf("%w: %s is not a loopback address; %s", ErrNotLoopback, host, overrideHint)
		}
		return nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("%w: cannot resolve %s to check it is loopback (%w); %s", ErrNotLoopback, host, err, overrideHint)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%w: %s resolves to no address; %s", ErrNotLoopback, host, overrideHint)
	}
	for _, ia := range addrs {
		a, ok := netip.AddrFromSlice(ia.IP)
		if !ok || !isLoopback(a) {
			return fmt.Errorf("%w: %s resolves to %s, which is not loopback; %s", ErrNotLoopback, host, ia.IP, overrideHint)
		}
	}
	return nil
}

// isLoopback reports whether a is in 127.0.0.0/8 or is ::1 (IPv4-mapped
// loopback counts as IPv4).
func isLoopback(a netip.Addr) bool {
	return a.Unmap().IsLoopback()
}

// loopbackOnly is a net.Dialer.Control function that refuses, at connect
// time, any address that is not loopback, so a name that resolved to
// loopback during the check cannot be redirected elsewhere during the run.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: connect address %q: %w", ErrNotLoopback, address, err)
	}
	if !isLoopback(ap.Addr()) {
		return fmt.Errorf("%w: connect to %s refused; %s", ErrNotLoopback, address, overrideHint)
	}
	return nil
}
