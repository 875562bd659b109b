package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Errors of the node's API. Each is wrapped with detail.
var (
	// ErrNoLeader: the cluster has no leader this node can reach (an
	// election, or this node is cut off from the majority). Writes wait for
	// one until their context ends; then they fail with this error.
	ErrNoLeader = errors.New("no cluster leader")
	// ErrClosed: the node is closed.
	ErrClosed = errors.New("cluster node closed")
	// ErrFailed: the node stopped applying entries (see Config.Fatal).
	ErrFailed = errors.New("cluster node failed")
)

// aloneTimeout is Raft's timeouts for a node with no cluster port.
const aloneTimeout = 50 * time.Millisecond

// Node is one member of the cluster: Raft with its log, snapshots and
// transport, the FSM over raftstore.State, the views the gateway reads,
// and the forwarding of commands to the leader. Lifecycle: New, Open,
// Close.
type Node struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	views *views
	fsm   *fsm

	raft      *raft.Raft
	store     *raftboltdb.BoltStore
	transport raft.Transport
	stream    *streamLayer // Raft's connections on the cluster port; nil without one
	mux       *Mux
	fwd       *forwarder

	fatalOnce sync.Once
	fatalErr  atomic.Pointer[error]
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	// wrapConn, when set (by tests, before Open), wraps every TCP
	// connection of the cluster port, accepted or dialled: fault injection.
	wrapConn func(net.Conn) net.Conn

	nudges   atomic.Int64 // nudges asked for and not yet served by a barrier
	noNudges bool         // tests and benchmarks: commit without nudging (set before Open)

	leaders leaderWatch // changes of the leader this node knows of (with a cluster port)

	pending     pendingBans
	autoQ       chan netip.Prefix
	autoDropped atomic.Uint64
	fresh       bool // Open found no Raft state: a new cluster or a joining node
}

// New returns an unopened node.
func New(cfg Config) (*Node, error) {
	if cfg.Timing == (Timing{}) {
		cfg.Timing = LANTiming()
	}
	if cfg.Listen == "" {
		// Alone, over no network, there is no one to contend with and no
		// pause to ride out: elect at once instead of after a LAN timeout.
		cfg.Timing.HeartbeatTimeout = min(cfg.Timing.HeartbeatTimeout, aloneTimeout)
		cfg.Timing.ElectionTimeout = min(cfg.Timing.ElectionTimeout, aloneTimeout)
		cfg.Timing.LeaderLeaseTimeout = min(cfg.Timing.LeaderLeaseTimeout, aloneTimeout)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, now: cfg.Now, views: &views{onLift: cfg.OnLift, onRules: cfg.OnRules},
		done: make(chan struct{}), autoQ: make(chan netip.Prefix, autoBanQueue)}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.now == nil {
		n.now = time.Now
	}
	n.fsm = newFSM(n.views, n.fail)
	return n, nil
}

func (n *Node) fail(err error) {
	n.fatalOnce.Do(func() {
		n.fatalErr.Store(&err)
		n.log.Error("cluster state stopped", "err", err)
		if n.cfg.Fatal != nil {
			go n.cfg.Fatal(err)
		}
	})
}

