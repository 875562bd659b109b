package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/chimalli/chimalli/raftstore"
)

// The linearizability check: clients on every node of a three-node cluster
// ban, lift and list a few prefixes concurrently while the leader is
// killed and restarted; porcupine then checks the recorded history against
// a sequential model of the ban list.

// linPrefixes is how many prefixes the clients fight over: few, so that
// operations collide.
const linPrefixes = 4

// linPrefix returns the i-th of them, 192.0.2.(i+1)/32.
func linPrefix(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 32)
}

// linKind is what a client asks for.
type linKind uint8

const (
	linAdd  linKind = iota // ban add (operator): OpBanAdd
	linLift                // ban rm: OpBanLift
	linList                // ban ls --consistent: ReadIndex, then read the applied state
)

// linInput is an operation's input: the kind and, for add and lift, the
// index of the prefix in linPrefixes.
type linInput struct {
	Kind   linKind
	Prefix int
}

// linOutput is an operation's output. Unknown: the operation may or may
// not have taken effect, or took effect with an outcome the client was not
// told (a retry answered as a duplicate); the model accepts any output for
// it. Otherwise Changed is add's and lift's Result.Changed and Set is the
// list of bans active, a bit per prefix of linPrefixes.
type linOutput struct {
	Unknown bool
	Changed bool
	Set     uint8
}

// linModel is the sequential specification: the state is the set of
// prefixes with an active ban, a bit each. It follows State.applyBan for
// operator bans: ban.added always applies (a new ban, or a re-ban that
// counts a strike) and reports Changed; ban.lifted applies, and reports
// Changed, only when the prefix has an active ban. An operation of unknown
// outcome is given an infinite return time, so the checker may place it
// after everything else, where its effect is unobservable: that covers
// "did not happen".
func linModel() porcupine.Model {
	return porcupine.Model{
		Init: func() any { return uint8(0) },
		Step: func(state, input, output any) (bool, any) {
			s, in, out := state.(uint8), input.(linInput), output.(linOutput)
			bit := uint8(1) << in.Prefix
			switch in.Kind {
			case linAdd:
				return out.Unknown || out.Changed, s | bit
			case linLift:
				return out.Unknown || out.Changed == (s&bit != 0), s &^ bit
			case linList:
				return out.Unknown || out.Set == s, s
			}
			return false, s
		},
		Hash: func(state any) uint64 { return uint64(state.(uint8)) },
		DescribeOperation: func(input, output any) string {
			in, out := input.(linInput), output.(linOutput)
			res := "?"
			switch {
			case out.Unknown:
			case in.Kind == linList:
				res = describeSet(out.Set)
			default:
				res = fmt.Sprintf("changed=%t", out.Changed)
			}
			switch in.Kind {
			case linAdd:
				return fmt.Sprintf("add(%s) -> %s", linPrefix(in.Prefix).Addr(), res)
			case linLift:
				return fmt.Sprintf("rm(%s) -> %s", linPrefix(in.Prefix).Addr(), res)
			}
			return "ls -> " + res
		},
		DescribeState: func(state any) string { return describeSet(state.(uint8)) },
	}
}

func describeSet(s uint8) string {
	var names []string
	for i := range linPrefixes {
		if s&(1<<i) != 0 {
			names = append(names, linPrefix(i).Addr().String())
		}
	}
	return "{" + strings.Join(names, " ") + "}"
}

// listActive is the consistent read's second half: the bans of
// linPrefixes active in st, at the time of the last event st applied (the
// fold's own clock, so the read agrees with applyBan's idea of active).
func listActive(st *raftstore.State) uint8 {
	var s uint8
	for i := range linPrefixes {
		if b, ok := st.Bans().Lookup(linPrefix(i)); ok && b.ActiveAt(st.LastTime()) {
			s |= 1 << i
		}
	}
	return s
}

// viewActive is listActive over a node's ban view, as the gateway
// consults it.
func viewActive(v *raftstore.BanSet, now time.Time) uint8 {
	var s uint8
	for i := range linPrefixes {
		if v.Banned(linPrefix(i).Addr(), now) {
			s |= 1 << i
		}
	}
	return s
}

// liveNodes is the running node of each id, for the client goroutines: the
// test goroutine stops and starts nodes (testCluster is not safe for
// concurrent use), and publishes the change here.
type liveNodes struct {
	mu      sync.Mutex
	nodes   map[string]*Node
	changed chan struct{} // closed and replaced on every change
}

func (l *liveNodes) get(id string) (*Node, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes[id], l.changed
}

