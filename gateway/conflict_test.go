package gateway

import (
	"context"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
	"github.com/chimalli/chimalli/tofu/tofutest"
)

// conflictLog records the conflicts it is told of.
type conflictLog struct {
	mu  sync.Mutex
	got []TrustConflict
}

func (l *conflictLog) TrustConflict(c TrustConflict) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, c)
}

func (l *conflictLog) all() []TrustConflict {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]TrustConflict(nil), l.got...)
}

// TestClaimConflictReported checks that a client refused with 61 on a
// claimed prefix is reported with both identities, and that the owner's
// requests are not.
func TestClaimConflictReported(t *testing.T) {
	var log conflictLog
	ts := startServer(t, func(c *Config) { c.Layers.Conflicts = &log })
	first, _, _ := genPair(t, "first", time.Now(), 30)
	second, _, _ := genPair(t, "second", time.Now(), 30)
	c1, c2 := client{sni: "localhost", cert: &first}, client{sni: "localhost", cert: &second}
	if r := mustDo(t, c1, ts.addr, "gemini://localhost/app/\r\n"); r.status != 20 {
		t.Fatalf("first use: %d", r.status)
	}
	if r := mustDo(t, c2, ts.addr, "gemini://localhost/app/x\r\n"); r.status != 61 {
		t.Fatalf("other cert: %d, want 61", r.status)
	}
	if r := mustDo(t, c1, ts.addr, "gemini://localhost/app/x\r\n"); r.status != 20 {
		t.Fatalf("owner again: %d", r.status)
	}
	got := log.all()
	if len(got) != 1 {
		t.Fatalf("%d conflicts reported, want 1: %+v", len(got), got)
	}
	want := TrustConflict{
		Key:       tofu.PinKey{Kind: tofu.PinClient, Scope: "localhost/app/"},
		Pinned:    tofu.IdentityOf(mustLeaf(t, first)),
		Presented: tofu.IdentityOf(mustLeaf(t, second)),
		Client:    netip.MustParseAddr("127.0.0.1"),
	}
	if got[0] != want {
		t.Errorf("conflict %+v, want %+v", got[0], want)
	}
}

// TestUpstreamConflictReported checks that an upstream refused with 43
// for a changed certificate is reported with both identities.
func TestUpstreamConflictReported(t *testing.T) {
	cert1, cert2 := tofutest.LoopbackCert(t, "x"), tofutest.LoopbackCert(t, "x")
	u := startUpstream(t, cert1, answer("20 text/gemini\r\nok"))
	h := newTestProxy(t, ProxyConfig{Upstream: "gemini://127.0.0.1:" + strconv.Itoa(u.port), Pins: tofu.NewMemStore()})
	var log conflictLog
	layers := &Layers{Conflicts: &log}
	req := func() *Request {
		r := geminiRequest(t, "/")
		r.layers = layers
		r.RemoteAddr = netip.MustParseAddrPort("192.0.2.7:5000")
		return r
	}
	var w recorder
	if err := h.ServeGemini(context.Background(), &w, req()); err != nil {
		t.Fatal(err)
	}
	u.next(t)
	u.cert.Store(&cert2)
	u.tls.SetSessionTicketKeys([][32]byte{{1, 2, 3}})
	w.reset()
	if err := h.ServeGemini(context.Background(), &w, req()); reasonOf(err) != ReasonUpstreamUntrusted {
		t.Fatalf("err = %v, want upstream_untrusted", err)
	}
	got := log.all()
	if len(got) != 1 {
		t.Fatalf("%d conflicts reported, want 1", len(got))
	}
	c := got[0]
	if c.Key != (tofu.PinKey{Kind: tofu.PinUpstream, Scope: "127.0.0.1:" + strconv.Itoa(u.port)}) ||
		c.Pinned != tofu.IdentityOf(cert1.Leaf) || c.Presented != tofu.IdentityOf(cert2.Leaf) ||
		c.Client != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("conflict %+v", c)
	}
}
