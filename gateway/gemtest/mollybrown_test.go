package gemtest

import (
	"net"
	"strings"
	"testing"
)

func TestMollyConf(t *testing.T) {
	got := string(mollyConf(1966, "/c/molly.crt", "/c/molly.key", "/l/error.log", "/l/access.log", MollyBrownConfig{
		DocBase:          "/srv/capsule",
		CertificateZones: map[string][]string{"^/zone": {"ab12"}, "^/admin": {"cd34", "ef56"}},
	}))
	want := `Port = 1966
Hostname = "localhost"
CertPath = "/c/molly.crt"
KeyPath = "/c/molly.key"
DocBase = "/srv/capsule"
AccessLog = "/l/access.log"
ErrorLog = "/l/error.log"

[CertificateZones]
"^/admin" = ["cd34", "ef56"]
"^/zone" = ["ab12"]
`
	if got != want {
		t.Errorf("config:\n%s\nwant:\n%s", got, want)
	}
}

func TestStartMollyBrown(t *testing.T) {
	m := StartMollyBrown(t, MollyBrownConfig{DocBase: t.TempDir()})
	if _, port, _ := net.SplitHostPort(m.Addr); !strings.HasPrefix(m.Addr, "127.0.0.1:") || port == "" || m.Port == 0 {
		t.Errorf("addr %q port %d", m.Addr, m.Port)
	}
	if err := m.Cert.Leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
}
