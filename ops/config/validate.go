package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"github.com/chimalli/chimalli/ops/logging"
	"github.com/chimalli/chimalli/raftstore"

	"github.com/chimalli/chimalli/gateway"
	"github.com/chimalli/chimalli/tofu"
)

// FieldError is a problem with one configuration key. Key is the full key
// path ("gateway.hosts[0].routes[1].prefix") or, for the environment, the
// variable name.
type FieldError struct {
	Key string
	Err error
}

// Error returns "<key>: <problem>".
func (e *FieldError) Error() string { return e.Key + ": " + e.Err.Error() }

// Unwrap returns the problem.
func (e *FieldError) Unwrap() error { return e.Err }

// MaxSocketPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const MaxSocketPath = 107

// validator collects problems.
type validator struct{ errs []error }

// sessionLifetime checks a TLS session lifetime: > 0 and at most the
// 7 days crypto/tls resumes at most.
func (v *validator) sessionLifetime(key string, d time.Duration) {
	if d <= 0 || d > gateway.MaxSessionLifetime {
		v.add(key, "must be > 0 and at most 168h, got %s", d)
	}
}

func (v *validator) add(key, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Key: key, Err: fmt.Errorf(format, args...)})
}

func (v *validator) addErr(key string, err error) {
	v.errs = append(v.errs, &FieldError{Key: key, Err: err})
}

func (v *validator) positive(key string, d time.Duration) {
	if d <= 0 {
		v.add(key, "must be > 0, got %s", d)
	}
}

func (v *validator) positiveInt(key string, n int) {
	if n <= 0 {
		v.add(key, "must be > 0, got %d", n)
	}
}

// hostPort checks that s is "host:port" as net.SplitHostPort reads it,
// and reports whether it is.
func (v *validator) hostPort(key, s string) bool {
	if _, _, err := net.SplitHostPort(s); err != nil {
		v.add(key, "%q is not host:port", s)
		return false
	}
	return true
}

func (v *validator) ports(key string, ports []int) {
	seen := make(map[int]bool, len(ports))
	for i, p := range ports {
		k := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case p < 1 || p > 65535:
			v.add(k, "invalid port %d (want 1..65535)", p)
		case seen[p]:
			v.add(k, "duplicate port %d", p)
		}
		seen[p] = true
	}
}

// Validate checks every key and returns all problems joined with
// errors.Join, each a *FieldError naming its key path; nil if none.
func (c *Config) Validate() error {
	var v validator
	c.validateNode(&v)
	c.validateGateway(&v)
	c.validateAccess(&v)
	c.validateRateLimit(&v)
	c.validateAutoBan(&v)
	c.validateAudit(&v)
	c.validateAdmin(&v)
	c.validateCluster(&v)
	c.validateNATS(&v)
	c.validateMetrics(&v)
	c.validateLog(&v)
	return errors.Join(v.errs...)
}

func (c *Config) validateNode(v *validator) {
	if strings.IndexFunc(c.Node.ID, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		v.add("node.id", "must not contain spaces or control characters")
	}
	if c.Node.DataDir == "" {
		v.add("node.data_dir", "must not be empty")
	}
}

func (c *Config) validateGateway(v *validator) {
	g := &c.Gateway
	if _, _, err := parseListen(g.Listen); err != nil {
		v.addErr("gateway.listen", err)
	}
	v.ports("gateway.public_ports", g.PublicPorts)

	l := g.Limits
	if l.MaxRequestBytes < 1 || l.MaxRequestBytes > gateway.MaxRequestLine {
		v.add("gateway.limits.max_request_bytes", "must be 1..%d, got %d", gateway.MaxRequestLine, l.MaxRequestBytes)
	}
	v.positive("gateway.limits.handshake_timeout", l.HandshakeTimeout)
	v.positive("gateway.limits.request_timeout", l.RequestTimeout)
	v.positive("gateway.limits.decide_timeout", l.DecideTimeout)
	v.positive("gateway.limits.write_timeout", l.WriteTimeout)
	v.positiveInt("gateway.limits.max_conns", l.MaxConns)
	v.positiveInt("gateway.limits.max_conns_per_ip", l.MaxConnsPerIP)
	if l.MaxConnsPerIP > l.MaxConns && l.MaxConns > 0 {
		v.add("gateway.limits.max_conns_per_ip", "must not exceed gateway.limits.max_conns (%d), got %d", l.MaxConns, l.MaxConnsPerIP)
	}
	if l.MaxTitanBytes <= 0 {
		v.add("gateway.limits.max_titan_bytes", "must be > 0, got %d", l.MaxTitanBytes)
	}

	if _, err := g.TLS.CurvePreferences(); err != nil {
		v.addErr("gateway.tls.key_exchanges", err)
	}
	v.sessionLifetime("gateway.tls.session_lifetime", g.TLS.SessionLifetime)
	v.sessionLifetime("gateway.tls.cert_session_lifetime", g.TLS.CertSessionLifetime)

	names := make(map[string]string) // normalised name → key path of first use
	for i, h := range g.Hosts {
		validateHost(v, fmt.Sprintf("gateway.hosts[%d]", i), h, names)
	}
}

