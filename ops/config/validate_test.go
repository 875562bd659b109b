package config

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const (
	fpCert = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	fpSPKI = "spki-sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824"
)

// route returns DefaultRoute with prefix and handler set by mod.
func route(prefix string, mod func(*RouteConfig)) RouteConfig {
	r := DefaultRoute()
	r.Prefix = prefix
	mod(&r)
	return r
}

// validConfig returns a configuration exercising every kind of route.
func validConfig() *Config {
	c := DefaultConfig()
	c.Gateway.PublicPorts = []int{1965}
	c.Access.Deny = []string{"203.0.113.0/24", "198.51.100.7", "2001:db8::/32"}
	c.Gateway.Hosts = []HostConfig{
		{
			Name:    "example.org",
			Aliases: []string{"www.example.org", "192.0.2.1"},
			Cert:    "/etc/c.crt", Key: "/etc/c.key",
			Routes: []RouteConfig{
				route("/admin/", func(r *RouteConfig) {
					r.RequireCert, r.AllowedFingerprints, r.Docroot = true, []string{fpCert, fpSPKI}, "/srv/admin"
				}),
				route("/app/", func(r *RouteConfig) {
					r.TOFU, r.Upstream, r.ProxyProtocol, r.Uploads, r.MaxUploadBytes = TOFUClaim, "tcp://127.0.0.1:7070", true, true, MiB
				}),
				route("/", func(r *RouteConfig) { r.Docroot = "/srv/www" }),
			},
		},
		{
			Name:        "molly.example.org",
			PublicPorts: []int{1965, 443},
			Routes: []RouteConfig{
				route("/", func(r *RouteConfig) { r.Upstream, r.UpstreamSNI = "gemini://127.0.0.1:1966", "molly.example.org" }),
			},
		},
	}
	return c
}

func TestValidConfigs(t *testing.T) {
	for name, c := range map[string]*Config{"default": DefaultConfig(), "full": validConfig()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v", name, err)
		}
	}
}

