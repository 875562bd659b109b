package raftstore

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
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
