package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestIPHasher(t *testing.T) {
	key := bytes.Repeat([]byte{7}, MinKeyBytes)
	h, err := NewIPHasher("k1", key)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewIPHasher("k2", bytes.Repeat([]byte{8}, MinKeyBytes))
	v4 := netip.MustParseAddr("192.0.2.7")
	mapped := netip.MustParseAddr("::ffff:192.0.2.7")
	v6 := netip.MustParseAddr("2001:db8::7")

	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"deterministic", h.HashAddr(v4), h.HashAddr(v4), true},
		{"mapped equals v4", h.HashAddr(v4), h.HashAddr(mapped), true},
		{"different addresses differ", h.HashAddr(v4), h.HashAddr(v6), false},
		{"different keys differ", h.HashAddr(v4)[3:], other.HashAddr(v4)[3:], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.a == tc.b) != tc.same {
				t.Fatalf("%q vs %q: same=%v, want %v", tc.a, tc.b, tc.a == tc.b, tc.same)
			}
		})
	}
	got := h.HashAddr(v4)
	if !strings.HasPrefix(got, "k1:") || len(got) != len("k1:")+2*HashBytes {
		t.Fatalf("format: %q", got)
	}
	if strings.Contains(got, "192") && strings.Contains(got, "0.2.7") {
		t.Fatalf("hash leaks the address: %q", got)
	}
}

func TestIPHasherShortKey(t *testing.T) {
	if _, err := NewIPHasher("k", make([]byte, MinKeyBytes-1)); !errors.Is(err, ErrShortKey) {
		t.Fatalf("err = %v, want ErrShortKey", err)
	}
}

func TestRandomIPHashersDiffer(t *testing.T) {
	a, err := NewRandomIPHasher()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewRandomIPHasher()
	addr := netip.MustParseAddr("198.51.100.1")
	if a.HashAddr(addr)[len(a.KeyID()):] == b.HashAddr(addr)[len(b.KeyID()):] {
		t.Fatal("two random keys hashed alike")
	}
}

func BenchmarkHashAddr(b *testing.B) {
	h, _ := NewRandomIPHasher()
	addr := netip.MustParseAddr("198.51.100.1")
	b.ReportAllocs()
	for b.Loop() {
		h.HashAddr(addr)
	}
}

func TestRandomKeyIDRevealsNoKeyBits(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, MinKeyBytes)
	h, err := newRandomIPHasher(bytes.NewReader(key))
	if err != nil {
		t.Fatal(err)
	}
	label := sha256.Sum256(append([]byte("chimalli ip-hash key id v1\x00"), key...))
	want := "p" + hex.EncodeToString(label[:3])
	if got := h.KeyID(); got != want {
		t.Fatalf("KeyID = %q, want %q (from a labelled hash of the key)", got, want)
	}
	if strings.Contains(h.KeyID(), "abab") {
		t.Fatalf("KeyID %q shows bytes of the key", h.KeyID())
	}
}

func TestRandomIPHasherShortRead(t *testing.T) {
	if _, err := newRandomIPHasher(bytes.NewReader(make([]byte, MinKeyBytes-1))); err == nil {
		t.Fatal("a short random read gave a hasher")
	}
}
