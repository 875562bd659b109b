package gateway

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/chimalli/chimalli/ratelimit"
	"github.com/chimalli/chimalli/tofu"
)

// Limiter is the per-client token bucket consulted once per connection at
// accept. *ratelimit.Limiter implements it. Allow must be safe for
// concurrent use and must not block.
type Limiter interface {
	Allow(addr netip.Addr) ratelimit.Result
}

// BanView reports whether a client is banned. It reads a local, immutable
// view (the Raft FSM publishes one); it must be safe for concurrent use and
// must not block or allocate.
type BanView interface {
	Banned(addr netip.Addr, now time.Time) bool
}

// AbuseReporter receives every connection the hard rate limit refuses,
// with the limiter's verdict, so that persistent abuse can become a ban.
// It is called on the accept loop: it must be safe for concurrent use and
// must not block.
type AbuseReporter interface {
	ReportAbuse(addr netip.Addr, res ratelimit.Result)
}

// AccessPolicy is the allow/deny layer at accept. *AccessList is the
// static one; a node swaps in a new AccessList when its replicated rules
// change. Check must be safe for concurrent use, must not block and
// should not allocate: it runs on the accept loop.
type AccessPolicy interface {
	Check(addr netip.Addr) Reason
}

// ClientHasher turns a client address into a keyed hash that is safe to
// log and publish. Raw client addresses never leave the node.
type ClientHasher interface {
	HashAddr(addr netip.Addr) string
}

// Layers is the ordered chain of local security layers. Admit runs at
// accept, before any TLS handshake; Decide runs once the request is parsed.
// Every collaborator is optional: a nil one admits everything. A Layers is
// safe for concurrent use once built.
type Layers struct {
	Access  AccessPolicy
	Bans    BanView
	Limiter Limiter
	Abuse   AbuseReporter // told of hard rate-limit refusals; nil: nobody
	Pins    tofu.Store    // client TOFU claims; required when a route uses TOFUClaim
	// Conflicts is told of every TOFU mismatch refused: a client claim's
	// (61) and an upstream pin's (43, by the proxy handler); nil: nobody.
	Conflicts ConflictSink
	Now       func() time.Time
}

// Admission is the outcome of the accept-time layers. A soft rate-limit
// verdict admits the connection (a handshake is needed to answer 44) and is
// carried to Decide.
type Admission struct {
	Reason Reason           // ReasonNone, ReasonAccessDenied, ReasonBanned or ReasonRateLimitedHard
	Limit  ratelimit.Result // the limiter's verdict for this connection
}

// Decision is the outcome of the request-time layers.
type Decision struct {
	Reason     Reason
	RetryAfter int    // whole seconds, for ReasonRateLimited
	Msg        string // client-safe detail; "" → the reason's default
	Route      *Route // the matched route, when the request got that far
	// Err is the cause of a ReasonUnavailable refusal (the pin store
	// failed or did not answer in time), for the server's log. It is never
	// shown to the client.
	Err error
}

// Admit runs layer (a): static deny/allow lists, bans, then the hard rate
// limit. It is cheap enough to run on the accept loop.
func (l *Layers) Admit(addr netip.Addr, now time.Time) Admission {
	addr = addr.Unmap()
	if l.Access != nil {
		if r := l.Access.Check(addr); r != ReasonNone {
			return Admission{Reason: r}
		}
	}
	if l.Bans != nil && l.Bans.Banned(addr, now) {
		return Admission{Reason: ReasonBanned}
	}
	if l.Limiter == nil {
		return Admission{}
	}
	res := l.Limiter.Allow(addr)
	if res.Verdict == ratelimit.Hard {
		if l.Abuse != nil {
			l.Abuse.ReportAbuse(addr, res)
		}
		return Admission{Reason: ReasonRateLimitedHard, Limit: res}
	}
	return Admission{Limit: res}
}

