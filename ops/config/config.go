package config

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/gateway"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/ratelimit"
)

// Config is the whole configuration of one node. Its koanf tags are the key
// names used in files, CHIMALLI_* variables and docs/configuration.md.
//
// Build one with DefaultConfig or Load; a Config from Load has passed
// Validate. Fields that default to "derived from another field" (node.id,
// tofu.pins_file, admin.socket, …) stay empty here; use the accessor methods
// (NodeID, PinsFile, AdminSocket, …) to get the effective value.
type Config struct {
	// Node identifies the node and its data directory.
	Node NodeConfig `koanf:"node"`
	// Gateway is the Gemini listener, its limits and virtual hosts.
	Gateway GatewayConfig `koanf:"gateway"`
	// Access holds the static allow and deny lists.
	Access AccessConfig `koanf:"access"`
	// RateLimit configures the per-node token buckets.
	RateLimit RateLimitConfig `koanf:"rate_limit"`
	// AutoBan turns persistent rate-limit abuse into bans.
	AutoBan AutoBanConfig `koanf:"auto_ban"`
	// Audit configures where the node's audit records go.
	Audit AuditConfig `koanf:"audit"`
	// TOFU locates the local trust stores.
	TOFU TOFUConfig `koanf:"tofu"`
	// Admin configures the admin socket.
	Admin AdminConfig `koanf:"admin"`
	// Cluster is the node's membership of the Raft cluster.
	Cluster ClusterConfig `koanf:"cluster"`
	// NATS is the event plane: embedded NATS or an external one.
	NATS NATSConfig `koanf:"nats"`
	// Metrics is the ops listener: Prometheus metrics and health.
	Metrics MetricsConfig `koanf:"metrics"`
	// Log configures the logger.
	Log LogConfig `koanf:"log"`
}

// NodeConfig identifies the node and where it keeps its state.
type NodeConfig struct {
	// ID names the node in the cluster; empty means the host name.
	ID string `koanf:"id"`
	// DataDir holds generated certificates, pins, the admin socket and
	// cluster state.
	DataDir string `koanf:"data_dir"`
}

// GatewayConfig configures the Gemini listener and its virtual hosts.
type GatewayConfig struct {
	// Listen is the TCP address of the Gemini listener ("host:port").
	Listen string `koanf:"listen"`
	// PublicPorts are the ports clients may name in request URLs; empty
	// means the listen port. A host may override it.
	PublicPorts []int `koanf:"public_ports"`
	// Limits bound what one request or client may cost.
	Limits LimitsConfig `koanf:"limits"`
	// TLS tunes the TLS handshakes of the listener.
	TLS TLSConfig `koanf:"tls"`
	// Hosts are the virtual hosts; empty means the built-in welcome capsule
	// on WelcomeHostName (see UsesWelcomeCapsule).
	Hosts []HostConfig `koanf:"hosts"`
}

// TLSConfig tunes the listener's TLS handshakes.
type TLSConfig struct {
	// KeyExchanges lists the key exchange groups accepted from clients:
	// x25519mlkem768 (post-quantum hybrid), x25519, p256, p384, p521. The
	// TLS stack picks among them in its own order, post-quantum first.
	// Empty means the TLS stack's default set.
	KeyExchanges []string `koanf:"key_exchanges"`
	// SessionTickets lets clients resume TLS sessions (see SessionLifetime
	// and docs/security.md); false makes every connection a full handshake.
	SessionTickets bool `koanf:"session_tickets"`
	// SessionLifetime bounds the resumption of a session in which the
	// client presented no certificate, from its full handshake.
	SessionLifetime time.Duration `koanf:"session_lifetime"`
	// CertSessionLifetime bounds the resumption of a session in which the
	// client presented a certificate, from its full handshake.
	CertSessionLifetime time.Duration `koanf:"cert_session_lifetime"`
}

// keyExchange maps a tls.key_exchanges value to its TLS group id.
func keyExchange(name string) (tls.CurveID, bool) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "x25519mlkem768":
		return tls.X25519MLKEM768, true
	case "x25519":
		return tls.X25519, true
	case "p256":
		return tls.CurveP256, true
	case "p384":
		return tls.CurveP384, true
	case "p521":
		return tls.CurveP521, true
	}
	return 0, false
}