// claimName records a host name or alias, reporting duplicates.
func claimName(v *validator, key, name string, names map[string]string) {
	if strings.TrimSpace(name) == "" {
		v.add(key, "must not be empty")
		return
	}
	// Host names are checked by the gateway's own normalisation (IDNA,
	// LDH, lengths), the one it applies to them at start; its result is
	// the form in which names must be unique (IP literals unmapped).
	hk, err := gateway.NormalizeHost(HostLiteral(name))
	if err != nil {
		v.add(key, "invalid host name %q: %v", name, err)
		return
	}
	if a, err := netip.ParseAddr(hk); err == nil {
		hk = a.Unmap().String()
	}
	if first, ok := names[hk]; ok {
		v.add(key, "duplicate host %q (already used by %s)", name, first)
		return
	}
	names[hk] = key
}

func validateHost(v *validator, key string, h HostConfig, names map[string]string) {
	claimName(v, key+".name", h.Name, names)
	for j, a := range h.Aliases {
		claimName(v, fmt.Sprintf("%s.aliases[%d]", key, j), a, names)
	}
	if (h.Cert == "") != (h.Key == "") {
		v.add(key, "cert and key must both be set or both be empty")
	}
	v.ports(key+".public_ports", h.PublicPorts)
	if len(h.Routes) == 0 {
		v.add(key+".routes", "at least one route is required")
	}
	prefixes := make(map[string]string)
	for j, r := range h.Routes {
		rk := fmt.Sprintf("%s.routes[%d]", key, j)
		validateRoute(v, rk, r)
		fold := strings.ToLower(r.Prefix)
		if first, ok := prefixes[fold]; ok {
			v.add(rk+".prefix", "duplicate prefix %q (already used by %s)", r.Prefix, first)
		} else {
			prefixes[fold] = rk
		}
	}
}

func validateRoute(v *validator, key string, r RouteConfig) {
	if err := checkPrefix(r.Prefix); err != nil {
		v.addErr(key+".prefix", err)
	} else if err := gateway.ValidPrefix(r.Prefix); err != nil {
		// The gateway's own rule (canonical, lower-case, folded), so that a
		// prefix it would refuse at start is reported here, by key.
		v.addErr(key+".prefix", err)
	}
	if (r.Docroot == "") == (r.Upstream == "") {
		v.add(key, "exactly one of docroot, upstream must be set")
	}
	var scheme string
	if r.Upstream != "" {
		// The gateway's rule, the one NewProxy applies at start.
		u, err := gateway.ParseUpstreamURL(r.Upstream)
		if err != nil {
			v.addErr(key+".upstream", err)
		}
		scheme = u.Scheme
	}
	if r.UpstreamSNI != "" {
		if r.Upstream == "" {
			v.add(key+".upstream_sni", "only valid with upstream")
		} else if _, err := gateway.NormalizeHost(r.UpstreamSNI); err != nil {
			// The gateway's own rule, the one NewProxy applies at start.
			v.add(key+".upstream_sni", "invalid host name %q: %v", r.UpstreamSNI, err)
		}
	}
	if r.ProxyProtocol && scheme != SchemeTCP {
		v.add(key+".proxy_protocol", "only valid with a tcp:// upstream")
	}
	if r.Uploads && r.Upstream == "" {
		v.add(key+".uploads", "only valid on upstream routes")
	}
	switch {
	case r.MaxUploadBytes < 0:
		v.add(key+".max_upload_bytes", "must not be negative, got %d", r.MaxUploadBytes)
	case r.MaxUploadBytes > 0 && !r.Uploads:
		v.add(key+".max_upload_bytes", "only valid with uploads: true")
	}
	if r.TOFU != "" && r.TOFU != TOFUClaim {
		v.add(key+".tofu", "must be \"\" or %q, got %q", TOFUClaim, r.TOFU)
	}
	for k, f := range r.AllowedFingerprints {
		if _, err := tofu.ParseFingerprint(f); err != nil {
			v.addErr(fmt.Sprintf("%s.allowed_fingerprints[%d]", key, k), err)
		}
	}
	v.positive(key+".connect_timeout", r.ConnectTimeout)
	v.positive(key+".timeout", r.Timeout)
}

// checkPrefix accepts "/" and "/seg/…/seg/" with no empty or dot segments
// and no '?', '#', '\', space or control characters.
func checkPrefix(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("must start with \"/\", got %q", p)
	}
	if !strings.HasSuffix(p, "/") {
		return fmt.Errorf("must end with \"/\", got %q", p)
	}
	if i := strings.IndexFunc(p, func(r rune) bool {
		return r == '?' || r == '#' || r == '\\' || unicode.IsSpace(r) || !unicode.IsPrint(r)
	}); i >= 0 {
		return fmt.Errorf("must not contain %q, got %q", []rune(p[i:])[0], p)
	}
	if p == "/" {
		return nil
	}
	for seg := range strings.SplitSeq(p[1:len(p)-1], "/") {
		switch seg {
		case "":
			return fmt.Errorf("must not contain empty segments, got %q", p)
		case ".", "..":
			return fmt.Errorf("must not contain dot segments, got %q", p)
		}
	}
	return nil
}

