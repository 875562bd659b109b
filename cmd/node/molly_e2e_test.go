package main

import (
	"bytes"
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

// molly runs the real molly-brown (Debian package) on a free loopback port
// serving docroot as host "localhost", with a certificate zone: paths under
// /zone/ need the client certificate zoneFP. Its certificate is made as the
// README makes it, with `chimalli cert new`. It returns the port.
func molly(t *testing.T, docroot, zoneFP string) int {
	t.Helper()
	bin, err := exec.LookPath("molly-brown")
	if err != nil {
		t.Skip("molly-brown not installed: apt-get install molly-brown")
	}
	dir := t.TempDir()
	if _, errOut, code := chimalli(t, dir, "cert", "new", "--cn", "localhost", "--dns", "localhost", "--out", "molly"); code != 0 {
		t.Fatalf("cert new for molly: %s", errOut)
	}
	certPath, keyPath := filepath.Join(dir, "molly", "localhost.crt"), filepath.Join(dir, "molly", "localhost.key")
	// molly-brown binds every interface at its port: if another process
	// took the free port meanwhile, start again on another.
	for attempt := 1; ; attempt++ {
		port, err := runMolly(t, bin, dir, certPath, keyPath, docroot, zoneFP)
		if err == nil {
			return port
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

func runMolly(t *testing.T, bin, dir, certPath, keyPath, docroot, zoneFP string) (int, error) {
	t.Helper()
	port := freePort(t)
	conf := filepath.Join(dir, "molly.conf")
	toml := fmt.Sprintf("Port = %d\nHostname = \"localhost\"\nCertPath = %q\nKeyPath = %q\nDocBase = %q\nAccessLog = %q\nErrorLog = %q\n\n[CertificateZones]\n\"^/zone\" = [%q]\n",
		port, certPath, keyPath, docroot, filepath.Join(dir, "access.log"), filepath.Join(dir, "error.log"), zoneFP)
	if err := os.WriteFile(conf, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	want, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		if err == nil {
			ours := bytes.Equal(c.ConnectionState().PeerCertificates[0].Raw, want.Certificate[0])
			c.Close()
			if ours {
				return port, nil
			}
		}
		select {
		case <-exited:
			return 0, fmt.Errorf("molly-brown exited: %s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("molly-brown not accepting on %s: %v", addr, err)
		}
	}
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestE2EMollyBrownBehindGateway runs the README's molly-brown recipe:
// molly-brown behind the gateway, with a certificate-protected path. It
// differs from the README in what a test cannot do: free loopback ports
// instead of 1965 and 1966, and no nftables rule (that needs root); and it
// adds a molly certificate zone.
func TestE2EMollyBrownBehindGateway(t *testing.T) {
	dir := t.TempDir()
	_, errOut, code := chimalli(t, dir, "cert", "new", "--cn", "alice", "--out", "ids")
	if code != 0 {
		t.Fatal(errOut)
	}
	chimalli(t, dir, "cert", "new", "--cn", "mallory", "--out", "ids")
	alice, err := tls.LoadX509KeyPair(filepath.Join(dir, "ids", "alice.crt"), filepath.Join(dir, "ids", "alice.key"))
	if err != nil {
		t.Fatal(err)
	}
	aliceFP := tofu.CertFingerprint(alice.Certificate[0])

	docroot := filepath.Join(dir, "capsule")
	writeTree(t, docroot, map[string]string{
		"index.gmi":       "# Molly's capsule\n",
		"zone/secret.gmi": "molly zone secret\n",
		"admin/index.gmi": "admin secret\n",
	})
	// molly-brown's own zone takes the hex fingerprint without prefix.
	mport := molly(t, docroot, strings.TrimPrefix(aliceFP.String(), "sha256:"))

	port := freePort(t)
	cfg := filepath.Join(dir, "chimalli.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`rate_limit: {capacity: 1000}
gateway:
  listen: 127.0.0.1:%d
  hosts:
    - name: localhost
      routes:
        - prefix: /admin/
          allowed_fingerprints: [%q]
          upstream: gemini://127.0.0.1:%d
          upstream_sni: localhost
        - prefix: /zone/
          require_cert: true
          upstream: gemini://127.0.0.1:%d
          upstream_sni: localhost
        - prefix: /
          upstream: gemini://127.0.0.1:%d
          upstream_sni: localhost
`, port, aliceFP, mport, mport, mport)), 0o600)
	spawnNode(t, dir, "--config", cfg)
	base := fmt.Sprintf("gemini://localhost:%d", port)
	kh := filepath.Join(dir, "known_hosts")
	get := func(path string, id string) (string, string, int) {
		args := []string{"get", "--known-hosts", kh, "--follow", "0"}
		if id != "" {
			args = append(args, "--cert", filepath.Join("ids", id+".crt"), "--key", filepath.Join("ids", id+".key"))
		}
		return chimalli(t, dir, append(args, base+path)...)
	}

	if out, errOut, code := get("/", ""); code != 0 || !strings.Contains(out, "Molly's capsule") {
		t.Fatalf("front page through the gateway: %d %q %q", code, out, errOut)
	}
	// Other spellings of /admin/ reach molly as /admin/ for alice (the
	// README shows /%61dmin/); molly is case-sensitive, so /ADMIN/, though
	// it falls under the same rule, is not found there.
	for _, path := range []string{"/admin/", "/%61dmin/", "//admin/", "/./admin/"} {
		if out, errOut, code := get(path, "alice"); code != 0 || !strings.Contains(out, "admin secret") {
			t.Fatalf("%s with alice: %d %q %q", path, code, out, errOut)
		}
	}
	if _, errOut, code := get("/ADMIN/", "alice"); code != 1 || !strings.Contains(errOut, ": 51 ") {
		t.Fatalf("/ADMIN/ with alice: %d %q, want molly's 51", code, errOut)
	}
	// Vectors that name the protected paths differently never get through
	// without the right certificate.
	for _, path := range []string{
		"/admin/", "/ADMIN/", "/%61dmin/", "/./admin/", "/x/../admin/", "//admin/", "/admin./",
		"/%2e/admin/", "/zone/secret.gmi", "/ZONE/secret.gmi", "/%7Aone/secret.gmi", "/public/%2e%2e/zone/secret.gmi",
	} {
		for _, id := range []string{"", "mallory"} {
			out, errOut, code := get(path, id)
			if code == 0 || strings.Contains(out, "secret") {
				t.Errorf("%s as %q reached the protected content: %d %q", path, id, code, out)
			}
			if !refusal(errOut) {
				t.Errorf("%s as %q: unexpected answer %q", path, id, errOut)
			}
		}
	}
	// molly-brown's own zone: the gateway admits alice to /zone/, but client
	// certificates end at the gateway, so molly still refuses: the zone is
	// reachable only through rules the gateway enforces.
	if out, errOut, code := get("/zone/secret.gmi", "alice"); code == 0 || strings.Contains(out, "secret") || !strings.Contains(errOut, "60") {
		t.Fatalf("molly zone with alice: %d %q %q", code, out, errOut)
	}
}

// refusal reports whether a `chimalli get` error names a refusal status:
// certificate required or not authorised, bad request, or not found (a
// case variant admitted by a certificate rule, absent on molly's disk).
func refusal(stderr string) bool {
	for _, code := range []string{": 51 ", ": 59 ", ": 60 ", ": 61 "} {
		if strings.Contains(stderr, code) {
			return true
		}
	}
	return false
}