// CurvePreferences returns the TLS group ids of KeyExchanges, nil for the
// default.
func (t TLSConfig) CurvePreferences() ([]tls.CurveID, error) {
	var out []tls.CurveID
	for _, name := range t.KeyExchanges {
		id, ok := keyExchange(name)
		if !ok {
			return nil, fmt.Errorf("unknown key exchange %q (want x25519mlkem768, x25519, p256, p384 or p521)", name)
		}
		if slices.Contains(out, id) {
			return nil, fmt.Errorf("key exchange %q listed twice", name)
		}
		out = append(out, id)
	}
	return out, nil
}

// LimitsConfig bounds the resources one request or client may use.
type LimitsConfig struct {
	// MaxRequestBytes bounds the request line, CRLF excluded (1..1024):
	// 1024 bytes are accepted, 1025 get 59.
	MaxRequestBytes int `koanf:"max_request_bytes"`
	// HandshakeTimeout bounds the TLS handshake.
	HandshakeTimeout time.Duration `koanf:"handshake_timeout"`
	// RequestTimeout bounds reading the request line (slowloris).
	RequestTimeout time.Duration `koanf:"request_timeout"`
	// DecideTimeout bounds the request-time layers, the commit of a TOFU
	// claim included; past it the request gets 41.
	DecideTimeout time.Duration `koanf:"decide_timeout"`
	// WriteTimeout bounds each write to a client that stops reading.
	WriteTimeout time.Duration `koanf:"write_timeout"`
	// MaxConns bounds concurrent client connections on the node.
	MaxConns int `koanf:"max_conns"`
	// MaxConnsPerIP bounds concurrent connections from one client address.
	MaxConnsPerIP int `koanf:"max_conns_per_ip"`
	// MaxTitanBytes is the default size limit of a Titan upload.
	MaxTitanBytes ByteSize `koanf:"max_titan_bytes"`
}

// HostConfig is one virtual host.
type HostConfig struct {
	// Name is the host name clients send in SNI and in URLs. The gateway
	// normalises it (lower case, no trailing dot, punycode).
	Name string `koanf:"name"`
	// Aliases are other names or IP literals this host answers for; they
	// also select the host when a client sends no SNI.
	Aliases []string `koanf:"aliases"`
	// Cert and Key are PEM files; both empty means a certificate generated
	// and kept under CertDir (see CertFiles).
	Cert string `koanf:"cert"`
	Key  string `koanf:"key"`
	// PublicPorts overrides gateway.public_ports for this host.
	PublicPorts []int `koanf:"public_ports"`
	// Routes bind path prefixes to rules and handlers.
	Routes []RouteConfig `koanf:"routes"`
}

// RouteConfig binds a path prefix of a host to its certificate rules and its
// handler (a document root or an upstream).
type RouteConfig struct {
	// Prefix starts and ends with "/" and matches whole segments.
	Prefix string `koanf:"prefix"`
	// RequireCert refuses requests without a client certificate.
	RequireCert bool `koanf:"require_cert"`
	// AllowedFingerprints, when not empty, admits only these certificates
	// ("sha256:<hex>" or "spki-sha256:<hex>"). Implies RequireCert.
	AllowedFingerprints []string `koanf:"allowed_fingerprints"`
	// TOFU is "" or TOFUClaim ("claim": the first certificate to use the
	// prefix owns it). "claim" implies RequireCert.
	TOFU string `koanf:"tofu"`
	// Docroot is a directory served as static files.
	Docroot string `koanf:"docroot"`
	// Upstream is "gemini://host:port" or "tcp://host:port".
	Upstream string `koanf:"upstream"`
	// UpstreamSNI is the server name sent upstream; empty means the
	// upstream's host.
	UpstreamSNI string `koanf:"upstream_sni"`
	// StripPrefix removes Prefix from the path sent upstream.
	StripPrefix bool `koanf:"strip_prefix"`
	// ProxyProtocol sends a PROXY protocol v2 header (tcp:// only).
	ProxyProtocol bool `koanf:"proxy_protocol"`
	// Uploads accepts Titan uploads (upstream routes only).
	Uploads bool `koanf:"uploads"`
	// MaxUploadBytes bounds an upload; 0 means gateway.limits.max_titan_bytes.
	MaxUploadBytes ByteSize `koanf:"max_upload_bytes"`
	// ConnectTimeout bounds connecting to the upstream.
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
	// Timeout bounds each read from the upstream (idle timeout).
	Timeout time.Duration `koanf:"timeout"`
}

