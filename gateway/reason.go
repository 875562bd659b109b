package gateway

import "strconv"

// Reason is an abstract outcome of the layer chain or a handler. The zero
// value, ReasonNone, means the request may proceed. Protocol adapters map
// reasons to their own statuses; see Status for Gemini.
type Reason uint8

// The reasons a request can be refused. Their names are stable: they appear
// in logs, metrics and audit events.
const (
	ReasonNone              Reason = iota // allowed
	ReasonAccessDenied                    // static deny list or default-deny policy
	ReasonBanned                          // an active ban on the client
	ReasonRateLimited                     // soft rate limit: retry later
	ReasonRateLimitedHard                 // hard rate limit: dropped at accept
	ReasonConnLimit                       // total or per-IP connection cap
	ReasonCertRequired                    // route needs a client certificate
	ReasonCertNotAuthorized               // certificate not allowed here (fingerprint list, TOFU owner)
	ReasonCertInvalid                     // certificate expired or not yet valid
	ReasonBadRequest                      // malformed request line or URL
	ReasonProxyRefused                    // other scheme, host or port
	ReasonNotFound                        // no such document
	ReasonUpstreamError                   // upstream unreachable, timed out, or misbehaved
	ReasonUpstreamUntrusted               // upstream certificate does not match its pin
	ReasonTooLarge                        // Titan upload larger than allowed
	ReasonUploadsRefused                  // route takes no Titan uploads
	ReasonUnavailable                     // a dependency (pin store, …) failed; try again
	ReasonInternal                        // a bug or I/O error on our side
	reasonCount
)

var reasonNames = [reasonCount]string{
	ReasonNone:              "allowed",
	ReasonAccessDenied:      "access_denied",
	ReasonBanned:            "banned",
	ReasonRateLimited:       "rate_limited",
	ReasonRateLimitedHard:   "rate_limited_hard",
	ReasonConnLimit:         "conn_limit",
	ReasonCertRequired:      "cert_required",
	ReasonCertNotAuthorized: "cert_not_authorized",
	ReasonCertInvalid:       "cert_invalid",
	ReasonBadRequest:        "bad_request",
	ReasonProxyRefused:      "proxy_refused",
	ReasonNotFound:          "not_found",
	ReasonUpstreamError:     "upstream_error",
	ReasonUpstreamUntrusted: "upstream_untrusted",
	ReasonTooLarge:          "too_large",
	ReasonUploadsRefused:    "uploads_refused",
	ReasonUnavailable:       "unavailable",
	ReasonInternal:          "internal",
}

// String returns the stable snake_case name of r.
func (r Reason) String() string {
	if r < reasonCount {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Error is an error that carries the Reason a request failed for and a short
// message that is safe to show to the client (it becomes the Gemini meta).
// Handlers and the parser return *Error; the adapter maps it to a status.
type Error struct {
	Reason Reason
	Msg    string // client-safe; never contains tokens or raw client addresses
	Err    error  // optional cause, for logs only
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Reason.String() + ": " + e.Msg + ": " + e.Err.Error()
	}
	return e.Reason.String() + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// newError returns an *Error for r with a client-safe message.
func newError(r Reason, msg string) *Error { return &Error{Reason: r, Msg: msg} }