// Open starts Raft: it opens the log in Dir, listens on the cluster port,
// and bootstraps or joins as Config says. It returns once Raft runs; the
// node may not have a leader yet (WaitLeader).
func (n *Node) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := os.MkdirAll(n.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	rcfg := n.raftConfig()
	n.store, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(n.cfg.Dir, "raft.db")})
	if err != nil {
		return fmt.Errorf("cluster: log store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.cfg.Dir, 2, rcfg.Logger.Named("snapshot"))
	if err != nil {
		return fmt.Errorf("cluster: snapshot store: %w", err)
	}
	if _, err := n.fsm.loadLocal(snaps, n.store); err != nil {
		return fmt.Errorf("cluster: local state: %w", err)
	}
	var self raft.ServerAddress
	if n.cfg.Listen == "" {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress("local:" + n.cfg.ID))
		n.transport, self = tr, addr
	} else {
		bind := n.cfg.Bind
		if bind == nil {
			bind = func(_ context.Context, addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
		}
		ln, err := bind(ctx, n.cfg.Listen)
		if err != nil {
			return fmt.Errorf("cluster: listen: %w", err)
		}
		if n.wrapConn != nil {
			ln = wrappedListener{ln, n.wrapConn}
		}
		n.mux, err = NewMux(ln, n.cfg.ServerTLS, n.log, ProtoRaft, ProtoForward)
		if err != nil {
			ln.Close()
			return fmt.Errorf("cluster: %w", err)
		}
		adv, err := n.advertiseAddr(ln.Addr())
		if err != nil {
			return err
		}
		n.stream = newStreamLayer(n.mux.Listener(ProtoRaft), adv, newDialer(n.cfg.ClientTLS, ProtoRaft, n.wrapConn))
		n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: n.stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: rcfg.Logger.Named("transport"),
		})
		self = raft.ServerAddress(adv.String())
		n.fwd = newForwarder(n)
		n.mux.Serve()
	}
	n.raft, err = raft.NewRaft(rcfg, n.fsm, monotonicStore{n.store}, n.store, snaps, n.transport)
	if err != nil {
		return fmt.Errorf("cluster: raft: %w", err)
	}
	if n.fwd != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.watchLeader()
		}()
		// Forwarded requests read n.raft: answer them only now (a peer
		// that still takes a restarting node for the leader forwards to
		// it at once; until here its connections wait in the mux).
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.fwd.serve(n.mux.Listener(ProtoForward))
		}()
	}
	for range autoBanWorkers {
		n.wg.Add(1)
		go n.autoBanLoop()
	}
	if rots := n.rotations(); len(rots) > 0 {
		n.wg.Add(1)
		go n.rotateLoop(rots)
	}
	has, err := raft.HasExistingState(n.store, n.store, snaps)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if has {
		return nil
	}
	n.fresh = true
	switch {
	case n.cfg.BootstrapExpect == 1 && len(n.cfg.Peers) <= 1:
		return n.bootstrap([]raft.Server{{ID: raft.ServerID(n.cfg.ID), Address: self, Suffrage: raft.Voter}})
	case n.cfg.BootstrapExpect > 1:
		var servers []raft.Server
		for _, p := range n.cfg.Peers {
			addr := raft.ServerAddress(p.Addr)
			if p.ID == n.cfg.ID {
				addr = self
			}
			servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: addr, Suffrage: raft.Voter})
		}
		return n.bootstrap(servers)
	default:
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.joinLoop(string(self))
		}()
	}
	return nil
}

// monotonicStore is the log store as Raft sees it: declared monotonic,
// so that after installing a snapshot (a restored backup on the leader,
// any snapshot sent to a follower) Raft removes the whole older log instead
// of leaving the entries before the snapshot and a gap in the indexes
// after them. A gap would stop the readers of the committed log
// (ReadCommitted, which the state-event publisher calls) at the missing
// index; with the old log gone they see the entries as compacted, which
// they handle.
type monotonicStore struct{ *raftboltdb.BoltStore }

func (monotonicStore) IsMonotonic() bool { return true }

func (n *Node) bootstrap(servers []raft.Server) error {
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	return nil
}

func (n *Node) advertiseAddr(bound net.Addr) (net.Addr, error) {
	s := n.cfg.Advertise
	if s == "" {
		s = bound.String()
	}
	addr, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		return nil, fmt.Errorf("cluster: advertise: %w", err)
	}
	if addr.IP == nil || addr.IP.IsUnspecified() {
		return nil, fmt.Errorf("cluster: advertise: %q is not an address other nodes can reach: set cluster.advertise", s)
	}
	return addrString(s), nil
}

// addrString is a net.Addr that keeps the advertised spelling (a host
// name stays a host name, so a peer's certificate is checked against it).
type addrString string

func (a addrString) Network() string { return "tcp" }
func (a addrString) String() string  { return string(a) }

func (n *Node) raftConfig() *raft.Config {
	t := n.cfg.Timing
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(n.cfg.ID)
	c.HeartbeatTimeout = t.HeartbeatTimeout
	c.ElectionTimeout = t.ElectionTimeout
	c.LeaderLeaseTimeout = t.LeaderLeaseTimeout
	c.CommitTimeout = t.CommitTimeout
	if t.SnapshotInterval > 0 {
		c.SnapshotInterval = t.SnapshotInterval
	}
	if t.SnapshotThreshold > 0 {
		c.SnapshotThreshold = t.SnapshotThreshold
	}
	if t.TrailingLogs > 0 {
		c.TrailingLogs = t.TrailingLogs
	}
	c.BatchApplyCh = true
	c.MaxAppendEntries = 512
	c.Logger = hclog.New(&hclog.LoggerOptions{
		Name:       "raft",
		Level:      hclogLevel(n.log),
		Output:     slogWriter{n.log},
		JSONFormat: false,
	})
	return c
}

