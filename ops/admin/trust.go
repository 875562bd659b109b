package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/tofu"
)

// PinEntry is one TOFU pin as the admin API lists it.
type PinEntry struct {
	Kind    string `json:"kind"`    // "claim" (a client claim) or "upstream" (an upstream server)
	Subject string `json:"subject"` // "host/path/" for a claim, "host:port" for an upstream
	// Cert is the certificate's fingerprint (sha256:<hex>); absent when the
	// pin names the public key only.
	Cert string `json:"cert,omitempty"`
	// SPKI is the public key's fingerprint (spki-sha256:<hex>); absent when
	// the pin names the certificate only.
	SPKI     string     `json:"spki,omitempty"`
	NotAfter *time.Time `json:"not_after,omitempty"` // the pinned certificate's expiry, when known
	Created  time.Time  `json:"created"`
}

// TrustChange is the answer to an approval: the pin now in force, and
// whether the committed entry changed anything (false: that identity was
// already pinned).
type TrustChange struct {
	PinEntry
	Changed bool   `json:"changed"`
	Index   uint64 `json:"index"` // the entry's Raft log index
}

// ApproveRequest is the body of POST /trust/approve: pin Subject to the
// certificate Cert, to the public key SPKI, or to either (a certificate
// matches when one of the fingerprints given does). It replaces the pin in
// force, if any: a rotation.
type ApproveRequest struct {
	Kind    string `json:"kind"`           // "claim" or "upstream"
	Subject string `json:"subject"`        // "host/path/" for a claim, "host:port" for an upstream
	Cert    string `json:"cert,omitempty"` // sha256:<hex>
	SPKI    string `json:"spki,omitempty"` // spki-sha256:<hex>
}

// SetFingerprint puts a fingerprint in its field by the kind its prefix
// names (sha256: → Cert, spki-sha256: → SPKI). A second fingerprint of the
// same kind is an error.
func (r *ApproveRequest) SetFingerprint(s string) error {
	f, err := tofu.ParseFingerprint(s)
	if err != nil {
		return fmt.Errorf("fingerprint: %w", err)
	}
	field, name := &r.Cert, "certificate"
	if f.Kind == tofu.KindSPKI {
		field, name = &r.SPKI, "public-key"
	}
	if *field != "" {
		return fmt.Errorf("fingerprint: two %s fingerprints: give at most one of each kind", name)
	}
	*field = f.String()
	return nil
}

// Command checks r and returns the trust.approve command for it.
func (r ApproveRequest) Command() (raftstore.Command, error) {
	kind, err := parsePinKind(r.Kind)
	if err != nil {
		return raftstore.Command{}, err
	}
	if err := checkSubject(kind, r.Subject); err != nil {
		return raftstore.Command{}, err
	}
	var id tofu.Identity
	var errs []error
	if r.Cert == "" && r.SPKI == "" {
		errs = append(errs, errors.New("fingerprint: missing: give the certificate's (sha256:…), its public key's (spki-sha256:…) or both"))
	}
	if r.Cert != "" {
		f, err := parseFingerprintOf("cert", r.Cert, tofu.KindCert)
		errs = append(errs, err)
		id.Cert = f.Sum
	}
	if r.SPKI != "" {
		f, err := parseFingerprintOf("spki", r.SPKI, tofu.KindSPKI)
		errs = append(errs, err)
		id.SPKI = f.Sum
	}
	if err := errors.Join(errs...); err != nil {
		return raftstore.Command{}, err
	}
	return raftstore.Command{Op: raftstore.OpTrustApprove, PinKind: kind, Subject: r.Subject, Identity: id}, nil
}

// parseFingerprintOf parses s, which field says must be of kind k, and
// refuses the all-zero hash (it would name no certificate).
func parseFingerprintOf(field, s string, k tofu.FingerprintKind) (tofu.Fingerprint, error) {
	f, err := tofu.ParseFingerprint(s)
	switch {
	case err != nil:
		return f, fmt.Errorf("%s: %w", field, err)
	case f.Kind != k && k == tofu.KindCert:
		return f, fmt.Errorf("cert: %s is a public key's fingerprint: give it as spki", quoteShort(s))
	case f.Kind != k:
		return f, fmt.Errorf("spki: %s is a certificate's fingerprint: give it as cert", quoteShort(s))
	case f.Sum == [len(f.Sum)]byte{}:
		return f, fmt.Errorf("%s: an all-zero hash names no certificate", field)
	}
	return f, nil
}

// parsePinKind parses "claim" or "upstream".
func parsePinKind(s string) (tofu.PinKind, error) {
	k, err := raftstore.ParseTrustKind(s)
	if err != nil {
		return 0, fmt.Errorf("kind: %s is neither claim nor upstream", quoteShort(s))
	}
	return k, nil
}