func (l *liveNodes) set(id string, n *Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes[id] = n
	close(l.changed)
	l.changed = make(chan struct{})
}

// linHistory records operations from concurrent clients.
type linHistory struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// counts of what happened, for the log
	ok, ambiguous, duplicate, droppedReads int
}

func (h *linHistory) now() int64 { return int64(time.Since(h.start)) }

// linClient runs operations against node id until the run has issued
// total operations.
type linClient struct {
	id     int
	node   string
	live   *liveNodes
	hist   *linHistory
	issued *atomic.Int64
	total  int64
	rng    *rand.Rand
	done   <-chan struct{}
	errs   chan<- error
}

func (c *linClient) run() {
	for c.issued.Add(1) <= c.total {
		select {
		case <-c.done: // the test gave up
			return
		default:
		}
		n, changed := c.live.get(c.node)
		for n == nil { // the node is down: wait for its restart
			select {
			case <-changed:
			case <-c.done:
				return
			}
			n, changed = c.live.get(c.node)
		}
		c.one(n)
	}
}

// one runs one random operation on n and records it.
func (c *linClient) one(n *Node) {
	in := linInput{Prefix: c.rng.IntN(linPrefixes)}
	switch r := c.rng.IntN(10); {
	case r < 4:
		in.Kind = linAdd
	case r < 7:
		in.Kind = linLift
	default:
		in.Kind = linList
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	op := porcupine.Operation{ClientId: c.id, Input: in, Call: c.hist.now()}
	var out linOutput
	var err error
	via := ""
	if in.Kind == linList {
		// Both reads after ReadIndex are linearizable: the FSM publishes
		// the ban view before it moves its applied index, which is what
		// ReadIndex waits for. Half the reads use the state under the
		// FSM's lock, half the lock-free view the gateway enforces.
		useView := c.rng.IntN(2) == 0
		if _, err = n.ReadIndex(ctx); err == nil {
			if useView {
				via = " (view)"
				out.Set = viewActive(n.BanSet(), time.Now())
			} else {
				n.Read(func(st *raftstore.State) { out.Set = listActive(st) })
			}
		}
	} else {
		// A fresh idempotency key per operation; Apply retries inside
		// with the same key, the client never retries with another.
		cmd := raftstore.Command{Op: raftstore.OpBanLift, Key: raftstore.NewKey(), Prefix: linPrefix(in.Prefix)}
		if in.Kind == linAdd {
			cmd.Op, cmd.Reason = raftstore.OpBanAdd, "lin"
			if c.rng.IntN(2) == 0 {
				cmd.Permanent = true
			} else {
				cmd.Duration = time.Hour // outlives the test: active throughout
			}
		}
		var res raftstore.Result
		res, err = n.Apply(ctx, cmd)
		out.Changed = res.Changed
		if err == nil && res.Duplicate != 0 {
			// An internal retry found the command already applied: it
			// took effect, but its Changed is not known.
			out.Unknown = true
		}
	}
	op.Return = c.hist.now()
	op.Metadata = n.ID() + via
	switch {
	case err == nil:
	case errors.Is(err, raftstore.ErrRefused), errors.Is(err, ErrFailed):
		select {
		case c.errs <- fmt.Errorf("client %d on %s: %v: %w", c.id, n.ID(), in, err):
		default: // enough errors reported already
		}
		return
	case in.Kind == linList:
		// A read that failed observed nothing and changed nothing.
		c.hist.mu.Lock()
		c.hist.droppedReads++
		c.hist.mu.Unlock()
		return
	default:
		// Timeout, no leader, connection lost, node closed: the command
		// may have committed, now or later. Its effect may appear at any
		// time after the call, so it returns "at infinity".
		out = linOutput{Unknown: true}
		op.Return = math.MaxInt64
		op.Metadata = n.ID() + ": " + err.Error()
	}
	op.Output = out
	c.hist.mu.Lock()
	switch {
	case op.Return == math.MaxInt64:
		c.hist.ambiguous++
	case out.Unknown:
		c.hist.duplicate++
	default:
		c.hist.ok++
	}
	c.hist.ops = append(c.hist.ops, op)
	c.hist.mu.Unlock()
}

func TestLinearizableBansWhileLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster run with leader kills")
	}
	ids := []string{"n1", "n2", "n3"}
	c := newTestCluster(t, ids...)
	c.leader()
	live := &liveNodes{nodes: map[string]*Node{}, changed: make(chan struct{})}
	for _, id := range ids {
		live.set(id, c.nodes[id])
	}
	const total = 480
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	hist := &linHistory{start: time.Now()}
	var issued atomic.Int64
	done := make(chan struct{})
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for i := range 2 * len(ids) {
		cl := &linClient{id: i, node: ids[i%len(ids)], live: live, hist: hist, issued: &issued, total: total,
			rng: rand.New(rand.NewPCG(seed, uint64(i))), done: done, errs: errs}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.run()
		}()
	}
	clientsDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(clientsDone)
	}()
	defer func() {
		close(done)
		<-clientsDone
	}()
	progress := func(frac float64, what string) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() bool {
			select {
			case err := <-errs:
				t.Fatal(err)
			default:
			}
			return issued.Load() >= int64(frac*total)
		})
	}
	// Twice: kill the leader mid-run, let the others elect a new one and
	// carry on, then bring the old leader back with its log.
	for _, at := range []float64{0.15, 0.55} {
		progress(at, "operations before the leader is killed")
		old := c.leader().ID()
		live.set(old, nil)
		c.stop(old)
		t.Logf("killed leader %s after %d operations", old, issued.Load())
		t.Logf("new leader %s", c.leader().ID())
		progress(at+0.2, "operations while the old leader is down")
		live.set(old, c.start(old))
		t.Logf("restarted %s after %d operations", old, issued.Load())
	}
	select {
	case <-clientsDone:
	case <-time.After(60 * time.Second):
		t.Fatal("the clients did not finish")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d operations: %d with a known outcome, %d ambiguous, %d answered as duplicates, %d failed reads dropped",
		len(hist.ops), hist.ok, hist.ambiguous, hist.duplicate, hist.droppedReads)
	checkLinearizable(t, hist.ops)
}

