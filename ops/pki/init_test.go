package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// dirNames lists the names in dir, hidden ones included.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestInitWritesFilesWithModes(t *testing.T) {
	want := []string{"admin.crt", "admin.key", "ca.crt", "ca.key", "n1.crt", "n1.key", "n2.crt", "n2.key"}
	for _, existing := range []bool{false, true} {
		t.Run(fmt.Sprintf("directory exists %v", existing), func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "certs")
			if existing {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			l, err := Init(dir, InitOptions{Nodes: []string{"n1", "n2"}})
			if err != nil {
				t.Fatal(err)
			}
			if got := dirNames(t, dir); !slices.Equal(got, want) {
				t.Fatalf("files %v, want %v", got, want)
			}
			if got := dirNames(t, parent); !slices.Equal(got, []string{"certs"}) {
				t.Fatalf("parent holds %v, want certs alone", got)
			}
			st, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o700 {
				t.Errorf("directory mode %v, want 0700", st.Mode().Perm())
			}
			for _, name := range want {
				st, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				wantMode := os.FileMode(0o644)
				if strings.HasSuffix(name, ".key") {
					wantMode = 0o600
				}
				if st.Mode().Perm() != wantMode {
					t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), wantMode)
				}
			}
			if err := l.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestInitCertificates(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second).Add(-24 * time.Hour)
	l, err := Init(t.TempDir()+"/c", InitOptions{
		Nodes: []string{"n1", "n2"},
		Hosts: map[string][]string{"n1": {"gw1.example.org", "10.0.0.1", "N1.Example.Net"}},
		SANs:  []string{"2001:db8::7"},
		Now:   now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := readCACert(l.CACert())
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || !ca.MaxPathLenZero || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("authority: IsCA %v, MaxPathLenZero %v, key usage %v", ca.IsCA, ca.MaxPathLenZero, ca.KeyUsage)
	}
	if want := now.AddDate(0, 0, DefaultCADays); !ca.NotAfter.Equal(want) {
		t.Errorf("authority expires %v, want %v", ca.NotAfter, want)
	}
	n1 := mustLoad(t, l.Node("n1")).cert.Leaf
	admin := mustLoad(t, l.Admin()).cert.Leaf
	for _, c := range []*x509.Certificate{ca, n1, admin} {
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s: key %T, want ECDSA P-256", c.Subject.CommonName, c.PublicKey)
		}
		if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
			t.Errorf("%s: serial %v", c.Subject.CommonName, c.SerialNumber)
		}
	}
	if want := now.AddDate(0, 0, DefaultCertDays); !n1.NotAfter.Equal(want) || !admin.NotAfter.Equal(want) {
		t.Errorf("node expires %v, admin %v, want %v", n1.NotAfter, admin.NotAfter, want)
	}
	if want := []string{"n1", "gw1.example.org", "n1.example.net", "localhost"}; !slices.Equal(n1.DNSNames, want) {
		t.Errorf("n1 DNS names %v, want %v", n1.DNSNames, want)
	}
	var ips []string
	for _, ip := range n1.IPAddresses {
		ips = append(ips, ip.String())
	}
	if want := []string{"10.0.0.1", "2001:db8::7", "127.0.0.1", "::1"}; !slices.Equal(ips, want) {
		t.Errorf("n1 IP addresses %v, want %v", ips, want)
	}
	if got := n1.URIs[0].String(); got != "chimalli://node/n1" || n1.Subject.CommonName != "n1" {
		t.Errorf("n1 URI %s, common name %s", got, n1.Subject.CommonName)
	}
	if !slices.Equal(n1.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("n1 extended key usage %v", n1.ExtKeyUsage)
	}
	if got := admin.URIs[0].String(); got != "chimalli://admin/admin" {
		t.Errorf("admin URI %s", got)
	}
	if !slices.Equal(admin.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(admin.DNSNames)+len(admin.IPAddresses) != 0 {
		t.Errorf("admin extended key usage %v, names %v %v", admin.ExtKeyUsage, admin.DNSNames, admin.IPAddresses)
	}
	for _, name := range []string{"ca.key", "n1.key", "admin.key"} {
		data, err := os.ReadFile(filepath.Join(l.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----") {
			t.Errorf("%s is not PKCS#8 PEM", name)
		}
	}
}

func TestInitNoLoopbackAndShortAuthority(t *testing.T) {
	now := time.Now()
	l, err := Init(t.TempDir()+"/c", InitOptions{Nodes: []string{"n1"}, NoLoopback: true, CADays: 30, CertDays: 365, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	n1 := mustLoad(t, l.Node("n1")).cert.Leaf
	if !slices.Equal(n1.DNSNames, []string{"n1"}) || len(n1.IPAddresses) != 0 {
		t.Errorf("names %v %v, want n1 alone", n1.DNSNames, n1.IPAddresses)
	}
	ca, _ := readCACert(l.CACert())
	if !n1.NotAfter.Equal(ca.NotAfter) {
		t.Errorf("node expires %v after the authority %v", n1.NotAfter, ca.NotAfter)
	}
}

func TestInitRefusesToOverwrite(t *testing.T) {
	l := newCluster(t, "n1", "n2", "n3")
	before, err := os.ReadFile(l.CACert())
	if err != nil {
		t.Fatal(err)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		after, err := os.ReadFile(l.CACert())
		if err != nil || string(after) != string(before) {
			t.Fatalf("ca.crt changed (%v)", err)
		}
	}

	t.Run("same cluster again", func(t *testing.T) {
		got, err := Init(l.Dir, InitOptions{Nodes: []string{"n1", "n2", "n3"}})
		if !errors.Is(err, ErrInitialised) || got == nil || got.Dir != l.Dir {
			t.Fatalf("Init: %v, %v; want the layout and ErrInitialised", got, err)
		}
		unchanged(t)
	})
	t.Run("a subset of the nodes", func(t *testing.T) {
		if _, err := Init(l.Dir, InitOptions{Nodes: []string{"n1", "n2"}}); !errors.Is(err, ErrInitialised) {
			t.Fatalf("Init: %v, want ErrInitialised", err)
		}
	})
	t.Run("another node", func(t *testing.T) {
		_, err := Init(l.Dir, InitOptions{Nodes: []string{"n1", "n2", "n4"}})
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "but not n4.key, n4.crt") {
			t.Fatalf("Init: %v, want fs.ErrExist naming the missing n4 files", err)
		}
		if _, err := os.Stat(filepath.Join(l.Dir, "n4.crt")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("n4.crt written: %v", err)
		}
		unchanged(t)
	})
	t.Run("a stray file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Init(dir, InitOptions{Nodes: []string{"n1"}}); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("Init: %v, want fs.ErrExist", err)
		}
		if got := dirNames(t, dir); !slices.Equal(got, []string{"ca.crt"}) {
			t.Fatalf("directory holds %v", got)
		}
	})
	t.Run("complete but not of one authority", func(t *testing.T) {
		other := newCluster(t, "n2")
		dir := t.TempDir()
		for _, name := range []string{"ca.crt", "ca.key", "n1.crt", "n1.key", "n2.crt", "n2.key", "admin.crt", "admin.key"} {
			src := filepath.Join(l.Dir, name)
			if strings.HasPrefix(name, "n2.") {
				src = filepath.Join(other.Dir, name)
			}
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Init(dir, InitOptions{Nodes: []string{"n1", "n2"}})
		if err == nil || errors.Is(err, ErrInitialised) || !strings.Contains(err.Error(), "does not check out") {
			t.Fatalf("Init: %v, want a cluster that does not check out", err)
		}
	})
}

var errInjected = errors.New("injected failure")

func TestInitLeavesNothingOnFailure(t *testing.T) {
	opts := InitOptions{Nodes: []string{"n1", "n2", "n3"}}
	t.Run("a move into an existing directory fails", func(t *testing.T) {
		dir := t.TempDir()
		calls := 0
		ops := fileOps{
			publish: func(staged, final string) error {
				calls++
				if calls == 5 {
					return errInjected
				}
				return publishNoReplace(staged, final)
			},
			rename: os.Rename,
		}
		if _, err := initDir(dir, opts, ops); !errors.Is(err, errInjected) {
			t.Fatalf("initDir: %v, want the injected failure", err)
		}
		if calls != 5 {
			t.Fatalf("%d moves, want the fifth to fail", calls)
		}
		if got := dirNames(t, dir); len(got) != 0 {
			t.Fatalf("directory holds %v after a failed init", got)
		}
	})
	t.Run("the rename of a new directory fails", func(t *testing.T) {
		parent := t.TempDir()
		ops := fileOps{publish: publishNoReplace, rename: func(string, string) error { return errInjected }}
		if _, err := initDir(filepath.Join(parent, "certs"), opts, ops); !errors.Is(err, errInjected) {
			t.Fatalf("initDir: %v, want the injected failure", err)
		}
		if got := dirNames(t, parent); len(got) != 0 {
			t.Fatalf("parent holds %v after a failed init", got)
		}
	})
	t.Run("the directory is a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "certs")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Init(path, opts); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("Init: %v", err)
		}
	})
}

