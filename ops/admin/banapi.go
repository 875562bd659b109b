package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/raftstore"
)

// BanEntry is one ban as the admin API lists it.
type BanEntry struct {
	Prefix    string     `json:"prefix"`
	Since     time.Time  `json:"since"`
	Until     *time.Time `json:"until"`     // null for a permanent ban
	Permanent bool       `json:"permanent"` // holds until lifted by hand
	Reason    string     `json:"reason"`
	Source    string     `json:"source"`
	Strikes   int        `json:"strikes"`
}

// BanRequest is the body of POST /bans.
type BanRequest struct {
	Prefix string `json:"prefix"` // CIDR or bare address
	// Duration is a positive Go duration ("90m", "24h"), or "permanent"
	// (or absent) for a ban that holds until lifted by hand. "0s" and
	// negative durations are refused rather than read as permanent.
	Duration string `json:"duration,omitempty"`
	Reason   string `json:"reason,omitempty"` // token of [a-z0-9_.-]; "" → "operator"
	// Force allows a prefix wider than /16 (IPv4) or /32 (IPv6).
	Force bool `json:"force,omitempty"`
}

// Permanent is how BanRequest.Duration and `ban add --for` spell a ban that
// holds until lifted by hand.
const Permanent = "permanent"

// Command turns r into the command the ban store validates and applies. It
// reports only what the store cannot see (a prefix or duration that does
// not parse); the store's BanCommand.Validate is the authority on the rest.
func (r BanRequest) Command() (raftstore.BanCommand, error) {
	p, err := config.ParsePrefix(r.Prefix)
	if err != nil {
		return raftstore.BanCommand{}, fmt.Errorf("prefix: %w", err)
	}
	c := raftstore.BanCommand{Prefix: p, Reason: r.Reason, Force: r.Force}
	if c.Reason == "" {
		c.Reason = "operator"
	}
	switch r.Duration {
	case "", Permanent:
		c.Permanent = true
	default:
		if c.Duration, err = time.ParseDuration(r.Duration); err != nil {
			return raftstore.BanCommand{}, fmt.Errorf("duration: %q is neither a duration such as 90m or 24h nor %q", r.Duration, Permanent)
		}
	}
	return c, nil
}

// maxBanBody bounds a POST /bans body: a prefix, a duration and a reason
// of at most raftstore.MaxReasonLen bytes fit many times over.
const maxBanBody = 4 << 10

// HandleBans serves the ban endpoints (GET: list active bans,
// ?consistent=1 for a linearizable read through the leader; POST: add one;
// DELETE ?prefix=: lift one). Writes commit cluster-wide before they
// answer. The admin socket is the node's local operator surface (mode
// 0600): bans name raw prefixes, as enforcement state must; they never go
// into logs or events.
func (a *Admin) HandleBans(st State) {
	s := stateAPI{st}
	a.mux.Handle("/bans", methods{get: s.listBans, post: s.addBan, delete: s.liftBan})
}

func (s stateAPI) listBans(w http.ResponseWriter, r *http.Request) {
	if !s.consistent(w, r) {
		return
	}
	out := []BanEntry{}
	for _, b := range s.st.ActiveBans(time.Now()) {
		out = append(out, banEntry(b))
	}
	writeJSON(w, http.StatusOK, out)
}

func banEntry(b raftstore.Ban) BanEntry {
	e := BanEntry{Prefix: b.Prefix.String(), Since: b.Since.UTC(), Reason: b.Reason, Source: b.Source, Strikes: b.Strikes}
	if b.Until.IsZero() {
		e.Permanent = true
	} else {
		u := b.Until.UTC()
		e.Until = &u
	}
	return e
}

// decodeBody decodes a JSON body of at most limit bytes, refusing unknown
// fields; it reports false after answering an error.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeJSON(w, http.StatusRequestEntityTooLarge, statusBody{Status: "too_large", Error: fmt.Sprintf("body: larger than %d bytes", limit)})
			return false
		}
		badRequest(w, fmt.Errorf("body: %w", err))
		return false
	}
	return true
}

func (s stateAPI) addBan(w http.ResponseWriter, r *http.Request) {
	var req BanRequest
	if !decodeBody(w, r, maxBanBody, &req) {
		return
	}
	c, err := req.Command()
	if err != nil {
		badRequest(w, err)
		return
	}
	// The leader applies the same rule; checking here too keeps the
	// error's detail (a broad prefix's hint) whichever node answers.
	if err := c.Validate(); err != nil {
		if errors.Is(err, raftstore.ErrBroadPrefix) {
			err = fmt.Errorf(`%w (send "force": true to ban it anyway)`, err)
		}
		badRequest(w, err)
		return
	}
	cmd := raftstore.Command{Op: raftstore.OpBanAdd, Prefix: c.Prefix, Duration: c.Duration, Permanent: c.Permanent,
		Reason: c.Reason, Force: c.Force}
	if _, err := s.st.Apply(r.Context(), cmd); err != nil {
		writeApplyError(w, err)
		return
	}
	p := c.Prefix.Masked()
	for _, b := range s.st.ActiveBans(time.Now()) {
		if b.Prefix == p || b.Prefix == normalize(c.Prefix) {
			writeJSON(w, http.StatusOK, banEntry(b))
			return
		}
	}
	writeJSON(w, http.StatusOK, BanEntry{Prefix: p.String()})
}

// normalize unmaps an IPv4-mapped prefix as the state stores it.
func normalize(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

func (s stateAPI) liftBan(w http.ResponseWriter, r *http.Request) {
	p, err := config.ParsePrefix(r.URL.Query().Get("prefix"))
	if err != nil {
		badRequest(w, fmt.Errorf("prefix: %w", err))
		return
	}
	s.remove(w, r, raftstore.Command{Op: raftstore.OpBanLift, Prefix: p}, "no active ban for "+p.String())
}

func badRequest(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusBadRequest, statusBody{Status: "bad_request", Error: err.Error()})
}