func (c *Config) validateAccess(v *validator) {
	for i, s := range c.Access.Allow {
		if _, err := ParsePrefix(s); err != nil {
			v.addErr(fmt.Sprintf("access.allow[%d]", i), err)
		}
	}
	for i, s := range c.Access.Deny {
		if _, err := ParsePrefix(s); err != nil {
			v.addErr(fmt.Sprintf("access.deny[%d]", i), err)
		}
	}
}

func (c *Config) validateRateLimit(v *validator) {
	r := c.RateLimit
	finitePositive := func(key string, f float64) {
		if !(f > 0) || math.IsInf(f, 0) {
			v.add(key, "must be a finite number > 0, got %v", f)
		}
	}
	if !(r.Capacity >= 1) || math.IsInf(r.Capacity, 0) {
		// A bucket must hold at least one request's token.
		v.add("rate_limit.capacity", "must be a finite number >= 1, got %v", r.Capacity)
	}
	finitePositive("rate_limit.refill_per_sec", r.RefillPerSec)
	if !(r.HardFactor >= 1) || math.IsInf(r.HardFactor, 0) {
		v.add("rate_limit.hard_factor", "must be a finite number >= 1, got %v", r.HardFactor)
	}
	// /0 would put every client into one bucket: refused, so that a
	// missing value cannot do that silently.
	if r.IPv4Prefix < 1 || r.IPv4Prefix > 32 {
		v.add("rate_limit.ipv4_prefix", "must be 1..32, got %d", r.IPv4Prefix)
	}
	if r.IPv6Prefix < 1 || r.IPv6Prefix > 128 {
		v.add("rate_limit.ipv6_prefix", "must be 1..128, got %d", r.IPv6Prefix)
	}
	v.positiveInt("rate_limit.max_keys", r.MaxKeys)
}

func (c *Config) validateAutoBan(v *validator) {
	a := c.AutoBan
	if a.Threshold == 0 {
		return // disabled: the other fields are not used
	}
	v.positive("auto_ban.duration", a.Duration)
	if !(a.Escalate >= 1) || math.IsInf(a.Escalate, 0) {
		v.add("auto_ban.escalate", "must be a finite number >= 1, got %v", a.Escalate)
	}
	if a.Max < a.Duration {
		v.add("auto_ban.max", "must be at least auto_ban.duration (%s), got %s", a.Duration, a.Max)
	}
}

func (c *Config) validateAudit(v *validator) {
	v.positiveInt("audit.buffer", c.Audit.Buffer)
	if d := c.Audit.HashKeyRotation; d < MinHashKeyRotation {
		v.add("audit.hash_key_rotation", "must be at least %s, got %s", MinHashKeyRotation, d)
	}
	if d := c.Audit.HashKeyRetention; d < 0 || d > raftstore.MaxAuditKeyRetention || d%time.Second != 0 {
		v.add("audit.hash_key_retention", "must be whole seconds from 0 to %s, got %s", raftstore.MaxAuditKeyRetention, d)
	}
}

// MinHashKeyRotation is the shortest audit.hash_key_rotation: each
// rotation is an entry in the Raft log.
const MinHashKeyRotation = time.Minute

// AutoBanPolicy returns the auto-ban policy: auto_ban, covering the rate
// limiter's client keys.
func (c *Config) AutoBanPolicy() raftstore.AutoBanPolicy {
	return raftstore.AutoBanPolicy{
		Threshold:  c.AutoBan.Threshold,
		Duration:   c.AutoBan.Duration,
		Escalate:   c.AutoBan.Escalate,
		Max:        c.AutoBan.Max,
		IPv4Prefix: c.RateLimit.IPv4Prefix,
		IPv6Prefix: c.RateLimit.IPv6Prefix,
	}
}

func (c *Config) validateMetrics(v *validator) {
	if l := c.Metrics.Listen; l != "" && v.hostPort("metrics.listen", l) {
		for _, other := range []struct{ key, addr string }{{"gateway.listen", c.Gateway.Listen}, {"cluster.listen", c.Cluster.Listen}, {"nats.listen", c.NATS.Listen}, {"nats.cluster_listen", c.NATS.ClusterListen}} {
			if other.addr != "" && other.addr == l && !strings.HasSuffix(l, ":0") {
				v.add("metrics.listen", "%s is also %s", l, other.key)
			}
		}
	}
}

func (c *Config) validateAdmin(v *validator) {
	if p := c.AdminSocket(); len(p) > MaxSocketPath {
		v.add("admin.socket", "path %q too long for a unix socket (%d bytes, max %d)", p, len(p), MaxSocketPath)
	}
}

func (c *Config) validateLog(v *validator) {
	if _, err := logging.ParseLevel(c.Log.Level); err != nil {
		v.addErr("log.level", err)
	}
	if _, err := logging.ParseFormat(c.Log.Format); err != nil {
		v.addErr("log.format", err)
	}
}