// Close stops the node: Raft shuts down (a leader does not hand over
// leadership first; the others elect a new one), the cluster port closes
// and the log is closed. It returns promptly even when a peer vanished
// without closing its connections (shutdownRaft). It is idempotent.
func (n *Node) Close() error {
	var errs []error
	n.closeOnce.Do(func() {
		close(n.done)
		if n.raft != nil {
			errs = append(errs, n.shutdownRaft())
		} else if n.stream != nil { // Open failed before Raft started
			n.stream.cut()
		}
		if n.mux != nil {
			errs = append(errs, n.mux.Close())
		}
		if c, ok := n.transport.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
		if n.fwd != nil {
			n.fwd.close()
		}
		n.wg.Wait()
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
	})
	return errors.Join(errs...)
}

// shutdownRaft shuts Raft down and waits for it. Raft waits for its
// goroutines, among them the replication to each peer (on a leader) and
// the vote requests (on a candidate); an RPC or dial of theirs to a peer
// that vanished without closing its connections (a SIGKILLed container, a
// blackholed host) gives up only after the transport's timeout, 10 s:
// about as long as a supervisor waits for a stopping node before killing
// it. Raft sends nothing at shutdown that a peer needs (no hand-over, no
// last append), so once a heartbeat timeout has passed, by when a live
// peer has answered what was in flight, Raft's connections on the cluster
// port are cut and those calls fail at once. Once Raft is down the rest
// are cut too: the accepted ones would otherwise wait on their peers.
func (n *Node) shutdownRaft() error {
	f := n.raft.Shutdown()
	if n.stream == nil {
		return f.Error()
	}
	defer n.stream.cut()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	t := time.NewTimer(n.cfg.Timing.HeartbeatTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	}
	n.log.Info("cluster: a peer has not answered since shutdown began; cutting Raft's connections")
	n.stream.cut()
	return <-done
}

// Fresh reports whether Open found no Raft state in Dir: the node started a
// new cluster or is joining one (so node-local state, such as old pin
// files, may be imported once).
func (n *Node) Fresh() bool { return n.fresh }

// Addr returns the address of the cluster port, or "" with none.
func (n *Node) Addr() string {
	if n.mux == nil {
		return ""
	}
	return n.mux.Addr().String()
}

// ID returns this node's id.
func (n *Node) ID() string { return n.cfg.ID }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft != nil && n.raft.State() == raft.Leader }

// Leader returns the leader's id and address, empty when there is none.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// WaitLeader waits until the cluster has a leader this node knows of.
func (n *Node) WaitLeader(ctx context.Context) error {
	obs, stop := n.observeLeader()
	defer stop()
	for {
		if id, _ := n.Leader(); id != "" {
			return nil
		}
		select {
		case <-obs:
		case <-time.After(50 * time.Millisecond): // observations can be missed before registration
		case <-ctx.Done():
			return fmt.Errorf("wait for a leader: %w: %w", ErrNoLeader, ctx.Err())
		case <-n.done:
			return ErrClosed
		}
	}
}

// Apply commits cmd through the leader and returns the result once the
// entry is committed and applied on the leader. On a follower the command
// is forwarded to the leader over the cluster port; when there is no
// leader, or it changes, Apply retries until ctx ends. A command without
// an idempotency key gets one first, so a retry applies once.
//
// An error wrapping raftstore.ErrRefused means the leader refused the
// command (nothing was committed); ErrNoLeader, ErrClosed and ctx's error
// leave the outcome unknown to the caller: the command may have committed.
func (n *Node) Apply(ctx context.Context, cmd raftstore.Command) (raftstore.Result, error) {
	if cmd.Key == "" {
		cmd.Key = raftstore.NewKey()
	}
	if cmd.Node == "" {
		cmd.Node = n.cfg.ID
	}
	res, err := onLeader(ctx, n,
		func() (raftstore.Result, error) { return n.applyLocal(ctx, cmd) },
		func(addr string) (raftstore.Result, error) { return n.fwd.apply(ctx, addr, cmd) })
	if err == nil {
		n.waitApplied(ctx, res.Index) // the caller then reads its own write here
		n.logApplied(cmd, res)
	}
	return res, err
}

