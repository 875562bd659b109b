package cluster

import (
	"context"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chimalli/chimalli/raftstore"
)

// TestCloseWithWritesInFlightReturns closes a leader while many writes
// are in flight, several times. Raft can leave a command it queued at
// shutdown unanswered forever (hashicorp/raft#498; the buffered apply
// channel makes it likely): Close and every Apply must return anyway.
func TestCloseWithWritesInFlightReturns(t *testing.T) {
	dir := t.TempDir()
	for round := range 5 {
		cfg := Config{ID: "solo", Dir: filepath.Join(dir, "solo"), BootstrapExpect: 1, Timing: testTiming(),
			AutoBan: raftstore.DefaultAutoBanPolicy(), Logger: testLogger(t, "solo")}
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := n.Open(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the node to lead", n.IsLeader)
		var wg sync.WaitGroup
		applied := make(chan struct{}, 1)
		for w := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(round), byte(w), byte(i)}), 32)
					if _, err := n.Apply(ctx, raftstore.Command{Op: raftstore.OpBanAdd, Prefix: p, Permanent: true, Reason: "load"}); err != nil {
						return // closed (or the test's deadline): either way it returned
					}
					select {
					case applied <- struct{}{}:
					default:
					}
				}
			}()
		}
		<-applied // writes are flowing
		closed := make(chan error, 1)
		go func() { closed <- n.Close() }()
		returned := make(chan struct{})
		go func() {
			wg.Wait()
			close(returned)
		}()
		for what, ch := range map[string]<-chan struct{}{"Close": chanOf(closed), "every Apply": returned} {
			select {
			case <-ch:
			case <-time.After(30 * time.Second):
				cancel()
				t.Fatalf("round %d: %s did not return after the leader closed with writes in flight", round, what)
			}
		}
		cancel()
	}
}

// chanOf returns a channel closed once ch yields a value.
func chanOf[T any](ch <-chan T) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		<-ch
		close(done)
	}()
	return done
}
