package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/chimalli/chimalli/gateway"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/tofu"
)

// Upstream schemes accepted in RouteConfig.Upstream (the gateway's).
const (
	// SchemeGemini proxies to a Gemini server over TLS.
	SchemeGemini = gateway.UpstreamGemini
	// SchemeTCP proxies Gemini requests over plain TCP (a private network).
	SchemeTCP = gateway.UpstreamTCP
)

// ParsePrefix parses an access-list entry: a CIDR ("203.0.113.0/24") or a
// bare IP address, which becomes a /32 or /128. IPv4-mapped IPv6 addresses
// and prefixes are unmapped ("::ffff:10.0.0.0/104" is 10.0.0.0/8), host bits
// are cleared, and zones are refused. It is raftstore.ParsePrefix, the one
// rule for prefixes in the configuration, the admin API and ban requests.
func ParsePrefix(s string) (netip.Prefix, error) { return raftstore.ParsePrefix(s) }

// parsePrefixes parses every entry with ParsePrefix.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	var errs []error
	for _, s := range list {
		p, err := ParsePrefix(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// AllowPrefixes returns access.allow parsed with ParsePrefix.
func (a AccessConfig) AllowPrefixes() ([]netip.Prefix, error) { return parsePrefixes(a.Allow) }

// DenyPrefixes returns access.deny parsed with ParsePrefix.
func (a AccessConfig) DenyPrefixes() ([]netip.Prefix, error) { return parsePrefixes(a.Deny) }

// Fingerprints returns allowed_fingerprints parsed with tofu.ParseFingerprint.
func (r RouteConfig) Fingerprints() ([]tofu.Fingerprint, error) {
	out := make([]tofu.Fingerprint, 0, len(r.AllowedFingerprints))
	var errs []error
	for _, s := range r.AllowedFingerprints {
		f, err := tofu.ParseFingerprint(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, f)
	}
	return out, errors.Join(errs...)
}

// UpstreamTarget is a parsed RouteConfig.Upstream.
type UpstreamTarget struct {
	// Scheme is SchemeGemini or SchemeTCP.
	Scheme string
	// Address is "host:port", ready for net.Dial.
	Address string
	// ServerName is the name sent upstream (TLS SNI and the request URL's
	// host): upstream_sni, or the upstream's host, normalised.
	ServerName string
}

// UpstreamTarget parses r.Upstream with the gateway's rule
// (gateway.ParseUpstreamURL, the one NewProxy applies: gemini:// defaults
// to port 1965, tcp:// needs a port) and applies r.UpstreamSNI.
func (r RouteConfig) UpstreamTarget() (UpstreamTarget, error) {
	u, err := gateway.ParseUpstreamURL(r.Upstream)
	if err != nil {
		return UpstreamTarget{}, err
	}
	t := UpstreamTarget{Scheme: u.Scheme, Address: u.Address(), ServerName: u.Host}
	if r.UpstreamSNI != "" {
		if t.ServerName, err = gateway.NormalizeHost(r.UpstreamSNI); err != nil {
			return UpstreamTarget{}, fmt.Errorf("invalid host name %q: %w", r.UpstreamSNI, err)
		}
	}
	return t, nil
}

// ListenPort returns the port of gateway.listen (0 means any free port).
func (g GatewayConfig) ListenPort() (uint16, error) {
	_, p, err := parseListen(g.Listen)
	return p, err
}

// parseListen checks a listen address "host:port": host empty, an IP
// literal or a host name; port 0..65535.
func parseListen(s string) (host string, port uint16, err error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("invalid address %q: want host:port, e.g. 127.0.0.1:1965, [::1]:1965 or :1965", s)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("invalid address %q: invalid port %q", s, p)
	}
	if _, err := netip.ParseAddr(h); h != "" && err != nil {
		// A name: the gateway's rule for a host to dial or listen on.
		if _, err := gateway.NormalizeDialHost(h); err != nil {
			return "", 0, fmt.Errorf("invalid address %q: %w", s, err)
		}
	}
	return h, uint16(n), nil
}

// HostLiteral returns a host name or alias as the gateway takes it: an
// IPv6 literal may be written in brackets in the configuration
// ("[2001:db8::1]"), the gateway wants it without.
func HostLiteral(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
}
