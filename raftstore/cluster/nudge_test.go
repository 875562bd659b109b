package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// With a CommitTimeout far longer than the wait below, followers learn of
// a commit only through the nudge. Concurrent writes must each be nudged:
// a write that commits while another write's barrier is in flight is
// covered by a further barrier, not left to the idle append.
func TestClusterConcurrentWritesAreAllNudged(t *testing.T) {
	c := newTestClusterWith(t, func(cfg *Config) { cfg.Timing.CommitTimeout = time.Minute }, nil, "n1", "n2", "n3")
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for round := range 10 {
		var wg sync.WaitGroup
		var last []string
		for w := range 4 {
			last = append(last, fmt.Sprintf("10.%d.%d.9", round, w))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					if _, err := l.Apply(ctx, banCmd(fmt.Sprintf("10.%d.%d.%d/32", round, w, i))); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		waitFor(t, 10*time.Second, "every node to enforce every ban of the round", func() bool {
			for _, a := range last {
				for _, n := range c.nodes {
					if !n.Banned(netip.MustParseAddr(a), time.Now()) {
						return false
					}
				}
			}
			return true
		})
	}
}
