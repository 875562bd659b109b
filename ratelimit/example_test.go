package ratelimit_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/chimalli/chimalli/ratelimit"
)

func Example() {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := ratelimit.DefaultConfig()
	cfg.Now = func() time.Time { return now }
	l, err := ratelimit.New(cfg)
	if err != nil {
		panic(err)
	}
	client := netip.MustParseAddr("2001:db8:1:2::7")
	for i := 1; i <= 32; i++ {
		r := l.Allow(client)
		if i == 10 || i == 11 || i == 30 || i == 31 {
			fmt.Printf("request %d: %s, retry in %d s, %d violations\n", i, r.Verdict, r.RetryAfterSeconds(), r.Violations)
		}
	}
	now = now.Add(40 * time.Second) // quiet long enough to refill fully
	fmt.Println("after 40 s:", l.Allow(netip.MustParseAddr("2001:db8:1:2::8")).Verdict, "(same /64)")
	// Output:
	// request 10: allow, retry in 0 s, 0 violations
	// request 11: soft, retry in 2 s, 1 violations
	// request 30: soft, retry in 21 s, 20 violations
	// request 31: hard, retry in 22 s, 21 violations
	// after 40 s: allow (same /64)
}
