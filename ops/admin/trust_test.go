package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chimalli/chimalli/tofu"
)

const (
	certA = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	spkiA = "spki-sha256:2222222222222222222222222222222222222222222222222222222222222222"
	spkiB = "spki-sha256:3333333333333333333333333333333333333333333333333333333333333333"
)

func TestTrustAPI(t *testing.T) {
	sock, n := openStateAdmin(t)
	ctx := testCtx(t)
	if list, err := ListPins(ctx, sock, "", false); err != nil || len(list) != 0 {
		t.Fatalf("ListPins on an empty node = %v, %v", list, err)
	}
	// A first use through the gateway's store, with both fingerprints.
	id := tofu.Identity{Cert: [32]byte{0xaa}, SPKI: [32]byte{0xbb}}
	if _, err := n.PinStore().Claim(ctx, tofu.Pin{Key: tofu.PinKey{Kind: tofu.PinClient, Scope: "example.org/app/"}, Identity: id}); err != nil {
		t.Fatal(err)
	}
	// An operator approves a rotation knowing the new key's fingerprint only.
	c, err := ApproveTrust(ctx, sock, ApproveRequest{Kind: "claim", Subject: "example.org/app/", SPKI: spkiA})
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != "claim" || c.Subject != "example.org/app/" || c.Cert != "" || c.SPKI != spkiA || !c.Changed || c.Index == 0 || c.Created.IsZero() {
		t.Fatalf("ApproveTrust = %+v", c)
	}
	newKey, err := tofu.ParseFingerprint(spkiA)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := n.PinStore().Lookup(tofu.PinKey{Kind: tofu.PinClient, Scope: "example.org/app/"})
	if !ok || tofu.Compare(p, id) != tofu.Mismatch || tofu.Compare(p, tofu.Identity{Cert: [32]byte{1}, SPKI: newKey.Sum}) != tofu.Match {
		t.Fatalf("the node's pin after approval: %+v", p)
	}
	if again, err := ApproveTrust(ctx, sock, ApproveRequest{Kind: "claim", Subject: "example.org/app/", SPKI: spkiA}); err != nil || again.Changed {
		t.Fatalf("approving it again = %+v, %v, want unchanged", again, err)
	}
	if _, err := ApproveTrust(ctx, sock, ApproveRequest{Kind: "upstream", Subject: "[2001:db8::1]:1965", Cert: certA, SPKI: spkiB}); err != nil {
		t.Fatal(err)
	}
	list, err := ListPins(ctx, sock, "", true)
	if err != nil || len(list) != 2 || list[0].Subject != "example.org/app/" || list[1].Cert != certA || list[1].SPKI != spkiB || list[1].Kind != "upstream" {
		t.Fatalf("ListPins consistent = %+v, %v", list, err)
	}
	if list, err := ListPins(ctx, sock, "upstream", false); err != nil || len(list) != 1 || list[0].Kind != "upstream" {
		t.Fatalf("ListPins upstream = %+v, %v", list, err)
	}

	if err := RevokeTrust(ctx, sock, "claim", "example.org/app/"); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.PinStore().Lookup(tofu.PinKey{Kind: tofu.PinClient, Scope: "example.org/app/"}); ok {
		t.Fatal("a revoked pin is still in the node's view")
	}
	code, sb := send(t, sock, http.MethodDelete, "/trust?kind=claim&subject=example.org/app/", "")
	if code != http.StatusNotFound || sb.Error != `no claim pin for "example.org/app/"` {
		t.Fatalf("revoking it again = %d %+v, want 404", code, sb)
	}
}