// checkLinearizable fails t unless porcupine finds ops linearizable under
// linModel; on failure it writes porcupine's visualisation to a file.
func checkLinearizable(t *testing.T, ops []porcupine.Operation) {
	t.Helper()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(linModel(), ops, 20*time.Second)
	t.Logf("porcupine: %s in %v", res, time.Since(start).Round(time.Millisecond))
	if res == porcupine.Ok {
		return
	}
	if f, err := os.CreateTemp("", "chimalli-linearizability-*.html"); err == nil {
		f.Close()
		if err := porcupine.VisualizePath(linModel(), info, f.Name()); err == nil {
			t.Logf("visualisation: %s", f.Name())
		}
	}
	if res == porcupine.Unknown {
		t.Fatalf("porcupine could not decide within its timeout (%d operations)", len(ops))
	}
	t.Fatalf("the history of %d operations is not linearizable", len(ops))
}

// TestLinearizabilityCheckerCatchesViolations is the negative control: the
// same model and checker must refuse histories that are not linearizable,
// and accept ambiguous operations either way.
func TestLinearizabilityCheckerCatchesViolations(t *testing.T) {
	op := func(client int, kind linKind, prefix int, call, ret int64, out linOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: linInput{Kind: kind, Prefix: prefix}, Call: call, Return: ret, Output: out}
	}
	changed, unchanged, unknown := linOutput{Changed: true}, linOutput{}, linOutput{Unknown: true}
	set := func(s uint8) linOutput { return linOutput{Set: s} }
	const inf = math.MaxInt64
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"read misses a completed add", []porcupine.Operation{
			op(0, linAdd, 0, 0, 10, changed),
			op(1, linList, 0, 20, 30, set(0)),
		}, porcupine.Illegal},
		{"read sees a completed lift undone", []porcupine.Operation{
			op(0, linAdd, 1, 0, 10, changed),
			op(0, linLift, 1, 20, 30, changed),
			op(1, linList, 0, 40, 50, set(0b10)),
		}, porcupine.Illegal},
		{"lift of a ban reports no change", []porcupine.Operation{
			op(0, linAdd, 2, 0, 10, changed),
			op(1, linLift, 2, 20, 30, unchanged),
		}, porcupine.Illegal},
		{"two lifts of one ban both change it", []porcupine.Operation{
			op(0, linAdd, 0, 0, 10, changed),
			op(1, linLift, 0, 20, 40, changed),
			op(2, linLift, 0, 20, 40, changed),
		}, porcupine.Illegal},
		{"reads disagree on the order of two adds", []porcupine.Operation{
			op(0, linAdd, 0, 0, 100, changed),
			op(1, linAdd, 1, 0, 100, changed),
			op(2, linList, 0, 10, 20, set(0b01)),
			op(3, linList, 0, 10, 20, set(0b10)),
		}, porcupine.Illegal},
		{"an add reports no change", []porcupine.Operation{
			op(0, linAdd, 0, 0, 10, unchanged),
		}, porcupine.Illegal},
		{"concurrent add and read, read before", []porcupine.Operation{
			op(0, linAdd, 0, 0, 30, changed),
			op(1, linList, 0, 10, 20, set(0)),
		}, porcupine.Ok},
		{"concurrent lifts, one changes", []porcupine.Operation{
			op(0, linAdd, 0, 0, 10, changed),
			op(1, linLift, 0, 20, 40, changed),
			op(2, linLift, 0, 20, 40, unchanged),
		}, porcupine.Ok},
		{"ambiguous add seen later", []porcupine.Operation{
			op(0, linAdd, 3, 0, inf, unknown),
			op(1, linList, 0, 20, 30, set(0b1000)),
		}, porcupine.Ok},
		{"ambiguous add never seen", []porcupine.Operation{
			op(0, linAdd, 3, 0, inf, unknown),
			op(1, linList, 0, 20, 30, set(0)),
			op(1, linList, 0, 40, 50, set(0)),
		}, porcupine.Ok},
		{"ambiguous add seen then unseen", []porcupine.Operation{
			op(0, linAdd, 3, 0, inf, unknown),
			op(1, linList, 0, 20, 30, set(0b1000)),
			op(1, linList, 0, 40, 50, set(0)),
		}, porcupine.Illegal},
		{"ambiguous add cannot precede its call", []porcupine.Operation{
			op(1, linList, 0, 0, 10, set(0b1000)),
			op(0, linAdd, 3, 20, inf, unknown),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(linModel(), tt.ops, 10*time.Second); got != tt.want {
				t.Fatalf("porcupine says %s, want %s", got, tt.want)
			}
		})
	}
}

