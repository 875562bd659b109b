package tofutest

import (
	"crypto/tls"
	"os"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

func TestLoopbackCert(t *testing.T) {
	pair := LoopbackCert(t, "backend.test")
	if pair.Leaf == nil {
		t.Fatal("Leaf not set")
	}
	for _, host := range []string{"backend.test", "localhost", "127.0.0.1", "::1"} {
		if err := pair.Leaf.VerifyHostname(host); err != nil {
			t.Errorf("not valid for %s: %v", host, err)
		}
	}
	if d := pair.Leaf.NotAfter.Sub(time.Now()); d < (DefaultDays-1)*24*time.Hour {
		t.Errorf("valid for %v, want about %d days", d, DefaultDays)
	}
}

func TestKeyPairKeepsRequest(t *testing.T) {
	now := time.Now().Add(-48 * time.Hour)
	pair, _, _ := KeyPair(t, tofu.CertRequest{CommonName: "old", Days: 1, Now: now})
	if !pair.Leaf.NotAfter.Before(time.Now()) {
		t.Errorf("NotAfter %v: want an expired certificate", pair.Leaf.NotAfter)
	}
	if pair.Leaf.Subject.CommonName != "old" {
		t.Errorf("common name %q", pair.Leaf.Subject.CommonName)
	}
}

func TestWriteKeyPair(t *testing.T) {
	certPath, keyPath := WriteKeyPair(t, "client", tofu.CertRequest{CommonName: "client"})
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
}
