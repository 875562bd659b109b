package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/tofu"
	"github.com/hashicorp/raft"
)

// The forwarding protocol (ALPN ProtoForward): on a mutual-TLS connection
// between two nodes, the caller writes one JSON request per line and reads
// one JSON response per line, in order. Connections are pooled per peer.
// The callee serves a request only as the leader; otherwise it answers
// codeNotLeader and the caller looks for the leader again.

type fwdRequest struct {
	Apply     *raftstore.Command `json:"apply,omitempty"`
	ReadIndex bool               `json:"read_index,omitempty"`
	Join      *Peer              `json:"join,omitempty"`
	Leave     string             `json:"leave,omitempty"`
	// Restore: the line is followed by a state snapshot of Size bytes
	// (raftstore.WriteSnapshot's format), which replaces the cluster's
	// state (Node.Restore). The connection closes after the response.
	Restore *fwdRestore `json:"restore,omitempty"`
}

type fwdRestore struct {
	Size int64 `json:"size"`
}

type fwdResponse struct {
	Index     uint64         `json:"index,omitempty"`
	Changed   bool           `json:"changed,omitempty"`
	Duplicate uint64         `json:"duplicate,omitempty"`
	Type      string         `json:"type,omitempty"`
	Pin       *wirePin       `json:"pin,omitempty"`
	Code      string         `json:"code,omitempty"`
	Err       string         `json:"err,omitempty"`
	Leader    string         `json:"leader,omitempty"` // with codeNotLeader: the leader's cluster port, when known
	Restored  *RestoreResult `json:"restored,omitempty"`
}

type wirePin struct {
	Kind     tofu.PinKind  `json:"kind"`
	Scope    string        `json:"scope"`
	Identity tofu.Identity `json:"identity"`
	NotAfter time.Time     `json:"not_after"`
	Created  time.Time     `json:"created"`
}

// Response codes. An empty code with an empty Err is success.
const (
	codeNotLeader = "not_leader" // ask the leader instead (retryable)
	codeRefused   = "refused"    // the command is invalid: raftstore.ErrRefused
	codeFailed    = "failed"     // the leader's state stopped
	codeDenied    = "denied"     // the caller may not ask this
	codeError     = "error"      // anything else
)

// errForwardUnavailable wraps transport failures of forwarding: the leader
// was unreachable or the connection broke. Retryable.
var errForwardUnavailable = errors.New("leader unreachable")

// errForwardTimeout ends a forwarded call the peer did not answer within
// forwardTimeout. Retryable.
var errForwardTimeout = fmt.Errorf("%w: no answer in time", errForwardUnavailable)

// maxIdleForward bounds the idle forwarding connections kept per leader:
// enough for a burst of concurrent writers (an auto-ban storm, 32 operator
// clients) to reuse connections instead of paying a mutual-TLS handshake
// per forwarded command.
const maxIdleForward = 64

// forwardTimeout bounds one forwarded call, for a peer that stays silent
// while this node still takes it for the leader (a dead leader is caught
// sooner, by the leader change: callLeader). The leader gives up on a
// command after ApplyTimeout and answers, so twice that cuts off no
// answer that would come, however slow the commit.
func (n *Node) forwardTimeout() time.Duration { return 2 * n.cfg.Timing.ApplyTimeout }

// maxForwardLine bounds one request or response line.
const maxForwardLine = 64 << 10

type forwarder struct {
	n    *Node
	d    dialer
	mu   sync.Mutex
	idle map[string][]*fwdConn
	done chan struct{}
}

type fwdConn struct {
	c  *tls.Conn
	r  *bufio.Reader
	to string
}

func newForwarder(n *Node) *forwarder {
	return &forwarder{n: n, d: newDialer(n.cfg.ClientTLS, ProtoForward, n.wrapConn), idle: map[string][]*fwdConn{}, done: make(chan struct{})}
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
	default:
		close(f.done)
	}
	for _, cs := range f.idle {
		for _, c := range cs {
			c.c.Close()
		}
	}
	f.idle = map[string][]*fwdConn{}
}

