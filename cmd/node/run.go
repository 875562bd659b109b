package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/gateway"
	"github.com/chimalli/chimalli/ops/admin"
	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/ops/logging"
	"github.com/chimalli/chimalli/ops/metrics"
	"github.com/chimalli/chimalli/raftstore/cluster"
	"github.com/chimalli/chimalli/ratelimit"
	"github.com/chimalli/chimalli/tofu"
	"github.com/spf13/cobra"
)

// shutdownGrace is how long in-flight requests get to finish on SIGINT or
// SIGTERM before their connections are closed.
const shutdownGrace = 10 * time.Second

// generatedCertDays is the validity of a certificate generated for a host
// that has none configured. TOFU clients pin it, so it should outlive them.
const generatedCertDays = 3650

func newRunCmd() *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "run [--config FILE]",
		Short: "Run a gateway node",
		Long: `Run a Chimalli gateway node in the foreground.

With no configuration it serves a built-in welcome capsule on 127.0.0.1:1965
for the host "localhost", with a certificate generated into ./chimalli-data.
Settings come from defaults, then the --config file (YAML or TOML; without
the flag, the file CHIMALLI_CONFIG names), then CHIMALLI_* environment
variables, then flags; see docs/configuration.md.

An IPv4 address (--listen 0.0.0.0:1965) listens on IPv4 only, an IPv6 one
([::]:1965) on IPv6 only, an empty host (:1965) on both.

SIGHUP reloads the certificate files; SIGINT or SIGTERM stop the node after
letting requests in flight finish (up to 10 s).`,
		Example: `  chimalli run
  chimalli run --config /etc/chimalli/chimalli.yaml
  CHIMALLI_LOG__LEVEL=info chimalli run --listen 0.0.0.0:1965`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(config.LoadOptions{File: configFile, Flags: cmd.Flags()})
			if err != nil {
				return err
			}
			return runNode(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "configuration file (.yaml, .yml or .toml); default $"+config.EnvConfigFile)
	config.BindFlags(cmd.Flags())
	return cmd
}

// node is a running node's components, for shutdown.
type node struct {
	srv     *gateway.Server
	admin   *admin.Admin
	opsLn   net.Listener    // metrics.listen, bound first; served by ops
	ops     *metrics.Server // nil without metrics.listen
	state   *cluster.Node
	events  *eventPlane // NATS: started after state, closed before it
	closers []io.Closer
	// fatal receives the cluster state's fatal error (an entry of an
	// unknown schema version): the node then stops with it.
	fatal chan error
	bg    context.CancelFunc // stops background work (pin import)
}

func runNode(ctx context.Context, cfg *config.Config, out io.Writer) error {
	logger, err := logging.NewLogger(cfg.Log.Level, cfg.Log.Format, os.Stderr)
	if err != nil {
		return err
	}
	n, err := startNode(ctx, cfg, logger, out)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := n.srv.ReloadCertificates(); err != nil {
				logger.Error("reload certificates", "err", err)
			}
		case err := <-n.fatal:
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			defer cancel()
			return errors.Join(fmt.Errorf("cluster state: %w", err), n.close(sctx))
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			defer cancel()
			return n.close(sctx)
		}
	}
}

