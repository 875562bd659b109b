package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
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

// keySource is a KeySource whose key a test changes.
type keySource struct {
	cur atomic.Pointer[sourceKey]
}

type sourceKey struct {
	id  string
	key []byte
}

func (s *keySource) set(id string, key []byte) { s.cur.Store(&sourceKey{id, key}) }

func (s *keySource) CurrentAuditKey() (string, []byte, bool) {
	k := s.cur.Load()
	if k == nil {
		return "", nil, false
	}
	return k.id, k.key, true
}

// A hasher over a key source hashes with the source's current key: two
// hashers (two nodes) over sources holding the same key hash a client
// alike, named by the key's id, and follow the source when it rotates.
// Before the source has a key each hashes with a random key of its own
// (a "p" id), never with none.
func TestIPHasherFollowsKeySource(t *testing.T) {
	var src1, src2 keySource
	h1, err := NewIPHasherFrom(&src1)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := NewIPHasherFrom(&src2)
	addr := netip.MustParseAddr("192.0.2.7")

	before1, before2 := h1.HashAddr(addr), h2.HashAddr(addr)
	if !strings.HasPrefix(before1, "p") || !isClientHash(before1) || before1 == before2 || h1.KeyID() == h2.KeyID() {
		t.Fatalf("before the first key: %q and %q, want two own random keys", before1, before2)
	}

	keyA := bytes.Repeat([]byte{0xa}, 32)
	src1.set("c0000000a", keyA)
	src2.set("c0000000a", bytes.Clone(keyA))
	fixed, _ := NewIPHasher("c0000000a", keyA)
	want := fixed.HashAddr(addr)
	for _, h := range []*IPHasher{h1, h2} {
		if got := h.HashAddr(addr); got != want || h.KeyID() != "c0000000a" {
			t.Fatalf("with the source's key: %q (key id %q), want %q", got, h.KeyID(), want)
		}
	}

	keyB := bytes.Repeat([]byte{0xb}, 32)
	src1.set("c0000000b", keyB)
	src2.set("c0000000b", keyB)
	got1, got2 := h1.HashAddr(addr), h2.HashAddr(addr)
	if got1 != got2 || !strings.HasPrefix(got1, "c0000000b:") || got1[len("c0000000b:"):] == want[len("c0000000a:"):] {
		t.Fatalf("after the rotation: %q and %q (before %q)", got1, got2, want)
	}

	// A source that offers what a record could not carry is not followed.
	for _, bad := range []sourceKey{{"c1", make([]byte, MinKeyBytes-1)}, {"c:1", keyA}, {"", keyA}} {
		src1.set(bad.id, bad.key)
		if got := h1.HashAddr(addr); got != before1 {
			t.Errorf("source key %q (%d bytes): %q, want the own key's %q", bad.id, len(bad.key), got, before1)
		}
	}
}

// Many goroutines hashing while the source rotates always get a hash
// under one of the source's keys, named by that key's id (run with -race).
func TestIPHasherRotationConcurrent(t *testing.T) {
	var src keySource
	src.set("k0", bytes.Repeat([]byte{0}, 32))
	h, _ := NewIPHasherFrom(&src)
	addr := netip.MustParseAddr("2001:db8::7")
	want := map[string]string{}
	for i := range 4 {
		id := fmt.Sprintf("k%d", i)
		f, _ := NewIPHasher(id, bytes.Repeat([]byte{byte(i)}, 32))
		want[id] = f.HashAddr(addr)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				got := h.HashAddr(addr)
				id, _, _ := strings.Cut(got, ":")
				if want[id] != got {
					errs <- got
					return
				}
			}
		}()
	}
	for i := range 200 {
		src.set(fmt.Sprintf("k%d", i%4), bytes.Repeat([]byte{byte(i % 4)}, 32))
	}
	wg.Wait()
	close(errs)
	for got := range errs {
		t.Fatalf("hash %q matches no key by its id", got)
	}
}

// BenchmarkHashAddrFromSource is BenchmarkHashAddr with the key taken from
// a source on every hash, as a cluster node does: the same single
// allocation.
func BenchmarkHashAddrFromSource(b *testing.B) {
	var src keySource
	src.set("c0123abcd", bytes.Repeat([]byte{7}, 32))
	h, _ := NewIPHasherFrom(&src)
	addr := netip.MustParseAddr("198.51.100.1")
	b.ReportAllocs()
	for b.Loop() {
		h.HashAddr(addr)
	}
}

func TestHashAddrAllocatesOnlyTheResult(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	var src keySource
	src.set("c0123abcd", bytes.Repeat([]byte{7}, 32))
	h, _ := NewIPHasherFrom(&src)
	addr := netip.MustParseAddr("198.51.100.1")
	h.HashAddr(addr)
	if n := testing.AllocsPerRun(100, func() { h.HashAddr(addr) }); n > 1 {
		t.Fatalf("%v allocations per hash, want 1", n)
	}
}
