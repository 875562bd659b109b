package raftstore

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ratelimit"
)

func TestBanCommandValidate(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name  string
		cmd   BanCommand
		want  string // "" for a valid command
		broad bool
	}{
		{"timed", BanCommand{Prefix: p("192.0.2.7/32"), Duration: time.Hour, Reason: "scanner"}, "", false},
		{"permanent", BanCommand{Prefix: p("2001:db8::/48"), Permanent: true, Reason: "operator"}, "", false},
		{"a /16", BanCommand{Prefix: p("198.51.0.0/16"), Duration: time.Hour, Reason: "operator"}, "", false},
		{"a /32 of IPv6", BanCommand{Prefix: p("2001:db8::/32"), Duration: time.Hour, Reason: "operator"}, "", false},
		{"everything, forced", BanCommand{Prefix: p("0.0.0.0/0"), Duration: time.Minute, Reason: "operator", Force: true}, "", false},
		{"zero duration", BanCommand{Prefix: p("192.0.2.7/32"), Reason: "operator"}, "duration: must be positive, got 0s", false},
		{"negative duration", BanCommand{Prefix: p("192.0.2.7/32"), Duration: -5 * time.Minute, Reason: "operator"}, "duration: must be positive, got -5m0s", false},
		{"permanent with a duration", BanCommand{Prefix: p("192.0.2.7/32"), Duration: time.Hour, Permanent: true, Reason: "operator"}, "duration: a permanent ban has none", false},
		{"everything v4", BanCommand{Prefix: p("0.0.0.0/0"), Permanent: true, Reason: "operator"}, "prefix: too broad: 0.0.0.0/0 is wider than /16", true},
		{"everything v6", BanCommand{Prefix: p("::/0"), Permanent: true, Reason: "operator"}, "prefix: too broad: ::/0 is wider than /32", true},
		{"a /15", BanCommand{Prefix: p("198.50.0.0/15"), Duration: time.Hour, Reason: "operator"}, "too broad", true},
		{"IPv4-mapped everything", BanCommand{Prefix: p("::ffff:0.0.0.0/96"), Duration: time.Hour, Reason: "operator"}, "too broad: 0.0.0.0/0", true},
		{"no prefix", BanCommand{Duration: time.Hour, Reason: "operator"}, "prefix: invalid", false},
		{"no reason", BanCommand{Prefix: p("192.0.2.7/32"), Duration: time.Hour}, "reason: missing", false},
		{"long reason", BanCommand{Prefix: p("192.0.2.7/32"), Duration: time.Hour, Reason: strings.Repeat("a", 5000)}, "reason: 5000 bytes, at most 64", false},
		{"control character", BanCommand{Prefix: p("192.0.2.7/32"), Duration: time.Hour, Reason: "a\x1b[2Jb"}, `reason: "a\x1b[2Jb" is not a token`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cmd.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidCommand) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want ErrInvalidCommand containing %q", err, tt.want)
			}
			if errors.Is(err, ErrBroadPrefix) != tt.broad {
				t.Fatalf("Validate() = %v: errors.Is(ErrBroadPrefix) = %v, want %v", err, !tt.broad, tt.broad)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("Validate() error is %d bytes long: it echoes its input", len(err.Error()))
			}
		})
	}
}

func TestBansAddRefusesInvalidCommand(t *testing.T) {
	b, _ := openBans(t, BansConfig{})
	err := b.Add(context.Background(), BanCommand{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Reason: "operator"})
	if !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("Add = %v, want ErrInvalidCommand", err)
	}
	barrier(t, b)
	if n := b.View().Len(); n != 0 {
		t.Fatalf("a refused command left %d bans", n)
	}
}

// gate plays the gateway's accept path for one connection from addr: the
// ban view first, then the limiter, whose hard refusals are reported. It
// returns once the store has applied any report, with "banned" or the
// limiter's verdict.
func gate(t *testing.T, b *Bans, lim *ratelimit.Limiter, now time.Time, addr netip.Addr) string {
	t.Helper()
	if b.Banned(addr, now) {
		return "banned"
	}
	res := lim.Allow(addr)
	if res.Verdict == ratelimit.Hard {
		b.ReportAbuse(addr, res)
	}
	barrier(t, b)
	return res.Verdict.String()
}

// floodUntilBanned sends connections from addr until it is banned.
func floodUntilBanned(t *testing.T, b *Bans, lim *ratelimit.Limiter, now time.Time, addr netip.Addr) {
	t.Helper()
	for range 100 {
		if gate(t, b, lim, now, addr) == "banned" {
			return
		}
	}
	t.Fatalf("%v never banned", addr)
}

// Lifting a ban starts the client afresh at the node's limiter, instead of
// letting its empty bucket earn it a second ban at its next connection;
// its strikes stay, so a new ban within StrikeMemory still escalates.
func TestBansLiftForgivesTheLimiter(t *testing.T) {
	clk := &clock{t: t0}
	lim, err := ratelimit.New(ratelimit.Config{Capacity: 3, RefillPerSec: 0.001, HardFactor: 2, IPv4Prefix: 32, IPv6Prefix: 64, MaxKeys: 1000, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	pol := DefaultAutoBanPolicy()
	pol.Threshold = 5
	b, _ := openBans(t, BansConfig{AutoBan: pol, Now: clk.Now, Forgiver: lim})
	ctx := context.Background()
	now := clk.Now()
	a := netip.MustParseAddr("192.0.2.7")

	floodUntilBanned(t, b, lim, now, a)
	if err := b.Lift(ctx, netip.PrefixFrom(a, 32)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // the bucket's capacity
		if got := gate(t, b, lim, now, a); got != "allow" {
			t.Fatalf("connection %d after the lift: %s, want allow", i+1, got)
		}
	}
	floodUntilBanned(t, b, lim, now, a)
	if ban, _ := b.state.Lookup(netip.PrefixFrom(a, 32)); ban.Strikes != 2 {
		t.Fatalf("second auto-ban has %d strikes, want 2 (the history stays)", ban.Strikes)
	}

	// An operator's /24 over the limiter's /32 keys forgives every client
	// inside it, and only them.
	in1, in2, out := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("203.0.113.1")
	for _, c := range []netip.Addr{in1, in2, out} {
		for lim.Allow(c).Verdict == ratelimit.Allow {
		}
	}
	p := netip.MustParsePrefix("198.51.100.0/24")
	if err := b.Add(ctx, BanCommand{Prefix: p, Duration: time.Hour, Reason: "operator"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Lift(ctx, p); err != nil {
		t.Fatal(err)
	}
	for _, c := range []netip.Addr{in1, in2} {
		if got := gate(t, b, lim, now, c); got != "allow" {
			t.Fatalf("%v after lifting its /24: %s, want allow", c, got)
		}
	}
	if got := gate(t, b, lim, now, out); got == "allow" {
		t.Fatalf("%v outside the lifted /24 was forgiven", out)
	}

	// Lifting a ban that is not active forgives nobody.
	if err := b.Lift(ctx, netip.PrefixFrom(out, 32)); err != nil {
		t.Fatal(err)
	}
	if got := gate(t, b, lim, now, out); got == "allow" {
		t.Fatalf("%v forgiven by lifting a ban it did not have", out)
	}
}
