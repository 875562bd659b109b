package tofu

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestMemStore(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	a := PinKey{PinUpstream, "b:1965"}
	b := PinKey{PinClient, "z.org/"}
	c := PinKey{PinClient, "a.org/"}

	if _, ok := s.Lookup(a); ok {
		t.Fatal("empty store has a pin")
	}
	for i, k := range []PinKey{a, b, c} {
		p := testPin(k, i)
		got, err := s.Claim(ctx, p)
		if err != nil || !got.Equal(p) {
			t.Fatalf("Claim(%v) = %v, %v; want the pin", k, got, err)
		}
	}
	// A second claim on a pinned key returns the first pin, not its own.
	got, err := s.Claim(ctx, testPin(a, 7))
	if err != nil || !got.Equal(testPin(a, 0)) {
		t.Fatalf("second Claim = %v, %v; want the first pin", got, err)
	}
	var keys []PinKey
	for _, p := range s.All() {
		keys = append(keys, p.Key)
	}
	if want := []PinKey{c, b, a}; !slices.Equal(keys, want) {
		t.Fatalf("All keys = %v, want %v", keys, want)
	}
	if !s.Forget(a) {
		t.Fatal("Forget of a pinned key = false")
	}
	if s.Forget(a) {
		t.Fatal("Forget of a forgotten key = true")
	}
	if _, ok := s.Lookup(a); ok {
		t.Fatal("forgotten pin still in force")
	}
	// After Forget, the next identity claims the key afresh.
	if got, _ := s.Claim(ctx, testPin(a, 8)); !got.Equal(testPin(a, 8)) {
		t.Fatalf("Claim after Forget = %v, want the new pin", got)
	}
}

func TestMemStoreClaimErrors(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	key := PinKey{PinClient, "a/"}
	tests := []struct {
		name string
		ctx  context.Context
		pin  Pin
		want error
	}{
		{"canceled", canceled, testPin(key, 1), context.Canceled},
		{"invalid pin", context.Background(), Pin{Key: key}, ErrInvalidPin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewMemStore()
			if _, err := s.Claim(tt.ctx, tt.pin); !errors.Is(err, tt.want) {
				t.Fatalf("Claim error = %v, want %v", err, tt.want)
			}
			if s.Len() != 0 {
				t.Fatal("a failed claim left a pin")
			}
		})
	}
}

func TestMemStoreLookupDoesNotAllocate(t *testing.T) {
	s := NewMemStore()
	key := PinKey{PinClient, "example.org/app/"}
	if _, err := s.Claim(context.Background(), testPin(key, 1)); err != nil {
		t.Fatal(err)
	}
	// A key built at run time, as the gateway builds it per request.
	probe := PinKey{PinClient, string([]byte(key.Scope))}
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := s.Lookup(probe); !ok {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("Lookup allocates %v times per hit", allocs)
	}
}

func BenchmarkMemStoreLookup(b *testing.B) {
	s := NewMemStore()
	for i := range 1000 {
		k := PinKey{PinClient, "example.org/app" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "/"}
		if _, err := s.Claim(context.Background(), testPin(k, i)); err != nil {
			b.Fatal(err)
		}
	}
	key := PinKey{PinClient, "example.org/appaa/"}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Lookup(key); !ok {
			b.Fatal("miss")
		}
	}
}
