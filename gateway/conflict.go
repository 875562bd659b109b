package gateway

import (
	"errors"
	"net/netip"

	"github.com/chimalli/chimalli/tofu"
)

// TrustConflict is a certificate that did not match the TOFU pin in
// force: a client presenting another certificate on a claimed prefix
// (refused with 61), or an upstream presenting another certificate than
// the one pinned for its host and port (refused with 43).
type TrustConflict struct {
	// Key is the pin: a client claim (host and path prefix) or an
	// upstream (host:port).
	Key tofu.PinKey
	// Pinned is the identity the pin holds; Presented is what was shown.
	Pinned, Presented tofu.Identity
	// Client is the address of the client whose request met the conflict.
	// It is raw: a sink hashes it before anything leaves the node.
	Client netip.Addr
}

// ConflictSink is told of every trust conflict the gateway refuses. The
// gateway calls it on the request's goroutine: it must be safe for
// concurrent use and must not block (drop rather than wait).
type ConflictSink interface {
	TrustConflict(c TrustConflict)
}

// reportConflict tells l.Conflicts, when set, of a conflict on key.
func (l *Layers) reportConflict(key tofu.PinKey, pinned, presented tofu.Identity, client netip.Addr) {
	if l == nil || l.Conflicts == nil {
		return
	}
	l.Conflicts.TrustConflict(TrustConflict{Key: key, Pinned: pinned, Presented: presented, Client: client})
}

// reportUpstreamConflict reports err to r's layers when it is an upstream
// pin mismatch.
func reportUpstreamConflict(r *Request, err error) {
	var pm *PinMismatchError
	if r.layers == nil || !errors.As(err, &pm) {
		return
	}
	r.layers.reportConflict(pm.Key, pm.Pinned.Identity, pm.Presented, r.RemoteAddr.Addr())
}
