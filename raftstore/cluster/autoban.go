package cluster

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/ratelimit"
)

// autoBanWorkers is how many auto-bans a node commits at once. Raft
// batches concurrent proposals, so a storm of distinct abusers commits in
// batches rather than one round trip each.
const autoBanWorkers = 16

// autoBanQueue bounds the auto-bans waiting to be committed; a report that
// finds it full is dropped (the client is reported again at its next
// refused connection, and this node enforces it meanwhile).
const autoBanQueue = 4096

// pendingBans are the auto-bans this node enforces before they commit:
// the node that saw the abuse refuses the client at once, and every node
// once the ban commits. An immutable map behind an atomic pointer: the
// accept path reads it without a lock (nil when empty, the usual case).
type pendingBans struct {
	mu   sync.Mutex
	view atomic.Pointer[map[netip.Prefix]time.Time] // prefix → local expiry
	v4   atomic.Pointer[[]int]
	v6   atomic.Pointer[[]int]
}

// banned reports whether addr is inside a pending ban at now.
func (p *pendingBans) banned(addr netip.Addr, now time.Time) bool {
	m := p.view.Load()
	if m == nil {
		return false
	}
	addr = addr.Unmap()
	lens := p.v6.Load()
	if addr.Is4() {
		lens = p.v4.Load()
	}
	for _, l := range *lens {
		pfx, err := addr.Prefix(l)
		if err != nil {
			continue
		}
		if until, ok := (*m)[pfx]; ok && now.Before(until) {
			return true
		}
	}
	return false
}

// add records pfx until until; it reports false when pfx is pending
// already at now.
func (p *pendingBans) add(pfx netip.Prefix, until, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.view.Load()
	if old != nil {
		if u, ok := (*old)[pfx]; ok && now.Before(u) {
			return false
		}
	}
	p.replace(now, func(m map[netip.Prefix]time.Time) { m[pfx] = until })
	return true
}

// remove forgets pfx (its ban committed, or its local expiry passed).
func (p *pendingBans) remove(pfx netip.Prefix, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replace(now, func(m map[netip.Prefix]time.Time) { delete(m, pfx) })
}

// replace publishes a copy of the map changed by fn, dropping the entries
// expired at now. Called with mu held.
func (p *pendingBans) replace(now time.Time, fn func(map[netip.Prefix]time.Time)) {
	m := map[netip.Prefix]time.Time{}
	if old := p.view.Load(); old != nil {
		for k, v := range *old {
			if now.Before(v) {
				m[k] = v
			}
		}
	}
	fn(m)
	if len(m) == 0 {
		p.view.Store(nil)
		return
	}
	var v4, v6 []int
	for k := range m {
		if k.Addr().Is4() {
			v4 = appendUnique(v4, k.Bits())
		} else {
			v6 = appendUnique(v6, k.Bits())
		}
	}
	p.v4.Store(&v4)
	p.v6.Store(&v6)
	p.view.Store(&m)
}

func appendUnique(s []int, v int) []int {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// ReportAbuse receives a connection the hard rate limit refused. Past the
// auto-ban policy's threshold it bans the client's prefix: at once on this
// node, and cluster-wide once the ban commits (a ban.added with source
// auto). A flood from one client proposes one ban: a prefix already banned
// or pending is not proposed again, and the fold drops an auto-ban of a
// prefix another node banned first. It never blocks: it runs on the
// accept loop. It implements gateway.AbuseReporter.
func (n *Node) ReportAbuse(addr netip.Addr, res ratelimit.Result) {
	p := n.cfg.AutoBan
	if !p.Enabled() || res.Verdict != ratelimit.Hard || res.Violations < p.Threshold {
		return
	}
	pfx := p.PrefixOf(addr)
	now := n.now()
	if !pfx.IsValid() || n.views.bans.Load().Banned(addr, now) {
		return
	}
	if !n.pending.add(pfx, now.Add(p.Duration), now) {
		return
	}
	select {
	case n.autoQ <- pfx:
	default:
		n.autoDropped.Add(1) // still enforced here until its local expiry
	}
}

// AutoBansDropped returns how many auto-bans were enforced only locally
// because the queue to commit them was full.
func (n *Node) AutoBansDropped() uint64 { return n.autoDropped.Load() }

// autoBanLoop commits queued auto-bans until the node closes.
func (n *Node) autoBanLoop() {
	defer n.wg.Done()
	for {
		select {
		case pfx := <-n.autoQ:
			ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timing.ApplyTimeout)
			_, err := n.Apply(ctx, raftstore.Command{Op: raftstore.OpBanAuto, Prefix: pfx})
			cancel()
			if err != nil {
				// No majority (or closing): this node keeps enforcing the
				// ban locally until its local expiry; a later refusal of
				// the same client reports it again.
				n.log.Warn("auto-ban not committed; enforced on this node only", "prefix_bits", pfx.Bits(), "err", err)
				continue
			}
			n.pending.remove(pfx, n.now()) // the committed ban is in the view now
		case <-n.done:
			return
		}
	}
}
