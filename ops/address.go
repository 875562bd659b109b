package ops

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/chimalli/chimalli/tofu"
)

// Upstream schemes accepted in RouteConfig.Upstream.
const (
	// SchemeGemini proxies to a Gemini server over TLS.
	SchemeGemini = "gemini"
	// SchemeTCP proxies Gemini requests over plain TCP (a private network).
	SchemeTCP = "tcp"
)

// ParsePrefix parses an access-list entry: a CIDR ("203.0.113.0/24") or a
// bare IP address, which becomes a /32 or /128. IPv4-mapped IPv6 addresses
// and prefixes are unmapped ("::ffff:10.0.0.0/104" is 10.0.0.0/8), host bits
// are cleared, and zones are refused.
func ParsePrefix(s string) (netip.Prefix, error) {
	t := strings.TrimSpace(s)
	if !strings.Contains(t, "/") {
		a, err := netip.ParseAddr(t)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %w", s, err)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: zones are not allowed", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(t)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %w", s, err)
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

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
	// host): upstream_sni, or the upstream's host.
	ServerName string
}

// ParseUpstream parses "gemini://host:port" or "tcp://host:port". The URL
// may not carry user info, a path other than "/", a query or a fragment.
func ParseUpstream(raw string) (UpstreamTarget, error) {
	bad := func(why string) (UpstreamTarget, error) {
		return UpstreamTarget{}, fmt.Errorf("invalid upstream %q: %s (want gemini://host:port or tcp://host:port)", raw, why)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("not a URL")
	}
	if u.Scheme != SchemeGemini && u.Scheme != SchemeTCP {
		return bad("scheme must be gemini or tcp")
	}
	if u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return bad("only scheme, host and port are allowed")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return bad("missing host")
	}
	if port == "" {
		return bad("missing port")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return bad("invalid port")
	}
	if err := checkHostName(host); err != nil {
		return bad(err.Error())
	}
	return UpstreamTarget{Scheme: u.Scheme, Address: net.JoinHostPort(host, port), ServerName: host}, nil
}

// UpstreamTarget parses r.Upstream and applies r.UpstreamSNI.
func (r RouteConfig) UpstreamTarget() (UpstreamTarget, error) {
	t, err := ParseUpstream(r.Upstream)
	if err != nil {
		return UpstreamTarget{}, err
	}
	if r.UpstreamSNI != "" {
		t.ServerName = r.UpstreamSNI
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
		return "", 0, fmt.Errorf("invalid address %q: %w", s, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("invalid address %q: invalid port %q", s, p)
	}
	if h != "" {
		if _, err := netip.ParseAddr(h); err != nil {
			if err := checkHostName(h); err != nil {
				return "", 0, fmt.Errorf("invalid address %q: %w", s, err)
			}
		}
	}
	return h, uint16(n), nil
}

// checkHostName accepts an IP literal or a DNS-like name: dot-separated
// non-empty labels of letters, digits, '-' and '_' (non-ASCII letters and
// marks are allowed; the gateway converts them to punycode). A trailing dot is allowed.
func checkHostName(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	t := strings.TrimSuffix(s, ".")
	if t == "" || len(t) > 253 {
		return fmt.Errorf("invalid host name %q", s)
	}
	for label := range strings.SplitSeq(t, ".") {
		if label == "" {
			return fmt.Errorf("invalid host name %q: empty label", s)
		}
		for _, r := range label {
			ok := r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') ||
				(r > unicode.MaxASCII && r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)))
			if !ok {
				return fmt.Errorf("invalid host name %q: bad character %q", s, r)
			}
		}
	}
	return nil
}

// HostLiteral returns a host name or alias as the gateway takes it: an
// IPv6 literal may be written in brackets in the configuration
// ("[2001:db8::1]"), the gateway wants it without.
func HostLiteral(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
}