// onLeader runs local on the leader, or remote with the leader's address
// on a follower that knows it, and retries (after backoff) while the
// leader is lost, changes or cannot be reached, until ctx ends. A node
// whose state stopped answers ErrFailed.
func onLeader[T any](ctx context.Context, n *Node, local func() (T, error), remote func(addr string) (T, error)) (T, error) {
	var zero T
	var lastErr error
	for attempt := 0; ; attempt++ {
		if errp := n.fatalErr.Load(); errp != nil {
			return zero, fmt.Errorf("%w: %w", ErrFailed, *errp)
		}
		var res T
		var err error
		if n.IsLeader() {
			res, err = local()
		} else if _, addr := n.Leader(); addr != "" && n.fwd != nil {
			res, err = remote(addr)
		} else {
			err = ErrNoLeader
		}
		if err == nil || !retryable(err) {
			return res, err
		}
		lastErr = err
		if err := n.backoff(ctx, attempt); err != nil {
			return zero, fmt.Errorf("%w (last: %w)", err, lastErr)
		}
	}
}

// logApplied logs a committed ban at warn, as the node that proposed it:
// one line per ban cluster-wide, naming the client by its keyed hash only.
func (n *Node) logApplied(cmd raftstore.Command, res raftstore.Result) {
	if res.Type != raftstore.TypeBanAdded || !res.Changed || !n.log.Enabled(context.Background(), slog.LevelWarn) {
		return
	}
	var ban raftstore.Ban
	n.fsm.read(func(st *raftstore.State) { ban, _ = st.Bans().Lookup(cmd.Prefix) })
	attrs := []slog.Attr{
		slog.String("source", ban.Source), slog.String("reason", ban.Reason), slog.Int("strikes", ban.Strikes),
		slog.Int("prefix_bits", ban.Prefix.Bits()), slog.Uint64("index", res.Index),
	}
	if n.cfg.Hasher != nil && ban.Prefix.IsValid() {
		attrs = append(attrs, slog.String("client", n.cfg.Hasher.HashAddr(ban.Prefix.Addr())))
	}
	if !ban.Until.IsZero() {
		attrs = append(attrs, slog.Time("until", ban.Until))
	}
	n.log.LogAttrs(context.Background(), slog.LevelWarn, "ban added", attrs...)
}

// retryable reports whether a failed Apply may be tried again: the leader
// was lost or changed, or was unreachable.
func retryable(err error) bool {
	return errors.Is(err, ErrNoLeader) || errors.Is(err, raft.ErrNotLeader) ||
		errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) ||
		errors.Is(err, errForwardUnavailable)
}

// backoff waits before the next attempt: longer with each attempt, but
// no longer than until the leader changes.
func (n *Node) backoff(ctx context.Context, attempt int) error {
	d := min(time.Duration(attempt+1)*20*time.Millisecond, 250*time.Millisecond)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-n.leaders.next():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
	case <-n.done:
		return ErrClosed
	}
}

// applyLocal turns cmd into an event against this leader's state and
// commits it.
func (n *Node) applyLocal(ctx context.Context, cmd raftstore.Command) (raftstore.Result, error) {
	var ev raftstore.Event
	var err error
	var dup uint64
	n.fsm.read(func(st *raftstore.State) {
		if idx, ok := st.Applied(cmd.Key); ok {
			dup = idx
			return
		}
		ev, err = cmd.Event(st, n.now(), n.cfg.AutoBan)
	})
	if dup != 0 {
		return raftstore.Result{Index: dup, Duplicate: dup}, nil
	}
	if err != nil {
		return raftstore.Result{}, err
	}
	data, err := raftstore.MarshalEvent(ev)
	if err != nil {
		return raftstore.Result{}, err
	}
	timeout := n.cfg.Timing.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return raftstore.Result{}, ctx.Err()
	}
	f := n.raft.Apply(data, timeout)
	if err := n.await(ctx, f); err != nil {
		if errors.Is(err, raft.ErrEnqueueTimeout) {
			return raftstore.Result{}, fmt.Errorf("%w: %w", ErrNoLeader, err)
		}
		return raftstore.Result{}, err
	}
	n.nudge()
	switch r := f.Response().(type) {
	case raftstore.Result:
		if r.Err != nil {
			return r, fmt.Errorf("%w: %w", raftstore.ErrRefused, r.Err)
		}
		return r, nil
	case error:
		return raftstore.Result{}, fmt.Errorf("%w: %w", ErrFailed, r)
	}
	return raftstore.Result{Index: f.Index()}, nil
}