// checkSubject checks that s is a subject the gateway pins under kind: a
// client claim's "host/path/" (a route's host and prefix) or an upstream's
// "host:port". A subject of another shape would never be used.
func checkSubject(kind tofu.PinKind, s string) error {
	if err := (tofu.PinKey{Kind: kind, Scope: s}).Validate(); err != nil {
		return fmt.Errorf("subject: %w", err)
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("subject: %s contains spaces or control characters", quoteShort(s))
	}
	switch kind {
	case tofu.PinClient:
		host, _, ok := strings.Cut(s, "/")
		if !ok || host == "" || !strings.HasSuffix(s, "/") {
			return fmt.Errorf("subject: %s is not host/path/ (a claimed route: host, then its prefix, such as example.org/app/)", quoteShort(s))
		}
	case tofu.PinUpstream:
		if _, ok := splitHostPort(s); !ok {
			return fmt.Errorf("subject: %s is not host:port (an upstream, such as backend:1965)", quoteShort(s))
		}
	}
	return nil
}

// maxTrustBody bounds a POST /trust/approve body: a subject of at most
// tofu.MaxScopeLen bytes and two fingerprints fit.
const maxTrustBody = 4 << 10

// HandleTrust serves the TOFU pins: GET /trust lists them (?kind=claim|
// upstream to filter, ?consistent=1 for a linearizable read through the
// leader), POST /trust/approve pins a subject to a certificate an operator
// names (a rotation), DELETE /trust?kind=&subject= forgets a pin (404 when
// there was none), so the subject's next use is a first use again. Writes
// commit cluster-wide before they answer, from any node.
func (a *Admin) HandleTrust(st State) {
	s := stateAPI{st}
	a.mux.Handle("/trust", methods{get: s.listPins, delete: s.revokePin})
	a.mux.Handle("/trust/approve", methods{post: s.approvePin})
}

func (s stateAPI) listPins(w http.ResponseWriter, r *http.Request) {
	only, ok := queryFilter(w, r, "kind", parsePinKind)
	if !ok || !s.consistent(w, r) {
		return
	}
	out := []PinEntry{}
	for _, p := range s.st.Pins() {
		if only == 0 || p.Key.Kind == only {
			out = append(out, pinEntry(p))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func pinEntry(p tofu.Pin) PinEntry {
	e := PinEntry{Kind: raftstore.TrustKindName(p.Key.Kind), Subject: p.Key.Scope, Created: p.Created.UTC()}
	var zero [len(p.Identity.Cert)]byte
	if p.Identity.Cert != zero {
		e.Cert = p.Identity.CertFingerprint().String()
	}
	if p.Identity.SPKI != zero {
		e.SPKI = p.Identity.SPKIFingerprint().String()
	}
	if !p.NotAfter.IsZero() {
		t := p.NotAfter.UTC()
		e.NotAfter = &t
	}
	return e
}

func (s stateAPI) approvePin(w http.ResponseWriter, r *http.Request) {
	var req ApproveRequest
	if !decodeBody(w, r, maxTrustBody, &req) {
		return
	}
	cmd, err := req.Command()
	if err != nil {
		badRequest(w, err)
		return
	}
	res, err := s.st.Apply(r.Context(), cmd)
	if err != nil {
		writeApplyError(w, err)
		return
	}
	key := tofu.PinKey{Kind: cmd.PinKind, Scope: cmd.Subject}
	pin := res.Pin
	if pin.Key != key {
		for _, p := range s.st.Pins() {
			if p.Key == key {
				pin = p
			}
		}
	}
	writeJSON(w, http.StatusOK, TrustChange{PinEntry: pinEntry(pin), Changed: res.Changed, Index: res.Index})
}

func (s stateAPI) revokePin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind, err := parsePinKind(q.Get("kind"))
	if err != nil {
		badRequest(w, err)
		return
	}
	subject := q.Get("subject")
	if err := (tofu.PinKey{Kind: kind, Scope: subject}).Validate(); err != nil {
		badRequest(w, fmt.Errorf("subject: %w", err))
		return
	}
	s.remove(w, r, raftstore.Command{Op: raftstore.OpTrustRevoke, PinKind: kind, Subject: subject},
		fmt.Sprintf("no %s pin for %s", raftstore.TrustKindName(kind), quoteShort(subject)))
}

// quoteShort quotes s for an error message, cut to a bounded length so that
// a hostile field cannot blow up the answer.
func quoteShort(s string) string {
	const maxLen = 100
	if len(s) > maxLen {
		return strconv.Quote(s[:maxLen]) + "…"
	}
	return strconv.Quote(s)
}