// TOFUClaim is the RouteConfig.TOFU value that makes the first certificate
// to use a prefix its owner.
const TOFUClaim = "claim"

// AccessConfig holds the static allow and deny lists. Entries are CIDRs or
// bare IP addresses; use AllowPrefixes and DenyPrefixes to parse them.
type AccessConfig struct {
	// DefaultAllow admits addresses that match neither list.
	DefaultAllow bool `koanf:"default_allow"`
	// Allow admits matching addresses even when DefaultAllow is false.
	Allow []string `koanf:"allow"`
	// Deny refuses matching addresses; deny wins over allow.
	Deny []string `koanf:"deny"`
}

// RateLimitConfig configures the per-node token buckets.
type RateLimitConfig struct {
	// Capacity is the bucket size (the burst a client may send).
	Capacity float64 `koanf:"capacity"`
	// RefillPerSec is the sustained request rate per client.
	RefillPerSec float64 `koanf:"refill_per_sec"`
	// HardFactor multiplies Capacity into the hard limit past which
	// connections are dropped before the TLS handshake.
	HardFactor float64 `koanf:"hard_factor"`
	// IPv4Prefix and IPv6Prefix are the prefix lengths that group client
	// addresses into one bucket.
	IPv4Prefix int `koanf:"ipv4_prefix"`
	IPv6Prefix int `koanf:"ipv6_prefix"`
	// MaxKeys bounds the number of buckets kept in memory.
	MaxKeys int `koanf:"max_keys"`
}

// AutoBanConfig turns persistent rate-limit abuse into bans: a client
// refused at accept by the hard rate limit once it has Threshold
// violations (soft and hard verdicts since its bucket was last full) is
// banned for Duration, each further ban within a day of the last one's
// end Escalate times longer, up to Max. A ban covers the client's rate
// limit key (rate_limit.ipv4_prefix, rate_limit.ipv6_prefix).
type AutoBanConfig struct {
	// Threshold is the violation count that earns a ban; 0 disables auto-bans.
	Threshold uint32 `koanf:"threshold"`
	// Duration is the length of a first ban.
	Duration time.Duration `koanf:"duration"`
	// Escalate multiplies the length of each further ban (>= 1).
	Escalate float64 `koanf:"escalate"`
	// Max is the longest auto-ban.
	Max time.Duration `koanf:"max"`
}

// AuditConfig configures the node's audit records (docs/events.md).
type AuditConfig struct {
	// File receives one JSON line per connection (hashed client address,
	// never a raw one), created 0600; empty disables the file.
	File string `koanf:"file"`
	// Buffer bounds the records waiting to be written (to the file, and to
	// the event plane: one buffer each); beyond it records are dropped and
	// counted, never blocking a request.
	Buffer int `koanf:"buffer"`
	// SpoolMaxBytes bounds the on-disk spool (<data_dir>/audit-spool) that
	// holds records while JetStream cannot take them; beyond it records
	// are dropped, counted and logged.
	SpoolMaxBytes ByteSize `koanf:"spool_max_bytes"`
	// StreamMaxAge and StreamMaxBytes bound the CHIMALLI_AUDIT stream, the
	// oldest records going first; 0 means no bound.
	StreamMaxAge   time.Duration `koanf:"stream_max_age"`
	StreamMaxBytes ByteSize      `koanf:"stream_max_bytes"`
	// HashKeyRotation is how often the cluster's leader replaces the key
	// that hashes client addresses (in records and logs) on every node.
	HashKeyRotation time.Duration `koanf:"hash_key_rotation"`
	// HashKeyRetention is how long a replaced hashing key is kept; then
	// its hashes can no longer be linked to addresses.
	HashKeyRetention time.Duration `koanf:"hash_key_retention"`
}

