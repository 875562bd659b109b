package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/hashicorp/raft"
)

// Backups and restores (`chimalli cluster snapshot save|restore`).
//
// A backup is the state at a committed point: the node catches up with the
// leader (ReadIndex), freezes its state and writes it in the backup format
// (raftstore.Frozen.WriteBackup). A restore validates a whole backup
// (raftstore.ReadBackup) before anything changes, then the leader installs
// the state as a Raft user snapshot (raft.Restore): its own FSM restores
// it, and every follower, finding the entries before it gone, is sent the
// snapshot and installs it. Writes after the restore apply to the restored
// state.

// restoreSlack widens the hole Raft leaves in the log's indexes at a
// restore, so the FSM knows in advance the index Raft gives the restored
// snapshot (see restoreLocal). An index costs nothing.
const restoreSlack = 4096

// maxForwardRestore bounds a state snapshot forwarded to the leader.
const maxForwardRestore = 8 << 30

// restoreWait bounds how long a leader works on a forwarded restore.
const restoreWait = 10 * time.Minute

// RestoreResult is what a restore did.
type RestoreResult struct {
	Leader    string `json:"leader"`     // the node that restored it (the leader then)
	Index     uint64 `json:"index"`      // the restored state's index: the backup's
	RaftIndex uint64 `json:"raft_index"` // the Raft index of the snapshot that holds it
	StateHash string `json:"state_hash"` // the restored state's hash: the backup's SHA-256
	Bans      int    `json:"bans"`
	Rules     int    `json:"rules"`
	Pins      int    `json:"pins"`
}

// Backup writes a backup of the cluster's state to w: every write
// committed before the call is in it. The state is frozen at once, so w
// may be slow without holding anything up. Nothing is written when the
// node cannot reach the leader.
func (n *Node) Backup(ctx context.Context, w io.Writer) (raftstore.BackupHeader, error) {
	if _, err := n.ReadIndex(ctx); err != nil {
		return raftstore.BackupHeader{}, fmt.Errorf("backup: %w", err)
	}
	if errp := n.fatalErr.Load(); errp != nil {
		return raftstore.BackupHeader{}, fmt.Errorf("backup: %w: %w", ErrFailed, *errp)
	}
	var frozen *raftstore.Frozen
	n.fsm.read(func(st *raftstore.State) { frozen = st.Freeze() })
	return frozen.WriteBackup(w, raftstore.BackupMeta{Cluster: n.cfg.Name, Node: n.cfg.ID, Term: n.raft.CurrentTerm(), Time: n.now()})
}

// Restore replaces the cluster's state with the backup r holds, through
// the leader (a follower forwards it). It reads and checks the whole
// backup first: a backup that ReadBackup refuses (an error wrapping
// raftstore.ErrBadBackup) changes nothing. It returns once the restored
// state is committed and this node holds it. ErrNoLeader, ErrClosed and
// ctx's error leave the outcome unknown; restoring the same backup again
// is harmless.
func (n *Node) Restore(ctx context.Context, r io.Reader) (RestoreResult, error) {
	_, st, err := raftstore.ReadBackup(r)
	if err != nil {
		return RestoreResult{}, err
	}
	frozen := st.Freeze()
	res, err := onLeader(ctx, n,
		func() (RestoreResult, error) { return n.restoreLocal(ctx, frozen) },
		func(addr string) (RestoreResult, error) { return n.fwd.restore(ctx, addr, frozen) })
	if err != nil {
		return RestoreResult{}, err
	}
	return res, n.waitApplied(ctx, res.RaftIndex)
}

