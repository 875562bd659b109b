package gateway

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// stuckPins is a pin store whose Claim never completes: it blocks until its
// context ends, as the Raft store does while the cluster has no leader.
type stuckPins struct{ claims chan struct{} }

func (stuckPins) Lookup(tofu.PinKey) (tofu.Pin, bool) { return tofu.Pin{}, false }

func (s stuckPins) Claim(ctx context.Context, _ tofu.Pin) (tofu.Pin, error) {
	s.claims <- struct{}{}
	<-ctx.Done()
	return tofu.Pin{}, ctx.Err()
}

// TestClaimThatCannotCompleteAnswers41 checks that a TOFU claim the pin
// store cannot complete ends at the decide deadline with 41, that the cause
// is logged with the client by hash only, and that the server is not stuck:
// it serves the next request and closes at once.
func TestClaimThatCannotCompleteAnswers41(t *testing.T) {
	var logs syncBuffer
	pins := stuckPins{claims: make(chan struct{}, 1)}
	ts := startServer(t, func(c *Config) {
		c.Layers.Pins = pins
		c.Limits.DecideTimeout = 50 * time.Millisecond
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		c.Hasher = hashFunc(func(netip.Addr) string { return "h:client" })
	})
	alice, _, _ := genPair(t, "alice", time.Now(), 30)
	c := client{sni: "localhost", cert: &alice}
	r := mustDo(t, c, ts.addr, "gemini://localhost/app/\r\n")
	if r.status != 41 || r.meta != "temporarily unavailable" {
		t.Fatalf("got %d %q, want 41 temporarily unavailable", r.status, r.meta)
	}
	<-pins.claims
	waitFor(t, "the failed claim to be logged", func() bool { return strings.Contains(logs.String(), `"msg":"tofu claim"`) })
	out := logs.String()
	if !strings.Contains(out, `"level":"ERROR"`) || !strings.Contains(out, "context deadline exceeded") || !strings.Contains(out, `"client":"h:client"`) {
		t.Fatalf("claim failure not logged as wanted:\n%s", out)
	}
	if strings.Contains(out, "127.0.0.1") {
		t.Fatalf("a raw client address reached the log:\n%s", out)
	}
	if r := mustDo(t, client{sni: "localhost"}, ts.addr, "gemini://localhost/\r\n"); r.status != 20 {
		t.Fatalf("next request: %d, want 20", r.status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}