// TOFUConfig locates the node's local trust stores.
type TOFUConfig struct {
	// PinsFile holds client-certificate pins; empty means <data_dir>/pins.
	PinsFile string `koanf:"pins_file"`
	// KnownHostsFile holds upstream server pins; empty means
	// <data_dir>/upstream_known_hosts.
	KnownHostsFile string `koanf:"known_hosts_file"`
}

// AdminConfig configures the admin socket.
type AdminConfig struct {
	// Socket is the unix socket path; empty means <data_dir>/admin.sock.
	Socket string `koanf:"socket"`
}

// MetricsConfig configures the ops listener: GET /metrics (Prometheus
// text exposition), /healthz and /readyz over plain HTTP.
type MetricsConfig struct {
	// Listen is the ops listener's TCP address ("host:port"); empty (the
	// default) means none. It speaks plaintext HTTP: bind it to loopback
	// or a private network (docs/security.md).
	Listen string `koanf:"listen"`
}

// LogConfig configures the node's logger (see NewLogger).
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `koanf:"level"`
	// Format is json or text.
	Format string `koanf:"format"`
}

// Defaults that other packages and docs refer to.
const (
	// DefaultListen is the default Gemini listen address.
	DefaultListen = "127.0.0.1:1965"
	// DefaultDataDir is the default node.data_dir.
	DefaultDataDir = "./chimalli-data"
	// WelcomeHostName is the host of the built-in welcome capsule served
	// when gateway.hosts is empty.
	WelcomeHostName = "localhost"
)

// WelcomeHostAliases returns the aliases of the built-in welcome host.
func WelcomeHostAliases() []string { return []string{"127.0.0.1", "::1"} }

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() *Config {
	// The gateway's and the limiter's own defaults, so the two layers
	// cannot drift apart.
	lim, rl, ab := gateway.DefaultLimits(), ratelimit.DefaultConfig(), raftstore.DefaultAutoBanPolicy()
	return &Config{
		Node: NodeConfig{DataDir: DefaultDataDir},
		Gateway: GatewayConfig{
			Listen:      DefaultListen,
			PublicPorts: []int{},
			Limits: LimitsConfig{
				MaxRequestBytes:  lim.MaxRequestBytes,
				HandshakeTimeout: lim.HandshakeTimeout,
				RequestTimeout:   lim.RequestTimeout,
				DecideTimeout:    lim.DecideTimeout,
				WriteTimeout:     lim.WriteTimeout,
				MaxConns:         lim.MaxConns,
				MaxConnsPerIP:    lim.MaxConnsPerIP,
				MaxTitanBytes:    ByteSize(lim.MaxTitanBytes),
			},
			TLS: TLSConfig{
				KeyExchanges:        []string{},
				SessionTickets:      true,
				SessionLifetime:     gateway.DefaultSessionLifetime,
				CertSessionLifetime: gateway.DefaultCertSessionLifetime,
			},
			Hosts: []HostConfig{},
		},
		Access: AccessConfig{DefaultAllow: true, Allow: []string{}, Deny: []string{}},
		RateLimit: RateLimitConfig{
			Capacity:     rl.Capacity,
			RefillPerSec: rl.RefillPerSec,
			HardFactor:   rl.HardFactor,
			IPv4Prefix:   rl.IPv4Prefix,
			IPv6Prefix:   rl.IPv6Prefix,
			MaxKeys:      rl.MaxKeys,
		},
		AutoBan: AutoBanConfig{
			Threshold: ab.Threshold,
			Duration:  ab.Duration,
			Escalate:  ab.Escalate,
			Max:       ab.Max,
		},
		Audit: AuditConfig{
			Buffer:           events.DefaultAuditBuffer,
			HashKeyRotation:  24 * time.Hour,
			HashKeyRetention: 72 * time.Hour,
			StreamMaxAge:     DefaultAuditStreamMaxAge,
			StreamMaxBytes:   DefaultAuditStreamMaxBytes,
			SpoolMaxBytes:    DefaultAuditSpoolMaxBytes,
		},
		Cluster: defaultCluster(),
		NATS:    defaultNATS(),
		Log:     LogConfig{Level: "error", Format: "json"},
	}
}

