package ratelimit

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error, empty for valid
	}{
		{name: "default", modify: func(*Config) {}},
		{name: "nil now is fine", modify: func(c *Config) { c.Now = nil }},
		{name: "smallest", modify: func(c *Config) {
			c.Capacity, c.RefillPerSec, c.HardFactor, c.IPv4Prefix, c.IPv6Prefix, c.MaxKeys = 1, 1e-9, 1, 1, 1, 1
		}},
		{name: "zero capacity", modify: func(c *Config) { c.Capacity = 0 }, want: []string{"capacity: must be >= 1"}},
		{name: "fractional capacity below one", modify: func(c *Config) { c.Capacity = 0.5 }, want: []string{"capacity: "}},
		{name: "NaN capacity", modify: func(c *Config) { c.Capacity = math.NaN() }, want: []string{"capacity: "}},
		{name: "infinite capacity", modify: func(c *Config) { c.Capacity = math.Inf(1) }, want: []string{"capacity: "}},
		{name: "zero refill", modify: func(c *Config) { c.RefillPerSec = 0 }, want: []string{"refill_per_sec: must be > 0"}},
		{name: "negative refill", modify: func(c *Config) { c.RefillPerSec = -1 }, want: []string{"refill_per_sec: "}},
		{name: "hard factor below one", modify: func(c *Config) { c.HardFactor = 0.5 }, want: []string{"hard_factor: must be >= 1"}},
		{name: "hard factor overflow", modify: func(c *Config) { c.Capacity, c.HardFactor = 1e300, 1e300 }, want: []string{"hard_factor: capacity*hard_factor overflows"}},
		{name: "ipv4 prefix zero", modify: func(c *Config) { c.IPv4Prefix = 0 }, want: []string{"ipv4_prefix: must be in 1..32"}},
		{name: "ipv4 prefix 33", modify: func(c *Config) { c.IPv4Prefix = 33 }, want: []string{"ipv4_prefix: "}},
		{name: "ipv6 prefix 129", modify: func(c *Config) { c.IPv6Prefix = 129 }, want: []string{"ipv6_prefix: must be in 1..128"}},
		{name: "max keys zero", modify: func(c *Config) { c.MaxKeys = 0 }, want: []string{"max_keys: must be in 1.."}},
		{name: "max keys too many", modify: func(c *Config) { c.MaxKeys = maxMaxKeys; c.MaxKeys++ }, want: []string{"max_keys: "}},
		{name: "all reported", modify: func(c *Config) { *c = Config{} }, want: []string{
			"capacity: ", "refill_per_sec: ", "hard_factor: ", "ipv4_prefix: ", "ipv6_prefix: ", "max_keys: ",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			_, newErr := New(cfg)
			if len(tc.want) == 0 {
				if err != nil || newErr != nil {
					t.Fatalf("Validate() = %v, New() error = %v, want nil", err, newErr)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("errors.Is(%v, ErrInvalidConfig) = false", err)
			}
			if !errors.Is(newErr, ErrInvalidConfig) {
				t.Errorf("New() error %v does not match ErrInvalidConfig", newErr)
			}
		})
	}
}

func TestShardCount(t *testing.T) {
	tests := []struct{ maxKeys, want int }{
		{1, 1}, {8, 1}, {127, 1}, {128, 2}, {5000, 64}, {1 << 14, 256}, {1 << 20, 256},
	}
	for _, tc := range tests {
		if got := shardCount(tc.maxKeys); got != tc.want {
			t.Errorf("shardCount(%d) = %d, want %d", tc.maxKeys, got, tc.want)
		}
		cfg := DefaultConfig()
		cfg.MaxKeys = tc.maxKeys
		l, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0
		for i := range l.shards {
			sum += l.shards[i].limit
		}
		if sum != tc.maxKeys {
			t.Errorf("MaxKeys %d: shard limits sum to %d", tc.maxKeys, sum)
		}
	}
}
