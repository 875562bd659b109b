package raftstore

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ops/testlog"
	"github.com/chimalli/chimalli/ratelimit"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func openBans(t *testing.T, cfg BansConfig) (*Bans, *clock) {
	t.Helper()
	clk := &clock{t: t0}
	cfg.Now = clk.Now
	if cfg.Logger == nil {
		cfg.Logger = testlog.New(t)
	}
	if cfg.AutoBan == (AutoBanPolicy{}) {
		cfg.AutoBan = DefaultAutoBanPolicy()
	}
	b, err := NewBans(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.Open()
	t.Cleanup(func() { b.Close() })
	return b, clk
}

// barrier returns once every command queued before it has been applied:
// the store applies commands in order.
func barrier(t *testing.T, b *Bans) {
	t.Helper()
	if err := b.Lift(context.Background(), netip.MustParsePrefix("0.0.0.0/32")); err != nil {
		t.Fatalf("barrier: %v", err)
	}
}

func hard(violations uint32) ratelimit.Result {
	return ratelimit.Result{Verdict: ratelimit.Hard, Violations: violations}
}

func TestBansAutoBan(t *testing.T) {
	b, clk := openBans(t, BansConfig{})
	a := netip.MustParseAddr("192.0.2.7")
	thr := DefaultAutoBanPolicy().Threshold

	b.ReportAbuse(a, hard(thr-1))
	b.ReportAbuse(a, ratelimit.Result{Verdict: ratelimit.Soft, Violations: thr + 5})
	barrier(t, b)
	if b.Banned(a, clk.Now()) {
		t.Fatal("banned below the threshold or on a soft verdict")
	}

	b.ReportAbuse(a, hard(thr))
	b.ReportAbuse(a, hard(thr+1)) // raced the view: must not add a strike
	barrier(t, b)
	if !b.Banned(a, clk.Now()) {
		t.Fatal("not banned at the threshold")
	}
	if !b.Banned(netip.MustParseAddr("::ffff:192.0.2.7"), clk.Now()) {
		t.Fatal("a v4-mapped address of a banned client passes")
	}
	bans := b.View().Bans()
	if len(bans) != 1 || bans[0].Strikes != 1 || bans[0].Source != "auto" || !bans[0].Until.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("bans = %+v, want one first-strike 10m auto-ban", bans)
	}
	if b.Banned(a, t0.Add(10*time.Minute)) {
		t.Fatal("still banned after the ban's end")
	}

	// Back and abusive again after the ban: twice as long.
	clk.Set(t0.Add(time.Hour))
	b.ReportAbuse(a, hard(thr))
	barrier(t, b)
	bans = b.View().Bans()
	if len(bans) != 1 || bans[0].Strikes != 2 || !bans[0].Until.Equal(t0.Add(time.Hour+20*time.Minute)) {
		t.Fatalf("bans = %+v, want a second-strike 20m ban", bans)
	}
}

func TestBansIPv6CoversThePrefix(t *testing.T) {
	b, clk := openBans(t, BansConfig{})
	b.ReportAbuse(netip.MustParseAddr("2001:db8:1:2::1"), hard(1000))
	barrier(t, b)
	if !b.Banned(netip.MustParseAddr("2001:db8:1:2:ffff::9"), clk.Now()) {
		t.Fatal("another address of the banned /64 passes")
	}
	if b.Banned(netip.MustParseAddr("2001:db8:1:3::1"), clk.Now()) {
		t.Fatal("the next /64 is banned")
	}
}

func TestBansDisabled(t *testing.T) {
	p := DefaultAutoBanPolicy()
	p.Threshold = 0
	b, clk := openBans(t, BansConfig{AutoBan: p})
	a := netip.MustParseAddr("192.0.2.7")
	b.ReportAbuse(a, hard(1<<20))
	barrier(t, b)
	if b.Banned(a, clk.Now()) {
		t.Fatal("banned with auto-bans disabled")
	}
}

func TestBansOperatorAddLift(t *testing.T) {
	b, clk := openBans(t, BansConfig{})
	ctx := context.Background()
	p := netip.MustParsePrefix("198.51.100.0/24")
	in := netip.MustParseAddr("198.51.100.9")

	if err := b.Add(ctx, BanCommand{Prefix: p, Permanent: true, Reason: "operator"}); err != nil {
		t.Fatal(err)
	}
	if !b.Banned(in, clk.Now().Add(1000*time.Hour)) {
		t.Fatal("a ban without duration must hold until lifted")
	}
	if err := b.Lift(ctx, p); err != nil {
		t.Fatal(err)
	}
	if b.Banned(in, clk.Now()) {
		t.Fatal("lifted ban still holds")
	}
	if err := b.Add(ctx, BanCommand{Prefix: p, Duration: time.Minute, Reason: "operator"}); err != nil {
		t.Fatal(err)
	}
	if !b.Banned(in, clk.Now()) || b.Banned(in, clk.Now().Add(time.Minute)) {
		t.Fatal("a 1m ban must hold for a minute, then end")
	}
	err := b.Add(ctx, BanCommand{Prefix: p, Duration: time.Minute, Reason: "Bad Reason"})
	if !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("Add with an invalid reason = %v, want ErrInvalidCommand", err)
	}
}

func TestBansReportNeverBlocks(t *testing.T) {
	b, err := NewBans(BansConfig{AutoBan: DefaultAutoBanPolicy(), Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Not opened: nothing consumes the queue.
	for i := range 10 {
		b.ReportAbuse(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), hard(1000))
	}
	if got := b.Dropped(); got != 8 {
		t.Fatalf("Dropped = %d, want 8 (queue of 2, 10 reports)", got)
	}
	b.Close()
	ctx := context.Background()
	if err := b.Add(ctx, BanCommand{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Permanent: true, Reason: "operator"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close = %v, want ErrClosed", err)
	}
	b.ReportAbuse(netip.MustParseAddr("192.0.2.200"), hard(1000)) // must not block or panic
}

func TestBansAddHonoursContext(t *testing.T) {
	b, err := NewBans(BansConfig{AutoBan: DefaultAutoBanPolicy(), Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Not opened: the command is queued but never applied.
	if err := b.Add(ctx, BanCommand{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Permanent: true, Reason: "operator"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add = %v, want context.Canceled", err)
	}
}

func TestNewBansRejectsBadPolicy(t *testing.T) {
	p := DefaultAutoBanPolicy()
	p.Escalate = 0
	if _, err := NewBans(BansConfig{AutoBan: p}); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("NewBans = %v, want ErrInvalidPolicy", err)
	}
}
