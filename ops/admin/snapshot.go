package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/raftstore/cluster"
)

// Snapshots is what the admin API needs to back up and restore the
// cluster's state. cluster.Node implements it.
type Snapshots interface {
	// Backup writes a backup of the state at a committed point to w
	// (raftstore's backup format) and returns its header; it writes
	// nothing when it fails before the backup starts.
	Backup(ctx context.Context, w io.Writer) (raftstore.BackupHeader, error)
	// Restore replaces the cluster's state with the backup r holds,
	// through the leader, once the whole backup is checked: an error
	// wrapping raftstore.ErrBadBackup means it was refused and nothing
	// changed; any other error leaves the outcome unknown.
	Restore(ctx context.Context, r io.Reader) (cluster.RestoreResult, error)
}

// backupContentType is the media type of a backup: JSON lines.
const backupContentType = "application/x-ndjson"

// maxBackupBody bounds a backup sent to POST /cluster/snapshot/restore.
const maxBackupBody = 8 << 30

// HandleSnapshots serves GET /cluster/snapshot, a backup of the cluster's
// state (every write committed before the request is in it), and POST
// /cluster/snapshot/restore, whose body is a backup that replaces the
// state on every node (answered with a cluster.RestoreResult once it is
// committed and this node holds it). The backup holds the ticket and
// audit keys: it is a secret, as the socket is.
func (a *Admin) HandleSnapshots(s Snapshots) {
	a.mux.Handle("/cluster/snapshot", methods{get: func(w http.ResponseWriter, r *http.Request) {
		lw := &lazyWriter{w: w}
		_, err := s.Backup(r.Context(), lw)
		switch {
		case err == nil:
		case !lw.started:
			unavailable(w, err)
		default:
			// The status line is out: cut the stream short, so the client
			// sees a broken body (its checksum check would too).
			panic(http.ErrAbortHandler)
		}
	}})
	a.mux.Handle("/cluster/snapshot/restore", methods{post: func(w http.ResponseWriter, r *http.Request) {
		res, err := s.Restore(r.Context(), http.MaxBytesReader(w, r.Body, maxBackupBody))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			writeJSON(w, http.StatusRequestEntityTooLarge, statusBody{Status: "too_large", Error: fmt.Sprintf("body: larger than %d bytes", int64(maxBackupBody))})
		case errors.Is(err, raftstore.ErrBadBackup) || errors.Is(err, raftstore.ErrRefused):
			badRequest(w, fmt.Errorf("%w; nothing was changed", err))
		case err != nil:
			unavailable(w, fmt.Errorf("restore: %w", err))
		default:
			writeJSON(w, http.StatusOK, res)
		}
	}})
}

// lazyWriter sends the status line and headers of a backup on the first
// write, so that an error before it can still be answered as JSON.
type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", backupContentType)
		l.w.Header().Set("Cache-Control", "no-store")
		l.w.Header().Set("Content-Disposition", `attachment; filename="chimalli-backup.jsonl"`)
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}
