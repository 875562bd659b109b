package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chimalli/chimalli/gateway/gemtest"
	"github.com/chimalli/chimalli/tofu"
)

// startMolly runs the real molly-brown on a free loopback port serving
// docroot as host "localhost", with a certificate zone: paths under /zone/
// need the client certificate zoneFP. Its certificate is made as the README
// makes it, with `chimalli cert new` in dir. It returns the port.
func startMolly(t *testing.T, dir, docroot, zoneFP string) int {
	t.Helper()
	if _, errOut, code := chimalli(t, dir, "cert", "new", "--cn", "localhost", "--dns", "localhost", "--out", "molly"); code != 0 {
		t.Fatalf("cert new for molly: %s", errOut)
	}
	return gemtest.StartMollyBrown(t, gemtest.MollyBrownConfig{
		DocBase:          docroot,
		CertificateZones: map[string][]string{"^/zone": {zoneFP}},
		CertPath:         filepath.Join(dir, "molly", "localhost.crt"),
		KeyPath:          filepath.Join(dir, "molly", "localhost.key"),
	}).Port
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
	mport := startMolly(t, dir, docroot, strings.TrimPrefix(aliceFP.String(), "sha256:"))

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
