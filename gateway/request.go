package gateway

import (
	"context"
	"crypto/x509"
	"io"
	"net/netip"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// MaxRequestLine is the longest Gemini/Titan request line accepted, in bytes,
// excluding the terminating CRLF. 1024 is accepted; 1025 is refused with 59.
const MaxRequestLine = 1024

// Scheme is the URL scheme of a request.
type Scheme uint8

// Schemes the gateway serves.
const (
	SchemeGemini Scheme = iota + 1
	SchemeTitan
)

func (s Scheme) String() string {
	switch s {
	case SchemeGemini:
		return "gemini"
	case SchemeTitan:
		return "titan"
	}
	return "unknown"
}

// TitanParams are the parameters of a Titan upload
// (titan://host/path;size=N;mime=T;token=X).
type TitanParams struct {
	Size  int64  // body length in bytes; required
	MIME  string // media type; "text/gemini" when absent
	Token string // optional; secret: never logged
}

// Request is one parsed request. The URL fields are filled by ParseRequest;
// the server fills the connection fields before the layers run.
type Request struct {
	// URL fields, from ParseRequest.
	Scheme   Scheme
	Host     string // normalised: lower-case, ASCII (punycode), no trailing dot
	Port     int    // 0 when the URL names none
	Path     string // canonical path (CanonicalPath); always starts with "/"
	RawQuery string // query as received, without '?'; "" when absent
	Titan    TitanParams

	// Connection fields, from the server.
	SNI        string            // normalised TLS server name ("" when the client sent none)
	RemoteAddr netip.AddrPort    // client address, IPv4-mapped addresses unmapped; never logged raw
	ClientHash string            // keyed hash of the client address, safe for logs and events
	ClientCert *x509.Certificate // leaf certificate, nil when none was presented
	ClientID   tofu.Identity     // fingerprints of ClientCert; zero when none
	Body       io.Reader         // Titan upload body, limited to Titan.Size; nil for Gemini

	// Routing fields, from the layer chain.
	Route *Route // the route that matched

	// host and layers let a handler hold another path of the same host to
	// its own route's rules (see checkAlias); set by the server, nil when
	// a handler is called outside one.
	host          *vhost
	layers        *Layers
	decideTimeout time.Duration // bounds a TOFU claim's commit (see Layers.claim); 0: none
}

// checkAlias reports, as an *Error, whether the rules of the route that
// path (a canonical path of r's host) falls under refuse r. A handler that
// finds r.Path to name the same file as path calls it before serving that
// file, so that a path's rules hold for the file actually served (see
// Layers.decideAlias). Outside a server there are no routes, and it
// returns nil.
func (r *Request) checkAlias(ctx context.Context, path string) error {
	if r.host == nil || r.layers == nil {
		return nil
	}
	switch reason, err := r.layers.decideAlias(ctx, r.host, r, path); reason {
	case ReasonNone:
		return nil
	case ReasonNotFound:
		return errNotFound(nil)
	default:
		return &Error{Reason: reason, Err: err}
	}
}

// URL returns the request URL in canonical form (scheme, host, port if any,
// canonical path, query). Titan parameters are omitted so tokens never leak.
func (r *Request) URL() string {
	return r.urlWithHost(r.Host, r.Port)
}

func (r *Request) urlWithHost(host string, port int) string {
	b := make([]byte, 0, 16+len(host)+len(r.Path)+len(r.RawQuery))
	b = append(b, r.Scheme.String()...)
	b = append(b, "://"...)
	b = appendHostPort(b, host, port)
	b = append(b, r.Path...)
	if r.RawQuery != "" {
		b = append(b, '?')
		b = append(b, r.RawQuery...)
	}
	return string(b)
}
