package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// startMollyBrown runs the real molly-brown Gemini server (Debian package
// molly-brown, /usr/bin/molly-brown) on a free loopback port, serving
// docroot as Hostname "localhost", and returns its "127.0.0.1:port"
// address once it accepts TLS handshakes. Requests to it must name
// gemini://localhost:<port>/ or molly-brown answers 53. The process is
// killed at cleanup; its error log is copied to the test log on failure.
// molly-brown serves only world-readable files (0644): others get 51.
// The test is skipped when molly-brown is not installed.
func startMollyBrown(t *testing.T, docroot string) (addr string) {
	t.Helper()
	bin, err := exec.LookPath("molly-brown")
	if err != nil {
		t.Skip("molly-brown not installed: apt-get install molly-brown")
	}
	dir := t.TempDir()
	certPEM, keyPEM, err := tofu.GenerateCert(tofu.CertRequest{
		CommonName: "localhost", DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Days: 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	// molly-brown binds every interface at Port, and has no way to be handed
	// a socket: pick a free port, and start again on another one if some
	// other process took it meanwhile.
	for attempt := 1; ; attempt++ {
		addr, err := runMollyBrown(t, bin, dir, certPath, keyPath, docroot)
		if err == nil {
			return addr
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("molly-brown attempt %d: %v", attempt, err)
	}
}

// runMollyBrown starts molly-brown on a free port and waits until it
// answers TLS with its own certificate.
func runMollyBrown(t *testing.T, bin, dir, certPath, keyPath, docroot string) (string, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	errLog := filepath.Join(dir, "error.log")
	conf := filepath.Join(dir, "molly.conf")
	// Keys of molly-brown 0.0~git20210124 (Debian): see its config.go.
	toml := fmt.Sprintf(`Port = %d
Hostname = "localhost"
CertPath = %q
KeyPath = %q
DocBase = %q
AccessLog = %q
ErrorLog = %q
`, port, certPath, keyPath, docroot, filepath.Join(dir, "access.log"), errLog)
	if err := os.WriteFile(conf, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	wantCert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-c", conf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start molly-brown: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			logs, _ := os.ReadFile(errLog)
			t.Logf("molly-brown output:\n%s\nerror log:\n%s", out.String(), logs)
		}
	})

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		d := &net.Dialer{Timeout: time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		if err == nil {
			same := bytes.Equal(conn.ConnectionState().PeerCertificates[0].Raw, wantCert.Certificate[0])
			conn.Close()
			if same {
				return addr, nil
			}
		}
		select {
		case werr := <-exited:
			exited <- werr
			logs, _ := os.ReadFile(errLog)
			return "", fmt.Errorf("molly-brown exited: %v\n%s%s", werr, out.String(), logs)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("molly-brown did not accept TLS on %s: %v", addr, err)
		}
	}
}

func TestProxyMollyBrown(t *testing.T) {
	docroot := t.TempDir()
	writeFile(t, filepath.Join(docroot, "index.gmi"), []byte("# Molly home\n"))
	writeFile(t, filepath.Join(docroot, "docs", "index.gmi"), []byte("# Docs\n"))
	writeFile(t, filepath.Join(docroot, "docs", "page.gmi"), []byte("# A page served by molly-brown\n=> /docs/ back\n"))
	addr := startMollyBrown(t, docroot)

	pins := tofu.NewMemStore()
	h := newTestProxy(t, ProxyConfig{
		Upstream:    "gemini://" + addr,
		SNI:         "localhost",
		StripPrefix: "/molly/",
		Pins:        pins,
	})
	tests := []struct {
		path   string
		status int
		meta   string
		body   string
	}{
		{"/molly/docs/page.gmi", 20, "text/gemini", "# A page served by molly-brown\n=> /docs/ back\n"},
		{"/molly/", 20, "text/gemini", "# Molly home\n"},
		{"/molly/missing.gmi", 51, "", ""},
		{"/molly/docs", 31, "/molly/docs/", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			var w recorder
			if err := h.ServeGemini(context.Background(), &w, geminiRequest(t, tc.path)); err != nil {
				t.Fatal(err)
			}
			if w.status != tc.status {
				t.Fatalf("status %d %q, want %d", w.status, w.meta, tc.status)
			}
			if tc.meta != "" && !bytes.HasPrefix([]byte(w.meta), []byte(tc.meta)) {
				t.Errorf("meta %q, want %q…", w.meta, tc.meta)
			}
			if w.body.String() != tc.body {
				t.Errorf("body %q, want %q", w.body.String(), tc.body)
			}
		})
	}
	port := addr[len("127.0.0.1:"):]
	if _, ok := pins.Lookup(tofu.PinKey{Kind: tofu.PinUpstream, Scope: "localhost:" + port}); !ok {
		t.Error("molly-brown's certificate was not pinned")
	}
}