func TestInitBadNodeLists(t *testing.T) {
	tests := []struct {
		name string
		opts InitOptions
		want string
	}{
		{"no nodes", InitOptions{}, "no nodes"},
		{"empty id", InitOptions{Nodes: []string{"n1", ""}}, "empty name"},
		{"duplicate", InitOptions{Nodes: []string{"n1", "n2", "n1"}}, `"n1" given twice`},
		{"upper case", InitOptions{Nodes: []string{"Node1"}}, "use only a-z, 0-9 and '-'"},
		{"underscore", InitOptions{Nodes: []string{"node_1"}}, "use only a-z, 0-9 and '-'"},
		{"leading hyphen", InitOptions{Nodes: []string{"-n1"}}, "starts or ends with '-'"},
		{"too long", InitOptions{Nodes: []string{strings.Repeat("a", 64)}}, "longer than 63"},
		{"dotted", InitOptions{Nodes: []string{"n1.example"}}, "use only a-z"},
		{"reserved ca", InitOptions{Nodes: []string{"ca"}}, "reserved"},
		{"reserved admin", InitOptions{Nodes: []string{"n1", "admin"}}, "reserved"},
		{"hosts of no node", InitOptions{Nodes: []string{"n1"}, Hosts: map[string][]string{"n9": {"h"}}}, `hosts for "n9"`},
		{"bad host", InitOptions{Nodes: []string{"n1"}, Hosts: map[string][]string{"n1": {"bad host"}}}, `host "bad host": not a DNS name`},
		{"host is another node", InitOptions{Nodes: []string{"n1", "n2"}, Hosts: map[string][]string{"n1": {"n2"}}}, "another node's id"},
		{"shared SAN is a node", InitOptions{Nodes: []string{"n1", "n2"}, SANs: []string{"n1"}}, "another node's id"},
		{"zero-day authority", InitOptions{Nodes: []string{"n1"}, CADays: -1}, "want at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			_, err := Init(dir, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Init: %v, want an error containing %q", err, tt.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("directory created: %v", err)
			}
		})
	}
	if err := ValidateName("Node1"); !errors.Is(err, ErrBadName) {
		t.Errorf("ValidateName: %v, want ErrBadName", err)
	}
}