// DefaultRoute returns a route with every default applied; Load starts each
// route of a file from it. A route still needs a prefix and a handler.
func DefaultRoute() RouteConfig {
	return RouteConfig{
		AllowedFingerprints: []string{},
		ConnectTimeout:      5 * time.Second,
		Timeout:             gateway.DefaultReadTimeout,
	}
}

// NodeID returns node.id, or the host name when it is empty.
func (c *Config) NodeID() (string, error) {
	if c.Node.ID != "" {
		return c.Node.ID, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return h, nil
}

// dataPath returns set, or name inside the data directory when set is empty.
func (c *Config) dataPath(set, name string) string {
	if set != "" {
		return set
	}
	return filepath.Join(c.Node.DataDir, name)
}

// PinsFile returns tofu.pins_file or <data_dir>/pins.
func (c *Config) PinsFile() string { return c.dataPath(c.TOFU.PinsFile, "pins") }

// KnownHostsFile returns tofu.known_hosts_file or <data_dir>/upstream_known_hosts.
func (c *Config) KnownHostsFile() string {
	return c.dataPath(c.TOFU.KnownHostsFile, "upstream_known_hosts")
}

// AdminSocket returns admin.socket or <data_dir>/admin.sock.
func (c *Config) AdminSocket() string { return c.dataPath(c.Admin.Socket, "admin.sock") }

// CertDir returns <data_dir>/certs, where generated host certificates live.
func (c *Config) CertDir() string { return filepath.Join(c.Node.DataDir, "certs") }

// CertFiles returns the certificate and key files of h. When h names none,
// they are <data_dir>/certs/<name>.crt and .key and generate is true: the
// gateway creates them if they do not exist.
func (c *Config) CertFiles(h HostConfig) (cert, key string, generate bool) {
	if h.Cert != "" || h.Key != "" {
		return h.Cert, h.Key, false
	}
	base := filepath.Join(c.CertDir(), CertName(h.Name))
	return base + ".crt", base + ".key", true
}

// UsesWelcomeCapsule reports whether no host is configured, so the node
// serves the built-in welcome capsule on WelcomeHostName.
func (c *Config) UsesWelcomeCapsule() bool { return len(c.Gateway.Hosts) == 0 }

// UploadLimit returns the effective upload size limit of r: its
// max_upload_bytes, or gateway.limits.max_titan_bytes when that is 0.
func (c *Config) UploadLimit(r RouteConfig) ByteSize {
	if r.MaxUploadBytes > 0 {
		return r.MaxUploadBytes
	}
	return c.Gateway.Limits.MaxTitanBytes
}

// PublicPorts returns the ports clients may name in URLs for h: its own
// public_ports, else gateway.public_ports, else the listen port. It returns
// nil when all are unset and the listen port is 0 (the caller then uses the
// port it bound).
func (c *Config) PublicPorts(h HostConfig) []uint16 {
	ports := h.PublicPorts
	if len(ports) == 0 {
		ports = c.Gateway.PublicPorts
	}
	if len(ports) == 0 {
		_, p, err := parseListen(c.Gateway.Listen)
		if err != nil || p == 0 {
			return nil
		}
		return []uint16{p}
	}
	out := make([]uint16, 0, len(ports))
	for _, p := range ports {
		if p > 0 && p <= 65535 {
			out = append(out, uint16(p))
		}
	}
	return out
}

// AliasHosts returns the host's aliases as the gateway takes them
// (HostLiteral: IPv6 literals without brackets).
func (h HostConfig) AliasHosts() []string {
	out := make([]string, len(h.Aliases))
	for i, a := range h.Aliases {
		out[i] = HostLiteral(a)
	}
	return out
}

// CertName returns the file name, without extension, of the certificate
// generated for host: the name as the gateway normalises it (lower case,
// no trailing dot, punycode), so every spelling of a host shares one
// certificate. A name the gateway refuses (Validate reports it) is only
// lower-cased.
func CertName(host string) string {
	if n, err := gateway.NormalizeHost(strings.TrimSpace(host)); err == nil {
		return n
	}
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
}