// restoreLocal installs frozen as the state, on the leader, with
// raft.Restore. Raft gives the snapshot the index after both the last in
// its log and the one the caller names, and leaves a hole there. The FSM
// must know that index (applied, in the snapshot's first line), or a
// follower that installs the snapshot would count itself behind the
// leader until the next entry; so restoreLocal names an index restoreSlack
// past the last: Raft takes it unless more entries than that are appended
// meanwhile (it then logs so, and the FSMs catch up with the next entry).
func (n *Node) restoreLocal(ctx context.Context, frozen *raftstore.Frozen) (RestoreResult, error) {
	var res RestoreResult
	at := max(n.raft.LastIndex(), n.fsm.applied.Load(), frozen.Index()) + restoreSlack
	first := fmt.Sprintf("{\"applied\":%d}\n", at+1)
	size, err := frozen.SnapshotSize()
	if err != nil {
		return res, err
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: at, Term: n.raft.CurrentTerm(),
		Size: int64(len(first)) + size}
	pr, pw := io.Pipe()
	go func() {
		_, err := io.WriteString(pw, first)
		if err == nil {
			err = frozen.WriteSnapshot(pw)
		}
		pw.CloseWithError(err)
	}()
	timeout := n.cfg.Timing.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		pr.Close()
		return res, ctx.Err()
	}
	done := make(chan error, 1)
	go func() {
		err := n.raft.Restore(meta, pr, timeout)
		pr.CloseWithError(errors.New("restore ended")) // unblocks the writer if Raft read nothing
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		return res, ctx.Err()
	case <-n.done:
		return res, ErrClosed
	}
	if err != nil {
		if errors.Is(err, raft.ErrEnqueueTimeout) {
			return res, fmt.Errorf("restore: %w: %w", ErrNoLeader, err)
		}
		return res, fmt.Errorf("restore: %w", err)
	}
	if got, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64); got != at+1 {
		n.log.Warn("restore: Raft installed the snapshot at another index than the state records: followers count themselves behind until the next write",
			"snapshot_index", got, "state_applied", at+1)
	}
	res = RestoreResult{Leader: n.cfg.ID, Index: frozen.Index(), RaftIndex: at + 1}
	n.fsm.read(func(st *raftstore.State) {
		res.StateHash = st.Hash()
		res.Bans, res.Rules, res.Pins = st.Bans().Len(), len(st.Rules()), len(st.Pins())
	})
	n.log.Warn("cluster state restored from a backup", "index", res.Index, "raft_index", res.RaftIndex,
		"state_hash", res.StateHash, "bans", res.Bans, "rules", res.Rules, "pins", res.Pins)
	return res, nil
}

// restore sends frozen to the leader at addr to restore.
func (f *forwarder) restore(ctx context.Context, addr string, frozen *raftstore.Frozen) (RestoreResult, error) {
	size, err := frozen.SnapshotSize()
	if err != nil {
		return RestoreResult{}, err
	}
	tc, err := f.d.dial(ctx, addr)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("%w: %w", errForwardUnavailable, err)
	}
	defer tc.Close()
	if dl, ok := ctx.Deadline(); ok {
		tc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { tc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var resp fwdResponse
	err = func() error {
		bw := bufio.NewWriterSize(tc, 64<<10)
		line, err := json.Marshal(fwdRequest{Restore: &fwdRestore{Size: size}})
		if err != nil {
			return err
		}
		bw.Write(append(line, '\n'))
		if err := frozen.WriteSnapshot(bw); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		line, err = readLine(bufio.NewReader(tc))
		if err != nil {
			return err
		}
		return json.Unmarshal(line, &resp)
	}()
	if err != nil {
		if ctx.Err() != nil {
			return RestoreResult{}, fmt.Errorf("forward to %s: %w", addr, ctx.Err())
		}
		return RestoreResult{}, fmt.Errorf("%w: %s: %w", errForwardUnavailable, addr, err)
	}
	if err := responseError(addr, resp); err != nil {
		return RestoreResult{}, err
	}
	if resp.Restored == nil {
		return RestoreResult{}, fmt.Errorf("forward to %s: restore: no result", addr)
	}
	return *resp.Restored, nil
}

// handleRestore reads a forwarded state snapshot from r and, as the
// leader, restores it.
func (f *forwarder) handleRestore(req fwdRestore, r *bufio.Reader) fwdResponse {
	if req.Size <= 0 || req.Size > maxForwardRestore {
		return fwdResponse{Code: codeRefused, Err: fmt.Sprintf("restore: a snapshot of %d bytes", req.Size)}
	}
	body := io.LimitReader(r, req.Size)
	st, err := raftstore.ReadSnapshot(body)
	if _, derr := io.Copy(io.Discard, body); err == nil && derr != nil {
		err = derr
	}
	if err != nil {
		return fwdResponse{Code: codeRefused, Err: fmt.Sprintf("restore: %v", err)}
	}
	if !f.n.IsLeader() {
		id, addr := f.n.Leader()
		return fwdResponse{Code: codeNotLeader, Err: "leader is " + id, Leader: addr}
	}
	ctx, cancel := context.WithTimeout(context.Background(), restoreWait)
	defer cancel()
	res, err := f.n.restoreLocal(ctx, st.Freeze())
	if err != nil {
		return errorResponse(err)
	}
	return fwdResponse{Restored: &res}
}
