package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/chimalli/chimalli/raftstore"
)

// BanStore is what the admin API's ban endpoints need of the node's ban
// state. *raftstore.Bans implements it.
type BanStore interface {
	Add(ctx context.Context, prefix netip.Prefix, d time.Duration, reason string) error
	Lift(ctx context.Context, prefix netip.Prefix) error
	View() *raftstore.BanSet
}

// BanEntry is one ban as the admin API lists it.
type BanEntry struct {
	Prefix  string     `json:"prefix"`
	Since   time.Time  `json:"since"`
	Until   *time.Time `json:"until"` // null: until lifted
	Reason  string     `json:"reason"`
	Source  string     `json:"source"`
	Strikes int        `json:"strikes"`
}

// BanRequest is the body of POST /bans.
type BanRequest struct {
	Prefix   string `json:"prefix"`   // CIDR or bare address
	Duration string `json:"duration"` // Go duration; "" or "0": until lifted
	Reason   string `json:"reason"`   // token; "" → "operator"
}

// maxBanBody bounds a POST /bans body.
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
	if !b.Until.IsZero() {
		u := b.Until.UTC()
		e.Until = &u
	}
	return e
}

func addBan(w http.ResponseWriter, r *http.Request, store BanStore) {
	var req BanRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBanBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		badRequest(w, fmt.Errorf("body: %w", err))
		return
	}
	p, err := ParsePrefix(req.Prefix)
	if err != nil {
		badRequest(w, fmt.Errorf("prefix: %w", err))
		return
	}
	var d time.Duration
	if req.Duration != "" {
		if d, err = time.ParseDuration(req.Duration); err != nil || d < 0 {
			badRequest(w, fmt.Errorf("duration: %q is not a duration >= 0", req.Duration))
			return
		}
	}
	if req.Reason == "" {
		req.Reason = "operator"
	}
	if err := store.Add(r.Context(), p, d, req.Reason); err != nil {
		if errors.Is(err, raftstore.ErrInvalidEvent) {
			badRequest(w, err)
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, statusBody{Status: "unavailable", Error: err.Error()})
		return
	}
	for _, b := range store.View().Bans() {
		if b.Prefix == p {
			writeJSON(w, http.StatusOK, banEntry(b))
			return
		}
	}
	writeJSON(w, http.StatusOK, BanEntry{Prefix: p.String()})
}

func liftBan(w http.ResponseWriter, r *http.Request, store BanStore) {
	p, err := ParsePrefix(r.URL.Query().Get("prefix"))
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
