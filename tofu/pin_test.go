package tofu

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPinKind(t *testing.T) {
	tests := []struct {
		name  string
		kind  PinKind
		str   string
		valid bool
	}{
		{"client", PinClient, "client", true},
		{"upstream", PinUpstream, "upstream", true},
		{"zero", 0, "pinkind(0)", false},
		{"out of range", 7, "pinkind(7)", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.kind.String(); got != tt.str {
				t.Fatalf("String() = %q, want %q", got, tt.str)
			}
			if got := tt.kind.Valid(); got != tt.valid {
				t.Fatalf("Valid() = %v, want %v", got, tt.valid)
			}
			k, err := ParsePinKind(strings.ToUpper(tt.str))
			if tt.valid != (err == nil) || (tt.valid && k != tt.kind) {
				t.Fatalf("ParsePinKind(%q) = %v, %v", strings.ToUpper(tt.str), k, err)
			}
		})
	}
}

func TestPinKeyString(t *testing.T) {
	tests := []struct {
		name string
		key  PinKey
		want string
	}{
		{"client", PinKey{PinClient, "example.org/app/"}, "client example.org/app/"},
		{"upstream", PinKey{PinUpstream, "backend:1965"}, "upstream backend:1965"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.key.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPinValidate(t *testing.T) {
	key := PinKey{PinClient, "example.org/app/"}
	good := testPin(key, 1)
	tests := []struct {
		name   string
		mutate func(p *Pin)
		ok     bool
	}{
		{"valid", func(*Pin) {}, true},
		{"zero times", func(p *Pin) { p.Created, p.NotAfter = time.Time{}, time.Time{} }, true},
		{"longest scope", func(p *Pin) { p.Key.Scope = strings.Repeat("a", MaxScopeLen) }, true},
		{"zero kind", func(p *Pin) { p.Key.Kind = 0 }, false},
		{"bad kind", func(p *Pin) { p.Key.Kind = 3 }, false},
		{"empty scope", func(p *Pin) { p.Key.Scope = "" }, false},
		{"scope too long", func(p *Pin) { p.Key.Scope = strings.Repeat("a", MaxScopeLen+1) }, false},
		{"zero identity", func(p *Pin) { p.Identity = Identity{} }, false},
		{"year 10000", func(p *Pin) { p.NotAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, false},
		{"negative year", func(p *Pin) { p.Created = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.mutate(&p)
			err := p.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidPin) {
				t.Fatalf("error %v does not wrap ErrInvalidPin", err)
			}
		})
	}
}

func TestPinEqual(t *testing.T) {
	key := PinKey{PinClient, "example.org/app/"}
	p := testPin(key, 1)
	tests := []struct {
		name string
		q    func() Pin
		want bool
	}{
		{"same", func() Pin { return p }, true},
		{"other location", func() Pin {
			q := p
			q.Created = q.Created.In(time.FixedZone("x", 3600))
			return q
		}, true},
		{"other identity", func() Pin { q := p; q.Identity = testIdentity(2); return q }, false},
		{"other key", func() Pin { q := p; q.Key.Kind = PinUpstream; return q }, false},
		{"created off by 1ns", func() Pin { q := p; q.Created = q.Created.Add(1); return q }, false},
		{"not after off by 1ns", func() Pin { q := p; q.NotAfter = q.NotAfter.Add(1); return q }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Equal(tt.q()); got != tt.want {
				t.Fatalf("Equal = %v, want %v", got, tt.want)
			}
		})
	}
}
