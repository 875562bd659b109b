package cluster

import (
	"net/netip"

	"github.com/chimalli/chimalli/raftstore"
)

// RuleSet is an immutable view of the replicated access rules.
type RuleSet struct {
	rules []raftstore.Rule
	allow []netip.Prefix
	deny  []netip.Prefix
}

func newRuleSet(rules []raftstore.Rule) *RuleSet {
	s := &RuleSet{rules: rules}
	for _, r := range rules {
		if r.List == raftstore.ListAllow {
			s.allow = append(s.allow, r.Prefix)
		} else {
			s.deny = append(s.deny, r.Prefix)
		}
	}
	return s
}

// Rules returns the rules, sorted by list then prefix. The caller must not
// modify the slice.
func (s *RuleSet) Rules() []raftstore.Rule { return s.rules }

// Allow returns the replicated allow list.
func (s *RuleSet) Allow() []netip.Prefix { return s.allow }

// Deny returns the replicated deny list.
func (s *RuleSet) Deny() []netip.Prefix { return s.deny }