// nudge makes the followers learn the new commit index now rather than at
// the leader's next idle append. In hashicorp/raft a follower learns the
// commit index only from an AppendEntries that carries entries or from
// the idle one the leader sends each follower every CommitTimeout to
// 2×CommitTimeout (heartbeats do not carry it), so a ban committed on the
// leader would reach the followers' views up to 2×CommitTimeout later.
// nudge appends a barrier (an empty LogBarrier entry, which goes through
// consensus like any entry and never reaches the FSM) after the commit:
// its AppendEntries carries a commit index that includes the write, so the
// followers apply it one round trip later. It costs one log write per
// node per nudge and nothing when the cluster is idle, where a short
// CommitTimeout would cost an append to every follower every few
// milliseconds forever (docs/performance.md has the figures).
//
// Nudges coalesce: one barrier is in flight at a time, and every nudge
// asked for while it is in flight is served by one more barrier after it
// (the one in flight may have been appended before that write committed;
// skipping the nudge would leave the write to the idle append). A burst of
// writes thus costs a barrier per round trip, not one per write.
func (n *Node) nudge() {
	if n.noNudges || n.nudges.Add(1) > 1 {
		return // the running nudger will barrier again for this one
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			asked := n.nudges.Load()
			// Raft never answers a barrier it queued as it shut down:
			// await returns on Close too.
			if err := n.await(context.Background(), n.raft.Barrier(n.cfg.Timing.ApplyTimeout)); errors.Is(err, ErrClosed) {
				return
			}
			if n.nudges.Add(-asked) == 0 {
				return
			}
		}
	}()
}

// await waits for f to be answered, for ctx to end or for the node to
// close, whichever comes first. Raft's futures take no context, and one
// queued as Raft shuts down can stay unanswered forever (hashicorp/raft
// issue 498; the buffered apply channel, BatchApplyCh, makes it likely):
// waiting on it alone would hang Apply past its context and Close for
// good. A future abandoned here leaves one goroutine behind until Raft
// answers it, if ever; that happens only around shutdown. ctx's error
// and ErrClosed leave the outcome of a command unknown.
func (n *Node) await(ctx context.Context, f raft.Future) error {
	answered := make(chan error, 1)
	go func() { answered <- f.Error() }()
	select {
	case err := <-answered:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrClosed
	}
}

// waitApplied waits (bounded by ctx) until this node has applied index, so
// a caller that wrote through a follower reads its write there.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	for {
		applied, ch := n.fsm.appliedCh()
		if applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.done:
			return ErrClosed
		}
	}
}

// ReadIndex returns an index such that a read of this node's state, once
// it has applied that index, sees every write committed before ReadIndex
// was called (a linearizable read). It asks the leader, which confirms its
// leadership with a majority by committing a barrier.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	for attempt := 0; ; attempt++ {
		var idx uint64
		var err error
		if n.IsLeader() {
			idx, err = n.readIndexLocal(ctx)
		} else if _, addr := n.Leader(); addr != "" && n.fwd != nil {
			idx, err = n.fwd.readIndex(ctx, addr)
		} else {
			err = ErrNoLeader
		}
		if err == nil {
			return idx, n.waitApplied(ctx, idx)
		}
		if !retryable(err) {
			return 0, err
		}
		if err := n.backoff(ctx, attempt); err != nil {
			return 0, err
		}
	}
}

func (n *Node) readIndexLocal(ctx context.Context) (uint64, error) {
	timeout := n.cfg.Timing.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	f := n.raft.Barrier(timeout)
	if err := n.await(ctx, f); err != nil {
		return 0, err
	}
	// Once the barrier is applied, this leader's FSM holds every entry
	// committed before it. Its applied index counts only the entries an
	// FSM sees (events and configurations, not barriers or no-ops), so a
	// follower that has applied as far has applied the same entries.
	return n.fsm.applied.Load(), nil
}