// TestLinearizabilityModelMatchesFold drives the real fold (Command.Event,
// State.Apply) and the model in lockstep with random operator bans and
// lifts: the model must accept every Result.Changed the fold reports and
// hold the same set of active bans.
func TestLinearizabilityModelMatchesFold(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	st := raftstore.NewState()
	model := linModel().Init()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2000 {
		in := linInput{Kind: linKind(rng.IntN(2)), Prefix: rng.IntN(linPrefixes)}
		cmd := raftstore.Command{Op: raftstore.OpBanLift, Key: raftstore.NewKey(), Prefix: linPrefix(in.Prefix)}
		if in.Kind == linAdd {
			cmd.Op, cmd.Reason, cmd.Duration = raftstore.OpBanAdd, "lin", time.Hour
		}
		now = now.Add(time.Second)
		ev, err := cmd.Event(st, now, raftstore.DefaultAutoBanPolicy())
		if err != nil {
			t.Fatal(err)
		}
		res := st.Apply(uint64(i+1), ev)
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		ok, next := linModel().Step(model, in, linOutput{Changed: res.Changed})
		if !ok {
			t.Fatalf("step %d: the model refuses %v -> changed=%t in %s", i, in, res.Changed, describeSet(model.(uint8)))
		}
		model = next
		if got := listActive(st); got != model.(uint8) {
			t.Fatalf("step %d: fold lists %s, model %s", i, describeSet(got), describeSet(model.(uint8)))
		}
	}
	if bits.OnesCount8(model.(uint8)) == 0 && st.Bans().Len() == 0 {
		t.Fatal("the run banned nothing")
	}
}

// TestLinearizableReadIndexReturnsOnQuietCluster: a consistent read on a
// cluster with no writes in flight returns, on the leader and on a
// follower. The log then ends with entries the FSM never sees (the
// leader's no-op, the barriers of reads and of Apply's commit nudge), so
// the read index must be one the FSM reaches.
func TestLinearizableReadIndexReturnsOnQuietCluster(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := c.leader()
	if _, err := l.Apply(ctx, raftstore.Command{Op: raftstore.OpBanAdd, Prefix: linPrefix(0), Permanent: true, Reason: "lin"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{l, c.follower(), l, c.follower()} {
		if _, err := n.ReadIndex(ctx); err != nil {
			t.Fatalf("read index on %s: %v", n.ID(), err)
		}
		var set uint8
		n.Read(func(st *raftstore.State) { set = listActive(st) })
		if view := viewActive(n.BanSet(), time.Now()); set != 1 || view != 1 {
			t.Fatalf("consistent read on %s lists %s, its view %s", n.ID(), describeSet(set), describeSet(view))
		}
	}
}
