package gateway

import "github.com/chimalli/chimalli/tofu"

// Route binds a path prefix of a virtual host to its certificate rules and
// its handler. Routes of a host are tried longest prefix first.
type Route struct {
	// Prefix is a canonical path prefix ending in "/" ("/" matches every
	// path). It matches whole segments: "/admin/" matches "/admin",
	// "/admin/" and "/admin/x", not "/administrator". Matching folds ASCII
	// case and other look-alike spellings (see PrefixMatch), so a rule
	// cannot be bypassed by writing the path differently.
	Prefix string

	// RequireCert refuses requests without a client certificate (60).
	RequireCert bool
	// AllowedFingerprints, when not empty, admits only certificates matching
	// one of them (61 otherwise). Implies RequireCert.
	AllowedFingerprints []tofu.Fingerprint
	// TOFUClaim makes the first certificate to use the prefix its owner;
	// any other certificate is refused (61). Implies RequireCert.
	TOFUClaim bool

	// Uploads admits Titan requests on this route; MaxUploadBytes bounds
	// their size. Without Uploads, Titan requests are refused.
	Uploads        bool
	MaxUploadBytes int64

	// Handler serves allowed requests.
	Handler Handler
}

// needsCert reports whether the route refuses anonymous clients.
func (r *Route) needsCert() bool {
	return r.RequireCert || r.TOFUClaim || len(r.AllowedFingerprints) > 0
}
