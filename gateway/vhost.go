package gateway

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/chimalli/chimalli/tofu"
)

// Host is one virtual host: the names it answers for, its certificate and
// its routes. The first Host of a Config is the default: it answers
// handshakes without SNI or with an unknown name (whose requests then get
// 53, since the URL host must equal the SNI).
type Host struct {
	// Name is the host's DNS name (any case, Unicode or punycode).
	Name string
	// Aliases are other names or IP literals served by this host. A client
	// that sends no SNI (one that connects to an IP literal) may use any of
	// Name and Aliases as the URL host.
	Aliases []string
	// PublicPorts are the ports a URL may name explicitly. Empty means the
	// port the server listens on. Port-mapped deployments (Compose, NAT)
	// list the outside port here. A URL without a port is always accepted.
	PublicPorts []int
	// CertFile and KeyFile are PEM files, reloaded when they change.
	CertFile, KeyFile string
	// Routes, tried longest prefix first. A request matching none gets 51.
	Routes []Route
}

type vhost struct {
	name   string
	names  []string
	ports  []int
	cert   *certSource
	routes []*compiledRoute // longest prefix first
	// needCert: a route refuses anonymous clients, so sessions without a
	// certificate are never resumed here (see SessionPolicy).
	needCert bool
}

type compiledRoute struct {
	Route
	claimKey    tofu.PinKey
	tooLargeMsg string
}

// compileHost validates h and builds its runtime form. maxUpload is the
// server-wide Titan cap used by routes that set none.
func compileHost(h Host, maxUpload int64) (*vhost, error) {
	name, err := NormalizeHost(h.Name)
	if err != nil {
		return nil, fmt.Errorf("host %q: %w", h.Name, err)
	}
	v := &vhost{name: name, names: []string{name}, ports: slices.Clone(h.PublicPorts)}
	for _, a := range h.Aliases {
		n, err := NormalizeHost(a)
		if err != nil {
			return nil, fmt.Errorf("host %q: alias %q: %w", h.Name, a, err)
		}
		if !slices.Contains(v.names, n) {
			v.names = append(v.names, n)
		}
	}
	for _, p := range v.ports {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("host %q: public port %d out of range", h.Name, p)
		}
	}
	if h.CertFile == "" || h.KeyFile == "" {
		return nil, fmt.Errorf("host %q: %w", h.Name, errNoCertificate)
	}
	if v.cert, err = newCertSource(h.CertFile, h.KeyFile); err != nil {
		return nil, fmt.Errorf("host %q: %w", h.Name, err)
	}
	seen := map[string]bool{}
	for i := range h.Routes {
		rt := &compiledRoute{Route: h.Routes[i]}
		if err := ValidPrefix(rt.Prefix); err != nil {
			return nil, fmt.Errorf("host %q: route %d: %w", h.Name, i, err)
		}
		if seen[rt.Prefix] {
			return nil, fmt.Errorf("host %q: route %d: duplicate prefix %q", h.Name, i, rt.Prefix)
		}
		seen[rt.Prefix] = true
		if rt.Handler == nil {
			return nil, fmt.Errorf("host %q: route %q: no handler", h.Name, rt.Prefix)
		}
		if rt.MaxUploadBytes <= 0 {
			rt.MaxUploadBytes = maxUpload
		}
		rt.claimKey = tofu.PinKey{Kind: tofu.PinClient, Scope: name + rt.Prefix}
		rt.tooLargeMsg = "upload too large: limit is " + strconv.FormatInt(rt.MaxUploadBytes, 10) + " bytes"
		v.routes = append(v.routes, rt)
		v.needCert = v.needCert || rt.needsCert()
	}
	slices.SortStableFunc(v.routes, func(a, b *compiledRoute) int { return len(b.Prefix) - len(a.Prefix) })
	return v, nil
}

var errNoCertificate = errors.New("no certificate: set both cert and key files")

// accepts reports whether the request's URL names this host: the host must
// equal the SNI when one was sent, be one of the host's names, and any
// explicit port must be a public port.
func (v *vhost) accepts(r *Request) bool {
	if r.SNI != "" && r.Host != r.SNI {
		return false
	}
	if !slices.Contains(v.names, r.Host) {
		return false
	}
	return r.Port == 0 || slices.Contains(v.ports, r.Port)
}

// route returns the longest route whose prefix contains path, or nil.
func (v *vhost) route(path string) *compiledRoute {
	for _, rt := range v.routes {
		if PrefixMatch(rt.Prefix, path) {
			return rt
		}
	}
	return nil
}
