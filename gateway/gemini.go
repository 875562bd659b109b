package gateway

// Gemini status codes used by the adapter.
const (
	StatusInput               = 10
	StatusSuccess             = 20
	StatusRedirect            = 31
	StatusTemporaryFailure    = 40
	StatusServerUnavailable   = 41
	StatusProxyError          = 43
	StatusSlowDown            = 44
	StatusPermanentFailure    = 50
	StatusNotFound            = 51
	StatusProxyRequestRefused = 53
	StatusBadRequest          = 59
	StatusCertRequired        = 60
	StatusCertNotAuthorized   = 61
	StatusCertNotValid        = 62
)

// Status maps an abstract Reason to its Gemini status code. It is the one
// place where layer outcomes become protocol statuses.
func Status(r Reason) int {
	switch r {
	case ReasonNone:
		return StatusSuccess
	case ReasonRateLimited, ReasonRateLimitedHard, ReasonConnLimit:
		return StatusSlowDown
	case ReasonCertRequired:
		return StatusCertRequired
	case ReasonCertNotAuthorized:
		return StatusCertNotAuthorized
	case ReasonCertInvalid:
		return StatusCertNotValid
	case ReasonBadRequest, ReasonTooLarge:
		return StatusBadRequest
	case ReasonProxyRefused:
		return StatusProxyRequestRefused
	case ReasonNotFound:
		return StatusNotFound
	case ReasonUpstreamError, ReasonUpstreamUntrusted:
		return StatusProxyError
	case ReasonUnavailable:
		return StatusServerUnavailable
	case ReasonAccessDenied, ReasonBanned, ReasonUploadsRefused:
		return StatusPermanentFailure
	default:
		return StatusTemporaryFailure
	}
}

// defaultMeta is the client-facing meta for a reason when the layer gave
// none.
func defaultMeta(r Reason) string {
	switch r {
	case ReasonCertRequired:
		return "client certificate required"
	case ReasonCertNotAuthorized:
		return "certificate not authorised for this path"
	case ReasonCertInvalid:
		return "certificate expired or not yet valid"
	case ReasonBadRequest:
		return "bad request"
	case ReasonTooLarge:
		return "upload too large"
	case ReasonProxyRefused:
		return "proxy request refused"
	case ReasonNotFound:
		return "not found"
	case ReasonUpstreamError:
		return "upstream error"
	case ReasonUpstreamUntrusted:
		return "upstream certificate changed"
	case ReasonUnavailable:
		return "temporarily unavailable"
	case ReasonAccessDenied:
		return "access denied"
	case ReasonBanned:
		return "banned"
	case ReasonUploadsRefused:
		return "uploads are not accepted here"
	case ReasonConnLimit:
		return "too many connections"
	default:
		return "temporary failure"
	}
}
