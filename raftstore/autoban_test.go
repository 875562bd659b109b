package raftstore

import (
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestAutoBanDurationFor(t *testing.T) {
	p := DefaultAutoBanPolicy()
	tests := []struct {
		strikes int
		want    time.Duration
	}{
		{-1, 10 * time.Minute},
		{0, 10 * time.Minute},
		{1, 20 * time.Minute},
		{2, 40 * time.Minute},
		{7, 21*time.Hour + 20*time.Minute},
		{8, 24 * time.Hour}, // 42h40m capped
		{1 << 30, 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := p.DurationFor(tt.strikes); got != tt.want {
			t.Errorf("DurationFor(%d) = %s, want %s", tt.strikes, got, tt.want)
		}
	}
	flat := p
	flat.Escalate = 1
	if got := flat.DurationFor(100); got != 10*time.Minute {
		t.Errorf("escalate 1: DurationFor(100) = %s, want 10m", got)
	}
}

func TestAutoBanValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*AutoBanPolicy)
		field string // "" → valid
	}{
		{"defaults", func(*AutoBanPolicy) {}, ""},
		{"disabled ignores the ban fields", func(p *AutoBanPolicy) { p.Threshold, p.Duration, p.Escalate = 0, 0, 0 }, ""},
		{"zero duration", func(p *AutoBanPolicy) { p.Duration = 0 }, "duration"},
		{"escalate under one", func(p *AutoBanPolicy) { p.Escalate = 0.5 }, "escalate"},
		{"escalate NaN", func(p *AutoBanPolicy) { p.Escalate = math.NaN() }, "escalate"},
		{"escalate infinite", func(p *AutoBanPolicy) { p.Escalate = math.Inf(1) }, "escalate"},
		{"max under duration", func(p *AutoBanPolicy) { p.Max = time.Minute }, "max"},
		{"ipv4 prefix 0", func(p *AutoBanPolicy) { p.IPv4Prefix = 0 }, "ipv4_prefix"},
		{"ipv6 prefix 129", func(p *AutoBanPolicy) { p.IPv6Prefix = 129 }, "ipv6_prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultAutoBanPolicy()
			tt.edit(&p)
			err := p.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), tt.field+":") {
				t.Fatalf("Validate = %v, want ErrInvalidPolicy naming %s", err, tt.field)
			}
		})
	}
}

func TestAutoBanPrefixOf(t *testing.T) {
	p := DefaultAutoBanPolicy()
	tests := map[string]string{
		"192.0.2.7":            "192.0.2.7/32",
		"::ffff:192.0.2.7":     "192.0.2.7/32",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
	}
	for in, want := range tests {
		if got := p.PrefixOf(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("PrefixOf(%s) = %s, want %s", in, got, want)
		}
	}
	if p.PrefixOf(netip.Addr{}).IsValid() {
		t.Error("PrefixOf(invalid) must be invalid")
	}
}