// Status is what `chimalli cluster status` shows.
type Status struct {
	NodeID       string   `json:"node_id"`
	Leader       string   `json:"leader"`
	LeaderAddr   string   `json:"leader_addr,omitempty"`
	State        string   `json:"state"`
	Term         uint64   `json:"term"`
	AppliedIndex uint64   `json:"applied_index"`
	CommitIndex  uint64   `json:"commit_index"`
	LastIndex    uint64   `json:"last_index"`
	Peers        []string `json:"peers"`
	PeerAddrs    []Peer   `json:"peer_addrs"`
	StateHash    string   `json:"state_hash"`
	Bans         int      `json:"bans"`
	Rules        int      `json:"rules"`
	Pins         int      `json:"pins"`
	Failed       string   `json:"failed,omitempty"`
}

// Status returns this node's view of the cluster.
func (n *Node) Status() Status {
	id, addr := n.Leader()
	s := Status{
		NodeID: n.cfg.ID, Leader: id, LeaderAddr: addr,
		State: stateName(n.raft.State()), Term: n.raft.CurrentTerm(),
		CommitIndex: n.raft.CommitIndex(), LastIndex: n.raft.LastIndex(),
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			s.Peers = append(s.Peers, string(srv.ID))
			s.PeerAddrs = append(s.PeerAddrs, Peer{ID: string(srv.ID), Addr: string(srv.Address)})
		}
	}
	slices.Sort(s.Peers)
	n.fsm.read(func(st *raftstore.State) {
		s.AppliedIndex = st.Index()
		s.StateHash = st.Hash()
		s.Bans = st.Bans().Len()
		s.Rules = len(st.Rules())
		s.Pins = len(st.Pins())
	})
	if errp := n.fatalErr.Load(); errp != nil {
		s.Failed = (*errp).Error()
	}
	return s
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}

// Read runs fn on the state this node has applied, under the FSM's lock.
// fn must be quick and must not keep st.
func (n *Node) Read(fn func(st *raftstore.State)) { n.fsm.read(fn) }

// AddVoter adds a node to the cluster (on the leader; forwarded otherwise).
func (n *Node) AddVoter(ctx context.Context, p Peer) error {
	return n.membership(ctx, fwdRequest{Join: &p})
}

// RemoveServer removes a node from the cluster.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	return n.membership(ctx, fwdRequest{Leave: id})
}

func (n *Node) membership(ctx context.Context, req fwdRequest) error {
	for attempt := 0; ; attempt++ {
		var err error
		if n.IsLeader() {
			err = n.membershipLocal(req)
		} else if _, addr := n.Leader(); addr != "" && n.fwd != nil {
			_, err = n.fwd.callLeader(ctx, addr, req)
		} else {
			err = ErrNoLeader
		}
		if err == nil || !retryable(err) {
			return err
		}
		if err := n.backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

func (n *Node) membershipLocal(req fwdRequest) error {
	timeout := n.cfg.Timing.ApplyTimeout
	switch {
	case req.Join != nil:
		f := n.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return err
		}
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == req.Join.ID && string(s.Address) == req.Join.Addr {
				return nil // already a member
			}
		}
		return n.raft.AddVoter(raft.ServerID(req.Join.ID), raft.ServerAddress(req.Join.Addr), 0, timeout).Error()
	case req.Leave != "":
		return n.raft.RemoveServer(raft.ServerID(req.Leave), 0, timeout).Error()
	}
	return errors.New("membership: empty request")
}

// joinLoop asks the Join addresses to admit this node until one does. A
// member that is not the leader names the leader's address, which is
// asked next.
func (n *Node) joinLoop(self string) {
	for attempt := 0; ; attempt++ {
		for _, addr := range n.cfg.Join {
			if n.askToJoin(addr, self) {
				return
			}
		}
		if id, _ := n.Leader(); id != "" {
			return // admitted meanwhile (another join succeeded late)
		}
		t := time.NewTimer(min(time.Duration(attempt+1)*200*time.Millisecond, 2*time.Second))
		select {
		case <-t.C:
		case <-n.done:
			t.Stop()
			return
		}
	}
}

// askToJoin asks addr (and the leader it names, if it is not the leader)
// to add this node; it reports whether one did.
func (n *Node) askToJoin(addr, self string) bool {
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := n.fwd.call(ctx, addr, fwdRequest{Join: &Peer{ID: n.cfg.ID, Addr: self}})
		cancel()
		if err == nil {
			n.log.Info("joined the cluster", "via", addr)
			return true
		}
		n.log.Warn("join", "via", addr, "err", err)
		if resp.Leader == "" || resp.Leader == addr {
			return false
		}
		addr = resp.Leader
	}
	return false
}