func (f *forwarder) get(ctx context.Context, addr string) (*fwdConn, error) {
	f.mu.Lock()
	if cs := f.idle[addr]; len(cs) > 0 {
		c := cs[len(cs)-1]
		f.idle[addr] = cs[:len(cs)-1]
		f.mu.Unlock()
		return c, nil
	}
	f.mu.Unlock()
	tc, err := f.d.dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errForwardUnavailable, err)
	}
	return &fwdConn{c: tc, r: bufio.NewReaderSize(tc, 4096), to: addr}, nil
}

// dropIdle closes the idle connections to addr (a leader that is gone).
func (f *forwarder) dropIdle(addr string) {
	f.mu.Lock()
	cs := f.idle[addr]
	delete(f.idle, addr)
	f.mu.Unlock()
	for _, c := range cs {
		c.c.Close()
	}
}

func (f *forwarder) put(c *fwdConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		c.c.Close()
		return
	default:
	}
	if len(f.idle[c.to]) >= maxIdleForward {
		c.c.Close()
		return
	}
	f.idle[c.to] = append(f.idle[c.to], c)
}

// call sends req to addr and returns its response. A response with a code
// becomes an error. The call (dial, request and answer) is bounded by ctx
// and by forwardTimeout.
func (f *forwarder) call(ctx context.Context, addr string, req fwdRequest) (fwdResponse, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, f.n.forwardTimeout(), errForwardTimeout)
	defer cancel()
	c, err := f.get(ctx, addr)
	if err != nil {
		if ctx.Err() != nil {
			return fwdResponse{}, fmt.Errorf("forward to %s: %w", addr, context.Cause(ctx))
		}
		return fwdResponse{}, err
	}
	dl, _ := ctx.Deadline()
	c.c.SetDeadline(dl)
	// Once ctx ends (the caller's deadline, the leader changed, the node
	// closed), blocked reads and writes return at once.
	stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		c.c.Close()
		return fwdResponse{}, err
	}
	var resp fwdResponse
	if _, err = c.c.Write(append(b, '\n')); err == nil {
		var line []byte
		line, err = readLine(c.r)
		if err == nil {
			err = json.Unmarshal(line, &resp)
		}
	}
	if err != nil {
		c.c.Close()
		if ctx.Err() != nil {
			return fwdResponse{}, fmt.Errorf("forward to %s: %w", addr, context.Cause(ctx))
		}
		return fwdResponse{}, fmt.Errorf("%w: %s: %w", errForwardUnavailable, addr, err)
	}
	c.c.SetDeadline(time.Time{})
	f.put(c)
	return resp, responseError(addr, resp)
}

// responseError returns the error a response's code stands for; nil for
// success.
func responseError(addr string, resp fwdResponse) error {
	switch resp.Code {
	case "":
		return nil
	case codeNotLeader:
		return fmt.Errorf("%w: %s", ErrNoLeader, resp.Err)
	case codeRefused:
		return fmt.Errorf("%w: %s", raftstore.ErrRefused, resp.Err)
	case codeFailed:
		return fmt.Errorf("%w: %s", ErrFailed, resp.Err)
	case codeDenied:
		return fmt.Errorf("forward to %s: denied: %s", addr, resp.Err)
	}
	return fmt.Errorf("forward to %s: %s", addr, resp.Err)
}

// callLeader is call to addr, the leader this node knows of. The call
// ends, retryable, as soon as this node learns that the leader changed
// (a leader that vanished without closing its connections is forgotten
// after HeartbeatTimeout), so the caller retries at the new leader
// instead of waiting for an answer that may never come. The command may
// have committed before the old leader went: the retry carries the same
// idempotency key and applies once.
func (f *forwarder) callLeader(ctx context.Context, addr string, req fwdRequest) (fwdResponse, error) {
	ctx, stop := f.n.whileLeader(ctx, addr)
	defer stop()
	return f.call(ctx, addr, req)
}

func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > maxForwardLine {
			return nil, errors.New("line too long")
		}
		if !isPrefix {
			return line, nil
		}
	}
}

