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

// BanRequest is the body of POST /bans: raftstore.BanRequest, whose
// Command and ValidCommand hold the parsing rules the cmd.ban subject of
// the event plane shares.
type BanRequest = raftstore.BanRequest

// Permanent is how BanRequest.Duration and `ban add --for` spell a ban that
// holds until lifted by hand.
const Permanent = raftstore.Permanent

// maxBanBody bounds a POST /bans body.
const maxBanBody = raftstore.MaxBanRequestBytes

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
	// The leader applies the same rule; checking here too keeps the
	// error's detail (a broad prefix's hint) whichever node answers.
	c, err := req.ValidCommand(`send "force": true to ban it anyway`)
	if err != nil {
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
