package gateway

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Upstream URL schemes (ProxyConfig.Upstream).
const (
	// UpstreamGemini proxies to a Gemini server over TLS.
	UpstreamGemini = "gemini"
	// UpstreamTCP proxies Gemini requests over plain TCP (a private network).
	UpstreamTCP = "tcp"
)

// UpstreamURL is a parsed upstream URL; see ParseUpstreamURL.
type UpstreamURL struct {
	// Scheme is UpstreamGemini or UpstreamTCP.
	Scheme string
	// Host is the host as NormalizeDialHost returns it: a lower-case name
	// (punycode for Unicode names) or an IP literal without brackets.
	Host string
	// Port is the port, DefaultGeminiPort when a gemini:// URL names none.
	Port int
}

// Address returns "host:port", for net.Dial.
func (u UpstreamURL) Address() string { return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) }

// ParseUpstreamURL parses an upstream: "gemini://host[:port]" (TLS, port
// DefaultGeminiPort when absent) or "tcp://host:port" (plain TCP, port
// required). Scheme and host are case-insensitive; the host is checked
// and normalised by NormalizeDialHost. The URL names nothing else: no user
// info, no path other than "/", no query, no fragment. NewProxy applies
// this rule; configuration validation uses it too, so that an upstream
// accepted at load is accepted at start.
func ParseUpstreamURL(raw string) (UpstreamURL, error) {
	bad := func(why string) (UpstreamURL, error) {
		return UpstreamURL{}, fmt.Errorf("invalid upstream %q: %s (want gemini://host[:port] or tcp://host:port)", raw, why)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("not a URL")
	}
	out := UpstreamURL{Scheme: strings.ToLower(u.Scheme)}
	if out.Scheme != UpstreamGemini && out.Scheme != UpstreamTCP {
		return bad("scheme must be gemini or tcp")
	}
	if u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return bad("only scheme, host and port are allowed")
	}
	if u.Hostname() == "" {
		return bad("missing host")
	}
	if out.Host, err = NormalizeDialHost(u.Hostname()); err != nil {
		return bad(err.Error())
	}
	switch ps := u.Port(); {
	case ps != "":
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || n == 0 {
			return bad("port must be 1..65535")
		}
		out.Port = int(n)
	case out.Scheme == UpstreamTCP:
		return bad("tcp:// needs a port")
	default:
		out.Port = DefaultGeminiPort
	}
	return out, nil
}

// NormalizeDialHost checks and normalises a host to connect to or listen
// on: an IP literal (an IPv6 one without brackets and without a zone) or
// a name as NormalizeHost takes it, except that labels may also hold '_'
// (container and service names such as "my_app" resolve, though they are
// not host names). It returns NormalizeHost's form: lower case, punycode,
// no trailing dot.
func NormalizeDialHost(h string) (string, error) {
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("invalid host %q: zones are not allowed", h)
		}
		return a.String(), nil
	}
	if n, err := NormalizeHost(h); err == nil {
		return n, nil
	}
	s := strings.TrimSuffix(h, ".")
	if strings.IndexByte(s, '_') >= 0 && len(s) <= maxNameLen && !isNumericLabel(lastLabel(s)) {
		ok := true
		for label := range strings.SplitSeq(s, ".") {
			ok = ok && label != "" && len(label) <= maxLabelLen && label[0] != '-' && label[len(label)-1] != '-' &&
				strings.Trim(strings.ToLower(label), "abcdefghijklmnopqrstuvwxyz0123456789-_") == ""
		}
		if ok {
			return strings.ToLower(s), nil
		}
	}
	return "", fmt.Errorf("invalid host name %q", h)
}