// Decide runs layers (b) and (c) on a parsed request that arrived on a
// connection admitted with adm: the host and port check, the soft rate
// limit, route selection, Titan admission, and the route's certificate
// rules (required, allowed fingerprints, TOFU claim). ctx, and r's decide
// timeout when the server set one, bound the TOFU claim: a claim that has
// not committed when either ends is ReasonUnavailable, with the store's
// error in Decision.Err.
func (l *Layers) Decide(ctx context.Context, v *vhost, r *Request, adm Admission) Decision {
	if !v.accepts(r) {
		return Decision{Reason: ReasonProxyRefused}
	}
	if adm.Limit.Verdict == ratelimit.Soft {
		return Decision{Reason: ReasonRateLimited, RetryAfter: adm.Limit.RetryAfterSeconds()}
	}
	rt := v.route(r.Path)
	if rt == nil {
		return Decision{Reason: ReasonNotFound}
	}
	d := Decision{Route: &rt.Route}
	if r.Scheme == SchemeTitan {
		if !rt.Uploads {
			d.Reason = ReasonUploadsRefused
			return d
		}
		if r.Titan.Size > rt.MaxUploadBytes {
			d.Reason, d.Msg = ReasonTooLarge, rt.tooLargeMsg
			return d
		}
	}
	d.Reason, d.Err = l.certRules(ctx, rt, r)
	return d
}

// certRules applies the certificate rules of rt (required, validity,
// allowed fingerprints, TOFU claim) to r. The error is the pin store's,
// with ReasonUnavailable.
func (l *Layers) certRules(ctx context.Context, rt *compiledRoute, r *Request) (Reason, error) {
	if !rt.needsCert() {
		return ReasonNone, nil
	}
	if r.ClientCert == nil {
		return ReasonCertRequired, nil
	}
	now := l.now()
	if now.Before(r.ClientCert.NotBefore) || now.After(r.ClientCert.NotAfter) {
		return ReasonCertInvalid, nil
	}
	if len(rt.AllowedFingerprints) > 0 && !matchesAny(r.ClientID, rt.AllowedFingerprints) {
		return ReasonCertNotAuthorized, nil
	}
	if rt.TOFUClaim {
		return l.claim(ctx, rt, r, now)
	}
	return ReasonNone, nil
}

// decideAlias runs on a request that Decide admitted on host v when its
// handler finds that r.Path names the same file as path, another canonical
// path of v (a symbolic link in a document root): the rules of path's
// route must hold too. It returns ReasonNone when path falls under r's own
// route or under one whose certificate rules admit r, that route's refusal
// otherwise (the same 60, 61 or 62 a request for path would get), and
// ReasonNotFound when no route of v covers path. The error is the pin
// store's, with ReasonUnavailable.
func (l *Layers) decideAlias(ctx context.Context, v *vhost, r *Request, path string) (Reason, error) {
	rt := v.route(path)
	switch {
	case rt == nil:
		return ReasonNotFound, nil
	case &rt.Route == r.Route:
		return ReasonNone, nil
	}
	return l.certRules(ctx, rt, r)
}

var errNoPinStore = errors.New("tofu claim: no pin store configured")

func (l *Layers) claim(ctx context.Context, rt *compiledRoute, r *Request, now time.Time) (Reason, error) {
	if l.Pins == nil {
		return ReasonUnavailable, errNoPinStore
	}
	if r.decideTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.decideTimeout)
		defer cancel()
	}
	out, pin, err := tofu.Check(ctx, l.Pins, rt.claimKey, r.ClientID, now, r.ClientCert.NotAfter)
	switch {
	case err != nil:
		return ReasonUnavailable, err
	case out == tofu.Mismatch:
		l.reportConflict(rt.claimKey, pin.Identity, r.ClientID, r.RemoteAddr.Addr())
		return ReasonCertNotAuthorized, nil
	}
	return ReasonNone, nil
}

func (l *Layers) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func matchesAny(id tofu.Identity, fps []tofu.Fingerprint) bool {
	for _, f := range fps {
		if id.Matches(f) {
			return true
		}
	}
	return false
}
