package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/raftstore"
)

// BanStore is what the admin API's ban endpoints need of the node's ban
// state. *raftstore.Bans implements it.
type BanStore interface {
	// Add validates c (errors wrapping raftstore.ErrInvalidCommand are the
	// caller's fault) and applies it.
	Add(ctx context.Context, c raftstore.BanCommand) error
	Lift(ctx context.Context, prefix netip.Prefix) error
	View() *raftstore.BanSet
}

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

// HandleBans serves the ban endpoints on a (GET: list active bans; POST: add
// one; DELETE ?prefix=: lift one). The admin socket is the node's local
// operator surface (mode 0600): bans name raw prefixes, as enforcement
// state must; they never go into logs or events.
func (a *Admin) HandleBans(store BanStore) {
	a.mux.Handle("/bans", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			listBans(w, store)
		case http.MethodPost:
			addBan(w, r, store)
		case http.MethodDelete:
			liftBan(w, r, store)
		default:
			w.Header().Set("Allow", "GET, HEAD, POST, DELETE")
			writeJSON(w, http.StatusMethodNotAllowed, statusBody{Status: "method_not_allowed", Error: r.Method + " is not allowed"})
		}
	}))
}

func listBans(w http.ResponseWriter, store BanStore) {
	now := time.Now()
	out := []BanEntry{}
	for _, b := range store.View().Bans() {
		if b.ActiveAt(now) {
			out = append(out, banEntry(b))
		}
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

func addBan(w http.ResponseWriter, r *http.Request, store BanStore) {
	var req BanRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBanBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeJSON(w, http.StatusRequestEntityTooLarge, statusBody{Status: "too_large", Error: fmt.Sprintf("body: larger than %d bytes", maxBanBody)})
			return
		}
		badRequest(w, fmt.Errorf("body: %w", err))
		return
	}
	c, err := req.Command()
	if err != nil {
		badRequest(w, err)
		return
	}
	if err := store.Add(r.Context(), c); err != nil {
		switch {
		case errors.Is(err, raftstore.ErrBroadPrefix):
			badRequest(w, fmt.Errorf(`%w (send "force": true to ban it anyway)`, err))
		case errors.Is(err, raftstore.ErrInvalidCommand), errors.Is(err, raftstore.ErrInvalidEvent):
			badRequest(w, err)
		default:
			writeJSON(w, http.StatusServiceUnavailable, statusBody{Status: "unavailable", Error: err.Error()})
		}
		return
	}
	for _, b := range store.View().Bans() {
		if b.Prefix == c.Prefix {
			writeJSON(w, http.StatusOK, banEntry(b))
			return
		}
	}
	writeJSON(w, http.StatusOK, BanEntry{Prefix: c.Prefix.String()})
}

func liftBan(w http.ResponseWriter, r *http.Request, store BanStore) {
	p, err := config.ParsePrefix(r.URL.Query().Get("prefix"))
	if err != nil {
		badRequest(w, fmt.Errorf("prefix: %w", err))
		return
	}
	found := false
	now := time.Now()
	for _, b := range store.View().Bans() {
		found = found || b.Prefix == p && b.ActiveAt(now)
	}
	if !found {
		writeJSON(w, http.StatusNotFound, statusBody{Status: "not_found", Error: "no active ban for " + p.String()})
		return
	}
	if err := store.Lift(r.Context(), p); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, statusBody{Status: "unavailable", Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, statusBody{Status: "ok"})
}

func badRequest(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusBadRequest, statusBody{Status: "bad_request", Error: err.Error()})
}