func TestAddNode(t *testing.T) {
	l := newCluster(t, "n1", "n2")
	f, err := AddNode(l.Dir, "n3", NodeOptions{Hosts: []string{"n3.example.org", "10.0.0.3"}})
	if err != nil {
		t.Fatal(err)
	}
	n3 := mustLoad(t, f)
	if !slices.Contains(n3.cert.Leaf.DNSNames, "n3.example.org") || !n3.cert.Leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.3")) {
		t.Errorf("n3 names %v %v", n3.cert.Leaf.DNSNames, n3.cert.Leaf.IPAddresses)
	}
	for _, name := range []string{"n3.crt", "n3.key"} {
		st, _ := os.Stat(filepath.Join(l.Dir, name))
		if want := map[bool]os.FileMode{true: 0o600, false: 0o644}[strings.HasSuffix(name, ".key")]; st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	srv, err := mustLoad(t, l.Node("n1")).ServerConfig(KindNode)
	if err != nil {
		t.Fatal(err)
	}
	s, c := handshake(t, srv, n3.ClientConfig("n1"), "127.0.0.1")
	if s.err != nil || c.err != nil || s.peer != (Identity{KindNode, "n3"}) {
		t.Fatalf("n3 to n1: server %s %v, client %v", s.peer, s.err, c.err)
	}
	if got, err := Open(l.Dir); err != nil || !slices.Equal(got.Nodes, []string{"n1", "n2", "n3"}) {
		t.Fatalf("Open: %v, %v", got, err)
	}

	tests := []struct {
		name, dir, id string
		opts          NodeOptions
		want          string
	}{
		{"existing node", l.Dir, "n2", NodeOptions{}, "file already exists"},
		{"reserved", l.Dir, "admin", NodeOptions{}, "reserved"},
		{"bad id", l.Dir, "N4", NodeOptions{}, "use only a-z"},
		{"another node's id as host", l.Dir, "n4", NodeOptions{Hosts: []string{"n1"}}, "another node's id"},
		{"no cluster", t.TempDir(), "n4", NodeOptions{}, "ca.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := AddNode(tt.dir, tt.id, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("AddNode: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	t.Run("authority key offline", func(t *testing.T) {
		if err := os.Rename(l.CAKey(), l.CAKey()+".away"); err != nil {
			t.Fatal(err)
		}
		_, err := AddNode(l.Dir, "n5", NodeOptions{})
		if err == nil || !strings.Contains(err.Error(), "ca.key") {
			t.Fatalf("AddNode: %v, want an error naming ca.key", err)
		}
		if _, err := os.Stat(filepath.Join(l.Dir, "n5.crt")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("n5.crt written: %v", err)
		}
	})
}