// Bad input is refused with 400 (413 for a huge body) and a reason, and
// nothing is committed.
func TestTrustAPIRejectsBadInput(t *testing.T) {
	sock, n := openStateAdmin(t)
	before := n.Status()
	long := strings.Repeat("x", 5000)
	zero := "sha256:" + strings.Repeat("0", 64)
	tests := []refusal{
		{"unknown kind", "POST", "/trust/approve", `{"kind":"client","subject":"a/","cert":"` + certA + `"}`, 400, `kind: "client" is neither claim nor upstream`},
		{"long kind", "POST", "/trust/approve", `{"kind":"` + long[:200] + `","subject":"a/","cert":"` + certA + `"}`, 400, "kind: "},
		{"no subject", "POST", "/trust/approve", `{"kind":"claim","cert":"` + certA + `"}`, 400, "subject: invalid pin: empty scope"},
		{"claim without a path", "POST", "/trust/approve", `{"kind":"claim","subject":"example.org","cert":"` + certA + `"}`, 400, "is not host/path/"},
		{"claim without a host", "POST", "/trust/approve", `{"kind":"claim","subject":"/app/","cert":"` + certA + `"}`, 400, "is not host/path/"},
		{"upstream without a port", "POST", "/trust/approve", `{"kind":"upstream","subject":"backend","cert":"` + certA + `"}`, 400, "is not host:port"},
		{"upstream port 0", "POST", "/trust/approve", `{"kind":"upstream","subject":"backend:0","cert":"` + certA + `"}`, 400, "is not host:port"},
		{"subject with a space", "POST", "/trust/approve", `{"kind":"claim","subject":"example.org/a b/","cert":"` + certA + `"}`, 400, "contains spaces or control characters"},
		{"long subject", "POST", "/trust/approve", `{"kind":"claim","subject":"a/` + long[:1100] + `/","cert":"` + certA + `"}`, 400, "subject: invalid pin: scope longer than 1024 bytes"},
		{"no fingerprint", "POST", "/trust/approve", `{"kind":"claim","subject":"example.org/app/"}`, 400, "fingerprint: missing"},
		{"bad fingerprint", "POST", "/trust/approve", `{"kind":"claim","subject":"example.org/app/","cert":"sha256:abc"}`, 400, "cert: bad fingerprint"},
		{"md5 fingerprint", "POST", "/trust/approve", `{"kind":"claim","subject":"example.org/app/","cert":"md5:00"}`, 400, "want sha256:<hex> or spki-sha256:<hex>"},
		{"spki as cert", "POST", "/trust/approve", `{"kind":"claim","subject":"example.org/app/","cert":"` + spkiA + `"}`, 400, "is a public key's fingerprint: give it as spki"},
		{"cert as spki", "POST", "/trust/approve", `{"kind":"claim","subject":"example.org/app/","spki":"` + certA + `"}`, 400, "is a certificate's fingerprint: give it as cert"},
		{"all-zero hash", "POST", "/trust/approve", `{"kind":"claim","subject":"example.org/app/","cert":"` + zero + `"}`, 400, "cert: an all-zero hash names no certificate"},
		{"unknown field", "POST", "/trust/approve", `{"kind":"claim","subject":"example.org/app/","cert":"` + certA + `","fingerprint":"x"}`, 400, `unknown field "fingerprint"`},
		{"huge body", "POST", "/trust/approve", `{"kind":"claim","subject":"` + long + `"}`, 413, "body: larger than 4096 bytes"},
		{"approve with GET", "GET", "/trust/approve", "", 405, "GET is not allowed"},
		{"revoke: unknown kind", "DELETE", "/trust?kind=server&subject=backend:1965", "", 400, `kind: "server" is neither claim nor upstream`},
		{"revoke: no subject", "DELETE", "/trust?kind=upstream", "", 400, "subject: invalid pin: empty scope"},
		{"list: unknown kind", "GET", "/trust?kind=server", "", 400, "kind:"},
		{"POST /trust", "POST", "/trust", `{}`, 405, "POST is not allowed"},
	}
	checkRefusals(t, sock, tests, long[:150])
	unchanged(t, n, before)
	if pins := n.Pins(); len(pins) != 0 {
		t.Fatalf("refused requests left pins: %v", pins)
	}
}

func TestApproveRequestSetFingerprint(t *testing.T) {
	var r ApproveRequest
	for _, f := range []string{" SPKI-SHA256:" + strings.ToUpper(spkiA[len("spki-sha256:"):]), certA} {
		if err := r.SetFingerprint(f); err != nil {
			t.Fatal(err)
		}
	}
	if r.Cert != certA || r.SPKI != spkiA {
		t.Fatalf("SetFingerprint: %+v", r)
	}
	if err := r.SetFingerprint(spkiB); err == nil || !strings.Contains(err.Error(), "two public-key fingerprints") {
		t.Fatalf("a second spki fingerprint: %v", err)
	}
	if err := r.SetFingerprint("sha1:00"); err == nil || !strings.Contains(err.Error(), "fingerprint: bad fingerprint") {
		t.Fatalf("a bad fingerprint: %v", err)
	}
}
