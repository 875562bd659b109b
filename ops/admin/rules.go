package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/raftstore"
)

// RuleEntry is one replicated access rule as the admin API lists it.
type RuleEntry struct {
	List   string `json:"list"`   // "allow" or "deny"
	Prefix string `json:"prefix"` // CIDR, masked
}

// RuleChange is the answer to a rule's addition: the rule as stored, and
// whether the committed entry changed anything (false: it was already
// there).
type RuleChange struct {
	RuleEntry
	Changed bool   `json:"changed"`
	Index   uint64 `json:"index"` // the entry's Raft log index
}

// RuleRequest is the body of POST /rules.
type RuleRequest struct {
	List   string `json:"list"`   // "allow" or "deny"
	Prefix string `json:"prefix"` // CIDR or bare address
	// Force allows a deny rule wider than /16 (IPv4) or /32 (IPv6), as for
	// bans (raftstore.CheckBreadth). Allow rules need none.
	Force bool `json:"force,omitempty"`
}

// ParseRuleList parses "allow" or "deny".
func ParseRuleList(s string) (raftstore.RuleList, error) {
	switch l := raftstore.RuleList(s); l {
	case raftstore.ListAllow, raftstore.ListDeny:
		return l, nil
	}
	return "", fmt.Errorf("list: %s is neither allow nor deny", quoteShort(s))
}

// Command checks r and returns the command that adds the rule. It applies
// the leader's rule for broad deny rules first, so that the mistake is
// reported with its remedy whichever node answers; the error wraps
// raftstore.ErrBroadPrefix then.
func (r RuleRequest) Command() (raftstore.Command, error) {
	list, err := ParseRuleList(r.List)
	if err != nil {
		return raftstore.Command{}, err
	}
	p, err := parseCIDR(r.Prefix)
	if err != nil {
		return raftstore.Command{}, err
	}
	if list == raftstore.ListDeny && !r.Force {
		if err := raftstore.CheckBreadth(p); err != nil {
			return raftstore.Command{}, fmt.Errorf("prefix: %w", err)
		}
	}
	return raftstore.Command{Op: raftstore.OpRuleAdd, List: list, Prefix: p, Force: r.Force}, nil
}

// parseCIDR parses a prefix as the configuration's access lists do: the
// prefix comes back unmapped and masked, as the state stores it.
func parseCIDR(s string) (netip.Prefix, error) {
	if len(s) > maxCIDRLen {
		return netip.Prefix{}, fmt.Errorf("prefix: %d bytes, too long for a CIDR", len(s))
	}
	p, err := config.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("prefix: %w", err)
	}
	return p, nil
}

// maxCIDRLen is longer than any CIDR ("ffff:…:255.255.255.255/128" is 49
// bytes); a longer field is refused without being quoted back.
const maxCIDRLen = 64

// maxRuleBody bounds a POST /rules body.
const maxRuleBody = 4 << 10

// HandleRules serves the replicated access rules: GET /rules lists them
// (?list=allow|deny to filter, ?consistent=1 for a linearizable read
// through the leader), POST /rules adds one, DELETE /rules?list=&prefix=
// removes one (404 when it was not there). Writes commit cluster-wide
// before they answer, from any node.
func (a *Admin) HandleRules(st State) {
	s := stateAPI{st}
	a.mux.Handle("/rules", methods{get: s.listRules, post: s.addRule, delete: s.removeRule})
}

func (s stateAPI) listRules(w http.ResponseWriter, r *http.Request) {
	only, ok := queryFilter(w, r, "list", ParseRuleList)
	if !ok || !s.consistent(w, r) {
		return
	}
	out := []RuleEntry{}
	for _, rule := range s.st.Rules() {
		if only == "" || rule.List == only {
			out = append(out, RuleEntry{List: string(rule.List), Prefix: rule.Prefix.String()})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s stateAPI) addRule(w http.ResponseWriter, r *http.Request) {
	var req RuleRequest
	if !decodeBody(w, r, maxRuleBody, &req) {
		return
	}
	cmd, err := req.Command()
	if err != nil {
		if errors.Is(err, raftstore.ErrBroadPrefix) {
			err = fmt.Errorf(`%w (send "force": true to deny it anyway)`, err)
		}
		badRequest(w, err)
		return
	}
	res, err := s.st.Apply(r.Context(), cmd)
	if err != nil {
		writeApplyError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, RuleChange{
		RuleEntry: RuleEntry{List: string(cmd.List), Prefix: cmd.Prefix.String()},
		Changed:   res.Changed, Index: res.Index,
	})
}

func (s stateAPI) removeRule(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	list, err := ParseRuleList(q.Get("list"))
	if err != nil {
		badRequest(w, err)
		return
	}
	p, err := parseCIDR(q.Get("prefix"))
	if err != nil {
		badRequest(w, err)
		return
	}
	s.remove(w, r, raftstore.Command{Op: raftstore.OpRuleRemove, List: list, Prefix: p},
		fmt.Sprintf("no %s rule for %s", list, p))
}
