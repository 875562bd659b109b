package raftstore

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// A deny rule shuts clients out as a ban does, so a very broad one needs
// Force, by the same rule (CheckBreadth); an allow rule, or removing a
// rule, can be as broad as asked.
func TestCommandRuleBreadth(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		cmd    Command
		broad  bool
		wantOK bool
	}{
		{"deny everything v4", Command{Op: OpRuleAdd, List: ListDeny, Prefix: netip.MustParsePrefix("0.0.0.0/0")}, true, false},
		{"deny everything v6", Command{Op: OpRuleAdd, List: ListDeny, Prefix: netip.MustParsePrefix("::/0")}, true, false},
		{"deny a v4-mapped /8", Command{Op: OpRuleAdd, List: ListDeny, Prefix: netip.MustParsePrefix("::ffff:10.0.0.0/104")}, true, false},
		{"deny a /16", Command{Op: OpRuleAdd, List: ListDeny, Prefix: netip.MustParsePrefix("198.51.0.0/16")}, false, true},
		{"deny everything, forced", Command{Op: OpRuleAdd, List: ListDeny, Prefix: netip.MustParsePrefix("0.0.0.0/0"), Force: true}, false, true},
		{"allow everything", Command{Op: OpRuleAdd, List: ListAllow, Prefix: netip.MustParsePrefix("0.0.0.0/0")}, false, true},
		{"remove a broad deny", Command{Op: OpRuleRemove, List: ListDeny, Prefix: netip.MustParsePrefix("::/0")}, false, true},
		{"no list", Command{Op: OpRuleAdd, Prefix: netip.MustParsePrefix("192.0.2.0/24")}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cmd.Event(NewState(), now, DefaultAutoBanPolicy())
			if (err == nil) != tt.wantOK || errors.Is(err, ErrBroadPrefix) != tt.broad {
				t.Fatalf("Event = %v, want ok %v, broad %v", err, tt.wantOK, tt.broad)
			}
			if err != nil && !errors.Is(err, ErrRefused) {
				t.Fatalf("Event = %v, want ErrRefused", err)
			}
		})
	}
}

// An approval may name one fingerprint: the event carries that half only.
func TestCommandTrustApproveOneHalf(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	cmd := Command{Op: OpTrustApprove, PinKind: tofu.PinClient, Subject: "example.org/app/", Identity: tofu.Identity{SPKI: [32]byte{7}}}
	e, err := cmd.Event(NewState(), now, DefaultAutoBanPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != TypeTrustChanged || !e.Trust.Cert.IsZero() || e.Trust.SPKI != (tofu.Fingerprint{Kind: tofu.KindSPKI, Sum: [32]byte{7}}) {
		t.Fatalf("event %+v %+v", e, e.Trust)
	}
	s := NewState()
	if r := s.Apply(1, e); r.Err != nil || !r.Changed || r.Pin.Identity != cmd.Identity {
		t.Fatalf("apply: %+v", r)
	}
	cmd.Identity = tofu.Identity{}
	if _, err := cmd.Event(NewState(), now, DefaultAutoBanPolicy()); !errors.Is(err, ErrRefused) {
		t.Fatalf("approval without a fingerprint: %v, want ErrRefused", err)
	}
}
