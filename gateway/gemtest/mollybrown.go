// Package gemtest runs real Gemini servers for tests: molly-brown (Debian
// package molly-brown), the upstream the gateway is tested against.
package gemtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu/tofutest"
)

// MollyBrownConfig is what a test asks of molly-brown.
type MollyBrownConfig struct {
	// DocBase is the directory served. molly-brown serves only
	// world-readable files (0644): others get 51.
	DocBase string
	// CertificateZones maps a path pattern (a regular expression, such as
	// "^/zone") to the client certificates allowed under it, each as the
	// hex SHA-256 fingerprint without prefix.
	CertificateZones map[string][]string
	// CertPath and KeyPath are molly-brown's key pair (PEM files). When
	// both are empty, a certificate for localhost, 127.0.0.1 and ::1 is
	// made with tofutest.
	CertPath, KeyPath string
}

// MollyBrown is a running molly-brown.
type MollyBrown struct {
	Addr string // "127.0.0.1:port"
	Port int
	// Cert is the server's key pair.
	Cert tls.Certificate
}

// startTimeout bounds the wait for molly-brown to answer TLS.
const startTimeout = 15 * time.Second

// StartMollyBrown runs molly-brown on a free loopback port, serving
// cfg.DocBase as Hostname "localhost", and returns once it answers TLS
// handshakes with its own certificate. Requests to it must name
// gemini://localhost:<port>/ or molly-brown answers 53. The process is
// killed at cleanup, and its output, error log and access log go to t.Log
// (shown when the test fails or with -v). The test is skipped when
// molly-brown is not installed.
func StartMollyBrown(t testing.TB, cfg MollyBrownConfig) *MollyBrown {
	t.Helper()
	bin, err := exec.LookPath("molly-brown")
	if err != nil {
		t.Skip("molly-brown not installed: apt-get install molly-brown")
	}
	certPath, keyPath := cfg.CertPath, cfg.KeyPath
	if certPath == "" && keyPath == "" {
		certPath, keyPath = tofutest.WriteKeyPair(t, "molly", tofutest.Loopback("localhost"))
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	// molly-brown binds every interface at Port and cannot be handed a
	// socket: pick a free port, and start again on another one if some
	// other process took it meanwhile.
	for attempt := 1; ; attempt++ {
		m, err := runMollyBrown(t, bin, certPath, keyPath, cert, cfg)
		if err == nil {
			return m
		}
		if attempt == 5 || !errors.Is(err, errAddrInUse) {
			t.Fatal(err)
		}
		t.Logf("molly-brown attempt %d: %v", attempt, err)
	}
}

// errAddrInUse is wrapped by runMollyBrown's error when the port was taken.
var errAddrInUse = errors.New("address already in use")

// runMollyBrown starts molly-brown once, on a port free a moment ago.
func runMollyBrown(t testing.TB, bin, certPath, keyPath string, cert tls.Certificate, cfg MollyBrownConfig) (*MollyBrown, error) {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	errLog, accessLog := filepath.Join(dir, "error.log"), filepath.Join(dir, "access.log")
	conf := filepath.Join(dir, "molly.conf")
	if err := os.WriteFile(conf, mollyConf(port, certPath, keyPath, errLog, accessLog, cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-c", conf)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start molly-brown: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		errs, _ := os.ReadFile(errLog)
		access, _ := os.ReadFile(accessLog)
		t.Logf("molly-brown on port %d: output:\n%s\nerror log:\n%s\naccess log:\n%s", port, out, errs, access)
	})

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		d := &net.Dialer{Timeout: time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		if err == nil {
			ours := bytes.Equal(conn.ConnectionState().PeerCertificates[0].Raw, cert.Certificate[0])
			conn.Close()
			if ours {
				return &MollyBrown{Addr: addr, Port: port, Cert: cert}, nil
			}
		}
		select {
		case werr := <-exited:
			exited <- werr
			logs, _ := os.ReadFile(errLog)
			if strings.Contains(out.String(), "address already in use") || bytes.Contains(logs, []byte("address already in use")) {
				return nil, fmt.Errorf("molly-brown on port %d: %w", port, errAddrInUse)
			}
			return nil, fmt.Errorf("molly-brown exited: %v\n%s%s", werr, out, logs)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("molly-brown did not answer TLS on %s within %v: %v", addr, startTimeout, err)
		}
	}
}

// mollyConf is molly-brown's configuration file. Keys are those of
// molly-brown 0.0~git20210124 (Debian): see its config.go.
func mollyConf(port int, certPath, keyPath, errLog, accessLog string, cfg MollyBrownConfig) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Port = %d\nHostname = \"localhost\"\nCertPath = %q\nKeyPath = %q\nDocBase = %q\nAccessLog = %q\nErrorLog = %q\n",
		port, certPath, keyPath, cfg.DocBase, accessLog, errLog)
	if len(cfg.CertificateZones) > 0 {
		b.WriteString("\n[CertificateZones]\n")
		for _, zone := range slices.Sorted(maps.Keys(cfg.CertificateZones)) {
			quoted := make([]string, len(cfg.CertificateZones[zone]))
			for i, fp := range cfg.CertificateZones[zone] {
				quoted[i] = strconv.Quote(fp)
			}
			fmt.Fprintf(&b, "%q = [%s]\n", zone, strings.Join(quoted, ", "))
		}
	}
	return b.Bytes()
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a child's output while the test may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