func (f *forwarder) apply(ctx context.Context, addr string, cmd raftstore.Command) (raftstore.Result, error) {
	resp, err := f.callLeader(ctx, addr, fwdRequest{Apply: &cmd})
	if err != nil {
		return raftstore.Result{}, err
	}
	res := raftstore.Result{Index: resp.Index, Changed: resp.Changed, Duplicate: resp.Duplicate, Type: raftstore.EventType(resp.Type)}
	if resp.Pin != nil {
		res.Pin = tofu.Pin{Key: tofu.PinKey{Kind: resp.Pin.Kind, Scope: resp.Pin.Scope}, Identity: resp.Pin.Identity,
			NotAfter: resp.Pin.NotAfter, Created: resp.Pin.Created}
	}
	return res, nil
}

func (f *forwarder) readIndex(ctx context.Context, addr string) (uint64, error) {
	resp, err := f.callLeader(ctx, addr, fwdRequest{ReadIndex: true})
	return resp.Index, err
}

// serve answers forwarded requests until the listener closes.
func (f *forwarder) serve(ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.serveConn(c.(*tls.Conn))
		}()
	}
}

func (f *forwarder) serveConn(c *tls.Conn) {
	defer c.Close()
	peer, err := f.n.cfg.PeerName(c.ConnectionState())
	if err != nil {
		f.n.log.Warn("forward: peer without identity", "err", err)
		return
	}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-f.done:
			c.SetDeadline(time.Unix(1, 0))
		case <-stopped:
		}
	}()
	r := bufio.NewReaderSize(c, 4096)
	for {
		line, err := readLine(r)
		if err != nil {
			return
		}
		var req fwdRequest
		var resp fwdResponse
		if err := strictJSON(line, &req); err != nil {
			resp = fwdResponse{Code: codeError, Err: "bad request: " + err.Error()}
		} else if req.Restore != nil {
			resp = f.handleRestore(*req.Restore, r)
		} else {
			resp = f.handle(peer, req)
		}
		b, _ := json.Marshal(resp)
		if _, err := c.Write(append(b, '\n')); err != nil || req.Restore != nil {
			return
		}
	}
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (f *forwarder) handle(peer string, req fwdRequest) fwdResponse {
	n := f.n
	if !n.IsLeader() {
		id, addr := n.Leader()
		return fwdResponse{Code: codeNotLeader, Err: "leader is " + id, Leader: addr}
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timing.ApplyTimeout)
	defer cancel()
	switch {
	case req.Apply != nil:
		res, err := n.applyLocal(ctx, *req.Apply)
		if err != nil {
			return errorResponse(err)
		}
		out := fwdResponse{Index: res.Index, Changed: res.Changed, Duplicate: res.Duplicate, Type: string(res.Type)}
		if !res.Pin.Key.Kind.Valid() {
			return out
		}
		p := res.Pin
		out.Pin = &wirePin{Kind: p.Key.Kind, Scope: p.Key.Scope, Identity: p.Identity, NotAfter: p.NotAfter, Created: p.Created}
		return out
	case req.ReadIndex:
		idx, err := n.readIndexLocal(ctx)
		if err != nil {
			return errorResponse(err)
		}
		return fwdResponse{Index: idx}
	case req.Join != nil:
		if req.Join.ID != peer {
			return fwdResponse{Code: codeDenied, Err: fmt.Sprintf("node %s may join only as itself, not as %s", peer, req.Join.ID)}
		}
		if err := n.membershipLocal(req); err != nil {
			return errorResponse(err)
		}
		return fwdResponse{}
	case req.Leave != "":
		if err := n.membershipLocal(req); err != nil {
			return errorResponse(err)
		}
		return fwdResponse{}
	}
	return fwdResponse{Code: codeError, Err: "empty request"}
}

func errorResponse(err error) fwdResponse {
	switch {
	case errors.Is(err, raftstore.ErrRefused):
		return fwdResponse{Code: codeRefused, Err: err.Error()}
	case errors.Is(err, ErrFailed):
		return fwdResponse{Code: codeFailed, Err: err.Error()}
	case retryable(err), errors.Is(err, raft.ErrEnqueueTimeout):
		return fwdResponse{Code: codeNotLeader, Err: err.Error()}
	}
	return fwdResponse{Code: codeError, Err: err.Error()}
}