// startNode builds every component from cfg and starts serving.
//
// It binds the listeners (Gemini, then metrics.listen), opens the
// document roots and reads the certificate and pin files that exist
// before it writes anything, so that
// a start that fails there (port in use, missing docroot, bad file)
// leaves no data directory, key or audit file behind. Only then does it
// open the audit file, create the data directory, the pin stores and the
// generated certificates.
func startNode(ctx context.Context, cfg *config.Config, logger *slog.Logger, out io.Writer) (_ *node, err error) {
	n := &node{fatal: make(chan error, 1)}
	ln, err := gateway.Listen(ctx, cfg.Gateway.Listen)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if n.srv == nil {
				ln.Close()
			}
			n.close(context.Background())
		}
	}()
	if cfg.Metrics.Listen != "" {
		// The Gemini listener's rule: 0.0.0.0 is IPv4 only, :: IPv6 only.
		if n.opsLn, err = gateway.Listen(ctx, cfg.Metrics.Listen); err != nil {
			return nil, fmt.Errorf("metrics.listen: %w", err)
		}
	}
	docroots, err := openDocroots(cfg, n)
	if err != nil {
		return nil, err
	}
	if err := checkCertFiles(cfg); err != nil {
		return nil, err
	}
	claims, err := openExistingPins(cfg.PinsFile())
	if err != nil {
		return nil, fmt.Errorf("pins: %w", err)
	}
	upstreamPins, err := openExistingPins(cfg.KnownHostsFile())
	if err != nil {
		return nil, fmt.Errorf("upstream known hosts: %w", err)
	}
	hashKeys := &auditKeys{} // the cluster's hashing key, once its node exists
	hasher, err := events.NewIPHasherFrom(hashKeys)
	if err != nil {
		return nil, err
	}
	limiter, err := ratelimit.New(ratelimit.Config{
		Capacity:     cfg.RateLimit.Capacity,
		RefillPerSec: cfg.RateLimit.RefillPerSec,
		HardFactor:   cfg.RateLimit.HardFactor,
		IPv4Prefix:   cfg.RateLimit.IPv4Prefix,
		IPv6Prefix:   cfg.RateLimit.IPv6Prefix,
		MaxKeys:      cfg.RateLimit.MaxKeys,
	})
	if err != nil {
		return nil, fmt.Errorf("rate_limit: %w", err)
	}
	allow, err := cfg.Access.AllowPrefixes()
	if err != nil {
		return nil, err
	}
	deny, err := cfg.Access.DenyPrefixes()
	if err != nil {
		return nil, err
	}
	groups, err := cfg.Gateway.TLS.CurvePreferences()
	if err != nil {
		return nil, err
	}
	id, writeID, err := nodeID(cfg)
	if err != nil {
		return nil, err
	}
	cfg.Node.ID = id
	access := newAccessView(allow, deny, cfg.Access.DefaultAllow)
	// Lifting a ban starts its clients afresh at this node's limiter,
	// before the new ban view admits them.
	state, err := clusterNode(cfg, id, logger, hasher, func(p netip.Prefix) { limiter.ResetPrefix(p) }, access.update,
		func(err error) {
			select {
			case n.fatal <- err:
			default:
			}
		})
	if err != nil {
		return nil, err
	}
	hashKeys.node.Store(state)

	if err := checkAuditDir(cfg); err != nil {
		return nil, err
	}

	// Everything checked: now write.
	if err := os.MkdirAll(cfg.Node.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if writeID {
		if err := os.WriteFile(nodeIDFile(cfg), []byte(id+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("node id: %w", err)
		}
	}
	audit, err := openAudit(cfg, id, hasher, n)
	if err != nil {
		return nil, err
	}
	if err := state.Open(ctx); err != nil {
		return nil, err
	}
	n.state = state
	if cfg.Cluster.Listen == "" {
		// A cluster of one elects itself within milliseconds: serve only
		// once it can commit, so the first auto-ban or claim does not wait.
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := state.WaitLeader(wctx)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	if n.events, err = startEventPlane(ctx, cfg, id, logger); err != nil {
		return nil, err
	}
	if err := n.events.publishState(ctx, cfg, state, hasher, logger); err != nil {
		return nil, err
	}
	if err := n.events.publishAudit(cfg, id, logger); err != nil {
		return nil, err
	}
	audit.pub = n.events.audit
	if err := n.events.answerBans(ctx, cfg, state, logger); err != nil {
		return nil, err
	}
	conflicts, err := n.events.publishConflicts(ctx, cfg, id, hasher, logger)
	if err != nil {
		return nil, err
	}
	// Pin files from before the cluster are committed as claims once, in
	// the background (a new cluster may not have its leader yet).
	bg, cancelBG := context.WithCancel(context.Background())
	n.bg = cancelBG
	for _, f := range []*tofu.FileStore{claims, upstreamPins} {
		if f != nil {
			go importPins(bg, state, f.Path(), logger)
		}
	}
	pins := state.PinStore()
	hosts, err := buildHosts(cfg, docroots, pins)
	if err != nil {
		return nil, err
	}
	lim := cfg.Gateway.Limits
	srv, err := gateway.New(gateway.Config{
		Listen: cfg.Gateway.Listen,
		Hosts:  hosts,
		Limits: gateway.Limits{
			HandshakeTimeout: lim.HandshakeTimeout,
			RequestTimeout:   lim.RequestTimeout,
			DecideTimeout:    lim.DecideTimeout,
			WriteTimeout:     lim.WriteTimeout,
			MaxRequestBytes:  lim.MaxRequestBytes,
			MaxConns:         lim.MaxConns,
			MaxConnsPerIP:    lim.MaxConnsPerIP,
			MaxTitanBytes:    int64(lim.MaxTitanBytes),
		},
		Layers: gateway.Layers{
			Access:    access,
			Bans:      state,
			Limiter:   limiter,
			Abuse:     state,
			Pins:      pins,
			Conflicts: conflicts,
		},
		KeyExchanges: groups,
		Sessions: gateway.SessionPolicy{
			Disabled:     !cfg.Gateway.TLS.SessionTickets,
			Lifetime:     cfg.Gateway.TLS.SessionLifetime,
			CertLifetime: cfg.Gateway.TLS.CertSessionLifetime,
			Keys:         &ticketKeys{node: state, keep: max(cfg.Gateway.TLS.SessionLifetime, cfg.Gateway.TLS.CertSessionLifetime)},
		},
		Audit:  audit,
		Hasher: hasher,
		Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Serve(ln); err != nil {
		return nil, err
	}
	n.srv = srv
	n.closers = append(n.closers, sweeper(limiter, time.Minute))

	ready := readiness(state) // the admin socket's and /readyz's one rule
	n.admin = admin.NewAdmin(cfg.AdminSocket(), ready, logger)
	n.admin.HandleBans(state)
	n.admin.HandleRules(state)
	n.admin.HandleTrust(state)
	n.admin.HandleCluster(state)
	n.admin.HandleSnapshots(state)
	if err := n.admin.Open(ctx); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	var opsAddr net.Addr
	if n.opsLn != nil {
		reg := metrics.NewRegistry(opsSources(id, srv, state, n.events, audit.log))
		n.ops = metrics.Serve(n.opsLn, metrics.Handler(reg, ready, logger), logger)
		opsAddr = n.ops.Addr()
	}
	printBanner(out, srv.Addr(), gateway.DualStack(cfg.Gateway.Listen, ln), hosts, cfg, opsAddr)
	if a := n.events.clientAddr(); a != nil {
		fmt.Fprintf(out, "nats: tls://%s (cluster certificates only)\n", a)
	}
	return n, nil
}

// nodeIDFile keeps the id of a node whose node.id is not configured.
func nodeIDFile(cfg *config.Config) string { return filepath.Join(cfg.Node.DataDir, "node-id") }

// nodeID returns the node's id: node.id when configured; otherwise the id
// kept in <data_dir>/node-id, or at the first start the host name, which
// is then kept (writeID). A node's Raft state names it by this id, so it
// must not change with the host name (a container's is new each time).
func nodeID(cfg *config.Config) (id string, writeID bool, err error) {
	if cfg.Node.ID != "" {
		return cfg.Node.ID, false, nil
	}
	b, err := os.ReadFile(nodeIDFile(cfg))
	switch {
	case err == nil:
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, false, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("node id: %w", err)
	}
	id, err = cfg.NodeID()
	return id, true, err
}

// openDocroots opens every route's document root, by path, so that a
// missing or unreadable one fails the start before anything is written.
// The roots are closed by n.close.
func openDocroots(cfg *config.Config, n *node) (map[string]gateway.Handler, error) {
	out := make(map[string]gateway.Handler)
	for i, hc := range cfg.Gateway.Hosts {
		for j, rc := range hc.Routes {
			if rc.Docroot == "" || out[rc.Docroot] != nil {
				continue
			}
			h, closer, err := gateway.NewDocroot(rc.Docroot)
			if err != nil {
				return nil, fmt.Errorf("gateway.hosts[%d].routes[%d].docroot: %w", i, j, err)
			}
			n.closers = append(n.closers, closer)
			out[rc.Docroot] = h
		}
	}
	return out, nil
}

// checkCertFiles loads the certificate and key files the configuration
// names, so that a bad pair fails the start before a certificate is
// generated for another host.
func checkCertFiles(cfg *config.Config) error {
	for i, hc := range cfg.Gateway.Hosts {
		if certFile, keyFile, generate := cfg.CertFiles(hc); !generate {
			if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
				return fmt.Errorf("gateway.hosts[%d]: certificate: %w", i, err)
			}
		}
	}
	return nil
}

// checkAuditDir checks that audit.file, when set, is in a directory that
// exists or is the data directory (created next).
func checkAuditDir(cfg *config.Config) error {
	if cfg.Audit.File == "" {
		return nil
	}
	dir := filepath.Dir(cfg.Audit.File)
	if filepath.Clean(dir) == filepath.Clean(cfg.Node.DataDir) {
		return nil
	}
	switch fi, err := os.Stat(dir); {
	case err != nil:
		return fmt.Errorf("audit.file: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("audit.file: %s is not a directory", dir)
	}
	return nil
}

// openExistingPins opens the pin store at path if the file exists (reading
// checks it); it returns nil when there is none yet, for the caller to
// create once writing is allowed.
func openExistingPins(path string) (*tofu.FileStore, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return tofu.OpenFileStore(path)
}

func (n *node) close(ctx context.Context) error {
	var errs []error
	switch {
	case n.ops != nil:
		errs = append(errs, n.ops.Close(ctx))
	case n.opsLn != nil:
		errs = append(errs, n.opsLn.Close())
	}
	if n.admin != nil {
		errs = append(errs, n.admin.Close(ctx))
	}
	if n.srv != nil {
		errs = append(errs, n.srv.Close(ctx))
	}
	if n.bg != nil {
		n.bg()
	}
	if n.events != nil {
		errs = append(errs, n.events.Close())
	}
	if n.state != nil {
		errs = append(errs, n.state.Close())
	}
	for _, c := range n.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// openAudit opens audit.file, when set, into the gateway's audit sink,
// its records naming node id; the event plane's publisher joins it later.
// The log is closed (and flushed) after the server, by n.close.
func openAudit(cfg *config.Config, id string, hasher *events.IPHasher, n *node) (auditSink, error) {
	if cfg.Audit.File == "" {
		return auditSink{hasher: hasher}, nil
	}
	log, err := events.OpenAuditFile(cfg.Audit.File, events.AuditLogConfig{Buffer: cfg.Audit.Buffer, Node: id})
	if err != nil {
		return auditSink{}, fmt.Errorf("audit.file: %w", err)
	}
	n.closers = append(n.closers, closerFunc(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return log.Close(ctx)
	}))
	return auditSink{log: log, hasher: hasher}, nil
}

// buildHosts turns the configured hosts (or the welcome capsule) into
// gateway hosts, generating certificates where none is configured; docroots
// are the handlers openDocroots opened.
func buildHosts(cfg *config.Config, docroots map[string]gateway.Handler, upstreamPins tofu.Store) ([]gateway.Host, error) {
	if cfg.UsesWelcomeCapsule() {
		hc := config.HostConfig{Name: config.WelcomeHostName, Aliases: config.WelcomeHostAliases()}
		h, err := hostCerts(cfg, hc)
		if err != nil {
			return nil, err
		}
		h.Routes = []gateway.Route{{Prefix: "/", Handler: gateway.WelcomeHandler()}}
		return []gateway.Host{h}, nil
	}
	var hosts []gateway.Host
	for i, hc := range cfg.Gateway.Hosts {
		h, err := hostCerts(cfg, hc)
		if err != nil {
			return nil, err
		}
		for j, rc := range hc.Routes {
			rt, err := buildRoute(cfg, rc, docroots, upstreamPins)
			if err != nil {
				return nil, fmt.Errorf("gateway.hosts[%d].routes[%d]: %w", i, j, err)
			}
			h.Routes = append(h.Routes, rt)
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

func hostCerts(cfg *config.Config, hc config.HostConfig) (gateway.Host, error) {
	h := gateway.Host{Name: hc.Name, Aliases: hc.AliasHosts()}
	for _, p := range cfg.PublicPorts(hc) {
		h.PublicPorts = append(h.PublicPorts, int(p))
	}
	certFile, keyFile, generate := cfg.CertFiles(hc)
	if generate {
		req := tofu.CertRequest{CommonName: hc.Name, DNSNames: []string{hc.Name}, Days: generatedCertDays}
		for _, a := range h.Aliases {
			if ip, err := netip.ParseAddr(a); err == nil {
				req.IPAddresses = append(req.IPAddresses, net.IP(ip.AsSlice()))
			} else {
				req.DNSNames = append(req.DNSNames, a)
			}
		}
		var err error
		_, certFile, keyFile, _, err = tofu.LoadOrCreateKeyPair(cfg.CertDir(), config.CertName(hc.Name), req)
		if err != nil {
			return h, fmt.Errorf("host %s: certificate: %w", hc.Name, err)
		}
	}
	h.CertFile, h.KeyFile = certFile, keyFile
	return h, nil
}

func buildRoute(cfg *config.Config, rc config.RouteConfig, docroots map[string]gateway.Handler, upstreamPins tofu.Store) (gateway.Route, error) {
	fps, err := rc.Fingerprints()
	if err != nil {
		return gateway.Route{}, err
	}
	rt := gateway.Route{
		Prefix:              rc.Prefix,
		RequireCert:         rc.RequireCert,
		AllowedFingerprints: fps,
		TOFUClaim:           rc.TOFU == config.TOFUClaim,
		Uploads:             rc.Uploads,
		MaxUploadBytes:      int64(cfg.UploadLimit(rc)),
	}
	switch {
	case rc.Docroot != "":
		rt.Handler = docroots[rc.Docroot]
	case rc.Upstream != "":
		pc := gateway.ProxyConfig{
			Upstream:       rc.Upstream,
			SNI:            rc.UpstreamSNI,
			ProxyProtocol:  rc.ProxyProtocol,
			ConnectTimeout: rc.ConnectTimeout,
			ReadTimeout:    rc.Timeout,
			Pins:           upstreamPins,
		}
		if rc.StripPrefix {
			pc.StripPrefix = rc.Prefix
		}
		h, err := gateway.NewProxy(pc)
		if err != nil {
			return rt, err
		}
		rt.Handler = h
	default:
		return rt, errors.New("route has neither docroot nor upstream")
	}
	return rt, nil
}

// sweeper drops idle rate-limit buckets periodically.
func sweeper(l *ratelimit.Limiter, every time.Duration) io.Closer {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.Sweep()
			case <-done:
				return
			}
		}
	}()
	return closerFunc(func() error { close(done); return nil })
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// printBanner tells the operator exactly where the node listens (addr, the
// bound address; dual when it also takes IPv4 clients on [::]) and which
// certificates it presents: the fingerprints clients will pin; opsAddr is
// the ops listener's address (metrics.listen), nil without one.
func printBanner(w io.Writer, addr net.Addr, dual bool, hosts []gateway.Host, cfg *config.Config, opsAddr net.Addr) {
	fmt.Fprintf(w, "chimalli: serving gemini on %s\n", listenDescription(addr, dual))
	for _, h := range hosts {
		fp := "?"
		if pair, err := tls.LoadX509KeyPair(h.CertFile, h.KeyFile); err == nil {
			fp = tofu.CertFingerprint(pair.Certificate[0]).String()
		}
		fmt.Fprintf(w, "  host %s  certificate %s\n    %s\n", h.Name, h.CertFile, fp)
	}
	if u := welcomeURL(addr, cfg); u != "" {
		fmt.Fprintf(w, "try: chimalli get %s\n", u)
	}
	if opsAddr != nil {
		fmt.Fprintf(w, "metrics: http://%s/metrics, /healthz, /readyz (plaintext HTTP)\n", opsAddr)
	}
	fmt.Fprintf(w, "admin socket: %s\n", cfg.AdminSocket())
}

// listenDescription returns the bound address, saying which clients a
// wildcard address takes.
func listenDescription(addr net.Addr, dual bool) string {
	ap, err := netip.ParseAddrPort(addr.String())
	switch {
	case err != nil || !ap.Addr().IsUnspecified():
		return addr.String()
	case dual:
		return addr.String() + " (every IPv4 and IPv6 address)"
	case ap.Addr().Is4():
		return addr.String() + " (every IPv4 address; IPv6 clients need [::] or an empty host)"
	}
	return addr.String() + " (every IPv6 address; IPv4 clients need 0.0.0.0 or an empty host)"
}

// welcomeURL returns the URL of the welcome capsule on this machine
// ("gemini://localhost:1967/", no port for 1965), or "" when the node
// serves configured hosts, or localhost cannot reach the listener, or
// clients must name another public port.
func welcomeURL(addr net.Addr, cfg *config.Config) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil || !cfg.UsesWelcomeCapsule() || !(ap.Addr().IsLoopback() || ap.Addr().IsUnspecified()) {
		return ""
	}
	port := ap.Port()
	if pp := cfg.PublicPorts(config.HostConfig{}); len(pp) > 0 && !slices.Contains(pp, port) {
		return ""
	}
	if port == gateway.DefaultGeminiPort {
		return "gemini://" + config.WelcomeHostName + "/"
	}
	return fmt.Sprintf("gemini://%s:%d/", config.WelcomeHostName, port)
}
