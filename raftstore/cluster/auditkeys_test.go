package cluster

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/events"
)

var _ events.KeySource = (*Node)(nil)

// hashesAlike reports whether every node's hasher hashes addr alike under
// the cluster's key (not a node's own: its id starts with "c"), and
// returns that hash.
func hashesAlike(c *testCluster, hashers map[string]*events.IPHasher, addr netip.Addr) (string, bool) {
	var h string
	for id := range c.nodes {
		got := hashers[id].HashAddr(addr)
		if !strings.HasPrefix(got, "c") || (h != "" && got != h) {
			return "", false
		}
		h = got
	}
	return h, true
}

// The leader makes the first audit key as soon as it leads and a new one
// every AuditKeyRotation: every node hashes a client alike under the
// current key, named by its id, and forgets a replaced key once its
// retention (here none) has passed.
func TestClusterAuditKeyRotation(t *testing.T) {
	rotation := 2 * time.Second
	c := newTestClusterWith(t, func(cfg *Config) {
		cfg.AuditKeyRotation, cfg.AuditKeyRetention = rotation, 0
	}, nil, "n1", "n2", "n3")
	hashers := map[string]*events.IPHasher{}
	for id, n := range c.nodes {
		h, err := events.NewIPHasherFrom(n)
		if err != nil {
			t.Fatal(err)
		}
		hashers[id] = h
	}
	addr := netip.MustParseAddr("192.0.2.7")
	var first string
	waitFor(t, 20*time.Second, "every node to hash under the first cluster key", func() bool {
		var ok bool
		first, ok = hashesAlike(c, hashers, addr)
		return ok
	})
	id, _, ok := c.leader().CurrentAuditKey()
	if !ok || !strings.HasPrefix(first, id+":") {
		t.Fatalf("hash %q, current key %q", first, id)
	}
	if h := hashers["n1"].HashAddr(netip.MustParseAddr("::ffff:192.0.2.7")); h != first {
		t.Fatalf("mapped address hashes to %q, want %q", h, first)
	}

	// The leader adds the next key once the current one is older than
	// the rotation.
	var second string
	waitFor(t, 20*time.Second, "every node to hash under the second key", func() bool {
		var ok bool
		second, ok = hashesAlike(c, hashers, addr)
		return ok && second != first
	})
	if second[strings.Index(second, ":"):] == first[strings.Index(first, ":"):] {
		t.Fatalf("the second key hashes as the first: %q, %q", first, second)
	}
	waitFor(t, 10*time.Second, "every node to hold one key, the same (retention 0)", func() bool {
		var id string
		for _, n := range c.nodes {
			keys := n.AuditKeys()
			if len(keys) != 1 || (id != "" && keys[0].ID != id) {
				return false
			}
			id = keys[0].ID
		}
		return true
	})
}