func TestValidateMessages(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"empty data dir", func(c *Config) { c.Node.DataDir = "" }, "node.data_dir: must not be empty"},
		{"node id with space", func(c *Config) { c.Node.ID = "node 1" }, "node.id: must not contain spaces"},
		{"listen not an address", func(c *Config) { c.Gateway.Listen = "x" }, `gateway.listen: invalid address "x": `},
		{"listen bad port", func(c *Config) { c.Gateway.Listen = "127.0.0.1:70000" }, `gateway.listen: invalid address "127.0.0.1:70000": invalid port`},
		{"listen bad host", func(c *Config) { c.Gateway.Listen = "a b:1965" }, `gateway.listen: invalid address "a b:1965"`},
		{"public port zero", func(c *Config) { c.Gateway.PublicPorts = []int{1965, 0} }, "gateway.public_ports[1]: invalid port 0"},
		{"public port duplicate", func(c *Config) { c.Gateway.PublicPorts = []int{1965, 1965} }, "gateway.public_ports[1]: duplicate port 1965"},
		{"request bytes zero", func(c *Config) { c.Gateway.Limits.MaxRequestBytes = 0 }, "gateway.limits.max_request_bytes: must be 1..1024, got 0"},
		{"request bytes too many", func(c *Config) { c.Gateway.Limits.MaxRequestBytes = 1025 }, "gateway.limits.max_request_bytes: must be 1..1024, got 1025"},
		{"handshake timeout", func(c *Config) { c.Gateway.Limits.HandshakeTimeout = 0 }, "gateway.limits.handshake_timeout: must be > 0"},
		{"request timeout", func(c *Config) { c.Gateway.Limits.RequestTimeout = -time.Second }, "gateway.limits.request_timeout: must be > 0"},
		{"decide timeout", func(c *Config) { c.Gateway.Limits.DecideTimeout = 0 }, "gateway.limits.decide_timeout: must be > 0"},
		{"write timeout", func(c *Config) { c.Gateway.Limits.WriteTimeout = 0 }, "gateway.limits.write_timeout: must be > 0"},
		{"max conns", func(c *Config) { c.Gateway.Limits.MaxConns = 0 }, "gateway.limits.max_conns: must be > 0"},
		{"max conns per ip", func(c *Config) { c.Gateway.Limits.MaxConnsPerIP = -1 }, "gateway.limits.max_conns_per_ip: must be > 0"},
		{"per ip above total", func(c *Config) { c.Gateway.Limits.MaxConnsPerIP = 20000 }, "gateway.limits.max_conns_per_ip: must not exceed gateway.limits.max_conns"},
		{"session lifetime zero", func(c *Config) { c.Gateway.TLS.SessionLifetime = 0 }, "gateway.tls.session_lifetime: must be > 0 and at most 168h, got 0s"},
		{"cert session lifetime too long", func(c *Config) { c.Gateway.TLS.CertSessionLifetime = 8 * 24 * time.Hour }, "gateway.tls.cert_session_lifetime: must be > 0 and at most 168h, got 192h0m0s"},
		{"titan bytes", func(c *Config) { c.Gateway.Limits.MaxTitanBytes = 0 }, "gateway.limits.max_titan_bytes: must be > 0"},
		{"host without name", func(c *Config) { c.Gateway.Hosts[1].Name = "" }, "gateway.hosts[1].name: must not be empty"},
		{"host bad name", func(c *Config) { c.Gateway.Hosts[1].Name = "../etc" }, `gateway.hosts[1].name: invalid host name "../etc"`},
		{"host name with slash", func(c *Config) { c.Gateway.Hosts[1].Name = "a/b" }, `gateway.hosts[1].name: invalid host name "a/b"`},
		{"duplicate host", func(c *Config) { c.Gateway.Hosts[1].Name = "Example.ORG." }, `gateway.hosts[1].name: duplicate host "Example.ORG."`},
		{"duplicate host in punycode", func(c *Config) {
			c.Gateway.Hosts[0].Name, c.Gateway.Hosts[1].Name = "bücher.example", "xn--bcher-kva.example"
		}, `gateway.hosts[1].name: duplicate host "xn--bcher-kva.example"`},
		{"duplicate alias", func(c *Config) { c.Gateway.Hosts[1].Aliases = []string{"www.example.org"} }, `gateway.hosts[1].aliases[0]: duplicate host "www.example.org" (already used by gateway.hosts[0].aliases[0])`},
		{"duplicate ip alias", func(c *Config) { c.Gateway.Hosts[1].Aliases = []string{"::ffff:192.0.2.1"} }, `gateway.hosts[1].aliases[0]: duplicate host "::ffff:192.0.2.1"`},
		{"empty alias", func(c *Config) { c.Gateway.Hosts[0].Aliases = []string{""} }, "gateway.hosts[0].aliases[0]: must not be empty"},
		{"cert without key", func(c *Config) { c.Gateway.Hosts[0].Key = "" }, "gateway.hosts[0]: cert and key must both be set or both be empty"},
		{"key without cert", func(c *Config) { c.Gateway.Hosts[1].Key = "/k" }, "gateway.hosts[1]: cert and key must both be set or both be empty"},
		{"host public port", func(c *Config) { c.Gateway.Hosts[1].PublicPorts = []int{65536} }, "gateway.hosts[1].public_ports[0]: invalid port 65536"},
		{"host without routes", func(c *Config) { c.Gateway.Hosts[1].Routes = nil }, "gateway.hosts[1].routes: at least one route is required"},
		{"prefix without slash", func(c *Config) { c.Gateway.Hosts[0].Routes[1].Prefix = "app/" }, `gateway.hosts[0].routes[1].prefix: must start with "/"`},
		{"empty prefix", func(c *Config) { c.Gateway.Hosts[0].Routes[1].Prefix = "" }, `gateway.hosts[0].routes[1].prefix: must start with "/"`},
		{"prefix without trailing slash", func(c *Config) { c.Gateway.Hosts[0].Routes[1].Prefix = "/app" }, `gateway.hosts[0].routes[1].prefix: must end with "/"`},
		{"prefix empty segment", func(c *Config) { c.Gateway.Hosts[0].Routes[1].Prefix = "/a//b/" }, "gateway.hosts[0].routes[1].prefix: must not contain empty segments"},
		{"prefix dot segment", func(c *Config) { c.Gateway.Hosts[0].Routes[1].Prefix = "/a/../b/" }, "gateway.hosts[0].routes[1].prefix: must not contain dot segments"},
		{"prefix not lower-case", func(c *Config) { c.Gateway.Hosts[0].Routes[1].Prefix = "/App/" }, "gateway.hosts[0].routes[1].prefix: invalid route prefix"},
		{"prefix not canonical", func(c *Config) { c.Gateway.Hosts[0].Routes[1].Prefix = "/%61pp/" }, "gateway.hosts[0].routes[1].prefix: invalid route prefix"},
		{"prefix query", func(c *Config) { c.Gateway.Hosts[0].Routes[1].Prefix = "/a?b/" }, `gateway.hosts[0].routes[1].prefix: must not contain '?'`},
		{"prefix space", func(c *Config) { c.Gateway.Hosts[0].Routes[1].Prefix = "/a b/" }, `gateway.hosts[0].routes[1].prefix: must not contain ' '`},
		{"duplicate prefix", func(c *Config) { c.Gateway.Hosts[0].Routes[1].Prefix = "/ADMIN/" }, `gateway.hosts[0].routes[1].prefix: duplicate prefix "/ADMIN/" (already used by gateway.hosts[0].routes[0])`},
		{"no handler", func(c *Config) { c.Gateway.Hosts[0].Routes[2].Docroot = "" }, "gateway.hosts[0].routes[2]: exactly one of docroot, upstream must be set"},
		{"two handlers", func(c *Config) { c.Gateway.Hosts[0].Routes[2].Upstream = "gemini://a.example:1965" }, "gateway.hosts[0].routes[2]: exactly one of docroot, upstream must be set"},
		{"upstream scheme", func(c *Config) { c.Gateway.Hosts[1].Routes[0].Upstream = "https://a.example:443" }, `gateway.hosts[1].routes[0].upstream: invalid upstream "https://a.example:443": scheme must be gemini or tcp`},
		{"tcp upstream without port", func(c *Config) { c.Gateway.Hosts[1].Routes[0].Upstream = "tcp://a.example" }, "gateway.hosts[1].routes[0].upstream: invalid upstream \"tcp://a.example\": tcp:// needs a port"},
		{"upstream without host", func(c *Config) { c.Gateway.Hosts[1].Routes[0].Upstream = "gemini://:1965" }, "gateway.hosts[1].routes[0].upstream: invalid upstream \"gemini://:1965\": missing host"},
		{"upstream with path", func(c *Config) { c.Gateway.Hosts[1].Routes[0].Upstream = "gemini://a.example:1965/x" }, "gateway.hosts[1].routes[0].upstream: invalid upstream \"gemini://a.example:1965/x\": only scheme, host and port"},
		{"upstream sni without upstream", func(c *Config) { c.Gateway.Hosts[0].Routes[2].UpstreamSNI = "a.example" }, "gateway.hosts[0].routes[2].upstream_sni: only valid with upstream"},
		{"upstream sni invalid", func(c *Config) { c.Gateway.Hosts[1].Routes[0].UpstreamSNI = "a b" }, `gateway.hosts[1].routes[0].upstream_sni: invalid host name "a b"`},
		{"upstream sni the gateway refuses", func(c *Config) { c.Gateway.Hosts[1].Routes[0].UpstreamSNI = "a_b.example" }, `gateway.hosts[1].routes[0].upstream_sni: invalid host name "a_b.example"`},
		{"proxy protocol with gemini", func(c *Config) { c.Gateway.Hosts[1].Routes[0].ProxyProtocol = true }, "gateway.hosts[1].routes[0].proxy_protocol: only valid with a tcp:// upstream"},
		{"proxy protocol with docroot", func(c *Config) { c.Gateway.Hosts[0].Routes[2].ProxyProtocol = true }, "gateway.hosts[0].routes[2].proxy_protocol: only valid with a tcp:// upstream"},
		{"uploads with docroot", func(c *Config) { c.Gateway.Hosts[0].Routes[2].Uploads = true }, "gateway.hosts[0].routes[2].uploads: only valid on upstream routes"},
		{"upload size negative", func(c *Config) { c.Gateway.Hosts[0].Routes[1].MaxUploadBytes = -1 }, "gateway.hosts[0].routes[1].max_upload_bytes: must not be negative"},
		{"upload size without uploads", func(c *Config) { c.Gateway.Hosts[1].Routes[0].MaxUploadBytes = KiB }, "gateway.hosts[1].routes[0].max_upload_bytes: only valid with uploads: true"},
		{"tofu value", func(c *Config) { c.Gateway.Hosts[0].Routes[1].TOFU = "pin" }, `gateway.hosts[0].routes[1].tofu: must be "" or "claim", got "pin"`},
		{"bad fingerprint", func(c *Config) { c.Gateway.Hosts[0].Routes[0].AllowedFingerprints[1] = "md5:abc" }, `gateway.hosts[0].routes[0].allowed_fingerprints[1]: bad fingerprint: "md5:abc"`},
		{"short fingerprint", func(c *Config) { c.Gateway.Hosts[0].Routes[0].AllowedFingerprints[0] = "sha256:abcd" }, `gateway.hosts[0].routes[0].allowed_fingerprints[0]: bad fingerprint`},
		{"connect timeout", func(c *Config) { c.Gateway.Hosts[1].Routes[0].ConnectTimeout = 0 }, "gateway.hosts[1].routes[0].connect_timeout: must be > 0"},
		{"route timeout", func(c *Config) { c.Gateway.Hosts[1].Routes[0].Timeout = 0 }, "gateway.hosts[1].routes[0].timeout: must be > 0"},
		{"allow cidr", func(c *Config) { c.Access.Allow = []string{"10.0.0.0/33"} }, `access.allow[0]: invalid CIDR "10.0.0.0/33"`},
		{"deny cidr", func(c *Config) { c.Access.Deny[2] = "2001:db8::/x" }, `access.deny[2]: invalid CIDR "2001:db8::/x"`},
		{"deny zone", func(c *Config) { c.Access.Deny[0] = "fe80::1%eth0" }, `access.deny[0]: invalid CIDR "fe80::1%eth0": zones are not allowed`},
		{"key exchange", func(c *Config) { c.Gateway.TLS.KeyExchanges = []string{"x25519", "x448"} }, "gateway.tls.key_exchanges: unknown key exchange \"x448\""},
		{"key exchange twice", func(c *Config) { c.Gateway.TLS.KeyExchanges = []string{"x25519", "X25519"} }, "gateway.tls.key_exchanges: key exchange \"X25519\" listed twice"},
		{"capacity", func(c *Config) { c.RateLimit.Capacity = 0 }, "rate_limit.capacity: must be a finite number >= 1"},
		{"capacity below one", func(c *Config) { c.RateLimit.Capacity = 0.5 }, "rate_limit.capacity: must be a finite number >= 1"},
		{"capacity infinite", func(c *Config) { c.RateLimit.Capacity = math.Inf(1) }, "rate_limit.capacity: must be a finite number >= 1"},
		{"refill NaN", func(c *Config) { c.RateLimit.RefillPerSec = math.NaN() }, "rate_limit.refill_per_sec: must be a finite number > 0"},
		{"hard factor", func(c *Config) { c.RateLimit.HardFactor = 0.5 }, "rate_limit.hard_factor: must be a finite number >= 1"},
		{"ipv4 prefix", func(c *Config) { c.RateLimit.IPv4Prefix = 33 }, "rate_limit.ipv4_prefix: must be 1..32, got 33"},
		{"ipv6 prefix", func(c *Config) { c.RateLimit.IPv6Prefix = 129 }, "rate_limit.ipv6_prefix: must be 1..128, got 129"},
		{"ipv6 prefix negative", func(c *Config) { c.RateLimit.IPv6Prefix = -1 }, "rate_limit.ipv6_prefix: must be 1..128, got -1"},
		{"ipv4 prefix zero", func(c *Config) { c.RateLimit.IPv4Prefix = 0 }, "rate_limit.ipv4_prefix: must be 1..32, got 0"},
		{"max keys", func(c *Config) { c.RateLimit.MaxKeys = 0 }, "rate_limit.max_keys: must be > 0"},
		{"socket too long", func(c *Config) { c.Node.DataDir = "/" + strings.Repeat("d", 100) }, "admin.socket: path"},
		{"hash key rotation", func(c *Config) { c.Audit.HashKeyRotation = time.Second }, "audit.hash_key_rotation: must be at least 1m0s, got 1s"},
		{"hash key retention negative", func(c *Config) { c.Audit.HashKeyRetention = -time.Hour }, "audit.hash_key_retention: must be whole seconds from 0 to 8784h0m0s, got -1h0m0s"},
		{"hash key retention too long", func(c *Config) { c.Audit.HashKeyRetention = 9000 * time.Hour }, "audit.hash_key_retention: must be whole seconds"},
		{"hash key retention fraction", func(c *Config) { c.Audit.HashKeyRetention = 1500 * time.Millisecond }, "audit.hash_key_retention: must be whole seconds"},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, `log.level: unknown log level "verbose"`},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, `log.format: unknown log format "xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v\nwant it to contain %q", err, tt.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("no *FieldError in %v", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.Contains(line, ": ") {
					t.Errorf("line %q names no key", line)
				}
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := validConfig()
	c.Log.Level = "loud"
	c.RateLimit.MaxKeys = 0
	c.Gateway.Hosts[0].Routes[0].Prefix = "x"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 3 {
		t.Errorf("got %d problems, want 3:\n%v", n, err)
	}
}

func TestValidateAcceptsImpliedAndOptional(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"fingerprints without require_cert", func(c *Config) { c.Gateway.Hosts[0].Routes[0].RequireCert = false }},
		{"listen on any port", func(c *Config) { c.Gateway.Listen = ":0" }},
		{"listen on ipv6", func(c *Config) { c.Gateway.Listen = "[::1]:1965" }},
		{"listen on a name", func(c *Config) { c.Gateway.Listen = "localhost:1965" }},
		{"unicode host", func(c *Config) { c.Gateway.Hosts[1].Name = "bücher.example" }},
		{"ipv6 alias", func(c *Config) { c.Gateway.Hosts[1].Aliases = []string{"::1", "[2001:db8::1]"} }},
		{"widest prefixes", func(c *Config) { c.RateLimit.IPv4Prefix, c.RateLimit.IPv6Prefix = 1, 1 }},
		{"upper-case log", func(c *Config) { c.Log.Level, c.Log.Format = "DEBUG", "Text" }},
		{"tcp upstream ipv6", func(c *Config) { c.Gateway.Hosts[0].Routes[1].Upstream = "tcp://[fd00::2]:7000" }},
		{"gemini upstream on the default port", func(c *Config) { c.Gateway.Hosts[1].Routes[0].Upstream = "gemini://a.example" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	c := validConfig()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
