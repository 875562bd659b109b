package raftstore

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDecodeBanRequest(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     BanRequest
		err      string
	}{
		{"full", `{"prefix":"192.0.2.7","duration":"1h","reason":"scanner","force":true}`,
			BanRequest{Prefix: "192.0.2.7", Duration: "1h", Reason: "scanner", Force: true}, ""},
		{"prefix only", `{"prefix":"2001:db8::/48"}`, BanRequest{Prefix: "2001:db8::/48"}, ""},
		{"not JSON", `prefix=192.0.2.7`, BanRequest{}, "invalid character"},
		{"unknown field", `{"prefix":"192.0.2.7","until":"tomorrow"}`, BanRequest{}, `unknown field "until"`},
		{"wrong type", `{"prefix":"192.0.2.7","force":"yes"}`, BanRequest{}, "cannot unmarshal"},
		{"two objects", `{"prefix":"192.0.2.7"}{"prefix":"192.0.2.8"}`, BanRequest{}, "data after the object"},
		{"empty", ``, BanRequest{}, "EOF"},
		{"too large", `{"prefix":"` + strings.Repeat("1", MaxBanRequestBytes) + `"}`, BanRequest{}, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeBanRequest([]byte(tc.in))
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrBadBanRequest) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v; want ErrBadBanRequest with %q", err, tc.err)
			}
		})
	}
}

func TestBanRequestValidCommand(t *testing.T) {
	c, err := BanRequest{Prefix: "::ffff:192.0.2.9", Duration: "90m"}.ValidCommand("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Prefix != netip.MustParsePrefix("192.0.2.9/32") || c.Duration != 90*time.Minute || c.Reason != "operator" || c.Permanent {
		t.Errorf("command %+v", c)
	}
	if c, err := (BanRequest{Prefix: "192.0.2.9"}).ValidCommand(""); err != nil || !c.Permanent {
		t.Errorf("no duration: %+v, %v; want permanent", c, err)
	}
	for _, tc := range []struct {
		name string
		req  BanRequest
		err  string
	}{
		{"bad CIDR", BanRequest{Prefix: "192.0.2.0/33"}, "prefix length"},
		{"zero duration", BanRequest{Prefix: "192.0.2.9", Duration: "0s"}, "must be positive"},
		{"not a duration", BanRequest{Prefix: "192.0.2.9", Duration: "soon"}, "duration:"},
		{"too broad", BanRequest{Prefix: "10.0.0.0/8"}, "too broad"},
		{"bad reason", BanRequest{Prefix: "192.0.2.9", Reason: "Bad Reason"}, "reason:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.req.ValidCommand("use force")
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v; want %q", err, tc.err)
			}
			if errors.Is(err, ErrBroadPrefix) != strings.Contains(err.Error(), "(use force)") {
				t.Errorf("hint misplaced: %v", err)
			}
		})
	}
}
